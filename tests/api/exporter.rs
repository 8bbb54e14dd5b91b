//! The exporter end to end: every SPEC metric with the upstream's exact numbers,
//! changes followed within one interval, endpoints.

use std::str::FromStr;
use std::time::Duration;

use balance_exporter::simulator::acedata::SimPackage;
use balance_exporter::simulator::{Route, SimOptions};
use rust_decimal::Decimal;

use crate::helpers::*;

/// Every metric family SPEC.md names for one Ace Data Cloud and one Yeastar account.
pub const SPEC_METRICS: &[&str] = &[
    "acedata_balance_credits",
    "acedata_balance_package_amount",
    "acedata_balance_package_price",
    "acedata_balance_updated_timestamp_seconds",
    "acedata_distribution_level",
    "acedata_distribution_commission_ratio",
    "acedata_distribution_invitee_spend",
    "acedata_distribution_reward",
    "acedata_distribution_next_level_spend_remaining",
    "acedata_distribution_level_threshold",
    "acedata_distribution_level_commission_ratio",
    "acedata_distribution_history_records",
    "acedata_distribution_history_reward",
    "acedata_distribution_history_order_amount",
    "acedata_distribution_history_last_record_timestamp_seconds",
    "yeastar_account_balance",
    "balance_exporter_collector_success",
    "balance_exporter_collector_last_success_timestamp_seconds",
    "balance_exporter_collector_duration_seconds",
    "balance_exporter_collector_errors_total",
    "balance_exporter_low_balance_threshold",
    "balance_exporter_build_info",
    "process_resident_memory_bytes",
];

/// Sum the history straight from the simulator's HTTP answers (not through the
/// exporter's parser): `(valid count, invalid count, valid reward, invalid reward,
/// valid amount, invalid amount)`.
async fn upstream_history(base: &str) -> [Decimal; 6] {
    let body = history_json(base).await;
    let mut t = [Decimal::ZERO; 6];
    let records = body["results"].as_array().unwrap();
    assert_eq!(records.len() as u64, body["count"].as_u64().unwrap());
    for r in records {
        let i = usize::from(r["invalid"].as_bool().unwrap());
        let dec = |v: &serde_json::Value| Decimal::from_str(&v.to_string()).unwrap();
        t[i] += Decimal::ONE;
        t[2 + i] += dec(&r["reward"]);
        t[4 + i] += dec(&r["order"]["price"]);
    }
    t
}

fn f(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap()
}

