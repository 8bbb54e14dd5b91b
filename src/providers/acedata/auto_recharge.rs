//! The `acedata_auto_recharge` collector: each application's auto-recharge
//! configuration (`Active`, `Paused`, `Disabled`, or whatever status upstream gives),
//! from every page of `GET /api/v1/auto-recharge-configs/` each interval. Joined on
//! `application_id` with `acedata_application_info`, it tells whether a low service
//! quota will refill by itself.

use std::sync::Arc;

use serde::Deserialize;
use tokio::time::Instant;

use super::client::AcedataClient;
use super::metrics::AcedataMetrics;
use super::model;
use super::paging::all_pages;
use crate::collector::{impl_collector, CollectError};

/// The `collector` label.
pub const NAME: &str = "acedata_auto_recharge";

/// Polls `GET /api/v1/auto-recharge-configs/`.
pub struct AutoRechargeCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
}

/// One auto-recharge configuration; one without an application or a status has no
/// series.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AutoRecharge {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// Parse one page: `(count, configs)`.
pub fn parse_page(body: &[u8]) -> Result<(u64, Vec<AutoRecharge>), CollectError> {
    model::parse_page(body, "auto-recharge configs")
}

impl AutoRechargeCollector {
    /// Write the configurations to the gauge, replacing the account's previous set.
    pub fn update(&self, configs: &[AutoRecharge]) {
        self.metrics.auto_recharge.replace(
            self.client.account(),
            configs
                .iter()
                .filter_map(|c| Some((vec![c.application_id.clone()?, c.status.clone()?], 1.0))),
        );
    }
}

impl_collector!(AutoRechargeCollector, NAME, [auto_recharge]);

impl AutoRechargeCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let client = self.client.until(deadline);
        let configs = all_pages(|limit, offset| {
            let client = &client;
            async move { parse_page(&client.auto_recharge_page(limit, offset).await?) }
        })
        .await?;
        self.update(&configs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_from_either_list_key_and_keep_unknown_statuses() {
        for key in ["results", "items"] {
            let body = format!(
                r#"{{"count": 3, "{key}": [
                    {{"id": "ar-1", "application_id": "app-1", "status": "Active", "threshold": 10, "amount": 100}},
                    {{"id": "ar-2", "application_id": "app-2", "status": "Suspended"}},
                    {{"id": "ar-3", "status": "Paused"}}
                ]}}"#
            );
            let (count, configs) = parse_page(body.as_bytes()).unwrap();
            assert_eq!(count, 3);
            assert_eq!(configs[1].status.as_deref(), Some("Suspended"));
            assert_eq!(configs[2].application_id, None);
        }
    }

    #[test]
    fn malformed_pages_are_decode_errors() {
        for body in [
            r#"{"count": 1, "results": [{"id": "ar", "application_id": 7, "status": "Active"}]}"#,
            r#"{"results": []}"#,
            r#"{"count": 1}"#,
        ] {
            assert_eq!(
                parse_page(body.as_bytes()).unwrap_err().reason(),
                "decode",
                "{body}"
            );
        }
    }

    #[test]
    fn update_writes_one_series_per_config_with_both_labels() {
        use crate::metrics::Registry;
        let registry = Registry::new();
        let c = AutoRechargeCollector {
            client: AcedataClient::unreachable(),
            metrics: Arc::new(AcedataMetrics::new(&registry)),
        };
        let (_, configs) = parse_page(
            br#"{"count": 2, "results": [{"id": "a", "application_id": "app-1", "status": "Paused"},
                                          {"id": "b", "application_id": "app-2"}]}"#,
        )
        .unwrap();
        c.update(&configs);
        let mut out = Vec::new();
        registry.encode(&mut out);
        let t = String::from_utf8(out).unwrap();
        assert!(t.contains(
            r#"acedata_application_auto_recharge{account="main",application_id="app-1",status="Paused"} 1"#
        ), "{t}");
        assert!(!t.contains("app-2"), "no status: no series\n{t}");
    }
}
