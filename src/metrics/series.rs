//! The series of one family: keys of exactly the family's number of label symbols
//! (`arity`) and their `f64` values, kept in sorted arrays instead of a map.
//!
//! A family of three labels pays 12 bytes of key and 8 of value per series, where a
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
//! ```
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
//!
//! # Costs (n series, `RATIO` = 16, `BUFFER` = 128)
//!
//! - Lookup: a binary search in each of the at most `2 + log16(n / 128)` runs (5 at a
//!   million series); O(log d) from a hint `d` series away.
//! - Insert: a shift within the buffer (at most 128 series), plus, amortised, the
//!   moves of the cascade: a series moves once per run it climbs, and a merge into
//!   `main` moves at most all of `main` once per `n / 16` new series, i.e. at most 16
//!   moves per new one. While a family grows, each series is so moved a few dozen
//!   times, whatever the family's size.
//! - Remove: a lookup and a bit, whatever the family's size; clearing an account costs
//!   its own series. Its room is freed at the next merge of its run.
//! - The series of one first symbol (the account, in a family whose first label is
//!   `account`): one range of each run, found by binary search.
//! - Encode: the merge is O(n) when anything changed, as is writing the text.
//! - Memory: spare room of at most a sixteenth of `main` (it grows by a sixteenth at
//!   least), plus the buffer.

use std::cmp::Ordering;
use std::ops::Range;

/// Most series of the run that new series go into.
const BUFFER: usize = 128;

/// Each run may hold this many times the series of the one before it.
const RATIO: usize = 16;

/// Series sorted by key: `arity` symbols per series in `keys`, their values in
/// `values`, and which of them were removed.
#[derive(Default)]
struct Run {
    keys: Vec<u32>,
    values: Vec<f64>,
    /// Bit `i` set: series `i` was removed (its symbols are released; the key stays
    /// as it was, which keeps the run sorted). Empty when none is.
    dead: Vec<u64>,
    dead_count: usize,
}

impl Run {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn key(&self, arity: usize, i: usize) -> &[u32] {
        &self.keys[i * arity..(i + 1) * arity]
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

    /// The position of `key`, or where it would go.
    fn search(&self, arity: usize, key: &[u32]) -> Result<usize, usize> {
        self.search_in(arity, key, 0, self.len())
    }

    /// [`Run::search`] between `lo` and `hi`, which bracket `key`.
    fn search_in(&self, arity: usize, key: &[u32], lo: usize, hi: usize) -> Result<usize, usize> {
        if lo >= hi {
            return Err(lo);
        }
        let (mut base, mut size) = (lo, hi - lo);
        while size > 1 {
            let half = size / 2;
            let mid = base + half;
            if self.key(arity, mid) <= key {
                base = mid;
            }
            size -= half;
        }
        match self.key(arity, base).cmp(key) {
            Ordering::Equal => Ok(base),
            Ordering::Less => Err(base + 1),
            Ordering::Greater => Err(base),
        }
    }

    /// [`Run::search`] starting at `near` and widening the step: O(log d) when `key`
    /// is `d` series away (the next series of one account, say).
    fn search_near(&self, arity: usize, key: &[u32], near: usize) -> Result<usize, usize> {
        let n = self.len();
        if n == 0 {
            return Err(0);
        }
        let near = near.min(n - 1);
        let mut step = 1;
        match self.key(arity, near).cmp(key) {
            Ordering::Equal => Ok(near),
            Ordering::Less => {
                let mut lo = near + 1;
                loop {
                    let probe = near + step;
                    if probe >= n {
                        return self.search_in(arity, key, lo, n);
                    }
                    match self.key(arity, probe).cmp(key) {
                        Ordering::Less => lo = probe + 1,
                        Ordering::Equal => return Ok(probe),
                        Ordering::Greater => return self.search_in(arity, key, lo, probe),
                    }
                    step *= 2;
                }
            }
            Ordering::Greater => {
                let mut hi = near;
                loop {
                    if step > near {
                        return self.search_in(arity, key, 0, hi);
                    }
                    let probe = near - step;
                    match self.key(arity, probe).cmp(key) {
                        Ordering::Greater => hi = probe,
                        Ordering::Equal => return Ok(probe),
                        Ordering::Less => return self.search_in(arity, key, probe + 1, hi),
                    }
                    step *= 2;
                }
            }
        }
    }

