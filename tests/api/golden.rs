//! A golden exposition of the demo data (simulator without drift), and
//! `promtool check metrics` on real output.

use std::path::Path;
use std::process::{Command, Stdio};

use balance_exporter::simulator::vendors::{
    DEMO_ACEDATA_TOKEN, DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET,
};
use balance_exporter::simulator::{SimOptions, Simulator};

use crate::helpers::*;

const GOLDEN: &str = "tests/api/golden/demo.prom";

/// Replace what changes from run to run (durations, wall-clock timestamps, build
/// labels) and drop the process metrics.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut skip_family = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            skip_family = rest.starts_with("process_");
        }
        if skip_family {
            continue;
        }
        // Month to date depends on the day of the month, order times on the clock.
        let line = if line.starts_with("balance_exporter_collector_duration_seconds{")
            || line.starts_with("balance_exporter_collector_last_success_timestamp_seconds{")
            || line.starts_with("acedata_usage_month_to_date_credits{")
            || line.starts_with("acedata_order_last_created_timestamp_seconds{")
            || line.starts_with("acedata_order_oldest_pending_timestamp_seconds{")
        {
            format!("{} <varies>", line.rsplit_once(' ').unwrap().0)
        } else if line.starts_with("balance_exporter_build_info{") {
            "balance_exporter_build_info{<build labels>} 1".to_string()
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

async fn demo_exposition() -> String {
    let sim = Simulator::start(SimOptions {
        drift: false,
        ..SimOptions::demo()
    })
    .await
    .unwrap();
    sim.add_acedata_account(DEMO_ACEDATA_TOKEN);
    sim.add_yeastar_client(DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET);
    let config = balance_exporter::demo::config(&sim.base_url()).unwrap();
    let app = spawn_with(balance_exporter::app::ConfigSource::Fixed(Box::new(config))).await;
    app.wait_ready().await;
    let text = app.metrics().await;
    app.stop().await;
    text
}

#[tokio::test]
async fn demo_exposition_matches_the_golden_file() {
    let got = normalise(&demo_exposition().await);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).expect("golden file (create with UPDATE_GOLDEN=1)");
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .take(20)
            .collect();
        panic!(
            "exposition differs from {GOLDEN} ({} vs {} lines):\n{}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

/// `promtool` from the Debian package `prometheus`; the README's test command
/// installs it. Missing promtool fails the test rather than skipping it.
fn promtool() -> String {
    let candidate = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let found = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || Path::new(&candidate).exists(),
        "promtool not found: run the README's test command (scripts/test.sh), which installs it"
    );
    candidate
}

#[tokio::test]
async fn promtool_accepts_the_real_exposition() {
    promtool_check(&demo_exposition().await);
}

/// `/metrics` with and without `Accept-Encoding: gzip`: headers, lengths, and the same
/// text once gunzipped (which promtool accepts too).
#[tokio::test]
async fn gzip_when_accepted_plain_otherwise() {
    let sim = Simulator::start(SimOptions {
        drift: false,
        ..SimOptions::demo()
    })
    .await
    .unwrap();
    sim.add_acedata_account(DEMO_ACEDATA_TOKEN);
    sim.add_yeastar_client(DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET);
    let config = balance_exporter::demo::config(&sim.base_url()).unwrap();
    let app = spawn_with(balance_exporter::app::ConfigSource::Fixed(Box::new(config))).await;
    app.wait_ready().await;
    let fetch = |accept: Option<&'static str>| {
        let mut req = app.http.get(format!("{}/metrics", app.address));
        if let Some(a) = accept {
            req = req.header("accept-encoding", a);
        }
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let h = r.headers().clone();
            let body = r.bytes().await.unwrap();
            let len: usize = h["content-length"].to_str().unwrap().parse().unwrap();
            assert_eq!(len, body.len());
            assert_eq!(h["vary"], "Accept-Encoding");
            assert!(h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"));
            (
                h.get("content-encoding")
                    .map(|v| v.to_str().unwrap().to_string()),
                body,
            )
        }
    };
    let (enc, plain) = fetch(None).await;
    assert_eq!(enc, None);
    let (enc, gz) = fetch(Some("gzip")).await;
    assert_eq!(enc.as_deref(), Some("gzip"));
    let mut gunzipped = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut gunzipped)
        .unwrap();
    let plain = String::from_utf8(plain.to_vec()).unwrap();
    // Process metrics may have been re-read between the two scrapes.
    assert_eq!(normalise(&gunzipped), normalise(&plain));
    assert!(gz.len() < plain.len());
    promtool_check(&gunzipped);
    for refused in ["gzip;q=0", "identity", "br, gzip;q=0, *;q=0"] {
        let (enc, body) = fetch(Some(refused)).await;
        assert_eq!(enc, None, "{refused}");
        assert!(body.starts_with(b"# HELP"), "{refused}");
    }
    let (enc, _) = fetch(Some("deflate;q=1, gzip;q=0.2")).await;
    assert_eq!(enc.as_deref(), Some("gzip"));
    app.stop().await;
}

fn promtool_check(text: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}"
    );
}
