//! One metric family: its `# HELP`/`# TYPE` lines and its series, each series a key of
//! label symbols and an `f64`, written straight to the text format.
//!
//! The series are stored by [`Series`]: keys of exactly the family's number of symbols
//! in sorted arrays (a family of three labels costs 16 to 20 bytes per series), handed
//! out as [`Key`]s. Any number of labels works; a lookup builds its key on the stack
//! for up to [`INLINE_LABELS`].

use std::cmp::Ordering as CmpOrdering;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::keys::Key;
use super::series::{Lookup, Place, Series};
use super::symbols::Symbols;
use super::text::{escape_into, escape_label_value, valid_name};

/// Most labels whose key a lookup builds without allocating (wider families allocate
/// one small vector per lookup; the stored series never do).
pub const INLINE_LABELS: usize = 8;

/// Encoded text is handed to the sink in pieces of about this size.
pub(super) const CHUNK: usize = 64 * 1024;

/// A series key being looked up: the label symbols in key order.
pub(super) struct KeyBuf {
    len: usize,
    inline: [u32; INLINE_LABELS],
    wide: Vec<u32>,
}

impl KeyBuf {
    fn new(symbols: impl Iterator<Item = u32>, arity: usize) -> Self {
        let mut key = KeyBuf {
            len: 0,
            inline: [0; INLINE_LABELS],
            wide: Vec::new(),
        };
        if arity <= INLINE_LABELS {
            for (slot, id) in key.inline.iter_mut().zip(symbols) {
                *slot = id;
                key.len += 1;
            }
        } else {
            key.wide.extend(symbols);
            key.len = key.wide.len();
        }
        key
    }

