//! Metric plumbing shared by every provider: gauge families that know which label
//! sets each account owns, the exporter's self-metrics, and the cached exposition.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::core::Collector as _;
use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Appended to the HELP text of every metric filled from upstream.
pub const CACHED_HELP_SUFFIX: &str =
    " (cached: refreshed on the poll interval, not at scrape time)";

/// A gauge family whose first label is `account`, remembering which label sets each
/// account has written so that vanished ones can be removed.
pub struct GaugeFamily {
    vec: GaugeVec,
    owned: Mutex<HashMap<String, HashSet<Vec<String>>>>,
}

impl GaugeFamily {
    /// Register a family `name` with labels `account` + `extra_labels`. Its HELP text
    /// says the value is refreshed on an interval.
    pub fn new(registry: &Registry, name: &str, help: &str, extra_labels: &[&str]) -> Self {
        let mut labels = vec!["account"];
        labels.extend_from_slice(extra_labels);
        let vec = GaugeVec::new(
            Opts::new(name, format!("{help}{CACHED_HELP_SUFFIX}")),
            &labels,
        )
        .expect("metric definitions are static and valid");
        registry
            .register(Box::new(vec.clone()))
            .expect("each metric family is registered once");
        GaugeFamily {
            vec,
            owned: Mutex::new(HashMap::new()),
        }
    }

    /// Make `series` the complete set of this account's series: set each, remove
    /// label sets written before but absent now.
    pub fn replace<I>(&self, account: &str, series: I)
    where
        I: IntoIterator<Item = (Vec<String>, f64)>,
    {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        let previous = owned.remove(account).unwrap_or_default();
        let mut now = HashSet::new();
        for (extra, value) in series {
            let mut labels: Vec<&str> = Vec::with_capacity(extra.len() + 1);
            labels.push(account);
            labels.extend(extra.iter().map(String::as_str));
            self.vec.with_label_values(&labels).set(value);
            now.insert(extra);
        }
        for gone in previous.difference(&now) {
            let mut labels: Vec<&str> = vec![account];
            labels.extend(gone.iter().map(String::as_str));
            let _ = self.vec.remove_label_values(&labels);
        }
        if !now.is_empty() {
            owned.insert(account.to_string(), now);
        }
    }

    /// Set the account's single series (a family without extra labels).
    pub fn set(&self, account: &str, value: f64) {
        self.replace(account, [(Vec::new(), value)]);
    }

    /// Set the account's single series, or remove it when `value` is `None`.
    pub fn set_opt(&self, account: &str, value: Option<f64>) {
        match value {
            Some(v) => self.set(account, v),
            None => self.clear(account),
        }
    }

    /// Remove every series of this account.
    pub fn clear(&self, account: &str) {
        self.replace(account, std::iter::empty());
    }
}

/// The exporter's own metrics (namespace `balance_exporter`).
#[derive(Clone)]
pub struct SelfMetrics {
    pub success: GaugeVec,
    pub last_success: GaugeVec,
    pub duration: GaugeVec,
    pub errors: IntCounterVec,
    pub low_balance_threshold: GaugeVec,
}

impl SelfMetrics {
    /// Register the self-metrics and `balance_exporter_build_info` into `registry`.
    pub fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("static metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let cl = &["collector", "account"];
        let success = gauge(
            "balance_exporter_collector_success",
            "Whether the collector's last attempt succeeded (1) or failed (0).",
            cl,
        );
        let last_success = gauge(
            "balance_exporter_collector_last_success_timestamp_seconds",
            "Unix time of the collector's last successful attempt.",
            cl,
        );
        let duration = gauge(
            "balance_exporter_collector_duration_seconds",
            "Duration of the collector's last attempt in seconds.",
            cl,
        );
        let errors = IntCounterVec::new(
            Opts::new(
                "balance_exporter_collector_errors_total",
                "Failed collection attempts by reason: one per scheduled attempt that failed after its retries.",
            ),
            &["collector", "account", "reason"],
        )
        .expect("static metric");
        registry
            .register(Box::new(errors.clone()))
            .expect("registered once");
        let low_balance_threshold = gauge(
            "balance_exporter_low_balance_threshold",
            "Configured low-balance alert threshold of the account.",
            &["provider", "account"],
        );
        let build_info = gauge(
            "balance_exporter_build_info",
            "Build information of the running exporter; the value is always 1.",
            &["version", "revision", "rustc_version"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("BALANCE_EXPORTER_REVISION"),
                env!("BALANCE_EXPORTER_RUSTC_VERSION"),
            ])
            .set(1.0);
        SelfMetrics {
            success,
            last_success,
            duration,
            errors,
            low_balance_threshold,
        }
    }

    /// Create the error counters of a collector at zero for every reason, so that
    /// `rate()` and `increase()` see the first failure.
    pub fn init_collector(&self, collector: &str, account: &str) {
        for reason in crate::collector::CollectError::REASONS {
            self.errors.with_label_values(&[collector, account, reason]);
        }
    }

