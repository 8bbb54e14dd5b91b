//! `/status`: one row per (account, collector) with state, timings, the last error's
//! reason and message, and the series count; `?format=json`, `?account=`, `?state=`;
//! never a secret, wherever one could come from.

use std::time::Duration;

use balance_exporter::app::ConfigSource;
use balance_exporter::simulator::{Fault, Route, SimOptions, Simulator};
use serde_json::Value;

use crate::helpers::*;

impl TestApp {
    /// `/status?format=json` (plus `query`, e.g. `&state=ok`).
    pub async fn status_json(&self, query: &str) -> Value {
        let r = self.get(&format!("/status?format=json{query}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        r.json().await.unwrap()
    }

    /// The `/status` HTML (plus `query`).
    pub async fn status_html(&self, query: &str) -> String {
        let r = self.get(&format!("/status{query}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        r.text().await.unwrap()
    }

    /// Poll the JSON status until `check` holds for the row of (account, collector).
    pub async fn wait_row(
        &self,
        account: &str,
        collector: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.status_json("").await;
            if let Some(row) = row(&v, account, collector) {
                if check(&row) {
                    return row;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {account}/{collector}: {what}\n{v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn row(v: &Value, account: &str, collector: &str) -> Option<Value> {
    v["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["account"] == account && t["collector"] == collector)
        .cloned()
}

fn rows(v: &Value) -> Vec<(String, String)> {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["account"].as_str().unwrap().to_string(),
                t["collector"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_task_has_a_row_with_timings_and_series_and_filters_work() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&yaml(&sim.base_url(), "2s", "")).await;
    app.wait_ready().await;
    let v = app.status_json("").await;
    let mut all = rows(&v);
    all.sort();
    assert_eq!(
        all,
        [
            ("main", "acedata_applications"),
            ("main", "acedata_auto_recharge"),
            ("main", "acedata_balance"),
            ("main", "acedata_distribution_history"),
            ("main", "acedata_distribution_levels"),
            ("main", "acedata_distribution_status"),
            ("main", "acedata_orders"),
            ("main", "acedata_usage"),
            ("partner", "yeastar_balance"),
        ]
        .map(|(a, c)| (a.to_string(), c.to_string()))
    );
    assert_eq!(
        v["version"].as_str().unwrap(),
        balance_exporter::VERSION_LINE
    );
    assert!(v["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["config"], "built in (no file)");
    assert!(v["shard"].is_null());
    for t in v["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "ok", "{t:#}");
        assert!(t["last_success"].as_f64().is_some(), "{t:#}");
        assert!(t["last_duration_seconds"].as_f64().unwrap() >= 0.0);
        // The next attempt is one interval (plus a jitter under a tenth) after the last;
        // the spend collector keeps its own (the default `usage_interval`).
        let interval = if t["collector"] == "acedata_usage" {
            300.0
        } else {
            2.0
        };
        let next = t["next_attempt"].as_f64().unwrap() - t["last_attempt"].as_f64().unwrap();
        assert!(
            (interval - 0.1..=interval * 1.1 + 0.3).contains(&next),
            "{next} {t:#}"
        );
        assert_eq!(t["interval_seconds"], interval);
        assert!(t["last_error"].is_null());
    }
    // Series counts agree with /metrics.
    let metrics = app.metrics().await;
    let count = |prefix: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(r#"account="main""#))
            .count()
    };
    let balance = row(&v, "main", "acedata_balance").unwrap();
    assert_eq!(
        balance["series"].as_u64().unwrap() as usize,
        count("acedata_balance_")
    );
    let ys = row(&v, "partner", "yeastar_balance").unwrap();
    assert_eq!(ys["series"], 1);

    // Filters, in both views.
    let only = app.status_json("&account=partner").await;
    assert_eq!(rows(&only), [("partner".into(), "yeastar_balance".into())]);
    assert!(rows(&app.status_json("&state=failing").await).is_empty());
    assert_eq!(rows(&app.status_json("&state=ok").await).len(), 9);
    let html = app.status_html("?account=main&state=ok").await;
    assert!(html.contains(r#"<meta name="viewport""#), "{html}");
    assert!(!html.contains("<script"), "no JavaScript: {html}");
    assert_eq!(html.matches("<tr id=").count(), 8, "{html}");
    assert!(!html.contains("yeastar_balance</td>"), "{html}");
    assert!(
        html.contains(r#"<span class="state ok">ok</span>"#),
        "{html}"
    );
    // Both filters take repeated and comma-separated values alike.
    for query in ["&account=main,partner", "&account=main&account=partner"] {
        assert_eq!(rows(&app.status_json(query).await).len(), 9, "{query}");
    }
    for query in [
        "&account=partner&state=ok,failing",
        "&account=partner&state=ok&state=failing",
    ] {
        assert_eq!(rows(&app.status_json(query).await).len(), 1, "{query}");
    }
    // An unknown state is refused, naming the valid ones, in both views.
    for path in ["/status?state=bogus", "/status?format=json&state=ok,bogus"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(
            r.text().await.unwrap(),
            "unknown state bogus: the states are failing, stale, not_yet_run, ok\n"
        );
    }

    // Linked from the landing page; other methods are refused.
    let landing = app.get("/").await.text().await.unwrap();
    assert!(landing.contains(r#"href="/status""#), "{landing}");
    let r = app
        .http
        .post(format!("{}/status", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    app.stop().await;
}

/// The "Done" scenario: a wrong Yeastar client secret is explained on `/status` after
/// the first attempt, with the vendor's code, message and request id.
#[tokio::test]
async fn a_broken_yeastar_secret_is_explained_within_one_interval() {
    let sim = simulator(SimOptions::default()).await;
    let config = yaml(&sim.base_url(), "1h", "").replace(YS_SECRET, "not-the-right-secret-00");
    let app = spawn_yaml(&config).await;
    app.wait_ready().await;
    // Ready means every first attempt is over: the answer is there already.
    let v = app.status_json("&state=failing").await;
    assert_eq!(rows(&v), [("partner".into(), "yeastar_balance".into())]);
    let t = &v["tasks"][0];
    assert_eq!(t["state"], "failing");
    assert!(t["last_success"].is_null());
    let e = &t["last_error"];
    assert_eq!(e["reason"], "api_error");
    assert_eq!(e["code"], "invalid_client");
    assert_eq!(e["message"], "Invalid client_id or client_secret");
    let request_id = e["request_id"].as_str().unwrap();
    assert_eq!(request_id.len(), 32, "{e}");

    let html = app.status_html("").await;
    for needle in [
        r#"<span class="state failing">failing</span>"#,
        "api_error",
        "invalid_client",
        "Invalid client_id or client_secret",
        request_id,
    ] {
        assert!(html.contains(needle), "missing {needle:?} in {html}");
    }
    // Problems come first.
    let first_row = html.split("<tr id=").nth(1).unwrap();
    assert!(
        first_row.starts_with("\"partner/yeastar_balance\""),
        "{html}"
    );
    assert!(!html.contains("not-the-right-secret-00"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn retry_after_and_http_status_are_shown() {
    let sim = simulator(SimOptions::default()).await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited {
            retry_after: Some(600),
        },
        None,
    );
    // On another account: a Retry-After holds every collector of its account.
    sim.inject_fault(Route::YeastarBalance, Fault::Status(500), None);
    let app = spawn_yaml(&yaml(&sim.base_url(), "1s", "")).await;
    app.wait_ready().await;
    let t = app
        .wait_row("main", "acedata_balance", "rate limited", |t| {
            t["state"] == "failing"
        })
        .await;
    assert_eq!(t["last_error"]["reason"], "rate_limited");
    assert_eq!(t["last_error"]["http_status"], 429);
    let wait = t["next_attempt"].as_f64().unwrap() - t["last_attempt"].as_f64().unwrap();
    assert!(wait >= 590.0, "{t:#}");
    assert!(
        t["next_attempt_note"]
            .as_str()
            .unwrap()
            .contains("Retry-After 10m"),
        "{t:#}"
    );
    let t = app
        .wait_row("partner", "yeastar_balance", "HTTP 500", |t| {
            t["state"] == "failing"
        })
        .await;
    assert_eq!(t["last_error"]["reason"], "http_status");
    assert_eq!(t["last_error"]["http_status"], 500);
    // The last good values are gone only after max_staleness; never written here.
    assert_eq!(t["series"], 0);
    let html = app.status_html("?state=failing").await;
    assert!(html.contains("Retry-After 10m"), "{html}");
    assert!(html.contains("HTTP 500"), "{html}");
    assert!(html.contains("HTTP 429"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_collector_recovers_and_a_stale_one_says_so() {
    let sim = simulator(SimOptions::default()).await;
    let config = format!(
        "defaults:\n  interval: 300ms\n  timeout: 300ms\n  max_staleness: 300ms\nyeastar:\n  - name: partner\n    base_url: {}\n    client_id: {YS_ID}\n    client_secret: {YS_SECRET}\n",
        sim.base_url()
    );
    let app = spawn_yaml(&config).await;
    app.wait_ready().await;
    app.wait_row("partner", "yeastar_balance", "ok", |t| t["state"] == "ok")
        .await;
    sim.inject_fault(Route::YeastarBalance, Fault::Status(403), None);
    let t = app
        .wait_row(
            "partner",
            "yeastar_balance",
            "stale, after a failure",
            |t| {
                // Staleness has its own clock: the series may go before the failing
                // attempt ends.
                t["state"] == "stale" && t["consecutive_failures"].as_u64() >= Some(1)
            },
        )
        .await;
    assert_eq!(t["series"], 0, "{t:#}");
    assert!(t["consecutive_failures"].as_u64().unwrap() >= 1);
    assert_eq!(t["last_error"]["http_status"], 403);
    sim.clear_faults();
    let t = app
        .wait_row("partner", "yeastar_balance", "ok again", |t| {
            t["state"] == "ok"
        })
        .await;
    assert_eq!(t["series"], 1);
    // The last error stays visible after recovery.
    assert_eq!(t["last_error"]["http_status"], 403);
    assert!(app.status_html("").await.contains("recovered since"));
    app.stop().await;
}

#[tokio::test]
async fn the_header_shows_a_rejected_reload_with_its_problems() {
    let sim = simulator(SimOptions::default()).await;
    let dir = TempDir::new("status-reload");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, yaml(&sim.base_url(), "1h", "")).unwrap();
    let app = spawn_with(ConfigSource::File(path.clone())).await;
    app.wait_ready().await;
    let v = app.status_json("").await;
    assert_eq!(v["config"], path.display().to_string());
    assert!(v["last_reload"].is_null());

    std::fs::write(&path, "acedata:\n  - name: main\n    tokn: x\n").unwrap();
    let r = app.reload().await;
    assert_eq!(r.status(), 400);
    let v = app.status_json("").await;
    assert_eq!(v["last_reload"]["ok"], false);
    let problems = v["last_reload"]["problems"].as_str().unwrap();
    assert!(
        problems.contains("acedata[0].tokn: unknown key"),
        "{problems}"
    );
    let html = app.status_html("").await;
    assert!(html.contains("rejected"), "{html}");
    assert!(html.contains("acedata[0].tokn: unknown key"), "{html}");
    // The running configuration's rows are still there.
    assert_eq!(rows(&v).len(), 9);

    // A valid reload that drops the Yeastar account drops its row.
    std::fs::write(
        &path,
        format!(
            "acedata:\n  - name: main\n    base_url: {}\n    token: {ACE_TOKEN}\n    interval: 1h\n",
            sim.base_url()
        ),
    )
    .unwrap();
    let r = app.reload().await;
    assert_eq!(r.status(), 200);
    let v = app.status_json("").await;
    assert_eq!(v["last_reload"]["ok"], true);
    assert_eq!(rows(&v).len(), 8, "{v:#}");
    assert!(row(&v, "partner", "yeastar_balance").is_none());
    app.stop().await;
}

// Every test secret carries a marker, so one search finds any of them.
const ACE_SECRET: &str = "ace-STATUSLEAK-token-5e1f";
const YS_SECRET_LEAK: &str = "ys-STATUSLEAK-secret-a9b0";

fn secret_config(sim: &Simulator) -> String {
    format!(
        "defaults:\n  interval: 300ms\n  timeout: 300ms\n  max_staleness: 1h\n\
         acedata:\n  - name: main\n    base_url: {b}\n    token: {ACE_SECRET}\n    collectors: [balance]\n\
         yeastar:\n  - name: partner\n    base_url: {b}\n    client_id: {YS_ID}\n    client_secret: {YS_SECRET_LEAK}\n",
        b = sim.base_url()
    )
}

/// What the page shows, in both views, must contain none of `secrets`.
async fn assert_no_secret(app: &TestApp, secrets: &[&str]) {
    let pages = [
        app.status_html("").await,
        app.status_json("").await.to_string(),
        app.get("/").await.text().await.unwrap(),
    ];
    for page in &pages {
        assert!(!page.contains("STATUSLEAK"), "marker leaked: {page}");
        for s in secrets {
            assert!(!page.contains(s), "secret {s} leaked: {page}");
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_the_page_even_when_upstream_echoes_it() {
    let sim = Simulator::start(SimOptions {
        // Short-lived access tokens: the exporter refreshes them every few hundred ms.
        token_ttl_secs: 1,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    sim.add_acedata_account(ACE_SECRET);
    sim.add_yeastar_client(YS_ID, YS_SECRET_LEAK);
    let app = spawn_yaml(&secret_config(&sim)).await;
    app.wait_ready().await;
    app.wait_row("partner", "yeastar_balance", "ok", |t| t["state"] == "ok")
        .await;

    // 1. The config token, echoed back by Ace Data Cloud.
    sim.inject_fault(Route::AcedataBalance, Fault::EchoCredentials, None);
    let t = app
        .wait_row("main", "acedata_balance", "echo", |t| {
            t["state"] == "failing"
        })
        .await;
    assert_eq!(t["last_error"]["reason"], "unauthorized");
    assert_eq!(t["last_error"]["http_status"], 401);
    let msg = t["last_error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Invalid token") && msg.contains("[redacted]"),
        "{msg}"
    );

    // 2. An issued access token, echoed back by the balance call (the exporter renews
    //    the token and retries once, so both tokens are echoed).
    let before = sim.request_count(Route::YeastarBalance);
    sim.inject_fault(Route::YeastarBalance, Fault::EchoCredentials, None);
    let t = app
        .wait_row("partner", "yeastar_balance", "echo", |t| {
            t["state"] == "failing" && t["last_error"]["code"].is_null()
        })
        .await;
    assert!(sim.request_count(Route::YeastarBalance) > before);
    assert_eq!(t["last_error"]["http_status"], 401, "{t:#}");
    let access_tokens: Vec<String> = sim
        .request_log()
        .iter()
        .filter(|r| r.route == Some(Route::YeastarBalance))
        .filter_map(|r| r.authorization.clone())
        .map(|a| a.trim_start_matches("Bearer ").to_string())
        .collect();
    assert!(!access_tokens.is_empty());
    let refs: Vec<&str> = access_tokens.iter().map(String::as_str).collect();
    assert_no_secret(&app, &refs).await;
    sim.clear_faults();

    // 3. The refresh token and then the client secret, echoed back by the token
    //    endpoint (refresh fails, the exchange fails too).
    let before = sim.request_count(Route::YeastarToken);
    sim.inject_fault(Route::YeastarToken, Fault::EchoCredentials, None);
    let t = app
        .wait_row("partner", "yeastar_balance", "token echo", |t| {
            t["state"] == "failing" && t["last_error"]["code"] == "invalid_client"
        })
        .await;
    let msg = t["last_error"]["message"].as_str().unwrap();
    assert!(msg.contains("Invalid client_secret [redacted]"), "{msg}");
    let log = sim.request_log();
    let token_requests: Vec<_> = log
        .iter()
        .filter(|r| r.route == Some(Route::YeastarToken))
        .collect();
    assert!(sim.request_count(Route::YeastarToken) > before);
    let mut secrets: Vec<String> = token_requests
        .iter()
        .filter_map(|r| r.form_param("refresh_token"))
        .collect();
    assert!(!secrets.is_empty(), "a refresh was tried");
    secrets.extend(access_tokens);
    secrets.push(ACE_SECRET.into());
    secrets.push(YS_SECRET_LEAK.into());
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secret(&app, &refs).await;
    app.stop().await;
}
