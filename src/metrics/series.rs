//! The series of one family: keys of exactly the family's number of label symbols
//! (`arity`) and their `f64` values, kept in sorted arrays instead of a map.
//!
//! A family of three labels pays 12 bytes of key and 8 of value per series (8 of key
//! in `main` when its first label repeats, as `account` does), where a
//! `BTreeMap<[u32; 4], f64>` entry costs about 46 bytes.
//!
//! # Layout
//!
//! ```text
//! runs[0]  main    [k k k k k k k k k k k k k k k k k k k k k k k k k]  nearly everything
//! runs[1]  buffer  [k k k]                                    at most BUFFER; takes inserts
//! runs[2]          [k k k k k k]                              below BUFFER·RATIO
//! runs[r]          …                                          below BUFFER·RATIO^(r-1)
//!
//! each run:  keys   [s0 s1 s2 | s0 s1 s2 | …]   `arity` symbols per series, sorted
//!            values [v        | v        | …]
//!            dead   bit i set: series i was removed (empty while none is)
//!
//! main, packed (when smaller):
//!            keys   firsts [a        b   …]     each first symbol once
//!                   starts [0        2   …]     where its series start
//!                   others [s1 s2 | s1 s2 | s1 s2 | …]   `arity - 1` per series
//! ```
//!
//! Key order puts the label names in order, so `account` is usually first, and one
//! account owns many series of a family: consecutive series share their first symbol
//! for long *stretches*. `main`, which holds nearly every series, then stores that
//! symbol once per stretch ([`Keys`] in `keys.rs` owns both layouts). The other runs
//! are small and take the inserts: they stay plain. A key is handed out as a [`Key`]
//! (first symbol and the others), whichever the layout.
//!
//! Two invariants hold between any two calls (`check_invariants` in the tests asserts
//! them): every run is sorted, and the runs' keys are disjoint, removed series
//! included. So a key is in at most one run, and a lookup is a binary search per run
//! (`main` first, or the run of a nearby series first) that stops at the first hit.
//!
//! # Rules
//!
//! 1. **Insert.** A key found removed is *revived*: its bit is cleared and its value
//!    set to 0, in place; nothing moves. A key found nowhere goes into the buffer at
//!    its sorted place (the buffer is compacted first: an insert shifts positions, and
//!    the bitmap would no longer match them).
//! 2. **Cascade.** Before an insert into a full buffer, for `r` = 1, 2, …: a run that
//!    holds a [`RATIO`]th of `main` or more is merged into `main` and the cascade
//!    stops; a run below its limit (`BUFFER · RATIO^(r-1)`) stops it; otherwise run
//!    `r + 1` absorbs run `r` and the cascade goes on.
//! 3. **Remove.** The series' bit is set; its key stays, which keeps the run sorted
//!    and the runs disjoint (a later insert of that key finds it and revives it).
//! 4. **Merge of two runs** (`absorb`). Both drop their removed series first, then the
//!    smaller is merged into the larger from the back, in place.
//! 5. **Encode.** [`Series::merge`] merges every run into `main`, smallest first, and
//!    drops the removed series: `main` is then the whole family in key order
//!    ([`Series::sorted`]) and no other run holds memory.
//! 6. **Layout of `main`.** Whenever `main` changes (a merge into it, removed series
//!    dropped), it takes the smaller layout: packed when the family has two labels or
//!    more and there are fewer stretches than half the series, plain otherwise (one
//!    label; one series an account). Merges into `main` and the dropping of removed
//!    series work in either layout, in place. Nothing else changes keys: inserts go to
//!    the buffer, removals and revivals are bits.
//!
//! # Costs (n series, `RATIO` = 16, `BUFFER` = 128)
//!
//! - Lookup: a binary search in each of the at most `2 + log16(n / 128)` runs (5 at a
//!   million series); O(log d) from a hint `d` series away. In a packed `main`: a
//!   binary search among the stretches, then one within the stretch.
//! - Insert: a shift within the buffer (at most 128 series), plus, amortised, the
//!   moves of the cascade: a series moves once per run it climbs, and a merge into
//!   `main` moves at most all of `main` once per `n / 16` new series, i.e. at most 16
//!   moves per new one. While a family grows, each series is so moved a few dozen
//!   times, whatever the family's size.
//! - Remove: a lookup and a bit, whatever the family's size; clearing an account costs
//!   its own series. Its room is freed at the next merge of its run.
//! - The series of one first symbol (the account, in a family whose first label is
//!   `account`): one range of each run, found by binary search.
//! - Encode: the merge is O(n) when anything changed (choosing `main`'s layout
//!   included), as is writing the text.
//! - Memory: per series 8 bytes of value and `4 · arity` of key, or in a packed
//!   `main` `4 · (arity - 1)` of key and 8 bytes per stretch. `benches/registry_mem.rs` (1.2
//!   million series of 10,000 accounts, in families of two and three labels) counts
//!   13.6 bytes per series in all, label symbols included (17.2 with every run
//!   plain). Besides: spare room of at most a sixteenth of `main` (it grows by a
//!   sixteenth at least), and the buffer.

