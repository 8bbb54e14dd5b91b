//! The keys of one run of a family's series (see `series.rs`): `arity` label symbols
//! per series, in key order, stored plainly or with the first symbol run-length
//! encoded.
//!
//! # Layout
//!
//! ```text
//! plain    symbols [a x 1 | a x 2 | a y 1 | b x 1 | b y 2]   `arity` symbols a series
//!
//! packed   firsts  [a             b    ]                      the distinct first symbols
//!          starts  [0             3    ]                      where each one's series start
//!          symbols [x 1 | x 2 | y 1 | x 1 | y 2]              `arity - 1` symbols a series
//! ```
//!
//! The first label in key order is usually `account`, and one account owns many series
//! of a family: a *stretch* of consecutive series shares its first symbol. Packed, a
//! stretch costs 8 bytes (its first symbol and its start) and each series 4 bytes less.
//!
//! # Rules
//!
//! - Only the plain layout takes inserts ([`Keys::insert`]); both take merges of plain
//!   keys ([`Keys::merge`], in place from the back).
//! - [`Keys::settle`] packs when that is smaller (arity 2 or more and fewer stretches
//!   than half the series) and unpacks otherwise. A family of arity 1, or one whose
//!   first symbol is unique per series, stays plain.
//! - [`Keys::retain`] drops series in either layout, in place.
//!
//! # Costs
//!
//! - A search in the packed layout is a binary search among the stretches, then one
//!   within the stretch: O(log n), as in the plain one.
//! - Packing and unpacking move every symbol once, in place: O(n). A merge into packed
//!   keys first counts the series of each first symbol (O(stretches + new series)),
//!   then moves each series at most once, as into plain keys.

use std::cmp::Ordering;
use std::ops::Range;

/// A stored series' key: its first symbol (none when the family has no labels) and the
/// others. Ordered as the whole key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key<'a> {
    first: Option<u32>,
    rest: &'a [u32],
}

impl<'a> Key<'a> {
    /// The key whose symbols are `key`.
    pub(super) fn of(key: &'a [u32]) -> Self {
        match key.split_first() {
            Some((&first, rest)) => Key {
                first: Some(first),
                rest,
            },
            None => Key {
                first: None,
                rest: &[],
            },
        }
    }

    /// The symbol at key position `at`.
    pub(super) fn get(&self, at: usize) -> u32 {
        match at {
            0 => self.first.expect("a key with labels"),
            _ => self.rest[at - 1],
        }
    }

    /// The symbols in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.first.into_iter().chain(self.rest.iter().copied())
    }
}

/// The keys of one run, sorted (see the module documentation).
pub(super) struct Keys {
    arity: usize,
    /// How many series.
    len: usize,
    /// Plain: `arity` symbols per series. Packed: the `arity - 1` after the first.
    symbols: Vec<u32>,
    /// Packed: the distinct first symbols, ascending. Empty when plain.
    firsts: Vec<u32>,
    /// Packed: the series where each of `firsts` starts (the first is 0). Empty when
    /// plain.
    starts: Vec<u32>,
    packed: bool,
}

impl Keys {
    pub(super) fn new(arity: usize) -> Self {
        Keys {
            arity,
            len: 0,
            symbols: Vec::new(),
            firsts: Vec::new(),
            starts: Vec::new(),
            packed: false,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn arity(&self) -> usize {
        self.arity
    }

    #[cfg(test)]
    pub(super) fn is_packed(&self) -> bool {
        self.packed
    }

    /// Symbols per series in `symbols`.
    fn width(&self) -> usize {
        self.arity - usize::from(self.packed)
    }

    /// The symbols of series `i` in `symbols`: its whole key when plain, all but the
    /// first symbol when packed.
    fn chunk(&self, i: usize) -> &[u32] {
        let w = self.width();
        &self.symbols[i * w..(i + 1) * w]
    }

    /// Where stretch `s` starts; `len` for the one past the last.
    fn stretch_start(&self, s: usize) -> usize {
        self.starts.get(s).map_or(self.len, |&at| at as usize)
    }

    fn stretch(&self, s: usize) -> Range<usize> {
        self.stretch_start(s)..self.stretch_start(s + 1)
    }

    /// The stretch holding series `i` (packed).
    fn stretch_of(&self, i: usize) -> usize {
        self.starts.partition_point(|&at| at as usize <= i) - 1
    }

    pub(super) fn key(&self, i: usize) -> Key<'_> {
        if self.packed {
            Key {
                first: Some(self.firsts[self.stretch_of(i)]),
                rest: self.chunk(i),
            }
        } else {
            Key::of(self.chunk(i))
        }
    }

    /// The keys of the series in `range`, with their positions: O(1) a series after
    /// the first.
    pub(super) fn range(&self, range: Range<usize>) -> impl Iterator<Item = (usize, Key<'_>)> {
        let mut s = match self.packed && !range.is_empty() {
            true => self.stretch_of(range.start),
            false => 0,
        };
        range.map(move |i| {
            if !self.packed {
                return (i, Key::of(self.chunk(i)));
            }
            while self.stretch_start(s + 1) <= i {
                s += 1;
            }
            let first = Some(self.firsts[s]);
            (
                i,
                Key {
                    first,
                    rest: self.chunk(i),
                },
            )
        })
    }

    /// The first symbols of the series, each once, ascending.
    pub(super) fn firsts(&self) -> impl Iterator<Item = u32> + '_ {
        debug_assert!(self.arity > 0);
        let packed = self.packed.then(|| self.firsts.iter().copied());
        let mut last = None;
        let plain = (!self.packed).then(|| {
            (0..self.len)
                .map(|i| self.symbols[i * self.arity])
                .filter(move |&f| last.replace(f) != Some(f))
        });
        packed
            .into_iter()
            .flatten()
            .chain(plain.into_iter().flatten())
    }

