//! A counter family whose last label takes a fixed set of values, every one of them
//! exported for each declared set of the other labels: at 0 until counted.
//!
//! `balance_exporter_collector_errors_total{collector,account,reason}` is created at 0
//! for all seven reasons of every collector (so that `rate()` sees the first failure):
//! at 10,000 accounts that is 357,000 series, nearly all of them 0. Stored as plain
//! series they cost 20 bytes each (7 MB); here a collector is one roster entry of the
//! other labels (16 bytes) and only the reasons that were counted are stored. The text
//! is the same, byte for byte (a test compares it with a plain family's).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::family::{Family, FamilyOps, Kind, CHUNK};
use super::keys::Key;
use super::series::Series;
use super::symbols::Symbols;

pub(super) struct Prefilled {
    /// Every label; only the series that were counted (or created explicitly).
    counts: Family,
    /// The labels but the fixed one: one entry per declared set (its value unused).
    roster: Family,
    /// The fixed label's values, sorted (the order of the text).
    fixed: Box<[&'static str]>,
    /// Declared position of the fixed label.
    fixed_at: usize,
}

impl Prefilled {
    /// The last of `labels` (declared order) takes the values `fixed`.
    ///
    /// # Panics
    /// When the last label does not sort after the others: a series' key (label
    /// symbols in the order of the label names) is then the roster's key plus one.
    pub(super) fn new(
        name: &str,
        help: &str,
        labels: &[&str],
        fixed: &[&'static str],
        symbols: Arc<Mutex<Symbols>>,
        generation: Arc<AtomicU64>,
    ) -> Prefilled {
        let (last, others) = labels.split_last().expect("a fixed label");
        assert!(
            others.iter().all(|l| l < last),
            "{name}: the fixed label {last} must sort after the others"
        );
        let counts = Family::new(
            Kind::Counter,
            name,
            help,
            labels,
            symbols.clone(),
            generation.clone(),
        );
        let roster = Family::new(Kind::Counter, name, "", others, symbols, generation);
        let mut fixed = fixed.to_vec();
        fixed.sort_unstable();
        Prefilled {
            counts,
            roster,
            fixed: fixed.into(),
            fixed_at: others.len(),
        }
    }

    fn others<'a>(&self, values: &[&'a str]) -> Vec<&'a str> {
        values[..self.fixed_at].to_vec()
    }
}

impl FamilyOps for Prefilled {
    fn name(&self) -> &str {
        self.counts.name()
    }

    fn declared(&self) -> &[usize] {
        self.counts.declared()
    }

    fn update(&self, values: &[&str], f: &mut dyn FnMut(&mut f64)) {
        debug_assert!(
            self.fixed.contains(&values[self.fixed_at]),
            "{}: {} is not one of the fixed values",
            self.name(),
            values[self.fixed_at]
        );
        self.roster.update(&self.others(values), &mut |_| {});
        // A series is stored once it is not 0.
        let mut series = self.counts.lock();
        let mut symbols = self.counts.lock_symbols();
        let found = self
            .counts
            .find(&symbols, values)
            .and_then(|key| series.find(key.as_slice()));
        match found {
            Some(slot) => f(series.value_mut(slot)),
            None => {
                let mut v = 0.0;
                f(&mut v);
                if v != 0.0 {
                    let slot = self
                        .counts
                        .get_or_insert(&mut series, &mut symbols, values, None);
                    *series.value_mut(slot) = v;
                }
            }
        }
        drop((series, symbols));
        self.counts.changed();
    }

    fn get(&self, values: &[&str]) -> f64 {
        self.counts.get(values)
    }

    /// Removes the series and the whole set of its other labels (every fixed value):
    /// removing one reason of a collector is removing the collector.
    fn remove(&self, values: &[&str]) -> bool {
        let mut removed = self.roster.remove(&self.others(values));
        let mut one = values.to_vec();
        for value in self.fixed.iter() {
            one[self.fixed_at] = value;
            removed |= self.counts.remove(&one);
        }
        removed
    }

    fn reset(&self) {
        self.counts.reset();
        self.roster.reset();
    }

    fn replace(
        &self,
        account_at: usize,
        account: &str,
        series: &mut dyn Iterator<Item = (Vec<String>, f64)>,
    ) {
        self.counts.replace(account_at, account, series);
    }

    fn count(&self, account_at: usize, account: &str) -> usize {
        self.roster.count(account_at, account) * self.fixed.len()
    }

