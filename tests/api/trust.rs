//! Values you can trust: a value is younger than `max_staleness` or gone, whatever
//! the schedule does; a reload keeps what did not change; a panicking collector is an
//! error like any other.

use balance_exporter::app::{ConfigSource, Settings};
use balance_exporter::collector::CollectError;
use balance_exporter::simulator::{Fault, Route, SimOptions};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;

use crate::helpers::*;
use crate::vendor::{with, Attempt, Vendor};

const CREDITS: &str = r#"acedata_balance_credits{account="main"}"#;
const LAST_SUCCESS: &str = r#"balance_exporter_collector_last_success_timestamp_seconds{account="main",collector="acedata_balance"}"#;
/// Withdrawn within this long after `last success + max_staleness`: the promise is a
/// second (checked exactly on a paused clock in the scheduler's tests); here a second
/// more, so that a starved 2-core machine cannot fail the test. Without the staleness
/// clock the value stays for the hour.
const WITHIN: f64 = 2.0;
const MAX_STALENESS: f64 = 3.0;

fn balance_only(base_url: &str) -> String {
    format!(
        "defaults:\n  interval: 1s\n  timeout: 1s\n  max_staleness: 3s\nacedata:\n  - name: main\n    base_url: {base_url}\n    token: {ACE_TOKEN}\n    collectors: [balance]\n"
    )
}

