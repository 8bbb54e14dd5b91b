//! The real binary at `--log.level debug`, in both log formats, against the simulator
//! with faults on every route, token renewals, reloads (HTTP and SIGHUP, valid and
//! invalid) and rejected scrapes: no secret appears in stdout, stderr, `/metrics`, `/status` or
//! any error body.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use balance_exporter::simulator::acedata::APPLICATION_TOKEN_PREFIX;
use balance_exporter::simulator::{Fault, Route, SimOptions, Simulator};

use crate::support::*;

// Every test secret carries the marker, so one grep finds any of them.
const MARKER: &str = "SECRET";
const ACE: &str = "ace-SECRET-token-7f3a9c";
const ACE_ENV: &str = "ace-SECRET-env-token-0d0d";
const YS_CLIENT_SECRET: &str = "ys-SECRET-client-secret-b21d";
const YS_STATIC: &str = "ys-SECRET-static-token-55e0";
const WEB_PASSWORD: &str = "web-SECRET-password-91c4";
const ENV_NAME: &str = "BE_HARDENING_ACE_TOKEN";

struct Output {
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Output {
    fn capture(stream: impl Read + Send + 'static) -> Output {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Output { lines, reader }
    }

    /// Everything the process wrote, once its end of the pipe is closed.
    async fn finish(self) -> String {
        let reader = self.reader;
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        let lines = self.lines.lock().unwrap();
        lines.join("\n")
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    async fn wait_for(&self, what: &str, also: &str) -> String {
        let found = eventually(|| async {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(what) && l.contains(also))
                .cloned()
        })
        .await;
        found.unwrap_or_else(|| panic!("no line with {what:?} and {also:?} in:\n{}", self.text()))
    }
}

fn config(base_url: &str, dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
defaults:
  interval: 1s
  timeout: 500ms
  max_staleness: 3s
acedata:
  - name: ace
    base_url: {base_url}
    token_file: {ace}
  - name: ace-env
    base_url: {base_url}
    token_env: {ENV_NAME}
yeastar:
  - name: ys
    base_url: {base_url}
    client_id: {YS_ID}
    client_secret_file: {ys}
  - name: ys-static
    base_url: {base_url}
    access_token_file: {ys_static}
{extra}"#,
        ace = dir.join("ace-token").display(),
        ys = dir.join("ys-secret").display(),
        ys_static = dir.join("ys-static").display(),
    )
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

async fn run(format: &str) {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    sim.add_acedata_account(ACE);
    sim.add_yeastar_client(YS_ID, YS_CLIENT_SECRET);
    sim.add_yeastar_static_token(YS_STATIC);
    // ACE_ENV is deliberately unknown upstream: it is rejected with 401 every time.
    let dir = temp_dir(&format!("secrets-{format}"));
    write(&dir.join("ace-token"), ACE);
    write(&dir.join("ys-secret"), YS_CLIENT_SECRET);
    write(&dir.join("ys-static"), YS_STATIC);
    let config_path = dir.join("config.yaml");
    write(&config_path, &config(&sim.base_url(), &dir, ""));
    let web_path = dir.join("web.yml");
    write(
        &web_path,
        &format!(
            "basic_auth_users:\n  prometheus: {}\n",
            bcrypt::hash(WEB_PASSWORD, 4).unwrap()
        ),
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_balance-exporter"))
        .args(["--config.file", config_path.to_str().unwrap()])
        .args(["--web.config.file", web_path.to_str().unwrap()])
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.enable-lifecycle",
        ])
        .args(["--log.level", "debug", "--log.format", format])
        .env(ENV_NAME, ACE_ENV)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Output::capture(child.stdout.take().unwrap());
    let stderr = Output::capture(child.stderr.take().unwrap());

