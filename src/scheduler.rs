//! Every (account, collector) of the configuration, polled from one timer queue: the
//! first attempt at start-up after a jitter of at most 100 ms, then every `interval`,
//! shifted once by a larger jitter (a tenth of the interval, at most 2 s) so that
//! accounts do not poll in lockstep. At most `max_concurrent_requests` attempts run at
//! once, each in a task of its own that lives only while it runs; a collector waiting
//! for its next attempt is a queue entry and a slot, not a task (a task per collector
//! costs ~1 kB: 52 MB at 51,000 collectors). Each attempt writes the self-metrics and
//! its row of the status page ([`crate::status`]).
//!
//! The policy, in one place:
//! - **Staleness has its own clock.** After a failure the last good values stay
//!   exported until `max_staleness` has passed since the last success; at that moment
//!   they are removed, whatever the schedule does next: a second queue holds each
//!   exported collector's staleness deadline, and an attempt still running watches its
//!   own. A `Retry-After` of an hour, an attempt that hangs, or no free request slot
//!   never keeps a value older than `max_staleness`. Self-metrics stay.
//! - **A rate limit holds the whole account.** A `Retry-After` on one collector holds
//!   every collector of the same `(provider, account)` (they share the token and its
//!   limit) until it has passed; their status rows say why they wait.
//! - **A panic is an error.** A collector that panics is counted with reason
//!   `internal`, its series are removed (the panic may have left them half-written),
//!   and it is retried at the next interval; its first attempt counts for readiness.
//! - **A reload changes only what changed** ([`Scheduler::apply`]): the collectors of
//!   removed or changed accounts stop (an attempt in flight is cancelled) and their
//!   series, rows and self-metrics go at once; new collectors start; every other
//!   collector keeps its state, its next attempt and its staleness clock.
//! - **Lag is measured**: `balance_exporter_scheduler_lag_seconds` is how far behind
//!   its due time the most overdue waiting attempt is (0 when all start on time).

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collector::{CollectError, Collector, Scheduled};
use crate::metrics::{Exposition, GaugeFamily};
use crate::readiness::Readiness;
use crate::self_metrics::SelfMetrics;
use crate::status::{ErrorInfo, StatusBoard, TaskRow};

/// The running schedule: one driver task that owns every collector.
pub struct Scheduler {
    cancel: CancellationToken,
    changes: mpsc::UnboundedSender<(Change, oneshot::Sender<()>)>,
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

/// What a reload changes in a running schedule.
pub struct Change {
    /// Accounts, as `(provider, account)`, whose collectors stop: their series, status
    /// rows and self-metrics go at once.
    pub remove: HashSet<(&'static str, String)>,
    /// Collectors to start (those of new and of changed accounts).
    pub add: Vec<Scheduled>,
    /// The bound of attempts at once (`max_concurrent_requests`).
    pub max_concurrent: usize,
}

/// Longest shift of the second attempt.
const MAX_JITTER: Duration = Duration::from_secs(2);
/// Longest delay of the first attempt: readiness waits for it, so it stays short.
const MAX_STARTUP_JITTER: Duration = Duration::from_millis(100);
/// How often the lag gauge is refreshed while every request slot is busy.
const LAG_TICK: Duration = Duration::from_secs(1);

impl Scheduler {
    /// Schedule every collector; at most `max_concurrent` of them collect at once (each
    /// collector has at most one upstream request in flight, so this is the
    /// `max_concurrent_requests` bound again, applied before a collection allocates its
    /// requests rather than after).
    pub fn start(collectors: Vec<Scheduled>, shared: &Shared, max_concurrent: usize) -> Scheduler {
        let cancel = CancellationToken::new();
        let mut driver = Driver {
            slots: Vec::with_capacity(collectors.len()),
            free: Vec::new(),
            queue: BinaryHeap::with_capacity(collectors.len()),
            stale: BinaryHeap::new(),
            running: JoinSet::new(),
            in_flight: HashMap::new(),
            recheck: HashSet::new(),
            retiring: HashSet::new(),
            accounts: HashMap::new(),
            groups: Vec::new(),
            shared: shared.clone(),
            max: max_concurrent.max(1),
            epoch: Instant::now(),
            generation: 0,
            cancel: cancel.clone(),
        };
        // Before the driver runs, so that readiness counts them before the first
        // request.
        let now = Instant::now();
        for s in collectors {
            driver.add(s, now);
        }
        driver.record_lag(now);
        let (changes, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(driver.drive(rx));
        Scheduler {
            cancel,
            changes,
            driver,
        }
    }

    /// Apply a reload's [`Change`]; returns once the removed collectors are stopped,
    /// their series gone, and the new ones scheduled.
    pub async fn apply(&self, change: Change) {
        let (done, applied) = oneshot::channel();
        if self.changes.send((change, done)).is_ok() {
            let _ = applied.await;
        }
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
    row: TaskRow,
    interval: Nanos,
    max_staleness: Nanos,
    /// Since the driver's epoch; [`Nanos::NEVER`] before the first success.
    last_success: Nanos,
    /// Tells this occupant of the slot's index from earlier ones (queue entries of a
    /// removed collector are ignored).
    generation: u32,
    /// Index of the collector's `(provider, account)` in [`Driver::groups`].
    group: u32,
    /// The first attempt has not finished yet (readiness waits for it).
    first: bool,
    /// The collector's series are exported (not removed as stale).
    exported: bool,
    /// The staleness queue holds an entry for this slot.
    stale_queued: bool,
}

/// A duration in 8 bytes instead of 16 (51,000 slots at 10,000 accounts); exact up to
/// 584 years, far beyond [`crate::timing::MAX_DURATION`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Nanos(u64);

impl Nanos {
    const NEVER: Nanos = Nanos(u64::MAX);

    fn of(d: Duration) -> Nanos {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1))
    }

    fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// The instant `self` after `epoch`, `None` for [`Nanos::NEVER`].
    fn after(self, epoch: Instant) -> Option<Instant> {
        (self != Nanos::NEVER).then(|| epoch + self.get())
    }
}

/// A timer queue: `(due, slot index, generation)`, earliest first.
type Queue = BinaryHeap<Reverse<(Instant, u32, u32)>>;

/// The collectors of one `(provider, account)`: they share a rate limit.
#[derive(Default)]
struct Group {
    members: Vec<u32>,
    /// Upstream asked to wait until then, answering this collector.
    hold: Option<(Instant, &'static str)>,
}

/// What an attempt hands back.
struct Returned {
    index: u32,
    slot: Slot,
    /// `None` when the attempt was cancelled (dropped unrecorded).
    outcome: Option<Outcome>,
}

/// How an attempt ended, for the schedule.
struct Outcome {
    next: Instant,
    note: Option<String>,
    /// Upstream asked to wait until then (`Retry-After`).
    hold: Option<Instant>,
}

/// The schedule's state, owned by its one task.
struct Driver {
    slots: Vec<Option<Slot>>,
    /// Indices of `slots` free for reuse.
    free: Vec<u32>,
    /// Next attempts.
    queue: Queue,
    /// Staleness deadlines: one entry per slot with `stale_queued`.
    stale: Queue,
    running: JoinSet<Returned>,
    /// Attempts in flight: slot index → (generation, what cancels the attempt).
    in_flight: HashMap<u32, (u32, CancellationToken)>,
    /// Slots whose staleness entry came due while their attempt was in flight.
    recheck: HashSet<u32>,
    /// Slots in flight whose collector a reload removed.
    retiring: HashSet<u32>,
    /// `(provider, account)` → index in `groups`.
    accounts: HashMap<(&'static str, Box<str>), u32>,
    groups: Vec<Group>,
    shared: Shared,
    max: usize,
    epoch: Instant,
    generation: u32,
    cancel: CancellationToken,
}

impl Driver {
    /// Run every collector when due, at most `max` at once, until cancelled; then wait
    /// for the attempts in flight to give their collectors back.
    async fn drive(
        mut self,
        mut changes: mpsc::UnboundedReceiver<(Change, oneshot::Sender<()>)>,
    ) -> Vec<Box<dyn Collector>> {
        loop {
            let now = Instant::now();
            self.withdraw_stale(now);
            self.start_due(now);
            self.record_lag(now);
            let mut wake = self.stale.peek().map(|Reverse((at, _, _))| *at);
            if self.running.len() < self.max {
                if let Some(Reverse((due, _, _))) = self.queue.peek() {
                    wake = Some(wake.map_or(*due, |w| w.min(*due)));
                }
            } else if !self.queue.is_empty() {
                // Saturated: the lag grows while every slot is busy.
                let tick = now + LAG_TICK;
                wake = Some(wake.map_or(tick, |w| w.min(tick)));
            }
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some((change, done)) = changes.recv() => {
                    self.apply(change).await;
                    let _ = done.send(());
                }
                Some(joined) = self.running.join_next() => self.back(joined),
                _ = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
            }
        }
        // Each attempt in flight sees the cancellation and returns its collector.
        while let Some(joined) = self.running.join_next().await {
            self.back(joined);
        }
        let readiness = self.shared.readiness.clone();
        self.slots
            .into_iter()
            .flatten()
            .map(|slot| {
                if slot.first {
                    // Cancelled before the first attempt finished: do not hold
                    // readiness back.
                    readiness.done();
                }
                slot.collector
            })
            .collect()
    }

