//! `--shard` in process: only the accounts of this shard are polled (no upstream call,
//! no series, no threshold), the shard self-metrics, and a reload keeps the assignment.

use balance_exporter::app::{ConfigSource, Settings};
use balance_exporter::shard::{shard_of, Shard};
use balance_exporter::simulator::{Route, SimOptions, Simulator};

use crate::helpers::*;

fn config(base_url: &str, accounts: usize) -> String {
    let mut y = "defaults:
  interval: 1h
  timeout: 10s
acedata:
"
    .to_string();
    for i in 0..accounts {
        y.push_str(&format!(
            "  - name: acc-{i}\n    base_url: {base_url}\n    token: tok-{i}\n    low_balance_threshold: 5\n    collectors: [balance]\n"
        ));
    }
    y
}

#[tokio::test]
async fn a_shard_polls_only_its_accounts_also_after_a_reload() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    for i in 0..40 {
        sim.add_acedata_account(&format!("tok-{i}"));
    }
    let dir = TempDir::new("shards");
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, config(&sim.base_url(), 30)).unwrap();
    let shard = Shard::new(1, 3).unwrap();
    let app = spawn_settings(Settings {
        shard,
        enable_lifecycle: true,
        ..Settings::new(ConfigSource::File(path.clone()), "127.0.0.1:0")
    })
    .await;
    app.wait_ready().await;

    let check = |accounts: usize, s: &Samples| {
        let mine: Vec<usize> = (0..accounts)
            .filter(|i| shard_of("acedata", &format!("acc-{i}"), 3) == 1)
            .collect();
        assert!(!mine.is_empty() && mine.len() < accounts);
        for i in 0..accounts {
            let owned = mine.contains(&i);
            let key = format!(r#"acedata_balance_credits{{account="acc-{i}"}}"#);
            assert_eq!(s.get(&key).is_some(), owned, "{key}");
            let key = format!(
                r#"balance_exporter_low_balance_threshold{{account="acc-{i}",provider="acedata"}}"#
            );
            assert_eq!(s.get(&key).is_some(), owned, "{key}");
        }
        assert_eq!(s.value("balance_exporter_shard_ordinal"), 1.0);
        assert_eq!(s.value("balance_exporter_total_shards"), 3.0);
        assert_eq!(
            s.value(r#"balance_exporter_accounts{provider="acedata"}"#),
            mine.len() as f64
        );
        assert_eq!(
            s.value(r#"balance_exporter_accounts{provider="yeastar"}"#),
            0.0
        );
        mine
    };
    let mine = check(30, &app.samples().await);
    // The status page names the shard, and lists only this shard's accounts.
    let status = app.status_json("").await;
    assert_eq!(status["shard"]["ordinal"], 1, "{status:#}");
    assert_eq!(status["shard"]["total"], 3, "{status:#}");
    assert_eq!(
        status["tasks"].as_array().unwrap().len(),
        mine.len(),
        "{status:#}"
    );
    // One balance call per owned account, none for the others.
    assert_eq!(sim.request_count(Route::AcedataBalance), mine.len() as u64);
    let polled = |sim: &Simulator| {
        let mut tokens: Vec<String> = sim
            .request_log()
            .iter()
            .filter_map(|r| r.authorization.clone())
            .collect();
        tokens.sort();
        tokens.dedup();
        tokens
    };
    let mut want: Vec<String> = mine.iter().map(|i| format!("Bearer tok-{i}")).collect();
    want.sort();
    assert_eq!(polled(&sim), want);

    // Ten more accounts; the reloaded configuration is split the same way.
    std::fs::write(&path, config(&sim.base_url(), 40)).unwrap();
    let r = app.reload().await;
    assert_eq!(r.status(), 200);
    let mine40: Vec<usize> = (0..40)
        .filter(|i| shard_of("acedata", &format!("acc-{i}"), 3) == 1)
        .collect();
    let s = app
        .wait_for("the new accounts' balances", |s| {
            mine40.iter().all(|i| {
                s.get(&format!(r#"acedata_balance_credits{{account="acc-{i}"}}"#))
                    .is_some()
            })
        })
        .await;
    check(40, &s);
    let mut want: Vec<String> = mine40.iter().map(|i| format!("Bearer tok-{i}")).collect();
    want.sort();
    assert_eq!(polled(&sim), want);
    app.stop().await;
}
