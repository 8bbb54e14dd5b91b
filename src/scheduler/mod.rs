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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
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
use crate::status::{AccountKey, ErrorInfo, StatusBoard, TaskRow};
use crate::timing::MAX_JITTER;

mod timers;
mod unwind;
use timers::{Cadence, Cadences, Nanos, Queue};
use unwind::{panic_message, CatchUnwind};

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
        let epoch = Instant::now();
        let mut driver = Driver {
            slots: Vec::with_capacity(collectors.len()),
            free: Vec::new(),
            queue: Queue::new(epoch, collectors.len()),
            stale: Queue::new(epoch, collectors.len()),
            running: JoinSet::new(),
            in_flight: HashMap::new(),
            recheck: HashSet::new(),
            retiring: HashSet::new(),
            cadences: Cadences::default(),
            accounts: HashMap::new(),
            groups: Vec::new(),
            free_groups: Vec::new(),
            shared: shared.clone(),
            max: max_concurrent.max(1),
            epoch,
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
    /// Index of the collector's `(interval, max_staleness)` in [`Driver::cadences`].
    cadence: u32,
    /// Since the driver's epoch; [`Nanos::NEVER`] before the first success.
    last_success: Nanos,
    /// The index of the collector's `(provider, account)` in [`Driver::groups`], and
    /// the slot's flags.
    flags: Flags,
}

/// A slot's group index and three flags in one `u32`: as fields of their own they
/// would make a slot 56 bytes instead of 48 (81,000 slots at 10,000 accounts).
#[derive(Clone, Copy)]
struct Flags(u32);

impl Flags {
    /// The first attempt has not finished yet (readiness waits for it).
    const FIRST: u32 = 1 << 31;
    /// The collector's series are exported (not removed as stale).
    const EXPORTED: u32 = 1 << 30;
    /// The staleness queue holds an entry for this slot.
    const STALE_QUEUED: u32 = 1 << 29;
    /// Group indices are below this.
    const GROUPS: u32 = 1 << 29;

    /// The flags of a new slot of `group`: its first attempt to come, nothing exported.
    fn new(group: u32) -> Flags {
        assert!(group < Flags::GROUPS, "fewer than 2^29 accounts");
        Flags(group | Flags::FIRST)
    }

    fn group(self) -> usize {
        (self.0 & (Flags::GROUPS - 1)) as usize
    }

    fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }

    /// Clear `flag`; whether it was set.
    fn take(&mut self, flag: u32) -> bool {
        let was = self.has(flag);
        self.set(flag, false);
        was
    }
}

