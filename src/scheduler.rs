//! Every (account, collector) of the configuration, polled from one timer queue: the
//! first attempt at start-up after a jitter of at most 100 ms, then every `interval`,
//! shifted once by a larger jitter (up to a tenth of the interval) so that accounts do
//! not poll in lockstep. At most `max_concurrent_requests` attempts run at once, each in
//! a task of its own that lives only while it runs; a collector waiting for its next
//! attempt is a queue entry and a slot, not a task (a task per collector cost ~1 kB
//! each: 52 MB at 51,000 collectors). Records the self-metrics, keeps the last good
//! values after a failure, and removes them once `max_staleness` has passed since the
//! last success. Each attempt also writes its row of the status page
//! ([`crate::status`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collector::Collector;
use crate::metrics::Exposition;
use crate::self_metrics::SelfMetrics;
use crate::status::{ErrorInfo, StatusBoard, TaskRow};
use crate::timing::Timing;

/// A collector with the cadence of its account: what the scheduler runs.
pub struct Scheduled {
    pub collector: Box<dyn Collector>,
    pub timing: Timing,
}

/// Counts collectors that have not finished their first attempt yet.
#[derive(Debug, Default)]
pub struct Readiness {
    pending: AtomicUsize,
}

impl Readiness {
    /// Whether every collector has finished its first attempt.
    pub fn is_ready(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    fn add(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::AcqRel);
    }

    fn done(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The running schedule: one driver task that owns every collector.
pub struct Scheduler {
    cancel: CancellationToken,
    driver: JoinHandle<Vec<Box<dyn Collector>>>,
}

/// What every attempt shares.
#[derive(Clone)]
pub struct Shared {
    pub self_metrics: SelfMetrics,
    pub exposition: Arc<Exposition>,
    pub readiness: Arc<Readiness>,
    /// The status page's table; each attempt writes its collector's row.
    pub status: Arc<StatusBoard>,
}

/// Longest shift of the second attempt.
const MAX_JITTER: Duration = Duration::from_secs(2);
/// Longest delay of the first attempt: readiness waits for it, so it stays short.
const MAX_STARTUP_JITTER: Duration = Duration::from_millis(100);

/// `(collector, account)` of each scheduled collector.
pub fn keys(collectors: &[Scheduled]) -> HashSet<(String, String)> {
    collectors
        .iter()
        .map(|s| {
            (
                s.collector.name().to_string(),
                s.collector.account().to_string(),
            )
        })
        .collect()
}

impl Scheduler {
    /// Schedule every collector; at most `max_concurrent` of them collect at once (each
    /// collector has at most one upstream request in flight, so this is the
    /// `max_concurrent_requests` bound again, applied before a collection allocates its
    /// requests rather than after).
    pub fn start(collectors: Vec<Scheduled>, shared: &Shared, max_concurrent: usize) -> Scheduler {
        let cancel = CancellationToken::new();
        shared.readiness.add(collectors.len());
        let now = Instant::now();
        let mut queue = BinaryHeap::with_capacity(collectors.len());
        let slots: Vec<Option<Slot>> = collectors
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let (name, account) = (s.collector.name(), s.collector.account());
                shared.self_metrics.init_collector(name, account);
                let row = shared.status.register(name, account, s.timing.interval);
                // The first attempt runs after a short jitter (readiness waits for it);
                // a longer one shifts the following attempts.
                let first = now + jitter(s.timing.interval, MAX_STARTUP_JITTER);
                row.scheduled(wall_clock(first), None);
                queue.push(Reverse((first, i)));
                Some(Slot {
                    collector: s.collector,
                    interval: Nanos::of(s.timing.interval),
                    max_staleness: Nanos::of(s.timing.max_staleness),
                    row,
                    last_success: None,
                    first: true,
                    exported: false,
                })
            })
            .collect();
        let driver = tokio::spawn(drive(
            slots,
            queue,
            shared.clone(),
            max_concurrent.max(1),
            cancel.clone(),
        ));
        Scheduler { cancel, driver }
    }

