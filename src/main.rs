//! `balance-exporter`: flags → settings → telemetry → run until a signal.

use std::process::ExitCode;

use clap::Parser;

use balance_exporter::app::{Application, ConfigSource, Settings};
use balance_exporter::cli::{check_all, Cli};
use balance_exporter::listen::Listen;
use balance_exporter::shard::{self, Shard};
use balance_exporter::telemetry;

/// The glibc builds' allocator (see `balance_exporter::heap`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read through its `malloc_conf` symbol before `main` runs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&u8> = Some(&balance_exporter::heap::JEMALLOC_CONF[0]);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.config_check {
        let report = check_all(&cli, shard::host_name, &balance_exporter::providers::all());
        for line in &report.valid {
            println!("{line}");
        }
        for line in &report.problems {
            eprintln!("{line}");
        }
        return if report.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    telemetry::init(cli.log_level, cli.log_format);
    let shard = match cli.validate(shard::host_name) {
        Ok(s) => s,
        Err(problems) => {
            for p in &problems {
                tracing::error!(problem = %p, "invalid command line");
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("serve")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    // Polling runs beside the server, at a lower CPU priority (see `priority.rs`).
    let collecting = match balance_exporter::priority::background_runtime(2) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the collectors' runtime");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(cli, shard, collecting.handle().clone()));
    // In-flight attempts were cancelled with the scheduler; nothing there to wait for.
    collecting.shutdown_background();
    code
}

async fn run(cli: Cli, shard: Shard, collect_on: tokio::runtime::Handle) -> ExitCode {
    let shutdown = shutdown_signal();
    let listen = if cli.systemd_socket {
        Listen::SystemdSocket
    } else {
        Listen::Addresses(cli.listen_address.clone())
    };
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
        listen,
        shard,
        enable_lifecycle: cli.enable_lifecycle,
        collect_on: Some(collect_on),
        ..Settings::new(config, "")
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
    app.run_until_stopped(shutdown).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled: a signal that arrives while the exporter starts
/// (after it logged "listening") must stop it cleanly, not kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