    pub(super) fn as_slice(&self) -> &[u32] {
        if self.wide.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.wide
        }
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

pub(super) struct Family {
    name: Box<str>,
    /// `# HELP …\n# TYPE …\n`, escaped once.
    pub(super) header: Box<str>,
    /// `{name="` for the first label (sorted by name), `,name="` for the others.
    label_openers: Box<[Box<str>]>,
    /// For each label in key order (sorted by name), its position as declared.
    declared: Box<[usize]>,
    /// Lock order: a family's `series` before `symbols` (a prefilled family takes its
    /// two families' series, counts then roster, before `symbols`: see `prefilled.rs`).
    series: Mutex<Series>,
    symbols: Arc<Mutex<Symbols>>,
    generation: Arc<AtomicU64>,
}

impl Family {
    pub(super) fn new(
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
            series: Mutex::new(Series::new(labels.len())),
            symbols,
            generation,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_symbols(&self) -> MutexGuard<'_, Symbols> {
        self.symbols.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn arity(&self) -> usize {
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
    pub(super) fn find(&self, symbols: &Symbols, values: &[&str]) -> Option<KeyBuf> {
        self.check_arity(values);
        let mut missing = false;
        let key = KeyBuf::new(
            self.declared.iter().map_while(|&i| {
                let id = symbols.find(values[i]);
                missing |= id.is_none();
                id
            }),
            self.arity(),
        );
        (!missing).then_some(key)
    }

    /// Insert the series of `values` at 0 unless present; return where it is. `near`:
    /// a series found just before, whose neighbours are tried first.
    pub(super) fn get_or_insert(
        &self,
        series: &mut Series,
        symbols: &mut Symbols,
        values: &[&str],
        near: Option<Place>,
    ) -> Place {
        if let Some(key) = self.find(symbols, values) {
            let found = series.lookup(key.as_slice(), near);
            if let Lookup::Live(place) = found {
                return place;
            }
            // The same symbols, one more reference each.
            for &i in self.declared.iter() {
                symbols.acquire(values[i]);
            }
            return series.insert(key.as_slice(), found);
        }
        // A new symbol may have the number of a released one, which a removed series
        // still holds: look again.
        let key = KeyBuf::new(
            self.declared.iter().map(|&i| symbols.acquire(values[i])),
            self.arity(),
        );
        let found = series.lookup(key.as_slice(), None);
        series.insert(key.as_slice(), found)
    }

    fn remove_key(&self, series: &mut Series, symbols: &mut Symbols, key: &[u32]) -> bool {
        if !series.remove(key) {
            return false;
        }
        for &id in key {
            symbols.release(id);
        }
        true
    }

    /// Write one series' line: the labels of `key`, then `last` (the value of the last
    /// label in key order) when the key leaves it out.
    pub(super) fn write_series(
        &self,
        symbols: &Symbols,
        key: Key<'_>,
        last: Option<&str>,
        value: f64,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(self.name.as_bytes());
        let values = key.iter().map(|id| symbols.get(id)).chain(last);
        let mut any = false;
        for (opener, v) in self.label_openers.iter().zip(values) {
            out.extend_from_slice(opener.as_bytes());
            escape_label_value(v, out);
            out.push(b'"');
            any = true;
        }
        if any {
            out.push(b'}');
        }
        out.push(b' ');
        // `Display` of f64, as `prometheus::TextEncoder` writes values.
        let _ = write!(out, "{value}");
        out.push(b'\n');
    }
}

impl FamilyOps for Family {
    fn name(&self) -> &str {
        &self.name
    }

    fn declared(&self) -> &[usize] {
        &self.declared
    }

    fn update(&self, values: &[&str], f: &mut dyn FnMut(&mut f64)) {
        let mut series = self.lock();
        let place = self.get_or_insert(&mut series, &mut self.lock_symbols(), values, None);
        f(series.value_mut(place));
        drop(series);
        self.changed();
    }

    fn get(&self, values: &[&str]) -> f64 {
        let series = self.lock();
        let key = self.find(&self.lock_symbols(), values);
        key.and_then(|k| series.find(k.as_slice()))
            .map_or(0.0, |place| series.value(place))
    }

    fn remove(&self, values: &[&str]) -> bool {
        let mut series = self.lock();
        let mut symbols = self.lock_symbols();
        let removed = self
            .find(&symbols, values)
            .is_some_and(|key| self.remove_key(&mut series, &mut symbols, key.as_slice()));
        drop((series, symbols));
        if removed {
            self.changed();
        }
        removed
    }

    fn reset(&self) {
        let mut series = self.lock();
        let mut symbols = self.lock_symbols();
        let gone = std::mem::replace(&mut *series, Series::new(self.arity()));
        for (key, _) in gone.iter() {
            for id in key.iter() {
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
        let mut stored = self.lock();
        let mut symbols = self.lock_symbols();
        let n = self.arity();
        // The keys written now, `n` symbols each.
        let mut kept: Vec<u32> = Vec::new();
        let mut near = None;
        for (extra, value) in series {
            let mut labels: Vec<&str> = Vec::with_capacity(extra.len() + 1);
            labels.push(account);
            labels.extend(extra.iter().map(String::as_str));
            let place = self.get_or_insert(&mut stored, &mut symbols, &labels, near);
            *stored.value_mut(place) = value;
            kept.extend(stored.key(place).iter());
            near = Some(place);
        }
        if let Some(account) = symbols.find(account) {
            let kept_key = |i: u32| &kept[i as usize * n..(i as usize + 1) * n];
            let mut sorted: Vec<u32> = (0..(kept.len() / n) as u32).collect();
            sorted.sort_unstable_by(|&a, &b| kept_key(a).cmp(kept_key(b)));
            // With the account first in the key, its series are one range of each run
            // of `stored`: this costs the account's own series, not the family's.
            let gone: Vec<u32> = stored
                .with_symbol(account_at, account)
                .filter(|k| {
                    let kept = |&i: &u32| Key::of(kept_key(i)).cmp(k);
                    sorted.binary_search_by(kept).is_err()
                })
                .flat_map(|k| k.iter())
                .collect();
            for key in gone.chunks_exact(n) {
                self.remove_key(&mut stored, &mut symbols, key);
            }
        }
        drop((stored, symbols));
        self.changed();
    }

    fn count(&self, account_at: usize, account: &str) -> usize {
        let series = self.lock();
        let symbols = self.lock_symbols();
        let Some(id) = symbols.find(account) else {
            return 0;
        };
        // The account's own range when it is first in the key (see `replace`).
        series.with_symbol(account_at, id).count()
    }

    fn encode(&self, out: &mut Vec<u8>, flush: &mut dyn FnMut(&mut Vec<u8>)) {
        let heads = {
            let mut series = self.lock();
            series.merge();
            if series.len() == 0 {
                return;
            }
            let symbols = self.lock_symbols();
            out.extend_from_slice(self.header.as_bytes());
            if self.arity() == 0 {
                let (key, value) = series.sorted().next().expect("one series");
                self.write_series(&symbols, key, None, value, out);
                return;
            }
            self.group_heads(&series, &symbols)
        };
        // The locks are held for a piece of text at a time and let go before `flush`
        // (which compresses): a write waits for one piece, never for the family.
        let mut next = 0;
        while next < heads.len() {
            let start = out.len();
            {
                let series = self.lock();
                let symbols = self.lock_symbols();
                let mut group = Vec::new();
                while next < heads.len() && out.len() - start < CHUNK {
                    self.sorted_group(&series, &symbols, &heads[next], &mut group);
                    for &(key, value) in &group {
                        self.write_series(&symbols, key, None, value, out);
                    }
                    group.clear();
                    next += 1;
                }
            }
            if out.len() >= CHUNK {
                flush(out);
            }
        }
    }
}

impl Family {
    /// The text is ordered by label values, first label (in key order) first. A
    /// *group* is the series of one value of the first label; this lists the groups'
    /// values in text order (after [`Series::merge`]; the family has labels). Values,
    /// not symbols: the encoder lets go of the locks between groups, and a symbol may be
    /// released and given to another value meanwhile.
    pub(super) fn group_heads(&self, series: &Series, symbols: &Symbols) -> Vec<Arc<str>> {
        debug_assert!(self.arity() > 0);
        let mut heads: Vec<Arc<str>> = series.firsts().map(|id| symbols.shared(id)).collect();
        heads.sort_unstable();
        heads
    }

    /// Fill `group` (empty) with the live series of the group whose first label is
    /// `head`, in text order: by the other labels' values.
    pub(super) fn sorted_group<'a>(
        &self,
        series: &'a Series,
        symbols: &Symbols,
        head: &str,
        group: &mut Vec<(Key<'a>, f64)>,
    ) {
        debug_assert!(group.is_empty());
        let Some(id) = symbols.find(head) else {
            return;
        };
        group.extend(series.with_first(id));
        let n = self.arity();
        if n > 1 && group.len() > 1 {
            group.sort_unstable_by(|(a, _), (b, _)| {
                for pos in 1..n {
                    let (a, b) = (a.get(pos), b.get(pos));
                    if a != b {
                        let o = symbols.get(a).cmp(symbols.get(b));
                        if o != CmpOrdering::Equal {
                            return o;
                        }
                    }
                }
                CmpOrdering::Equal
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{GaugeVec, Registry};
    use prometheus::{Encoder, TextEncoder};

    fn family(labels: &[&str]) -> (Family, Arc<Mutex<Symbols>>) {
        let symbols = Arc::new(Mutex::new(Symbols::default()));
        let family = Family::new(
            Kind::Gauge,
            "t_split",
            "Split.",
            labels,
            symbols.clone(),
            Arc::new(AtomicU64::new(0)),
        );
        (family, symbols)
    }

    fn text(family: &Family) -> String {
        let mut out = Vec::new();
        family.encode(&mut out, &mut |_| {});
        String::from_utf8(out).unwrap()
    }

    fn packages(range: std::ops::Range<usize>) -> Vec<(Vec<String>, f64)> {
        range.map(|p| (vec![format!("p{p}")], p as f64)).collect()
    }

    fn known(symbols: &Mutex<Symbols>) -> Vec<String> {
        let mut v: Vec<String> = symbols
            .lock()
            .unwrap()
            .ids
            .keys()
            .map(|k| k.to_string())
            .collect();
        v.sort();
        v
    }

    /// An account whose series are partly in `main` (written before an encode) and
    /// partly in the buffer (written after): replace keeps, adds and removes in both.
    #[test]
    fn replace_of_an_account_split_across_runs() {
        let (fam, symbols) = family(&["account", "package"]);
        fam.replace(0, "a", &mut packages(0..10).into_iter());
        fam.replace(0, "b", &mut packages(0..2).into_iter());
        text(&fam);
        assert_eq!(fam.lock().run_sizes(), [12]);
        // p0..p4 go (removed in `main`), p10..p14 come (into the buffer).
        fam.replace(0, "a", &mut packages(5..15).into_iter());
        assert_eq!(fam.lock().run_sizes(), [12, 5]);
        assert_eq!(fam.count(0, "a"), 10);
        // Kept and removed series of `a` in both runs.
        let mut last = vec![(vec!["p7".to_string()], 70.0)];
        last.push((vec!["p12".to_string()], 120.0));
        fam.replace(0, "a", &mut last.into_iter());
        assert_eq!(fam.count(0, "a"), 2);
        assert_eq!(fam.count(0, "b"), 2);
        assert_eq!(fam.get(&["a", "p7"]), 70.0);
        assert_eq!(fam.get(&["a", "p12"]), 120.0);
        assert_eq!(fam.get(&["a", "p13"]), 0.0);
        assert_eq!(known(&symbols), ["a", "b", "p0", "p1", "p12", "p7"]);
        assert_eq!(
            text(&fam),
            "# HELP t_split Split.\n# TYPE t_split gauge\n\
             t_split{account=\"a\",package=\"p12\"} 120\n\
             t_split{account=\"a\",package=\"p7\"} 70\n\
             t_split{account=\"b\",package=\"p0\"} 0\n\
             t_split{account=\"b\",package=\"p1\"} 1\n"
        );
        assert_eq!(fam.lock().run_sizes(), [4]);
        fam.replace(0, "a", &mut std::iter::empty());
        fam.replace(0, "b", &mut std::iter::empty());
        assert!(known(&symbols).is_empty());
        assert_eq!(text(&fam), "");
        assert_eq!(fam.lock().run_sizes(), [0]);
    }

    /// A removed series whose symbols were released and given to new label values:
    /// the new series with the same key revives the removed one in place.
    #[test]
    fn a_new_series_may_reuse_a_removed_key() {
        let (fam, symbols) = family(&["account", "package"]);
        fam.replace(0, "a", &mut packages(0..3).into_iter());
        text(&fam);
        fam.replace(0, "a", &mut packages(0..2).into_iter());
        // `p2` is forgotten; `q` takes its number.
        assert_eq!(known(&symbols), ["a", "p0", "p1"]);
        fam.update(&["a", "q"], &mut |v| *v = 5.0);
        assert_eq!(fam.lock().run_sizes(), [3]);
        assert_eq!(fam.count(0, "a"), 3);
        assert!(text(&fam).ends_with("t_split{account=\"a\",package=\"q\"} 5\n"));
    }

    /// Thousands of series of three families written in random order (the symbols'
    /// numbers unrelated to the values' order), some removed, across several merges:
    /// the text is what `prometheus::TextEncoder` writes for the same series.
    #[test]
    fn encode_order_matches_the_prometheus_encoder_after_random_inserts() {
        let ours = Registry::new();
        let theirs = prometheus::Registry::new();
        let specs: [(&str, &[&str]); 3] = [
            ("t_errors_total", &["collector", "account", "reason"]),
            ("t_one", &["account"]),
            ("t_wide", &["f", "e", "d", "c", "b", "a"]),
        ];
        let mut pairs = Vec::new();
        for (name, labels) in specs {
            let g = GaugeVec::new(&ours, name, "H.", labels);
            let p = prometheus::GaugeVec::new(prometheus::Opts::new(name, "H."), labels).unwrap();
            theirs.register(Box::new(p.clone())).unwrap();
            pairs.push((g, p));
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let words = [
            "", "a", "b", "ab", "a-b", "B", "z", "é", "a\"q", "10", "9", "x\\y",
        ];
        let mut written: Vec<(usize, Vec<String>)> = Vec::new();
        for round in 0..3 {
            for step in 0..3_000 {
                let f = next(3);
                let n = specs[f].1.len();
                let values: Vec<String> = (0..n)
                    .map(|_| format!("{}{}", words[next(words.len())], next(40)))
                    .collect();
                let v: Vec<&str> = values.iter().map(String::as_str).collect();
                let x = (step * 7 + round) as f64 / 4.0;
                pairs[f].0.with_label_values(&v).set(x);
                pairs[f].1.with_label_values(&v).set(x);
                written.push((f, values));
                if next(5) == 0 {
                    let (f, values) = &written[next(written.len())];
                    let v: Vec<&str> = values.iter().map(String::as_str).collect();
                    let removed = pairs[*f].0.remove_label_values(&v);
                    assert_eq!(removed, pairs[*f].1.remove_label_values(&v).is_ok());
                }
            }
            let mut expected = Vec::new();
            TextEncoder::new()
                .encode(&theirs.gather(), &mut expected)
                .unwrap();
            let mut got = Vec::new();
            ours.encode(&mut got);
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
