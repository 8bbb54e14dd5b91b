//! The real binary: `--version`, `--config.check`, `--demo` end to end, log formats,
//! and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a wait goes on before the test calls it a hang. Waits end at the event
/// they mean; on a healthy run, however loaded the machine, this is never approached.
const PATIENCE: Duration = Duration::from_secs(60);

const BIN: &str = env!("CARGO_BIN_EXE_balance-exporter");

/// A directory of the test's own, removed when the test ends, failed or not.
struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let p = std::env::temp_dir().join(format!("be-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    Scratch(p)
}

#[test]
fn version_names_version_revision_and_compiler() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("balance-exporter {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains("revision") && text.contains("rustc"),
        "{text}"
    );
}

/// The glibc build runs on jemalloc with the options of `heap::JEMALLOC_CONF`, read
/// through the symbol the binary exports (jemalloc's `confirm_conf` lists each source
/// of options and every value it set).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_glibc_build_runs_on_jemalloc_with_its_options() {
    let out = Command::new(BIN)
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "confirm_conf:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stderr).unwrap();
    let conf = balance_exporter::heap::JEMALLOC_CONF;
    let conf = std::str::from_utf8(&conf[..conf.len() - 1]).unwrap();
    assert!(
        text.contains(&format!("global variable malloc_conf): \"{conf}\"")),
        "{text}"
    );
    for option in conf.split(',') {
        assert!(
            text.contains(&format!("Set conf value: {option}\n")),
            "{option} not set: {text}"
        );
    }
}

/// The shipped example configuration.
const EXAMPLE: &str = "config/balance-exporter.example.yaml";

/// `--config.check --config.file FILE`, then `flags`, with each variable of `env` set
/// (or, for `None`, removed).
fn config_check(
    file: impl AsRef<std::ffi::OsStr>,
    flags: &[&str],
    env: &[(&str, Option<&str>)],
) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["--config.check", "--config.file"])
        .arg(file)
        .args(flags);
    for (name, value) in env {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    cmd.output().unwrap()
}