use std::ops::Range;

use super::keys::{Key, Keys};

/// Most series of the run that new series go into.
const BUFFER: usize = 128;

/// Each run may hold this many times the series of the one before it.
const RATIO: usize = 16;

/// Series sorted by key: their keys, their values, and which of them were removed.
struct Run {
    keys: Keys,
    values: Vec<f64>,
    /// Bit `i` set: series `i` was removed (its symbols are released; the key stays
    /// as it was, which keeps the run sorted). Empty when none is.
    dead: Vec<u64>,
    dead_count: usize,
}

impl Run {
    fn new(arity: usize) -> Self {
        Run {
            keys: Keys::new(arity),
            values: Vec::new(),
            dead: Vec::new(),
            dead_count: 0,
        }
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn is_dead(&self, i: usize) -> bool {
        self.dead_count > 0 && self.dead[i / 64] & (1 << (i % 64)) != 0
    }

    fn kill(&mut self, i: usize) {
        let words = self.len().div_ceil(64);
        if self.dead.len() < words {
            self.dead.resize(words, 0);
        }
        self.dead[i / 64] |= 1 << (i % 64);
        self.dead_count += 1;
    }

    fn revive(&mut self, i: usize) {
        debug_assert!(self.is_dead(i), "revival of a live series");
        self.dead[i / 64] &= !(1 << (i % 64));
        self.dead_count -= 1;
        self.values[i] = 0.0;
    }

    /// The live series among `range`, with their keys and values.
    fn live(&self, range: Range<usize>) -> impl Iterator<Item = (Key<'_>, f64)> {
        self.keys
            .range(range)
            .filter(|&(i, _)| !self.is_dead(i))
            .map(|(i, key)| (key, self.values[i]))
    }

    /// Insert at `at` (a run without removed series, plain).
    fn insert(&mut self, at: usize, key: &[u32]) {
        debug_assert_eq!(self.dead_count, 0);
        self.keys.insert(at, key);
        self.values.insert(at, 0.0);
    }

    /// Drop the removed series (in either layout).
    fn compact(&mut self) {
        if self.dead_count == 0 {
            return;
        }
        let dead = &self.dead;
        self.keys.retain(|i| dead[i / 64] & (1 << (i % 64)) == 0);
        let mut to = 0;
        for from in 0..self.len() {
            if !self.is_dead(from) {
                self.values[to] = self.values[from];
                to += 1;
            }
        }
        self.values.truncate(to);
        self.dead = Vec::new();
        self.dead_count = 0;
        // Give back the room of many removed series (a family that lost accounts).
        if self.values.capacity() - to > to / 8 + BUFFER {
            self.values.shrink_to(to + to / 16);
            self.keys.shrink_to(to + to / 16);
        }
    }

    /// Move every live series of `from` (keys disjoint from this run's, plain) into
    /// this run and drop the removed ones of both.
    fn absorb(&mut self, from: &mut Run) {
        self.compact();
        from.compact();
        let (m, p) = (self.len(), from.len());
        if p == 0 {
            return;
        }
        if m == 0 {
            std::mem::swap(self, from);
            if from.values.capacity() > BUFFER {
                *from = Run::new(self.keys.arity());
            }
            // The run that takes the inserts next is plain.
            from.keys.clear();
            return;
        }
        if self.values.capacity() < m + p {
            // Grow by a sixteenth at least: a family filled at start-up reallocates
            // O(log n) times and keeps at most a sixteenth of spare room.
            self.values.reserve_exact(p.max(m / 16));
        }
        self.values.resize(m + p, 0.0);
        let values = &mut self.values;
        self.keys.merge(&from.keys, |to, mine, at| {
            values[to] = if mine { values[at] } else { from.values[at] };
        });
        from.keys.clear();
        from.values.clear();
        if from.values.capacity() > BUFFER {
            // A larger run is empty until it has absorbed smaller ones again.
            *from = Run::new(self.keys.arity());
        }
    }
}

/// Where a series is: its run and position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    run: usize,
    at: usize,
}

/// What [`Series::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    Live(Place),
    /// A removed series of that key, which can be revived in place.
    Removed(Place),
    Absent,
}

/// One family's series (see the module documentation).
pub(super) struct Series {
    arity: usize,
    /// `runs[0]` is `main`; `runs[1]` the buffer, which takes the new series; `runs[r]`
    /// is merged on when it reaches `BUFFER · RATIO^(r-1)` series. Keys are disjoint
    /// across runs, removed series included.
    runs: Vec<Run>,
}

impl Series {
    pub(super) fn new(arity: usize) -> Self {
        Series {
            arity,
            runs: vec![Run::new(arity)],
        }
    }

