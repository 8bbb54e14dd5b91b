//! The one place that turns configuration into collectors. A new provider is a new
//! module here plus a line in each function below and a section in `Config`.

pub mod acedata;
pub mod yeastar;

use std::sync::Arc;

use crate::collector::Collector;
use crate::config::{Config, Timing};
use crate::metrics::Registry;
use crate::upstream::Upstream;

/// Every provider's metric families, registered once per process.
pub struct ProviderMetrics {
    acedata: Arc<acedata::metrics::AcedataMetrics>,
    yeastar: Arc<yeastar::YeastarMetrics>,
}

impl ProviderMetrics {
    /// Register every provider's families into `registry`.
    pub fn register(registry: &Registry) -> Self {
        ProviderMetrics {
            acedata: Arc::new(acedata::metrics::AcedataMetrics::new(registry)),
            yeastar: Arc::new(yeastar::YeastarMetrics::new(registry)),
        }
    }
}

/// A collector with the cadence of its account.
pub struct Scheduled {
    pub collector: Box<dyn Collector>,
    pub timing: Timing,
}

/// An account's low-balance threshold, for `balance_exporter_low_balance_threshold`.
pub struct Threshold {
    pub provider: &'static str,
    pub account: String,
    pub value: f64,
}

/// Every collector of every configured account.
pub fn collectors(
    config: &Config,
    metrics: &ProviderMetrics,
    upstream: &Upstream,
) -> Vec<Scheduled> {
    let acedata = config.acedata.iter().map(|a| {
        let built = acedata::collectors(a, &metrics.acedata, upstream);
        (built, a.timing)
    });
    let yeastar = config.yeastar.iter().map(|a| {
        let built = yeastar::collectors(a, &metrics.yeastar, upstream);
        (built, a.timing)
    });
    acedata
        .chain(yeastar)
        .flat_map(|(built, timing)| {
            built
                .into_iter()
                .map(move |collector| Scheduled { collector, timing })
        })
        .collect()
}

/// Every configured low-balance threshold.
pub fn thresholds(config: &Config) -> Vec<Threshold> {
    let acedata = config.acedata.iter().filter_map(|a| {
        a.low_balance_threshold.map(|value| Threshold {
            provider: "acedata",
            account: a.name.clone(),
            value,
        })
    });
    let yeastar = config.yeastar.iter().filter_map(|a| {
        a.low_balance_threshold.map(|value| Threshold {
            provider: "yeastar",
            account: a.name.clone(),
            value,
        })
    });
    acedata.chain(yeastar).collect()
}

/// Keep only the accounts for which `keep(provider, account name)` holds.
pub fn retain(config: &mut Config, keep: impl Fn(&str, &str) -> bool) {
    config.acedata.retain(|a| keep("acedata", &a.name));
    config.yeastar.retain(|a| keep("yeastar", &a.name));
}

/// The number of configured accounts of every provider (0 included).
pub fn account_counts(config: &Config) -> [(&'static str, usize); 2] {
    [
        ("acedata", config.acedata.len()),
        ("yeastar", config.yeastar.len()),
    ]
}
