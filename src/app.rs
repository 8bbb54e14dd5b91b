//! Build the exporter from settings — registry, collectors, scheduler, server — and
//! run it until a shutdown future resolves. Also handles reloads.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::{Config, ConfigError};
use crate::listen::{Listen, ListenError};
use crate::metrics::{Exposition, Registry, SelfMetrics};
use crate::provider::{self, Provider, ProviderMetrics};
use crate::scheduler::{self, Readiness, Scheduled, Scheduler, Shared};
use crate::server::{self, ReloadRequest, ServerLimits, ServerState};
use crate::shard::Shard;
use crate::status::StatusBoard;
use crate::upstream::Upstream;
use crate::web_config::{WebConfigError, WebConfigFile};

/// Where the configuration comes from; a file is re-read on reload.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    Fixed(Box<Config>),
}

impl ConfigSource {
    /// Load (or re-load) the configuration, with a section for each of `providers`.
    pub fn load(&self, providers: &[&'static dyn Provider]) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(p) => Config::load(p, providers),
            ConfigSource::Fixed(c) => Ok((**c).clone()),
        }
    }

    /// Where the configuration comes from, for the status page.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Fixed(_) => "built in (no file)".into(),
        }
    }
}

/// Everything needed to build the application.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: ConfigSource,
    /// Where to listen: `host:port` addresses (port 0 picks a free port) or the
    /// sockets of systemd socket activation.
    pub listen: Listen,
    pub telemetry_path: String,
    /// `--web.config.file`: TLS and basic auth for every endpoint.
    pub web_config: Option<PathBuf>,
    /// Abuse bounds of the HTTP server.
    pub limits: ServerLimits,
    /// The vendors whose sections the configuration may have
    /// ([`crate::providers::all`] unless a test adds one).
    pub providers: Vec<&'static dyn Provider>,
    /// The accounts this replica polls (`--shard`, `--total-shards`); kept on reload.
    pub shard: Shard,
    /// `--web.enable-lifecycle`: whether `POST /-/reload` is allowed.
    pub enable_lifecycle: bool,
}

impl Settings {
    /// Settings for `config` on `listen_address` with the default telemetry path, no
    /// web configuration, default limits and `POST /-/reload` off.
    pub fn new(config: ConfigSource, listen_address: impl Into<String>) -> Settings {
        Settings {
            config,
            listen: Listen::Addresses(vec![listen_address.into()]),
            telemetry_path: "/metrics".into(),
            web_config: None,
            limits: ServerLimits::default(),
            providers: crate::providers::all(),
            shard: Shard::SINGLE,
            enable_lifecycle: false,
        }
    }
}

/// A built, bound, not yet running exporter.
pub struct Application {
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    settings: Settings,
    config: Config,
    web: Option<Arc<WebConfigFile>>,
    exposition: Arc<Exposition>,
    self_metrics: SelfMetrics,
    providers: ProviderMetrics,
}

/// Errors that stop the exporter from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    WebConfig {
        path: String,
        source: WebConfigError,
    },
    #[error(transparent)]
    Listen(#[from] ListenError),
}

