//! One metric family: its `# HELP`/`# TYPE` lines and its series, each series a key of
//! label symbols and an `f64`, written straight to the text format.
//!
//! The key type is chosen when the family is registered ([`Registry`]): a family of up
//! to [`INLINE_LABELS`] labels keeps its keys inline (`[u32; 4]`, 16 bytes, no
//! allocation per series: every family the exporter has today), a wider family keeps a
//! boxed slice per series. Any number of labels works; only wide families pay for it.
//!
//! [`Registry`]: super::Registry

use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::symbols::Symbols;
use super::text::{escape_into, escape_label_value, valid_name};

/// Most labels whose symbols are stored inline in a series key.
pub const INLINE_LABELS: usize = 4;

/// Encoded text is handed to the sink in pieces of about this size.
pub(super) const CHUNK: usize = 64 * 1024;

/// A series' label values as symbols, in the order of the sorted label names.
pub(super) trait Key: Ord + Clone + Send + Sync + 'static {
    /// The key of these symbols (at most the family's arity of them).
    fn from_symbols(symbols: impl Iterator<Item = u32>) -> Self;
    /// The symbols; an inline key may have unused trailing slots (0).
    fn symbols(&self) -> &[u32];
}

impl Key for [u32; INLINE_LABELS] {
    fn from_symbols(symbols: impl Iterator<Item = u32>) -> Self {
        let mut key = [0; INLINE_LABELS];
        for (slot, id) in key.iter_mut().zip(symbols) {
            *slot = id;
        }
        key
    }

    fn symbols(&self) -> &[u32] {
        self
    }
}

impl Key for Box<[u32]> {
    fn from_symbols(symbols: impl Iterator<Item = u32>) -> Self {
        symbols.collect()
    }

    fn symbols(&self) -> &[u32] {
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Gauge,
    Counter,
}

/// What the handles and the registry do with a family, whatever its key type.
pub(super) trait FamilyOps: Send + Sync {
    fn name(&self) -> &str;
    /// For each label in key order (sorted by name), its position as declared.
    fn declared(&self) -> &[usize];
    fn update(&self, values: &[&str], f: &mut dyn FnMut(&mut f64));
    fn get(&self, values: &[&str]) -> f64;
    fn remove(&self, values: &[&str]) -> bool;
    fn reset(&self);
    /// Make `series` (label values after `account`, value) the complete set of the
    /// series of `account`, whose label is at key position `account_at`.
    fn replace(
        &self,
        account_at: usize,
        account: &str,
        series: &mut dyn Iterator<Item = (Vec<String>, f64)>,
    );
    /// Append the family's text to `out`, calling `flush` whenever `out` has grown
    /// past [`CHUNK`] bytes.
    fn encode(&self, out: &mut Vec<u8>, flush: &mut dyn FnMut(&mut Vec<u8>));
    /// How many series `account` (whose label is at key position `account_at`) owns.
    fn count(&self, account_at: usize, account: &str) -> usize;
}

/// Build a family with the key type that fits its number of labels.
pub(super) fn new_family(
    kind: Kind,
    name: &str,
    help: &str,
    labels: &[&str],
    symbols: Arc<Mutex<Symbols>>,
    generation: Arc<AtomicU64>,
) -> Arc<dyn FamilyOps> {
    if labels.len() <= INLINE_LABELS {
        Arc::new(Family::<[u32; INLINE_LABELS]>::new(
            kind, name, help, labels, symbols, generation,
        ))
    } else {
        Arc::new(Family::<Box<[u32]>>::new(
            kind, name, help, labels, symbols, generation,
        ))
    }
}

struct Family<K: Key> {
    name: Box<str>,
    /// `# HELP …\n# TYPE …\n`, escaped once.
    header: Box<str>,
    /// `{name="` for the first label (sorted by name), `,name="` for the others.
    label_openers: Box<[Box<str>]>,
    /// For each label in key order (sorted by name), its position as declared.
    declared: Box<[usize]>,
    /// Lock order: a family's `series` before `symbols`.
    series: Mutex<BTreeMap<K, f64>>,
    symbols: Arc<Mutex<Symbols>>,
    generation: Arc<AtomicU64>,
}

impl<K: Key> Family<K> {
    fn new(
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[&str],
        symbols: Arc<Mutex<Symbols>>,
        generation: Arc<AtomicU64>,
    ) -> Self {
        debug_assert!(valid_name(name), "invalid metric name {name}");
        debug_assert!(
            labels.iter().all(|l| valid_name(l)),
            "invalid label in {name}"
        );
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
            symbols,
            generation,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<K, f64>> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_symbols(&self) -> MutexGuard<'_, Symbols> {
        self.symbols.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn arity(&self) -> usize {
        self.declared.len()
    }

    fn check_arity(&self, values: &[&str]) {
        assert_eq!(
            values.len(),
            self.arity(),
            "{}: wrong number of label values",
            self.name
        );
    }

    /// The key of `values` (declared order) if every value has a symbol already.
    fn find(&self, symbols: &Symbols, values: &[&str]) -> Option<K> {
        self.check_arity(values);
        let mut missing = false;
        let key = K::from_symbols(self.declared.iter().map_while(|&i| {
            let id = symbols.find(values[i]);
            missing |= id.is_none();
            id
        }));
        (!missing).then_some(key)
    }

    /// Insert the series of `values` at 0 unless present; return its key.
    fn get_or_insert(
        &self,
        series: &mut BTreeMap<K, f64>,
        symbols: &mut Symbols,
        values: &[&str],
    ) -> K {
        if let Some(key) = self.find(symbols, values) {
            if series.contains_key(&key) {
                return key;
            }
        }
        let key = K::from_symbols(self.declared.iter().map(|&i| symbols.acquire(values[i])));
        series.insert(key.clone(), 0.0);
        key
    }

    fn remove_key(&self, series: &mut BTreeMap<K, f64>, symbols: &mut Symbols, key: &K) -> bool {
        if series.remove(key).is_none() {
            return false;
        }
        for &id in &key.symbols()[..self.arity()] {
            symbols.release(id);
        }
        true
    }
}

impl<K: Key> FamilyOps for Family<K> {
    fn name(&self) -> &str {
        &self.name
    }