    /// Remove every self-metric series of a collector (its account left the config).
    pub fn remove_collector(&self, collector: &str, account: &str) {
        let labels = [collector, account];
        let _ = self.success.remove_label_values(&labels);
        let _ = self.last_success.remove_label_values(&labels);
        let _ = self.duration.remove_label_values(&labels);
        for reason in crate::collector::CollectError::REASONS {
            let _ = self
                .errors
                .remove_label_values(&[collector, account, reason]);
        }
    }
}

/// The `/metrics` body, encoded once per change and served as shared bytes.
///
/// Collector updates mark the cache dirty; the next scrape re-encodes once and every
/// scrape after that gets the same `Bytes` until something changes. Process metrics
/// (CPU, memory) change on their own, so they are encoded separately at most once
/// per second.
pub struct Exposition {
    registry: Registry,
    process: Registry,
    dirty: AtomicBool,
    main: RwLock<Bytes>,
    encode_lock: Mutex<()>,
    process_cache: Mutex<(Option<Instant>, Bytes)>,
    combined: RwLock<(Bytes, Bytes, Bytes)>,
}

/// How long encoded process metrics are reused.
const PROCESS_TTL: Duration = Duration::from_secs(1);

impl Exposition {
    /// Wrap `registry`; process metrics come from a registry of their own.
    pub fn new(registry: Registry) -> Arc<Self> {
        let process = Registry::new();
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        if !pc.desc().is_empty() {
            let _ = process.register(Box::new(pc));
        }
        Arc::new(Exposition {
            registry,
            process,
            dirty: AtomicBool::new(true),
            main: RwLock::new(Bytes::new()),
            encode_lock: Mutex::new(()),
            process_cache: Mutex::new((None, Bytes::new())),
            combined: RwLock::new((Bytes::new(), Bytes::new(), Bytes::new())),
        })
    }

    /// The registry collectors and self-metrics live in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Note that some metric changed; the next scrape re-encodes.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// The current exposition text (Prometheus text format 0.0.4).
    pub fn render(&self) -> Bytes {
        let main = self.main_bytes();
        let process = self.process_bytes();
        // Reuse the concatenation while neither part changed (pointer equality is
        // enough: both parts are only ever replaced, never mutated).
        {
            let c = self.combined.read().unwrap_or_else(|e| e.into_inner());
            if same(&c.0, &main) && same(&c.1, &process) && !c.2.is_empty() {
                return c.2.clone();
            }
        }
        let mut out = Vec::with_capacity(main.len() + process.len());
        out.extend_from_slice(&main);
        out.extend_from_slice(&process);
        let out = Bytes::from(out);
        *self.combined.write().unwrap_or_else(|e| e.into_inner()) = (main, process, out.clone());
        out
    }

    fn main_bytes(&self) -> Bytes {
        if self.dirty.load(Ordering::Acquire) {
            let _guard = self.encode_lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.dirty.swap(false, Ordering::AcqRel) {
                let bytes = encode(&self.registry);
                *self.main.write().unwrap_or_else(|e| e.into_inner()) = bytes;
            }
        }
        self.main.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn process_bytes(&self) -> Bytes {
        let mut cache = self.process_cache.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = cache.0.is_some_and(|t| t.elapsed() < PROCESS_TTL);
        if !fresh {
            cache.1 = encode(&self.process);
            cache.0 = Some(Instant::now());
        }
        cache.1.clone()
    }
}

fn same(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn encode(registry: &Registry) -> Bytes {
    let mut buf = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: &Exposition) -> String {
        String::from_utf8(e.render().to_vec()).unwrap()
    }

    #[test]
    fn replace_removes_vanished_label_sets_of_that_account_only() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        let exp = Exposition::new(registry);
        fam.replace("a", [(vec!["p1".into()], 1.0), (vec!["p2".into()], 2.0)]);
        fam.replace("b", [(vec!["p1".into()], 3.0)]);
        fam.replace("a", [(vec!["p2".into()], 5.0)]);
        exp.mark_dirty();
        let t = text(&exp);
        assert!(!t.contains(r#"t_amount{account="a",package="p1"}"#), "{t}");
        assert!(t.contains(r#"t_amount{account="a",package="p2"} 5"#), "{t}");
        assert!(t.contains(r#"t_amount{account="b",package="p1"} 3"#), "{t}");
        assert!(t.contains("refreshed on the poll interval"), "{t}");
        fam.clear("b");
        exp.mark_dirty();
        assert!(!text(&exp).contains(r#"account="b""#));
    }

    #[test]
    fn scrape_reuses_bytes_until_marked_dirty() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_value", "Value.", &[]);
        let exp = Exposition::new(registry);
        fam.set("a", 1.0);
        let first = exp.main_bytes();
        fam.set("a", 2.0);
        let second = exp.main_bytes();
        assert!(same(&first, &second), "no re-encode without mark_dirty");
        exp.mark_dirty();
        let third = exp.main_bytes();
        assert!(!same(&second, &third));
        assert!(String::from_utf8_lossy(&third).contains("t_value{account=\"a\"} 2"));
    }
}
