//! Spend, top-up orders and auto-recharge (`acedata_usage`, `acedata_orders`,
//! `acedata_auto_recharge`) through the whole exporter: exact values from both answer
//! shapes, the upstream cost per interval, the usage cadence of its own, faults on
//! every endpoint counted by reason with the last values kept, and changes followed.

use balance_exporter::simulator::{Fault, ListKey, Route, SimOptions, Simulator, UsageShape};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::helpers::*;

const SPEND: &str = "    collectors: [usage, orders, auto_recharge]\n";

/// The spend collectors, and the routes they poll.
const COLLECTORS: [&str; 3] = ["acedata_usage", "acedata_orders", "acedata_auto_recharge"];
const ROUTES: [Route; 3] = [
    Route::AcedataUsage,
    Route::AcedataOrders,
    Route::AcedataAutoRecharge,
];

/// Account `main` at `sim` with the spend collectors, every `interval`, and the
/// account's `extra` lines.
fn spend_yaml(sim: &Simulator, interval: &str, extra: &str) -> String {
    yaml(&sim.base_url(), interval, &format!("{SPEND}{extra}"))
}

/// An exporter of [`spend_yaml`], ready.
async fn spawn_spend(sim: &Simulator, interval: &str, extra: &str) -> TestApp {
    let app = spawn_yaml(&spend_yaml(sim, interval, extra)).await;
    app.wait_ready().await;
    app
}

fn errors(s: &Samples, collector: &str, reason: &str) -> f64 {
    s.get(&format!(
        r#"balance_exporter_collector_errors_total{{account="main",collector="{collector}",reason="{reason}"}}"#
    ))
    .unwrap_or(0.0)
}

fn success(s: &Samples, collector: &str) -> Option<f64> {
    s.get(&format!(
        r#"balance_exporter_collector_success{{account="main",collector="{collector}"}}"#
    ))
}