#[tokio::test]
async fn every_spec_metric_reports_the_upstream_numbers() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "1s", "")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    for m in SPEC_METRICS {
        assert!(s.has_metric(m), "{m} missing:\n{}", s.text);
    }
    let a = r#"{account="main"}"#;
    assert_eq!(s.value(&format!("acedata_balance_credits{a}")), 100.0);
    let pkg = r#"{account="main",package="Basic Package",package_id="pkg-uuid"}"#;
    assert_eq!(
        s.value(&format!("acedata_balance_package_amount{pkg}")),
        100.0
    );
    assert_eq!(s.value(&format!("acedata_balance_package_price{pkg}")), 9.9);
    assert_eq!(s.value(&format!("acedata_distribution_level{a}")), 1.0);
    assert_eq!(
        s.value(&format!("acedata_distribution_commission_ratio{a}")),
        0.1
    );
    assert_eq!(
        s.value(&format!("acedata_distribution_invitee_spend{a}")),
        500.0
    );
    assert_eq!(s.value(&format!("acedata_distribution_reward{a}")), 50.0);
    assert_eq!(
        s.value(&format!(
            "acedata_distribution_next_level_spend_remaining{a}"
        )),
        500.0
    );
    for (level, threshold, ratio) in [(1, 0.0, 0.1), (2, 1000.0, 0.15), (3, 5000.0, 0.2)] {
        let l = format!(r#"{{account="main",level="{level}"}}"#);
        assert_eq!(
            s.value(&format!("acedata_distribution_level_threshold{l}")),
            threshold
        );
        assert_eq!(
            s.value(&format!("acedata_distribution_level_commission_ratio{l}")),
            ratio
        );
    }
    let t = upstream_history(&sim.base_url()).await;
    for (i, invalid) in ["false", "true"].iter().enumerate() {
        let l = format!(r#"{{account="main",invalid="{invalid}"}}"#);
        assert_eq!(
            s.value(&format!("acedata_distribution_history_records{l}")),
            f(t[i])
        );
        assert_eq!(
            s.value(&format!("acedata_distribution_history_reward{l}")),
            f(t[2 + i])
        );
        assert_eq!(
            s.value(&format!("acedata_distribution_history_order_amount{l}")),
            f(t[4 + i])
        );
    }
    assert_eq!(
        s.value(r#"yeastar_account_balance{account="partner"}"#),
        675.24
    );
    assert_eq!(
        s.value(r#"balance_exporter_low_balance_threshold{account="main",provider="acedata"}"#),
        10.0
    );
    assert_eq!(
        s.value(r#"balance_exporter_low_balance_threshold{account="partner",provider="yeastar"}"#),
        50.0
    );
    for c in [
        "acedata_balance",
        "acedata_distribution_status",
        "acedata_distribution_levels",
        "acedata_distribution_history",
    ] {
        let l = format!(r#"{{account="main",collector="{c}"}}"#);
        assert_eq!(
            s.value(&format!("balance_exporter_collector_success{l}")),
            1.0,
            "{c}"
        );
        assert!(
            s.value(&format!(
                "balance_exporter_collector_last_success_timestamp_seconds{l}"
            )) > 1.7e9
        );
    }
    // HELP says cached values are refreshed on an interval.
    assert!(s.text.contains("# HELP acedata_balance_credits Ace Data Cloud global credit balance (points). (cached: refreshed on the poll interval"));
    app.stop().await;
}

#[tokio::test]
async fn changes_upstream_show_within_one_interval_and_vanished_label_sets_go() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "300ms", "")).await;
    app.wait_ready().await;
    sim.set_credits(ACE_TOKEN, "42.17");
    sim.set_yeastar_balance(YS_ID, 12.5);
    sim.set_distribution_price(ACE_TOKEN, 1234.56);
    sim.set_packages(
        ACE_TOKEN,
        vec![SimPackage {
            id: "pkg-2".into(),
            name: "Other".into(),
            amount: 7,
            price: "1.23".into(),
        }],
    );
    // Within one interval: the first poll that starts after the change shows it.
    for route in [
        Route::AcedataBalance,
        Route::YeastarBalance,
        Route::AcedataStatus,
    ] {
        one_full_poll(&sim, route, 1).await;
    }
    let s = app.samples().await;
    assert_eq!(s.value(r#"acedata_balance_credits{account="main"}"#), 42.17);
    assert_eq!(
        s.value(r#"yeastar_account_balance{account="partner"}"#),
        12.5
    );
    assert_eq!(
        s.value(r#"acedata_distribution_invitee_spend{account="main"}"#),
        1234.56
    );
    assert_eq!(
        s.value(r#"acedata_distribution_level{account="main"}"#),
        2.0
    );
    // 5000 - 1234.56, exact to the cent.
    let remaining = s.value(r#"acedata_distribution_next_level_spend_remaining{account="main"}"#);
    assert_eq!(remaining, 3765.44);
    assert_eq!(
        s.keys_of("acedata_balance_package_amount"),
        vec![
            r#"acedata_balance_package_amount{account="main",package="Other",package_id="pkg-2"}"#
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn top_level_has_no_remaining_spend() {
    let sim = simulator(SimOptions::default()).await;
    sim.set_distribution_price(ACE_TOKEN, 6000.0);
    let app = spawn_yaml(&yaml(&sim.base_url(), "1s", "")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(
        s.value(r#"acedata_distribution_level{account="main"}"#),
        3.0
    );
    assert!(
        !s.has_metric("acedata_distribution_next_level_spend_remaining"),
        "{}",
        s.text
    );
    app.stop().await;
}

#[tokio::test]
async fn missing_distribution_status_is_initialized_once() {
    let sim = simulator(SimOptions {
        status_initialized: false,
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&yaml(
        &sim.base_url(),
        "300ms",
        "    collectors: [distribution_status]",
    ))
    .await;
    app.wait_ready().await;
    let s = app
        .wait_for("status after init", |s| {
            s.has_metric("acedata_distribution_level")
        })
        .await;
    assert_eq!(
        s.value(r#"acedata_distribution_reward{account="main"}"#),
        50.0
    );
    // Several more cycles, and still only the one initialization.
    let polls = sim.request_count(Route::AcedataStatus);
    wait_until("two more status polls", || {
        sim.request_count(Route::AcedataStatus) >= polls + 2
    })
    .await;
    assert_eq!(sim.request_count(Route::AcedataStatusInit), 1);
    app.stop().await;
}

#[tokio::test]
async fn no_initialize_when_disabled() {
    let sim = simulator(SimOptions {
        status_initialized: false,
        ..SimOptions::default()
    })
    .await;
    let extra = "    initialize_distribution: false\n    collectors: [distribution_status]";
    let app = spawn_yaml(&yaml(&sim.base_url(), "300ms", extra)).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(sim.request_count(Route::AcedataStatusInit), 0);
    assert!(!s.has_metric("acedata_distribution_level"));
    assert_eq!(
        s.value(r#"balance_exporter_collector_success{account="main",collector="acedata_distribution_status"}"#),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn user_id_is_sent_on_list_calls_and_items_key_is_read() {
    let sim = simulator(SimOptions {
        require_user_id: true,
        list_key: balance_exporter::simulator::ListKey::Items,
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "1s", "    user_id: me")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    for route in [
        Route::AcedataStatus,
        Route::AcedataLevels,
        Route::AcedataHistory,
        Route::AcedataApplications,
    ] {
        let r = sim.last_request(route).unwrap();
        assert_eq!(r.query_param("user_id").as_deref(), Some("me"), "{route:?}");
    }
    assert_eq!(
        s.value(r#"acedata_distribution_level_threshold{account="main",level="3"}"#),
        5000.0
    );
    assert!(
        s.value(r#"acedata_distribution_history_records{account="main",invalid="false"}"#) > 0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn without_user_id_a_403_is_an_http_status_error() {
    let sim = simulator(SimOptions {
        require_user_id: true,
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&yaml(
        &sim.base_url(),
        "1s",
        "    collectors: [distribution_levels]",
    ))
    .await;
    app.wait_ready().await;
    let s = app.samples().await;
    let l = r#"{account="main",collector="acedata_distribution_levels""#;
    assert_eq!(
        s.value(&format!("balance_exporter_collector_success{l}}}")),
        0.0
    );
    assert_eq!(
        s.value(&format!(
            r#"balance_exporter_collector_errors_total{l},reason="http_status"}}"#
        )),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn endpoints_answer_by_path_and_method() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "1s", "")).await;
    let landing = app.get("/").await;
    assert_eq!(landing.status(), 200);
    let html = landing.text().await.unwrap();
    assert!(
        html.contains("balance-exporter") && html.contains(r#"href="/metrics""#),
        "{html}"
    );
    assert_eq!(app.get("/-/healthy").await.status(), 200);
    app.wait_ready().await;
    assert_eq!(app.get("/nope").await.status(), 404);
    let post = app
        .http
        .post(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(app.get("/-/reload").await.status(), 405);
    let m = app.get("/metrics").await;
    assert!(m.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    app.stop().await;
}

#[tokio::test]
async fn scrapes_cost_no_upstream_call() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "1h", "")).await;
    app.wait_ready().await;
    let before = sim.total_requests();
    for _ in 0..50 {
        app.metrics().await;
    }
    assert_eq!(sim.total_requests(), before);
    app.stop().await;
}

#[tokio::test]
async fn not_ready_until_every_collector_finished_its_first_attempt() {
    let sim = simulator(SimOptions {
        latency: Duration::from_millis(800),
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "2s", "")).await;
    assert_eq!(app.get("/-/ready").await.status(), 503);
    assert_eq!(app.get("/-/healthy").await.status(), 200);
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(
        s.keys_of("balance_exporter_collector_success").len(),
        9,
        "{}",
        s.text
    );
    app.stop().await;
}