/// Scrape until the balance is gone; every scrape that still shows it must have
/// started before `last success + max_staleness + 1 s`.
async fn balance_withdrawn_on_time(app: &TestApp) {
    let last = app.samples().await.value(LAST_SUCCESS);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let asked = unix_now();
        let s = app.samples().await;
        let Some(_) = s.get(CREDITS) else {
            assert!(
                asked >= last + MAX_STALENESS - 0.1,
                "withdrawn too early: {} s after the last success",
                asked - last
            );
            assert_eq!(
                s.value(LAST_SUCCESS),
                last,
                "self-metrics stay, and no success since"
            );
            return;
        };
        assert!(
            asked < last + MAX_STALENESS + WITHIN,
            "still exported {:.2} s after the last success (max_staleness 3s)",
            asked - last
        );
        assert!(Instant::now() < deadline, "never withdrawn");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_retry_after_of_an_hour_never_keeps_a_value_past_max_staleness() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&balance_only(&sim.base_url())).await;
    app.wait_ready().await;
    app.wait_for("a balance", |s| s.get(CREDITS).is_some())
        .await;
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited {
            retry_after: Some(3600),
        },
        None,
    );
    app.wait_for("the 429", |s| {
        s.get(r#"balance_exporter_collector_errors_total{account="main",collector="acedata_balance",reason="rate_limited"}"#)
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    balance_withdrawn_on_time(&app).await;
    let row = app
        .wait_row("main", "acedata_balance", "stale", |r| {
            r["state"] == "stale"
        })
        .await;
    assert!(
        row["next_attempt_note"]
            .as_str()
            .is_some_and(|n| n.contains("Retry-After")),
        "{row}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reload_while_upstream_fails_still_withdraws_values_on_time() {
    let sim = simulator(SimOptions::default()).await;
    let dir = TempDir::new("trust-reload-failing");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, balance_only(&sim.base_url())).unwrap();
    let app = spawn_with(ConfigSource::File(path)).await;
    app.wait_ready().await;
    app.wait_for("a balance", |s| s.get(CREDITS).is_some())
        .await;
    sim.inject_fault(Route::AcedataBalance, Fault::Status(500), None);
    app.wait_for("a failure", |s| {
        s.get(r#"balance_exporter_collector_success{account="main",collector="acedata_balance"}"#)
            == Some(0.0)
    })
    .await;
    app.reloader.reload().await.unwrap();
    balance_withdrawn_on_time(&app).await;
    app.stop().await;
}

/// Two Ace Data Cloud accounts with 500 commission records each, and a Yeastar one.
fn three_accounts(base_url: &str, keep_threshold: u32, change_threshold: u32) -> String {
    format!(
        r#"
defaults:
  interval: 300ms
  timeout: 300ms
acedata:
  - name: keep
    base_url: {base_url}
    token: keep-token
    low_balance_threshold: {keep_threshold}
    collectors: [balance, distribution_history]
    history: {{ page_size: 50 }}
  - name: change
    base_url: {base_url}
    token: change-token
    low_balance_threshold: {change_threshold}
    collectors: [balance, distribution_history]
    history: {{ page_size: 50 }}
yeastar:
  - name: partner
    base_url: {base_url}
    client_id: {YS_ID}
    client_secret: {YS_SECRET}
"#
    )
}

/// History requests of `token` for pages past the first two (only a full pass asks
/// for them: a steady-state cycle costs at most 2 requests).
fn deep_history_pages(sim: &balance_exporter::simulator::Simulator, token: &str) -> usize {
    sim.request_log()
        .iter()
        .filter(|r| r.route == Some(Route::AcedataHistory))
        .filter(|r| r.authorization.as_deref() == Some(&format!("Bearer {token}")))
        .filter(|r| {
            r.query_param("offset")
                .and_then(|o| o.parse::<u64>().ok())
                .is_some_and(|o| o >= 100)
        })
        .count()
}

#[tokio::test]
async fn a_reload_keeps_unchanged_accounts_and_restarts_changed_ones() {
    let sim = simulator(SimOptions {
        history_records: 500,
        ..SimOptions::default()
    })
    .await;
    sim.add_acedata_account("keep-token");
    sim.add_acedata_account("change-token");
    let dir = TempDir::new("trust-reload-keep");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, three_accounts(&sim.base_url(), 10, 20)).unwrap();
    let app = spawn_with(ConfigSource::File(path.clone())).await;
    app.wait_ready().await;
    let history = |account: &str| {
        format!(
            r#"balance_exporter_collector_success{{account="{account}",collector="acedata_distribution_history"}}"#
        )
    };
    app.wait_for("first history passes", |s| {
        s.get(&history("keep")) == Some(1.0) && s.get(&history("change")) == Some(1.0)
    })
    .await;
    // The first pass read every page: the detection below sees full passes.
    assert!(deep_history_pages(&sim, "keep-token") >= 8);
    let (keep_pages, change_pages) = (
        deep_history_pages(&sim, "keep-token"),
        deep_history_pages(&sim, "change-token"),
    );
    let tokens = sim.request_count(Route::YeastarToken);
    let before = app.status_json("").await;
    let keep_success = row_field(&before, "keep", "acedata_balance", "last_success");

    // Unchanged file: nothing restarts, and /-/ready never says 503.
    for _ in 0..5 {
        app.reloader.reload().await.unwrap();
        for _ in 0..3 {
            assert_eq!(app.get("/-/ready").await.status(), 200);
        }
    }
    // Change one account's threshold.
    std::fs::write(&path, three_accounts(&sim.base_url(), 10, 21)).unwrap();
    app.reloader.reload().await.unwrap();
    assert_eq!(app.get("/-/ready").await.status(), 200);
    one_full_poll(&sim, Route::AcedataHistory, 2 * 2).await;
    app.wait_for("the changed account polled again", |s| {
        s.get(&history("change")) == Some(1.0)
    })
    .await;
    assert_eq!(
        sim.request_count(Route::YeastarToken),
        tokens,
        "the unchanged Yeastar account kept its token"
    );
    assert_eq!(
        deep_history_pages(&sim, "keep-token"),
        keep_pages,
        "the unchanged account kept its history anchors (no new full pass)"
    );
    assert!(
        deep_history_pages(&sim, "change-token") > change_pages,
        "the changed account restarted with a full pass"
    );
    let after = app.status_json("").await;
    assert!(
        row_field(&after, "keep", "acedata_balance", "last_success").as_f64()
            >= keep_success.as_f64(),
        "the unchanged account's status row was kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_removed_accounts_series_and_rows_vanish_at_once() {
    let sim = simulator(SimOptions::default()).await;
    sim.add_acedata_account("keep-token");
    sim.add_acedata_account("change-token");
    let dir = TempDir::new("trust-reload-remove");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, three_accounts(&sim.base_url(), 10, 20)).unwrap();
    let app = spawn_with(ConfigSource::File(path.clone())).await;
    app.wait_ready().await;
    app.wait_for("the account exported", |s| {
        s.get(r#"acedata_balance_credits{account="change"}"#)
            .is_some()
    })
    .await;
    // `change` is removed; every request it would send hangs (an attempt in flight
    // must not write after the reload).
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::Delay(std::time::Duration::from_millis(250)),
        None,
    );
    let without = three_accounts(&sim.base_url(), 10, 20)
        .split("  - name: change")
        .next()
        .unwrap()
        .to_string()
        + &format!("yeastar:\n  - name: partner\n    base_url: {}\n    client_id: {YS_ID}\n    client_secret: {YS_SECRET}\n", sim.base_url());
    std::fs::write(&path, without).unwrap();
    app.reloader.reload().await.unwrap();
    let s = app.metrics().await;
    assert!(!s.contains(r#"account="change""#), "{s}");
    let status = app.status_json("").await;
    assert!(
        !status.to_string().contains(r#""account":"change""#),
        "{status:#}"
    );
    // Also after any attempt that was under way would have ended.
    one_full_poll(&sim, Route::AcedataBalance, 1).await;
    assert!(!app.metrics().await.contains(r#"account="change""#));
    app.stop().await;
}

fn row_field(
    status: &serde_json::Value,
    account: &str,
    collector: &str,
    field: &str,
) -> serde_json::Value {
    status["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|r| r["account"] == account && r["collector"] == collector)
        .unwrap_or_else(|| panic!("no row {account}/{collector} in {status:#}"))[field]
        .clone()
}

/// A vendor whose collector panics on its first attempt and works after.
static FLAKY: Vendor = Vendor {
    name: "flaky",
    title: "Flaky",
    gauge: "flaky_level",
    help: "Level.",
    poll: panic_first,
};

fn panic_first(a: &Attempt) -> BoxFuture<'_, Result<f64, CollectError>> {
    async move {
        if a.number == 0 {
            panic!("a bug in the flaky collector");
        }
        Ok(7.0)
    }
    .boxed()
}

#[tokio::test]
async fn a_panicking_attempt_is_counted_shown_retried_and_counts_for_readiness() {
    let dir = TempDir::new("trust-panic");
    let file = dir.0.join("config.yaml");
    std::fs::write(&file, "flaky:\n  - name: f1\n    interval: 500ms\n").unwrap();
    let mut settings = Settings::new(ConfigSource::File(file), "127.0.0.1:0");
    settings.providers = with(&FLAKY);
    let app = spawn_settings(settings).await;
    app.wait_ready().await;
    let internal = r#"balance_exporter_collector_errors_total{account="f1",collector="flaky_level",reason="internal"}"#;
    let s = app.samples().await;
    assert_eq!(s.value(internal), 1.0, "{}", s.text);
    let status = app.status_json("").await;
    let error = row_field(&status, "f1", "flaky_level", "last_error");
    assert_eq!(error["reason"], "internal", "{status:#}");
    app.wait_for("retried at the next interval", |s| {
        s.get(r#"flaky_level{account="f1"}"#) == Some(7.0)
    })
    .await;
    app.stop().await;
}

#[test]
fn the_release_build_unwinds_so_that_a_panic_stays_in_its_collector() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("a release profile")
        .split("\n[")
        .next()
        .unwrap();
    assert!(
        !release
            .lines()
            .any(|l| l.replace(' ', "").starts_with("panic=\"abort\"")),
        "panic = \"abort\" in the release profile turns a collector's panic into a crash:\n{release}"
    );
}
