//! `/-/ready`: whether every collector has finished its first attempt. Once reached,
//! readiness stays: a reload that adds accounts shows them as "not yet run" on the
//! status page, but never takes a serving replica out of its Service.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts collectors that have not finished their first attempt yet.
#[derive(Debug, Default)]
pub struct Readiness {
    pending: AtomicUsize,
    /// Every collector of the start-up configuration has finished its first attempt.
    reached: AtomicBool,
}

impl Readiness {
    /// Whether every collector of the start-up configuration has finished its first
    /// attempt (or did so before a reload added new ones).
    pub fn is_ready(&self) -> bool {
        if self.reached.load(Ordering::Acquire) {
            return true;
        }
        let ready = self.pending.load(Ordering::Acquire) == 0;
        if ready {
            self.reached.store(true, Ordering::Release);
        }
        ready
    }

    /// `n` collectors start; each reports its first attempt with [`Readiness::done`].
    pub fn add(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::AcqRel);
    }

    /// A collector finished its first attempt (or stopped before it did).
    pub fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.reached.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_ready_it_stays_ready_when_collectors_are_added() {
        let r = Readiness::default();
        r.add(2);
        assert!(!r.is_ready());
        r.done();
        assert!(!r.is_ready());
        r.done();
        assert!(r.is_ready());
        r.add(3);
        assert!(r.is_ready(), "a reload adding collectors keeps readiness");
    }
}
