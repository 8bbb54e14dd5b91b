//! The server under a slow encode (a rebuild of the exposition never holds a runtime
//! thread) and a slow reader (who cannot keep an old exposition in memory).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::config::Config;
use balance_exporter::metrics::{Exposition, GaugeFamily};
use balance_exporter::server::ServerLimits;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A scrape whose rebuild takes long (about 15 MB of text, compressed by a debug
/// build) does not stop the server: `/-/healthy` answers while the rebuild is under
/// way, even with one runtime thread. The rebuild is seen under way as no compressed
/// text being held: the old one is let go when it starts, the new one exists when it
/// ends.
#[test]
fn a_rebuild_does_not_stop_the_server() {
    let (addr, exposition, stop) = one_thread_exporter();
    let fam = GaugeFamily::new(exposition.registry(), "t_slow", "Slow.", &["package"]);
    let long = "x".repeat(200);
    let fill = |round: f64| {
        for a in 0..1000 {
            let series =
                (0..60).map(|p| (vec![format!("package-{p}-{long}")], round + f64::from(p)));
            fam.replace(&format!("account-{a}"), series);
        }
    };
    fill(1.0);
    assert_eq!(get(addr, "/metrics", PATIENCE).unwrap().0, 200);
    assert_eq!(exposition.texts_held(), 1);
    fill(2.0);
    let scrape = std::thread::spawn(move || get(addr, "/metrics", PATIENCE));
    let deadline = Instant::now() + PATIENCE;
    while exposition.texts_held() != 0 {
        assert!(
            Instant::now() < deadline,
            "the scrape never started a rebuild"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let healthy = get(addr, "/-/healthy", PATIENCE);
    let rebuilding = exposition.texts_held() == 0;
    let (status, body) = scrape.join().unwrap().unwrap();
    assert_eq!(
        healthy.as_ref().map(|(s, _)| *s).ok(),
        Some(200),
        "{healthy:?}"
    );
    assert!(rebuilding, "/-/healthy answered only after the rebuild");
    assert_eq!(status, 200);
    assert!(body.contains(&format!(
        "t_slow{{account=\"account-9\",package=\"package-2-{long}\"}} 4\n"
    )));
    drop(stop);
}

/// The send timeout of the slow-reader test.
const STALL: Duration = Duration::from_secs(20);

/// A client that asks for a large exposition and then reads nothing cannot keep it in
/// memory: once the exposition changed, the text it holds is let go when its
/// response made no progress for the send timeout (here [`STALL`] instead of 30 s: long
/// enough for the exposition to change and be scraped again on a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_lets_go_of_an_old_exposition() {
    let yaml =
        "acedata:\n  - name: a\n    token: t\n    base_url: http://127.0.0.1:1\n    interval: 1h\n";
    let config = Config::from_yaml(yaml, &balance_exporter::providers::all()).unwrap();
    let settings = Settings {
        limits: ServerLimits {
            send_timeout: STALL,
            ..ServerLimits::default()
        },
        ..Settings::new(ConfigSource::Fixed(Box::new(config)), "127.0.0.1:0")
    };
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let exposition = app.exposition();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // About 16 MB of text: far more than the sockets' buffers (the kernel lets a
    // send buffer grow to 4 MB), in long lines so that it takes few series.
    let fam = std::sync::Arc::new(GaugeFamily::new(
        exposition.registry(),
        "t_large",
        "Large.",
        &["package"],
    ));
    let long = "x".repeat(200);
    // Off the runtime's threads, which serve the slow reader meanwhile.
    let fill = |round: f64| {
        let (fam, long) = (fam.clone(), long.clone());
        tokio::task::spawn_blocking(move || {
            for a in 0..1000 {
                let series =
                    (0..60).map(|p| (vec![format!("package-{p}-{long}")], round + f64::from(p)));
                fam.replace(&format!("account-{a}"), series);
            }
        })
    };
    fill(1.0).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(exposition.texts_held(), 1);

    // The slow reader: a small receive window, the request, the first megabyte of the
    // answer (the response is under way), then nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 16 * 1024];
    let mut read = 0;
    while read < 1 << 20 {
        let n = slow.read(&mut buf).await.unwrap();
        assert!(n > 0, "the response ended after {read} bytes");
        read += n;
    }

    // The exposition changes and is scraped again: a second text, while the reader
    // holds the first one (its response is not dropped before the send timeout).
    fill(2.0).await.unwrap();
    let fresh = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(fresh.contains(&format!(
        "t_large{{account=\"account-7\",package=\"package-3-{long}\"}} 5\n"
    )));
    assert_eq!(
        exposition.texts_held(),
        2,
        "the reader holds the old text ({read} bytes read, text {})",
        fresh.len()
    );

    // It reads no more: its response is dropped, and the old text with it.
    let deadline = Instant::now() + PATIENCE;
    while exposition.texts_held() > 1 {
        assert!(
            Instant::now() < deadline,
            "{} texts still held",
            exposition.texts_held()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection was closed: what is left to read ends short of the body.
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest).await;
    assert!(
        read + rest.len() < fresh.len(),
        "{} bytes",
        read + rest.len()
    );
    let _ = stop.send(());
    server.await.unwrap();
}
