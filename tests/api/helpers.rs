//! Spawning the exporter on port 0 against the simulator, and reading `/metrics`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use balance_exporter::app::{Application, ConfigSource, Reloader, Settings};
use balance_exporter::config::Config;
use balance_exporter::simulator::{Route, SimOptions, Simulator};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ACE_TOKEN: &str = "test-acedata-token-7f3a";
pub const YS_ID: &str = "test-yeastar-client";
pub const YS_SECRET: &str = "test-yeastar-secret-91c2";

/// The longest any wait in these tests takes before it calls the wait a hang. Waits
/// end at the event they mean, so on a healthy run this bound is never approached; it
/// is generous so that a loaded 2-core machine never trips it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Wait until `check` holds (polling), or panic after [`PATIENCE`].
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The most attempts a collector with `interval` can start within `elapsed`: the
/// scheduler starts attempts at least `interval` apart, and one may already have been
/// under way when the window opened. A request budget checked against this bound holds
/// however slow the machine is, because a slow machine only runs fewer attempts.
pub fn max_attempts(elapsed: Duration, interval: Duration) -> u64 {
    (elapsed.as_secs_f64() / interval.as_secs_f64()).floor() as u64 + 2
}

/// Wait for one full poll of `route` that started after this call, when a poll sends
/// at most `per_poll` requests of that route. A poll under way at the call may send up
/// to `per_poll - 1` more; the next one started after the call, so it saw every change
/// made before it, and ended before the poll after it sent its first request, at the
/// latest request number `2 * per_poll` from now (a collector runs one attempt at a
/// time). Call it right after changing upstream: the next scrape then shows the change,
/// however slow the machine is.
pub async fn one_full_poll(sim: &Simulator, route: Route, per_poll: u64) {
    let from = sim.request_count(route);
    wait_until(&format!("a full poll of {route:?}"), || {
        sim.request_count(route) >= from + 2 * per_poll
    })
    .await;
}

/// Seconds since the Unix epoch, as the `*_timestamp_seconds` self-metrics count them.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A running exporter.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    /// Reloads the configuration as SIGHUP does.
    pub reloader: Reloader,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    /// `GET path` on the exporter.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("exporter answers")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// `POST /-/reload`.
    pub async fn reload(&self) -> reqwest::Response {
        self.http
            .post(format!("{}/-/reload", self.address))
            .send()
            .await
            .expect("exporter answers")
    }

    /// Parsed samples of `/metrics`.
    pub async fn samples(&self) -> Samples {
        Samples::parse(&self.metrics().await)
    }

    /// Poll `/metrics` until `check` holds. The bound only catches a hang: the
    /// condition must name the event the test means, not "enough time has passed".
    pub async fn wait_for(&self, what: &str, check: impl Fn(&Samples) -> bool) -> Samples {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let s = self.samples().await;
            if check(&s) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for: {what}\n{}", s.text);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `/-/ready` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.get("/-/ready").await.status() != 200 {
            assert!(tokio::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the exporter and wait for it to finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("exporter stops within 15 s")
                .unwrap();
        }
    }
}

/// Build and run the exporter with `source`, `POST /-/reload` allowed (as with
/// `--web.enable-lifecycle`; [`spawn_settings`] with [`Settings::new`] leaves it off).
pub async fn spawn_with(source: ConfigSource) -> TestApp {
    spawn_settings(Settings {
        enable_lifecycle: true,
        ..Settings::new(source, "127.0.0.1:0")
    })
    .await
}

/// Build and run the exporter with `settings`.
pub async fn spawn_settings(settings: Settings) -> TestApp {
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let reloader = app.reloader();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        http: reqwest::Client::new(),
        reloader,
        stop: Some(tx),
        task: Some(task),
    }
}

/// Build and run the exporter with a YAML configuration.
pub async fn spawn_yaml(yaml: &str) -> TestApp {
    let config = Config::from_yaml(yaml, &balance_exporter::providers::all())
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    spawn_with(ConfigSource::Fixed(Box::new(config))).await
}

/// A simulator with the test account and client registered.
pub async fn simulator(opts: SimOptions) -> Simulator {
    let sim = Simulator::start(opts).await.unwrap();
    sim.add_acedata_account(ACE_TOKEN);
    sim.add_yeastar_client(YS_ID, YS_SECRET);
    sim
}

/// A config for one account of each provider at `base_url`, with short intervals.
/// `extra_ace` is appended to the acedata account (indented keys).
pub fn yaml(base_url: &str, interval: &str, extra_ace: &str) -> String {
    format!(
        r#"
defaults:
  interval: {interval}
  timeout: {interval}
  max_staleness: 1h
acedata:
  - name: main
    base_url: {base_url}
    token: {ACE_TOKEN}
    low_balance_threshold: 10
{extra_ace}
yeastar:
  - name: partner
    base_url: {base_url}
    client_id: {YS_ID}
    client_secret: {YS_SECRET}
    low_balance_threshold: 50
"#
    )
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "be-test-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// The samples of an exposition, keyed by `name{labels}` exactly as printed.
pub struct Samples {
    pub text: String,
    map: BTreeMap<String, f64>,
}

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').expect("sample line");
            map.insert(
                key.to_string(),
                value.parse::<f64>().expect("numeric value"),
            );
        }
        Samples {
            text: text.to_string(),
            map,
        }
    }

    /// The value of `key` (`name{labels}` as printed, labels sorted by name).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.map.get(key).copied()
    }

    /// The value of `key`, which must exist.
    pub fn value(&self, key: &str) -> f64 {
        self.get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{}", self.text))
    }

    /// Whether any sample of metric `name` exists.
    pub fn has_metric(&self, name: &str) -> bool {
        self.map
            .keys()
            .any(|k| k == name || k.starts_with(&format!("{name}{{")))
    }

    /// Keys of all samples of metric `name`.
    pub fn keys_of(&self, name: &str) -> Vec<String> {
        self.map
            .keys()
            .filter(|k| k.starts_with(&format!("{name}{{")) || *k == name)
            .cloned()
            .collect()
    }
}

/// Every commission record of the test account, straight from the simulator's HTTP
/// answer (not through the exporter's parser).
pub async fn history_json(base: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/distribution-histories/?limit=100000&offset=0"
        ))
        .header("authorization", format!("Bearer {ACE_TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