/// The collectors of one `(provider, account)`: they share a rate limit.
#[derive(Default)]
struct Group {
    /// Slot indices. Exactly as long as needed (10,000 accounts, a handful each): it
    /// is rebuilt on the rare add or removal instead of growing by doubling.
    members: Box<[u32]>,
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
    /// Indices of `slots` free for reuse (once the queues hold no entry of theirs).
    free: Vec<u32>,
    /// Next attempts.
    queue: Queue,
    /// Staleness deadlines: one entry per slot with `stale_queued`.
    stale: Queue,
    running: JoinSet<Returned>,
    /// Attempts in flight: slot index → what cancels the attempt.
    in_flight: HashMap<u32, CancellationToken>,
    /// Slots whose staleness entry came due while their attempt was in flight.
    recheck: HashSet<u32>,
    /// Slots in flight whose collector a reload removed.
    retiring: HashSet<u32>,
    /// The slots' `(interval, max_staleness)`, each once.
    cadences: Cadences,
    /// `(provider, account)` → index in `groups`.
    /// The account is the status board's key of it: no copy of its name (10,000 at
    /// 10,000 accounts). An entry goes with its account, and its group is reused.
    accounts: HashMap<(&'static str, AccountKey), u32>,
    groups: Vec<Group>,
    /// Indices of `groups` free for reuse.
    free_groups: Vec<u32>,
    shared: Shared,
    max: usize,
    epoch: Instant,
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
            let mut wake = self.stale.peek().map(|(at, _)| at);
            if self.running.len() < self.max {
                if let Some((due, _)) = self.queue.peek() {
                    wake = Some(wake.map_or(due, |w| w.min(due)));
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
                if slot.flags.has(Flags::FIRST) {
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
        let key = (s.provider, row.account_key());
        let group = match self.accounts.get(&key) {
            Some(&group) => group,
            None => {
                let group = match self.free_groups.pop() {
                    Some(g) => g,
                    None => {
                        self.groups.push(Group::default());
                        u32::try_from(self.groups.len() - 1).expect("fewer than 2^32 accounts")
                    }
                };
                self.accounts.insert(key, group);
                group
            }
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 collectors")
            }
        };
        let members = &mut self.groups[group as usize].members;
        *members = members.iter().copied().chain([index]).collect();
        self.shared.readiness.add(1);
        self.queue.push(first, index);
        let cadence = self.cadences.intern(Cadence {
            interval: Nanos::of(s.timing.interval),
            max_staleness: Nanos::of(s.timing.max_staleness),
        });
        self.slots[index as usize] = Some(Slot {
            collector: s.collector,
            row,
            cadence,
            last_success: Nanos::NEVER,
            flags: Flags::new(group),
        });
    }

    /// Remove the series of every waiting collector whose staleness deadline passed.
    fn withdraw_stale(&mut self, now: Instant) {
        while let Some((at, index)) = self.stale.peek() {
            if at > now {
                break;
            }
            self.stale.pop();
            let epoch = self.epoch;
            let shared = self.shared.clone();
            let cadences = &self.cadences;
            if let Some(slot) = self.slots[index as usize].as_mut() {
                slot.flags.set(Flags::STALE_QUEUED, false);
                let max_staleness = cadences.get(slot.cadence).max_staleness.get();
                if is_stale(slot, max_staleness, epoch, now) {
                    withdraw(slot, max_staleness, &shared);
                } else {
                    self.queue_stale(index);
                }
            } else if self.in_flight.contains_key(&index) {
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
        if !slot.flags.has(Flags::EXPORTED) || slot.flags.has(Flags::STALE_QUEUED) {
            return;
        }
        if let Some(last) = slot.last_success.after(epoch) {
            let at = last + self.cadences.get(slot.cadence).max_staleness.get();
            self.stale.push(at, index);
            slot.flags.set(Flags::STALE_QUEUED, true);
        }
    }

    /// Start the attempts that are due, as long as a slot is free.
    fn start_due(&mut self, now: Instant) {
        while self.running.len() < self.max {
            match self.queue.peek() {
                Some((due, _)) if due <= now => {}
                _ => break,
            }
            let Some((_, index)) = self.queue.pop() else {
                break;
            };
            // Every entry is a waiting slot's (see [`Queue`]).
            let Some(slot) = self.slots[index as usize].take() else {
                continue;
            };
            let group = &self.groups[slot.flags.group()];
            if let Some((until, _)) = group.hold.filter(|(h, _)| *h > now) {
                let mut slot = slot;
                if slot.flags.take(Flags::FIRST) {
                    // Upstream's answer is this first attempt's outcome: readiness
                    // does not wait for the hold (up to an hour) to end.
                    self.shared.readiness.done();
                }
                self.queue.push(until, index);
                self.slots[index as usize] = Some(slot);
                continue;
            }
            let (shared, cancel, epoch) =
                (self.shared.clone(), self.cancel.child_token(), self.epoch);
            let cadence = self.cadences.get(slot.cadence);
            self.in_flight.insert(index, cancel.clone());
            self.running.spawn(async move {
                let mut slot = slot;
                let outcome = attempt(&mut slot, cadence, &shared, &cancel, epoch).await;
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
        let lag = match self.queue.peek() {
            Some((due, _)) if due < now => now - due,
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
            slot.flags.set(Flags::STALE_QUEUED, false);
        }
        if self.retiring.remove(&index) {
            self.retire(index, slot);
            return;
        }
        if let Some(Outcome { next, note, hold }) = outcome {
            let (mut next, mut note) = (next, note);
            let group = slot.flags.group();
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
            self.queue.push(next, index);
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
        if slot.flags.has(Flags::FIRST) {
            self.shared.readiness.done();
        }
        self.cadences.release(slot.cadence);
        let members = &mut self.groups[slot.flags.group()].members;
        *members = members.iter().copied().filter(|&m| m != index).collect();
        self.slots[index as usize] = None;
        self.free.push(index);
    }

    /// Apply a reload's change (see [`Change`]).
    async fn apply(&mut self, change: Change) {
        self.max = change.max_concurrent.max(1);
        let mut emptied = Vec::new();
        for (provider, account) in change.remove {
            let Some(key) = self.shared.status.account_key(&account) else {
                continue;
            };
            let Some(group) = self.accounts.remove(&(provider, key)) else {
                continue;
            };
            emptied.push(group);
            let members = self.groups[group as usize].members.clone();
            for index in members {
                if let Some(slot) = self.slots[index as usize].take() {
                    self.retire(index, slot);
                } else if let Some(cancel) = self.in_flight.get(&index) {
                    cancel.cancel();
                    self.retiring.insert(index);
                }
            }
        }
        // A cancelled attempt returns at its next poll; the removed series must be
        // gone before a new collector of the same account writes its own.
        while !self.retiring.is_empty() {
            match self.running.join_next().await {
                Some(joined) => self.back(joined),
                None => break,
            }
        }
        // The removed collectors' entries go before their indices are reused: an
        // entry names an index, not its occupant.
        let (slots, in_flight) = (&self.slots, &self.in_flight);
        let occupied = |i: u32| slots[i as usize].is_some() || in_flight.contains_key(&i);
        self.queue.retain(occupied);
        self.stale.retain(occupied);
        // Every member retired: the group starts afresh (no hold) for whoever next.
        for group in emptied {
            self.groups[group as usize] = Group::default();
            self.free_groups.push(group);
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

fn is_stale(slot: &Slot, max_staleness: Duration, epoch: Instant, now: Instant) -> bool {
    slot.flags.has(Flags::EXPORTED)
        && slot
            .last_success
            .after(epoch)
            .is_some_and(|t| now >= t + max_staleness)
}

/// Remove a collector's series: `max_staleness` has passed since its last success.
fn withdraw(slot: &mut Slot, max_staleness: Duration, shared: &Shared) {
    slot.collector.clear();
    slot.flags.set(Flags::EXPORTED, false);
    slot.row.went_stale(Some(slot.collector.series()));
    shared.exposition.mark_dirty();
    tracing::warn!(collector = slot.collector.name(), account = %slot.collector.account(), max_staleness = %humantime::format_duration(max_staleness), "no success within max_staleness; removing the collector's series");
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
/// attempt is due (`None` when cancelled: the attempt is dropped unrecorded). While it
/// runs it keeps the staleness promise itself: the driver cannot reach the collector.
async fn attempt(
    slot: &mut Slot,
    cadence: Cadence,
    shared: &Shared,
    cancel: &CancellationToken,
    epoch: Instant,
) -> Option<Outcome> {
    let Slot {
        collector,
        row,
        last_success,
        flags,
        ..
    } = slot;
    let (interval, max_staleness) = (cadence.interval.get(), cadence.max_staleness.get());
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
        .filter(|_| flags.has(Flags::EXPORTED))
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
                _ = tokio::time::sleep_until(stale_at.unwrap_or(started)), if stale_at.is_some() && flags.has(Flags::EXPORTED) => {
                    for f in &families {
                        f.clear(&account);
                    }
                    flags.set(Flags::EXPORTED, false);
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
        flags.set(Flags::EXPORTED, false);
        Err(CollectError::Internal(format!(
            "the collector panicked: {message}"
        )))
    });
    let elapsed = started.elapsed();
    m.duration
        .with_label_values(&labels)
        .set(elapsed.as_secs_f64());
    // After the first attempt, a longer jitter shifts the ones that follow.
    let phase = if flags.has(Flags::FIRST) {
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
            flags.set(Flags::EXPORTED, true);
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
            if stale || !flags.has(Flags::EXPORTED) {
                // Also after a removal mid-attempt: a partial write must not linger.
                if flags.has(Flags::EXPORTED) {
                    tracing::warn!(collector = name, account = %account, max_staleness = %humantime::format_duration(max_staleness), "no success within max_staleness; removing the collector's series");
                }
                collector.clear();
                flags.set(Flags::EXPORTED, false);
            }
            let stale = *last_success != Nanos::NEVER && !flags.has(Flags::EXPORTED);
            row.failed(started_wall, elapsed, info, stale, Some(collector.series()));
        }
    }
    shared.exposition.mark_dirty();
    if flags.take(Flags::FIRST) {
        shared.readiness.done();
    }
    Some(Outcome { next, note, hold })
}

#[cfg(test)]
mod tests;