impl Application {
    /// Load the configuration, register metrics and bind the listener.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let config = settings.config.load(&settings.providers)?;
        crate::heap::release_freed();
        let web = match &settings.web_config {
            Some(path) => Some(Arc::new(WebConfigFile::load(path).map_err(|source| {
                StartError::WebConfig {
                    path: path.display().to_string(),
                    source,
                }
            })?)),
            None => None,
        };
        let (listeners, addrs) = crate::listen::open(&settings.listen)
            .await?
            .into_iter()
            .unzip();
        let registry = Registry::new();
        let self_metrics = SelfMetrics::new(&registry);
        let shard = settings.shard;
        self_metrics
            .shard_ordinal
            .with_label_values(&[])
            .set(f64::from(shard.index()));
        self_metrics
            .total_shards
            .with_label_values(&[])
            .set(f64::from(shard.total()));
        let providers = ProviderMetrics::register(&registry, &settings.providers);
        let exposition = Exposition::new(registry);
        Ok(Application {
            listeners,
            addrs,
            settings,
            config,
            web,
            exposition,
            self_metrics,
            providers,
        })
    }

    /// The (first) address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address listened on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The (first) port actually bound.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The exposition `/metrics` serves (for in-process benchmarks and tests).
    pub fn exposition(&self) -> Arc<Exposition> {
        self.exposition.clone()
    }

    /// Poll and serve until `shutdown` resolves; then stop polling, finish in-flight
    /// responses and return.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let readiness = Arc::new(Readiness::default());
        let status = StatusBoard::new(self.settings.config.describe());
        let shard = self.settings.shard;
        status.set_shard(u64::from(shard.index()), u64::from(shard.total()));
        let shared = Shared {
            self_metrics: self.self_metrics.clone(),
            exposition: self.exposition.clone(),
            readiness: readiness.clone(),
            status: status.clone(),
        };
        let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
        let state = Arc::new(ServerState {
            exposition: self.exposition.clone(),
            readiness,
            telemetry_path: self.settings.telemetry_path.clone(),
            reload: reload_tx.clone(),
            enable_lifecycle: self.settings.enable_lifecycle,
            web: self.web.clone(),
            limits: self.settings.limits,
            status: status.clone(),
        });
        spawn_sighup(reload_tx);

        // Collectors first, so that readiness counts them before the first request.
        let shard = self.settings.shard;
        let mut running = Running::start(self.config, shard, &self.providers, &shared);
        let stop = tokio_util::sync::CancellationToken::new();
        let watcher = self.web.as_ref().map(|w| w.watch(stop.clone()));
        let server = tokio::spawn(server::serve(
            self.listeners,
            state,
            stop.clone().cancelled_owned(),
        ));
        let tls = self
            .web
            .as_ref()
            .is_some_and(|w| w.current().tls().is_some());
        let basic_auth = self
            .web
            .as_ref()
            .is_some_and(|w| w.current().requires_auth());
        let addresses = self
            .addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        tracing::info!(address = %addresses, telemetry_path = %self.settings.telemetry_path, tls, basic_auth, "listening");

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(reply) = reload_rx.recv() => {
                    // Reading the file is blocking work: off the async threads.
                    let (source, providers) = (self.settings.config.clone(), self.settings.providers.clone());
                    let loaded = tokio::task::spawn_blocking(move || source.load(&providers))
                        .await
                        .unwrap_or_else(|e| Err(ConfigError { problems: vec![format!("reading the configuration failed: {e}")] }));
                    let result = match loaded {
                        Ok(config) => {
                            crate::heap::release_freed();
                            running = running.replace(config, shard, &self.providers, &shared).await;
                            tracing::info!("configuration reloaded");
                            Ok(())
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reload rejected; the previous configuration keeps running");
                            Err(e.to_string())
                        }
                    };
                    status.reloaded(result.clone());
                    let _ = reply.send(result);
                }
            }
        }
        tracing::info!("shutting down");
        running.scheduler.stop().await;
        stop.cancel();
        let _ = server.await;
        if let Some(w) = watcher {
            let _ = w.await;
        }
    }
}

/// The collectors running for one configuration.
struct Running {
    scheduler: Scheduler,
}

impl Running {
    /// The collectors of `config` (this shard's accounts) and the concurrency bound;
    /// the self-metrics of the configuration are set.
    fn prepare(
        mut config: Config,
        shard: Shard,
        providers: &ProviderMetrics,
        shared: &Shared,
    ) -> (Vec<Scheduled>, usize) {
        let configured = config.account_count();
        // Accounts of other shards are dropped here: no collector, no series, no
        // threshold, no upstream call.
        config.retain(|provider, account| shard.owns(provider, account));
        let accounts_metric = &shared.self_metrics.accounts;
        accounts_metric.reset();
        for (provider, n) in config.account_counts() {
            accounts_metric.with_label_values(&[provider]).set(n as f64);
        }
        let upstream = Upstream::new(config.max_concurrent_requests);
        let thresholds = &shared.self_metrics.low_balance_threshold;
        thresholds.reset();
        for t in provider::thresholds(&config) {
            thresholds
                .with_label_values(&[t.provider, &t.account])
                .set(t.value);
        }
        let collectors = provider::collectors(&config, providers, &upstream);
        let accounts = config.account_count();
        tracing::info!(
            accounts,
            configured,
            shard = %shard,
            collectors = collectors.len(),
            "starting collectors"
        );
        shared.exposition.mark_dirty();
        (collectors, config.max_concurrent_requests)
    }

    fn start(
        config: Config,
        shard: Shard,
        providers: &ProviderMetrics,
        shared: &Shared,
    ) -> Running {
        let (collectors, max_concurrent) = Running::prepare(config, shard, providers, shared);
        Running {
            scheduler: Scheduler::start(collectors, shared, max_concurrent),
        }
    }

    /// Stop the old collectors, start the new ones, and remove the series of
    /// collectors that no longer exist.
    async fn replace(
        self,
        config: Config,
        shard: Shard,
        providers: &ProviderMetrics,
        shared: &Shared,
    ) -> Running {
        let old = self.scheduler.stop().await;
        let (collectors, max_concurrent) = Running::prepare(config, shard, providers, shared);
        let kept = scheduler::keys(&collectors);
        let next = Running {
            scheduler: Scheduler::start(collectors, shared, max_concurrent),
        };
        for mut c in old {
            let key = (c.name().to_string(), c.account().to_string());
            if !kept.contains(&key) {
                c.clear();
                shared.self_metrics.remove_collector(&key.0, &key.1);
                shared.status.remove(&key.0, &key.1);
            }
        }
        shared.exposition.mark_dirty();
        next
    }
}

#[cfg(unix)]
fn spawn_sighup(reload: mpsc::Sender<ReloadRequest>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; use POST /-/reload (--web.enable-lifecycle)");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received; reloading configuration");
            let (tx, _rx) = tokio::sync::oneshot::channel();
            if reload.send(tx).await.is_err() {
                break;
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_reload: mpsc::Sender<ReloadRequest>) {}
