//! The `yeastar_balance` collector.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;

use super::client::YeastarClient;
use super::metrics::YeastarMetrics;
use super::model::BalanceInfo;
use super::token::TokenManager;
use crate::collector::{CollectError, Collector};
use crate::metrics::GaugeFamily;

/// Polls the account balance, renewing the access token as needed.
pub struct BalanceCollector {
    pub(super) account: String,
    pub(super) client: YeastarClient,
    pub(super) tokens: TokenManager,
    pub(super) metrics: Arc<YeastarMetrics>,
}

impl BalanceCollector {
    /// Write a parsed balance to the gauges; no I/O.
    pub fn update(&self, info: &BalanceInfo) {
        self.metrics
            .balance
            .set(&self.account, info.account_balance);
    }
}

impl Collector for BalanceCollector {
    fn name(&self) -> &'static str {
        "yeastar_balance"
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn collect(&mut self, deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            let client = self.client.until(deadline);
            let token = self.tokens.access_token(&client).await?;
            let info = match client.balance(&token).await {
                Err(CollectError::Unauthorized { .. }) if self.tokens.can_renew() => {
                    tracing::info!(
                        collector = "yeastar_balance",
                        account = %self.account,
                        "access token rejected; renewing it and retrying once"
                    );
                    self.tokens.invalidate();
                    let token = self.tokens.access_token(&client).await?;
                    client.balance(&token).await?
                }
                other => other?,
            };
            self.update(&info);
            Ok(())
        }
        .boxed()
    }

    fn families(&self) -> Vec<&GaugeFamily> {
        vec![&self.metrics.balance]
    }

    fn secrets(&self) -> Vec<secrecy::SecretString> {
        self.tokens.secrets()
    }
}
