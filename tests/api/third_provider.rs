//! The provider seam, proved from outside the crate: a third vendor defined in a few
//! dozen lines (its `Provider`, `Account` and `Collector` in `vendor.rs`, its poll
//! here), added to the one list of vendors, is configured, checked by
//! `--config.check`, polled and exported without a change to the core.

use balance_exporter::app::{ConfigSource, Settings};
use balance_exporter::cli::check;
use balance_exporter::collector::CollectError;
use balance_exporter::providers;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::vendor::{with, Attempt, Vendor};

/// A vendor whose API answers `GET /meter` with a bare number.
static METER: Vendor = Vendor {
    name: "meter",
    title: "Meter",
    gauge: "meter_level",
    help: "Meter level.",
    poll: read_meter,
};

fn read_meter(a: &Attempt) -> BoxFuture<'_, Result<f64, CollectError>> {
    async move {
        let request = a.upstream.client().get(format!("{}/meter", a.base_url));
        let body = a
            .upstream
            .send(request, a.timeout, Some(a.deadline), &[])
            .await?;
        std::str::from_utf8(&body)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| CollectError::decode("not a number"))
    }
    .boxed()
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
    let report = check(&file, None, &with(&METER));
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(report.valid[0].contains("1 Meter account"), "{report:?}");
    let without = check(&file, None, &providers::all());
    assert!(
        without.problems[0].contains("meter: unknown key"),
        "{without:?}"
    );
    std::fs::write(&file, format!("{yaml}    colour: blue\n")).unwrap();
    let broken = check(&file, None, &with(&METER));
    assert!(
        broken.problems[0].contains("meter[0].colour: unknown key"),
        "{broken:?}"
    );
    std::fs::write(&file, &yaml).unwrap();

    // Polled and exported, with the self-metrics and the threshold like any vendor.
    let app = spawn_settings(Settings {
        providers: with(&METER),
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
