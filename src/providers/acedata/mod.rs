//! Ace Data Cloud: credit balance, service quotas (applications) and the distribution
//! (affiliate) system.

pub mod applications;
pub mod auto_recharge;
pub mod balance;
pub mod client;
pub mod clock;
pub mod config;
pub mod distribution;
pub mod history;
pub mod metrics;
pub mod model;
pub mod orders;
mod paging;
pub mod usage;

use std::any::Any;
use std::sync::Arc;

use self::client::AcedataClient;
pub use self::config::{AccountConfig, CollectorKind};
use self::metrics::AcedataMetrics;
use crate::collector::Collector;
use crate::config::fields::Fields;
use crate::fingerprint::Fingerprint;
use crate::metrics::Registry;
use crate::provider::{self, Account, Families, Provider};
use crate::timing::Timing;
use crate::upstream::Upstream;

/// Ace Data Cloud, as the core sees it.
#[derive(Debug)]
pub struct Acedata;

/// The one instance, listed in [`crate::providers::all`].
pub static PROVIDER: Acedata = Acedata;

impl Provider for Acedata {
    fn name(&self) -> &'static str {
        "acedata"
    }

    fn title(&self) -> &'static str {
        "Ace Data Cloud"
    }

    fn parse_account(&self, fields: &mut Fields<'_>, defaults: Timing) -> Option<Arc<dyn Account>> {
        AccountConfig::parse(fields, defaults).map(|a| Arc::new(a) as Arc<dyn Account>)
    }

    fn register(&self, registry: &Registry) -> Families {
        Arc::new(AcedataMetrics::new(registry))
    }
}

impl Account for AccountConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn timing(&self) -> Timing {
        self.timing
    }

    fn timing_of(&self, collector: &str) -> Timing {
        AccountConfig::timing_of(self, collector)
    }

    fn low_balance_threshold(&self) -> Option<f64> {
        self.low_balance_threshold
    }

    fn collectors(&self, families: &Families, upstream: &Upstream) -> Vec<Box<dyn Collector>> {
        collectors(self, &provider::families(families), upstream)
    }

    fn fingerprint(&self) -> Option<Fingerprint> {
        Some(AccountConfig::fingerprint(self))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The collectors of one account, as configured.
pub fn collectors(
    cfg: &AccountConfig,
    metrics: &Arc<AcedataMetrics>,
    upstream: &Upstream,
) -> Vec<Box<dyn Collector>> {
    // One client, and so one copy of the name, for all of the account's collectors.
    let client = AcedataClient::new(
        upstream.clone(),
        &cfg.name,
        &cfg.base_url,
        cfg.token.clone(),
        cfg.user_id.clone(),
        cfg.timing.timeout,
    );
    cfg.collectors
        .iter()
        .map(|kind| -> Box<dyn Collector> {
            let (client, metrics) = (client.clone(), metrics.clone());
            match kind {
                CollectorKind::Balance => Box::new(balance::BalanceCollector { client, metrics }),
                CollectorKind::DistributionStatus => Box::new(distribution::StatusCollector {
                    client,
                    metrics,
                    initialize: cfg.initialize_distribution,
                    initialized: false,
                }),
                CollectorKind::DistributionLevels => {
                    Box::new(distribution::LevelsCollector { client, metrics })
                }
                CollectorKind::DistributionHistory => Box::new(history::HistoryCollector {
                    client,
                    metrics,
                    sync: history::HistorySync::new(
                        cfg.history.page_size,
                        cfg.history.full_sync_interval,
                    ),
                }),
                CollectorKind::Applications => Box::new(applications::ApplicationsCollector {
                    client,
                    metrics,
                    thresholds: cfg.application_thresholds.clone(),
                }),
                CollectorKind::Usage => Box::new(usage::UsageCollector {
                    client,
                    metrics,
                    clock: clock::system,
                }),
                CollectorKind::Orders => Box::new(orders::OrdersCollector {
                    client,
                    metrics,
                    clock: clock::system,
                }),
                CollectorKind::AutoRecharge => {
                    Box::new(auto_recharge::AutoRechargeCollector { client, metrics })
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// 80,000 collectors at 10,000 accounts, each in a box of its own: the account's
    /// name and connection settings live once, behind the one-pointer client they
    /// share, and each collector keeps only its own state.
    #[test]
    fn a_collector_keeps_its_own_state_and_a_pointer_to_its_accounts() {
        let sizes = [
            ("balance", size_of::<balance::BalanceCollector>(), 16),
            ("status", size_of::<distribution::StatusCollector>(), 24),
            ("levels", size_of::<distribution::LevelsCollector>(), 16),
            ("history", size_of::<history::HistoryCollector>(), 216),
            (
                "applications",
                size_of::<applications::ApplicationsCollector>(),
                40,
            ),
            ("usage", size_of::<usage::UsageCollector>(), 24),
            ("orders", size_of::<orders::OrdersCollector>(), 24),
            (
                "auto_recharge",
                size_of::<auto_recharge::AutoRechargeCollector>(),
                16,
            ),
        ];
        for (name, size, most) in sizes {
            assert!(size <= most, "{name}: {size} bytes, more than {most}");
        }
    }
}
