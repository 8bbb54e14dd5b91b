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
    pub application_remaining: GaugeFamily,
    pub application_used: GaugeFamily,
    pub application_disabled: GaugeFamily,
    pub application_allow_global: GaugeFamily,
    pub application_expiry: GaugeFamily,
    pub application_info: GaugeFamily,
    pub credential_used: GaugeFamily,
    pub credential_limit: GaugeFamily,
    pub credential_expiry: GaugeFamily,
    pub application_threshold: GaugeFamily,
    pub usage_today: GaugeFamily,
    pub usage_last_7d: GaugeFamily,
    pub usage_month_to_date: GaugeFamily,
    pub orders: GaugeFamily,
    pub orders_finished_price: GaugeFamily,
    pub order_last_created: GaugeFamily,
    pub order_oldest_pending: GaugeFamily,
    pub auto_recharge: GaugeFamily,
}

impl AcedataMetrics {
    /// Register every family into `r`.
    pub fn new(r: &Registry) -> Self {
        let pkg = &["package_id", "package"];
        let app = &["application_id", "service"];
        let cred = &["application_id", "service", "credential_id"];
        let api = &["api_id", "api"];
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
            application_remaining: GaugeFamily::new(r, "acedata_application_remaining_amount", "Remaining quota of an Ace Data Cloud application (one subscribed API service).", app),
            application_used: GaugeFamily::new(r, "acedata_application_used_amount", "Quota used so far by an Ace Data Cloud application.", app),
            application_disabled: GaugeFamily::new(r, "acedata_application_disabled", "Whether the Ace Data Cloud application is disabled (1) or not (0).", app),
            application_allow_global: GaugeFamily::new(r, "acedata_application_allow_consume_global", "Whether the application may fall back on the global credits when its quota is used up (1) or not (0).", app),
            application_expiry: GaugeFamily::new(r, "acedata_application_expiry_timestamp_seconds", "Unix time the Ace Data Cloud application expires; absent when it does not expire.", app),
            application_info: GaugeFamily::new(r, "acedata_application_info", "Ace Data Cloud application metadata; the value is always 1.", &["application_id", "service", "service_name", "type", "scope"]),
            credential_used: GaugeFamily::new(r, "acedata_credential_used_amount", "Amount used through one API key of an Ace Data Cloud application.", cred),
            credential_limit: GaugeFamily::new(r, "acedata_credential_limit_amount", "Spending limit of one API key; absent when the key is unlimited.", cred),
            credential_expiry: GaugeFamily::new(r, "acedata_credential_expiry_timestamp_seconds", "Unix time one API key expires; absent when it does not expire.", cred),
            application_threshold: GaugeFamily::new(r, "balance_exporter_application_low_threshold", "Configured low-quota alert threshold for the account's applications of a service (application_thresholds).", &["service"]),
            usage_today: GaugeFamily::new(r, "acedata_usage_today_credits", "Credits spent on one API today (UTC).", api),
            usage_last_7d: GaugeFamily::new(r, "acedata_usage_last_7d_credits", "Credits spent on one API today and the six days before (UTC).", api),
            usage_month_to_date: GaugeFamily::new(r, "acedata_usage_month_to_date_credits", "Credits spent on one API in the current month (UTC).", api),
            orders: GaugeFamily::new(r, "acedata_orders_last_30d", "Top-up orders created in the last 30 days, by state.", &["state"]),
            orders_finished_price: GaugeFamily::new(r, "acedata_orders_finished_price_last_30d", "Sum of the price of the Finished top-up orders created in the last 30 days.", &[]),
            order_last_created: GaugeFamily::new(r, "acedata_order_last_created_timestamp_seconds", "Unix time the newest top-up order of a state (last 30 days) was created.", &["state"]),
            order_oldest_pending: GaugeFamily::new(r, "acedata_order_oldest_pending_timestamp_seconds", "Unix time the oldest still Pending top-up order was created; absent when none is pending.", &[]),
            auto_recharge: GaugeFamily::new(r, "acedata_application_auto_recharge", "An auto-recharge configuration of an application, by status (Active, Paused, Disabled); the value is always 1.", &["application_id", "status"]),
        }
    }
}
