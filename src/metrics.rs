//! Metric plumbing shared by every provider: a compact registry of labelled gauge and
//! counter families written straight to the text format, gauge families that know which
//! label sets each account owns, the exporter's self-metrics, and the cached exposition.
//!
//! The `prometheus` crate keeps a full metric object per series (a copy of the family's
//! descriptor and HELP text, the label pairs as owned strings) and copies every series
//! again to encode it. Here a series is one map entry: the label values as small
//! numbers (every distinct label value is stored once, in [`Symbols`]) and an `f64`.
//! With a thousand accounts (about 63,000 series) that is a few megabytes instead of
//! tens. The text is byte for byte what `prometheus::TextEncoder` writes for the same
//! series (a test compares both). Process metrics still come from the `prometheus`
//! crate's process collector.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::core::Collector as _;
use prometheus::{Encoder, TextEncoder};

mod count;

/// Appended to the HELP text of every metric filled from upstream.
pub const CACHED_HELP_SUFFIX: &str =
    " (cached: refreshed on the poll interval, not at scrape time)";

/// Most labels a family may have.
const MAX_LABELS: usize = 8;

/// A series' label values as symbols, in the order of the sorted label names; unused
/// slots are 0.
type Key = [u32; MAX_LABELS];

/// Every distinct label value, stored once and counted by the series that use it.
#[derive(Default)]
struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    /// Indexed by symbol: the value and how many series slots refer to it.
    values: Vec<(Arc<str>, u32)>,
    free: Vec<u32>,
}

impl Symbols {
    fn find(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }

    /// The symbol of `value`, with one more reference.
    fn acquire(&mut self, value: &str) -> u32 {
        if let Some(id) = self.find(value) {
            self.values[id as usize].1 += 1;
            return id;
        }
        let value: Arc<str> = value.into();
        let id = match self.free.pop() {
            Some(id) => {
                self.values[id as usize] = (value.clone(), 1);
                id
            }
            None => {
                self.values.push((value.clone(), 1));
                u32::try_from(self.values.len() - 1).expect("fewer than 2^32 label values")
            }
        };
        self.ids.insert(value, id);
        id
    }

