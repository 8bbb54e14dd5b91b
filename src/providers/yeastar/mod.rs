//! Yeastar Partner Portal: reseller account balance.

pub mod balance;
pub mod client;
pub mod config;
pub mod model;
pub mod token;

use std::sync::Arc;

pub use self::balance::YeastarMetrics;
use self::client::YeastarClient;
pub use self::config::AccountConfig;
use self::token::TokenManager;
use crate::collector::Collector;
use crate::upstream::Upstream;

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