    /// The position of `key`, or where it would go.
    pub(super) fn search(&self, key: &[u32]) -> Result<usize, usize> {
        if !self.packed {
            return self.search_in(key, 0, self.len);
        }
        match self.firsts.binary_search(&key[0]) {
            Ok(s) => {
                let r = self.stretch(s);
                self.search_in(&key[1..], r.start, r.end)
            }
            Err(s) => Err(self.stretch_start(s)),
        }
    }

    /// A binary search of `key` (the symbols of a chunk) between `lo` and `hi`, which
    /// bracket it.
    fn search_in(&self, key: &[u32], lo: usize, hi: usize) -> Result<usize, usize> {
        if lo >= hi {
            return Err(lo);
        }
        let (mut base, mut size) = (lo, hi - lo);
        while size > 1 {
            let half = size / 2;
            let mid = base + half;
            if self.chunk(mid) <= key {
                base = mid;
            }
            size -= half;
        }
        match self.chunk(base).cmp(key) {
            Ordering::Equal => Ok(base),
            Ordering::Less => Err(base + 1),
            Ordering::Greater => Err(base),
        }
    }

    /// [`Keys::search`] starting at `near` and widening the step: O(log d) when `key`
    /// is `d` series away (the next series of one account, say). Packed, a plain
    /// search (its stretch is found first anyway).
    pub(super) fn search_near(&self, key: &[u32], near: usize) -> Result<usize, usize> {
        let n = self.len;
        if n == 0 {
            return Err(0);
        }
        if self.packed {
            return self.search(key);
        }
        let near = near.min(n - 1);
        let mut step = 1;
        match self.chunk(near).cmp(key) {
            Ordering::Equal => Ok(near),
            Ordering::Less => {
                let mut lo = near + 1;
                loop {
                    let probe = near + step;
                    if probe >= n {
                        return self.search_in(key, lo, n);
                    }
                    match self.chunk(probe).cmp(key) {
                        Ordering::Less => lo = probe + 1,
                        Ordering::Equal => return Ok(probe),
                        Ordering::Greater => return self.search_in(key, lo, probe),
                    }
                    step *= 2;
                }
            }
            Ordering::Greater => {
                let mut hi = near;
                loop {
                    if step > near {
                        return self.search_in(key, 0, hi);
                    }
                    let probe = near - step;
                    match self.chunk(probe).cmp(key) {
                        Ordering::Greater => hi = probe,
                        Ordering::Equal => return Ok(probe),
                        Ordering::Less => return self.search_in(key, probe + 1, hi),
                    }
                    step *= 2;
                }
            }
        }
    }

