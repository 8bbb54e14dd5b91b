//! The server under a slow encode: a rebuild of the exposition never holds an async
//! worker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::config::Config;
use balance_exporter::metrics::{Exposition, GaugeFamily};

use crate::helpers::PATIENCE;

/// An exporter with no account, run on a runtime of ONE thread in a thread of its own
/// (so that anything that blocks that thread blocks the whole server), with the
/// exposition it serves. Dropping the sender stops it.
fn one_thread_exporter() -> (SocketAddr, std::sync::Arc<Exposition>, mpsc::Sender<()>) {
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // One account whose attempts fail at once, an hour apart.
            let yaml = "acedata:\n  - name: a\n    token: t\n    base_url: http://127.0.0.1:1\n    interval: 1h\n";
            let config = Config::from_yaml(yaml, &balance_exporter::providers::all()).unwrap();
            let settings = Settings::new(ConfigSource::Fixed(Box::new(config)), "127.0.0.1:0");
            let app = Application::build(settings).await.unwrap();
            ready_tx.send((app.local_addr(), app.exposition())).unwrap();
            let stop = tokio::task::spawn_blocking(move || {
                let _ = stopped.recv();
            });
            app.run_until_stopped(async move {
                let _ = stop.await;
            })
            .await;
        });
    });
    let (addr, exposition) = ready.recv_timeout(PATIENCE).unwrap();
    // The first attempt is over: the collector writes nothing for an hour.
    let deadline = Instant::now() + PATIENCE;
    while get(addr, "/-/ready", PATIENCE).unwrap().0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    (addr, exposition, stop)
}

/// `GET path` on a connection of its own; the status and body, or an error when no
/// answer came within `within`.
fn get(addr: SocketAddr, path: &str, within: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(within))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Ok((status, body.unwrap_or_default()))
}

/// Label sets handed to `replace` one by one; the first waits until `release` says
/// so. `replace` holds the family's locks while it reads them: an encode of the
/// family cannot finish meanwhile.
struct Held {
    holding: Option<mpsc::Sender<()>>,
    release: mpsc::Receiver<()>,
    left: usize,
}

impl Iterator for Held {
    type Item = (Vec<String>, f64);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(h) = self.holding.take() {
            h.send(()).unwrap();
            let _ = self.release.recv();
        }
        self.left = self.left.checked_sub(1)?;
        Some((vec![format!("p{}", self.left)], 1.0))
    }
}

/// A scrape whose rebuild cannot finish (the encoder waits for a family a writer
/// holds) must not stop the server: `/-/healthy` answers meanwhile, even with one
/// runtime thread, and the scrape gets the new text once the writer is done.
#[test]
fn a_stuck_rebuild_does_not_stop_the_server() {
    let (addr, exposition, stop) = one_thread_exporter();
    let fam = GaugeFamily::new(exposition.registry(), "t_stuck", "Stuck.", &["package"]);
    let (holding_tx, holding) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        fam.replace(
            "a",
            Held {
                holding: Some(holding_tx),
                release: release_rx,
                left: 3,
            },
        );
    });
    holding.recv_timeout(PATIENCE).unwrap();
    let encodes = exposition.encodes();
    let scrape = std::thread::spawn(move || get(addr, "/metrics", PATIENCE));
    // The scrape's rebuild has begun: it waits for the writer.
    let deadline = Instant::now() + PATIENCE;
    while exposition.encodes() == encodes {
        assert!(
            Instant::now() < deadline,
            "the scrape never started a rebuild"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let healthy = get(addr, "/-/healthy", Duration::from_secs(10));
    release.send(()).unwrap();
    writer.join().unwrap();
    let (status, body) = scrape.join().unwrap().unwrap();
    assert_eq!(
        healthy.as_ref().map(|(s, _)| *s).ok(),
        Some(200),
        "/-/healthy during a rebuild: {healthy:?}"
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("t_stuck{account=\"a\",package=\"p0\"} 1\n"),
        "{body}"
    );
    drop(stop);
}