fn usage(name: &str, api_id: &str, api: &str) -> String {
    format!(r#"acedata_usage_{name}_credits{{account="main",api="{api}",api_id="{api_id}"}}"#)
}

const CHAT: &str = r#"Chat \"GPT\"\n翻译 ✓"#;

/// Two items a page: six orders in the window are three pages, three
/// auto-recharge configurations two.
fn paged() -> SimOptions {
    SimOptions {
        max_page_size: Some(2),
        ..SimOptions::default()
    }
}

/// The seed rows' month-to-date sums, from the seed's definition (20 a day on
/// `api-mj` before today, 96.25 today; 4.2 a day on `api-suno`; `api-chat` 2 and 9
/// days ago; `api-legacy` 3 days ago), for today's day of the month.
fn month_to_date(today: time::Date) -> [(&'static str, &'static str, Option<f64>); 4] {
    let dom = i64::from(today.day());
    let in_month = |days_ago: i64| days_ago < dom;
    let chat = [(2, 150), (9, 75)]
        .iter()
        .filter(|(d, _)| in_month(*d))
        .map(|(_, c)| c)
        .sum::<i64>();
    [
        (
            "api-mj",
            "Midjourney Imagine",
            Some((9625 + 2000 * (dom - 1)) as f64 / 100.0),
        ),
        ("api-suno", "Suno Audio", Some((420 * dom) as f64 / 100.0)),
        ("api-chat", CHAT, (chat > 0).then_some(chat as f64 / 100.0)),
        ("api-legacy", "api-legacy", in_month(3).then_some(2.0)),
    ]
}

fn assert_usage(s: &Samples) {
    let today = OffsetDateTime::now_utc().date();
    assert_eq!(
        s.get(&usage("today", "api-mj", "Midjourney Imagine")),
        Some(96.25),
        "{}",
        s.text
    );
    assert_eq!(s.get(&usage("today", "api-suno", "Suno Audio")), Some(4.2));
    assert_eq!(
        s.keys_of("acedata_usage_today_credits").len(),
        2,
        "no row today: no series"
    );
    assert_eq!(
        s.get(&usage("last_7d", "api-mj", "Midjourney Imagine")),
        Some(216.25)
    );
    assert_eq!(
        s.get(&usage("last_7d", "api-suno", "Suno Audio")),
        Some(29.4)
    );
    assert_eq!(s.get(&usage("last_7d", "api-chat", CHAT)), Some(1.5));
    assert_eq!(
        s.get(&usage("last_7d", "api-legacy", "api-legacy")),
        Some(2.0)
    );
    assert_eq!(s.keys_of("acedata_usage_last_7d_credits").len(), 4);
    for (id, name, want) in month_to_date(today) {
        assert_eq!(
            s.get(&usage("month_to_date", id, name)),
            want,
            "{id} on {today}"
        );
    }
}

fn assert_orders(s: &Samples) {
    let order = |state: &str| {
        s.get(&format!(
            r#"acedata_orders_last_30d{{account="main",state="{state}"}}"#
        ))
    };
    for (state, n) in [
        ("Pending", 1.0),
        ("Paid", 0.0),
        ("Finished", 2.0),
        ("Expired", 1.0),
        ("Failed", 1.0),
        ("Refunded", 1.0),
    ] {
        assert_eq!(order(state), Some(n), "{state}\n{}", s.text);
    }
    assert_eq!(
        s.value(r#"acedata_orders_finished_price_last_30d{account="main"}"#),
        69.89
    );
    let now = unix_now();
    let ts = |key: &str| s.value(key);
    let near = |t: f64, age: f64| (t - (now - age)).abs() < 120.0;
    assert!(near(
        ts(r#"acedata_order_oldest_pending_timestamp_seconds{account="main"}"#),
        7200.0
    ));
    assert!(near(
        ts(r#"acedata_order_last_created_timestamp_seconds{account="main",state="Failed"}"#),
        3.0 * 3600.0
    ));
    assert!(near(
        ts(r#"acedata_order_last_created_timestamp_seconds{account="main",state="Finished"}"#),
        2.0 * 86400.0
    ));
    assert!(s
        .get(r#"acedata_order_last_created_timestamp_seconds{account="main",state="Paid"}"#)
        .is_none());
}

fn assert_auto_recharge(s: &Samples) {
    for (app, status) in [
        ("0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a", "Active"),
        ("00000000-0000-4000-b000-000000000002", "Paused"),
        ("00000000-0000-4000-b000-000000000006", "Disabled"),
    ] {
        assert_eq!(
            s.get(&format!(r#"acedata_application_auto_recharge{{account="main",application_id="{app}",status="{status}"}}"#)),
            Some(1.0),
            "{}",
            s.text
        );
    }
    assert_eq!(s.keys_of("acedata_application_auto_recharge").len(), 3);
}

#[tokio::test]
async fn exact_values_and_the_upstream_cost_of_one_poll() {
    let sim = simulator(paged()).await;
    let app = spawn_spend(&sim, "1h", "").await;
    let s = app.samples().await;
    for c in COLLECTORS {
        assert_eq!(success(&s, c), Some(1.0), "{c}\n{}", s.text);
    }
    assert_usage(&s);
    assert_orders(&s);
    assert_auto_recharge(&s);

    // One aggregate request, the window from the earlier of the month's first day
    // and six days ago; every order page of the last 30 days; every config page.
    assert_eq!(sim.request_count(Route::AcedataUsage), 1);
    assert_eq!(
        sim.request_count(Route::AcedataOrders),
        3,
        "6 orders, 2 a page"
    );
    assert_eq!(
        sim.request_count(Route::AcedataAutoRecharge),
        2,
        "3 configs, 2 a page"
    );
    let today = OffsetDateTime::now_utc().date();
    let start = today.replace_day(1).unwrap().min(today - Duration::days(6));
    let req = sim.last_request(Route::AcedataUsage).unwrap();
    assert_eq!(
        req.query_param("created_at_from").unwrap(),
        format!("{start}T00:00:00Z")
    );
    assert_eq!(req.query_param("user_id").as_deref(), Some("me"));
    let req = sim.last_request(Route::AcedataOrders).unwrap();
    let from = OffsetDateTime::parse(
        &req.query_param("created_at_from").unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((from.unix_timestamp() as f64 - (unix_now() - 30.0 * 86400.0)).abs() < 120.0);
    assert_eq!(req.query_param("user_id").as_deref(), Some("me"));
    assert_eq!(req.query_param("limit").as_deref(), Some("100"));
    assert_eq!(req.query_param("offset").as_deref(), Some("4"));
    assert_eq!(
        sim.last_request(Route::AcedataAutoRecharge)
            .unwrap()
            .query_param("user_id")
            .as_deref(),
        Some("me")
    );
    // Scrapes cost nothing upstream.
    for _ in 0..10 {
        app.metrics().await;
    }
    assert_eq!(sim.request_count(Route::AcedataUsage), 1);
    assert_eq!(sim.request_count(Route::AcedataOrders), 3);
    app.stop().await;
}

#[tokio::test]
async fn the_clients_shape_and_a_configured_user_id() {
    let sim = simulator(SimOptions {
        usage_shape: UsageShape::Items,
        list_key: ListKey::Items,
        require_user_id: true,
        ..paged()
    })
    .await;
    let app = spawn_spend(&sim, "1h", "    user_id: u-1\n").await;
    let s = app.samples().await;
    assert_usage(&s);
    assert_orders(&s);
    assert_auto_recharge(&s);
    for route in ROUTES {
        let req = sim.last_request(route).unwrap();
        assert_eq!(
            req.query_param("user_id").as_deref(),
            Some("u-1"),
            "{route:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn usage_keeps_its_own_cadence() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_spend(&sim, "100ms", "    usage_interval: 1h\n").await;
    // Several order polls (one page each) later, still the one aggregate request.
    one_full_poll(&sim, Route::AcedataOrders, 1).await;
    one_full_poll(&sim, Route::AcedataOrders, 1).await;
    assert_eq!(sim.request_count(Route::AcedataUsage), 1);
    let status = app.get("/status?format=json").await.text().await.unwrap();
    assert!(status.contains("acedata_usage"), "a status row: {status}");
    app.stop().await;
}

#[tokio::test]
async fn a_fault_on_each_endpoint_is_counted_by_reason_and_the_last_values_stay() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_spend(&sim, "100ms", "    usage_interval: 100ms\n").await;
    let mj = usage("today", "api-mj", "Midjourney Imagine");
    app.wait_for("first polls", |s| s.get(&mj) == Some(96.25))
        .await;

    // A date that is not YYYY-MM-DD: decode.
    sim.inject_fault(Route::AcedataUsage, Fault::WrongTypes, None);
    sim.inject_fault(Route::AcedataOrders, Fault::Status(500), None);
    sim.inject_fault(Route::AcedataAutoRecharge, Fault::MalformedJson, None);
    let s = app
        .wait_for("each fault counted", |s| {
            errors(s, "acedata_usage", "decode") >= 1.0
                && errors(s, "acedata_orders", "http_status") >= 1.0
                && errors(s, "acedata_auto_recharge", "decode") >= 1.0
        })
        .await;
    for c in COLLECTORS {
        assert_eq!(success(&s, c), Some(0.0), "{c}");
    }
    assert_usage(&s);
    assert_orders(&s);
    assert_auto_recharge(&s);

    sim.clear_faults();
    sim.inject_fault(
        Route::AcedataOrders,
        Fault::RateLimited { retry_after: None },
        Some(1),
    );
    sim.inject_fault(Route::AcedataAutoRecharge, Fault::Status(401), Some(1));
    app.wait_for("rate limit and auth failures counted", |s| {
        errors(s, "acedata_orders", "rate_limited") >= 1.0
            && errors(s, "acedata_auto_recharge", "unauthorized") >= 1.0
    })
    .await;
    app.wait_for("recovered", |s| {
        COLLECTORS.iter().all(|c| success(s, c) == Some(1.0))
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn changes_are_followed_and_gone_label_sets_removed() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_spend(&sim, "100ms", "    usage_interval: 100ms\n").await;
    app.wait_for("first polls", |s| {
        s.has_metric("acedata_application_auto_recharge")
    })
    .await;

    sim.set_usage(
        ACE_TOKEN,
        vec![
            (0, "api-new".into(), json!("7.07")),
            (0, "api-new".into(), json!(0.01)),
        ],
    );
    sim.add_order(
        ACE_TOKEN,
        json!({"id": "ord-x", "state": "Chargeback", "price": "1.00", "created_at": "2099-01-01T00:00:00Z"}),
    );
    sim.set_auto_recharge(
        ACE_TOKEN,
        vec![json!({"id": "ar-9", "application_id": "app-9", "status": "Active"})],
    );
    let s = app
        .wait_for("the new data", |s| {
            s.get(&usage("today", "api-new", "api-new")) == Some(7.08)
                && s.get(r#"acedata_orders_last_30d{account="main",state="Chargeback"}"#)
                    == Some(1.0)
                && s.keys_of("acedata_application_auto_recharge").len() == 1
        })
        .await;
    assert_eq!(
        s.keys_of("acedata_usage_today_credits").len(),
        1,
        "gone APIs removed"
    );
    assert_eq!(s.keys_of("acedata_usage_last_7d_credits").len(), 1);
    assert_eq!(
        s.value(r#"acedata_application_auto_recharge{account="main",application_id="app-9",status="Active"}"#),
        1.0
    );
    // The six documented states stay, the undocumented one joins them.
    assert_eq!(s.keys_of("acedata_orders_last_30d").len(), 7);
    app.stop().await;
}

#[tokio::test]
async fn spend_series_go_once_max_staleness_has_passed_without_a_success() {
    let sim = simulator(SimOptions::default()).await;
    let config = spend_yaml(&sim, "100ms", "    usage_interval: 200ms\n")
        .replace("max_staleness: 1h", "max_staleness: 1s");
    let app = spawn_yaml(&config).await;
    app.wait_ready().await;
    app.wait_for("first polls", |s| {
        s.has_metric("acedata_usage_today_credits")
            && s.has_metric("acedata_orders_last_30d")
            && s.has_metric("acedata_application_auto_recharge")
    })
    .await;
    for route in ROUTES {
        sim.inject_fault(route, Fault::Status(500), None);
    }
    let s = app
        .wait_for("every spend series gone", |s| {
            [
                "acedata_usage_today_credits",
                "acedata_usage_last_7d_credits",
                "acedata_usage_month_to_date_credits",
                "acedata_orders_last_30d",
                "acedata_orders_finished_price_last_30d",
                "acedata_order_last_created_timestamp_seconds",
                "acedata_order_oldest_pending_timestamp_seconds",
                "acedata_application_auto_recharge",
            ]
            .iter()
            .all(|m| !s.has_metric(m))
        })
        .await;
    for c in COLLECTORS {
        assert_eq!(success(&s, c), Some(0.0), "{c}");
        assert!(errors(&s, c, "http_status") >= 1.0, "{c}");
    }
    app.stop().await;
}