    /// How many series are live.
    pub(super) fn len(&self) -> usize {
        self.runs.iter().map(|r| r.len() - r.dead_count).sum()
    }

    /// Where `key` is, trying the run of `near` first (a series found just before,
    /// whose neighbours are likely next).
    pub(super) fn lookup(&self, key: &[u32], near: Option<Place>) -> Lookup {
        debug_assert_eq!(key.len(), self.arity);
        let near = near.filter(|s| s.run < self.runs.len());
        let found = near
            .and_then(|s| {
                let at = self.runs[s.run].keys.search_near(key, s.at).ok()?;
                Some(Place { run: s.run, at })
            })
            .or_else(|| {
                self.runs.iter().enumerate().find_map(|(run, r)| {
                    if near.is_some_and(|s| s.run == run) {
                        return None;
                    }
                    let at = r.keys.search(key).ok()?;
                    Some(Place { run, at })
                })
            });
        match found {
            Some(place) if self.runs[place.run].is_dead(place.at) => Lookup::Removed(place),
            Some(place) => Lookup::Live(place),
            None => Lookup::Absent,
        }
    }

    /// The live series of `key`.
    pub(super) fn find(&self, key: &[u32]) -> Option<Place> {
        match self.lookup(key, None) {
            Lookup::Live(place) => Some(place),
            _ => None,
        }
    }

    /// Add the series `key` at 0, where [`Series::lookup`] of `key` (with no change to
    /// the series since) found it removed or absent.
    pub(super) fn insert(&mut self, key: &[u32], found: Lookup) -> Place {
        match found {
            Lookup::Live(_) => panic!("insert of a live series"),
            Lookup::Removed(place) => {
                self.runs[place.run].revive(place.at);
                return place;
            }
            Lookup::Absent => {}
        }
        if self.runs.len() == 1 {
            self.runs.push(Run::new(self.arity));
        } else if self.runs[1].len() >= BUFFER {
            self.cascade();
        }
        let buffer = &mut self.runs[1];
        buffer.compact();
        let Err(at) = buffer.keys.search(key) else {
            panic!("insert of a series that is there")
        };
        buffer.insert(at, key);
        Place { run: 1, at }
    }

    /// Merge the full buffer into the next run, that one on if it is full too, and so
    /// on; a run of an [`RATIO`]th of `main` or more goes into `main` instead.
    fn cascade(&mut self) {
        let mut size = BUFFER;
        for r in 1.. {
            let len = self.runs[r].len();
            if len * RATIO >= self.runs[0].len() {
                let (main, rest) = self.runs.split_at_mut(1);
                main[0].absorb(&mut rest[r - 1]);
                main[0].keys.settle();
                return;
            }
            if len < size {
                return;
            }
            if self.runs.len() == r + 1 {
                self.runs.push(Run::new(self.arity));
            }
            let (from, to) = self.runs.split_at_mut(r + 1);
            to[0].absorb(&mut from[r]);
            size *= RATIO;
        }
    }

    /// Remove the live series of `key`; false when there is none. The caller releases
    /// the key's symbols.
    pub(super) fn remove(&mut self, key: &[u32]) -> bool {
        match self.find(key) {
            Some(place) => {
                self.runs[place.run].kill(place.at);
                true
            }
            None => false,
        }
    }

