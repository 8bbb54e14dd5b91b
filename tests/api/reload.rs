//! `POST /-/reload`: a valid new config replaces the running one; an invalid one is
//! rejected and the old one keeps running.

use balance_exporter::app::ConfigSource;
use balance_exporter::simulator::SimOptions;

use crate::helpers::*;

#[tokio::test]
async fn reload_applies_a_valid_config_and_rejects_an_invalid_one() {
    let sim = simulator(SimOptions::default()).await;
    let dir = TempDir::new("reload");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, yaml(&sim.base_url(), "200ms", "")).unwrap();
    let app = spawn_with(ConfigSource::File(path.clone())).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert!(s.has_metric("yeastar_account_balance"));

    // Drop the Yeastar account and change the threshold.
    let new = format!(
        "acedata:\n  - name: main\n    base_url: {}\n    token: {ACE_TOKEN}\n    interval: 200ms\n    low_balance_threshold: 77\n",
        sim.base_url()
    );
    std::fs::write(&path, new).unwrap();
    let r = app.reload().await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let s = app.samples().await;
    assert!(!s.has_metric("yeastar_account_balance"), "{}", s.text);
    assert!(
        !s.text.contains(r#"collector="yeastar_balance""#),
        "{}",
        s.text
    );
    assert_eq!(
        s.value(r#"balance_exporter_low_balance_threshold{account="main",provider="acedata"}"#),
        77.0
    );
    // A changed account restarts: its values come back with its first attempt.
    app.wait_for("the restarted account polled", |s| {
        s.has_metric("acedata_balance_credits")
    })
    .await;

    // An invalid file is rejected with its problems; polling goes on.
    std::fs::write(&path, "acedata:\n  - name: main\n    tokn: x\n").unwrap();
    let r = app.reload().await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("acedata[0].tokn: unknown key"), "{body}");
    assert!(body.contains("acedata[0].token: is required"), "{body}");
    sim.set_credits(ACE_TOKEN, "55.55");
    app.wait_for("old config still polling", |s| {
        s.get(r#"acedata_balance_credits{account="main"}"#) == Some(55.55)
    })
    .await;
    app.stop().await;
}