    /// The series whose first symbol is `id` (`arity` > 0).
    pub(super) fn first_is(&self, id: u32) -> Range<usize> {
        if self.packed {
            return match self.firsts.binary_search(&id) {
                Ok(s) => self.stretch(s),
                Err(s) => {
                    let at = self.stretch_start(s);
                    at..at
                }
            };
        }
        let first = |i: usize| self.symbols[i * self.arity];
        let bound = |lo: usize, below: &dyn Fn(u32) -> bool| {
            let (mut lo, mut hi) = (lo, self.len);
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

    /// Insert `key` at `at` (plain).
    pub(super) fn insert(&mut self, at: usize, key: &[u32]) {
        debug_assert!(!self.packed);
        let a = self.arity;
        self.symbols.splice(at * a..at * a, key.iter().copied());
        self.len += 1;
    }

    /// Merge the keys of `from` (plain, disjoint from these) into these, in place and
    /// from the back, in either layout: each series moves once, those before the first
    /// key of `from` not at all. `moved(to, mine, at)` tells that series `at` of these
    /// (`mine`) or of `from` is now series `to`. Room grows by a sixteenth at least.
    pub(super) fn merge(&mut self, from: &Keys, mut moved: impl FnMut(usize, bool, usize)) {
        debug_assert!(!from.packed);
        let (a, w) = (self.arity, self.width());
        let (m, p) = (self.len, from.len);
        if self.symbols.capacity() < (m + p) * w {
            self.symbols.reserve_exact(p.max(m / 16) * w);
        }
        let stretches = self.packed.then(|| self.merged_stretches(from));
        self.symbols.resize((m + p) * w, 0);
        // Packed: `s - 1` is the stretch of series `i - 1` (the old stretches: the new
        // ones replace them once every series is in place).
        let (mut i, mut j, mut s) = (m, p, self.firsts.len());
        while j > 0 {
            let to = i + j - 1;
            let theirs = from.chunk(j - 1);
            let mine_after = i > 0 && {
                let mine = &self.symbols[(i - 1) * w..i * w];
                if self.packed {
                    while self.starts[s - 1] as usize > i - 1 {
                        s -= 1;
                    }
                    (self.firsts[s - 1], mine) > (theirs[0], &theirs[1..])
                } else {
                    mine > theirs
                }
            };
            if mine_after {
                self.symbols.copy_within((i - 1) * w..i * w, to * w);
                moved(to, true, i - 1);
                i -= 1;
            } else {
                let theirs = &theirs[a - w..];
                self.symbols[to * w..(to + 1) * w].copy_from_slice(theirs);
                moved(to, false, j - 1);
                j -= 1;
            }
        }
        if let Some((firsts, starts)) = stretches {
            self.firsts = firsts;
            self.starts = starts;
        }
        self.len = m + p;
    }

    /// The first symbols and starts of the stretches once `from` is merged into
    /// these (packed): the union of the first symbols, each stretch as long as the
    /// series of its first symbol in both.
    fn merged_stretches(&self, from: &Keys) -> (Vec<u32>, Vec<u32>) {
        let a = self.arity;
        let (mut firsts, mut starts) = (Vec::new(), Vec::new());
        let (mut s, mut j, mut at) = (0, 0, 0);
        while s < self.firsts.len() || j < from.len {
            let mine = self.firsts.get(s).copied();
            let theirs = (j < from.len).then(|| from.symbols[j * a]);
            let first = match (mine, theirs) {
                (Some(x), Some(y)) => x.min(y),
                (x, y) => x.or(y).expect("a stretch left"),
            };
            firsts.push(first);
            starts.push(at as u32);
            if mine == Some(first) {
                at += self.stretch(s).len();
                s += 1;
            }
            while j < from.len && from.symbols[j * a] == first {
                at += 1;
                j += 1;
            }
        }
        (firsts, starts)
    }

    /// No series, plain, no room held.
    pub(super) fn clear(&mut self) {
        *self = Keys::new(self.arity);
    }

    /// Keep room for at most `n` series.
    pub(super) fn shrink_to(&mut self, n: usize) {
        self.symbols.shrink_to(n * self.width());
    }

    /// Keep the series `i` for which `keep(i)`, in order, in either layout.
    pub(super) fn retain(&mut self, keep: impl Fn(usize) -> bool) {
        let w = self.width();
        let (mut to, mut kept) = (0, 0);
        // Plain, one stretch of everything. Packed, stretch `s` moves to `kept` ≤ `s`:
        // the stretches after it are still where they were when their turn comes.
        let stretches = if self.packed { self.firsts.len() } else { 1 };
        for s in 0..stretches {
            let series = if self.packed {
                self.stretch(s)
            } else {
                0..self.len
            };
            let begin = to;
            for i in series {
                if keep(i) {
                    if i != to {
                        self.symbols.copy_within(i * w..(i + 1) * w, to * w);
                    }
                    to += 1;
                }
            }
            if self.packed && to > begin {
                self.firsts[kept] = self.firsts[s];
                self.starts[kept] = begin as u32;
                kept += 1;
            }
        }
        if self.packed {
            self.firsts.truncate(kept);
            self.starts.truncate(kept);
        }
        self.len = to;
        self.symbols.truncate(to * w);
    }

    /// How many stretches of one first symbol a plain run has.
    fn count_stretches(&self) -> usize {
        let a = self.arity;
        (0..self.len)
            .filter(|&i| i == 0 || self.symbols[i * a] != self.symbols[(i - 1) * a])
            .count()
    }

    /// The layout that is smaller: packed when the family has two labels or more and
    /// there are fewer stretches than half the series (a stretch costs 8 bytes, a
    /// series saves 4), plain otherwise.
    pub(super) fn settle(&mut self) {
        if self.arity < 2 {
            return;
        }
        let stretches = match self.packed {
            true => self.firsts.len(),
            false => self.count_stretches(),
        };
        let smaller = stretches * 2 < self.len;
        if smaller && !self.packed {
            self.pack(stretches);
        } else if !smaller && self.packed {
            self.unpack();
            self.symbols.shrink_to_fit();
        }
    }

    fn pack(&mut self, stretches: usize) {
        let a = self.arity;
        let mut firsts = Vec::with_capacity(stretches);
        let mut starts = Vec::with_capacity(stretches);
        for i in 0..self.len {
            let first = self.symbols[i * a];
            if firsts.last() != Some(&first) {
                firsts.push(first);
                starts.push(i as u32);
            }
            // Forward: series `i` moves to `i · (a - 1)`, before where it is.
            self.symbols
                .copy_within(i * a + 1..(i + 1) * a, i * (a - 1));
        }
        self.symbols.truncate(self.len * (a - 1));
        self.symbols.shrink_to_fit();
        self.firsts = firsts;
        self.starts = starts;
        self.packed = true;
    }

    /// Return to the plain layout, in place.
    fn unpack(&mut self) {
        if !self.packed {
            return;
        }
        let a = self.arity;
        self.symbols.reserve_exact(self.len);
        self.symbols.resize(self.len * a, 0);
        // Backward: series `i` moves to `i · a`, after where it is.
        for s in (0..self.firsts.len()).rev() {
            let first = self.firsts[s];
            for i in self.stretch(s).rev() {
                self.symbols
                    .copy_within(i * (a - 1)..(i + 1) * (a - 1), i * a + 1);
                self.symbols[i * a] = first;
            }
        }
        self.firsts = Vec::new();
        self.starts = Vec::new();
        self.packed = false;
    }

    /// Assert the layout: sorted keys, a plain or packed layout consistent with `len`
    /// and, when `settled`, the smaller of the two.
    #[cfg(test)]
    pub(super) fn check(&self, settled: bool) {
        assert_eq!(self.symbols.len(), self.len * self.width(), "symbols");
        let keys: Vec<Key> = self.range(0..self.len).map(|(_, k)| k).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "unsorted");
        if self.packed {
            assert_eq!(self.firsts.len(), self.starts.len());
            assert_eq!(
                self.starts.first(),
                Some(&0),
                "the first stretch starts at 0"
            );
            assert!(self.firsts.windows(2).all(|w| w[0] < w[1]));
            assert!(self.starts.windows(2).all(|w| w[0] < w[1]));
            assert!(self.stretch_start(self.firsts.len() - 1) < self.len);
            for (i, key) in keys.iter().enumerate() {
                assert_eq!(*key, self.key(i), "range and key of {i}");
            }
        } else {
            assert!(self.firsts.is_empty() && self.starts.is_empty());
        }
        if settled {
            let stretches = keys.windows(2).filter(|w| w[0].first != w[1].first).count()
                + usize::from(self.len > 0);
            let smaller = self.arity >= 2 && stretches * 2 < self.len;
            assert_eq!(
                self.packed, smaller,
                "{stretches} stretches of {}",
                self.len
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of arity 3: `per` series for each of the first symbols `firsts`.
    fn keys(firsts: &[u32], per: u32) -> Keys {
        let mut keys = Keys::new(3);
        for &f in firsts {
            for j in 0..per {
                keys.insert(keys.len(), &[f, j / 2, j]);
            }
        }
        keys
    }

    fn all(keys: &Keys) -> Vec<Vec<u32>> {
        let all = keys.range(0..keys.len());
        all.map(|(_, k)| k.iter().collect()).collect()
    }

    #[test]
    fn packing_and_unpacking_keep_every_key_in_place() {
        let mut k = keys(&[2, 5, 9], 4);
        let plain = all(&k);
        k.settle();
        assert!(k.is_packed());
        k.check(true);
        assert_eq!(all(&k), plain);
        assert_eq!(k.symbols.len(), 12 * 2, "two symbols a series");
        assert_eq!(
            (k.firsts.as_slice(), k.starts.as_slice()),
            (&[2, 5, 9][..], &[0, 4, 8][..])
        );
        assert_eq!(k.key(5), Key::of(&[5, 0, 1]));
        assert_eq!(k.range(6..9).map(|(i, _)| i).collect::<Vec<_>>(), [6, 7, 8]);
        assert_eq!(k.range(6..9).nth(2).unwrap().1, Key::of(&[9, 0, 0]));
        assert_eq!(k.firsts().collect::<Vec<_>>(), [2, 5, 9]);
        k.unpack();
        k.check(false);
        assert!(!k.is_packed());
        assert_eq!(all(&k), plain);
        assert_eq!(k.firsts().collect::<Vec<_>>(), [2, 5, 9]);
    }

    #[test]
    fn one_series_a_first_symbol_or_one_label_stays_plain() {
        let mut k = keys(&[1, 2, 3, 4], 1);
        k.settle();
        assert!(!k.is_packed());
        let mut two = keys(&[1, 2, 3, 4], 2);
        two.settle();
        assert!(
            !two.is_packed(),
            "8 bytes a stretch saves nothing at 2 series"
        );
        let mut one = Keys::new(1);
        for i in 0..10 {
            one.insert(i, &[i as u32]);
        }
        one.settle();
        assert!(!one.is_packed());
    }

    /// Dropping series of a packed run: a whole stretch, a stretch's first and last
    /// series; then so many that the packed layout is no longer the smaller.
    #[test]
    fn retain_drops_series_and_stretches_when_packed() {
        let mut k = keys(&[2, 5, 9, 11], 4);
        let plain = all(&k);
        k.settle();
        let dropped = [4, 5, 6, 7, 8, 15];
        k.retain(|i| !dropped.contains(&i));
        k.check(true);
        let want: Vec<Vec<u32>> = (0..16)
            .filter(|i| !dropped.contains(i))
            .map(|i| plain[i].clone())
            .collect();
        assert_eq!(all(&k), want);
        assert_eq!(k.firsts, [2, 9, 11]);
        assert_eq!(k.starts, [0, 4, 7]);
        assert_eq!(k.first_is(5), 4..4);
        assert_eq!(k.first_is(9), 4..7);
        assert_eq!(k.search(&[9, 1, 3]), Ok(6));
        assert_eq!(k.search(&[10, 0, 0]), Err(7));
        assert_eq!(k.search(&[12, 0, 0]), Err(10));
        // 3 series in 2 stretches: plain is smaller.
        k.retain(|i| i < 4 && i != 1 && i != 2 || i == 9);
        assert_eq!(all(&k), [want[0].clone(), want[3].clone(), want[9].clone()]);
        k.settle();
        k.check(true);
        assert!(!k.is_packed());
        assert_eq!(all(&k), [want[0].clone(), want[3].clone(), want[9].clone()]);
    }

    /// Plain keys merged into packed ones: new first symbols before, between and after
    /// the stretches, and keys at either end of a stretch.
    #[test]
    fn a_merge_into_packed_keys_places_every_key_and_its_stretch() {
        let mut k = keys(&[2, 5, 9], 4);
        k.settle();
        assert!(k.is_packed());
        let mine = all(&k);
        let theirs = [
            [1, 0, 0],
            [2, 5, 5],
            [5, 0, 5],
            [7, 0, 0],
            [7, 1, 0],
            [9, 9, 9],
            [12, 0, 0],
        ];
        let mut from = Keys::new(3);
        for (j, key) in theirs.iter().enumerate() {
            from.insert(j, key);
        }
        let mut origin = vec![None; mine.len() + theirs.len()];
        k.merge(&from, |to, is_mine, at| origin[to] = Some((is_mine, at)));
        k.check(true);
        assert!(k.is_packed());
        let mut want: Vec<Vec<u32>> = mine.clone();
        want.extend(theirs.iter().map(|t| t.to_vec()));
        want.sort_unstable();
        assert_eq!(all(&k), want);
        assert_eq!(k.firsts, [1, 2, 5, 7, 9, 12]);
        assert_eq!(k.starts, [0, 1, 6, 11, 13, 18]);
        // Every series was placed, and told where it came from.
        for (to, origin) in origin.iter().enumerate() {
            let want = &want[to];
            match origin {
                Some((true, at)) => assert_eq!(&mine[*at], want),
                Some((false, at)) => assert_eq!(&theirs[*at].to_vec(), want),
                None => panic!("series {to} not placed"),
            }
        }
    }
}
