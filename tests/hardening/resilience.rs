//! The whole app against a misbehaving upstream: last good values stay until
//! `max_staleness`, errors are counted once per attempt, `Retry-After` delays the next
//! poll, token files are re-read when rotated, and a bad reload changes nothing.

use std::time::Duration;

use balance_exporter::app::{ConfigSource, Settings};
use balance_exporter::simulator::{Fault, Route};

use crate::support::*;

const CREDITS: &str = r#"acedata_balance_credits{account="ace"}"#;
const SUCCESS: &str =
    r#"balance_exporter_collector_success{account="ace",collector="acedata_balance"}"#;
const LAST_SUCCESS: &str = r#"balance_exporter_collector_last_success_timestamp_seconds{account="ace",collector="acedata_balance"}"#;

fn errors(reason: &str) -> String {
    format!(
        r#"balance_exporter_collector_errors_total{{account="ace",collector="acedata_balance",reason="{reason}"}}"#
    )
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn balance_only(base_url: &str, token_line: &str, max_staleness: &str) -> String {
    format!(
        r#"
acedata:
  - name: ace
    base_url: {base_url}
    {token_line}
    interval: 1s
    timeout: 400ms
    max_staleness: {max_staleness}
    collectors: [balance]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_good_values_stay_until_max_staleness_then_go() {
    let sim = simulator().await;
    let app = TestApp::with_yaml(&balance_only(
        &sim.base_url(),
        &format!("token: {ACE_TOKEN}"),
        "3s",
    ))
    .await;
    let first = eventually(|| async { value(&app.metrics().await, CREDITS) }).await;
    assert_eq!(first, Some(100.0));

    sim.inject_fault(Route::AcedataBalance, Fault::Status(500), None);
    sim.reset_counters();
    let m = eventually(|| async {
        let m = app.metrics().await;
        (value(&m, SUCCESS) == Some(0.0)).then_some(m)
    })
    .await
    .expect("the failure shows");
    assert_eq!(
        value(&m, CREDITS),
        Some(100.0),
        "last good value kept:\n{m}"
    );
    assert!(value(&m, LAST_SUCCESS).is_some());

    // Gone once max_staleness has passed since the last success.
    let m = eventually(|| async {
        let m = app.metrics().await;
        value(&m, CREDITS).is_none().then_some(m)
    })
    .await
    .expect("stale series removed");
    // Not before max_staleness (3 s) has passed since the last success.
    let last_success = value(&m, LAST_SUCCESS).expect("self-metrics stay");
    assert!(unix_now() - last_success >= 3.0, "removed too early");
    assert_eq!(value(&m, SUCCESS), Some(0.0), "self-metrics stay:\n{m}");

    // One count per failed attempt, however many tries it made.
    let counted = value(&m, &errors("http_status")).unwrap();
    let tries = sim.request_count(Route::AcedataBalance) as f64;
    assert!(counted >= 2.0, "{counted}");
    assert!(tries > counted, "{tries} tries, {counted} counted");
    assert!(
        tries <= counted * 4.0 + 4.0,
        "{tries} tries, {counted} counted"
    );
    assert_eq!(value(&m, &errors("timeout")), Some(0.0));

    sim.clear_faults();
    let back = eventually(|| async { value(&app.metrics().await, CREDITS) }).await;
    assert_eq!(back, Some(100.0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_delays_the_next_poll() {
    let sim = simulator().await;
    let app = TestApp::with_yaml(&balance_only(
        &sim.base_url(),
        &format!("token: {ACE_TOKEN}"),
        "1m",
    ))
    .await;
    eventually(|| async { value(&app.metrics().await, CREDITS) })
        .await
        .unwrap();
    sim.inject_fault(
        Route::AcedataBalance,
        Fault::RateLimited {
            retry_after: Some(3),
        },
        None,
    );
    sim.reset_counters();
    let limited = eventually(|| async {
        let m = app.metrics().await;
        (value(&m, &errors("rate_limited")) >= Some(1.0)).then_some(())
    })
    .await;
    assert!(limited.is_some(), "the 429 never showed");
    // Every request from the first 429 on is answered 429. Wait for the next one: the
    // interval is 1 s, but upstream asked for 3 s, and the upstream sees the requests
    // at least that far apart.
    // (At least two since the counters were reset, so that both are 429s.)
    let since = sim.request_count(Route::AcedataBalance).max(1);
    let next =
        eventually(|| async { (sim.request_count(Route::AcedataBalance) > since).then_some(()) })
            .await;
    assert!(next.is_some(), "no request after the 429");
    let [.., a, b] = sim.request_times(Route::AcedataBalance)[..] else {
        unreachable!("at least two requests were counted")
    };
    assert!(
        b - a >= Duration::from_secs(3),
        "requests {:?} apart",
        b - a
    );
    // Every one of them counted as rate limited, and the last good value stays.
    let requests = sim.request_count(Route::AcedataBalance) as f64;
    let counted = eventually(|| async {
        let m = app.metrics().await;
        (value(&m, &errors("rate_limited")) == Some(requests)).then_some(m)
    })
    .await;
    let m = counted.unwrap_or_else(|| panic!("rate_limited never reached {requests}"));
    assert_eq!(value(&m, CREDITS), Some(100.0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_token_file_is_used_without_a_restart() {
    let sim = simulator().await;
    let (old, new) = ("old-rotating-token", "new-rotating-token");
    sim.add_acedata_account(old);
    sim.add_acedata_account(new);
    sim.set_credits(new, "42.00");

    // The layout a Kubernetes Secret volume has: token -> ..data/token, and ..data a
    // symlink to a timestamped directory that is swapped atomically on rotation.
    let dir = temp_dir("rotation");
    let v1 = dir.join("..2024_01");
    std::fs::create_dir(&v1).unwrap();
    write(&v1.join("token"), &format!("{old}\n"));
    std::os::unix::fs::symlink("..2024_01", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();

    let app = TestApp::with_yaml(&balance_only(
        &sim.base_url(),
        &format!("token_file: {}", dir.join("token").display()),
        "1m",
    ))
    .await;
    let first = eventually(|| async { value(&app.metrics().await, CREDITS) }).await;
    assert_eq!(first, Some(100.0));

    let v2 = dir.join("..2024_02");
    std::fs::create_dir(&v2).unwrap();
    write(&v2.join("token"), &format!("{new}\n"));
    std::os::unix::fs::symlink("..2024_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    sim.remove_acedata_account(old);

    let rotated = eventually(|| async {
        let m = app.metrics().await;
        (value(&m, CREDITS) == Some(42.0)).then_some(())
    })
    .await;
    assert!(rotated.is_some(), "{}", app.metrics().await);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_is_rejected_and_the_old_config_keeps_running() {
    let sim = simulator().await;
    let dir = temp_dir("reload");
    let path = dir.join("config.yaml");
    let good = balance_only(&sim.base_url(), &format!("token: {ACE_TOKEN}"), "1m");
    write(&path, &good);
    let app = TestApp::spawn(Settings {
        enable_lifecycle: true,
        ..Settings::new(ConfigSource::File(path.clone()), "127.0.0.1:0")
    })
    .await;
    eventually(|| async { value(&app.metrics().await, CREDITS) })
        .await
        .unwrap();

    rewrite(
        &path,
        &format!("{good}    colour: blue\nyeastar:\n  - name: broken\n"),
    );
    let client = reqwest::Client::new();
    let r = client.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("previous one keeps running"), "{body}");
    assert!(body.contains("acedata[0].colour: unknown key"), "{body}");
    assert!(body.contains("yeastar[0].client_id: is required"), "{body}");

    // Still polling with the old configuration.
    sim.reset_counters();
    sim.set_credits(ACE_TOKEN, "77.00");
    let kept =
        eventually(|| async { (value(&app.metrics().await, CREDITS) == Some(77.0)).then_some(()) })
            .await;
    assert!(kept.is_some());

    // A valid one is taken, and the removed account's series go.
    rewrite(
        &path,
        &format!(
            "yeastar:\n  - name: ys\n    base_url: {}\n    client_id: {YS_ID}\n    client_secret: {YS_SECRET}\n    interval: 1s\n    timeout: 400ms\n",
            sim.base_url()
        ),
    );
    let r = client.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = eventually(|| async {
        let m = app.metrics().await;
        value(&m, r#"yeastar_account_balance{account="ys"}"#).map(|_| m)
    })
    .await
    .expect("new account polled");
    assert!(value(&m, CREDITS).is_none(), "{m}");
    assert!(!m.contains(r#"account="ace""#), "{m}");
    app.stop().await;
}
