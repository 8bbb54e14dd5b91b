//! The `acedata_applications` collector: every application (a subscribed API service
//! with its own quota) and every API key of each.
//!
//! Each poll reads every page of `GET /api/v1/applications/` (one request per page,
//! nothing per scrape) and replaces the account's series with what it found, so
//! applications and keys that vanished upstream are gone after the next successful
//! poll. A page that fails fails the whole poll: nothing is written and the last good
//! values stay.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use tokio::time::Instant;

use super::client::{AcedataClient, Attempt};
use super::config::ApplicationThresholds;
use super::metrics::AcedataMetrics;
use super::model::{to_f64, Application};
use crate::collector::{impl_collector, CollectError};

/// `limit` of each page request.
pub const PAGE_SIZE: u64 = 100;

/// How many times a pass restarts when the list changes under it.
const PASS_ATTEMPTS: usize = 3;

/// Polls `GET /api/v1/applications/`.
pub struct ApplicationsCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
    pub(super) thresholds: ApplicationThresholds,
}

/// One pass over every page: the applications (each id once) and whether the list
/// stayed the same size and without repeats throughout.
async fn one_pass(client: &Attempt<'_>) -> Result<(Vec<Application>, bool), CollectError> {
    let mut apps = Vec::new();
    let mut seen = HashSet::new();
    let mut offset = 0u64;
    let mut consistent = true;
    let mut expected: Option<u64> = None;
    loop {
        let (count, page) = client.applications_page(PAGE_SIZE, offset).await?;
        consistent &= expected.is_none_or(|c| c == count);
        expected = Some(count);
        let read = page.len() as u64;
        for app in page {
            if seen.insert(app.id.clone()) {
                apps.push(app);
            } else {
                consistent = false;
            }
        }
        offset += read;
        if read == 0 || offset >= count {
            consistent &= offset == count;
            return Ok((apps, consistent));
        }
    }
}

