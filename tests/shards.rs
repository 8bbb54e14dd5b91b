//! Three real exporter processes as shards 0–2 of one configuration of 300 accounts
//! against one simulator: every account is polled by exactly one of them, the one the
//! jump hash names, and going to four shards moves about a quarter of the accounts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use balance_exporter::shard::shard_of;
use balance_exporter::simulator::{Route, SimOptions, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_balance-exporter");
const ACEDATA: usize = 270;
const YEASTAR: usize = 30;
/// Generous: three or four processes start and poll on a loaded two-core machine.
const WITHIN: Duration = Duration::from_secs(120);

/// `(provider, account)` of every configured account.
fn all_accounts() -> BTreeSet<(String, String)> {
    let ace = (0..ACEDATA).map(|i| ("acedata".to_string(), format!("acc-{i}")));
    let ys = (0..YEASTAR).map(|i| ("yeastar".to_string(), format!("ys-{i}")));
    ace.chain(ys).collect()
}

fn write_config(path: &Path, base_url: &str) {
    // One collector per account and an interval far beyond the test: every account
    // is polled exactly once by whoever polls it.
    let mut y = String::from("defaults:\n  interval: 1h\n  timeout: 30s\nacedata:\n");
    for i in 0..ACEDATA {
        y.push_str(&format!(
            "  - name: acc-{i}\n    base_url: {base_url}\n    token: tok-{i}\n    collectors: [balance]\n"
        ));
    }
    y.push_str("yeastar:\n");
    for i in 0..YEASTAR {
        y.push_str(&format!(
            "  - name: ys-{i}\n    base_url: {base_url}\n    client_id: ys-id-{i}\n    client_secret: ys-secret-{i}\n"
        ));
    }
    std::fs::write(path, y).unwrap();
}

/// One exporter process; killed on drop.
struct Replica {
    child: Child,
    address: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `balance-exporter --shard=index --total-shards=total` on a free port and wait
/// for its "listening" log line, which names the port.
fn start(config: &Path, index: u32, total: u32) -> Replica {
    let child = Command::new(BIN)
        .arg("--config.file")
        .arg(config)
        .args([
            &format!("--shard={index}"),
            &format!("--total-shards={total}"),
            "--web.listen-address=127.0.0.1:0",
            "--log.level=info",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on drop, also when a check below panics.
    let mut replica = Replica {
        child,
        address: String::new(),
    };
    let stderr = replica.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Keep draining after the address is known, so the pipe never fills.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + WITHIN;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            if let Some(status) = replica.child.try_wait().unwrap() {
                panic!("shard {index} exited with {status}: {}", seen.join("\n"));
            }
            continue;
        };
        if line.contains("listening") {
            let address = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("address="))
                .unwrap_or_else(|| panic!("no address in {line}"))
                .trim_matches('"')
                .to_string();
            replica.address = format!("http://{address}");
            return replica;
        }
        seen.push(line);
    }
    panic!(
        "shard {index} never logged its address: {}",
        seen.join("\n")
    );
}

/// Wait for `/-/ready`, then return the accounts this replica polls, read from its
/// `balance_exporter_collector_success` series.
async fn accounts_of(http: &reqwest::Client, replica: &Replica) -> BTreeSet<(String, String)> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let ready = http
            .get(format!("{}/-/ready", replica.address))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = http
        .get(format!("{}/metrics", replica.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut accounts = BTreeSet::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("balance_exporter_collector_success{") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let len = labels[start..].find('"')?;
            Some(labels[start..start + len].to_string())
        };
        let (account, collector) = (label("account").unwrap(), label("collector").unwrap());
        let provider = collector.split('_').next().unwrap().to_string();
        // Every first attempt succeeded.
        assert!(line.ends_with(" 1"), "{line}");
        accounts.insert((provider, account));
    }
    accounts
}

/// Requests per credential: Ace Data Cloud by token, Yeastar by client id (token
/// requests; its balance calls carry an access token issued to that client).
fn requests_per_account(sim: &Simulator) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for r in sim.request_log() {
        let account = match r.route {
            Some(Route::AcedataBalance) => {
                let token = r.authorization.unwrap();
                let i = token.strip_prefix("Bearer tok-").unwrap().to_string();
                ("acedata".to_string(), format!("acc-{i}"))
            }
            Some(Route::YeastarToken) => {
                let id = r.form_param("client_id").unwrap();
                let i = id.strip_prefix("ys-id-").unwrap().to_string();
                ("yeastar".to_string(), format!("ys-{i}"))
            }
            _ => continue,
        };
        *counts.entry(account).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_split_the_accounts_and_a_fourth_moves_a_quarter() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    for i in 0..ACEDATA {
        sim.add_acedata_account(&format!("tok-{i}"));
    }
    for i in 0..YEASTAR {
        sim.add_yeastar_client(&format!("ys-id-{i}"), &format!("ys-secret-{i}"));
    }
    let dir = std::env::temp_dir().join(format!("be-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    write_config(&config, &sim.base_url());
    let http = reqwest::Client::new();
    let all = all_accounts();

    let replicas: Vec<Replica> = (0..3).map(|i| start(&config, i, 3)).collect();
    let mut three = BTreeMap::new();
    for (index, replica) in replicas.iter().enumerate() {
        let mine = accounts_of(&http, replica).await;
        assert!(!mine.is_empty(), "shard {index} polls nothing");
        for account in mine {
            assert_eq!(
                shard_of(&account.0, &account.1, 3),
                index as u32,
                "{account:?} on the wrong shard"
            );
            if let Some(other) = three.insert(account.clone(), index) {
                panic!("{account:?} on shards {other} and {index}");
            }
        }
    }
    let union: BTreeSet<_> = three.keys().cloned().collect();
    assert_eq!(union, all, "the union of the shards is every account");
    // Each account was asked for exactly once: by the one replica that exports it (a
    // second replica polling it would have made a second request).
    let requests = requests_per_account(&sim);
    assert_eq!(requests.keys().cloned().collect::<BTreeSet<_>>(), all);
    for (account, n) in &requests {
        assert_eq!(*n, 1, "{account:?} was requested {n} times");
    }
    drop(replicas);

    // Four replicas: each account still has one owner, and few moved.
    let replicas: Vec<Replica> = (0..4).map(|i| start(&config, i, 4)).collect();
    let mut four = BTreeMap::new();
    for (index, replica) in replicas.iter().enumerate() {
        for account in accounts_of(&http, replica).await {
            assert!(four.insert(account, index).is_none());
        }
    }
    assert_eq!(four.keys().cloned().collect::<BTreeSet<_>>(), all);
    let moved = all.iter().filter(|a| three[*a] != four[*a]).count();
    assert!(
        moved * 100 <= all.len() * 30,
        "{moved} of {} accounts moved from 3 to 4 shards",
        all.len()
    );
    // Jump hash only moves accounts to the new shard.
    assert!(all.iter().all(|a| three[a] == four[a] || four[a] == 3));
    drop(replicas);
    let _ = std::fs::remove_dir_all(dir);
}
