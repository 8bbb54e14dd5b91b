//! Command-line flags, named after the Prometheus exporter conventions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::config::Config;
use crate::listen::{self, Address};
use crate::provider::Provider;
use crate::shard::Shard;
use crate::telemetry::{LogFormat, LogLevel};
use crate::web_config::WebConfig;

/// Prometheus exporter for Ace Data Cloud credits and distribution, and Yeastar
/// Partner Portal balances.
#[derive(Debug, Parser)]
#[command(name = "balance-exporter", version = crate::VERSION_LINE, about, long_about = None)]
pub struct Cli {
    /// Path to the YAML configuration file.
    #[arg(
        long = "config.file",
        value_name = "PATH",
        default_value = "balance-exporter.yaml"
    )]
    pub config_file: PathBuf,

    /// Address to listen on for the web interface and telemetry; repeat the flag to
    /// listen on several addresses.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9977",
        action = clap::ArgAction::Append
    )]
    pub listen_address: Vec<String>,

    /// Use the listening socket(s) of systemd socket activation instead of
    /// --web.listen-address (Linux).
    #[arg(long = "web.systemd-socket")]
    pub systemd_socket: bool,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Path to a web configuration file (TLS and basic auth, exporter-toolkit format).
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,

    /// Allow `POST /-/reload` (off: it answers 403; SIGHUP reloads either way).
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Validate the configuration file and exit (0 when valid; every problem is printed otherwise).
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Shard of the accounts this replica polls: a 0-based index, or `auto` for the
    /// ordinal at the end of the host name (a StatefulSet pod `balance-exporter-2` → 2).
    #[arg(long = "shard", value_name = "INDEX|auto", default_value = "0")]
    pub shard: String,

    /// Number of shards the accounts are split into (1 = no sharding).
    #[arg(long = "total-shards", value_name = "N", default_value_t = 1)]
    pub total_shards: u32,

    /// Run against an embedded simulator of both vendors' APIs: no account, no network.
    #[arg(long = "demo")]
    pub demo: bool,
}

/// Why `--web.listen-address` `given` cannot be listened on, judged without binding
/// (the port may be held by the very exporter whose next configuration is checked).
fn listen_address_problem(given: &str) -> Option<String> {
    let problem = match listen::parse_address(given) {
        Err(problem) => problem,
        Ok(Address::AllInterfaces(_)) => return None,
        Ok(Address::Host(address)) => {
            match std::net::ToSocketAddrs::to_socket_addrs(address.as_str()) {
                Ok(addrs) if addrs.len() > 0 => return None,
                Ok(_) => "the host resolves to no address".to_string(),
                Err(e) => format!("the host does not resolve: {e}"),
            }
        }
    };
    Some(format!("--web.listen-address={given}: {problem}"))
}

/// The endpoints the telemetry path must not take over (`/` may: the metrics then
/// replace the landing page, as in other exporters).
const OWN_PATHS: [&str; 4] = ["/-/healthy", "/-/ready", "/-/reload", "/status"];

impl Cli {
    /// Check the command line's own values (shard flags, listen addresses, telemetry
    /// path): the shard this replica is, or every problem. `host_name` serves
    /// `--shard=auto`.
    pub fn validate(
        &self,
        host_name: impl FnOnce() -> Result<String, String>,
    ) -> Result<Shard, Vec<String>> {
        let mut problems = Vec::new();
        let shard = Shard::from_flags(&self.shard, self.total_shards, host_name)
            .map_err(|e| problems.push(e.to_string()))
            .ok();
        if !self.systemd_socket {
            let mut seen = HashSet::new();
            for given in &self.listen_address {
                // Port 0 picks a free port: each such address is another socket.
                let any_port = given.ends_with(":0");
                if let Some(p) = listen_address_problem(given) {
                    problems.push(p);
                } else if !any_port && !seen.insert(listen::parse_address(given).ok()) {
                    problems.push(format!("--web.listen-address={given}: given twice"));
                }
            }
        }
        if !self.telemetry_path.starts_with('/') {
            problems.push(format!(
                "--web.telemetry-path={}: must start with /",
                self.telemetry_path
            ));
        } else if OWN_PATHS.contains(&self.telemetry_path.as_str()) {
            // Served first, the metrics would hide that endpoint: a readiness probe on
            // `/-/ready` would always pass.
            problems.push(format!(
                "--web.telemetry-path={}: is one of the exporter's own endpoints ({})",
                self.telemetry_path,
                OWN_PATHS.join(", ")
            ));
        }
        match shard {
            Some(shard) if problems.is_empty() => Ok(shard),
            _ => Err(problems),
        }
    }
}

/// What `--config.check` found: a line per valid part, and every problem.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub valid: Vec<String>,
    pub problems: Vec<String>,
}

/// `--config.check`: validate the command line ([`Cli::validate`]), then the files
/// it names ([`check`]).
pub fn check_all(
    cli: &Cli,
    host_name: impl FnOnce() -> Result<String, String>,
    providers: &[&'static dyn Provider],
) -> CheckReport {
    let mut report = check(&cli.config_file, cli.web_config_file.as_deref(), providers);
    match cli.validate(host_name) {
        Ok(shard) => report
            .valid
            .insert(0, format!("command line is valid (shard {shard})")),
        Err(problems) => {
            report.problems.splice(0..0, problems);
        }
    }
    report
}

/// Validate the configuration file (with a section for each of `providers`) and the
/// web configuration file, if any.
pub fn check(
    config_file: &Path,
    web_config_file: Option<&Path>,
    providers: &[&'static dyn Provider],
) -> CheckReport {
    let mut report = CheckReport::default();
    match Config::load(config_file, providers) {
        Ok(c) => report.valid.push(format!(
            "{}: configuration is valid ({} account(s))",
            config_file.display(),
            c.summary()
        )),
        Err(e) => report
            .problems
            .push(format!("{}: {e}", config_file.display())),
    }
    if let Some(path) = web_config_file {
        match WebConfig::load(path) {
            Ok(_) => report
                .valid
                .push(format!("{}: web configuration is valid", path.display())),
            Err(e) => report.problems.push(format!("{}: {e}", path.display())),
        }
    }
    report
}
