//! The `yeastar_balance` collector.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::client::YeastarClient;
use super::token::TokenManager;
use crate::collector::{CollectError, Collector};
use crate::metrics::{GaugeFamily, Registry};

/// Every Yeastar metric name, in one place.
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

/// Polls the account balance, renewing the access token as needed.
pub struct BalanceCollector {
    pub(super) account: String,
    pub(super) client: YeastarClient,
    pub(super) tokens: TokenManager,
    pub(super) metrics: Arc<YeastarMetrics>,
}

impl Collector for BalanceCollector {
    fn name(&self) -> &'static str {
        "yeastar_balance"
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            let token = self.tokens.access_token(&self.client).await?;
            let info = match self.client.balance(&token).await {
                Err(CollectError::Unauthorized { .. }) if self.tokens.can_renew() => {
                    tracing::info!(
                        collector = "yeastar_balance",
                        account = %self.account,
                        "access token rejected; renewing it and retrying once"
                    );
                    self.tokens.invalidate();
                    let token = self.tokens.access_token(&self.client).await?;
                    self.client.balance(&token).await?
                }
                other => other?,
            };
            self.metrics
                .balance
                .set(&self.account, info.account_balance);
            Ok(())
        }
        .boxed()
    }

    fn clear(&mut self) {
        self.metrics.balance.clear(&self.account);
    }

    fn series(&self) -> Option<usize> {
        Some(self.metrics.balance.count(&self.account))
    }

    fn secrets(&self) -> Vec<secrecy::SecretString> {
        self.tokens.secrets()
    }
}
