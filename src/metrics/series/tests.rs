//! The series store against its rules and a model.

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
