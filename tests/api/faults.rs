//! Upstream faults: each counted under its reason, last good values kept, series
//! removed after `max_staleness`, `Retry-After` honoured.

use std::time::Duration;

use balance_exporter::simulator::{Fault, Route, SimOptions};

use crate::helpers::*;

const CREDITS: &str = r#"acedata_balance_credits{account="main"}"#;

fn errors(collector: &str, account: &str, reason: &str) -> String {
    format!(
        r#"balance_exporter_collector_errors_total{{account="{account}",collector="{collector}",reason="{reason}"}}"#
    )
}

fn success(collector: &str, account: &str) -> String {
    format!(r#"balance_exporter_collector_success{{account="{account}",collector="{collector}"}}"#)
}

#[tokio::test]
async fn each_fault_is_counted_by_reason_and_last_good_values_stay() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "250ms", "    collectors: [balance]")).await;
    app.wait_ready().await;
    assert_eq!(app.samples().await.value(CREDITS), 100.0);
    let cases: Vec<(Fault, &str)> = vec![
        (Fault::Status(500), "http_status"),
        (Fault::Status(503), "http_status"),
        (Fault::Status(401), "unauthorized"),
        (Fault::RateLimited { retry_after: None }, "rate_limited"),
        (Fault::MalformedJson, "decode"),
        (Fault::WrongTypes, "decode"),
        (Fault::Html, "http_status"),
        (Fault::EmptyBody, "decode"),
        (Fault::HugeBody(6 * 1024 * 1024), "decode"),
        (Fault::Delay(Duration::from_millis(600)), "timeout"),
    ];
    for (fault, reason) in cases {
        let label = format!("{fault:?}");
        let before = app
            .samples()
            .await
            .get(&errors("acedata_balance", "main", reason))
            .unwrap_or(0.0);
        sim.inject_fault(Route::AcedataBalance, fault, Some(1));
        let s = app
            .wait_for(&label, |s| {
                s.get(&errors("acedata_balance", "main", reason))
                    .unwrap_or(0.0)
                    > before
            })
            .await;
        assert_eq!(s.value(CREDITS), 100.0, "{label}: last good value kept");
        // It recovers on the next attempt.
        app.wait_for("recovery", |s| {
            s.get(&success("acedata_balance", "main")) == Some(1.0)
        })
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failure_never_stops_another_collector() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "200ms", "")).await;
    app.wait_ready().await;
    sim.inject_fault(Route::AcedataBalance, Fault::Status(500), None);
    sim.set_yeastar_balance(YS_ID, 1.5);
    // Both events, in whichever order the two tasks happen to run: the balance
    // collector has hit the fault, and Yeastar has followed its change meanwhile.
    let s = app
        .wait_for("acedata fails while yeastar follows", |s| {
            s.get(&success("acedata_balance", "main")) == Some(0.0)
                && s.get(r#"yeastar_account_balance{account="partner"}"#) == Some(1.5)
        })
        .await;
    assert_eq!(s.value(&success("yeastar_balance", "partner")), 1.0);
    assert_eq!(
        s.value(&success("acedata_distribution_levels", "main")),
        1.0
    );
    assert_eq!(s.value(CREDITS), 100.0, "last good value kept");
    app.stop().await;
}

#[tokio::test]
async fn series_go_away_after_max_staleness() {
    let sim = simulator(SimOptions::default()).await;
    let cfg = format!(
        r#"
acedata:
  - name: main
    base_url: {}
    token: {ACE_TOKEN}
    interval: 200ms
    timeout: 200ms
    max_staleness: 1s
    collectors: [balance, distribution_levels]
"#,
        sim.base_url()
    );
    let app = spawn_yaml(&cfg).await;
    app.wait_ready().await;
    assert!(app.samples().await.has_metric("acedata_balance_credits"));
    sim.inject_fault(Route::AcedataBalance, Fault::Status(502), None);
    // Still there after the first failure, unless max_staleness has already passed
    // since the last success (a slow machine may take that long to look).
    let s = app
        .wait_for("failure", |s| {
            s.get(&success("acedata_balance", "main")) == Some(0.0)
        })
        .await;
    let last_success = s.value(
        r#"balance_exporter_collector_last_success_timestamp_seconds{account="main",collector="acedata_balance"}"#,
    );
    assert!(
        s.has_metric("acedata_balance_credits") || unix_now() - last_success >= 1.0,
        "removed before max_staleness:\n{}",
        s.text
    );
    // …gone once max_staleness has passed; the other collector's series stay.
    let s = app
        .wait_for("stale series removed", |s| {
            !s.has_metric("acedata_balance_credits")
                && !s.has_metric("acedata_balance_package_amount")
        })
        .await;
    assert!(s.has_metric("acedata_distribution_level_threshold"));
    assert_eq!(s.value(&success("acedata_balance", "main")), 0.0);
    // Back when upstream recovers.
    sim.clear_faults();
    app.wait_for("back", |s| s.get(CREDITS) == Some(100.0))
        .await;
    app.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "100ms", "    collectors: [balance]")).await;
    app.wait_ready().await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited {
            retry_after: Some(2),
        },
        None,
    );
    app.wait_for("rate limited", |s| {
        s.get(&errors("acedata_balance", "main", "rate_limited"))
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    // Every request from the first 429 on is answered 429. Wait for the next one and
    // measure the spacing on the upstream's side: at least the 2 s asked for (ignoring
    // Retry-After, the 100 ms interval would put it ~100 ms after the last).
    let since = sim.request_count(Route::AcedataBalance);
    app.wait_for("the next request", |_| {
        sim.request_count(Route::AcedataBalance) > since
    })
    .await;
    let [.., a, b] = sim.request_times(Route::AcedataBalance)[..] else {
        unreachable!("at least two requests were counted")
    };
    let gap = b - a;
    assert!(
        gap >= Duration::from_secs(2),
        "hammered a rate-limited upstream: requests {gap:?} apart"
    );
    app.stop().await;
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = format!(
        "acedata:\n  - name: main\n    base_url: http://127.0.0.1:{port}\n    token: {ACE_TOKEN}\n    interval: 1s\n    collectors: [balance]\n"
    );
    let app = spawn_yaml(&cfg).await;
    app.wait_ready().await;
    let s = app.samples().await;
    // At least the first attempt's; a slow machine may have made another since.
    assert!(s.value(&errors("acedata_balance", "main", "connect")) >= 1.0);
    assert!(!s.has_metric("acedata_balance_credits"));
    app.stop().await;
}