    /// Stop (in-flight requests are dropped) and hand back the collectors.
    pub async fn stop(self) -> Vec<Box<dyn Collector>> {
        self.cancel.cancel();
        match self.driver.await {
            Ok(collectors) => collectors,
            Err(e) => {
                tracing::error!(error = %e, "the scheduler ended abnormally");
                Vec::new()
            }
        }
    }
}

/// A collector between attempts, with what its schedule remembers.
struct Slot {
    collector: Box<dyn Collector>,
    interval: Nanos,
    max_staleness: Nanos,
    row: TaskRow,
    last_success: Option<Instant>,
    /// The first attempt has not finished yet (readiness waits for it).
    first: bool,
    /// The collector's series are exported (not removed as stale).
    exported: bool,
}

/// A duration in 8 bytes instead of 16 (51,000 slots at 10,000 accounts); exact up to
/// 584 years, far beyond [`crate::timing::MAX_DURATION`].
#[derive(Clone, Copy)]
struct Nanos(u64);

impl Nanos {
    fn of(d: Duration) -> Nanos {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

/// The queue: `(due, slot index)`, earliest first.
type Queue = BinaryHeap<Reverse<(Instant, usize)>>;

/// Run every collector when due, at most `max` at once, until cancelled; then wait for
/// the attempts in flight to give their collectors back.
async fn drive(
    mut slots: Vec<Option<Slot>>,
    mut queue: Queue,
    shared: Shared,
    max: usize,
    cancel: CancellationToken,
) -> Vec<Box<dyn Collector>> {
    let mut running: JoinSet<(usize, Slot, Option<Instant>)> = JoinSet::new();
    let back = |slots: &mut Vec<Option<Slot>>, queue: &mut Queue, joined| match joined {
        Ok((i, slot, next)) => {
            if let Some(next) = next {
                queue.push(Reverse((next, i)));
            }
            slots[i] = Some(slot);
        }
        // A collector that panicked is gone; the others go on.
        Err(e) => tracing::error!(error = %e, "a collection ended abnormally"),
    };
    loop {
        let now = Instant::now();
        while running.len() < max {
            match queue.peek() {
                Some(Reverse((due, _))) if *due <= now => {}
                _ => break,
            }
            let Some(Reverse((_, i))) = queue.pop() else {
                break;
            };
            let Some(slot) = slots[i].take() else {
                continue;
            };
            let (shared, cancel) = (shared.clone(), cancel.clone());
            running.spawn(async move {
                let mut slot = slot;
                let next = attempt(&mut slot, &shared, &cancel).await;
                (i, slot, next)
            });
        }
        let due = (running.len() < max)
            .then(|| queue.peek().map(|Reverse((due, _))| *due))
            .flatten();
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(joined) = running.join_next() => back(&mut slots, &mut queue, joined),
            _ = tokio::time::sleep_until(due.unwrap_or(now)), if due.is_some() => {}
        }
    }
    // Each attempt in flight sees the cancellation and returns its collector.
    while let Some(joined) = running.join_next().await {
        back(&mut slots, &mut queue, joined);
    }
    slots
        .into_iter()
        .flatten()
        .map(|slot| {
            if slot.first {
                // Cancelled before the first attempt finished: do not hold readiness back.
                shared.readiness.done();
            }
            slot.collector
        })
        .collect()
}

fn jitter(interval: Duration, cap: Duration) -> Duration {
    let max = (interval / 10).min(cap);
    if max.is_zero() {
        return Duration::ZERO;
    }
    rand::rng().random_range(Duration::ZERO..max)
}

/// The wall-clock time of a monotonic instant (for display).
fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One attempt of one collector: collect, record the outcome, and say when the next
/// attempt is due (`None` when cancelled: the attempt is dropped unrecorded).
async fn attempt(slot: &mut Slot, shared: &Shared, cancel: &CancellationToken) -> Option<Instant> {
    let Slot {
        collector,
        interval,
        max_staleness,
        row,
        last_success,
        first,
        exported,
    } = slot;
    let (interval, max_staleness) = (interval.get(), max_staleness.get());
    let name = collector.name();
    let account = collector.account().to_string();
    let labels = [name, account.as_str()];
    let m = &shared.self_metrics;
    let started = Instant::now();
    let started_wall = SystemTime::now();
    // Retries inside the attempt must be over when the next attempt is due.
    let deadline = started + interval;
    let result = tokio::select! {
        _ = cancel.cancelled() => return None,
        r = collector.collect(deadline) => r,
    };
    let elapsed = started.elapsed();
    m.duration
        .with_label_values(&labels)
        .set(elapsed.as_secs_f64());
    // After the first attempt, a longer jitter shifts the ones that follow.
    let phase = if *first {
        jitter(interval, MAX_JITTER)
    } else {
        Duration::ZERO
    };
    let mut next = started + interval + phase;
    let mut note = None;
    match result {
        Ok(()) => {
            m.success.with_label_values(&labels).set(1.0);
            m.last_success.with_label_values(&labels).set(unix_now());
            *last_success = Some(Instant::now());
            *exported = true;
            row.succeeded(started_wall, elapsed, Some(collector.series()));
            tracing::debug!(collector = name, account = %account, duration_seconds = elapsed.as_secs_f64(), "collection succeeded");
        }
        Err(e) => {
            m.success.with_label_values(&labels).set(0.0);
            m.errors
                .with_label_values(&[name, account.as_str(), e.reason()])
                .inc();
            // Upstream may echo a credential in its error body: log and show the
            // redacted message only.
            let info = ErrorInfo::from_error(&e, &collector.secrets(), SystemTime::now());
            tracing::warn!(collector = name, account = %account, reason = e.reason(), error = %info.summary(), "collection failed");
            if let Some(wait) = e.retry_after() {
                let asked = Instant::now() + wait;
                if asked > next {
                    next = asked;
                    note = Some(format!(
                        "later than usual: upstream asked to wait (Retry-After {})",
                        humantime::format_duration(Duration::from_secs(wait.as_secs()))
                    ));
                }
            }
            let stale = last_success.is_some_and(|t| t.elapsed() >= max_staleness);
            if *exported && stale {
                tracing::warn!(collector = name, account = %account, max_staleness = %humantime::format_duration(max_staleness), "no success within max_staleness; removing the collector's series");
                collector.clear();
                *exported = false;
            }
            let stale = last_success.is_some() && !*exported;
            row.failed(started_wall, elapsed, info, stale, Some(collector.series()));
        }
    }
    row.scheduled(wall_clock(next), note);
    shared.exposition.mark_dirty();
    if std::mem::take(first) {
        shared.readiness.done();
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::CollectError;
    use crate::metrics::{GaugeFamily, Registry};
    use futures_util::future::BoxFuture;
    use secrecy::SecretString;
    use std::sync::atomic::AtomicBool;

    /// What the fake collectors report.
    #[derive(Default)]
    struct Probe {
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        attempts: AtomicUsize,
    }

    enum Behaviour {
        /// Takes 10 ms, then succeeds.
        Work,
        /// Never finishes.
        Hang,
        /// Panics on its first attempt.
        Panic,
    }

    struct Fake {
        account: String,
        probe: Arc<Probe>,
        behaviour: Behaviour,
        started: Arc<AtomicBool>,
    }

    impl Collector for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn account(&self) -> &str {
            &self.account
        }
        fn collect(&mut self, _deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>> {
            Box::pin(async move {
                self.started.store(true, Ordering::SeqCst);
                match self.behaviour {
                    Behaviour::Hang => std::future::pending::<()>().await,
                    Behaviour::Panic => panic!("a collector bug"),
                    Behaviour::Work => {}
                }
                let p = &self.probe;
                let now = p.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                p.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                p.in_flight.fetch_sub(1, Ordering::SeqCst);
                p.attempts.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
        fn families(&self) -> Vec<&GaugeFamily> {
            Vec::new()
        }
        fn secrets(&self) -> Vec<SecretString> {
            Vec::new()
        }
    }

    fn shared() -> Shared {
        let registry = Registry::new();
        Shared {
            self_metrics: SelfMetrics::new(&registry),
            exposition: Exposition::new(registry),
            readiness: Arc::new(Readiness::default()),
            status: StatusBoard::new("test"),
        }
    }

    fn fakes(
        n: usize,
        probe: &Arc<Probe>,
        behaviour: impl Fn(usize) -> Behaviour,
    ) -> Vec<Scheduled> {
        (0..n)
            .map(|i| Scheduled {
                collector: Box::new(Fake {
                    account: format!("a{i}"),
                    probe: probe.clone(),
                    behaviour: behaviour(i),
                    started: Arc::new(AtomicBool::new(false)),
                }),
                timing: Timing {
                    interval: Duration::from_secs(1),
                    ..Timing::default()
                },
            })
            .collect()
    }

    async fn until(what: &str, cond: impl Fn() -> bool) {
        // Paused time: this advances the clock only when every task is idle.
        for _ in 0..100_000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never happened: {what}");
    }

    #[test]
    fn a_waiting_collector_costs_a_64_byte_slot() {
        assert!(std::mem::size_of::<Option<Slot>>() <= 64);
    }

    #[tokio::test(start_paused = true)]
    async fn every_collector_runs_each_interval_and_never_more_than_the_bound_at_once() {
        let shared = shared();
        let probe = Arc::new(Probe::default());
        let t0 = Instant::now();
        let s = Scheduler::start(fakes(50, &probe, |_| Behaviour::Work), &shared, 4);
        until("every first attempt", || shared.readiness.is_ready()).await;
        until("three rounds", || {
            probe.attempts.load(Ordering::SeqCst) >= 150
        })
        .await;
        // The clock is paused: it moves only when every task waits, so this is exact.
        // A third attempt starts two intervals after the first (plus jitter, at most
        // 100 ms and 100 ms), never earlier; a round of 50 at 4 at once takes 130 ms.
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2500),
            "{took:?}"
        );
        assert_eq!(
            probe.peak.load(Ordering::SeqCst),
            4,
            "the bound, and all of it"
        );
        let back = s.stop().await;
        assert_eq!(back.len(), 50);
        let rows = shared.status.snapshot().tasks;
        assert_eq!(rows.len(), 50);
        assert!(rows.iter().all(|r| r.last_success.is_some()));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_hands_back_collectors_in_flight_and_releases_readiness() {
        let shared = shared();
        let probe = Arc::new(Probe::default());
        let s = Scheduler::start(
            fakes(3, &probe, |i| {
                if i == 0 {
                    Behaviour::Hang
                } else {
                    Behaviour::Work
                }
            }),
            &shared,
            2,
        );
        until("the other two ran", || {
            probe.attempts.load(Ordering::SeqCst) >= 2
        })
        .await;
        assert!(
            !shared.readiness.is_ready(),
            "the hung first attempt holds readiness"
        );
        let back = s.stop().await;
        let mut accounts: Vec<&str> = back.iter().map(|c| c.account()).collect();
        accounts.sort();
        assert_eq!(accounts, ["a0", "a1", "a2"]);
        assert!(shared.readiness.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_collector_never_stops_the_others() {
        let shared = shared();
        let probe = Arc::new(Probe::default());
        let s = Scheduler::start(
            fakes(5, &probe, |i| {
                if i == 2 {
                    Behaviour::Panic
                } else {
                    Behaviour::Work
                }
            }),
            &shared,
            1,
        );
        until("the four others ran three times", || {
            probe.attempts.load(Ordering::SeqCst) >= 12
        })
        .await;
        let back = s.stop().await;
        assert_eq!(back.len(), 4, "the one that panicked is gone");
    }
}
