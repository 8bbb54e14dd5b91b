//! The operator's status page: what every (account, collector) task did last, why it
//! failed, and when it runs next. The scheduler writes one row per task after each
//! attempt (a short lock, never on the scrape path); `/status` reads a snapshot.
//!
//! Nothing secret is stored here: error messages are redacted ([`crate::redact`])
//! before they reach a row.

pub mod page;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde::Serialize;

use crate::collector::CollectError;
use crate::redact;

/// What a task's last attempt says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The first attempt has not finished yet.
    NotYetRun,
    /// The last attempt succeeded.
    Ok,
    /// The last attempt failed; the last good values (if any) are still exported.
    Failing,
    /// Failing for longer than `max_staleness`: the series were removed.
    Stale,
}

impl State {
    /// Every state, in display order.
    pub const ALL: [State; 4] = [State::Failing, State::Stale, State::NotYetRun, State::Ok];

    /// The name used in `?state=` and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotYetRun => "not_yet_run",
            State::Ok => "ok",
            State::Failing => "failing",
            State::Stale => "stale",
        }
    }

    /// The name shown on the page.
    pub fn label(self) -> &'static str {
        match self {
            State::NotYetRun => "not yet run",
            State::Ok => "ok",
            State::Failing => "failing",
            State::Stale => "stale",
        }
    }

    /// Parse a `?state=` value (`not_yet_run`, `not-yet-run` and `not yet run` all work).
    pub fn parse(s: &str) -> Option<State> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        State::ALL.into_iter().find(|st| st.as_str() == norm)
    }
}

/// The last error of a task, redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorInfo {
    /// The `reason` label (`unauthorized`, `api_error`, …).
    pub reason: &'static str,
    /// The HTTP status upstream answered, when there was one.
    pub http_status: Option<u16>,
    /// The vendor's own error code (Yeastar `code`).
    pub code: Option<String>,
    /// The vendor's request id (Yeastar `requestId`).
    pub request_id: Option<String>,
    /// What upstream said, or what went wrong locally; secrets masked, cut short.
    pub message: String,
    /// When it happened (Unix seconds).
    pub at: f64,
}

impl ErrorInfo {
    /// The parts of `e`, each redacted with `secrets`.
    pub fn from_error(e: &CollectError, secrets: &[SecretString], at: SystemTime) -> ErrorInfo {
        let clean = |s: &str| redact::redact(s, secrets);
        let (http_status, code, request_id, message) = match e {
            CollectError::Unauthorized { status, detail } => {
                ((*status != 0).then_some(*status), None, None, clean(detail))
            }
            CollectError::HttpStatus { status, detail } => {
                (Some(*status), None, None, clean(detail))
            }
            CollectError::RateLimited { .. } => (Some(429), None, None, clean(&e.to_string())),
            CollectError::Api {
                code,
                detail,
                request_id,
            } => (
                None,
                Some(clean(code)),
                (!request_id.is_empty()).then(|| clean(request_id)),
                clean(detail),
            ),
            CollectError::Timeout | CollectError::Connect(_) | CollectError::Decode(_) => {
                (None, None, None, clean(&e.to_string()))
            }
        };
        ErrorInfo {
            reason: e.reason(),
            http_status,
            code,
            request_id,
            message,
            at: unix(at),
        }
    }

    /// One line for logs: reason, status, code, message, request id.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if let Some(st) = self.http_status {
            s.push_str(&format!("HTTP {st}; "));
        }
        if let Some(c) = &self.code {
            s.push_str(&format!("code {c}; "));
        }
        s.push_str(&self.message);
        if let Some(r) = &self.request_id {
            s.push_str(&format!(" (requestId {r})"));
        }
        s
    }
}

/// One (account, collector) task as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    pub account: String,
    pub collector: &'static str,
    pub state: State,
    /// Unix seconds of the last success.
    pub last_success: Option<f64>,
    /// Unix seconds of the start of the last attempt.
    pub last_attempt: Option<f64>,
    /// Duration of the last attempt in seconds.
    pub last_duration_seconds: Option<f64>,
    /// Unix seconds at which the next attempt is due.
    pub next_attempt: Option<f64>,
    /// Why the next attempt is later than one interval after the last, if it is.
    pub next_attempt_note: Option<String>,
    /// Seconds between two attempts.
    pub interval_seconds: f64,
    /// Attempts that failed since the last success.
    pub consecutive_failures: u64,
    /// The last error, even when a success followed it (then `state` is `ok`).
    pub last_error: Option<ErrorInfo>,
    /// Series the collector exports now.
    pub series: Option<usize>,
}

/// The shard this replica serves, when accounts are sharded over replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub ordinal: u64,
    pub total: u64,
}

/// The outcome of the last configuration reload.
#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    /// Unix seconds.
    pub at: f64,
    pub ok: bool,
    /// The problems of a rejected configuration.
    pub problems: Option<String>,
}

