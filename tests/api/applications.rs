//! Service quotas (`acedata_applications`) through the whole exporter: every
//! application and API key across several pages, exact numbers, changes followed,
//! vanished ones dropped, faults counted with last values kept, `user_id`, thresholds,
//! and the API keys' tokens never shown.

use std::time::Duration;

use balance_exporter::simulator::acedata::APPLICATION_TOKEN_PREFIX;
use balance_exporter::simulator::{Fault, Route, SimOptions};
use serde_json::{json, Value};

use crate::helpers::*;

const MJ: &str = "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a";
const SUNO: &str = "00000000-0000-4000-b000-000000000002";

/// Three applications a page: the seven seed applications span three pages.
fn paged() -> SimOptions {
    SimOptions {
        max_page_size: Some(3),
        ..SimOptions::default()
    }
}

fn config(base: &str, interval: &str, extra: &str) -> String {
    yaml(
        base,
        interval,
        &format!("    collectors: [applications]\n{extra}"),
    )
}

fn success(s: &Samples) -> Option<f64> {
    s.get(r#"balance_exporter_collector_success{account="main",collector="acedata_applications"}"#)
}

fn errors(s: &Samples, reason: &str) -> f64 {
    s.get(&format!(
        r#"balance_exporter_collector_errors_total{{account="main",collector="acedata_applications",reason="{reason}"}}"#
    ))
    .unwrap_or(0.0)
}

fn service(app: &Value) -> String {
    app["service"]["alias"]
        .as_str()
        .unwrap_or_else(|| app["service_id"].as_str().unwrap())
        .to_string()
}

fn app_key(name: &str, app: &Value) -> String {
    format!(
        r#"{name}{{account="main",application_id="{}",service="{}"}}"#,
        app["id"].as_str().unwrap(),
        service(app)
    )
}

fn key_key(name: &str, app: &Value, key: &Value) -> String {
    format!(
        r#"{name}{{account="main",application_id="{}",credential_id="{}",service="{}"}}"#,
        app["id"].as_str().unwrap(),
        key["id"].as_str().unwrap(),
        service(app)
    )
}

fn flag(v: &Value) -> f64 {
    if v.as_bool().unwrap() {
        1.0
    } else {
        0.0
    }
}

fn rfc3339(v: &Value) -> Option<f64> {
    let t =
        time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339)
            .unwrap();
    Some(t.unix_timestamp() as f64)
}

/// Every application and key of `apps` (the simulator's JSON) is exported with exactly
/// its numbers, and nothing else is.
fn assert_exported(s: &Samples, apps: &[Value]) {
    let mut app_series = 0;
    let mut key_series = 0;
    for app in apps {
        let num = |f: &str| app[f].as_f64().unwrap();
        assert_eq!(
            s.value(&app_key("acedata_application_remaining_amount", app)),
            num("remaining_amount")
        );
        assert_eq!(
            s.value(&app_key("acedata_application_used_amount", app)),
            num("used_amount")
        );
        assert_eq!(
            s.value(&app_key("acedata_application_disabled", app)),
            flag(&app["disabled"])
        );
        assert_eq!(
            s.value(&app_key("acedata_application_allow_consume_global", app)),
            flag(&app["allow_consume_global"])
        );
        assert_eq!(
            s.get(&app_key(
                "acedata_application_expiry_timestamp_seconds",
                app
            )),
            rfc3339(&app["expired_at"])
        );
        let info = format!(
            r#"acedata_application_info{{account="main",application_id="{}",scope="{}",service="{}",service_name="{}",type="{}"}}"#,
            app["id"].as_str().unwrap(),
            app["scope"].as_str().unwrap(),
            service(app),
            app["service"]["name"].as_str().unwrap(),
            app["type"].as_str().unwrap(),
        );
        assert_eq!(s.value(&info), 1.0);
        app_series += 1;
        for key in app["credentials"].as_array().unwrap() {
            assert_eq!(
                s.value(&key_key("acedata_credential_used_amount", app, key)),
                key["used_amount"].as_f64().unwrap()
            );
            assert_eq!(
                s.get(&key_key("acedata_credential_limit_amount", app, key)),
                key["limited_amount"].as_f64()
            );
            assert_eq!(
                s.get(&key_key(
                    "acedata_credential_expiry_timestamp_seconds",
                    app,
                    key
                )),
                rfc3339(&key["expired_at"])
            );
            key_series += 1;
        }
    }
    for name in [
        "acedata_application_remaining_amount",
        "acedata_application_used_amount",
        "acedata_application_disabled",
        "acedata_application_allow_consume_global",
        "acedata_application_info",
    ] {
        assert_eq!(s.keys_of(name).len(), app_series, "{name}");
    }
    assert_eq!(
        s.keys_of("acedata_credential_used_amount").len(),
        key_series
    );
}