    /// Schedule a new collector; its first attempt comes after a short jitter.
    fn add(&mut self, s: Scheduled, now: Instant) {
        let (name, account) = (s.collector.name(), s.collector.account());
        self.shared.self_metrics.init_collector(name, account);
        let row = self
            .shared
            .status
            .register(name, account, s.timing.interval);
        let first = now + jitter(s.timing.interval, MAX_STARTUP_JITTER);
        row.scheduled(wall_clock(first), None);
        let next_group = u32::try_from(self.groups.len()).expect("fewer than 2^32 accounts");
        let group = *self
            .accounts
            .entry((s.provider, account.into()))
            .or_insert(next_group);
        if group == next_group {
            self.groups.push(Group::default());
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 collectors")
            }
        };
        self.groups[group as usize].members.push(index);
        self.generation = self.generation.wrapping_add(1);
        self.shared.readiness.add(1);
        self.queue.push(Reverse((first, index, self.generation)));
        self.slots[index as usize] = Some(Slot {
            collector: s.collector,
            row,
            interval: Nanos::of(s.timing.interval),
            max_staleness: Nanos::of(s.timing.max_staleness),
            last_success: Nanos::NEVER,
            generation: self.generation,
            group,
            first: true,
            exported: false,
            stale_queued: false,
        });
    }

    /// The waiting slot at `index`, when it is the occupant `generation` names.
    fn waiting(&mut self, index: u32, generation: u32) -> Option<&mut Slot> {
        self.slots[index as usize]
            .as_mut()
            .filter(|s| s.generation == generation)
    }

    /// Remove the series of every waiting collector whose staleness deadline passed.
    fn withdraw_stale(&mut self, now: Instant) {
        while let Some(&Reverse((at, index, generation))) = self.stale.peek() {
            if at > now {
                break;
            }
            self.stale.pop();
            let epoch = self.epoch;
            let shared = self.shared.clone();
            if let Some(slot) = self.waiting(index, generation) {
                slot.stale_queued = false;
                if is_stale(slot, epoch, now) {
                    withdraw(slot, &shared);
                } else {
                    self.queue_stale(index);
                }
            } else if self
                .in_flight
                .get(&index)
                .is_some_and(|(g, _)| *g == generation)
            {
                // The attempt watches its own deadline; the entry is renewed when
                // the slot comes back.
                self.recheck.insert(index);
            }
        }
    }

    /// Give a waiting exported slot its staleness entry, unless it has one.
    fn queue_stale(&mut self, index: u32) {
        let epoch = self.epoch;
        let Some(slot) = self.slots[index as usize].as_mut() else {
            return;
        };
        if !slot.exported || slot.stale_queued {
            return;
        }
        if let Some(last) = slot.last_success.after(epoch) {
            let at = last + slot.max_staleness.get();
            self.stale.push(Reverse((at, index, slot.generation)));
            slot.stale_queued = true;
        }
    }

    /// Start the attempts that are due, as long as a slot is free.
    fn start_due(&mut self, now: Instant) {
        while self.running.len() < self.max {
            match self.queue.peek() {
                Some(Reverse((due, _, _))) if *due <= now => {}
                _ => break,
            }
            let Some(Reverse((_, index, generation))) = self.queue.pop() else {
                break;
            };
            if self.waiting(index, generation).is_none() {
                continue;
            }
            let slot = self.slots[index as usize].take().expect("checked above");
            let group = &self.groups[slot.group as usize];
            if let Some((until, _)) = group.hold.filter(|(h, _)| *h > now) {
                let mut slot = slot;
                if std::mem::take(&mut slot.first) {
                    // Upstream's answer is this first attempt's outcome: readiness
                    // does not wait for the hold (up to an hour) to end.
                    self.shared.readiness.done();
                }
                self.queue.push(Reverse((until, index, generation)));
                self.slots[index as usize] = Some(slot);
                continue;
            }
            let (shared, cancel, epoch) =
                (self.shared.clone(), self.cancel.child_token(), self.epoch);
            self.in_flight.insert(index, (generation, cancel.clone()));
            self.running.spawn(async move {
                let mut slot = slot;
                let outcome = attempt(&mut slot, &shared, &cancel, epoch).await;
                Returned {
                    index,
                    slot,
                    outcome,
                }
            });
        }
    }

    /// `balance_exporter_scheduler_lag_seconds`: how far behind its due time the most
    /// overdue waiting attempt is.
    fn record_lag(&mut self, now: Instant) {
        // Entries of removed collectors do not count.
        while let Some(&Reverse((_, index, generation))) = self.queue.peek() {
            if self.waiting(index, generation).is_some() {
                break;
            }
            self.queue.pop();
        }
        let lag = match self.queue.peek() {
            Some(Reverse((due, _, _))) if *due < now => now - *due,
            _ => Duration::ZERO,
        };
        self.shared
            .self_metrics
            .scheduler_lag
            .with_label_values(&[])
            .set(lag.as_secs_f64());
    }