    fn declared(&self) -> &[usize] {
        &self.declared
    }

    fn update(&self, values: &[&str], f: &mut dyn FnMut(&mut f64)) {
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
            for &id in &key.symbols()[..self.arity()] {
                symbols.release(id);
            }
        }
        drop((series, symbols));
        self.changed();
    }

    fn replace(
        &self,
        account_at: usize,
        account: &str,
        series: &mut dyn Iterator<Item = (Vec<String>, f64)>,
    ) {
        let mut map = self.lock();
        let mut symbols = self.lock_symbols();
        let mut kept: Vec<K> = Vec::new();
        for (extra, value) in series {
            let mut labels: Vec<&str> = Vec::with_capacity(extra.len() + 1);
            labels.push(account);
            labels.extend(extra.iter().map(String::as_str));
            let key = self.get_or_insert(&mut map, &mut symbols, &labels);
            map.insert(key.clone(), value);
            kept.push(key);
        }
        if let Some(account) = symbols.find(account) {
            let owned: Vec<K> = if account_at == 0 {
                // Keys sort by their first symbol: the account's series are one range,
                // starting at the account followed by the smallest symbols.
                let from = K::from_symbols(std::iter::once(account));
                map.range(from..)
                    .map(|(k, _)| k.clone())
                    .take_while(|k| k.symbols()[0] == account)
                    .collect()
            } else {
                map.keys()
                    .filter(|k| k.symbols()[account_at] == account)
                    .cloned()
                    .collect()
            };
            for gone in owned.iter().filter(|k| !kept.contains(k)) {
                self.remove_key(&mut map, &mut symbols, gone);
            }
        }
        drop((map, symbols));
        self.changed();
    }

    fn count(&self, account_at: usize, account: &str) -> usize {
        let map = self.lock();
        let symbols = self.lock_symbols();
        let Some(id) = symbols.find(account) else {
            return 0;
        };
        if account_at == 0 {
            // The account's series are one range (see `replace`): counting them costs
            // the account's own series, not the whole family's.
            let from = K::from_symbols(std::iter::once(id));
            map.range(from..)
                .take_while(|(k, _)| k.symbols()[0] == id)
                .count()
        } else {
            map.keys().filter(|k| k.symbols()[account_at] == id).count()
        }
    }

    fn encode(&self, out: &mut Vec<u8>, flush: &mut dyn FnMut(&mut Vec<u8>)) {
        let series = self.lock();
        if series.is_empty() {
            return;
        }
        let symbols = self.lock_symbols();
        let n = self.arity();
        // Keys are ordered by symbol; the text is ordered by label values.
        let mut sorted: Vec<(&K, f64)> = series.iter().map(|(k, v)| (k, *v)).collect();
        if n > 0 {
            sorted.sort_unstable_by(|a, b| {
                let (a, b) = (a.0.symbols(), b.0.symbols());
                for pos in 0..n {
                    if a[pos] != b[pos] {
                        let o = symbols.get(a[pos]).cmp(symbols.get(b[pos]));
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
                for (opener, &id) in self.label_openers.iter().zip(key.symbols()) {
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
            if out.len() >= CHUNK {
                flush(out);
            }
        }
    }
}
