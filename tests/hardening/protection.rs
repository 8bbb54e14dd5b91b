//! `/metrics` protection (`--web.config.file`: TLS, client certificates, basic auth)
//! and an HTTP server that stays up under abuse.

use std::path::Path;
use std::time::Duration;

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::config::Config;
use balance_exporter::server::ServerLimits;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::*;

const USER: &str = "prometheus";
const PASSWORD: &str = "scrape-password-42";

/// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate.
struct Pki {
    dir: TempDir,
    ca_pem: String,
    client_identity_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = temp_dir(name);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["scraper".to_string()]).unwrap();
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        write(&dir.join("ca.crt"), &ca.pem());
        write(&dir.join("server.crt"), &server.pem());
        write(&dir.join("server.key"), &server_key.serialize_pem());
        Pki {
            dir,
            ca_pem: ca.pem(),
            client_identity_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
        }
    }

    fn client(&self, identity: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(5));
        if identity {
            b = b.identity(
                reqwest::Identity::from_pem(self.client_identity_pem.as_bytes()).unwrap(),
            );
        }
        b.build().unwrap()
    }
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

async fn app_with_web_config(web_config: &Path, limits: ServerLimits) -> TestApp {
    let sim = simulator().await;
    let config = Config::from_yaml(
        &config_yaml(&sim.base_url(), "10s", "1s", "1m"),
        &balance_exporter::providers::all(),
    )
    .unwrap();
    // The simulator lives as long as the test runtime.
    std::mem::forget(sim);
    TestApp::spawn(Settings {
        web_config: Some(web_config.to_path_buf()),
        limits,
        ..Settings::new(ConfigSource::Fixed(Box::new(config)), "127.0.0.1:0")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_protect_every_path() {
    let pki = Pki::new("tls");
    let web = pki.dir.join("web.yml");
    write(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\nbasic_auth_users:\n  {USER}: {}\n",
            hash(PASSWORD)
        ),
    );
    let app = app_with_web_config(&web, ServerLimits::default()).await;
    let base = format!("https://{}", app.addr);
    let client = pki.client(false);

    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic"), "{challenge}");

    for (user, password) in [(USER, "wrong"), ("nobody", PASSWORD), ("", "")] {
        let r = client
            .get(format!("{base}/metrics"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}:{password}");
    }
    // As in the exporter-toolkit, every path needs the credentials.
    for path in [
        "/",
        "/-/healthy",
        "/-/ready",
        "/status",
        "/status?format=json",
        "/nope",
    ] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    for _ in 0..3 {
        let r = client
            .get(format!("{base}/metrics"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("balance_exporter_build_info"));
    }
    let r = client
        .get(format!("{base}/-/healthy"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Plain HTTP on the TLS port, and TLS 1.2 below min_version, get nothing.
    assert!(reqwest::get(app.url("/metrics")).await.is_err());
    let tls12 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(tls12.get(format!("{base}/metrics")).send().await.is_err());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_verified() {
    let pki = Pki::new("mtls");
    let web = pki.dir.join("web.yml");
    write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let app = app_with_web_config(&web, ServerLimits::default()).await;
    let url = format!("https://{}/metrics", app.addr);
    assert!(pki.client(false).get(&url).send().await.is_err());
    let r = pki.client(true).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A certificate from another CA is refused.
    let other = Pki::new("mtls-other");
    let stranger = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(other.client_identity_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(stranger.get(&url).send().await.is_err());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_is_reread_when_it_changes() {
    let dir = temp_dir("web-reload");
    let web = dir.join("web.yml");
    write(
        &web,
        &format!("basic_auth_users:\n  {USER}: {}\n", hash("first")),
    );
    let app = app_with_web_config(&web, ServerLimits::default()).await;
    let client = reqwest::Client::new();
    let status = |password: &'static str| {
        let (client, url) = (client.clone(), app.url("/metrics"));
        async move {
            client
                .get(url)
                .basic_auth(USER, Some(password))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("first").await, 200);
    assert_eq!(status("second").await, 401);

    rewrite(
        &web,
        &format!("basic_auth_users:\n  {USER}: {}\n", hash("second")),
    );
    let switched = eventually(|| async { (status("second").await == 200).then_some(()) }).await;
    assert!(switched.is_some());
    assert_eq!(status("first").await, 401);
    // A broken new version leaving the previous one in force is a unit test of the
    // watcher (`web_config::watch`): it can tell that the file was read, which a
    // request from here cannot.
    app.stop().await;
}

#[tokio::test]
async fn invalid_web_config_stops_the_start_with_every_problem_named() {
    let dir = temp_dir("web-invalid");
    let web = dir.join("web.yml");
    write(
        &web,
        "tls_server_config:\n  cert_file: missing.crt\n  client_auth_type: Sometimes\nbasic_auth_users:\n  alice: plain-text\nextra: 1\n",
    );
    let config = Config::from_yaml(
        &config_yaml("http://127.0.0.1:9", "10s", "1s", "1m"),
        &balance_exporter::providers::all(),
    )
    .unwrap();
    let err = Application::build(Settings {
        web_config: Some(web.clone()),
        ..Settings::new(ConfigSource::Fixed(Box::new(config)), "127.0.0.1:0")
    })
    .await
    .err()
    .expect("rejected");
    let text = err.to_string();
    for needle in [
        "web.yml",
        "tls_server_config.key_file: is required",
        "tls_server_config.cert_file: cannot read a PEM certificate from",
        "missing.crt",
        "tls_server_config.client_auth_type: `Sometimes` is not one of",
        "basic_auth_users.alice: is not a bcrypt hash",
        "extra: unknown key",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("plain-text"), "{text}");
}

/// Send `request` on `stream` and read one response with a `content-length`.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

async fn open_app(limits: ServerLimits) -> TestApp {
    let sim = simulator().await;
    let config = Config::from_yaml(
        &config_yaml(&sim.base_url(), "10s", "1s", "1m"),
        &balance_exporter::providers::all(),
    )
    .unwrap();
    std::mem::forget(sim);
    TestApp::spawn(Settings {
        limits,
        ..Settings::new(ConfigSource::Fixed(Box::new(config)), "127.0.0.1:0")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_paths_sizes_and_keep_alive() {
    let app = open_app(ServerLimits::default()).await;
    let client = reqwest::Client::new();
    let r = client.post(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = client.delete(app.url("/-/healthy")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        client
            .get(app.url("/-/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        client.get(app.url("/nope")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        client
            .get(app.url("/metrics/x"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Oversized heads and announced bodies.
    let r = client
        .get(app.url("/metrics"))
        .header("x-padding", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let mut req = client.get(app.url("/metrics"));
    for i in 0..100 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    let r = client
        .post(app.url("/-/reload"))
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await;
    // The server may close before the client finished sending.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }

    // HTTP/1.1 keep-alive: several requests on one connection.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    for path in ["/-/healthy", "/metrics", "/-/healthy"] {
        let resp = exchange(&mut s, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_half_open_connections_do_not_starve_metrics() {
    let app = open_app(ServerLimits::default()).await;
    let mut held = Vec::new();
    for _ in 0..400 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        // An unfinished request head: the slowloris pattern.
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ")
            .await
            .unwrap();
        held.push(s);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        let r = client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
        let took = started.elapsed();
        // Starved, it would wait for the 10 s header timeout to free a slot; a loaded
        // machine is slow, but not that slow.
        assert!(took < Duration::from_secs(5), "scrape took {took:?}");
    }
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_and_free_their_slot() {
    let limits = ServerLimits {
        max_connections: 16,
        header_read_timeout: Duration::from_millis(400),
        ..ServerLimits::default()
    };
    let app = open_app(limits).await;

    // A head that never ends is closed after the header timeout.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow client never cut off");
    // At the 400 ms header timeout; generously bounded for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));

    // Every slot taken by silent connections: a scrape waits, then gets through once
    // the header timeout frees one. The kernel hands connections to `accept` in the
    // order they were made, so the scrape, made after all 16, can only be served once
    // the server has cut one of them off; on loopback that close has reached the
    // client by the time the response has.
    let silent: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let s = std::net::TcpStream::connect(app.addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let cut_off = |s: &std::net::TcpStream| {
        use std::io::Read as _;
        !matches!((&*s).read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let started = Instant::now();
    let r = tokio::time::timeout(PATIENCE, reqwest::get(app.url("/metrics")))
        .await
        .expect("the scrape never got a slot")
        .unwrap();
    assert_eq!(r.status(), 200);
    // Once the 400 ms header timeout frees a slot; never stuck behind the silent ones.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        silent.iter().any(cut_off),
        "the scrape was served while every silent connection still held its slot"
    );
    // And every one of them held a slot: each is cut off in turn.
    let all_cut = eventually(|| async { silent.iter().all(cut_off).then_some(()) }).await;
    assert!(all_cut.is_some(), "a silent connection was never cut off");
    app.stop().await;
}

#[test]
fn the_binary_rejects_an_invalid_web_config_at_check_and_at_start() {
    let dir = temp_dir("web-cli");
    let config = dir.join("config.yaml");
    write(
        &config,
        &config_yaml("http://127.0.0.1:9", "10s", "1s", "1m"),
    );
    let web = dir.join("web.yml");
    write(
        &web,
        "tls_server_config:\n  cert_file: nope.crt\nbasic_auth_users:\n  alice: plain-text-password\n",
    );
    let bin = env!("CARGO_BIN_EXE_balance-exporter");
    for extra in [
        &["--config.check"][..],
        &["--web.listen-address", "127.0.0.1:0"][..],
    ] {
        let out = std::process::Command::new(bin)
            .args(["--config.file", config.to_str().unwrap()])
            .args(["--web.config.file", web.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {text}");
        for needle in [
            "tls_server_config.key_file: is required",
            "nope.crt",
            "basic_auth_users.alice: is not a bcrypt hash",
        ] {
            assert!(
                text.contains(needle),
                "{extra:?}: missing {needle:?} in {text}"
            );
        }
        assert!(!text.contains("plain-text-password"), "{text}");
    }
    write(
        &web,
        &format!("basic_auth_users:\n  alice: {}\n", hash("pw")),
    );
    let out = std::process::Command::new(bin)
        .args(["--config.check", "--config.file", config.to_str().unwrap()])
        .args(["--web.config.file", web.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("web configuration is valid"));
}
