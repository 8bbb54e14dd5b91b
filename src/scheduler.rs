//! One task per (account, collector): first run at start-up after a jitter of at most
//! 100 ms, then every `interval`, shifted once by a larger jitter (up to a tenth of the
//! interval) so that accounts do not poll in lockstep. Records the
//! self-metrics, keeps the last good values after a failure, and removes them once
//! `max_staleness` has passed since the last success. Each task also writes its row
//! of the status page ([`crate::status`]) after every attempt.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collector::Collector;
use crate::metrics::{Exposition, SelfMetrics};
use crate::status::{ErrorInfo, StatusBoard};
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

/// The running collector tasks.
pub struct Scheduler {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<Box<dyn Collector>>>,
    keys: HashSet<(String, String)>,
}

/// What every task shares.
#[derive(Clone)]
pub struct Shared {
    pub self_metrics: SelfMetrics,
    pub exposition: Arc<Exposition>,
    pub readiness: Arc<Readiness>,
    /// The status page's table; each task writes its own row.
    pub status: Arc<StatusBoard>,
}

/// Longest shift of the second attempt.
const MAX_JITTER: Duration = Duration::from_secs(2);
/// Longest delay of the first attempt: readiness waits for it, so it stays short.
const MAX_STARTUP_JITTER: Duration = Duration::from_millis(100);

impl Scheduler {
    /// Start a task for each collector; at most `max_concurrent` of them collect at
    /// once (each collector has at most one upstream request in flight, so this is the
    /// `max_concurrent_requests` bound again, applied before a collection allocates its
    /// requests rather than after).
    pub fn start(collectors: Vec<Scheduled>, shared: &Shared, max_concurrent: usize) -> Scheduler {
        let cancel = CancellationToken::new();
        let gate = Arc::new(Semaphore::new(max_concurrent.max(1)));
        shared.readiness.add(collectors.len());
        let keys = collectors
            .iter()
            .map(|s| {
                (
                    s.collector.name().to_string(),
                    s.collector.account().to_string(),
                )
            })
            .collect();
        let tasks = collectors
            .into_iter()
            .map(|s| {
                shared
                    .self_metrics
                    .init_collector(s.collector.name(), s.collector.account());
                tokio::spawn(run(
                    s.collector,
                    s.timing,
                    shared.clone(),
                    gate.clone(),
                    cancel.clone(),
                ))
            })
            .collect();
        Scheduler {
            cancel,
            tasks,
            keys,
        }
    }

    /// `(collector, account)` of every task.
    pub fn keys(&self) -> HashSet<(String, String)> {
        self.keys.clone()
    }

    /// Stop every task (in-flight requests are dropped) and hand back the collectors.
    pub async fn stop(self) -> Vec<Box<dyn Collector>> {
        self.cancel.cancel();
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            match t.await {
                Ok(c) => out.push(c),
                Err(e) => tracing::error!(error = %e, "collector task ended abnormally"),
            }
        }
        out
    }
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

async fn run(
    mut collector: Box<dyn Collector>,
    timing: Timing,
    shared: Shared,
    gate: Arc<Semaphore>,
    cancel: CancellationToken,
) -> Box<dyn Collector> {
    let name = collector.name();
    let account = collector.account().to_string();
    let labels = [name, account.as_str()];
    let m = &shared.self_metrics;
    let row = shared.status.register(name, &account, timing.interval);
    // The first attempt runs after a short jitter (readiness waits for it); a longer
    // one shifts the following attempts.
    let mut next = Instant::now() + jitter(timing.interval, MAX_STARTUP_JITTER);
    let mut phase = jitter(timing.interval, MAX_JITTER);
    let mut last_success: Option<Instant> = None;
    let mut first = true;
    let mut exported = false;
    row.scheduled(wall_clock(next), None);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        // Waiting here rather than on the upstream semaphore keeps the collections
        // that cannot run yet from holding their futures and built requests: with a
        // thousand accounts starting together that is megabytes.
        let _turn = tokio::select! {
            _ = cancel.cancelled() => break,
            p = gate.acquire() => p.expect("the gate is never closed"),
        };
        let started = Instant::now();
        let started_wall = SystemTime::now();
        // Retries inside the attempt must be over when the next attempt is due.
        let deadline = started + timing.interval;
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = collector.collect(deadline) => r,
        };
        let elapsed = started.elapsed();
        m.duration
            .with_label_values(&labels)
            .set(elapsed.as_secs_f64());
        next = started + timing.interval + std::mem::take(&mut phase);
        let mut note = None;
        match result {
            Ok(()) => {
                m.success.with_label_values(&labels).set(1.0);
                m.last_success.with_label_values(&labels).set(unix_now());
                last_success = Some(Instant::now());
                exported = true;
                row.succeeded(started_wall, elapsed, Some(collector.series()));
                tracing::debug!(collector = name, account = %account, duration_seconds = elapsed.as_secs_f64(), "collection succeeded");
            }
            Err(e) => {
                m.success.with_label_values(&labels).set(0.0);
                m.errors
                    .with_label_values(&[name, account.as_str(), e.reason()])
                    .inc();
                // Upstream may echo a credential in its error body: log and show
                // the redacted message only.
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
                let stale = last_success.is_some_and(|t| t.elapsed() >= timing.max_staleness);
                if exported && stale {
                    tracing::warn!(collector = name, account = %account, max_staleness = %humantime::format_duration(timing.max_staleness), "no success within max_staleness; removing the collector's series");
                    collector.clear();
                    exported = false;
                }
                let stale = last_success.is_some() && !exported;
                row.failed(started_wall, elapsed, info, stale, Some(collector.series()));
            }
        }
        row.scheduled(wall_clock(next), note);
        shared.exposition.mark_dirty();
        if first {
            first = false;
            shared.readiness.done();
        }
    }
    if first {
        // Cancelled before the first attempt finished: do not hold readiness back.
        shared.readiness.done();
    }
    collector
}