    pub(super) fn key(&self, place: Place) -> Key<'_> {
        self.runs[place.run].keys.key(place.at)
    }

    pub(super) fn value(&self, place: Place) -> f64 {
        self.runs[place.run].values[place.at]
    }

    pub(super) fn value_mut(&mut self, place: Place) -> &mut f64 {
        &mut self.runs[place.run].values[place.at]
    }

    /// Every live series, run by run (not in key order).
    pub(super) fn iter(&self) -> impl Iterator<Item = (Key<'_>, f64)> {
        self.runs.iter().flat_map(|r| r.live(0..r.len()))
    }

    /// The live series whose symbol at key position `at` is `id`. When `at` is 0 they
    /// are one range of each run: the cost is theirs, not the family's.
    pub(super) fn with_symbol(&self, at: usize, id: u32) -> impl Iterator<Item = Key<'_>> {
        self.runs.iter().flat_map(move |r| {
            let range = if at == 0 {
                r.keys.first_is(id)
            } else {
                0..r.len()
            };
            r.live(range)
                .map(|(key, _)| key)
                .filter(move |k| k.get(at) == id)
        })
    }

    /// The live series whose first symbol is `id` (`arity` > 0) with their values, run
    /// by run: one range of each run, so the cost is theirs, not the family's.
    pub(super) fn with_first(&self, id: u32) -> impl Iterator<Item = (Key<'_>, f64)> {
        self.runs
            .iter()
            .flat_map(move |r| r.live(r.keys.first_is(id)))
    }

    /// Merge every run into `main` and drop the removed series: afterwards every series
    /// is in [`Series::sorted`], in key order, and no other run holds memory.
    pub(super) fn merge(&mut self) {
        let changed = self.runs.len() > 1 || self.runs[0].dead_count > 0;
        // Smallest first, each into the next, the largest into `main`.
        while self.runs.len() > 1 {
            let mut from = self.runs.remove(1);
            let to = if self.runs.len() > 1 { 1 } else { 0 };
            self.runs[to].absorb(&mut from);
        }
        self.runs[0].compact();
        if changed {
            self.runs[0].keys.settle();
        }
    }

    /// Assert the invariants the module documentation names: each run sorted and its
    /// bitmap matching its dead count, the runs' keys disjoint (removed series
    /// included), the buffer at most [`BUFFER`] series and run `r` below
    /// `BUFFER · RATIO^(r-1)`; `main` in the smaller of its two layouts, the other runs
    /// plain.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut every_key: Vec<Key> = Vec::new();
        for (r, run) in self.runs.iter().enumerate() {
            assert_eq!(run.keys.len(), run.len(), "run {r}: keys and values");
            run.keys.check(r == 0);
            assert!(r == 0 || !run.keys.is_packed(), "run {r} packed");
            let marked: usize = run.dead.iter().map(|w| w.count_ones() as usize).sum();
            assert_eq!(marked, run.dead_count, "run {r}: dead bits");
            assert!(
                (run.len()..run.dead.len() * 64).all(|i| run.dead[i / 64] & (1 << (i % 64)) == 0)
            );
            match r {
                0 => {}
                1 => assert!(run.len() <= BUFFER, "buffer of {}", run.len()),
                _ => {
                    let limit = BUFFER * RATIO.pow(r as u32 - 1);
                    assert!(run.len() < limit, "run {r}: {} of {limit}", run.len());
                }
            }
            every_key.extend(run.keys.range(0..run.len()).map(|(_, k)| k));
        }
        every_key.sort_unstable();
        assert!(
            every_key.windows(2).all(|w| w[0] != w[1]),
            "a key in two runs"
        );
    }

    /// How many series (removed ones included) each run holds, `main` first.
    #[cfg(test)]
    pub(super) fn run_sizes(&self) -> Vec<usize> {
        self.runs.iter().map(Run::len).collect()
    }

    /// After [`Series::merge`]: every series and its value, in key order.
    pub(super) fn sorted(&self) -> impl Iterator<Item = (Key<'_>, f64)> {
        debug_assert!(self.runs.len() == 1 && self.runs[0].dead_count == 0);
        self.iter()
    }

    /// After [`Series::merge`]: the first symbols of the series, each once, in key
    /// order (`arity` > 0).
    pub(super) fn firsts(&self) -> impl Iterator<Item = u32> + '_ {
        debug_assert!(self.runs.len() == 1 && self.runs[0].dead_count == 0);
        self.runs[0].keys.firsts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A family of arity 2 with `main` holding `keys` (value `100·k0 + k1`).
    fn merged(keys: &[[u32; 2]]) -> Series {
        let mut s = Series::new(2);
        for k in keys {
            let place = add(&mut s, k);
            *s.value_mut(place) = f64::from(k[0] * 100 + k[1]);
        }
        s.merge();
        s
    }

    fn add(s: &mut Series, key: &[u32]) -> Place {
        let found = s.lookup(key, None);
        s.insert(key, found)
    }

    fn all(s: &Series) -> Vec<(Vec<u32>, f64)> {
        let mut v: Vec<(Vec<u32>, f64)> = s.iter().map(|(k, v)| (k.iter().collect(), v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// After a merge: every key's symbols one after the other, and the values.
    fn sorted(s: &Series) -> (Vec<u32>, Vec<f64>) {
        let keys = s.sorted().flat_map(|(k, _)| k.iter()).collect();
        (keys, s.sorted().map(|(_, v)| v).collect())
    }

    #[test]
    fn inserts_go_to_the_buffer_and_merge_in_key_order() {
        let mut s = merged(&[[1, 1], [3, 1], [5, 1]]);
        assert_eq!(s.run_sizes(), [3]);
        assert_eq!(s.find(&[3, 1]), Some(Place { run: 0, at: 1 }));
        for k in [[4, 0], [0, 9], [6, 0], [3, 0]] {
            assert_eq!(add(&mut s, &k).run, 1);
        }
        assert_eq!(s.run_sizes(), [3, 4]);
        assert_eq!(s.len(), 7);
        // Lookups find series in either run.
        assert_eq!(s.find(&[5, 1]), Some(Place { run: 0, at: 2 }));
        assert_eq!(s.find(&[3, 0]), Some(Place { run: 1, at: 1 }));
        assert_eq!(s.find(&[2, 0]), None);
        let place = s.find(&[4, 0]).unwrap();
        *s.value_mut(place) = 40.0;
        assert_eq!(s.key(place), Key::of(&[4, 0]));
        assert_eq!(s.value(place), 40.0);
        s.merge();
        assert_eq!(s.run_sizes(), [7]);
        let (keys, values) = sorted(&s);
        assert_eq!(keys, &[0, 9, 1, 1, 3, 0, 3, 1, 4, 0, 5, 1, 6, 0]);
        assert_eq!(values, &[0.0, 101.0, 0.0, 301.0, 40.0, 501.0, 0.0]);
    }

    #[test]
    fn a_full_buffer_is_merged_on_before_the_next_insert() {
        // `main` large enough that the buffer goes to a middle run, not into `main`.
        let big: Vec<[u32; 1]> = (0..(BUFFER * RATIO) as u32 * 2).map(|i| [i * 4]).collect();
        let mut s = Series::new(1);
        for k in &big {
            add(&mut s, k);
        }
        s.merge();
        let m = big.len();
        for id in (0..BUFFER as u32).rev() {
            assert_eq!(add(&mut s, &[id * 4 + 1]).run, 1);
        }
        assert_eq!(s.run_sizes(), [m, BUFFER]);
        assert_eq!(add(&mut s, &[7]), Place { run: 1, at: 0 });
        assert_eq!(s.run_sizes(), [m, 1, BUFFER]);
        assert_eq!(s.find(&[8]), Some(Place { run: 0, at: 2 }));
        assert_eq!(s.find(&[5]), Some(Place { run: 2, at: 1 }));
        assert_eq!(s.find(&[7]), Some(Place { run: 1, at: 0 }));
        // One more full buffer and the middle run holds a `RATIO`th of `main`: it goes
        // into `main`.
        for id in 0..BUFFER as u32 {
            add(&mut s, &[id * 4 + 2]);
        }
        assert_eq!(s.run_sizes(), [m + 2 * BUFFER, 1, 0]);
        assert_eq!(s.len(), m + 2 * BUFFER + 1);
        s.merge();
        let (keys, _) = sorted(&s);
        let mut want: Vec<u32> = big.iter().map(|k| k[0]).collect();
        want.extend((0..BUFFER as u32).map(|id| id * 4 + 1));
        want.extend((0..BUFFER as u32).map(|id| id * 4 + 2));
        want.push(7);
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn removes_from_either_run_and_revives_a_removed_key() {
        let mut s = merged(&[[1, 1], [2, 1], [3, 1]]);
        add(&mut s, &[2, 0]);
        add(&mut s, &[4, 0]);
        add(&mut s, &[4, 1]);
        assert!(s.remove(&[2, 1]), "from main");
        assert!(s.remove(&[4, 0]), "from the buffer");
        assert!(!s.remove(&[2, 1]));
        assert!(!s.remove(&[4, 0]));
        assert!(!s.remove(&[9, 9]));
        assert_eq!(s.find(&[2, 1]), None);
        assert_eq!(s.len(), 4);
        assert_eq!(
            all(&s),
            [
                (vec![1, 1], 101.0),
                (vec![2, 0], 0.0),
                (vec![3, 1], 301.0),
                (vec![4, 1], 0.0)
            ]
        );
        // A removed place comes back at 0, in place.
        assert_eq!(add(&mut s, &[2, 1]), Place { run: 0, at: 1 });
        assert_eq!(s.find(&[2, 1]), Some(Place { run: 0, at: 1 }));
        assert_eq!(all(&s)[2], (vec![2, 1], 0.0));
        // A new key next to a removed one in the buffer.
        add(&mut s, &[3, 9]);
        assert_eq!(s.find(&[4, 1]), Some(Place { run: 1, at: 2 }));
        assert!(s.remove(&[1, 1]));
        s.merge();
        let (keys, values) = sorted(&s);
        assert_eq!(keys, &[2, 0, 2, 1, 3, 1, 3, 9, 4, 1]);
        assert_eq!(values, &[0.0, 0.0, 301.0, 0.0, 0.0]);
        assert!(s.runs[0].dead.is_empty());
    }

    #[test]
    fn a_search_from_any_hint_finds_what_a_binary_search_finds() {
        let mut keys = Keys::new(2);
        for (i, k) in (0..300).map(|i| i * 3).enumerate() {
            keys.insert(i, &[k / 7, k]);
        }
        let empty = Keys::new(2);
        for k in 0..905 {
            let key = [k / 7, k];
            assert_eq!(empty.search_near(&key, 5), Err(0));
            for near in [0, 1, 2, 57, 150, 298, 299, 300, 1_000] {
                assert_eq!(
                    keys.search_near(&key, near),
                    keys.search(&key),
                    "{key:?} from {near}"
                );
            }
        }
        // The same keys packed (about 2.3 series a first symbol) are found at the same
        // places, from any hint.
        let mut packed = Keys::new(2);
        for (i, k) in (0..300).map(|i| i * 3).enumerate() {
            packed.insert(i, &[k / 7, k]);
        }
        packed.settle();
        assert!(packed.is_packed());
        for k in 0..905 {
            let key = [k / 7, k];
            for near in [0, 150, 1_000] {
                assert_eq!(packed.search_near(&key, near), keys.search(&key), "{key:?}");
            }
            assert_eq!(packed.first_is(k), keys.first_is(k), "first {k}");
        }
    }

    #[test]
    fn series_of_one_first_symbol_in_both_runs() {
        let mut s = merged(&[[1, 5], [2, 1], [2, 3], [2, 9], [3, 0]]);
        add(&mut s, &[2, 4]);
        add(&mut s, &[2, 0]);
        add(&mut s, &[1, 0]);
        assert!(s.remove(&[2, 3]));
        let mut of_2: Vec<Vec<u32>> = s.with_symbol(0, 2).map(|k| k.iter().collect()).collect();
        of_2.sort_unstable();
        assert_eq!(of_2, [[2, 0], [2, 1], [2, 4], [2, 9]]);
        assert_eq!(s.with_symbol(0, 4).count(), 0);
        assert_eq!(s.with_symbol(1, 0).count(), 3);
        assert_eq!(s.runs[0].keys.first_is(2), 1..4);
        assert_eq!(s.runs[0].keys.first_is(0), 0..0);
        assert_eq!(s.runs[0].keys.first_is(9), 5..5);
    }

    #[test]
    fn no_labels_is_at_most_one_series() {
        let mut s = Series::new(0);
        assert_eq!(s.find(&[]), None);
        let place = add(&mut s, &[]);
        *s.value_mut(place) = 2.5;
        assert_eq!(s.find(&[]), Some(place));
        s.merge();
        assert_eq!(s.find(&[]), Some(Place { run: 0, at: 0 }));
        assert!(s.remove(&[]));
        assert_eq!(s.len(), 0);
        assert_eq!(add(&mut s, &[]), Place { run: 0, at: 0 });
        s.merge();
        assert_eq!(sorted(&s), (vec![], vec![0.0]));
    }

    /// The rules of the module documentation, in one place. Random inserts (from
    /// hints, some stale), removals, revivals, per-symbol queries and encodes, on a
    /// family that grows through several runs, against a `BTreeMap`. It proves:
    ///
    /// - the live series are always exactly the map's: the same count, the same series
    ///   per symbol, and after [`Series::merge`] the same keys in the same order with
    ///   the same values (lookups find every series and merges lose, duplicate or
    ///   reorder none);
    /// - a series inserted starts at 0, new (rule 1) or revived (rules 1 and 3);
    /// - the invariants hold after every step ([`Series::check_invariants`]: runs
    ///   sorted, disjoint, within their limits; rules 1 to 4);
    /// - after an encode's merge there is one run and no removed series (rule 5).
    ///
    /// Not the costs: `benches/registry_mem.rs` measures those.
    #[test]
    fn the_rules_hold_and_the_live_series_are_a_sorted_map() {
        use std::collections::BTreeMap;
        let mut s = Series::new(3);
        let mut model: BTreeMap<[u32; 3], f64> = BTreeMap::new();
        let mut seed = 0x1234_5678_9abc_def1_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as u32
        };
        let (mut most_runs, mut revived, mut merges) = (0, 0, 0);
        let mut near = None;
        for step in 0..30_000 {
            let key = [next(150), next(8), next(4)];
            match next(10) {
                0..=6 => {
                    // A hint from an earlier lookup, possibly stale, is only where to start.
                    let place = match s.lookup(&key, near) {
                        Lookup::Live(place) => place,
                        found => {
                            revived += usize::from(matches!(found, Lookup::Removed(_)));
                            let place = s.insert(&key, found);
                            assert_eq!(s.value(place), 0.0, "{key:?} starts at 0");
                            place
                        }
                    };
                    near = Some(place);
                    *s.value_mut(place) = f64::from(step);
                    model.insert(key, f64::from(step));
                }
                7 | 8 => assert_eq!(s.remove(&key), model.remove(&key).is_some()),
                _ => {
                    let got = s.with_symbol(0, key[0]).count();
                    assert_eq!(got, model.keys().filter(|k| k[0] == key[0]).count());
                    if next(20) == 0 {
                        let got = s.with_symbol(2, key[2]).count();
                        assert_eq!(got, model.keys().filter(|k| k[2] == key[2]).count());
                    }
                    if next(300) == 0 {
                        s.merge();
                        merges += 1;
                        assert_eq!(s.run_sizes(), [model.len()]);
                        let (keys, values) = sorted(&s);
                        assert!(keys.iter().eq(model.keys().flatten()));
                        assert!(values.iter().eq(model.values()));
                    }
                }
            }
            most_runs = most_runs.max(s.runs.len());
            assert_eq!(s.len(), model.len());
            if step % 32 == 0 {
                s.check_invariants();
            }
        }
        // The scenarios happened: cascades through a middle run, revivals, encodes.
        assert!(most_runs >= 3, "{most_runs} runs at most");
        assert!(revived >= 100, "{revived} revivals");
        assert!(merges >= 5, "{merges} merges");
        s.check_invariants();
        assert_eq!(all(&s).len(), model.len());
        s.merge();
        let (keys, values) = sorted(&s);
        let want: Vec<u32> = model.keys().flatten().copied().collect();
        assert_eq!(keys, want);
        assert_eq!(values, model.values().copied().collect::<Vec<_>>());
    }

    /// `main` takes the smaller layout whenever it changes: packed while accounts own
    /// many series each, plain for one series an account or a single label.
    #[test]
    fn main_is_packed_when_first_symbols_repeat() {
        let one_each: Vec<[u32; 2]> = (0..100).map(|a| [a, 7]).collect();
        let mut s = merged(&one_each);
        assert!(!s.runs[0].keys.is_packed(), "one series an account");
        // Account 50 gets 100 more series: 200 series, 100 stretches, still plain.
        for app in 100..200 {
            add(&mut s, &[50, app]);
        }
        s.merge();
        s.check_invariants();
        assert!(
            !s.runs[0].keys.is_packed(),
            "as many stretches as half the series"
        );
        add(&mut s, &[50, 200]);
        s.merge();
        s.check_invariants();
        assert!(
            s.runs[0].keys.is_packed(),
            "fewer stretches than half the series"
        );
        assert_eq!(s.with_first(50).count(), 102);
        assert_eq!(s.find(&[50, 150]), Some(Place { run: 0, at: 101 }));
        assert_eq!(s.find(&[51, 7]), Some(Place { run: 0, at: 152 }));
        assert_eq!(s.key(Place { run: 0, at: 152 }), Key::of(&[51, 7]));
        // A removal in a packed `main` is a bit, and the series comes back in place.
        assert!(s.remove(&[50, 7]));
        assert_eq!(add(&mut s, &[50, 7]), Place { run: 0, at: 50 });
        // Removing account 50 leaves 99 series in 99 stretches: plain again.
        let gone: Vec<Vec<u32>> = s.with_symbol(0, 50).map(|k| k.iter().collect()).collect();
        assert_eq!(gone.len(), 102);
        for k in &gone {
            assert!(s.remove(k));
        }
        s.merge();
        s.check_invariants();
        assert!(!s.runs[0].keys.is_packed());
        assert_eq!(s.len(), 99);
        // One label: never packed (every key its own first symbol).
        let mut one = Series::new(1);
        for k in 0..500 {
            add(&mut one, &[k]);
        }
        one.merge();
        one.check_invariants();
        assert!(!one.runs[0].keys.is_packed());
    }

    /// The encoder's view of a packed `main`: the first symbols once each, in key order,
    /// and each one's series with their values.
    #[test]
    fn a_packed_main_lists_its_first_symbols_and_their_series() {
        let keys: Vec<[u32; 2]> = [(3, 4), (1, 3), (9, 1), (4, 2)]
            .iter()
            .flat_map(|&(a, n)| (0..n).map(move |app| [a, app]))
            .collect();
        let mut s = merged(&keys);
        assert!(s.runs[0].keys.is_packed());
        assert_eq!(s.firsts().collect::<Vec<_>>(), [1, 3, 4, 9]);
        let of_4: Vec<(Vec<u32>, f64)> = s
            .with_first(4)
            .map(|(k, v)| (k.iter().collect(), v))
            .collect();
        assert_eq!(of_4, [(vec![4, 0], 400.0), (vec![4, 1], 401.0)]);
        // The first series of a stretch removed, and a new first symbol between two.
        assert!(s.remove(&[3, 0]));
        add(&mut s, &[2, 0]);
        add(&mut s, &[2, 1]);
        assert_eq!(s.with_symbol(0, 3).count(), 3);
        s.merge();
        s.check_invariants();
        assert!(s.runs[0].keys.is_packed(), "11 series, 5 stretches");
        assert_eq!(s.firsts().collect::<Vec<_>>(), [1, 2, 3, 4, 9]);
        let (flat, _) = sorted(&s);
        assert_eq!(
            flat,
            [1, 0, 1, 1, 1, 2, 2, 0, 2, 1, 3, 1, 3, 2, 3, 3, 4, 0, 4, 1, 9, 0]
        );
    }

    mod model {
        use super::super::*;
        use super::sorted;
        use proptest::prelude::*;
        use proptest::sample::Index;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Op {
            /// Insert or update the series of an account and other symbols.
            Set(u32, [u32; 3]),
            /// Give an account `n` series (many series of one first symbol).
            Fill(u32, u32),
            /// Remove an existing series, or (with no series) a missing one.
            Remove(Index),
            /// Remove every series of an account, as `Family::replace` does.
            Clear(u32),
            Merge,
            /// The series of an account, with their values.
            Query(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            let rest = (0..64u32, 0..4u32, 0..3u32).prop_map(|(a, b, c)| [a, b, c]);
            prop_oneof![
                6 => (0..40u32, rest).prop_map(|(a, r)| Op::Set(a, r)),
                2 => (0..40u32, 1..60u32).prop_map(|(a, n)| Op::Fill(a, n)),
                3 => any::<Index>().prop_map(Op::Remove),
                1 => (0..40u32).prop_map(Op::Clear),
                1 => Just(Op::Merge),
                2 => (0..40u32).prop_map(Op::Query),
            ]
        }

        /// The key of account `a`: its symbol first, then `arity - 1` of `rest` (one
        /// label: the account's symbol and `rest[0]` in one symbol).
        fn key(arity: usize, a: u32, rest: [u32; 3]) -> Vec<u32> {
            match arity {
                1 => vec![a * 64 + rest[0]],
                _ => std::iter::once(a).chain(rest).take(arity).collect(),
            }
        }

        fn set(s: &mut Series, model: &mut BTreeMap<Vec<u32>, f64>, key: Vec<u32>, v: f64) {
            let place = match s.lookup(&key, None) {
                Lookup::Live(place) => place,
                found => {
                    let place = s.insert(&key, found);
                    assert_eq!(s.value(place), 0.0);
                    place
                }
            };
            assert_eq!(s.key(place), Key::of(&key));
            *s.value_mut(place) = v;
            model.insert(key, v);
        }

        fn of_first(model: &BTreeMap<Vec<u32>, f64>, first: u32) -> Vec<(Vec<u32>, f64)> {
            let of = model.iter().filter(|(k, _)| k[0] == first);
            of.map(|(k, &v)| (k.clone(), v)).collect()
        }

        fn run(arity: usize, ops: &[Op]) {
            let mut s = Series::new(arity);
            let mut model: BTreeMap<Vec<u32>, f64> = BTreeMap::new();
            let first = |a: u32| key(arity, a, [0; 3])[0];
            for (step, op) in ops.iter().enumerate() {
                let v = step as f64 + 0.5;
                match *op {
                    Op::Set(a, rest) => set(&mut s, &mut model, key(arity, a, rest), v),
                    Op::Fill(a, n) => {
                        for j in 0..n {
                            let k = key(arity, a, [j, j % 4, j % 3]);
                            set(&mut s, &mut model, k, v);
                        }
                    }
                    Op::Remove(i) if model.is_empty() => {
                        assert!(!s.remove(&key(arity, i.index(40) as u32, [0; 3])));
                    }
                    Op::Remove(i) => {
                        let k = model.keys().nth(i.index(model.len())).unwrap().clone();
                        assert!(s.remove(&k));
                        assert!(!s.remove(&k));
                        model.remove(&k);
                    }
                    Op::Clear(a) => {
                        let mut gone: Vec<Vec<u32>> = s
                            .with_symbol(0, first(a))
                            .map(|k| k.iter().collect())
                            .collect();
                        gone.sort_unstable();
                        let want: Vec<Vec<u32>> = of_first(&model, first(a))
                            .into_iter()
                            .map(|(k, _)| k)
                            .collect();
                        assert_eq!(gone, want);
                        for k in &gone {
                            assert!(s.remove(k));
                            model.remove(k);
                        }
                    }
                    Op::Merge => {
                        s.merge();
                        assert_eq!(s.run_sizes(), [model.len()]);
                        let (keys, values) = sorted(&s);
                        assert!(keys.iter().eq(model.keys().flatten()));
                        assert!(values.iter().eq(model.values()));
                        let mut firsts: Vec<u32> = model.keys().map(|k| k[0]).collect();
                        firsts.dedup();
                        assert_eq!(s.firsts().collect::<Vec<_>>(), firsts);
                    }
                    Op::Query(a) => {
                        let mut got: Vec<(Vec<u32>, f64)> = s
                            .with_first(first(a))
                            .map(|(k, v)| (k.iter().collect(), v))
                            .collect();
                        got.sort_by(|x, y| x.0.cmp(&y.0));
                        assert_eq!(got, of_first(&model, first(a)));
                    }
                }
                assert_eq!(s.len(), model.len());
                s.check_invariants();
            }
            s.merge();
            s.check_invariants();
            let (keys, values) = sorted(&s);
            assert!(keys.iter().eq(model.keys().flatten()));
            assert!(values.iter().eq(model.values()));
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            /// Random inserts, fills of one account, removals (of single series and of
            /// whole accounts), queries and merges, on families of one, two and four
            /// labels, against a `BTreeMap`: the live series are the map's, the
            /// invariants (layout of `main` included) hold after every step.
            #[test]
            fn the_series_are_a_sorted_map(
                arity in prop::sample::select(vec![1usize, 2, 4]),
                ops in prop::collection::vec(op(), 1..150),
            ) {
                run(arity, &ops);
            }
        }
    }
}