    fn encode(&self, out: &mut Vec<u8>, flush: &mut dyn FnMut(&mut Vec<u8>)) {
        // Lock order: `counts`' series, the roster's, then the symbols (every other
        // path takes one family's series and then the symbols, never two families').
        let heads = {
            let mut counts = self.counts.lock();
            counts.merge();
            let mut roster = self.roster.lock();
            roster.merge();
            if roster.len() == 0 {
                return;
            }
            out.extend_from_slice(self.counts.header.as_bytes());
            if self.fixed_at == 0 {
                let symbols = self.counts.lock_symbols();
                let ids = self.fixed_ids(&symbols);
                self.write_fixed((&counts, &symbols, &ids), Key::of(&[]), out);
                return;
            }
            self.roster
                .group_heads(&roster, &self.counts.lock_symbols())
        };
        // As in `Family::encode`: the locks are let go before each `flush`.
        let mut next = 0;
        while next < heads.len() {
            let start = out.len();
            {
                let counts = self.counts.lock();
                let roster = self.roster.lock();
                let symbols = self.counts.lock_symbols();
                let ids = self.fixed_ids(&symbols);
                let mut group = Vec::new();
                while next < heads.len() && out.len() - start < CHUNK {
                    self.roster
                        .sorted_group(&roster, &symbols, &heads[next], &mut group);
                    for &(others, _) in &group {
                        self.write_fixed((&counts, &symbols, &ids), others, out);
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

impl Prefilled {
    /// The symbols of the fixed values (none for a value nothing counted yet).
    fn fixed_ids(&self, symbols: &Symbols) -> Vec<Option<u32>> {
        self.fixed.iter().map(|v| symbols.find(v)).collect()
    }

    /// The series of the roster entry `others`, one per fixed value (whose symbols are
    /// `ids`), 0 where uncounted.
    fn write_fixed(
        &self,
        (counts, symbols, ids): (&Series, &Symbols, &[Option<u32>]),
        others: Key<'_>,
        out: &mut Vec<u8>,
    ) {
        let mut key: Vec<u32> = Vec::with_capacity(self.fixed_at + 1);
        for (value, id) in self.fixed.iter().zip(ids) {
            let counted = id.and_then(|id| {
                key.clear();
                key.extend(others.iter());
                key.push(id);
                counts.find(&key)
            });
            let v = counted.map_or(0.0, |slot| counts.value(slot));
            self.counts
                .write_series(symbols, others, Some(value), v, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::{CounterVec, Registry};

    const REASONS: [&str; 3] = ["timeout", "api_error", "connect"];

    fn text(r: &Registry) -> String {
        let mut out = Vec::new();
        r.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_text_is_a_plain_family_with_every_fixed_value_created() {
        let labels = ["collector", "account", "reason"];
        let (plain_r, pre_r) = (Registry::new(), Registry::new());
        let plain = CounterVec::new(&plain_r, "t_errors_total", "Errors \"x\".", &labels);
        let pre =
            CounterVec::prefilled(&pre_r, "t_errors_total", "Errors \"x\".", &labels, &REASONS);
        assert_eq!(text(&pre_r), "", "nothing declared, nothing written");
        // Accounts whose order by name differs from their order of creation, and one
        // that needs escaping.
        let pairs = [
            ("c_b", "zeta"),
            ("c_a", "zeta"),
            ("c_a", "alpha"),
            ("c_b", "q\"uote"),
        ];
        for (c, a) in pairs {
            for r in REASONS {
                plain.with_label_values(&[c, a, r]);
            }
            pre.with_label_values(&[c, a, REASONS[0]]);
        }
        for (c, a, r, n) in [
            ("c_a", "zeta", "connect", 2),
            ("c_b", "q\"uote", "timeout", 1),
        ] {
            for _ in 0..n {
                plain.with_label_values(&[c, a, r]).inc();
                pre.with_label_values(&[c, a, r]).inc();
            }
        }
        assert_eq!(text(&pre_r), text(&plain_r));
        assert_eq!(
            pre.with_label_values(&["c_a", "zeta", "connect"]).get(),
            2.0
        );
        assert_eq!(
            pre.with_label_values(&["c_a", "zeta", "timeout"]).get(),
            0.0
        );
        // Removing a collector: every reason goes, counted or not.
        for r in REASONS {
            plain.remove_label_values(&["c_a", "zeta", r]);
        }
        assert!(pre.remove_label_values(&["c_a", "zeta", "timeout"]));
        assert_eq!(text(&pre_r), text(&plain_r));
        assert!(!text(&pre_r).contains("zeta\",collector=\"c_a"));
    }

    #[test]
    fn removing_everything_releases_every_label_value() {
        let r = Registry::new();
        let pre = CounterVec::prefilled(
            &r,
            "t_errors_total",
            "E.",
            &["collector", "account", "reason"],
            &REASONS,
        );
        pre.with_label_values(&["c", "a", "timeout"]);
        pre.with_label_values(&["c", "a", "connect"]).inc();
        pre.remove_label_values(&["c", "a", "timeout"]);
        assert_eq!(text(&r), "");
        assert!(
            r.symbols.lock().unwrap().ids.is_empty(),
            "symbols left behind"
        );
    }

    #[test]
    #[should_panic(expected = "must sort after the others")]
    fn the_fixed_label_sorts_last() {
        let r = Registry::new();
        CounterVec::prefilled(
            &r,
            "t_total",
            "T.",
            &["zone", "account", "reason"],
            &REASONS,
        );
    }
}