    /// An attempt ended: schedule the collector's next one (or retire it).
    fn back(&mut self, joined: Result<Returned, JoinError>) {
        let Returned {
            index,
            mut slot,
            outcome,
        } = match joined {
            Ok(r) => r,
            Err(e) => {
                // Panics inside a collection are caught in `attempt`; this is a bug
                // of the scheduler itself.
                tracing::error!(error = %e, "a collection ended abnormally");
                return;
            }
        };
        self.in_flight.remove(&index);
        if self.recheck.remove(&index) {
            slot.stale_queued = false;
        }
        if self.retiring.remove(&index) {
            self.retire(index, slot);
            return;
        }
        if let Some(Outcome { next, note, hold }) = outcome {
            let (mut next, mut note) = (next, note);
            let group = slot.group as usize;
            if let Some(until) = hold {
                let name = slot.collector.name();
                let held = match self.groups[group].hold {
                    Some((h, by)) if h >= until => (h, by),
                    _ => (until, name),
                };
                self.groups[group].hold = Some(held);
                for &other in &self.groups[group].members {
                    if other == index {
                        continue;
                    }
                    if let Some(s) = self.slots[other as usize].as_ref() {
                        s.row.held(wall_clock(held.0), held_note(held));
                    }
                }
            }
            if let Some(held) = self.groups[group].hold.filter(|(h, _)| *h > next) {
                next = held.0;
                note = Some(held_note(held));
            }
            slot.row.scheduled(wall_clock(next), note);
            self.queue.push(Reverse((next, index, slot.generation)));
        }
        self.slots[index as usize] = Some(slot);
        self.queue_stale(index);
    }

    /// Stop a collector for good: its series, row and self-metrics go.
    fn retire(&mut self, index: u32, mut slot: Slot) {
        slot.collector.clear();
        let (name, account) = (slot.collector.name(), slot.collector.account());
        self.shared.self_metrics.remove_collector(name, account);
        self.shared.status.remove(name, account);
        if slot.first {
            self.shared.readiness.done();
        }
        let members = &mut self.groups[slot.group as usize].members;
        members.retain(|&m| m != index);
        self.slots[index as usize] = None;
        self.free.push(index);
    }

