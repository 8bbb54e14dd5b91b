//! The scheduler on a paused clock, with fake collectors.

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
        self.errors_of("fake", account, reason)
    }

    /// The error counter of `collector` at `account` for `reason`.
    fn errors_of(&self, collector: &str, account: &str, reason: &str) -> f64 {
        self.shared
            .self_metrics
            .errors
            .with_label_values(&[collector, account, reason])
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

/// `first` on the first attempt, `then` on every later one.
fn first_then(first: Step, then: Step) -> impl Fn(usize) -> Step + Send + Sync + 'static {
    move |n| if n == 0 { first } else { then }
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

/// Waits until `account`'s values are withdrawn, and checks that this came
/// `max_staleness` (3 s) after its last `success` and that its row says stale.
async fn withdrawn_at_max_staleness(w: &World, account: &str, success: Instant) {
    until("withdrawn", || !w.exported(account)).await;
    let after = success.elapsed();
    assert!(
        after >= Duration::from_secs(3) - Duration::from_millis(20)
            && after <= Duration::from_secs(4),
        "{after:?}"
    );
    assert_eq!(w.row(account, "fake").state, crate::status::State::Stale);
}

#[test]
fn a_waiting_collector_costs_a_48_byte_slot() {
    // 81,000 slots at 10,000 accounts: each 8 bytes is 0.65 MB. The durations are
    // shared (an index into the driver's cadences), not held per slot; the flags
    // share a word with the group index.
    let size = std::mem::size_of::<Option<Slot>>();
    assert!(size <= 48, "{size}");
}

#[test]
fn a_slots_flags_leave_its_group_index_alone() {
    let last = Flags::GROUPS - 1;
    let mut f = Flags::new(last);
    assert!(f.has(Flags::FIRST) && !f.has(Flags::EXPORTED) && !f.has(Flags::STALE_QUEUED));
    f.set(Flags::EXPORTED, true);
    f.set(Flags::STALE_QUEUED, true);
    assert!(f.take(Flags::FIRST) && !f.take(Flags::FIRST));
    assert!(f.has(Flags::EXPORTED) && f.has(Flags::STALE_QUEUED));
    assert_eq!(f.group(), last as usize);
    f.set(Flags::EXPORTED, false);
    assert!(!f.has(Flags::EXPORTED) && f.has(Flags::STALE_QUEUED));
    assert_eq!(Flags::new(0).group(), 0);
}

#[test]
fn an_accounts_group_is_48_bytes() {
    // A group for each of 10,000 accounts; its members are a boxed slice, with no
    // spare capacity.
    let size = std::mem::size_of::<Group>();
    assert!(size <= 48, "{size}");
}

#[tokio::test(start_paused = true)]
async fn a_removed_collectors_timers_never_fire_for_the_next_one_at_its_index() {
    let w = World::new();
    let gone = w.fake("fake", "gone", every(1), |_| Step::Work);
    let s = Scheduler::start(vec![gone], &w.shared, 4);
    // Waiting, with its next attempt and its staleness deadline queued.
    until("gone waits for its next attempt", || {
        let r = w.row("gone", "fake");
        r.state == crate::status::State::Ok && r.next_attempt > r.last_attempt
    })
    .await;
    let added = w.fake("fake", "new", every(1), |_| Step::Work);
    s.apply(Change {
        remove: [("test", "gone".to_string())].into(),
        add: vec![added],
        max_concurrent: 4,
    })
    .await;
    let t0 = Instant::now();
    until("10 s", || t0.elapsed() >= Duration::from_secs(10)).await;
    // Once a second (plus a jitter of at most 0.1 s), not also at `gone`'s times.
    let n = w.starts("fake", "new");
    assert!((9..=11).contains(&n), "{n} attempts in 10 s");
    assert_eq!(w.starts("fake", "gone"), 1);
    s.stop().await;
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
    collectors.push(w.fake("fake", "p", every(1), first_then(Step::Panic, Step::Work)));
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
    let c = w.fake(
        "fake",
        "a",
        every(1),
        first_then(Step::Work, Step::RateLimited(3600)),
    );
    let s = Scheduler::start(vec![c], &w.shared, 4);
    until("first success", || w.exported("a")).await;
    let success = Instant::now();
    until("the 429", || w.errors("a", "rate_limited") == 1.0).await;
    withdrawn_at_max_staleness(&w, "a", success).await;
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
    let c = w.fake("fake", "a", every(1), first_then(Step::Work, Step::Hang));
    let s = Scheduler::start(vec![c], &w.shared, 4);
    until("first success", || w.exported("a")).await;
    let success = Instant::now();
    withdrawn_at_max_staleness(&w, "a", success).await;
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn values_go_at_max_staleness_when_no_request_slot_is_free() {
    let w = World::new();
    // One slot; `b` takes it for good once `a` has succeeded.
    let a = w.fake("fake", "a", every(1), |_| Step::Work);
    let b = w.fake("fake", "b", every(1), first_then(Step::Work, Step::Hang));
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
        w.errors_of("one", "acct", "rate_limited") == 1.0
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
    let gone = w.fake("fake", "gone", every(1), first_then(Step::Work, Step::Hang));
    let s = Scheduler::start(vec![keep, gone], &w.shared, 4);
    until("both exported", || w.exported("keep") && w.exported("gone")).await;
    until("ready", || w.shared.readiness.is_ready()).await;
    // `gone` is in flight (hanging) when it is removed.
    until("gone's second attempt", || {
        w.row("gone", "fake").last_attempt.is_some() && w.row("gone", "fake").next_attempt.is_some()
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
async fn a_changed_account_starts_without_the_hold_of_the_one_it_replaces() {
    let w = World::new();
    let held = w.fake("one", "acct", every(1), |_| Step::RateLimited(3600));
    let sibling = w.fake("two", "acct", every(1), |_| Step::Work);
    let s = Scheduler::start(vec![held, sibling], &w.shared, 4);
    until("the 429", || {
        w.errors_of("one", "acct", "rate_limited") == 1.0
    })
    .await;
    until("the sibling is held", || {
        w.row("acct", "two")
            .next_attempt_note
            .is_some_and(|n| n.contains("Retry-After"))
    })
    .await;
    for round in 0..3 {
        let t0 = Instant::now();
        let (before, sibling) = (w.starts("one", "acct"), w.starts("two", "acct"));
        s.apply(Change {
            remove: [("test", "acct".to_string())].into(),
            add: vec![
                w.fake("one", "acct", every(1), |_| Step::Work),
                w.fake("two", "acct", every(1), |_| Step::Work),
            ],
            max_concurrent: 4,
        })
        .await;
        until("both polled again", || {
            w.starts("one", "acct") >= before + 2 && w.starts("two", "acct") >= sibling + 2
        })
        .await;
        assert!(t0.elapsed() < Duration::from_secs(3), "round {round}");
        assert_eq!(w.row("acct", "two").next_attempt_note, None);
    }
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_attempt_does_not_keep_values_past_max_staleness() {
    let w = World::new();
    let c = w.fake("fake", "a", every(1), first_then(Step::Work, Step::Fail));
    let s = Scheduler::start(vec![c], &w.shared, 4);
    until("first success", || w.exported("a")).await;
    until("a failure", || w.errors("a", "timeout") >= 1.0).await;
    assert!(w.exported("a"), "kept after a transient failure");
    until("withdrawn", || !w.exported("a")).await;
    s.stop().await;
}
