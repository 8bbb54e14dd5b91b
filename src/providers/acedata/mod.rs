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
    let client = AcedataClient::new(
        upstream.clone(),
        &cfg.base_url,
        cfg.token.clone(),
        cfg.user_id.clone(),
        cfg.timing.timeout,
    );
    // One copy of the name for all of the account's collectors.
    let name: Arc<str> = cfg.name.as_str().into();
    cfg.collectors
        .iter()
        .map(|kind| -> Box<dyn Collector> {
            let (account, client, metrics) = (name.clone(), client.clone(), metrics.clone());
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
                CollectorKind::Usage => Box::new(usage::UsageCollector {
                    account,
                    client,
                    metrics,
                    clock: clock::system,
                }),
                CollectorKind::Orders => Box::new(orders::OrdersCollector {
                    account,
                    client,
                    metrics,
                    clock: clock::system,
                }),
                CollectorKind::AutoRecharge => Box::new(auto_recharge::AutoRechargeCollector {
                    account,
                    client,
                    metrics,
                }),
            }
        })
        .collect()
}
