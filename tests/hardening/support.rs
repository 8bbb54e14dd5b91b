//! Shared helpers: the simulator, a raw TCP peer, one-collector attempts, an app on
//! port 0, and reading `/metrics`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::collector::{CollectError, Collector};
use balance_exporter::config::Config;
use balance_exporter::metrics::Registry;
use balance_exporter::provider::ProviderMetrics;
use balance_exporter::providers;
use balance_exporter::simulator::{SimOptions, Simulator};
use balance_exporter::upstream::{RetryPolicy, Upstream, UpstreamOptions};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long a wait goes on before it is called a hang (see [`eventually`]).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const ACE_TOKEN: &str = "ace-token-for-tests";
pub const YS_ID: &str = "yeastar-client-id";
pub const YS_SECRET: &str = "yeastar-client-secret";

/// Retries as in production, but in milliseconds.
pub const FAST_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(20),
    max_delay: Duration::from_millis(200),
};

/// Body cap used by the fault tests.
pub const TEST_BODY_CAP: usize = 64 * 1024;

pub fn fast_upstream() -> Upstream {
    Upstream::with_options(UpstreamOptions {
        retry: FAST_RETRY,
        max_body_bytes: TEST_BODY_CAP,
        ..UpstreamOptions::default()
    })
}

/// A simulator with one Ace Data Cloud account and one Yeastar client.
pub async fn simulator() -> Simulator {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    sim.add_acedata_account(ACE_TOKEN);
    sim.add_yeastar_client(YS_ID, YS_SECRET);
    sim
}

/// A config polling `base_url` with every collector of both providers.
pub fn config_yaml(base_url: &str, interval: &str, timeout: &str, max_staleness: &str) -> String {
    format!(
        r#"
defaults:
  interval: {interval}
  timeout: {timeout}
  max_staleness: {max_staleness}
acedata:
  - name: ace
    base_url: {base_url}
    token: {ACE_TOKEN}
yeastar:
  - name: ys
    base_url: {base_url}
    client_id: {YS_ID}
    client_secret: {YS_SECRET}
"#
    )
}

/// The collector `name` for the accounts of `config_yaml(base_url, …)`.
pub fn collector(base_url: &str, name: &str, upstream: &Upstream) -> Box<dyn Collector> {
    let config = Config::from_yaml(
        &config_yaml(base_url, "2s", "300ms", "1m"),
        &balance_exporter::providers::all(),
    )
    .unwrap();
    let metrics = ProviderMetrics::register(&Registry::new(), &providers::all());
    config
        .collectors(&metrics, upstream)
        .into_iter()
        .find(|s| s.collector.name() == name)
        .unwrap()
        .collector
}

/// One collection attempt that must be over within `budget`, and how long it took.
pub async fn attempt(
    c: &mut Box<dyn Collector>,
    budget: Duration,
) -> (Result<(), CollectError>, Duration) {
    let started = Instant::now();
    let r = c.collect(started + budget).await;
    (r, started.elapsed())
}

/// What a raw TCP peer answers.
#[derive(Debug, Clone)]
pub enum Raw {
    /// A complete answer.
    Fixed {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Headers announcing 1000 bytes, then one byte every 100 ms.
    SlowBody,
    /// A chunked body that never ends.
    Endless,
}

/// A minimal HTTP/1.1 peer for answers the simulator cannot give. Returns its address
/// and a count of the connections it accepted.
pub async fn raw_server(raw: Raw) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let raw = raw.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match raw {
                    Raw::Fixed {
                        status,
                        content_type,
                        body,
                    } => {
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(body.as_bytes()).await;
                    }
                    Raw::SlowBody => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
                        let _ = stream.write_all(head.as_bytes()).await;
                        for _ in 0..1000 {
                            if stream.write_all(b" ").await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Raw::Endless => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                        let _ = stream.write_all(head.as_bytes()).await;
                        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
                        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

/// A running app; shuts down when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> TestApp {
        let app = Application::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The app polling a fixed config given as YAML.
    pub async fn with_yaml(yaml: &str) -> TestApp {
        let config = Config::from_yaml(yaml, &balance_exporter::providers::all()).unwrap();
        TestApp::spawn(Settings::new(
            ConfigSource::Fixed(Box::new(config)),
            "127.0.0.1:0",
        ))
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The value of the series whose name and labels are exactly `series`
/// (e.g. `acedata_balance_credits{account="ace"}`).
pub fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Poll `f` every 50 ms until it returns `Some`; `None` only after [`PATIENCE`], a bound
/// that catches a hang and that a loaded machine never approaches on a healthy run.
pub async fn eventually<T, F, Fut>(mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh empty directory under the system temp dir, removed when the test ends,
/// failed or not.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "be-hardening-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Write `text` to `path` and make sure its modification time differs from before.
pub fn rewrite(path: &Path, text: &str) {
    let before = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    std::fs::write(path, text).unwrap();
    if let Some(before) = before {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(before + Duration::from_secs(2)).unwrap();
    }
}
