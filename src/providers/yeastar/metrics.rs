//! Every Yeastar metric name, in one place.

use crate::metrics::{GaugeFamily, Registry};

/// The Yeastar gauge families, shared by all accounts.
pub struct YeastarMetrics {
    pub balance: GaugeFamily,
}

impl YeastarMetrics {
    /// Register every family into `r`.
    pub fn new(r: &Registry) -> Self {
        YeastarMetrics {
            balance: GaugeFamily::new(
                r,
                "yeastar_account_balance",
                "Yeastar Partner Portal account balance.",
                &[],
            ),
        }
    }
}