#[test]
fn config_check_accepts_the_example_and_names_every_problem() {
    let dir = scratch("check");
    // The shipped example is valid once its secrets exist.
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let ok = config_check(
        EXAMPLE,
        &[],
        &[
            ("ACEDATA_TOKEN", Some("x")),
            ("YEASTAR_CLIENT_SECRET", Some("y")),
        ],
    );
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(example.contains("acedata:") && example.contains("yeastar:"));

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "defaults:\n  interval: 5 parsecs\nacedata:\n  - name: a\n    token: super-secret-token\n    token_env: ALSO\n    colour: red\nyeastar:\n  - name: y\n    client_id: id\n",
    )
    .unwrap();
    let out = config_check(&bad, &[], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "defaults.interval",
        "acedata[0].token: give exactly one of",
        "acedata[0].colour: unknown key",
        "yeastar[0].client_secret",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    assert!(!err.contains("super-secret-token"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let missing = config_check("/nonexistent/balance.yaml", &[], &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/balance.yaml"));
}

/// `--config.check` with a secret pasted under a key of every kind (duration, URL,
/// number, collector name, boolean): each key is named with what was expected, and
/// the secret is never printed. An unset secret variable is one problem.
#[test]
fn config_check_never_repeats_a_mistyped_value() {
    const SECRET: &str = "ysecret-BBB-4f2a";
    let dir = scratch("mistyped");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "acedata:\n  - name: a\n    token: t\n    interval: {SECRET}\n    base_url: {SECRET}\n\
             \x20   history: {{ page_size: {SECRET} }}\n    collectors: [{SECRET}]\n\
             \x20   initialize_distribution: {SECRET}\n"
        ),
    )
    .unwrap();
    let out = config_check(&bad, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ysecret") && !text.contains("4f2a"),
        "{text}"
    );
    for needle in [
        "(5 problems)",
        "acedata[0].interval: is not a duration",
        "acedata[0].base_url: is not a URL",
        "acedata[0].history.page_size: expected u32",
        "acedata[0].collectors[0]: is not a collector: expected one of balance,",
        "acedata[0].initialize_distribution: expected a boolean",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }

    let unset = config_check(
        EXAMPLE,
        &[],
        &[
            ("ACEDATA_TOKEN", Some("x")),
            ("YEASTAR_CLIENT_SECRET", None),
        ],
    );
    let text = String::from_utf8_lossy(&unset.stderr);
    assert!(
        text.contains("(1 problem)")
            && text.contains(
                "yeastar[0].client_secret_env: environment variable YEASTAR_CLIENT_SECRET is not set"
            ),
        "{text}"
    );
}

/// At start-up a secret that cannot be had (a missing or empty file, an unset
/// variable) is a configuration error: exit 1, naming the key and the source, never
/// a start that reports `unauthorized` later.
#[test]
fn an_unreadable_secret_at_start_up_exits_1() {
    let dir = scratch("startup-secret");
    let empty = dir.join("empty-token");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing-token");
    for (source, named) in [
        (
            format!("token_file: {}", empty.display()),
            format!("{} is empty", empty.display()),
        ),
        (
            format!("token_file: {}", missing.display()),
            format!("cannot read {}", missing.display()),
        ),
        (
            "token_env: BE_CLI_UNSET_TOKEN".to_string(),
            "environment variable BE_CLI_UNSET_TOKEN is not set".to_string(),
        ),
    ] {
        let cfg = dir.join("c.yaml");
        std::fs::write(&cfg, format!("acedata:\n  - name: a\n    {source}\n")).unwrap();
        let out = Command::new(BIN)
            .args(["--config.file", cfg.to_str().unwrap()])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env_remove("BE_CLI_UNSET_TOKEN")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{source}: {err}");
        assert!(
            err.contains("acedata[0].token_") && err.contains(&named),
            "{source}: {err}"
        );
    }
}

/// A running binary whose stderr lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        Running::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for a log line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Every line the process wrote: the reader ends at end of file, which
                // disconnects the channel.
                while let Ok(l) = self.lines.recv_timeout(PATIENCE) {
                    self.seen.push(l);
                }
                return (status, std::mem::take(&mut self.seen));
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    /// A failed test must not leave the process behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path)
}

fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf[9..12].parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn address_from(line: &str) -> String {
    line.split_whitespace()
        .find_map(|kv| {
            kv.strip_prefix("address=")
                .map(|a| a.trim_matches('"').to_string())
        })
        .or_else(|| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            v["address"].as_str().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no address in {line}"))
}

/// `--demo` on a free loopback port, once it answers `/-/ready` with 200; and its
/// address.
fn demo_ready() -> (Running, String) {
    let mut r = Running::start(&["--demo", "--web.listen-address", "127.0.0.1:0"]);
    let addr = address_from(&r.wait_line("listening"));
    let deadline = Instant::now() + PATIENCE;
    while http_get(&addr, "/-/ready").0 != 200 {
        assert!(Instant::now() < deadline, "demo never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    (r, addr)
}

#[test]
fn demo_serves_every_metric_and_exits_zero_on_sigterm() {
    let (r, addr) = demo_ready();
    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    for m in [
        "acedata_balance_credits{account=\"demo\"}",
        "acedata_distribution_next_level_spend_remaining{account=\"demo\"}",
        "acedata_distribution_history_records{account=\"demo\",invalid=\"true\"}",
        "yeastar_account_balance{account=\"demo\"}",
        "balance_exporter_build_info{",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(m), "{m} missing:\n{body}");
    }
    let (status, lines) = r.terminate();
    assert!(status.success(), "exit status {status:?}");
    let all = lines.join("\n");
    assert!(all.contains("stopped"), "{all}");
    for secret in ["demo-acedata-platform-token", "demo-yeastar-client-secret"] {
        assert!(!all.contains(secret), "secret in logs:\n{all}");
    }
}

/// `:port` (the form of the default `:9977`) answers on IPv6 and IPv4 loopback; a host
/// without IPv6 falls back to IPv4 only.
#[test]
fn port_only_listens_on_both_families() {
    let mut r = Running::start(&["--demo", "--web.listen-address", ":0"]);
    let addr = address_from(&r.wait_line("listening"));
    let port = addr.rsplit_once(':').unwrap().1;
    let has_ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut targets = vec![format!("127.0.0.1:{port}")];
    if has_ipv6 {
        assert_eq!(addr, format!("[::]:{port}"));
        targets.push(format!("[::1]:{port}"));
    } else {
        assert_eq!(addr, format!("0.0.0.0:{port}"));
    }
    for target in &targets {
        assert_eq!(
            http_get(target, "/-/healthy"),
            (200, "Healthy\n".into()),
            "{target}"
        );
    }
    let (status, _) = r.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn failed_attempts_log_one_json_line_with_collector_account_reason() {
    let dir = scratch("jsonlog");
    let cfg = dir.join("c.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &cfg,
        format!("acedata:\n  - name: acct-1\n    base_url: http://127.0.0.1:{port}\n    token: do-not-print-me\n    interval: 1s\n    collectors: [balance]\n"),
    )
    .unwrap();
    let mut r = Running::start(&[
        "--config.file",
        cfg.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
        "--log.level",
        "debug",
    ]);
    let line = r.wait_line("collection failed");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json log line");
    assert_eq!(v["collector"], "acedata_balance");
    assert_eq!(v["account"], "acct-1");
    assert_eq!(v["reason"], "connect");
    assert_eq!(v["level"], "WARN");
    let (status, lines) = r.terminate();
    assert!(status.success());
    assert!(!lines.join("\n").contains("do-not-print-me"));
}

#[test]
fn unusable_listen_address_fails_with_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--demo", "--web.listen-address", "256.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--web.listen-address=256.0.0.1:1: the host does not resolve"),
        "{err}"
    );
}

#[test]
fn every_listen_address_is_served() {
    let mut r = Running::start(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.listen-address",
        "127.0.0.1:0",
    ]);
    let addrs = address_from(&r.wait_line("listening"));
    let addrs: Vec<&str> = addrs.split(',').collect();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_ne!(addrs[0], addrs[1]);
    for addr in &addrs {
        assert_eq!(http_get(addr, "/-/healthy").0, 200, "{addr}");
        let (status, body) = http_get(addr, "/status");
        assert_eq!(status, 200, "{addr}");
        assert!(body.contains("balance-exporter status"), "{body}");
    }
    let (status, lines) = r.terminate();
    assert!(status.success(), "{status:?}\n{}", lines.join("\n"));
}

/// `--web.systemd-socket` under `systemd-socket-activate`, which opens the listening
/// socket and hands it over exactly as systemd does (`LISTEN_FDS`, `LISTEN_PID`, fd 3).
/// The tool comes with the Debian package `systemd`; `scripts/test.sh` installs it.
#[test]
fn systemd_socket_activation_hands_over_the_listening_socket() {
    let tool = "systemd-socket-activate";
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "{tool} not found: install the Debian package systemd (scripts/test.sh does)"
    );
    // A free port: bound, read and released; systemd-socket-activate binds it again.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(tool);
    cmd.args(["--listen", &listen, BIN, "--demo", "--web.systemd-socket"])
        // Ignored with the socket: it must not be bound.
        .args(["--web.listen-address", "127.0.0.1:1"]);
    let mut r = Running::spawn(cmd);
    // The tool binds, then starts the exporter on the first connection.
    r.wait_line(&format!("Listening on {listen}"));
    assert_eq!(http_get(&listen, "/-/healthy").0, 200);
    let line = r.wait_line("message=listening");
    assert_eq!(address_from(&line), listen, "{line}");
    let deadline = Instant::now() + PATIENCE;
    while http_get(&listen, "/-/ready").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http_get(&listen, "/status");
    assert_eq!(status, 200);
    assert!(body.contains("yeastar_balance"), "{body}");
    let (status, lines) = r.terminate();
    assert!(status.success(), "{}", lines.join("\n"));
}

