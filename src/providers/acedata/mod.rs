//! Ace Data Cloud: credit balance, service quotas (applications) and the distribution
//! (affiliate) system.

pub mod applications;
pub mod balance;
pub mod client;
pub mod config;
pub mod distribution;
pub mod history;
pub mod metrics;
pub mod model;

use std::sync::Arc;

use self::client::AcedataClient;
pub use self::config::{AccountConfig, CollectorKind};
use self::metrics::AcedataMetrics;
use crate::collector::Collector;
use crate::upstream::Upstream;

/// The collectors of one account, as configured.
pub fn collectors(
    cfg: &AccountConfig,
    metrics: &Arc<AcedataMetrics>,
    upstream: &Upstream,
) -> Vec<Box<dyn Collector>> {
    let client = AcedataClient::new(
        upstream.clone(),
        &cfg.base_url,
        cfg.token.clone(),
        cfg.user_id.clone(),
        cfg.timing.timeout,
    );
    cfg.collectors
        .iter()
        .map(|kind| -> Box<dyn Collector> {
            let (account, client, metrics) = (cfg.name.clone(), client.clone(), metrics.clone());
            match kind {
                CollectorKind::Balance => Box::new(balance::BalanceCollector {
                    account,
                    client,
                    metrics,
                }),
                CollectorKind::DistributionStatus => Box::new(distribution::StatusCollector {
                    account,
                    client,
                    metrics,
                    initialize: cfg.initialize_distribution,
                    initialized: false,
                }),
                CollectorKind::DistributionLevels => Box::new(distribution::LevelsCollector {
                    account,
                    client,
                    metrics,
                }),
                CollectorKind::DistributionHistory => Box::new(history::HistoryCollector {
                    account,
                    client,
                    metrics,
                    sync: history::HistorySync::new(
                        cfg.history.page_size,
                        cfg.history.full_sync_interval,
                    ),
                }),
                CollectorKind::Applications => Box::new(applications::ApplicationsCollector {
                    account,
                    client,
                    metrics,
                    thresholds: cfg.application_thresholds.clone(),
                }),
            }
        })
        .collect()
}
