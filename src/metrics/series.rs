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
mod tests;
