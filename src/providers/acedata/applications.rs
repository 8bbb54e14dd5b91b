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

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::client::AcedataClient;
use super::config::ApplicationThresholds;
use super::metrics::AcedataMetrics;
use super::model::{to_f64, Application};
use crate::collector::{CollectError, Collector};

/// `limit` of each page request.
pub const PAGE_SIZE: u64 = 100;

/// How many times a pass restarts when the list changes under it.
const PASS_ATTEMPTS: usize = 3;

/// Polls `GET /api/v1/applications/`.
pub struct ApplicationsCollector {
    pub(super) account: String,
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
    pub(super) thresholds: ApplicationThresholds,
}

/// One pass over every page: the applications (each id once) and whether the list
/// stayed the same size and without repeats throughout.
async fn one_pass(client: &AcedataClient) -> Result<(Vec<Application>, bool), CollectError> {
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
pub async fn fetch_all(client: &AcedataClient) -> Result<Vec<Application>, CollectError> {
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
        let a = self.account.as_str();
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

impl Collector for ApplicationsCollector {
    fn name(&self) -> &'static str {
        "acedata_applications"
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            let apps = fetch_all(&self.client).await?;
            self.update(&apps);
            Ok(())
        }
        .boxed()
    }

    fn clear(&mut self) {
        let m = &self.metrics;
        let a = self.account.as_str();
        for f in [
            &m.application_remaining,
            &m.application_used,
            &m.application_disabled,
            &m.application_allow_global,
            &m.application_expiry,
            &m.application_info,
            &m.credential_used,
            &m.credential_limit,
            &m.credential_expiry,
            &m.application_threshold,
        ] {
            f.clear(a);
        }
    }
}
