//! Every Ace Data Cloud metric name, in one place.

use crate::metrics::{GaugeFamily, Registry};

/// The Ace Data Cloud gauge families, shared by all accounts.
pub struct AcedataMetrics {
    pub credits: GaugeFamily,
    pub package_amount: GaugeFamily,
    pub package_price: GaugeFamily,
    pub balance_updated: GaugeFamily,
    pub level: GaugeFamily,
    pub commission_ratio: GaugeFamily,
    pub invitee_spend: GaugeFamily,
    pub reward: GaugeFamily,
    pub next_level_remaining: GaugeFamily,
    pub level_threshold: GaugeFamily,
    pub level_commission_ratio: GaugeFamily,
    pub history_records: GaugeFamily,
    pub history_reward: GaugeFamily,
    pub history_order_amount: GaugeFamily,
    pub history_last_record: GaugeFamily,
}

impl AcedataMetrics {
    /// Register every family into `r`.
    pub fn new(r: &Registry) -> Self {
        let pkg = &["package_id", "package"];
        AcedataMetrics {
            credits: GaugeFamily::new(r, "acedata_balance_credits", "Ace Data Cloud global credit balance (points).", &[]),
            package_amount: GaugeFamily::new(r, "acedata_balance_package_amount", "Amount of an Ace Data Cloud package associated with the balance.", pkg),
            package_price: GaugeFamily::new(r, "acedata_balance_package_price", "Price of an Ace Data Cloud package associated with the balance.", pkg),
            balance_updated: GaugeFamily::new(r, "acedata_balance_updated_timestamp_seconds", "Unix time the Ace Data Cloud balance record was last updated upstream.", &[]),
            level: GaugeFamily::new(r, "acedata_distribution_level", "Current Ace Data Cloud distribution (affiliate) level.", &[]),
            commission_ratio: GaugeFamily::new(r, "acedata_distribution_commission_ratio", "Commission ratio of the current distribution level (0.1 = 10%).", &[]),
            invitee_spend: GaugeFamily::new(r, "acedata_distribution_invitee_spend", "Total amount spent by invited users.", &[]),
            reward: GaugeFamily::new(r, "acedata_distribution_reward", "Total distribution commission earned.", &[]),
            next_level_remaining: GaugeFamily::new(r, "acedata_distribution_next_level_spend_remaining", "Invitee spend still needed to reach the next distribution level (next level threshold minus invitee spend); absent at the top level.", &[]),
            level_threshold: GaugeFamily::new(r, "acedata_distribution_level_threshold", "Total invitee spend required to reach a distribution level.", &["level"]),
            level_commission_ratio: GaugeFamily::new(r, "acedata_distribution_level_commission_ratio", "Commission ratio of a distribution level.", &["level"]),
            history_records: GaugeFamily::new(r, "acedata_distribution_history_records", "Number of commission history records, by validity.", &["invalid"]),
            history_reward: GaugeFamily::new(r, "acedata_distribution_history_reward", "Sum of commission rewards in the history, by validity.", &["invalid"]),
            history_order_amount: GaugeFamily::new(r, "acedata_distribution_history_order_amount", "Sum of the order amounts behind commission history records, by validity.", &["invalid"]),
            history_last_record: GaugeFamily::new(r, "acedata_distribution_history_last_record_timestamp_seconds", "Unix time of the newest commission history record.", &[]),
        }
    }
}