    /// The series whose first symbol is `id` (`arity` > 0).
    fn first_is(&self, arity: usize, id: u32) -> Range<usize> {
        let first = |i: usize| self.keys[i * arity];
        let bound = |lo: usize, below: &dyn Fn(u32) -> bool| {
            let (mut lo, mut hi) = (lo, self.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if below(first(mid)) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let start = bound(0, &|f| f < id);
        start..bound(start, &|f| f <= id)
    }

    /// Insert at `at` (a run without removed series).
    fn insert(&mut self, arity: usize, at: usize, key: &[u32]) {
        debug_assert_eq!(self.dead_count, 0);
        self.keys
            .splice(at * arity..at * arity, key.iter().copied());
        self.values.insert(at, 0.0);
    }

    fn copy(&mut self, arity: usize, from: usize, to: usize) {
        for s in 0..arity {
            self.keys[to * arity + s] = self.keys[from * arity + s];
        }
        self.values[to] = self.values[from];
    }

    /// Drop the removed series.
    fn compact(&mut self, arity: usize) {
        if self.dead_count == 0 {
            return;
        }
        let mut to = 0;
        for from in 0..self.len() {
            if !self.is_dead(from) {
                if from != to {
                    self.copy(arity, from, to);
                }
                to += 1;
            }
        }
        self.values.truncate(to);
        self.keys.truncate(to * arity);
        self.dead = Vec::new();
        self.dead_count = 0;
        // Give back the room of many removed series (a family that lost accounts).
        if self.values.capacity() - to > to / 8 + BUFFER {
            self.values.shrink_to(to + to / 16);
            self.keys.shrink_to((to + to / 16) * arity);
        }
    }

    /// Move every live series of `from` (keys disjoint from this run's) into this run
    /// and drop the removed ones of both.
    fn absorb(&mut self, arity: usize, from: &mut Run) {
        self.compact(arity);
        from.compact(arity);
        let (m, p) = (self.len(), from.len());
        if p == 0 {
            return;
        }
        if m == 0 {
            std::mem::swap(self, from);
            if from.values.capacity() > BUFFER {
                *from = Run::default();
            }
            return;
        }
        if self.values.capacity() < m + p {
            // Grow by a sixteenth at least: a family filled at start-up reallocates
            // O(log n) times and keeps at most a sixteenth of spare room.
            let grow = p.max(m / 16);
            self.values.reserve_exact(grow);
            self.keys.reserve_exact(grow * arity);
        }
        self.values.resize(m + p, 0.0);
        self.keys.resize((m + p) * arity, 0);
        // From the back: each series moves once, those before the first key of `from`
        // not at all.
        let (mut i, mut j) = (m, p);
        while j > 0 {
            let to = i + j - 1;
            if i > 0 && self.key(arity, i - 1) > from.key(arity, j - 1) {
                self.copy(arity, i - 1, to);
                i -= 1;
            } else {
                self.keys[to * arity..(to + 1) * arity].copy_from_slice(from.key(arity, j - 1));
                self.values[to] = from.values[j - 1];
                j -= 1;
            }
        }
        from.keys.clear();
        from.values.clear();
        if from.values.capacity() > BUFFER {
            // A larger run is empty until it has absorbed smaller ones again.
            *from = Run::default();
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
            runs: vec![Run::default()],
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
        let a = self.arity;
        let near = near.filter(|s| s.run < self.runs.len());
        let found = near
            .and_then(|s| {
                let at = self.runs[s.run].search_near(a, key, s.at).ok()?;
                Some(Place { run: s.run, at })
            })
            .or_else(|| {
                self.runs.iter().enumerate().find_map(|(run, r)| {
                    if near.is_some_and(|s| s.run == run) {
                        return None;
                    }
                    let at = r.search(a, key).ok()?;
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
            self.runs.push(Run::default());
        } else if self.runs[1].len() >= BUFFER {
            self.cascade();
        }
        let buffer = &mut self.runs[1];
        buffer.compact(self.arity);
        let Err(at) = buffer.search(self.arity, key) else {
            panic!("insert of a series that is there")
        };
        buffer.insert(self.arity, at, key);
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
                main[0].absorb(self.arity, &mut rest[r - 1]);
                return;
            }
            if len < size {
                return;
            }
            if self.runs.len() == r + 1 {
                self.runs.push(Run::default());
            }
            let (from, to) = self.runs.split_at_mut(r + 1);
            to[0].absorb(self.arity, &mut from[r]);
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

    pub(super) fn key(&self, place: Place) -> &[u32] {
        self.runs[place.run].key(self.arity, place.at)
    }

    pub(super) fn value(&self, place: Place) -> f64 {
        self.runs[place.run].values[place.at]
    }

    pub(super) fn value_mut(&mut self, place: Place) -> &mut f64 {
        &mut self.runs[place.run].values[place.at]
    }

    /// Every live series, run by run (not in key order).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u32], f64)> {
        let a = self.arity;
        self.runs.iter().flat_map(move |r| {
            (0..r.len())
                .filter(|&i| !r.is_dead(i))
                .map(move |i| (r.key(a, i), r.values[i]))
        })
    }

    /// The live series whose symbol at key position `at` is `id`. When `at` is 0 they
    /// are one range of each run: the cost is theirs, not the family's.
    pub(super) fn with_symbol(&self, at: usize, id: u32) -> impl Iterator<Item = &[u32]> {
        let a = self.arity;
        self.runs.iter().flat_map(move |r| {
            let range = if at == 0 {
                r.first_is(a, id)
            } else {
                0..r.len()
            };
            range
                .filter(|&i| !r.is_dead(i))
                .map(move |i| r.key(a, i))
                .filter(move |k| k[at] == id)
        })
    }

    /// The live series whose first symbol is `id` (`arity` > 0) with their values, run
    /// by run: one range of each run, so the cost is theirs, not the family's.
    pub(super) fn with_first(&self, id: u32) -> impl Iterator<Item = (&[u32], f64)> {
        let a = self.arity;
        self.runs.iter().flat_map(move |r| {
            r.first_is(a, id)
                .filter(|&i| !r.is_dead(i))
                .map(move |i| (r.key(a, i), r.values[i]))
        })
    }

    /// Merge every run into `main` and drop the removed series: afterwards every series
    /// is in [`Series::sorted`], in key order, and no other run holds memory.
    pub(super) fn merge(&mut self) {
        let a = self.arity;
        // Smallest first, each into the next, the largest into `main`.
        while self.runs.len() > 1 {
            let mut from = self.runs.remove(1);
            let to = if self.runs.len() > 1 { 1 } else { 0 };
            self.runs[to].absorb(a, &mut from);
        }
        self.runs[0].compact(a);
    }

    /// Assert the invariants the module documentation names: each run sorted and its
    /// bitmap matching its dead count, the runs' keys disjoint (removed series
    /// included), the buffer at most [`BUFFER`] series and run `r` below
    /// `BUFFER · RATIO^(r-1)`.
    #[cfg(test)]
    fn check_invariants(&self) {
        let a = self.arity;
        let mut every_key: Vec<&[u32]> = Vec::new();
        for (r, run) in self.runs.iter().enumerate() {
            assert_eq!(run.keys.len(), run.len() * a, "run {r}: keys and values");
            for i in 1..run.len() {
                assert!(run.key(a, i - 1) < run.key(a, i), "run {r} unsorted at {i}");
            }
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
            every_key.extend((0..run.len()).map(|i| run.key(a, i)));
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

    /// After [`Series::merge`]: the keys (`arity` symbols each) and values, in key order.
    pub(super) fn sorted(&self) -> (&[u32], &[f64]) {
        debug_assert!(self.runs.len() == 1 && self.runs[0].dead_count == 0);
        (&self.runs[0].keys, &self.runs[0].values)
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
        let mut v: Vec<_> = s.iter().map(|(k, v)| (k.to_vec(), v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
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
        assert_eq!(s.key(place), &[4, 0]);
        assert_eq!(s.value(place), 40.0);
        s.merge();
        assert_eq!(s.run_sizes(), [7]);
        let (keys, values) = s.sorted();
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
        let (keys, _) = s.sorted();
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
        let (keys, values) = s.sorted();
        assert_eq!(keys, &[2, 0, 2, 1, 3, 1, 3, 9, 4, 1]);
        assert_eq!(values, &[0.0, 0.0, 301.0, 0.0, 0.0]);
        assert!(s.runs[0].dead.is_empty());
    }

    #[test]
    fn a_search_from_any_hint_finds_what_a_binary_search_finds() {
        let mut run = Run::default();
        for k in (0..300).map(|i| i * 3) {
            run.keys.extend([k / 7, k]);
            run.values.push(0.0);
        }
        let empty = Run::default();
        for k in 0..905 {
            let key = [k / 7, k];
            assert_eq!(empty.search_near(2, &key, 5), Err(0));
            for near in [0, 1, 2, 57, 150, 298, 299, 300, 1_000] {
                assert_eq!(
                    run.search_near(2, &key, near),
                    run.search(2, &key),
                    "{key:?} from {near}"
                );
            }
        }
    }

    #[test]
    fn series_of_one_first_symbol_in_both_runs() {
        let mut s = merged(&[[1, 5], [2, 1], [2, 3], [2, 9], [3, 0]]);
        add(&mut s, &[2, 4]);
        add(&mut s, &[2, 0]);
        add(&mut s, &[1, 0]);
        assert!(s.remove(&[2, 3]));
        let mut of_2: Vec<&[u32]> = s.with_symbol(0, 2).collect();
        of_2.sort_unstable();
        assert_eq!(of_2, [&[2, 0], &[2, 1], &[2, 4], &[2, 9]]);
        assert_eq!(s.with_symbol(0, 4).count(), 0);
        assert_eq!(s.with_symbol(1, 0).count(), 3);
        assert_eq!(s.runs[0].first_is(2, 2), 1..4);
        assert_eq!(s.runs[0].first_is(2, 0), 0..0);
        assert_eq!(s.runs[0].first_is(2, 9), 5..5);
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
        assert_eq!(s.sorted(), (&[][..], &[0.0][..]));
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
                        let (keys, values) = s.sorted();
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
        let (keys, values) = s.sorted();
        let want: Vec<u32> = model.keys().flatten().copied().collect();
        assert_eq!(keys, want);
        assert_eq!(values, model.values().copied().collect::<Vec<_>>());
    }
}
