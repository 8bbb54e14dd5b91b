//! The provider seam, proved from outside the crate: a third vendor defined here, in a
//! few dozen lines, added to the one list of vendors, is configured, checked by
//! `--config.check`, polled and exported without a change to the core.

use std::any::Any;
use std::sync::Arc;

use balance_exporter::app::{ConfigSource, Settings};
use balance_exporter::cli::check;
use balance_exporter::collector::{CollectError, Collector};
use balance_exporter::config::fields::Fields;
use balance_exporter::metrics::{GaugeFamily, Registry};
use balance_exporter::provider::{families, Account, Families, Provider};
use balance_exporter::providers;
use balance_exporter::timing::Timing;
use balance_exporter::upstream::Upstream;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A vendor whose API answers `GET /meter` with a bare number.
#[derive(Debug)]
struct Meter;
static METER: Meter = Meter;

#[derive(Debug)]
struct MeterAccount {
    name: String,
    base_url: String,
    timing: Timing,
    threshold: Option<f64>,
}

struct MeterCollector {
    account: String,
    url: String,
    timeout: std::time::Duration,
    upstream: Upstream,
    level: Arc<GaugeFamily>,
}

impl Provider for Meter {
    fn name(&self) -> &'static str {
        "meter"
    }
    fn title(&self) -> &'static str {
        "Meter"
    }
    fn parse_account(&self, f: &mut Fields<'_>, defaults: Timing) -> Option<Arc<dyn Account>> {
        let name = f.string("name", true);
        let base_url = f.url("base_url", "http://127.0.0.1:9");
        let timing = f.timing(defaults);
        let threshold = f.finite("low_balance_threshold");
        Some(Arc::new(MeterAccount {
            name: name?,
            base_url,
            timing,
            threshold,
        }))
    }
    fn register(&self, r: &Registry) -> Families {
        Arc::new(GaugeFamily::new(r, "meter_level", "Meter level.", &[]))
    }
}

impl Account for MeterAccount {
    fn name(&self) -> &str {
        &self.name
    }
    fn timing(&self) -> Timing {
        self.timing
    }
    fn low_balance_threshold(&self) -> Option<f64> {
        self.threshold
    }
    fn collectors(&self, f: &Families, upstream: &Upstream) -> Vec<Box<dyn Collector>> {
        vec![Box::new(MeterCollector {
            account: self.name.clone(),
            url: format!("{}/meter", self.base_url),
            timeout: self.timing.timeout,
            upstream: upstream.clone(),
            level: families(f),
        })]
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Collector for MeterCollector {
    fn name(&self) -> &'static str {
        "meter_level"
    }
    fn account(&self) -> &str {
        &self.account
    }
    fn collect(&mut self, deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            let request = self.upstream.client().get(&self.url);
            let body = self
                .upstream
                .send(request, self.timeout, Some(deadline), &[])
                .await?;
            let level = std::str::from_utf8(&body)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| CollectError::decode("not a number"))?;
            self.level.set(&self.account, level);
            Ok(())
        }
        .boxed()
    }
    fn families(&self) -> Vec<&GaugeFamily> {
        vec![&self.level]
    }
    fn secrets(&self) -> Vec<secrecy::SecretString> {
        Vec::new()
    }
}

fn with_meter() -> Vec<&'static dyn Provider> {
    let mut list = providers::all();
    list.push(&METER);
    list
}

#[tokio::test]
async fn a_third_vendor_is_configured_checked_polled_and_exported() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/meter"))
        .respond_with(ResponseTemplate::new(200).set_body_string("42.5"))
        .mount(&upstream)
        .await;
    let dir = TempDir::new("meter");
    let file = dir.0.join("config.yaml");
    let yaml = format!(
        "meter:\n  - name: m1\n    base_url: {}\n    interval: 200ms\n    low_balance_threshold: 3\n",
        upstream.uri()
    );
    std::fs::write(&file, &yaml).unwrap();

    // --config.check knows the vendor once it is in the list, and only then.
    let report = check(&file, None, &with_meter());
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(report.valid[0].contains("1 Meter account"), "{report:?}");
    let without = check(&file, None, &providers::all());
    assert!(
        without.problems[0].contains("meter: unknown key"),
        "{without:?}"
    );
    std::fs::write(&file, format!("{yaml}    colour: blue\n")).unwrap();
    let broken = check(&file, None, &with_meter());
    assert!(
        broken.problems[0].contains("meter[0].colour: unknown key"),
        "{broken:?}"
    );
    std::fs::write(&file, &yaml).unwrap();

    // Polled and exported, with the self-metrics and the threshold like any vendor.
    let app = spawn_settings(Settings {
        providers: with_meter(),
        ..Settings::new(ConfigSource::File(file.clone()), "127.0.0.1:0")
    })
    .await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(s.value(r#"meter_level{account="m1"}"#), 42.5);
    assert_eq!(
        s.value(r#"balance_exporter_collector_success{account="m1",collector="meter_level"}"#),
        1.0
    );
    assert_eq!(
        s.value(r#"balance_exporter_low_balance_threshold{account="m1",provider="meter"}"#),
        3.0
    );
    app.stop().await;
}
