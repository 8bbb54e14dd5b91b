//! One task's row of the status table as stored: small, since at 10,000 accounts
//! there are 81,000 of them (no names and no interval, only indices into the board's
//! tables; "never" as NaN; the rarely-set parts boxed),
//! the rows of one account, and the handle a task's scheduler writes its row through.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{unix, ErrorInfo, State, TaskStatus};

/// "Never" in a stored timestamp or duration.
const NONE: f64 = f64::NAN;

/// `None` for [`NONE`].
fn some(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// No series count in [`Row::series`].
const NO_SERIES: u32 = u32::MAX;

/// One task's row as stored (see [`TaskStatus`] for the meaning of the fields).
pub(super) struct Row {
    /// Unix seconds, or [`NONE`].
    last_success: f64,
    /// Unix seconds, or [`NONE`].
    last_attempt: f64,
    /// Seconds, or [`NONE`].
    last_duration_seconds: f64,
    /// Unix seconds, or [`NONE`].
    next_attempt: f64,
    /// The note, the last error and the failure count; `None` for a task that never
    /// failed.
    pub(super) rare: Option<Box<Rare>>,
    /// [`NO_SERIES`] when unknown; a count beyond `u32::MAX - 1` (more series than
    /// fit in memory) would show as that.
    series: u32,
    /// The task's interval, as an index into the board's intervals (unless the row's
    /// [`Rare`] holds it: the board's table was full).
    interval: u16,
    /// The task's collector, as an index into the board's collector names.
    pub(super) collector: u8,
    /// `None` once the task was removed: its slot stays (the handles of the account's
    /// other tasks hold indices) and is reused if the task comes back.
    state: Option<State>,
}

/// The parts of a row that most rows never have. Every failing row holds one
/// (81,000 in an outage at 10,000 accounts): 136 bytes, one 144-byte allocation, with
/// the failure count that a row that never failed does without.
pub(super) struct Rare {
    next_attempt_note: Option<Box<str>>,
    last_error: Option<ErrorInfo>,
    /// Saturates (at one attempt a second, after 136 years). Not 0 only with a
    /// `last_error`, so only in a row that has this box.
    consecutive_failures: u32,
    /// Seconds when the board's table of intervals is full, else [`NONE`].
    interval_seconds: f64,
}

impl Default for Rare {
    fn default() -> Rare {
        Rare {
            next_attempt_note: None,
            last_error: None,
            consecutive_failures: 0,
            interval_seconds: NONE,
        }
    }
}

impl Row {
    /// A live row of `collector`, not yet run.
    /// Its interval is set by [`Row::set_interval`].
    pub(super) fn new(collector: u8) -> Row {
        Row {
            last_success: NONE,
            last_attempt: NONE,
            last_duration_seconds: NONE,
            next_attempt: NONE,
            rare: None,
            series: NO_SERIES,
            interval: 0,
            collector,
            state: Some(State::NotYetRun),
        }
    }

    /// The task was removed (see [`Row::state`]).
    pub(super) fn kill(&mut self) {
        *self = Row {
            state: None,
            ..Row::new(self.collector)
        };
    }

    pub(super) fn live(&self) -> bool {
        self.state.is_some()
    }

    /// The task's interval: `index` into the board's intervals, or `None` when that
    /// table is full and the row keeps `seconds` itself.
    pub(super) fn set_interval(&mut self, index: Option<u16>, seconds: f64) {
        match index {
            Some(i) => {
                self.interval = i;
                if let Some(rare) = &mut self.rare {
                    rare.interval_seconds = NONE;
                    self.tidy();
                }
            }
            None => self.rare().interval_seconds = seconds,
        }
    }

    fn set_series(&mut self, series: Option<usize>) {
        self.series = match series {
            None => NO_SERIES,
            Some(n) => u32::try_from(n).unwrap_or(NO_SERIES - 1).min(NO_SERIES - 1),
        };
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Give the box back once it holds nothing.
    fn tidy(&mut self) {
        if self.rare.as_ref().is_some_and(|r| {
            r.next_attempt_note.is_none()
                && r.last_error.is_none()
                && r.consecutive_failures == 0
                && r.interval_seconds.is_nan()
        }) {
            self.rare = None;
        }
    }

    /// What the page shows of this (live) row; `intervals` are the board's.
    pub(super) fn view(
        &self,
        account: &str,
        collector: &'static str,
        intervals: &[f64],
    ) -> TaskStatus {
        let rare = self.rare.as_deref();
        TaskStatus {
            account: account.to_string(),
            collector,
            state: self.state.unwrap_or(State::NotYetRun),
            last_success: some(self.last_success),
            last_attempt: some(self.last_attempt),
            last_duration_seconds: some(self.last_duration_seconds),
            next_attempt: some(self.next_attempt),
            next_attempt_note: rare
                .and_then(|r| r.next_attempt_note.as_deref())
                .map(str::to_string),
            interval_seconds: rare
                .and_then(|r| some(r.interval_seconds))
                .unwrap_or_else(|| intervals[usize::from(self.interval)]),
            consecutive_failures: rare.map_or(0, |r| r.consecutive_failures.into()),
            last_error: rare.and_then(|r| r.last_error.clone()),
            series: (self.series != NO_SERIES).then_some(self.series as usize),
        }
    }
}

/// The rows of one account, in the order their tasks were first registered: one
/// allocation for all of them and one for the lock and the count, instead of one per
/// row with a lock and counts of its own. A row is never moved or dropped while the
/// account has a live one: [`TaskRow`]s hold its index.
#[derive(Default)]
pub(super) struct AccountRows(Mutex<Vec<Row>>);

impl AccountRows {
    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<Row>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An account of the board, told apart by identity rather than by name: a key that
/// copies no name. Held, it keeps the account's rows allocated, so no other account
/// can have the same key meanwhile.
#[derive(Clone)]
pub struct AccountKey(Arc<AccountRows>);

impl PartialEq for AccountKey {
    fn eq(&self, other: &AccountKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AccountKey {}

impl Hash for AccountKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

impl AccountKey {
    pub(super) fn of(rows: &Arc<AccountRows>) -> AccountKey {
        AccountKey(rows.clone())
    }
}

/// A task's own row, written by its scheduler task: its account's rows and its index
/// there.
#[derive(Clone)]
pub struct TaskRow {
    pub(super) rows: Arc<AccountRows>,
    pub(super) index: u32,
}

impl TaskRow {
    /// The key of the task's account (the same for all the account's tasks while it
    /// has one).
    pub fn account_key(&self) -> AccountKey {
        AccountKey::of(&self.rows)
    }

    /// Write the row, unless its task was removed: a handle may outlive the task (an
    /// attempt in flight), and its writes show nowhere.
    pub(super) fn update(&self, f: impl FnOnce(&mut Row)) {
        let mut rows = self.rows.lock();
        let row = &mut rows[self.index as usize];
        if row.live() {
            f(row);
        }
    }

    /// The next attempt is due at `at` (`note` says why when it is later than usual).
    pub fn scheduled(&self, at: SystemTime, note: Option<String>) {
        self.update(|r| {
            r.next_attempt = unix(at);
            match note {
                Some(n) => r.rare().next_attempt_note = Some(n.into_boxed_str()),
                None => {
                    if let Some(rare) = &mut r.rare {
                        rare.next_attempt_note = None;
                        r.tidy();
                    }
                }
            }
        });
    }

    /// Upstream asked this task's account to wait: the next attempt is not before
    /// `at`, and `note` says why.
    pub fn held(&self, at: SystemTime, note: String) {
        self.update(|r| {
            let at = unix(at);
            if r.next_attempt.is_nan() || r.next_attempt < at {
                r.next_attempt = at;
            }
            r.rare().next_attempt_note = Some(note.into_boxed_str());
        });
    }

    /// The series were removed: `max_staleness` passed since the last success.
    pub fn went_stale(&self, series: Option<usize>) {
        self.update(|r| {
            r.state = Some(State::Stale);
            r.set_series(series);
        });
    }

    /// An attempt that started at `started` and took `duration` succeeded.
    pub fn succeeded(&self, started: SystemTime, duration: Duration, series: Option<usize>) {
        self.update(|r| {
            r.state = Some(State::Ok);
            r.last_attempt = unix(started);
            r.last_duration_seconds = duration.as_secs_f64();
            r.last_success = unix(started + duration);
            if let Some(rare) = &mut r.rare {
                rare.consecutive_failures = 0;
            }
            r.set_series(series);
        });
    }

    /// An attempt failed with `error`; `stale` when the series were removed.
    pub fn failed(
        &self,
        started: SystemTime,
        duration: Duration,
        mut error: ErrorInfo,
        stale: bool,
        series: Option<usize>,
    ) {
        // Kept until the next failure, on every failing row at once in an outage:
        // no spare capacity.
        error.message.shrink_to_fit();
        for s in [&mut error.code, &mut error.request_id]
            .into_iter()
            .flatten()
        {
            s.shrink_to_fit();
        }
        self.update(|r| {
            r.state = Some(if stale { State::Stale } else { State::Failing });
            r.last_attempt = unix(started);
            r.last_duration_seconds = duration.as_secs_f64();
            let rare = r.rare();
            rare.consecutive_failures = rare.consecutive_failures.saturating_add(1);
            rare.last_error = Some(error);
            r.set_series(series);
        });
    }
}
