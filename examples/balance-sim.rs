//! `balance-sim`: the vendor simulator as a separate process, for benchmarks that need
//! many accounts or a long commission history (`scripts/bench.sh`).
//!
//! It serves both vendors' APIs on loopback, registers `--acedata-accounts` Ace Data
//! Cloud accounts (tokens `sim-token-1` … `sim-token-N`) and `--yeastar-accounts` Yeastar
//! clients, writes an exporter configuration that polls all of them, and keeps a small
//! JSON file of request counts and the peak number of requests in flight up to date.
//! It runs until SIGINT or SIGTERM.
//!
//! Built as an example so that it never adds to the exporter binary:
//! `cargo build --release --example balance-sim`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};

use balance_exporter::simulator::{HistoryOrder, Route, SimOptions, Simulator};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Order {
    NewestFirst,
    OldestFirst,
}

#[derive(Debug, Parser)]
#[command(
    name = "balance-sim",
    about = "Ace Data Cloud and Yeastar API simulator"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Delay before every answer, e.g. `50ms`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Ace Data Cloud accounts to register (tokens `sim-token-1` …).
    #[arg(long, default_value_t = 1)]
    acedata_accounts: usize,
    /// Yeastar API clients to register (`sim-client-1` / `sim-secret-1` …).
    #[arg(long, default_value_t = 0)]
    yeastar_accounts: usize,
    /// Commission records of every Ace Data Cloud account.
    #[arg(long, default_value_t = 20)]
    history_records: usize,
    /// Order in which the commission history is listed.
    #[arg(long, value_enum, default_value = "newest-first")]
    history_order: Order,
    /// Write an exporter configuration polling every account to this file.
    #[arg(long)]
    config_out: Option<PathBuf>,
    /// `max_concurrent_requests` of the written configuration.
    #[arg(long, default_value_t = 16)]
    max_concurrent_requests: usize,
    /// Poll interval of the written configuration; the request timeout is the
    /// smaller of 10 s and the interval.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Ace Data Cloud collectors of the written configuration (comma-separated;
    /// default all).
    #[arg(long)]
    collectors: Option<String>,
    /// History page size of the written configuration.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// Keep request counts and the peak in-flight figure in this JSON file (rewritten
    /// every 50 ms).
    #[arg(long)]
    stats_file: Option<PathBuf>,
}

fn token(n: usize) -> String {
    format!("sim-token-{n}")
}

fn exporter_config(args: &Args, base_url: &str) -> String {
    let mut out = String::new();
    let timeout = args.interval.min(Duration::from_secs(10));
    let _ = writeln!(
        out,
        "max_concurrent_requests: {}\ndefaults:\n  interval: {}\n  timeout: {}\n  max_staleness: 1h",
        args.max_concurrent_requests,
        humantime::format_duration(args.interval),
        humantime::format_duration(timeout),
    );
    if args.acedata_accounts > 0 {
        out.push_str("acedata:\n");
    }
    for n in 1..=args.acedata_accounts {
        let _ = writeln!(
            out,
            "  - name: sim-{n}\n    base_url: {base_url}\n    token: {}\n    low_balance_threshold: 10\n    history: {{ page_size: {}, full_sync_interval: 6h }}",
            token(n),
            args.page_size
        );
        if let Some(c) = &args.collectors {
            let _ = writeln!(out, "    collectors: [{c}]");
        }
    }
    if args.yeastar_accounts > 0 {
        out.push_str("yeastar:\n");
    }
    for n in 1..=args.yeastar_accounts {
        let _ = writeln!(
            out,
            "  - name: sim-{n}\n    base_url: {base_url}\n    client_id: sim-client-{n}\n    client_secret: sim-secret-{n}"
        );
    }
    out
}

fn stats_json(sim: &Simulator) -> String {
    let mut out = String::from("{");
    for route in Route::all() {
        let _ = write!(out, "\"{route:?}\":{},", sim.request_count(route));
    }
    let _ = write!(
        out,
        "\"total\":{},\"in_flight\":{},\"max_in_flight\":{}}}",
        sim.total_requests(),
        sim.in_flight(),
        sim.max_in_flight()
    );
    out
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let opts = SimOptions {
        latency: args.latency,
        history_records: args.history_records,
        history_order: match args.history_order {
            Order::NewestFirst => HistoryOrder::NewestFirst,
            Order::OldestFirst => HistoryOrder::OldestFirst,
        },
        max_page_size: Some(1000),
        ..SimOptions::default()
    };
    let sim = Simulator::start_on(args.listen, opts).await?;
    for n in 1..=args.acedata_accounts {
        sim.add_acedata_account(&token(n));
    }
    for n in 1..=args.yeastar_accounts {
        sim.add_yeastar_client(&format!("sim-client-{n}"), &format!("sim-secret-{n}"));
    }
    let base_url = sim.base_url();
    if let Some(path) = &args.config_out {
        write_atomically(path, &exporter_config(&args, &base_url))?;
    }
    if let Some(path) = args.stats_file.clone() {
        let sim = sim.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                if let Err(e) = write_atomically(&path, &stats_json(&sim)) {
                    eprintln!("balance-sim: cannot write {}: {e}", path.display());
                }
            }
        });
    }
    println!("balance-sim listening on {base_url}");
    shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}
