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
        let line = if line.starts_with("balance_exporter_collector_duration_seconds{")
            || line.starts_with("balance_exporter_collector_last_success_timestamp_seconds{")
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
    let text = demo_exposition().await;
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
