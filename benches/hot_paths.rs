//! In-process figures for the hot paths (`cargo bench --bench hot_paths`):
//!
//! - `exposition/*`: a scrape served from the cached bytes, and a full re-encode after a
//!   change, for the demo accounts and for 1,000 Ace Data Cloud accounts. The registry is
//!   filled by the real exporter polling the in-process simulator.
//! - `parse/*`: each upstream answer parsed into its typed snapshot. The bodies are what
//!   the simulator answers, which follows the vendors' documented examples.
//! - `history/*`: one 100-record page parsed and aggregated, and a steady cycle (nothing
//!   new) of the incremental sync.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::collector::CollectError;
use balance_exporter::config::Config;
use balance_exporter::metrics::Exposition;
use balance_exporter::providers::acedata::history::{HistorySync, PageSource};
use balance_exporter::providers::acedata::model as acedata;
use balance_exporter::providers::yeastar::model as yeastar;
use balance_exporter::simulator::{SimOptions, Simulator};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The exporter polling `accounts` simulated Ace Data Cloud accounts (plus, for the
/// demo, one Yeastar account), once every collector has finished its first attempt.
fn polled_exposition(
    rt: &Runtime,
    accounts: usize,
) -> (Arc<Exposition>, Simulator, CancellationToken) {
    rt.block_on(async {
        let (config, sim) = if accounts == 0 {
            let (config, sim) = balance_exporter::demo::start().await.expect("demo");
            (config, sim)
        } else {
            let sim = Simulator::start(SimOptions::default()).await.expect("simulator");
            let mut yaml = String::from("max_concurrent_requests: 64\nacedata:\n");
            for n in 1..=accounts {
                sim.add_acedata_account(&format!("sim-token-{n}"));
                yaml.push_str(&format!(
                    "  - name: sim-{n}\n    base_url: {}\n    token: sim-token-{n}\n    low_balance_threshold: 10\n",
                    sim.base_url()
                ));
            }
            (Config::from_yaml(&yaml, &balance_exporter::providers::all()).expect("config"), sim)
        };
        let app = Application::build(Settings::new(
            ConfigSource::Fixed(Box::new(config)),
            "127.0.0.1:0",
        ))
        .await
        .expect("app");
        let addr: SocketAddr = app.local_addr();
        let exposition = app.exposition();
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
        let client = reqwest::Client::new();
        let ready = format!("http://{addr}/-/ready");
        for _ in 0..600 {
            if let Ok(r) = client.get(&ready).send().await {
                if r.status().is_success() {
                    return (exposition, sim, stop);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the exporter did not become ready");
    })
}

fn exposition(c: &mut Criterion) {
    let rt = runtime();
    for (label, accounts) in [("demo", 0), ("1000_accounts", 1000)] {
        let (exp, sim, stop) = polled_exposition(&rt, accounts);
        exp.mark_dirty();
        let len = exp.render().len() as u64;
        let mut g = c.benchmark_group("exposition");
        g.throughput(Throughput::Bytes(len));
        if accounts > 0 {
            g.sample_size(20);
        }
        // What a scrape gets: the cached snapshot (gzip pieces, or the plain text).
        g.bench_function(format!("scrape_cached/{label}"), |b| {
            b.iter(|| black_box(exp.snapshot()))
        });
        // Encoding and compressing the registry's text after a change.
        g.bench_function(format!("encode/{label}"), |b| {
            b.iter(|| {
                exp.mark_dirty();
                black_box(exp.snapshot())
            })
        });
        // A plain scrape: kept text, or inflated from the compressed text beyond 1 MiB.
        g.bench_function(format!("plain_cached/{label}"), |b| {
            b.iter(|| black_box(exp.render()))
        });
        g.finish();
        stop.cancel();
        rt.block_on(sim.shutdown());
    }
}

/// The simulator's answer bodies for one Ace Data Cloud account and one Yeastar client.
struct Bodies {
    balance: Bytes,
    statuses: Bytes,
    levels: Bytes,
    history_page: Bytes,
    yeastar_token: Bytes,
    yeastar_balance: Bytes,
}

fn bodies(rt: &Runtime) -> Bodies {
    rt.block_on(async {
        let sim = Simulator::start(SimOptions {
            history_records: 100,
            ..SimOptions::default()
        })
        .await
        .expect("simulator");
        sim.add_acedata_account("t");
        sim.add_yeastar_client("id", "secret");
        let base = sim.base_url();
        let c = reqwest::Client::new();
        let get = |req: reqwest::RequestBuilder| async move {
            let r = req.send().await.expect("request");
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.expect("body")
        };
        let ace = |m: reqwest::Method, p: &str| c.request(m, format!("{base}{p}")).bearer_auth("t");
        let token = get(c
            .post(format!("{base}/auth/openapi/v1/oauth/token"))
            .header("user-agent", "OpenAPI")
            .form(&[
                ("client_id", "id"),
                ("client_secret", "secret"),
                ("grant_type", "pp_credentials"),
            ]))
        .await;
        let access = yeastar::parse_token(&token).expect("token").token;
        let bodies = Bodies {
            balance: get(ace(reqwest::Method::POST, "/api/v1/balances/initialize/")).await,
            statuses: get(ace(reqwest::Method::GET, "/api/v1/distribution-statuses/")).await,
            levels: get(ace(reqwest::Method::GET, "/api/v1/distribution-levels/")).await,
            history_page: get(ace(
                reqwest::Method::GET,
                "/api/v1/distribution-histories/?limit=100&offset=0",
            ))
            .await,
            yeastar_balance: get(c
                .get(format!(
                    "{base}/user/openapi/user/v1/client/account_balance"
                ))
                .header("user-agent", "OpenAPI")
                .bearer_auth(access))
            .await,
            yeastar_token: token,
        };
        sim.shutdown().await;
        bodies
    })
}

fn parse(c: &mut Criterion) {
    let rt = runtime();
    let b = bodies(&rt);
    let mut g = c.benchmark_group("parse");
    let mut bench = |name: &str, body: &Bytes, f: &dyn Fn(&[u8]) -> bool| {
        assert!(f(body), "{name} does not parse");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |bn| bn.iter(|| black_box(f(black_box(body)))));
    };
    bench("acedata_balance", &b.balance, &|x| {
        acedata::parse_balance(x).is_ok()
    });
    bench("acedata_statuses", &b.statuses, &|x| {
        acedata::parse_statuses(x).is_ok()
    });
    bench("acedata_levels", &b.levels, &|x| {
        acedata::parse_levels(x).is_ok()
    });
    bench("acedata_history_page_100", &b.history_page, &|x| {
        acedata::parse_history_page(x).is_ok_and(|(_, r)| r.len() == 100)
    });
    bench("yeastar_token", &b.yeastar_token, &|x| {
        yeastar::parse_token(x).is_ok()
    });
    bench("yeastar_balance", &b.yeastar_balance, &|x| {
        yeastar::parse_balance(x).is_ok()
    });
    g.finish();
}

/// Serves the same parsed-on-demand page at every offset below `count`.
struct OnePage {
    body: Bytes,
    count: u64,
}

impl PageSource for OnePage {
    fn page(
        &mut self,
        _limit: u64,
        offset: u64,
    ) -> impl std::future::Future<Output = Result<(u64, Vec<acedata::HistoryRecord>), CollectError>> + Send
    {
        let result = if offset < self.count {
            acedata::parse_history_page(&self.body).map(|(_, r)| (self.count, r))
        } else {
            Ok((self.count, Vec::new()))
        };
        std::future::ready(result)
    }
}

fn history(c: &mut Criterion) {
    let rt = runtime();
    let b = bodies(&rt);
    let mut g = c.benchmark_group("history");
    g.throughput(Throughput::Elements(100));
    // A first sync over a single page: parse 100 records and aggregate them.
    g.bench_function("page_parse_and_aggregate_100", |bn| {
        bn.iter_batched(
            || {
                (
                    HistorySync::new(100, Duration::from_secs(3600)),
                    OnePage {
                        body: b.history_page.clone(),
                        count: 100,
                    },
                )
            },
            |(mut sync, mut src)| {
                let records = rt
                    .block_on(sync.sync(&mut src))
                    .expect("sync")
                    .valid
                    .records;
                black_box(records)
            },
            BatchSize::SmallInput,
        )
    });
    // A steady cycle: the first page matches the marker, nothing is added.
    let mut sync = HistorySync::new(100, Duration::from_secs(3600));
    let mut src = OnePage {
        body: b.history_page.clone(),
        count: 100,
    };
    rt.block_on(sync.sync(&mut src)).expect("first sync");
    g.bench_function("steady_cycle", |bn| {
        bn.iter(|| {
            black_box(
                rt.block_on(sync.sync(&mut src))
                    .expect("sync")
                    .valid
                    .records,
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite finishes in about a minute on two shared cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = exposition, parse, history
}
criterion_main!(benches);