    /// Drop one reference; the value is forgotten with its last one.
    fn release(&mut self, id: u32) {
        let slot = &mut self.values[id as usize];
        slot.1 -= 1;
        if slot.1 == 0 {
            let value = std::mem::replace(&mut slot.0, Arc::from(""));
            self.ids.remove(&value);
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> &str {
        &self.values[id as usize].0
    }
}

/// The metric families of the exporter. Cheap to clone; clones share the families.
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<RwLock<Vec<Arc<Family>>>>,
    symbols: Arc<Mutex<Symbols>>,
    generation: Arc<AtomicU64>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Counts changes: it moves whenever any series is written or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Note a change made outside the families (forces the next encode).
    fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn register(&self, kind: Kind, name: &str, help: &str, labels: &[&str]) -> Arc<Family> {
        let family = Arc::new(Family::new(kind, name, help, labels, self));
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        match families.binary_search_by(|f| f.name.as_ref().cmp(name)) {
            Ok(_) => panic!("metric family {name} is registered twice"),
            Err(at) => families.insert(at, family.clone()),
        }
        family
    }

    /// Append every non-empty family, sorted by name, in the text format (0.0.4).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        for family in families.iter() {
            family.encode(out);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric family: its name, its `# HELP`/`# TYPE` lines, and its series.
struct Family {
    name: Box<str>,
    /// `# HELP …\n# TYPE …\n`, escaped once.
    header: Box<str>,
    /// `{name="` for the first label (sorted by name), `,name="` for the others.
    label_openers: Box<[Box<str>]>,
    /// For each label in key order (sorted by name), its position as declared.
    declared: Box<[usize]>,
    /// Lock order: a family's `series` before `symbols`.
    series: Mutex<BTreeMap<Key, f64>>,
    symbols: Arc<Mutex<Symbols>>,
    generation: Arc<AtomicU64>,
}

impl Family {
    fn new(kind: Kind, name: &str, help: &str, labels: &[&str], registry: &Registry) -> Family {
        debug_assert!(valid_name(name), "invalid metric name {name}");
        debug_assert!(
            labels.iter().all(|l| valid_name(l)),
            "invalid label in {name}"
        );
        assert!(labels.len() <= MAX_LABELS, "{name}: too many labels");
        let mut declared: Vec<usize> = (0..labels.len()).collect();
        declared.sort_by_key(|&i| labels[i]);
        let label_openers = declared
            .iter()
            .enumerate()
            .map(|(pos, &i)| {
                let open = if pos == 0 { '{' } else { ',' };
                format!("{open}{}=\"", labels[i]).into_boxed_str()
            })
            .collect();
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let mut header = String::new();
        if !help.is_empty() {
            header = format!("# HELP {name} ");
            escape_into(help, false, &mut header);
            header.push('\n');
        }
        header.push_str(&format!("# TYPE {name} {kind}\n"));
        Family {
            name: name.into(),
            header: header.into(),
            label_openers,
            declared: declared.into(),
            series: Mutex::new(BTreeMap::new()),
            symbols: registry.symbols.clone(),
            generation: registry.generation.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, f64>> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_symbols(&self) -> MutexGuard<'_, Symbols> {
        self.symbols.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn check_arity(&self, values: &[&str]) {
        assert_eq!(
            values.len(),
            self.declared.len(),
            "{}: wrong number of label values",
            self.name
        );
    }

    /// The key of `values` (declared order) if every value has a symbol already.
    fn find(&self, symbols: &Symbols, values: &[&str]) -> Option<Key> {
        self.check_arity(values);
        let mut key = [0; MAX_LABELS];
        for (pos, &i) in self.declared.iter().enumerate() {
            key[pos] = symbols.find(values[i])?;
        }
        Some(key)
    }

    /// Insert the series of `values` at 0 unless present; return its key.
    fn get_or_insert(
        &self,
        series: &mut BTreeMap<Key, f64>,
        symbols: &mut Symbols,
        values: &[&str],
    ) -> Key {
        if let Some(key) = self.find(symbols, values) {
            if series.contains_key(&key) {
                return key;
            }
        }
        let mut key = [0; MAX_LABELS];
        for (pos, &i) in self.declared.iter().enumerate() {
            key[pos] = symbols.acquire(values[i]);
        }
        series.insert(key, 0.0);
        key
    }

    fn remove_key(
        &self,
        series: &mut BTreeMap<Key, f64>,
        symbols: &mut Symbols,
        key: &Key,
    ) -> bool {
        if series.remove(key).is_none() {
            return false;
        }
        for &id in &key[..self.declared.len()] {
            symbols.release(id);
        }
        true
    }

    fn update(&self, values: &[&str], f: impl FnOnce(&mut f64)) {
        let mut series = self.lock();
        let key = self.get_or_insert(&mut series, &mut self.lock_symbols(), values);
        if let Some(v) = series.get_mut(&key) {
            f(v);
        }
        drop(series);
        self.changed();
    }

    fn get(&self, values: &[&str]) -> f64 {
        let series = self.lock();
        let key = self.find(&self.lock_symbols(), values);
        key.and_then(|k| series.get(&k).copied()).unwrap_or(0.0)
    }

    fn remove(&self, values: &[&str]) -> bool {
        let mut series = self.lock();
        let mut symbols = self.lock_symbols();
        let removed = self
            .find(&symbols, values)
            .is_some_and(|key| self.remove_key(&mut series, &mut symbols, &key));
        drop((series, symbols));
        if removed {
            self.changed();
        }
        removed
    }

    fn reset(&self) {
        let mut series = self.lock();
        let mut symbols = self.lock_symbols();
        for key in std::mem::take(&mut *series).keys() {
            for &id in &key[..self.declared.len()] {
                symbols.release(id);
            }
        }
        drop((series, symbols));
        self.changed();
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let series = self.lock();
        if series.is_empty() {
            return;
        }
        let symbols = self.lock_symbols();
        let n = self.declared.len();
        // Keys are ordered by symbol; the text is ordered by label values.
        let mut sorted: Vec<(&Key, f64)> = series.iter().map(|(k, v)| (k, *v)).collect();
        if n > 0 {
            sorted.sort_unstable_by(|a, b| {
                for pos in 0..n {
                    if a.0[pos] != b.0[pos] {
                        let o = symbols.get(a.0[pos]).cmp(symbols.get(b.0[pos]));
                        if o != CmpOrdering::Equal {
                            return o;
                        }
                    }
                }
                CmpOrdering::Equal
            });
        }
        out.extend_from_slice(self.header.as_bytes());
        for (key, value) in sorted {
            out.extend_from_slice(self.name.as_bytes());
            if n > 0 {
                for (opener, &id) in self.label_openers.iter().zip(key.iter()) {
                    out.extend_from_slice(opener.as_bytes());
                    escape_label_value(symbols.get(id), out);
                    out.push(b'"');
                }
                out.push(b'}');
            }
            out.push(b' ');
            // `Display` of f64, as `prometheus::TextEncoder` writes values.
            let _ = write!(out, "{value}");
            out.push(b'\n');
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// HELP text escapes `\` and newline; label values also `"`.
fn escape_into(s: &str, quote: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn escape_label_value(v: &str, out: &mut Vec<u8>) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'\n' | b'"')) {
        out.extend_from_slice(v.as_bytes());
        return;
    }
    let mut escaped = String::with_capacity(v.len() + 8);
    escape_into(v, true, &mut escaped);
    out.extend_from_slice(escaped.as_bytes());
}

/// A labelled gauge family (the `prometheus` crate's `GaugeVec`, minus the per-series
/// overhead).
#[derive(Clone)]
pub struct GaugeVec(Arc<Family>);

/// A labelled counter family.
#[derive(Clone)]
pub struct CounterVec(Arc<Family>);

/// One gauge series.
pub struct Gauge {
    family: Arc<Family>,
    values: Box<[Box<str>]>,
}

/// One counter series.
pub struct Counter {
    family: Arc<Family>,
    values: Box<[Box<str>]>,
}

fn owned(values: &[&str]) -> Box<[Box<str>]> {
    values.iter().map(|v| Box::from(*v)).collect()
}

fn borrowed(values: &[Box<str>]) -> Vec<&str> {
    values.iter().map(AsRef::as_ref).collect()
}

impl GaugeVec {
    /// Register a gauge family `name` with labels `labels` into `registry`.
    ///
    /// # Panics
    /// When a family of that name is already registered.
    pub fn new(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Self {
        GaugeVec(registry.register(Kind::Gauge, name, help, labels))
    }

    /// The series with these label values (in declared order), created at 0 if absent.
    pub fn with_label_values(&self, values: &[&str]) -> Gauge {
        self.0.update(values, |_| {});
        Gauge {
            family: self.0.clone(),
            values: owned(values),
        }
    }

    /// Remove one series; false when it did not exist.
    pub fn remove_label_values(&self, values: &[&str]) -> bool {
        self.0.remove(values)
    }

    /// Remove every series.
    pub fn reset(&self) {
        self.0.reset();
    }
}

impl Gauge {
    /// Set the value.
    pub fn set(&self, value: f64) {
        self.family.update(&borrowed(&self.values), |v| *v = value);
    }

    /// The current value (0 when the series was removed meanwhile).
    pub fn get(&self) -> f64 {
        self.family.get(&borrowed(&self.values))
    }
}

impl CounterVec {
    /// Register a counter family `name` with labels `labels` into `registry`.
    ///
    /// # Panics
    /// When a family of that name is already registered.
    pub fn new(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Self {
        CounterVec(registry.register(Kind::Counter, name, help, labels))
    }

    /// The series with these label values (in declared order), created at 0 if absent.
    pub fn with_label_values(&self, values: &[&str]) -> Counter {
        self.0.update(values, |_| {});
        Counter {
            family: self.0.clone(),
            values: owned(values),
        }
    }

    /// Remove one series; false when it did not exist.
    pub fn remove_label_values(&self, values: &[&str]) -> bool {
        self.0.remove(values)
    }
}

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.family.update(&borrowed(&self.values), |v| *v += 1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.family.get(&borrowed(&self.values))
    }
}

/// A gauge family whose first label is `account`, able to replace the complete set of
/// one account's series so that vanished label sets disappear.
pub struct GaugeFamily {
    family: Arc<Family>,
    /// Position of `account` in the key.
    account_at: usize,
}

impl GaugeFamily {
    /// Register a family `name` with labels `account` + `extra_labels`. Its HELP text
    /// says the value is refreshed on an interval.
    pub fn new(registry: &Registry, name: &str, help: &str, extra_labels: &[&str]) -> Self {
        let mut labels = vec!["account"];
        labels.extend_from_slice(extra_labels);
        let help = format!("{help}{CACHED_HELP_SUFFIX}");
        let family = registry.register(Kind::Gauge, name, &help, &labels);
        let account_at = family
            .declared
            .iter()
            .position(|&i| i == 0)
            .expect("account is a label");
        GaugeFamily { family, account_at }
    }

    /// Make `series` the complete set of this account's series: set each, remove
    /// label sets written before but absent now.
    pub fn replace<I>(&self, account: &str, series: I)
    where
        I: IntoIterator<Item = (Vec<String>, f64)>,
    {
        let f = &self.family;
        let mut map = f.lock();
        let mut symbols = f.lock_symbols();
        let mut kept: Vec<Key> = Vec::new();
        for (extra, value) in series {
            let mut labels: Vec<&str> = Vec::with_capacity(extra.len() + 1);
            labels.push(account);
            labels.extend(extra.iter().map(String::as_str));
            let key = f.get_or_insert(&mut map, &mut symbols, &labels);
            map.insert(key, value);
            kept.push(key);
        }
        if let Some(account) = symbols.find(account) {
            let owned: Vec<Key> = if self.account_at == 0 {
                // Keys sort by their first symbol: the account's series are one range.
                let mut from = [0; MAX_LABELS];
                from[0] = account;
                map.range(from..)
                    .map(|(k, _)| *k)
                    .take_while(|k| k[0] == account)
                    .collect()
            } else {
                map.keys()
                    .filter(|k| k[self.account_at] == account)
                    .copied()
                    .collect()
            };
            for gone in owned.iter().filter(|k| !kept.contains(k)) {
                f.remove_key(&mut map, &mut symbols, gone);
            }
        }
        drop((map, symbols));
        f.changed();
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
    pub errors: CounterVec,
    pub low_balance_threshold: GaugeVec,
}

impl SelfMetrics {
    /// Register the self-metrics and `balance_exporter_build_info` into `registry`.
    pub fn new(registry: &Registry) -> Self {
        let cl = &["collector", "account"];
        let success = GaugeVec::new(
            registry,
            "balance_exporter_collector_success",
            "Whether the collector's last attempt succeeded (1) or failed (0).",
            cl,
        );
        let last_success = GaugeVec::new(
            registry,
            "balance_exporter_collector_last_success_timestamp_seconds",
            "Unix time of the collector's last successful attempt.",
            cl,
        );
        let duration = GaugeVec::new(
            registry,
            "balance_exporter_collector_duration_seconds",
            "Duration of the collector's last attempt in seconds.",
            cl,
        );
        let errors = CounterVec::new(
            registry,
            "balance_exporter_collector_errors_total",
            "Failed collection attempts by reason: one per scheduled attempt that failed after its retries.",
            &["collector", "account", "reason"],
        );
        let low_balance_threshold = GaugeVec::new(
            registry,
            "balance_exporter_low_balance_threshold",
            "Configured low-balance alert threshold of the account.",
            &["provider", "account"],
        );
        let build_info = GaugeVec::new(
            registry,
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
/// Every write to the registry moves its generation; a scrape re-encodes only when the
/// generation moved since the cached body was made, and every other scrape gets the same
/// `Bytes` (no allocation, no copy). Process metrics (CPU, memory) change on their own,
/// so they are re-read at most once per second and appended to the cached body. Only
/// one copy of the body is kept.
pub struct Exposition {
    registry: Registry,
    process: prometheus::Registry,
    cache: RwLock<Cached>,
    rebuild: Mutex<()>,
}

struct Cached {
    /// The registry's text followed by the process metrics' text.
    body: Bytes,
    /// Where the process metrics start in `body`.
    main_len: usize,
    /// The registry generation `body` was encoded at; `None` before the first encode.
    generation: Option<u64>,
    /// When the process metrics in `body` were read.
    process_at: Option<Instant>,
}

/// How long encoded process metrics are reused.
const PROCESS_TTL: Duration = Duration::from_secs(1);

impl Exposition {
    /// Wrap `registry`; process metrics come from a registry of their own.
    pub fn new(registry: Registry) -> Arc<Self> {
        let process = prometheus::Registry::new();
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        if !pc.desc().is_empty() {
            let _ = process.register(Box::new(pc));
        }
        Arc::new(Exposition {
            registry,
            process,
            cache: RwLock::new(Cached {
                body: Bytes::new(),
                main_len: 0,
                generation: None,
                process_at: None,
            }),
            rebuild: Mutex::new(()),
        })
    }

    /// The registry collectors and self-metrics live in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Force the next scrape to re-encode. Writes to the registry already do; this is
    /// for changes the registry cannot see.
    pub fn mark_dirty(&self) {
        self.registry.touch();
    }

    /// The current exposition text (Prometheus text format 0.0.4).
    pub fn render(&self) -> Bytes {
        {
            let c = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if self.fresh(&c) == (true, true) {
                return c.body.clone();
            }
        }
        // One scrape rebuilds; concurrent ones wait for it and then share its bytes.
        let _rebuilding = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let (old, main_len, main_fresh, process_fresh, old_generation, process_at) = {
            let c = self.cache.read().unwrap_or_else(|e| e.into_inner());
            let (m, p) = self.fresh(&c);
            (c.body.clone(), c.main_len, m, p, c.generation, c.process_at)
        };
        if main_fresh && process_fresh {
            return old;
        }
        let generation = self.registry.generation();
        let process = if process_fresh {
            old.slice(main_len..)
        } else {
            self.encode_process()
        };
        let mut buf = if main_fresh {
            let mut buf = Vec::with_capacity(main_len + process.len());
            buf.extend_from_slice(&old[..main_len]);
            buf
        } else {
            // Room for the previous size plus a little growth, so the buffer is not
            // doubled (and half wasted) on the way.
            let mut buf = Vec::with_capacity(main_len + main_len / 16 + 4096 + process.len());
            self.registry.encode(&mut buf);
            buf
        };
        let main_len = buf.len();
        buf.extend_from_slice(&process);
        let body = Bytes::from(buf);
        drop((old, process));
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Cached {
            body: body.clone(),
            main_len,
            generation: if main_fresh {
                old_generation
            } else {
                Some(generation)
            },
            process_at: if process_fresh {
                process_at
            } else {
                Some(Instant::now())
            },
        };
        body
    }

    /// Whether the cached registry text and the cached process text are current.
    fn fresh(&self, c: &Cached) -> (bool, bool) {
        (
            c.generation == Some(self.registry.generation()),
            c.process_at.is_some_and(|t| t.elapsed() < PROCESS_TTL),
        )
    }

    fn encode_process(&self) -> Bytes {
        let mut buf = Vec::with_capacity(2048);
        if let Err(e) = TextEncoder::new().encode(&self.process.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode process metrics");
        }
        Bytes::from(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: &Exposition) -> String {
        String::from_utf8(e.render().to_vec()).unwrap()
    }

    fn encoded(r: &Registry) -> String {
        let mut out = Vec::new();
        r.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replace_removes_vanished_label_sets_of_that_account_only() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        let exp = Exposition::new(registry);
        fam.replace("a", [(vec!["p1".into()], 1.0), (vec!["p2".into()], 2.0)]);
        fam.replace("b", [(vec!["p1".into()], 3.0)]);
        fam.replace("a", [(vec!["p2".into()], 5.0)]);
        let t = text(&exp);
        assert!(!t.contains(r#"t_amount{account="a",package="p1"}"#), "{t}");
        assert!(t.contains(r#"t_amount{account="a",package="p2"} 5"#), "{t}");
        assert!(t.contains(r#"t_amount{account="b",package="p1"} 3"#), "{t}");
        assert!(t.contains("refreshed on the poll interval"), "{t}");
        fam.clear("b");
        assert!(!text(&exp).contains(r#"account="b""#));
    }

    #[test]
    fn replace_keeps_accounts_whose_name_extends_another() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_v", "V.", &["level"]);
        fam.replace("a", [(vec!["1".into()], 1.0)]);
        fam.replace("a-b", [(vec!["1".into()], 2.0)]);
        fam.replace("a\"", [(vec!["1".into()], 3.0)]);
        fam.clear("a");
        let t = encoded(&registry);
        assert!(!t.contains(r#"account="a",level"#), "{t}");
        assert!(t.contains(r#"t_v{account="a-b",level="1"} 2"#), "{t}");
        assert!(t.contains(r#"t_v{account="a\"",level="1"} 3"#), "{t}");
    }

    #[test]
    fn scrape_reuses_bytes_until_something_changes() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_value", "Value.", &[]);
        let exp = Exposition::new(registry);
        fam.set("a", 1.0);
        let first = exp.render();
        let again = exp.render();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "no re-encode without a change"
        );
        fam.set("a", 2.0);
        let third = exp.render();
        assert_ne!(first.as_ptr(), third.as_ptr());
        assert!(String::from_utf8_lossy(&third).contains("t_value{account=\"a\"} 2"));
        exp.mark_dirty();
        assert_ne!(third.as_ptr(), exp.render().as_ptr());
    }

    /// The same series through `prometheus`' own registry and encoder give the same text.
    #[test]
    fn text_matches_the_prometheus_encoder() {
        let ours = Registry::new();
        let theirs = prometheus::Registry::new();
        let specs: [(&str, &str, &[&str]); 4] = [
            ("t_zeta", "Last family.", &["b", "a"]),
            (
                "t_alpha",
                "Help with \\ backslash\nand newline.",
                &["account", "package_id", "package"],
            ),
            ("t_plain", "", &[]),
            ("t_empty", "Never written.", &["x"]),
        ];
        let mut pairs = Vec::new();
        for (name, help, labels) in specs {
            let g = GaugeVec::new(&ours, name, help, labels);
            let opts = prometheus::Opts::new(name, if help.is_empty() { "x" } else { help });
            let p = prometheus::GaugeVec::new(opts, labels).unwrap();
            theirs.register(Box::new(p.clone())).unwrap();
            pairs.push((g, p));
        }
        let values: &[&[&str]] = &[
            &["b2", "a1"],
            &["b1", "a1"],
            &["b1", "a10"],
            &["b\"q\\\n", "a"],
            &["", "a1"],
        ];
        for (i, v) in values.iter().enumerate() {
            let x = [1.0, 0.1, -2.5, 1e21, 123456.789][i];
            pairs[0].0.with_label_values(v).set(x);
            pairs[0].1.with_label_values(v).set(x);
        }
        for (i, v) in [
            ["acc", "p2", "Pro"],
            ["acc", "p1", "Basic"],
            ["ab", "p1", "Z"],
        ]
        .iter()
        .enumerate()
        {
            pairs[1].0.with_label_values(v).set(i as f64 * 1.5);
            pairs[1].1.with_label_values(v).set(i as f64 * 1.5);
        }
        pairs[2].0.with_label_values(&[]).set(f64::NAN);
        pairs[2].1.with_label_values::<&str>(&[]).set(f64::NAN);
        let counter = CounterVec::new(&ours, "t_count_total", "Counts.", &["reason"]);
        let pc = prometheus::IntCounterVec::new(
            prometheus::Opts::new("t_count_total", "Counts."),
            &["reason"],
        )
        .unwrap();
        theirs.register(Box::new(pc.clone())).unwrap();
        for r in ["timeout", "decode", "timeout"] {
            counter.with_label_values(&[r]).inc();
            pc.with_label_values(&[r]).inc();
        }
        counter.with_label_values(&["connect"]);
        pc.with_label_values(&["connect"]);

        let mut expected = Vec::new();
        TextEncoder::new()
            .encode(&theirs.gather(), &mut expected)
            .unwrap();
        let expected = String::from_utf8(expected)
            .unwrap()
            // `prometheus` insists on a HELP text; ours may be empty.
            .replace("# HELP t_plain x\n", "");
        assert_eq!(encoded(&ours), expected);
    }

    #[test]
    fn label_values_are_forgotten_with_their_last_series() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_a", "A.", &["package"]);
        let g = GaugeVec::new(&registry, "t_b", "B.", &["account"]);
        fam.replace("x", [(vec!["p1".into()], 1.0), (vec!["p2".into()], 2.0)]);
        fam.replace("x", [(vec!["p1".into()], 3.0)]);
        g.with_label_values(&["x"]).set(1.0);
        let known = |r: &Registry| {
            let s = r.symbols.lock().unwrap();
            let mut v: Vec<String> = s.ids.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(known(&registry), ["p1", "x"]);
        fam.clear("x");
        assert_eq!(known(&registry), ["x"]);
        g.reset();
        assert!(known(&registry).is_empty());
        fam.replace("y", [(vec!["p3".into()], 1.0)]);
        assert_eq!(
            encoded(&registry),
            "# HELP t_a A. (cached: refreshed on the poll interval, not at scrape time)\n\
             # TYPE t_a gauge\nt_a{account=\"y\",package=\"p3\"} 1\n"
        );
    }

    #[test]
    fn removed_and_reset_series_disappear() {
        let registry = Registry::new();
        let g = GaugeVec::new(&registry, "t_g", "G.", &["provider", "account"]);
        g.with_label_values(&["p", "a"]).set(1.0);
        g.with_label_values(&["p", "b"]).set(2.0);
        assert!(g.remove_label_values(&["p", "a"]));
        assert!(!g.remove_label_values(&["p", "a"]));
        assert_eq!(
            encoded(&registry),
            "# HELP t_g G.\n# TYPE t_g gauge\nt_g{account=\"b\",provider=\"p\"} 2\n"
        );
        g.reset();
        assert_eq!(encoded(&registry), "");
    }
}