    /// Apply a reload's change (see [`Change`]).
    async fn apply(&mut self, change: Change) {
        self.max = change.max_concurrent.max(1);
        for (provider, account) in change.remove {
            let Some(&group) = self.accounts.get(&(provider, account.into_boxed_str())) else {
                continue;
            };
            let members = self.groups[group as usize].members.clone();
            for index in members {
                if let Some(slot) = self.slots[index as usize].take() {
                    self.retire(index, slot);
                } else if let Some((_, cancel)) = self.in_flight.get(&index) {
                    cancel.cancel();
                    self.retiring.insert(index);
                }
            }
            self.groups[group as usize].hold = None;
        }
        // A cancelled attempt returns at its next poll; the removed series must be
        // gone before a new collector of the same account writes its own.
        while !self.retiring.is_empty() {
            match self.running.join_next().await {
                Some(joined) => self.back(joined),
                None => break,
            }
        }
        let now = Instant::now();
        for s in change.add {
            self.add(s, now);
        }
        self.shared.exposition.mark_dirty();
    }
}

/// Why a collector waits for its account's rate limit.
fn held_note((until, by): (Instant, &'static str)) -> String {
    format!(
        "held with its account: upstream asked {by} to wait (Retry-After) until {}",
        humantime::format_rfc3339_seconds(wall_clock(until))
    )
}

fn is_stale(slot: &Slot, epoch: Instant, now: Instant) -> bool {
    slot.exported
        && slot
            .last_success
            .after(epoch)
            .is_some_and(|t| now >= t + slot.max_staleness.get())
}

/// Remove a collector's series: `max_staleness` has passed since its last success.
fn withdraw(slot: &mut Slot, shared: &Shared) {
    slot.collector.clear();
    slot.exported = false;
    slot.row.went_stale(Some(slot.collector.series()));
    shared.exposition.mark_dirty();
    tracing::warn!(collector = slot.collector.name(), account = %slot.collector.account(), max_staleness = %humantime::format_duration(slot.max_staleness.get()), "no success within max_staleness; removing the collector's series");
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

/// A future whose panic becomes an error value: a collector's bug ends its attempt,
/// not the attempt's task (the collector stays in its slot).
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// One attempt of one collector: collect, record the outcome, and say when the next
/// attempt is due (`None` when cancelled: the attempt is dropped unrecorded). While it
/// runs it keeps the staleness promise itself: the driver cannot reach the collector.
async fn attempt(
    slot: &mut Slot,
    shared: &Shared,
    cancel: &CancellationToken,
    epoch: Instant,
) -> Option<Outcome> {
    let Slot {
        collector,
        row,
        interval,
        max_staleness,
        last_success,
        first,
        exported,
        ..
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
    let stale_at = last_success
        .after(epoch)
        .filter(|_| *exported)
        .map(|t| t + max_staleness);
    // Handles on the collector's families, to remove its series while `collect`
    // borrows it.
    let families: Vec<GaugeFamily> = match stale_at {
        Some(_) => collector.families().into_iter().cloned().collect(),
        None => Vec::new(),
    };
    let result = {
        let mut collect = CatchUnwind(collector.collect(deadline));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                r = &mut collect => break r,
                _ = tokio::time::sleep_until(stale_at.unwrap_or(started)), if stale_at.is_some() && *exported => {
                    for f in &families {
                        f.clear(&account);
                    }
                    *exported = false;
                    row.went_stale(Some(0));
                    shared.exposition.mark_dirty();
                    tracing::warn!(collector = name, account = %account, max_staleness = %humantime::format_duration(max_staleness), "no success within max_staleness; removing the collector's series");
                }
            }
        }
    };
    let result = result.unwrap_or_else(|payload| {
        let message = panic_message(payload.as_ref());
        // The panic may have left the series half-written: they go.
        collector.clear();
        *exported = false;
        Err(CollectError::Internal(format!(
            "the collector panicked: {message}"
        )))
    });
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
    let mut hold = None;
    match result {
        Ok(()) => {
            m.success.with_label_values(&labels).set(1.0);
            m.last_success.with_label_values(&labels).set(unix_now());
            *last_success = Nanos::of(Instant::now() - epoch);
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
                hold = Some(asked);
                if asked > next {
                    next = asked;
                    note = Some(format!(
                        "later than usual: upstream asked to wait (Retry-After {})",
                        humantime::format_duration(Duration::from_secs(wait.as_secs()))
                    ));
                }
            }
            let now = Instant::now();
            let stale = last_success
                .after(epoch)
                .is_some_and(|t| now >= t + max_staleness);
            if stale || !*exported {
                // Also after a removal mid-attempt: a partial write must not linger.
                if *exported {
                    tracing::warn!(collector = name, account = %account, max_staleness = %humantime::format_duration(max_staleness), "no success within max_staleness; removing the collector's series");
                }
                collector.clear();
                *exported = false;
            }
            let stale = *last_success != Nanos::NEVER && !*exported;
            row.failed(started_wall, elapsed, info, stale, Some(collector.series()));
        }
    }
    shared.exposition.mark_dirty();
    if std::mem::take(first) {
        shared.readiness.done();
    }
    Some(Outcome { next, note, hold })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{GaugeFamily, Registry};
    use crate::timing::Timing;
    use futures_util::future::BoxFuture;
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the fake collectors report.
    #[derive(Default)]
    struct Probe {
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        attempts: AtomicUsize,
    }

    /// What a fake collector's attempt does.
    #[derive(Clone, Copy)]
    enum Step {
        /// Takes 10 ms, then succeeds (and writes its series).
        Work,
        /// Never finishes.
        Hang,
        /// Panics.
        Panic,
        /// Fails with a 429 asking to wait this many seconds.
        RateLimited(u64),
        /// Fails with a timeout.
        Fail,
    }

    /// The step of attempt number `n` (0 first).
    type Script = Arc<dyn Fn(usize) -> Step + Send + Sync>;

    struct Fake {
        name: &'static str,
        account: String,
        probe: Arc<Probe>,
        script: Script,
        tried: usize,
        family: Arc<GaugeFamily>,
        /// Attempts started, by `name/account`.
        starts: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    }

    impl Collector for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn account(&self) -> &str {
            &self.account
        }
        fn collect(&mut self, _deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>> {
            Box::pin(async move {
                *self
                    .starts
                    .lock()
                    .unwrap()
                    .entry(format!("{}/{}", self.name, self.account))
                    .or_default() += 1;
                let step = (self.script)(self.tried);
                self.tried += 1;
                match step {
                    Step::Hang => std::future::pending::<()>().await,
                    Step::Panic => panic!("a collector bug"),
                    Step::RateLimited(s) => {
                        self.probe.attempts.fetch_add(1, Ordering::SeqCst);
                        return Err(CollectError::RateLimited {
                            retry_after: Some(Duration::from_secs(s)),
                        });
                    }
                    Step::Fail => {
                        self.probe.attempts.fetch_add(1, Ordering::SeqCst);
                        return Err(CollectError::Timeout);
                    }
                    Step::Work => {}
                }
                let p = &self.probe;
                let now = p.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                p.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                p.in_flight.fetch_sub(1, Ordering::SeqCst);
                p.attempts.fetch_add(1, Ordering::SeqCst);
                self.family.set(&self.account, self.tried as f64);
                Ok(())
            })
        }
        fn families(&self) -> Vec<&GaugeFamily> {
            vec![&self.family]
        }
        fn secrets(&self) -> Vec<SecretString> {
            Vec::new()
        }
    }

    struct World {
        shared: Shared,
        family: Arc<GaugeFamily>,
        probe: Arc<Probe>,
        starts: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    }

    impl World {
        fn new() -> World {
            let registry = Registry::new();
            let family = Arc::new(GaugeFamily::new(&registry, "t_value", "Value.", &[]));
            World {
                shared: Shared {
                    self_metrics: SelfMetrics::new(&registry),
                    exposition: Exposition::new(registry),
                    readiness: Arc::new(Readiness::default()),
                    status: StatusBoard::new("test"),
                },
                family,
                probe: Arc::new(Probe::default()),
                starts: Arc::default(),
            }
        }

        /// A collector `name` of account `account`, every `interval_ms`.
        fn fake(
            &self,
            name: &'static str,
            account: &str,
            timing: Timing,
            script: impl Fn(usize) -> Step + Send + Sync + 'static,
        ) -> Scheduled {
            Scheduled {
                collector: Box::new(Fake {
                    name,
                    account: account.to_string(),
                    probe: self.probe.clone(),
                    script: Arc::new(script),
                    tried: 0,
                    family: self.family.clone(),
                    starts: self.starts.clone(),
                }),
                timing,
                provider: "test",
            }
        }

        fn fakes(&self, n: usize, step: impl Fn(usize) -> Step) -> Vec<Scheduled> {
            (0..n)
                .map(|i| {
                    let s = step(i);
                    self.fake("fake", &format!("a{i}"), every(1), move |_| s)
                })
                .collect()
        }

        fn exported(&self, account: &str) -> bool {
            self.family.count(account) > 0
        }

        fn errors(&self, account: &str, reason: &str) -> f64 {
            self.shared
                .self_metrics
                .errors
                .with_label_values(&["fake", account, reason])
                .get()
        }

        fn row(&self, account: &str, collector: &str) -> crate::status::TaskStatus {
            self.shared
                .status
                .snapshot()
                .tasks
                .into_iter()
                .find(|r| r.account == account && r.collector == collector)
                .expect("a row")
        }

        /// Attempts started by collector `name` of `account`.
        fn starts(&self, name: &str, account: &str) -> usize {
            self.starts
                .lock()
                .unwrap()
                .get(&format!("{name}/{account}"))
                .copied()
                .unwrap_or(0)
        }

        fn lag(&self) -> f64 {
            self.shared
                .self_metrics
                .scheduler_lag
                .with_label_values(&[])
                .get()
        }
    }

    fn every(secs: u64) -> Timing {
        Timing {
            interval: Duration::from_secs(secs),
            max_staleness: Duration::from_secs(3),
            ..Timing::default()
        }
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
        let w = World::new();
        let t0 = Instant::now();
        let s = Scheduler::start(w.fakes(50, |_| Step::Work), &w.shared, 4);
        until("every first attempt", || w.shared.readiness.is_ready()).await;
        until("three rounds", || {
            w.probe.attempts.load(Ordering::SeqCst) >= 150
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
            w.probe.peak.load(Ordering::SeqCst),
            4,
            "the bound, and all of it"
        );
        let back = s.stop().await;
        assert_eq!(back.len(), 50);
        let rows = w.shared.status.snapshot().tasks;
        assert_eq!(rows.len(), 50);
        assert!(rows.iter().all(|r| r.last_success.is_some()));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_hands_back_collectors_in_flight_and_releases_readiness() {
        let w = World::new();
        let s = Scheduler::start(
            w.fakes(3, |i| if i == 0 { Step::Hang } else { Step::Work }),
            &w.shared,
            2,
        );
        until("the other two ran", || {
            w.probe.attempts.load(Ordering::SeqCst) >= 2
        })
        .await;
        assert!(
            !w.shared.readiness.is_ready(),
            "the hung first attempt holds readiness"
        );
        let back = s.stop().await;
        let mut accounts: Vec<&str> = back.iter().map(|c| c.account()).collect();
        accounts.sort();
        assert_eq!(accounts, ["a0", "a1", "a2"]);
        assert!(w.shared.readiness.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_is_counted_as_internal_and_retried_and_readiness_is_reached() {
        let w = World::new();
        let mut collectors = w.fakes(4, |_| Step::Work);
        // Panics on its first attempt, works after.
        collectors.push(w.fake("fake", "p", every(1), |n| {
            if n == 0 {
                Step::Panic
            } else {
                Step::Work
            }
        }));
        let s = Scheduler::start(collectors, &w.shared, 1);
        until("ready", || w.shared.readiness.is_ready()).await;
        assert_eq!(w.errors("p", "internal"), 1.0);
        let row = w.row("p", "fake");
        assert_eq!(row.last_error.as_ref().unwrap().reason, "internal");
        assert!(
            row.last_error.unwrap().message.contains("a collector bug"),
            "the panic's message is shown"
        );
        until("retried at the next interval, and it worked", || {
            w.exported("p")
        })
        .await;
        until("the others went on", || {
            w.probe.attempts.load(Ordering::SeqCst) >= 12
        })
        .await;
        let back = s.stop().await;
        assert_eq!(back.len(), 5, "the one that panicked is kept");
    }

    /// Succeeds once, then waits for an hour on a 429: the values go at last success +
    /// `max_staleness`, not when the next attempt runs.
    #[tokio::test(start_paused = true)]
    async fn values_go_at_max_staleness_even_when_upstream_asks_to_wait_an_hour() {
        let w = World::new();
        let c = w.fake("fake", "a", every(1), |n| {
            if n == 0 {
                Step::Work
            } else {
                Step::RateLimited(3600)
            }
        });
        let s = Scheduler::start(vec![c], &w.shared, 4);
        until("first success", || w.exported("a")).await;
        let success = Instant::now();
        until("the 429", || w.errors("a", "rate_limited") == 1.0).await;
        until("withdrawn", || !w.exported("a")).await;
        let after = success.elapsed();
        assert!(
            after >= Duration::from_secs(3) - Duration::from_millis(20)
                && after <= Duration::from_secs(4),
            "{after:?}"
        );
        assert_eq!(w.row("a", "fake").state, crate::status::State::Stale);
        // Self-metrics stay.
        assert_eq!(
            w.shared
                .self_metrics
                .success
                .with_label_values(&["fake", "a"])
                .get(),
            0.0
        );
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn values_go_at_max_staleness_while_an_attempt_hangs() {
        let w = World::new();
        let c = w.fake("fake", "a", every(1), |n| {
            if n == 0 {
                Step::Work
            } else {
                Step::Hang
            }
        });
        let s = Scheduler::start(vec![c], &w.shared, 4);
        until("first success", || w.exported("a")).await;
        let success = Instant::now();
        until("withdrawn", || !w.exported("a")).await;
        let after = success.elapsed();
        assert!(
            after >= Duration::from_secs(3) - Duration::from_millis(20)
                && after <= Duration::from_secs(4),
            "{after:?}"
        );
        assert_eq!(w.row("a", "fake").state, crate::status::State::Stale);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn values_go_at_max_staleness_when_no_request_slot_is_free() {
        let w = World::new();
        // One slot; `b` takes it for good once `a` has succeeded.
        let a = w.fake("fake", "a", every(1), |_| Step::Work);
        let b = w.fake("fake", "b", every(1), |n| {
            if n == 0 {
                Step::Work
            } else {
                Step::Hang
            }
        });
        let s = Scheduler::start(vec![a, b], &w.shared, 1);
        until("both succeeded", || w.exported("a") && w.exported("b")).await;
        until("b hangs", || w.lag() > 0.5).await;
        assert!(w.exported("a"));
        until("a withdrawn though it never got a slot", || {
            !w.exported("a")
        })
        .await;
        assert_eq!(w.row("a", "fake").state, crate::status::State::Stale);
        assert!(w.lag() >= 1.0, "the waiting attempt is late: {}", w.lag());
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn lag_is_zero_when_attempts_start_on_time() {
        let w = World::new();
        let s = Scheduler::start(w.fakes(10, |_| Step::Work), &w.shared, 4);
        until("two rounds", || {
            w.probe.attempts.load(Ordering::SeqCst) >= 20
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(w.lag(), 0.0);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_holds_the_accounts_other_collectors() {
        let w = World::new();
        let limited = w.fake("one", "acct", every(1), |n| {
            if n == 1 {
                Step::RateLimited(10)
            } else {
                Step::Work
            }
        });
        let sibling = w.fake("two", "acct", every(1), |_| Step::Work);
        let other = w.fake("one", "elsewhere", every(1), |_| Step::Work);
        let s = Scheduler::start(vec![limited, sibling, other], &w.shared, 4);
        until("the 429", || {
            w.shared
                .self_metrics
                .errors
                .with_label_values(&["one", "acct", "rate_limited"])
                .get()
                == 1.0
        })
        .await;
        let held_at = Instant::now();
        let (sibling, other) = (w.starts("two", "acct"), w.starts("one", "elsewhere"));
        until("the sibling's row says why it waits", || {
            w.row("acct", "two")
                .next_attempt_note
                .is_some_and(|n| n.contains("Retry-After") && n.contains("asked one"))
        })
        .await;
        until("another account polled on", || {
            w.starts("one", "elsewhere") >= other + 3
        })
        .await;
        assert!(
            w.starts("two", "acct") <= sibling + 1,
            "the sibling waits with its account (one attempt may have been under way)"
        );
        let sibling = w.starts("two", "acct");
        until("the sibling polled again", || {
            w.starts("two", "acct") > sibling
        })
        .await;
        assert!(
            held_at.elapsed() >= Duration::from_secs(9),
            "{:?}",
            held_at.elapsed()
        );
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_of_the_bound_applies_from_the_reload_on() {
        let w = World::new();
        let s = Scheduler::start(w.fakes(20, |_| Step::Work), &w.shared, 8);
        until("a round", || w.probe.attempts.load(Ordering::SeqCst) >= 20).await;
        assert!(w.probe.peak.load(Ordering::SeqCst) > 1);
        s.apply(Change {
            remove: HashSet::new(),
            add: Vec::new(),
            max_concurrent: 1,
        })
        .await;
        until("nothing in flight", || {
            w.probe.in_flight.load(Ordering::SeqCst) == 0
        })
        .await;
        w.probe.peak.store(0, Ordering::SeqCst);
        until("two more rounds", || {
            w.probe.attempts.load(Ordering::SeqCst) >= 60
        })
        .await;
        assert_eq!(w.probe.peak.load(Ordering::SeqCst), 1);
        assert_eq!(s.stop().await.len(), 20, "every collector kept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_attempt_held_by_its_accounts_rate_limit_does_not_hold_readiness() {
        let w = World::new();
        // A short interval makes its start-up jitter short: it almost always goes
        // first, and the sibling finds the account held.
        let fast = Timing {
            interval: Duration::from_millis(1),
            ..every(1)
        };
        let limited = w.fake("one", "acct", fast, |_| Step::RateLimited(3600));
        let sibling = w.fake("two", "acct", every(60), |_| Step::Work);
        let s = Scheduler::start(vec![limited, sibling], &w.shared, 1);
        until("ready within minutes, not after the hour", || {
            w.shared.readiness.is_ready()
        })
        .await;
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_keeps_unchanged_collectors_and_removes_the_others_at_once() {
        let w = World::new();
        let keep = w.fake("fake", "keep", every(1), |_| Step::Work);
        let gone = w.fake("fake", "gone", every(1), |n| {
            if n == 0 {
                Step::Work
            } else {
                Step::Hang
            }
        });
        let s = Scheduler::start(vec![keep, gone], &w.shared, 4);
        until("both exported", || w.exported("keep") && w.exported("gone")).await;
        until("ready", || w.shared.readiness.is_ready()).await;
        // `gone` is in flight (hanging) when it is removed.
        until("gone's second attempt", || {
            w.row("gone", "fake").last_attempt.is_some()
                && w.row("gone", "fake").next_attempt.is_some()
        })
        .await;
        let kept_row = w.row("keep", "fake");
        let added = w.fake("fake", "new", every(1), |_| Step::Hang);
        s.apply(Change {
            remove: [("test", "gone".to_string())].into(),
            add: vec![added],
            max_concurrent: 4,
        })
        .await;
        assert!(!w.exported("gone"), "removed at once");
        assert!(
            !w.shared
                .status
                .snapshot()
                .tasks
                .iter()
                .any(|r| r.account == "gone"),
            "its row goes"
        );
        assert!(w.exported("keep"));
        let row = w.row("keep", "fake");
        assert_eq!(row.last_success, kept_row.last_success, "state kept");
        assert!(w.shared.readiness.is_ready(), "stays ready");
        assert_eq!(w.row("new", "fake").state, crate::status::State::NotYetRun);
        let back = s.stop().await;
        assert_eq!(back.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_attempt_does_not_keep_values_past_max_staleness() {
        let w = World::new();
        let c = w.fake("fake", "a", every(1), |n| {
            if n == 0 {
                Step::Work
            } else {
                Step::Fail
            }
        });
        let s = Scheduler::start(vec![c], &w.shared, 4);
        until("first success", || w.exported("a")).await;
        until("a failure", || w.errors("a", "timeout") >= 1.0).await;
        assert!(w.exported("a"), "kept after a transient failure");
        until("withdrawn", || !w.exported("a")).await;
        s.stop().await;
    }
}
