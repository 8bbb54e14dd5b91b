//! The `acedata_balance` collector.

use std::sync::Arc;

use tokio::time::Instant;

use super::client::AcedataClient;
use super::metrics::AcedataMetrics;
use super::model::{to_f64, Balance};
use crate::collector::{impl_collector, CollectError};

/// Polls `POST /api/v1/balances/initialize/`.
pub struct BalanceCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
}

impl BalanceCollector {
    /// Write a parsed balance to the gauges; no I/O.
    pub fn update(&self, b: &Balance) {
        let m = &self.metrics;
        let a = self.client.account();
        m.credits.set(a, to_f64(b.credits));
        m.package_amount.replace(
            a,
            b.packages
                .iter()
                .map(|p| (vec![p.id.clone(), p.name.clone()], p.amount)),
        );
        m.package_price.replace(
            a,
            b.packages
                .iter()
                .map(|p| (vec![p.id.clone(), p.name.clone()], to_f64(p.price))),
        );
        m.balance_updated.set_opt(a, b.updated_at);
    }
}

impl_collector!(
    BalanceCollector,
    "acedata_balance",
    [credits, package_amount, package_price, balance_updated]
);

impl BalanceCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let b = self.client.until(deadline).balance().await?;
        self.update(&b);
        Ok(())
    }
}