#[tokio::test]
async fn every_application_and_key_of_every_page_exactly_one_request_per_page() {
    let sim = simulator(paged()).await;
    // One poll only (the interval is an hour): the request count is exact.
    let app = spawn_yaml(&config(&sim.base_url(), "1h", "")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(success(&s), Some(1.0), "{}", s.text);
    let apps = sim.applications(ACE_TOKEN);
    assert_eq!(apps.len(), 7);
    assert_exported(&s, &apps);
    assert_eq!(
        sim.request_count(Route::AcedataApplications),
        3,
        "7 applications, 3 a page"
    );
    // Spot checks written out by hand, in case the JSON reading above shared a mistake.
    assert_eq!(
        s.value(&format!(r#"acedata_application_remaining_amount{{account="main",application_id="{MJ}",service="midjourney"}}"#)),
        312.5
    );
    assert_eq!(
        s.value(r#"acedata_credential_used_amount{account="main",application_id="00000000-0000-4000-b000-000000000003",credential_id="cred-4",service="openai"}"#),
        95.5
    );
    assert_eq!(
        s.value(r#"acedata_application_remaining_amount{account="main",application_id="00000000-0000-4000-b000-000000000005",service="svc-serp"}"#),
        77.77
    );
    assert_eq!(
        s.value(&format!(r#"acedata_application_expiry_timestamp_seconds{{account="main",application_id="{SUNO}",service="suno"}}"#)),
        1_725_148_800.0
    );
    // No threshold configured: no threshold series.
    assert!(!s.has_metric("balance_exporter_application_low_threshold"));
    // user_id=me is sent when none is configured, with limit and offset.
    let offsets: Vec<String> = sim
        .request_log()
        .iter()
        .filter(|r| r.route == Some(Route::AcedataApplications))
        .map(|r| {
            assert_eq!(r.query_param("user_id").as_deref(), Some("me"));
            assert_eq!(r.query_param("limit").as_deref(), Some("100"));
            r.query_param("offset").unwrap()
        })
        .collect();
    assert_eq!(offsets, ["0", "3", "6"]);
    // Scrapes cost nothing upstream.
    for _ in 0..20 {
        app.metrics().await;
    }
    assert_eq!(sim.request_count(Route::AcedataApplications), 3);
    app.stop().await;
}

#[tokio::test]
async fn the_configured_user_id_is_sent_and_items_are_read_too() {
    let sim = simulator(SimOptions {
        require_user_id: true,
        list_key: balance_exporter::simulator::ListKey::Items,
        ..paged()
    })
    .await;
    let app = spawn_yaml(&config(&sim.base_url(), "1h", "    user_id: u-1\n")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(success(&s), Some(1.0), "{}", s.text);
    assert_exported(&s, &sim.applications(ACE_TOKEN));
    let last = sim.last_request(Route::AcedataApplications).unwrap();
    assert_eq!(last.query_param("user_id").as_deref(), Some("u-1"));
    app.stop().await;
}

#[tokio::test]
async fn changes_are_followed_and_vanished_applications_and_keys_dropped() {
    let sim = simulator(paged()).await;
    let app = spawn_yaml(&config(&sim.base_url(), "200ms", "")).await;
    app.wait_ready().await;
    let remaining = format!(
        r#"acedata_application_remaining_amount{{account="main",application_id="{MJ}",service="midjourney"}}"#
    );
    let key = format!(
        r#"acedata_credential_used_amount{{account="main",application_id="{MJ}",credential_id="cred-1",service="midjourney"}}"#
    );
    let suno = format!(
        r#"acedata_application_used_amount{{account="main",application_id="{SUNO}",service="suno"}}"#
    );
    app.wait_for("first poll", |s| s.get(&remaining) == Some(312.5))
        .await;

    sim.set_application_amounts(ACE_TOKEN, MJ, 0.1, 499.9);
    let s = app
        .wait_for("the new amounts", |s| s.get(&remaining) == Some(0.1))
        .await;
    assert_eq!(
        s.value(&format!(r#"acedata_application_used_amount{{account="main",application_id="{MJ}",service="midjourney"}}"#)),
        499.9
    );

    sim.remove_credential(ACE_TOKEN, MJ, "cred-1");
    sim.remove_application(ACE_TOKEN, SUNO);
    // An eighth application: the list still spans three pages.
    sim.add_application(
        ACE_TOKEN,
        json!({
            "id": "app-new", "service_id": "svc-new", "type": "Usage", "scope": "Individual",
            "remaining_amount": 0.3, "used_amount": 0.7, "paid": true, "disabled": false,
            "allow_consume_global": false, "expired_at": null,
            "service": {"id": "svc-new", "alias": "newsvc", "name": "New"},
            "packages": [],
            "credentials": [{"id": "cred-new", "token": format!("{APPLICATION_TOKEN_PREFIX}new"),
                             "type": "Token", "host": null, "limited_amount": 1,
                             "used_amount": 0.7, "expired_at": null}],
        }),
    );
    let s = app
        .wait_for("suno and cred-1 gone, app-new there", |s| {
            s.get(&key).is_none()
                && s.get(&suno).is_none()
                && s.has_metric("acedata_credential_limit_amount")
                && s.keys_of("acedata_application_info")
                    .iter()
                    .any(|k| k.contains("app-new"))
        })
        .await;
    assert_exported(&s, &sim.applications(ACE_TOKEN));
    assert!(
        !s.text.contains(SUNO),
        "every series of the vanished application is gone"
    );
    assert!(
        !s.text.contains("cred-1"),
        "every series of the vanished key is gone"
    );
    app.stop().await;
}

#[tokio::test]
async fn faults_are_counted_by_reason_and_last_values_stay() {
    let sim = simulator(paged()).await;
    let app = spawn_yaml(&config(&sim.base_url(), "200ms", "")).await;
    app.wait_ready().await;
    let apps = sim.applications(ACE_TOKEN);
    for (fault, reason) in [
        (Fault::Status(500), "http_status"),
        (Fault::Status(403), "http_status"),
        (Fault::Status(401), "unauthorized"),
        (Fault::WrongTypes, "decode"),
        (Fault::MalformedJson, "decode"),
    ] {
        let label = format!("{fault:?}");
        let before = errors(&app.samples().await, reason);
        // Every request fails until cleared, retries included.
        sim.inject_fault(Route::AcedataApplications, fault, None);
        let s = app.wait_for(&label, |s| errors(s, reason) > before).await;
        assert_eq!(success(&s), Some(0.0), "{label}");
        assert_exported(&s, &apps);
        sim.clear_faults();
        app.wait_for("recovery", |s| success(s) == Some(1.0)).await;
    }
    // A fault on a later page fails the whole poll: nothing half-written. The first
    // request after this is answered normally, every later one fails, so no poll can
    // succeed from here on and the new amount must never show.
    let remaining = app_key("acedata_application_remaining_amount", &apps[0]);
    let before = errors(&app.samples().await, "http_status");
    sim.inject_fault(
        Route::AcedataApplications,
        Fault::Delay(Duration::ZERO),
        Some(1),
    );
    sim.inject_fault(Route::AcedataApplications, Fault::Status(500), None);
    sim.set_application_amounts(ACE_TOKEN, MJ, 1.0, 499.0);
    let s = app
        .wait_for("a later page fails", |s| {
            errors(s, "http_status") > before + 1.0
        })
        .await;
    assert_eq!(success(&s), Some(0.0));
    assert_eq!(s.value(&remaining), 312.5);
    assert_exported(&s, &apps);
    app.stop().await;
}

#[tokio::test]
async fn thresholds_one_series_per_service_the_account_has() {
    let sim = simulator(paged()).await;
    let app = spawn_yaml(&config(
        &sim.base_url(),
        "200ms",
        "    application_thresholds: { midjourney: 100, \"*\": 20, unused: 5 }\n",
    ))
    .await;
    app.wait_ready().await;
    let s = app.samples().await;
    let threshold = |svc: &str| {
        format!(r#"balance_exporter_application_low_threshold{{account="main",service="{svc}"}}"#)
    };
    assert_eq!(s.value(&threshold("midjourney")), 100.0);
    for svc in ["suno", "openai", "luma", "svc-serp", "kling", "flux"] {
        assert_eq!(s.value(&threshold(svc)), 20.0, "{svc}");
    }
    assert_eq!(
        s.keys_of("balance_exporter_application_low_threshold")
            .len(),
        7
    );
    assert!(
        s.get(&threshold("unused")).is_none(),
        "only services the account has"
    );

    // A service that goes away takes its threshold series with it.
    sim.remove_application(ACE_TOKEN, SUNO);
    app.wait_for("suno's threshold gone", |s| {
        s.get(&threshold("suno")).is_none()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn no_api_key_token_reaches_metrics_even_through_faults() {
    let sim = simulator(paged()).await;
    let app = spawn_yaml(&config(&sim.base_url(), "200ms", "")).await;
    app.wait_ready().await;
    let tokens: Vec<String> = sim
        .applications(ACE_TOKEN)
        .iter()
        .flat_map(|a| a["credentials"].as_array().unwrap().clone())
        .map(|k| k["token"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), 7);
    let mut texts = vec![app.metrics().await];
    // The wrong-types answer carries a token in a wrongly typed key.
    sim.inject_fault(Route::AcedataApplications, Fault::WrongTypes, None);
    let before = errors(&app.samples().await, "decode");
    let s = app
        .wait_for("decode error", |s| errors(s, "decode") > before)
        .await;
    texts.push(s.text);
    for text in texts {
        assert!(!text.contains(APPLICATION_TOKEN_PREFIX), "{text}");
        assert!(!text.contains("sk-"), "{text}");
        for t in &tokens {
            assert!(!text.contains(t.as_str()));
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn every_application_series_goes_after_max_staleness_and_comes_back() {
    let sim = simulator(paged()).await;
    let cfg = format!(
        r#"
acedata:
  - name: main
    base_url: {}
    token: {ACE_TOKEN}
    interval: 200ms
    timeout: 200ms
    max_staleness: 1s
    collectors: [applications, distribution_levels]
    application_thresholds: {{ "*": 20 }}
"#,
        sim.base_url()
    );
    let app = spawn_yaml(&cfg).await;
    app.wait_ready().await;
    let families = [
        "acedata_application_remaining_amount",
        "acedata_application_used_amount",
        "acedata_application_disabled",
        "acedata_application_allow_consume_global",
        "acedata_application_expiry_timestamp_seconds",
        "acedata_application_info",
        "acedata_credential_used_amount",
        "acedata_credential_limit_amount",
        "acedata_credential_expiry_timestamp_seconds",
        "balance_exporter_application_low_threshold",
    ];
    let s = app.samples().await;
    for f in families {
        assert!(s.has_metric(f), "{f}");
    }
    sim.inject_fault(Route::AcedataApplications, Fault::Status(502), None);
    let s = app
        .wait_for("stale application series removed", |s| {
            families.iter().all(|f| !s.has_metric(f))
        })
        .await;
    assert_eq!(success(&s), Some(0.0));
    assert!(s.has_metric("acedata_distribution_level_threshold"));
    sim.clear_faults();
    let s = app.wait_for("back", |s| success(s) == Some(1.0)).await;
    assert_exported(&s, &sim.applications(ACE_TOKEN));
    app.stop().await;
}