/// Everything the page shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    /// Unix seconds now (the page's reference time).
    pub now: f64,
    pub started: f64,
    pub uptime_seconds: f64,
    /// The configuration file (or a note for a built-in configuration).
    pub config: String,
    /// Unix seconds at which the running configuration was loaded.
    pub config_loaded: f64,
    pub last_reload: Option<Reload>,
    pub shard: Option<Shard>,
    pub tasks: Vec<TaskStatus>,
}

struct Header {
    config: String,
    config_loaded: SystemTime,
    last_reload: Option<Reload>,
    shard: Option<Shard>,
}

type Key = (String, &'static str);

/// The shared state table: one row per task, plus the page header. Cheap to read.
pub struct StatusBoard {
    started: SystemTime,
    header: Mutex<Header>,
    rows: RwLock<BTreeMap<Key, Arc<Mutex<TaskStatus>>>>,
}

impl StatusBoard {
    /// An empty board; `config` names where the configuration comes from.
    pub fn new(config: impl Into<String>) -> Arc<StatusBoard> {
        let now = SystemTime::now();
        Arc::new(StatusBoard {
            started: now,
            header: Mutex::new(Header {
                config: config.into(),
                config_loaded: now,
                last_reload: None,
                shard: None,
            }),
            rows: RwLock::new(BTreeMap::new()),
        })
    }

    fn header(&self) -> std::sync::MutexGuard<'_, Header> {
        self.header.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record the shard this replica serves (shown in the header).
    pub fn set_shard(&self, ordinal: u64, total: u64) {
        self.header().shard = (total > 1).then_some(Shard { ordinal, total });
    }

    /// Record a reload: accepted, or rejected with its problems.
    pub fn reloaded(&self, result: Result<(), String>) {
        let now = SystemTime::now();
        let mut h = self.header();
        if result.is_ok() {
            h.config_loaded = now;
        }
        h.last_reload = Some(Reload {
            at: unix(now),
            ok: result.is_ok(),
            problems: result.err(),
        });
    }

    /// The row of a task, created as "not yet run" when new; a task that survives a
    /// reload keeps its history.
    pub fn register(&self, collector: &'static str, account: &str, interval: Duration) -> TaskRow {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let row = rows
            .entry((account.to_string(), collector))
            .or_insert_with(|| {
                Arc::new(Mutex::new(TaskStatus {
                    account: account.to_string(),
                    collector,
                    state: State::NotYetRun,
                    last_success: None,
                    last_attempt: None,
                    last_duration_seconds: None,
                    next_attempt: None,
                    next_attempt_note: None,
                    interval_seconds: interval.as_secs_f64(),
                    consecutive_failures: 0,
                    last_error: None,
                    series: None,
                }))
            })
            .clone();
        let row = TaskRow(row);
        row.update(|t| t.interval_seconds = interval.as_secs_f64());
        row
    }

    /// Forget a task (its account or collector left the configuration).
    pub fn remove(&self, collector: &str, account: &str) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        rows.retain(|(a, c), _| !(a == account && *c == collector));
    }

    /// Everything, now.
    pub fn snapshot(&self) -> Snapshot {
        let now = SystemTime::now();
        let tasks = {
            let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
            rows.values()
                .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .collect()
        };
        let h = self.header();
        Snapshot {
            version: crate::VERSION_LINE,
            now: unix(now),
            started: unix(self.started),
            uptime_seconds: now
                .duration_since(self.started)
                .unwrap_or_default()
                .as_secs_f64(),
            config: h.config.clone(),
            config_loaded: unix(h.config_loaded),
            last_reload: h.last_reload.clone(),
            shard: h.shard,
            tasks,
        }
    }
}

/// A task's own row, written by its scheduler task.
#[derive(Clone)]
pub struct TaskRow(Arc<Mutex<TaskStatus>>);

impl TaskRow {
    fn update(&self, f: impl FnOnce(&mut TaskStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The next attempt is due at `at` (`note` says why when it is later than usual).
    pub fn scheduled(&self, at: SystemTime, note: Option<String>) {
        self.update(|t| {
            t.next_attempt = Some(unix(at));
            t.next_attempt_note = note;
        });
    }

    /// An attempt that started at `started` and took `duration` succeeded.
    pub fn succeeded(&self, started: SystemTime, duration: Duration, series: Option<usize>) {
        self.update(|t| {
            t.state = State::Ok;
            t.last_attempt = Some(unix(started));
            t.last_duration_seconds = Some(duration.as_secs_f64());
            t.last_success = Some(unix(started + duration));
            t.consecutive_failures = 0;
            t.series = series;
        });
    }

    /// An attempt failed with `error`; `stale` when the series were removed.
    pub fn failed(
        &self,
        started: SystemTime,
        duration: Duration,
        error: ErrorInfo,
        stale: bool,
        series: Option<usize>,
    ) {
        self.update(|t| {
            t.state = if stale { State::Stale } else { State::Failing };
            t.last_attempt = Some(unix(started));
            t.last_duration_seconds = Some(duration.as_secs_f64());
            t.consecutive_failures += 1;
            t.last_error = Some(error);
            t.series = series;
        });
    }
}

/// Unix seconds of `t`.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
