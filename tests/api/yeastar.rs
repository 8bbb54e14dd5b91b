//! Yeastar token lifecycle through the exporter.

use std::time::Duration;

use balance_exporter::simulator::{Fault, Route, SimOptions};

use crate::helpers::*;

const BALANCE: &str = r#"yeastar_account_balance{account="partner"}"#;

fn ys_yaml(base: &str, auth: &str) -> String {
    format!(
        "yeastar:\n  - name: partner\n    base_url: {base}\n{auth}\n    interval: 200ms\n    timeout: 200ms\n"
    )
}

fn creds() -> String {
    format!("    client_id: {YS_ID}\n    client_secret: {YS_SECRET}")
}

#[tokio::test]
async fn token_is_exchanged_once_and_reused_with_the_user_agent() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &creds())).await;
    app.wait_ready().await;
    wait_until("three balance polls", || {
        sim.request_count(Route::YeastarBalance) >= 3
    })
    .await;
    assert_eq!(app.samples().await.value(BALANCE), 675.24);
    assert_eq!(sim.request_count(Route::YeastarToken), 1);
    let token_req = sim.last_request(Route::YeastarToken).unwrap();
    assert_eq!(
        token_req.form_param("grant_type").as_deref(),
        Some("pp_credentials")
    );
    assert_eq!(token_req.form_param("client_id").as_deref(), Some(YS_ID));
    assert_eq!(
        sim.last_user_agent(Route::YeastarBalance).as_deref(),
        Some("OpenAPI")
    );
    assert_eq!(
        sim.last_user_agent(Route::YeastarToken).as_deref(),
        Some("OpenAPI")
    );
    app.stop().await;
}

#[tokio::test]
async fn token_is_refreshed_before_expiry() {
    let sim = simulator(SimOptions {
        token_ttl_secs: 2,
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &creds())).await;
    app.wait_ready().await;
    let refreshes = || {
        sim.request_log()
            .iter()
            .filter(|r| r.route == Some(Route::YeastarToken))
            .filter(|r| r.form_param("grant_type").as_deref() == Some("refresh_token"))
            .count()
    };
    wait_until("a refresh", || refreshes() >= 1).await;
    // A poll after the refresh used the new token.
    let polls = sim.request_count(Route::YeastarBalance);
    wait_until("a poll after the refresh", || {
        sim.request_count(Route::YeastarBalance) > polls
    })
    .await;
    let s = app.samples().await;
    assert_eq!(s.value(r#"balance_exporter_collector_errors_total{account="partner",collector="yeastar_balance",reason="unauthorized"}"#), 0.0);
    app.stop().await;
}

#[tokio::test]
async fn a_401_refreshes_and_retries_once() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &creds())).await;
    app.wait_ready().await;
    sim.expire_yeastar_tokens();
    sim.set_yeastar_balance(YS_ID, 99.5);
    let s = app
        .wait_for("balance after refresh", |s| s.get(BALANCE) == Some(99.5))
        .await;
    // The retry succeeded within the attempt: no failure was recorded.
    assert_eq!(s.value(r#"balance_exporter_collector_errors_total{account="partner",collector="yeastar_balance",reason="unauthorized"}"#), 0.0);
    assert!(sim
        .request_log()
        .iter()
        .any(|r| r.form_param("grant_type").as_deref() == Some("refresh_token")));
    app.stop().await;
}

#[tokio::test]
async fn failed_refresh_falls_back_to_client_credentials() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &creds())).await;
    app.wait_ready().await;
    sim.expire_yeastar_tokens();
    sim.revoke_yeastar_refresh_tokens();
    sim.set_yeastar_balance(YS_ID, 7.25);
    app.wait_for("balance after re-exchange", |s| {
        s.get(BALANCE) == Some(7.25)
    })
    .await;
    let exchanges = sim
        .request_log()
        .iter()
        .filter(|r| r.form_param("grant_type").as_deref() == Some("pp_credentials"))
        .count();
    assert_eq!(exchanges, 2);
    app.stop().await;
}

#[tokio::test]
async fn code_other_than_success_is_an_api_error_even_on_http_200() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &creds())).await;
    app.wait_ready().await;
    sim.inject_fault(Route::YeastarBalance, Fault::ApiError, Some(1));
    let s = app
        .wait_for("api_error", |s| {
            s.get(r#"balance_exporter_collector_errors_total{account="partner",collector="yeastar_balance",reason="api_error"}"#) == Some(1.0)
        })
        .await;
    assert_eq!(s.value(BALANCE), 675.24);
    app.stop().await;
}

#[tokio::test]
async fn wrong_client_secret_is_reported_and_nothing_is_exported() {
    let sim = simulator(SimOptions::default()).await;
    let auth = format!("    client_id: {YS_ID}\n    client_secret: wrong-secret");
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &auth)).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert!(!s.has_metric("yeastar_account_balance"));
    assert_eq!(
        s.value(
            r#"balance_exporter_collector_success{account="partner",collector="yeastar_balance"}"#
        ),
        0.0
    );
    assert!(!s.text.contains("wrong-secret"));
    app.stop().await;
}

#[tokio::test]
async fn static_token_from_a_file_is_reread_when_it_changes() {
    let sim = simulator(SimOptions::default()).await;
    sim.add_yeastar_static_token("static-one");
    sim.add_yeastar_static_token("static-two");
    sim.set_yeastar_balance("static-two", 2.0);
    let dir = TempDir::new("ys-token");
    let path = dir.0.join("token");
    std::fs::write(&path, "static-one\n").unwrap();
    let auth = format!("    access_token_file: {}", path.display());
    let app = spawn_yaml(&ys_yaml(&sim.base_url(), &auth)).await;
    app.wait_ready().await;
    assert_eq!(app.samples().await.value(BALANCE), 675.24);
    // Rotate the file (as a Kubernetes Secret update would).
    std::fs::write(&path, "static-two\n").unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
        .unwrap();
    app.wait_for("new token used", |s| s.get(BALANCE) == Some(2.0))
        .await;
    assert_eq!(sim.request_count(Route::YeastarToken), 0);
    app.stop().await;
}
