//! The scheduler's clocks in few bytes: durations since the driver's epoch, the
//! table of distinct cadences its slots point into, and its timer queues.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// A duration in 8 bytes instead of 16 (81,000 slots at 10,000 accounts with every
/// collector); exact up to 584 years, far beyond [`crate::timing::MAX_DURATION`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Nanos(pub(super) u64);

impl Nanos {
    pub(super) const NEVER: Nanos = Nanos(u64::MAX);

    pub(super) fn of(d: Duration) -> Nanos {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1))
    }

    pub(super) fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// The instant `self` after `epoch`, `None` for [`Nanos::NEVER`].
    pub(super) fn after(self, epoch: Instant) -> Option<Instant> {
        (self != Nanos::NEVER).then(|| epoch + self.get())
    }
}

/// How often a collector is polled and how long its values outlive its last success.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Cadence {
    pub(super) interval: Nanos,
    pub(super) max_staleness: Nanos,
}

/// Each distinct [`Cadence`] of the slots once: the collectors of an account share
/// theirs (only a per-collector cadence differs), so a slot holds a 4-byte index
/// instead of 16 bytes of durations. A cadence no slot uses any more is forgotten and
/// its index reused, so reloads with new settings do not make the table grow.
#[derive(Default)]
pub(super) struct Cadences {
    /// Each cadence with the number of slots using it (0: a free index).
    table: Vec<(Cadence, u32)>,
    index: HashMap<Cadence, u32>,
    free: Vec<u32>,
}

impl Cadences {
    /// The index of `c`, counted as used once more.
    pub(super) fn intern(&mut self, c: Cadence) -> u32 {
        let i = match self.index.get(&c) {
            Some(&i) => i,
            None => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.table[i as usize] = (c, 0);
                        i
                    }
                    None => {
                        self.table.push((c, 0));
                        u32::try_from(self.table.len() - 1).expect("fewer than 2^32 cadences")
                    }
                };
                self.index.insert(c, i);
                i
            }
        };
        self.table[i as usize].1 += 1;
        i
    }

    /// One slot less uses the cadence at `i`.
    pub(super) fn release(&mut self, i: u32) {
        let (c, users) = &mut self.table[i as usize];
        *users -= 1;
        if *users == 0 {
            self.index.remove(c);
            self.free.push(i);
        }
    }

    pub(super) fn get(&self, i: u32) -> Cadence {
        self.table[i as usize].0
    }
}

/// A timer queue: `(due, slot index)`, earliest first. The due is [`Nanos`] since
/// the driver's epoch, kept as two `u32` halves so that an entry is 12 bytes (a
/// `u64` in it would pad it to 16; two queues of 81,000 entries at 10,000 accounts);
/// nothing is rounded and nothing wraps. An entry names a slot index only: the queues
/// never hold an entry of a removed collector ([`super::Driver::apply`] purges them before
/// an index is reused).
pub(super) struct Queue {
    epoch: Instant,
    heap: BinaryHeap<Reverse<Entry>>,
}

/// A queue entry: the due's high and low halves, then the slot index (the tuple's
/// order is the due's order).
pub(super) type Entry = (u32, u32, u32);

impl Queue {
    /// Room for `n` entries: a queue holds at most one per slot, so it never grows by
    /// doubling past that.
    pub(super) fn new(epoch: Instant, n: usize) -> Queue {
        Queue {
            epoch,
            heap: BinaryHeap::with_capacity(n),
        }
    }

    pub(super) fn push(&mut self, due: Instant, index: u32) {
        let Nanos(at) = Nanos::of(due.saturating_duration_since(self.epoch));
        self.heap
            .push(Reverse(((at >> 32) as u32, at as u32, index)));
    }

    fn due(&self, (high, low, index): Entry) -> (Instant, u32) {
        let at = Nanos(u64::from(high) << 32 | u64::from(low));
        (self.epoch + at.get(), index)
    }

    pub(super) fn peek(&self) -> Option<(Instant, u32)> {
        let &Reverse(e) = self.heap.peek()?;
        Some(self.due(e))
    }

    pub(super) fn pop(&mut self) -> Option<(Instant, u32)> {
        let Reverse(e) = self.heap.pop()?;
        Some(self.due(e))
    }

    /// Drop the entries of the slots `keep` rejects.
    pub(super) fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        self.heap.retain(|&Reverse((_, _, index))| keep(index));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_entry_is_12_bytes_and_keeps_the_exact_due_in_order() {
        // Two queues of 81,000 entries at 10,000 accounts: 4 bytes an entry is 0.65 MB.
        assert_eq!(std::mem::size_of::<Reverse<Entry>>(), 12);
        let epoch = Instant::now();
        let mut q = Queue::new(epoch, 4);
        // Across the low half's range (2^32 ns is 4.29 s) and far beyond it.
        let dues = [
            Duration::from_nanos(u64::from(u32::MAX) + 1),
            Duration::from_nanos(u64::from(u32::MAX)),
            crate::timing::MAX_DURATION * 2 + Duration::from_nanos(7),
            Duration::from_nanos(1),
        ];
        for (i, d) in dues.iter().enumerate() {
            q.push(epoch + *d, i as u32);
        }
        let popped: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            popped,
            vec![
                (epoch + dues[3], 3),
                (epoch + dues[1], 1),
                (epoch + dues[0], 0),
                (epoch + dues[2], 2)
            ]
        );
    }

    #[test]
    fn cadences_are_shared_and_forgotten_once_unused() {
        let secs = |s| Nanos::of(Duration::from_secs(s));
        let a = Cadence {
            interval: secs(60),
            max_staleness: secs(3600),
        };
        let b = Cadence {
            interval: secs(300),
            ..a
        };
        let mut c = Cadences::default();
        let (i, j, k) = (c.intern(a), c.intern(a), c.intern(b));
        assert_eq!(i, j, "one entry for the collectors that share it");
        assert_ne!(i, k);
        c.release(k);
        let d = Cadence {
            interval: secs(5),
            ..a
        };
        assert_eq!(c.intern(d), k, "an unused entry's index is reused");
        assert_eq!(c.table.len(), 2);
        assert!(c.get(k) == d && c.get(i) == a);
        c.release(i);
        assert!(c.index.contains_key(&a), "still used once");
        c.release(i);
        assert!(!c.index.contains_key(&a));
    }
}
