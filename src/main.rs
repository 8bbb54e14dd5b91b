//! `balance-exporter`: flags → settings → telemetry → run until a signal.

use std::process::ExitCode;

use clap::Parser;

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::cli::{listen_address, Cli};
use balance_exporter::config::Config;
use balance_exporter::shard::{self, Shard};
use balance_exporter::telemetry;
use balance_exporter::web_config::WebConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.config_check {
        let mut valid = match Config::load(&cli.config_file) {
            Ok(c) => {
                println!(
                    "{}: configuration is valid ({} Ace Data Cloud and {} Yeastar account(s))",
                    cli.config_file.display(),
                    c.acedata.len(),
                    c.yeastar.len()
                );
                true
            }
            Err(e) => {
                eprintln!("{}: {e}", cli.config_file.display());
                false
            }
        };
        if let Some(path) = &cli.web_config_file {
            match WebConfig::load(path) {
                Ok(_) => println!("{}: web configuration is valid", path.display()),
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    valid = false;
                }
            }
        }
        return if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    telemetry::init(cli.log_level, cli.log_format);
    let shard = match Shard::from_flags(&cli.shard, cli.total_shards, shard::host_name) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "invalid shard flags");
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !cli.telemetry_path.starts_with('/') {
        tracing::error!(path = %cli.telemetry_path, "--web.telemetry-path must start with /");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli, shard))
}

async fn run(cli: Cli, shard: Shard) -> ExitCode {
    let listen = listen_address(&cli.listen_address);
    let (config, _demo) = if cli.demo {
        match balance_exporter::demo::start().await {
            Ok((config, sim)) => (ConfigSource::Fixed(Box::new(config)), Some(sim)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the demo simulator");
                return ExitCode::from(1);
            }
        }
    } else {
        (ConfigSource::File(cli.config_file.clone()), None)
    };
    let settings = Settings {
        telemetry_path: cli.telemetry_path.clone(),
        web_config: cli.web_config_file.clone(),
        shard,
        ..Settings::new(config, listen)
    };
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        version = balance_exporter::VERSION_LINE,
        "balance-exporter started"
    );
    app.run_until_stopped(shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