#[test]
fn systemd_socket_without_activation_fails_with_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--demo", "--web.systemd-socket"])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--web.systemd-socket: LISTEN_PID is not set"),
        "{err}"
    );
    // Sockets meant for another process are not taken.
    let out = Command::new(BIN)
        .args(["--demo", "--web.systemd-socket"])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LISTEN_PID is 1, not this process"), "{err}");
}

#[test]
fn invalid_shard_flags_exit_non_zero_naming_the_problem() {
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--shard=3", "--total-shards=3"],
            "host-0",
            "--shard=3 is out of range for --total-shards=3",
        ),
        (
            &["--shard=auto", "--total-shards=3"],
            "balance-exporter",
            "does not end in an ordinal",
        ),
        (
            &["--shard=auto", "--total-shards=2"],
            "balance-exporter-2",
            "--shard=2 is out of range for --total-shards=2",
        ),
        (
            &["--shard=1", "--total-shards=0"],
            "x",
            "--total-shards must be at least 1",
        ),
    ];
    for (args, host, needle) in cases {
        let out = Command::new(BIN)
            .args(args)
            .args(["--demo", "--web.listen-address=127.0.0.1:0"])
            .env("HOSTNAME", host)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// `--config.check` validates every account, whatever the shard flags say.
#[test]
fn config_check_validates_accounts_of_every_shard() {
    let dir = scratch("shardcheck");
    let path = dir.join("c.yaml");
    let mut yaml = String::from("acedata:\n");
    for i in 0..20 {
        yaml.push_str(&format!("  - name: acc-{i}\n    token: t-{i}\n"));
    }
    // Every account but one is valid; it is checked on every shard.
    yaml.push_str("  - name: broken\n    tokn: x\n");
    std::fs::write(&path, yaml).unwrap();
    for shard in ["0", "1", "2"] {
        let out = config_check(
            &path,
            &["--total-shards=3", &format!("--shard={shard}")],
            &[],
        );
        assert!(!out.status.success(), "shard {shard}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("acedata[20].tokn: unknown key"), "{err}");
    }
}

/// `POST /-/reload` needs `--web.enable-lifecycle` (403 naming the flag without it);
/// SIGHUP reloads either way.
#[test]
fn reload_over_http_needs_the_lifecycle_flag_and_sighup_always_works() {
    let mut r = Running::start(&["--demo", "--web.listen-address", "127.0.0.1:0"]);
    let addr = address_from(&r.wait_line("listening"));
    let (status, body) = http(&addr, "POST", "/-/reload");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--web.enable-lifecycle"), "{body}");
    assert!(Command::new("kill")
        .args(["-HUP", &r.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    r.wait_line("configuration reloaded");
    let (status, lines) = r.terminate();
    assert!(status.success(), "{}", lines.join("\n"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("configuration reloaded"))
            .count(),
        1,
        "the refused POST reloaded nothing:\n{}",
        lines.join("\n")
    );

    let mut r = Running::start(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.enable-lifecycle",
    ]);
    let addr = address_from(&r.wait_line("listening"));
    let (status, body) = http(&addr, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    r.wait_line("configuration reloaded");
    let (status, _) = r.terminate();
    assert!(status.success());
}

/// `--config.check` judges the command line too, and names every problem of it, of the
/// configuration file and of the web configuration file in one run; the exporter
/// itself refuses the same command line naming every problem.
#[test]
fn config_check_names_every_problem_of_the_command_line() {
    let dir = scratch("cmdline");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "acedata:\n  - name: a\n    tokn: x\n").unwrap();
    let flags = [
        "--shard=5",
        "--total-shards=3",
        "--web.listen-address=nohost",
        "--web.listen-address=:99999",
        "--web.listen-address=127.0.0.1:9977",
        "--web.listen-address=127.0.0.1:9977",
        "--web.telemetry-path=metrics",
        "--web.config.file=/nonexistent/web.yml",
    ];
    let out = config_check(&bad, &flags, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = [
        "--shard=5 is out of range for --total-shards=3",
        "--web.listen-address=nohost: expected host:port",
        "--web.listen-address=:99999: the port \"99999\" is not a number",
        "--web.listen-address=127.0.0.1:9977: given twice",
        "--web.telemetry-path=metrics: must start with /",
        "/nonexistent/web.yml",
        "acedata[0].tokn: unknown key",
    ];
    for needle in expected {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // The same command line without --config.check: refused before anything starts.
    let out = Command::new(BIN)
        .args(&flags[..7])
        .arg("--demo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in &expected[..5] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // A good command line is reported as such, the shard included.
    let ok = Command::new(BIN)
        .args(["--config.check", "--demo", "--shard=2", "--total-shards=3"])
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--web.listen-address=[::1]:0",
        ])
        .args(["--config.file", EXAMPLE])
        .env("ACEDATA_TOKEN", "x")
        .env("YEASTAR_CLIENT_SECRET", "y")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        text.contains("command line is valid (shard 2 of 3)"),
        "{text}"
    );
}

/// A telemetry path on one of the exporter's own endpoints would hide it (a readiness
/// probe on `/-/ready` would get the metrics and always pass): `--config.check` refuses
/// it, as the start does with the same validation; `/` stays allowed (the metrics replace
/// the landing page).
#[test]
fn telemetry_path_cannot_take_over_an_own_endpoint() {
    let dir = scratch("telemetry-own");
    let good = dir.join("good.yaml");
    std::fs::write(&good, "acedata:\n  - name: a\n    token: x\n").unwrap();
    for path in ["/-/ready", "/-/healthy", "/-/reload", "/status"] {
        let out = Command::new(BIN)
            .arg("--config.check")
            .arg(format!("--web.telemetry-path={path}"))
            .arg("--config.file")
            .arg(&good)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path} accepted:\n{err}");
        assert!(
            err.contains(&format!(
                "--web.telemetry-path={path}: is one of the exporter's own endpoints"
            )),
            "{err}"
        );
    }
    let out = Command::new(BIN)
        .args(["--config.check", "--web.telemetry-path=/"])
        .arg("--config.file")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The nice value and name of each thread of process `pid` (Linux `/proc`).
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the command name's ')': state is field 3, nice field 19.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = rest.split(' ').nth(16).unwrap().parse().unwrap();
        out.push((comm.trim().to_string(), nice));
    }
    out
}

/// Polling runs on threads of its own at a lower CPU priority, so that on a busy
/// machine requests get the cores first; the threads that answer requests keep the
/// process's priority.
#[cfg(target_os = "linux")]
#[test]
fn collectors_run_beside_the_server_at_a_lower_priority() {
    let (r, _) = demo_ready();
    let pid = r.child.id();
    let threads = threads_of(pid);
    let base = threads
        .iter()
        .find(|(name, _)| name == "balance-exporte")
        .map(|t| t.1)
        .unwrap_or_else(|| panic!("no main thread in {threads:?}"));
    let lowered = (base + 5).min(19);
    let collect: Vec<_> = threads.iter().filter(|(n, _)| n == "collect").collect();
    assert!(!collect.is_empty(), "no collect thread in {threads:?}");
    assert!(
        collect.iter().all(|(_, nice)| *nice == lowered),
        "collect threads not at nice {lowered}: {threads:?}"
    );
    let serving: Vec<_> = threads.iter().filter(|(n, _)| n == "serve").collect();
    assert!(!serving.is_empty(), "no server thread in {threads:?}");
    assert!(
        serving.iter().all(|(_, nice)| *nice == base),
        "server threads not at nice {base}: {threads:?}"
    );
    let (status, _) = r.terminate();
    assert!(status.success(), "exit status {status:?}");
}
