//! balance-exporter: a Prometheus exporter for API-platform credit balances.
//!
//! Collectors poll upstream on their own schedule ([`scheduler`]), write gauges
//! ([`metrics`]), and the server ([`server`]) serves the cached exposition.

pub mod app;
pub mod cli;
pub mod collector;
pub mod config;
pub mod demo;
pub mod file_stamp;
pub mod fingerprint;
pub mod heap;
pub mod html;
pub mod listen;
pub mod metrics;
pub mod priority;
pub mod provider;
pub mod providers;
pub mod readiness;
pub mod redact;
pub mod scheduler;
pub mod secret;
pub mod self_metrics;
pub mod server;
pub mod shard;
pub mod simulator;
pub mod status;
pub mod telemetry;
pub mod text;
pub mod timing;
pub mod upstream;
pub mod web_config;

/// `--version` output: version, revision and compiler.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("BALANCE_EXPORTER_REVISION"),
    ", rustc ",
    env!("BALANCE_EXPORTER_RUSTC_VERSION"),
    ")"
);