/// Every application of the account, all pages.
pub async fn fetch_all(client: &Attempt<'_>) -> Result<Vec<Application>, CollectError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (apps, consistent) = one_pass(client).await?;
        if consistent {
            return Ok(apps);
        }
        if attempt >= PASS_ATTEMPTS {
            tracing::warn!(
                applications = apps.len(),
                "the application list kept changing while it was read; using the last pass"
            );
            return Ok(apps);
        }
        tracing::debug!(
            attempt,
            "the application list changed while it was read; reading it again"
        );
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl ApplicationsCollector {
    /// Write the applications to the gauges, replacing the account's previous set; no
    /// I/O.
    pub fn update(&self, apps: &[Application]) {
        let m = &self.metrics;
        let a = self.client.account();
        let key = |app: &Application| vec![app.id.clone(), app.service_label().to_string()];
        let per_app = |value: fn(&Application) -> Option<f64>| {
            apps.iter()
                .filter_map(move |app| value(app).map(|v| (key(app), v)))
                .collect::<Vec<_>>()
        };
        m.application_remaining
            .replace(a, per_app(|app| Some(to_f64(app.remaining_amount))));
        m.application_used
            .replace(a, per_app(|app| Some(to_f64(app.used_amount))));
        m.application_disabled
            .replace(a, per_app(|app| Some(flag(app.disabled))));
        m.application_allow_global
            .replace(a, per_app(|app| Some(flag(app.allow_consume_global))));
        m.application_expiry
            .replace(a, per_app(|app| app.expired_at));
        m.application_info.replace(
            a,
            apps.iter().map(|app| {
                (
                    vec![
                        app.id.clone(),
                        app.service_label().to_string(),
                        app.service_name().to_string(),
                        app.kind.clone(),
                        app.scope.clone(),
                    ],
                    1.0,
                )
            }),
        );

        let credentials = || {
            apps.iter().flat_map(|app| {
                app.credentials.iter().map(move |c| {
                    let labels = vec![
                        app.id.clone(),
                        app.service_label().to_string(),
                        c.id.clone(),
                    ];
                    (labels, c)
                })
            })
        };
        m.credential_used
            .replace(a, credentials().map(|(l, c)| (l, to_f64(c.used_amount))));
        m.credential_limit.replace(
            a,
            credentials().filter_map(|(l, c)| c.limited_amount.map(|v| (l, to_f64(v)))),
        );
        m.credential_expiry.replace(
            a,
            credentials().filter_map(|(l, c)| c.expired_at.map(|v| (l, v))),
        );

        let services: BTreeSet<&str> = apps.iter().map(Application::service_label).collect();
        m.application_threshold.replace(
            a,
            services.into_iter().filter_map(|s| {
                self.thresholds
                    .for_service(s)
                    .map(|v| (vec![s.to_string()], v))
            }),
        );
    }
}

impl_collector!(
    ApplicationsCollector,
    "acedata_applications",
    [
        application_remaining,
        application_used,
        application_disabled,
        application_allow_global,
        application_expiry,
        application_info,
        credential_used,
        credential_limit,
        credential_expiry,
        application_threshold
    ]
);

impl ApplicationsCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let apps = fetch_all(&self.client.until(deadline)).await?;
        self.update(&apps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::Collector;
    use crate::metrics::Registry;

    fn collector(registry: &Registry, thresholds: &str) -> ApplicationsCollector {
        let yaml = format!(
            "acedata:\n  - name: main\n    token: t\n    application_thresholds: {thresholds}\n"
        );
        let config = crate::config::Config::from_yaml(&yaml, &crate::providers::all()).unwrap();
        let account = config
            .accounts::<super::super::AccountConfig>()
            .next()
            .unwrap();
        let thresholds = account.application_thresholds.clone();
        ApplicationsCollector {
            client: AcedataClient::unreachable(),
            metrics: Arc::new(AcedataMetrics::new(registry)),
            thresholds,
        }
    }

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        registry.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn spec_apps(body: &str) -> Vec<Application> {
        let page = format!(r#"{{"count": 1, "results": [{body}]}}"#);
        super::super::model::parse_applications_page(page.as_bytes())
            .unwrap()
            .1
    }

    #[test]
    fn update_writes_every_series_then_replaces_and_clears_them() {
        let registry = Registry::new();
        let mut c = collector(&registry, r#"{midjourney: 100, "*": 20}"#);
        let spec = super::super::model::tests::SPEC_APPLICATION;
        c.update(&spec_apps(spec));
        let t = text(&registry);
        let l = r#"account="main",application_id="0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a""#;
        for line in [
            format!(r#"acedata_application_remaining_amount{{{l},service="midjourney"}} 312.5"#),
            format!(r#"acedata_application_used_amount{{{l},service="midjourney"}} 187.5"#),
            format!(r#"acedata_application_disabled{{{l},service="midjourney"}} 0"#),
            format!(r#"acedata_application_allow_consume_global{{{l},service="midjourney"}} 0"#),
            format!(
                r#"acedata_application_info{{{l},scope="Individual",service="midjourney",service_name="Midjourney",type="Usage"}} 1"#
            ),
            format!(
                r#"acedata_credential_used_amount{{{l},credential_id="cred-1",service="midjourney"}} 150.25"#
            ),
            format!(
                r#"acedata_credential_limit_amount{{{l},credential_id="cred-1",service="midjourney"}} 200"#
            ),
            r#"balance_exporter_application_low_threshold{account="main",service="midjourney"} 100"#
                .to_string(),
        ] {
            assert!(t.contains(&line), "missing {line} in:\n{t}");
        }
        assert!(!t.contains("expiry_timestamp_seconds{"), "{t}");
        assert!(!t.contains("sk-never"), "{t}");

        // Without an alias the service is the service_id; the `*` threshold applies.
        let renamed = spec.replace(r#""alias": "midjourney""#, r#""alias": null"#);
        c.update(&spec_apps(&renamed));
        let t = text(&registry);
        assert!(
            !t.contains("midjourney"),
            "old label sets are replaced:\n{t}"
        );
        assert!(t.contains(
            r#"balance_exporter_application_low_threshold{account="main",service="svc-mj"} 20"#
        ));

        c.update(&[]);
        assert!(!text(&registry).contains("account=\"main\""));
        c.update(&spec_apps(spec));
        c.clear();
        assert!(!text(&registry).contains("account=\"main\""));
    }
}
