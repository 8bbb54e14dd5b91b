//! Build the exporter from settings — registry, collectors, scheduler, server — and
//! run it until a shutdown future resolves. Also handles reloads.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::collector::Scheduled;
use crate::config::{Config, ConfigError};
use crate::fingerprint::Fingerprint;
use crate::listen::{Listen, ListenError};
use crate::metrics::{Exposition, Registry};
use crate::provider::{self, Provider, ProviderMetrics};
use crate::readiness::Readiness;
use crate::scheduler::{Change, Scheduler, Shared};
use crate::self_metrics::SelfMetrics;
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
    /// Where the scheduler, its attempts and their upstream connections run, and where
    /// a reload reads the file: the binary's lower-priority runtime
    /// ([`crate::priority::background_runtime`]), so that polling never delays a
    /// request. `None` runs them on the caller's runtime (tests, embedding).
    pub collect_on: Option<tokio::runtime::Handle>,
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
            collect_on: None,
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
    reload: (mpsc::Sender<ReloadRequest>, mpsc::Receiver<ReloadRequest>),
}

/// Asks a running exporter to reload its configuration, as SIGHUP does.
#[derive(Clone)]
pub struct Reloader(mpsc::Sender<ReloadRequest>);

impl Reloader {
    /// Reload and wait for the outcome: `Err` names every problem of a rejected
    /// configuration (the previous one keeps running).
    pub async fn reload(&self) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send(tx)
            .await
            .map_err(|_| "the exporter is not running".to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("the exporter stopped".to_string()))
    }
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
            reload: mpsc::channel::<ReloadRequest>(4),
        })
    }

    /// A handle that reloads the running exporter's configuration (what SIGHUP
    /// does), for embedding and tests.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.reload.0.clone())
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
        let (reload_tx, mut reload_rx) = self.reload;
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
        let collect_on = self
            .settings
            .collect_on
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current);
        let mut running = {
            // The scheduler's driver task, and so every attempt it spawns, runs there.
            let _on = collect_on.enter();
            Running::start(self.config, shard, &self.providers, &shared)
        };
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
                    let loaded = collect_on.spawn_blocking(move || source.load(&providers))
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
    /// The accounts polled (this shard's), to tell on reload what changed.
    accounts: Accounts,
    /// One client for the whole run: a reload keeps its connection pool.
    upstream: Upstream,
}

impl Running {
    /// Keep this shard's accounts of `config` and set the self-metrics of the
    /// configuration.
    fn prepare(mut config: Config, shard: Shard, shared: &Shared) -> Config {
        let configured = config.account_count();
        // Accounts of other shards are dropped here: no collector, no series, no
        // threshold, no upstream call.
        config.retain(|provider, account| shard.owns(provider, account));
        let accounts_metric = &shared.self_metrics.accounts;
        accounts_metric.reset();
        for (provider, n) in config.account_counts() {
            accounts_metric.with_label_values(&[provider]).set(n as f64);
        }
        let thresholds = &shared.self_metrics.low_balance_threshold;
        thresholds.reset();
        for t in config.thresholds() {
            thresholds
                .with_label_values(&[t.provider, &t.account])
                .set(t.value);
        }
        tracing::info!(
            accounts = config.account_count(),
            configured,
            shard = %shard,
            "configuration applied"
        );
        shared.exposition.mark_dirty();
        config
    }

    fn start(
        config: Config,
        shard: Shard,
        providers: &ProviderMetrics,
        shared: &Shared,
    ) -> Running {
        let config = Running::prepare(config, shard, shared);
        let upstream = Upstream::new(config.max_concurrent_requests);
        let collectors: Vec<Scheduled> = config.collectors(providers, &upstream);
        tracing::info!(collectors = collectors.len(), "starting collectors");
        Running {
            scheduler: Scheduler::start(collectors, shared, config.max_concurrent_requests),
            accounts: Accounts::of(&config),
            upstream,
        }
    }

    /// Apply a new configuration: accounts configured exactly as before keep their
    /// collectors and all their state; changed accounts restart; removed accounts'
    /// series go at once.
    async fn replace(
        mut self,
        config: Config,
        shard: Shard,
        providers: &ProviderMetrics,
        shared: &Shared,
    ) -> Running {
        let config = Running::prepare(config, shard, shared);
        let accounts = Accounts::of(&config);
        let change = diff(
            &self.accounts,
            &accounts,
            &config,
            providers,
            &self.upstream,
        );
        tracing::info!(
            restarted = change.remove.len(),
            started = change.add.len(),
            "reloading: only changed accounts restart"
        );
        self.upstream
            .set_max_concurrent(config.max_concurrent_requests);
        self.scheduler.apply(change).await;
        self.accounts = accounts;
        self
    }
}

/// The accounts polled, sorted by vendor and name, each with the fingerprint of its
/// configuration: all a reload needs to tell what changed (the configuration itself is
/// not kept).
struct Accounts(Box<[Polled]>);

