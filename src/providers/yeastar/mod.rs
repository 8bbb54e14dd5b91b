//! Yeastar Partner Portal: reseller account balance.

pub mod balance;
pub mod client;
pub mod config;
pub mod metrics;
pub mod model;
pub mod token;

use std::any::Any;
use std::sync::Arc;

use self::client::YeastarClient;
pub use self::config::AccountConfig;
pub use self::metrics::YeastarMetrics;
use self::token::TokenManager;
use crate::collector::Collector;
use crate::config::fields::Fields;
use crate::fingerprint::Fingerprint;
use crate::metrics::Registry;
use crate::provider::{self, Account, Families, Provider};
use crate::timing::Timing;
use crate::upstream::Upstream;

/// Yeastar Partner Portal, as the core sees it.
#[derive(Debug)]
pub struct Yeastar;

/// The one instance, listed in [`crate::providers::all`].
pub static PROVIDER: Yeastar = Yeastar;

impl Provider for Yeastar {
    fn name(&self) -> &'static str {
        "yeastar"
    }

    fn title(&self) -> &'static str {
        "Yeastar"
    }

    fn parse_account(&self, fields: &mut Fields<'_>, defaults: Timing) -> Option<Arc<dyn Account>> {
        AccountConfig::parse(fields, defaults).map(|a| Arc::new(a) as Arc<dyn Account>)
    }

    fn register(&self, registry: &Registry) -> Families {
        Arc::new(YeastarMetrics::new(registry))
    }
}

impl Account for AccountConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn timing(&self) -> Timing {
        self.timing
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

/// The collectors of one account.
pub fn collectors(
    cfg: &AccountConfig,
    metrics: &Arc<YeastarMetrics>,
    upstream: &Upstream,
) -> Vec<Box<dyn Collector>> {
    let client = YeastarClient::new(
        upstream.clone(),
        &cfg.base_url,
        &cfg.user_agent,
        cfg.timing.timeout,
    );
    vec![Box::new(balance::BalanceCollector {
        account: cfg.name.clone(),
        client,
        tokens: TokenManager::new(cfg.auth.clone()),
        metrics: metrics.clone(),
    })]
}