    let listening = stderr.wait_for("listening", "127.0.0.1:").await;
    let port: u16 = listening
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    let get = |path: &str, password: Option<&str>| {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(p) = password {
            req = req.basic_auth("prometheus", Some(p));
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let ready =
        eventually(|| async { (get("/-/ready", Some(WEB_PASSWORD)).await.0 == 200).then_some(()) })
            .await;
    assert!(ready.is_some(), "{}", stderr.text());
    // The applications collector's series, scraped while its values are fresh (they are
    // withdrawn max_staleness after the token goes bad below).
    let with_keys = eventually(|| async {
        let body = get("/metrics", Some(WEB_PASSWORD)).await.1;
        body.contains("acedata_credential_used_amount{")
            .then_some(body)
    })
    .await;
    bodies.push(with_keys.expect("the applications collector exported its series"));

    // Faults on every route, a few times each, in turn.
    for route in Route::all() {
        for fault in [
            Fault::Status(401),
            Fault::Status(403),
            Fault::Status(500),
            Fault::RateLimited {
                retry_after: Some(1),
            },
            Fault::MalformedJson,
            Fault::WrongTypes,
            Fault::Html,
            Fault::EmptyBody,
            Fault::ApiError,
            Fault::HugeBody(5 * 1024 * 1024),
        ] {
            sim.inject_fault(route, fault, Some(1));
        }
    }
    // Until every reason has been seen (each fault is used once, retries included).
    let seen_all = eventually(|| async {
        let log = stderr.text();
        [
            "unauthorized",
            "rate_limited",
            "http_status",
            "decode",
            "api_error",
            "retrying",
        ]
        .iter()
        .all(|r| log.contains(r))
        .then_some(())
    })
    .await;
    assert!(seen_all.is_some(), "{}", stderr.text());
    sim.clear_faults();
    // An upstream that echoes the credential it was sent: the bearer token, the
    // client secret, the refresh token. Only redacted messages may come out.
    for route in Route::all() {
        sim.inject_fault(route, Fault::EchoCredentials, None);
    }
    let echoed = eventually(|| async {
        let log = stderr.text();
        (log.contains("Invalid client_secret [redacted]")
            && log.contains("Invalid token: Bearer [redacted]")
            && log.contains("Invalid access token [redacted]"))
        .then_some(())
    })
    .await;
    assert!(echoed.is_some(), "{}", stderr.text());
    bodies.push(get("/status", Some(WEB_PASSWORD)).await.1);
    sim.clear_faults();
    // Renewed tokens must not leak either: wait until the exporter has fetched one.
    let issued = sim.yeastar_tokens_issued();
    sim.expire_yeastar_tokens();
    sim.revoke_yeastar_refresh_tokens();
    let renewed =
        eventually(|| async { (sim.yeastar_tokens_issued() > issued).then_some(()) }).await;
    assert!(renewed.is_some(), "no token renewed:\n{}", stderr.text());

    // Rejected and odd requests: their bodies are checked too.
    bodies.push(get("/metrics", Some(WEB_PASSWORD)).await.1);
    bodies.push(get("/status", Some(WEB_PASSWORD)).await.1);
    bodies.push(get("/status?format=json", Some(WEB_PASSWORD)).await.1);
    for (path, password, status) in [
        ("/metrics", Some("wrong"), 401),
        ("/metrics", None, 401),
        ("/status", None, 401),
        ("/status?format=json", Some("wrong"), 401),
        ("/nope", Some(WEB_PASSWORD), 404),
    ] {
        let (s, body) = get(path, password).await;
        assert_eq!(s, status, "{path}");
        bodies.push(body);
    }
    let bad_basic = client
        .get(format!("{base}/metrics"))
        .basic_auth(WEB_PASSWORD, Some(WEB_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_basic.status(), 401);
    bodies.push(bad_basic.text().await.unwrap());

    // A reload whose new config holds secrets in the wrong places is rejected, and
    // the error body and log line do not repeat them.
    rewrite(
        &config_path,
        &config(
            &sim.base_url(),
            &dir,
            &format!(
                "  - name: broken\n    access_token: {YS_STATIC}\n    client_id: x\n    colour: {ACE}\n\
                 \x20   interval: {ACE}\n    base_url: {ACE}\n    low_balance_threshold: {ACE}\n\
                 max_concurrent_requests: \"{ACE}\"\n"
            ),
        ),
    );
    let r = client
        .post(format!("{base}/-/reload"))
        .basic_auth("prometheus", Some(WEB_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    bodies.push(r.text().await.unwrap());
    stderr
        .wait_for("reload rejected", "previous configuration keeps running")
        .await;
    // The status page shows the rejected reload's problems, not the secrets in it.
    let (s, page) = get("/status", Some(WEB_PASSWORD)).await;
    assert_eq!(s, 200);
    assert!(page.contains("rejected"), "{page}");
    bodies.push(page);
    // Each mistyped key is named, with what was expected.
    let (_, json) = get("/status?format=json", Some(WEB_PASSWORD)).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let problems = v["last_reload"]["problems"].as_str().unwrap_or_default();
    for key in [
        "interval: is not a duration",
        "base_url: is not a URL",
        "low_balance_threshold: expected",
    ] {
        assert!(
            problems.contains(&format!("yeastar[2].{key}")),
            "{problems}"
        );
    }
    bodies.push(json);

    // SIGHUP: an invalid config is rejected with an error line, a valid one is taken.
    signal(&child, "HUP");
    let rejected = eventually(|| async {
        let n = stderr
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("reload rejected"))
            .count();
        (n >= 2).then_some(())
    })
    .await;
    assert!(
        rejected.is_some(),
        "SIGHUP did not reload:\n{}",
        stderr.text()
    );
    write(&config_path, &config(&sim.base_url(), &dir, ""));
    let reloads_before = stderr.text().matches("configuration reloaded").count();
    signal(&child, "HUP");
    let reloaded = eventually(|| async {
        (stderr.text().matches("configuration reloaded").count() > reloads_before).then_some(())
    })
    .await;
    assert!(reloaded.is_some(), "{}", stderr.text());
    // The reloaded configuration's collectors have polled: every account asked again.
    let asked = sim.total_requests();
    let polled = eventually(|| async {
        let ready = get("/-/ready", Some(WEB_PASSWORD)).await.0 == 200;
        (ready && sim.total_requests() >= asked + 4).then_some(())
    })
    .await;
    assert!(polled.is_some(), "{}", stderr.text());
    bodies.push(get("/metrics", Some(WEB_PASSWORD)).await.1);
    bodies.push(get("/status?format=json", Some(WEB_PASSWORD)).await.1);

    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let log = stderr.finish().await;
    let out = stdout.finish().await;
    // The run did exercise what it claims to.
    for needle in [
        "collection failed",
        "retrying",
        "unauthorized",
        "rate_limited",
        "http_status",
        "decode",
        "api_error",
        "reload rejected",
        "configuration reloaded",
        "stopped",
    ] {
        assert!(
            log.contains(needle),
            "{format} log lacks {needle:?}:\n{log}"
        );
    }
    let mut secrets: Vec<String> = [ACE, ACE_ENV, YS_CLIENT_SECRET, YS_STATIC, WEB_PASSWORD]
        .map(String::from)
        .to_vec();
    // The tokens the simulator issued and the exporter sent.
    for req in sim.request_log() {
        if let Some(token) = req
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            secrets.push(token.to_string());
        }
        if let Some(t) = req.form_param("refresh_token") {
            secrets.push(t);
        }
    }
    assert!(secrets.len() > 8, "issued tokens seen: {secrets:?}");
    // The API keys of the Ace Data Cloud applications (all start with the prefix,
    // checked below, as is the token in the simulator's wrong-types answer).
    for app in sim.applications(ACE) {
        for key in app["credentials"].as_array().unwrap() {
            secrets.push(key["token"].as_str().unwrap().to_string());
        }
    }
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("acedata_credential_used_amount{")),
        "the applications collector ran:\n{bodies:?}"
    );
    let everything = [log.as_str(), out.as_str()]
        .into_iter()
        .chain(bodies.iter().map(String::as_str));
    for (i, text) in everything.enumerate() {
        assert!(
            !text.contains(MARKER) && !text.contains(APPLICATION_TOKEN_PREFIX),
            "marker in output #{i} ({format}):\n{text}"
        );
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret in output #{i} ({format}):\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_logfmt() {
    run("logfmt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_json() {
    run("json").await;
}

/// The real binary on `127.0.0.1:0` at `--log.level debug` (logfmt): the child, its
/// captured stderr and its base URL.
async fn start_debug(config: &std::path::Path) -> (Child, Output, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_balance-exporter"))
        .args(["--config.file", config.to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args(["--log.level", "debug"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Output::capture(child.stderr.take().unwrap());
    let listening = stderr.wait_for("listening", "127.0.0.1:").await;
    let port: String = listening
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (child, stderr, format!("http://127.0.0.1:{port}"))
}

async fn stop(child: Child, stderr: Output) -> String {
    signal(&child, "TERM");
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    stderr.finish().await
}

/// The last error message of the (account, collector) row on `/status?format=json`,
/// once it contains `what`.
async fn status_message(base: &str, account: &str, collector: &str, what: &str) -> Option<String> {
    eventually(|| async {
        let v: serde_json::Value = reqwest::get(format!("{base}/status?format=json"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["tasks"]
            .as_array()?
            .iter()
            .filter(|t| t["account"] == account && t["collector"] == collector)
            .filter_map(|t| t["last_error"]["message"].as_str())
            .find(|m| m.contains(what))
            .map(String::from)
    })
    .await
}

/// The exporter's own messages about a token file (empty, missing) name the file and
/// keep every word, on the status page and in the log: the redactor masks secrets,
/// not paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_problems_keep_their_words_and_paths() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    sim.add_acedata_account(ACE);
    let dir = temp_dir("own-words");
    let token = dir.join("acetok.txt");
    write(&token, ACE);
    let config_path = dir.join("config.yaml");
    write(
        &config_path,
        &format!(
            "defaults:\n  interval: 1s\n  timeout: 500ms\n  max_staleness: 1h\n\
             acedata:\n  - name: ace\n    base_url: {}\n    token_file: {}\n    collectors: [balance]\n",
            sim.base_url(),
            token.display()
        ),
    );
    let (child, stderr, base) = start_debug(&config_path).await;

    rewrite(&token, "\n");
    let empty = format!("no platform token: {} is empty", token.display());
    let shown = status_message(&base, "ace", "acedata_balance", "is empty").await;
    assert_eq!(shown.as_deref(), Some(empty.as_str()), "{}", stderr.text());
    stderr.wait_for("collection failed", &empty).await;
    let page = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&empty), "{page}");

    std::fs::remove_file(&token).unwrap();
    let missing = format!(
        "no platform token: cannot read {}: No such file or directory",
        token.display()
    );
    let shown = status_message(&base, "ace", "acedata_balance", "cannot read").await;
    assert!(
        shown.as_deref().is_some_and(|m| m.starts_with(&missing)),
        "{shown:?}\n{}",
        stderr.text()
    );
    stderr.wait_for("collection failed", &missing).await;
    let log = stop(child, stderr).await;
    assert!(!log.contains(ACE) && !log.contains(MARKER), "{log}");
}

/// An upstream 5xx whose message names the credential it was sent (`… token <value>`)
/// is retried; the retry's debug line, the failure line and the status page show it
/// redacted: the Ace Data Cloud token, a Yeastar client secret, a Yeastar access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_echoing_the_token_never_reaches_the_debug_log() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    sim.add_acedata_account(ACE);
    sim.add_yeastar_client(YS_ID, YS_CLIENT_SECRET);
    sim.add_yeastar_static_token(YS_STATIC);
    let dir = temp_dir("echo-5xx");
    let config_path = dir.join("config.yaml");
    // A long interval: a 5xx is retried while a try still fits before the next poll.
    write(
        &config_path,
        &format!(
            "defaults:\n  interval: 1m\n  timeout: 2s\n\
             acedata:\n  - name: ace\n    base_url: {b}\n    token: {ACE}\n    collectors: [balance]\n\
             yeastar:\n  - name: ys\n    base_url: {b}\n    client_id: {YS_ID}\n    client_secret: {YS_CLIENT_SECRET}\n\
             \x20 - name: ys-static\n    base_url: {b}\n    access_token: {YS_STATIC}\n",
            b = sim.base_url()
        ),
    );
    // The token route fails for `ys`, the balance route for `ys-static` (`ys` never
    // gets that far).
    for route in [
        Route::AcedataBalance,
        Route::YeastarToken,
        Route::YeastarBalance,
    ] {
        sim.inject_fault(route, Fault::EchoCredentialsServerError, None);
    }
    let (child, stderr, base) = start_debug(&config_path).await;
    const SHOWN: &str = "checking token [redacted]";
    // At least one retry per account, each with the credential redacted.
    let retried = eventually(|| async {
        let lines = stderr.lines.lock().unwrap();
        let retries = lines
            .iter()
            .filter(|l| l.contains("retrying") && l.contains(SHOWN))
            .count();
        (retries >= 3).then_some(())
    })
    .await;
    assert!(retried.is_some(), "{}", stderr.text());
    for (account, collector) in [
        ("ace", "acedata_balance"),
        ("ys", "yeastar_balance"),
        ("ys-static", "yeastar_balance"),
    ] {
        let shown = status_message(&base, account, collector, "checking token").await;
        assert!(
            shown.as_deref().is_some_and(|m| m.contains(SHOWN)),
            "{account}: {shown:?}\n{}",
            stderr.text()
        );
        stderr
            .wait_for("collection failed", &format!("account={account} "))
            .await;
    }
    let log = stop(child, stderr).await;
    for s in [ACE, YS_CLIENT_SECRET, YS_STATIC] {
        assert!(!log.contains(s), "{s} in:\n{log}");
    }
    assert!(!log.contains(MARKER), "{log}");
}