/// An account's vendor, name and fingerprint (`None`: its vendor cannot tell, so it
/// restarts on every reload).
type Polled = (&'static str, Box<str>, Option<Fingerprint>);

impl Accounts {
    fn of(config: &Config) -> Accounts {
        let mut accounts: Vec<_> = config
            .sections
            .iter()
            .flat_map(|section| {
                section
                    .accounts
                    .iter()
                    .map(|a| (section.provider.name(), a.name().into(), a.fingerprint()))
            })
            .collect();
        accounts.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Accounts(accounts.into_boxed_slice())
    }

    /// The accounts of `new` configured exactly as in `self`.
    fn unchanged<'a>(&self, new: &'a Accounts) -> HashSet<(&'static str, &'a str)> {
        new.0
            .iter()
            .filter(|(provider, name, now)| {
                now.is_some()
                    && self
                        .0
                        .binary_search_by(|(p, n, _)| (*p, &**n).cmp(&(*provider, &**name)))
                        .is_ok_and(|i| self.0[i].2 == *now)
            })
            .map(|(provider, name, _)| (*provider, &**name))
            .collect()
    }
}

/// What a reload from `old` to `new` (the accounts of `config`) changes: the accounts
/// to stop (removed or changed) and the collectors to start (new or changed accounts).
fn diff(
    old: &Accounts,
    new: &Accounts,
    config: &Config,
    providers: &ProviderMetrics,
    upstream: &Upstream,
) -> Change {
    let unchanged = old.unchanged(new);
    let remove = old
        .0
        .iter()
        .filter(|(provider, name, _)| !unchanged.contains(&(*provider, &**name)))
        .map(|(provider, name, _)| (*provider, name.to_string()))
        .collect();
    let mut add = Vec::new();
    for section in &config.sections {
        let provider = section.provider.name();
        for a in &section.accounts {
            if !unchanged.contains(&(provider, a.name())) {
                add.extend(provider::account_collectors(
                    section.provider,
                    a.as_ref(),
                    providers,
                    upstream,
                ));
            }
        }
    }
    Change {
        remove,
        add,
        max_concurrent: config.max_concurrent_requests,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprinter;
    use crate::metrics::Registry;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, &crate::providers::all()).unwrap()
    }

    #[test]
    fn a_reload_restarts_exactly_the_changed_removed_and_new_accounts() {
        let old = config(
            "acedata:\n  - {name: keep, token: t}\n  - {name: change, token: t}\n  - {name: gone, token: t}\nyeastar:\n  - {name: keep, access_token: t}\n  - {name: change, access_token: t}\n",
        );
        let new = config(
            "acedata:\n  - {name: keep, token: t}\n  - {name: change, token: t, user_id: me}\n  - {name: new, token: t}\nyeastar:\n  - {name: keep, access_token: t}\n  - {name: change, access_token_env: PATH}\n",
        );
        let providers = ProviderMetrics::register(&Registry::new(), &crate::providers::all());
        let upstream = Upstream::new(4);
        let change = diff(
            &Accounts::of(&old),
            &Accounts::of(&new),
            &new,
            &providers,
            &upstream,
        );
        let mut removed: Vec<_> = change.remove.into_iter().collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                ("acedata", "change".to_string()),
                ("acedata", "gone".to_string()),
                ("yeastar", "change".to_string())
            ]
        );
        let mut started: Vec<_> = change
            .add
            .iter()
            .map(|s| (s.provider, s.collector.account().to_string()))
            .collect();
        started.dedup();
        assert_eq!(
            started,
            [
                ("acedata", "change".to_string()),
                ("acedata", "new".to_string()),
                ("yeastar", "change".to_string())
            ]
        );
        assert_eq!(change.add.len(), 8 + 8 + 1, "every collector of each");

        // The same file again: nothing changes.
        let again = config(
            "acedata:\n  - {name: keep, token: t}\n  - {name: change, token: t, user_id: me}\n  - {name: new, token: t}\nyeastar:\n  - {name: keep, access_token: t}\n  - {name: change, access_token_env: PATH}\n",
        );
        let change = diff(
            &Accounts::of(&new),
            &Accounts::of(&again),
            &again,
            &providers,
            &upstream,
        );
        assert!(change.remove.is_empty() && change.add.is_empty());
    }

    #[test]
    fn accounts_without_a_fingerprint_restart_on_every_reload() {
        let f = Fingerprinter::new().key("k", "v").finish();
        let accounts = || {
            Accounts(Box::new([
                ("told", "a".into(), Some(f)),
                ("untold", "a".into(), None),
            ]))
        };
        let (old, new) = (accounts(), accounts());
        let unchanged: Vec<_> = old.unchanged(&new).into_iter().collect();
        assert_eq!(unchanged, [("told", "a")]);
    }
}
