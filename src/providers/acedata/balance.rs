//! The `acedata_balance` collector.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;

use super::client::AcedataClient;
use super::metrics::AcedataMetrics;
use super::model::{to_f64, Balance};
use crate::collector::{CollectError, Collector};
use crate::metrics::GaugeFamily;

/// Polls `POST /api/v1/balances/initialize/`.
pub struct BalanceCollector {
    pub(super) account: Arc<str>,
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
}

impl BalanceCollector {
    /// Write a parsed balance to the gauges; no I/O.
    pub fn update(&self, b: &Balance) {
        let m = &self.metrics;
        let a = &*self.account;
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

impl Collector for BalanceCollector {
    fn name(&self) -> &'static str {
        "acedata_balance"
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn collect(&mut self, deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            let b = self.client.until(deadline).balance().await?;
            self.update(&b);
            Ok(())
        }
        .boxed()
    }

    fn families(&self) -> Vec<&GaugeFamily> {
        let m = &self.metrics;
        vec![
            &m.credits,
            &m.package_amount,
            &m.package_price,
            &m.balance_updated,
        ]
    }

    fn secrets(&self) -> Vec<secrecy::SecretString> {
        self.client.secrets()
    }
}

impl BalanceCollector {}
