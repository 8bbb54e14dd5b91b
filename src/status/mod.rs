//! The operator's status page: what every (account, collector) task did last, why it
//! failed, and when it runs next. The scheduler writes one row per task after each
//! attempt (a short lock, never on the scrape path); `/status` reads a snapshot.
//!
//! Nothing secret is stored here: error messages are redacted ([`crate::redact`])
//! before they reach a row.

pub mod page;
mod row;

pub use row::{AccountKey, TaskRow};
use row::{AccountRows, Row};

use std::collections::{BTreeMap, HashMap};
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
            // Status 0: no request was made; the exporter's own message about the
            // secret's source (a file or variable name, never a value).
            CollectError::Unauthorized { status: 0, detail } => {
                (None, None, None, redact::redact_known(detail, secrets))
            }
            CollectError::Unauthorized { status, detail } => {
                (Some(*status), None, None, clean(detail))
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
            CollectError::Timeout
            | CollectError::Connect(_)
            | CollectError::Decode(_)
            | CollectError::Internal(_) => (None, None, None, clean(&e.to_string())),
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
pub struct StatusView {
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

/// The shared state table: one row per task, plus the page header. Cheap to read.
///
/// At 10,000 accounts there are 81,000 rows, so a row is kept small: the account name
/// is stored once (the key of the account's rows), a collector name once for the
/// board (a row holds its index), an account's rows share one allocation and one
/// lock, the rarely-set parts are boxed and "never" is a NaN timestamp.
/// [`TaskStatus`], the view the page serializes, is built from it at snapshot time.
pub struct StatusBoard {
    started: SystemTime,
    header: Mutex<Header>,
    table: RwLock<Table>,
}

#[derive(Default)]
struct Table {
    accounts: BTreeMap<Box<str>, Arc<AccountRows>>,
    /// Every collector name registered; rows hold their index. A handful, never
    /// forgotten.
    collectors: Vec<&'static str>,
    /// Every interval registered (seconds, as shown), each once; rows hold their
    /// index. Few (an account's collectors share one), never forgotten; past
    /// [`MAX_INTERVALS`] a row keeps its own.
    intervals: Vec<f64>,
    /// The index of each interval in `intervals`, by its bits.
    interval_ids: HashMap<u64, u16>,
}

/// The most intervals [`Table::intervals`] holds (a row's index is a `u16`).
const MAX_INTERVALS: usize = u16::MAX as usize + 1;

impl Table {
    /// The index of `seconds` in `intervals`, added if new; `None` when it is new and
    /// the table is full.
    fn interval_id(&mut self, seconds: f64) -> Option<u16> {
        if let Some(&id) = self.interval_ids.get(&seconds.to_bits()) {
            return Some(id);
        }
        if self.intervals.len() == MAX_INTERVALS {
            return None;
        }
        let id = u16::try_from(self.intervals.len()).expect("fewer than MAX_INTERVALS");
        self.intervals.push(seconds);
        self.interval_ids.insert(seconds.to_bits(), id);
        Some(id)
    }
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
            table: RwLock::new(Table::default()),
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
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let id = match table.collectors.iter().position(|c| *c == collector) {
            Some(id) => id,
            None => {
                table.collectors.push(collector);
                table.collectors.len() - 1
            }
        };
        // The names are the code's own: a handful.
        let id = u8::try_from(id).expect("fewer than 256 collector names");
        if !table.accounts.contains_key(account) {
            table.accounts.insert(account.into(), Arc::default());
        }
        let rows = table.accounts[account].clone();
        let index = {
            let mut list = rows.lock();
            match list.iter().position(|r| r.collector == id) {
                Some(i) => {
                    if !list[i].live() {
                        list[i] = Row::new(id);
                    }
                    i
                }
                None => {
                    // Rows are added once per task, not per attempt: an exact fit costs
                    // one reallocation each and wastes nothing.
                    list.reserve_exact(1);
                    list.push(Row::new(id));
                    list.len() - 1
                }
            }
        };
        let row = TaskRow {
            rows,
            index: u32::try_from(index).expect("fewer than 2^32 collectors an account"),
        };
        let seconds = interval.as_secs_f64();
        let interval = table.interval_id(seconds);
        row.update(|r| r.set_interval(interval, seconds));
        row
    }

    /// The key of `account` while it has a task (see [`TaskRow::account_key`]).
    pub fn account_key(&self, account: &str) -> Option<AccountKey> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.accounts.get(account).map(AccountKey::of)
    }

    /// Forget a task (its account or collector left the configuration).
    pub fn remove(&self, collector: &str, account: &str) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let Some(id) = table.collectors.iter().position(|c| *c == collector) else {
            return;
        };
        let Some(rows) = table.accounts.get(account) else {
            return;
        };
        let empty = {
            let mut list = rows.lock();
            if let Some(r) = list.iter_mut().find(|r| usize::from(r.collector) == id) {
                // The slot stays for the account's other rows' indices; what the task
                // had (its error, its note) goes.
                r.kill();
            }
            list.iter().all(|r| !r.live())
        };
        if empty {
            table.accounts.remove(account);
        }
    }

    /// Everything, now.
    pub fn snapshot(&self) -> StatusView {
        let now = SystemTime::now();
        let tasks = {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            let mut tasks = Vec::with_capacity(
                table
                    .accounts
                    .values()
                    .map(|rows| rows.lock().iter().filter(|r| r.live()).count())
                    .sum(),
            );
            for (account, rows) in &table.accounts {
                let first = tasks.len();
                for r in rows.lock().iter().filter(|r| r.live()) {
                    let collector = table.collectors[usize::from(r.collector)];
                    tasks.push(r.view(account, collector, &table.intervals));
                }
                // An account's rows are in the order they were registered; the page
                // lists them by collector.
                tasks[first..].sort_unstable_by_key(|t: &TaskStatus| t.collector);
            }
            tasks
        };
        let h = self.header();
        StatusView {
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

/// Unix seconds of `t`.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn task(board: &StatusBoard, account: &str, collector: &str) -> TaskStatus {
        board
            .snapshot()
            .tasks
            .into_iter()
            .find(|t| t.account == account && t.collector == collector)
            .unwrap()
    }

    fn json(t: &TaskStatus) -> String {
        serde_json::to_string(t).unwrap()
    }

    #[test]
    fn status_rows_are_small_and_cheap_to_share() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<TaskRow>();
        assert_eq!(std::mem::size_of::<TaskRow>(), 16);
        // 81,000 rows at 10,000 accounts: each 8 bytes is 0.65 MB.
        let size = std::mem::size_of::<Row>();
        assert!(size <= 48, "{size}");
        // A failing row's box: at most 136 bytes, a 144-byte allocation.
        let size = std::mem::size_of::<row::Rare>();
        assert!(size <= 136, "{size}");
    }

    #[test]
    fn an_accounts_rows_share_one_allocation_and_removed_slots_are_reused() {
        let board = StatusBoard::new("x");
        let rows: Vec<TaskRow> = ["c", "a", "b"]
            .into_iter()
            .map(|c| board.register(c, "acct", MIN))
            .collect();
        assert!(rows.iter().all(|r| Arc::ptr_eq(&r.rows, &rows[0].rows)));
        assert_eq!(rows[0].rows.lock().len(), 3);
        let other = board.register("a", "other", MIN);
        assert!(!Arc::ptr_eq(&other.rows, &rows[0].rows));

        // A removed task's slot stays (the others' indices hold); it comes back
        // afresh in the same slot, and a write through its old handle shows nowhere
        // while it is gone.
        rows[2].succeeded(SystemTime::now(), MIN, Some(3));
        board.remove("b", "acct");
        rows[2].succeeded(SystemTime::now(), MIN, Some(4));
        let names = |b: &StatusBoard| -> Vec<&'static str> {
            b.snapshot()
                .tasks
                .iter()
                .filter(|t| t.account == "acct")
                .map(|t| t.collector)
                .collect()
        };
        assert_eq!(names(&board), ["a", "c"]);
        rows[0].failed(
            SystemTime::now(),
            MIN,
            ErrorInfo::from_error(&CollectError::Timeout, &[], SystemTime::now()),
            false,
            None,
        );
        assert_eq!(task(&board, "acct", "c").state, State::Failing);
        let back = board.register("b", "acct", MIN);
        assert_eq!((back.index, rows[0].rows.lock().len()), (2, 3));
        assert_eq!(task(&board, "acct", "b").state, State::NotYetRun);
        assert_eq!(names(&board), ["a", "b", "c"]);
        // The collector names are stored once for the board.
        assert_eq!(board.table.read().unwrap().collectors, ["c", "a", "b"]);
        // One key for the account's tasks, another for another account.
        assert!(rows[0].account_key() == back.account_key());
        assert!(board.account_key("acct") == Some(back.account_key()));
        assert!(other.account_key() != back.account_key());
        assert!(board.account_key("nobody").is_none());
    }

    #[test]
    fn status_stored_rows_serialize_as_before() {
        let board = StatusBoard::new("x");
        let row = board.register("acedata_balance", "main", MIN);
        assert_eq!(
            json(&task(&board, "main", "acedata_balance")),
            r#"{"account":"main","collector":"acedata_balance","state":"not_yet_run","last_success":null,"last_attempt":null,"last_duration_seconds":null,"next_attempt":null,"next_attempt_note":null,"interval_seconds":60.0,"consecutive_failures":0,"last_error":null,"series":null}"#
        );

        let t0 = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        row.scheduled(t0, None);
        row.succeeded(t0, Duration::from_millis(1500), Some(7));
        assert_eq!(
            json(&task(&board, "main", "acedata_balance")),
            r#"{"account":"main","collector":"acedata_balance","state":"ok","last_success":1700000001.75,"last_attempt":1700000000.25,"last_duration_seconds":1.5,"next_attempt":1700000000.25,"next_attempt_note":null,"interval_seconds":60.0,"consecutive_failures":0,"last_error":null,"series":7}"#
        );
        assert!(row.rows.lock()[row.index as usize].rare.is_none());

        let e = CollectError::Api {
            code: "invalid_client".into(),
            detail: "Invalid client_id or client_secret".into(),
            request_id: "abc".into(),
        };
        for _ in 0..2 {
            row.failed(t0, MIN, ErrorInfo::from_error(&e, &[], t0), true, None);
        }
        row.scheduled(t0 + MIN, Some("later than usual".into()));
        assert_eq!(
            json(&task(&board, "main", "acedata_balance")),
            r#"{"account":"main","collector":"acedata_balance","state":"stale","last_success":1700000001.75,"last_attempt":1700000000.25,"last_duration_seconds":60.0,"next_attempt":1700000060.25,"next_attempt_note":"later than usual","interval_seconds":60.0,"consecutive_failures":2,"last_error":{"reason":"api_error","http_status":null,"code":"invalid_client","request_id":"abc","message":"Invalid client_id or client_secret","at":1700000000.25},"series":null}"#
        );

        // The error outlives the recovery and the note; the box goes with the last of
        // them only.
        row.succeeded(t0, MIN, Some(0));
        row.scheduled(t0, None);
        let t = task(&board, "main", "acedata_balance");
        assert_eq!(t.next_attempt_note, None);
        assert_eq!(t.consecutive_failures, 0);
        assert_eq!(t.series, Some(0));
        assert_eq!(
            t.last_error.unwrap().code.as_deref(),
            Some("invalid_client")
        );

        let other = board.register("yeastar_balance", "partner", MIN);
        other.scheduled(t0, Some("note".into()));
        other.scheduled(t0, None);
        assert!(other.rows.lock()[other.index as usize].rare.is_none());
    }

    #[test]
    fn status_intervals_are_stored_once_and_past_a_full_table_by_the_row() {
        let board = StatusBoard::new("x");
        board.register("a", "acct-1", MIN);
        board.register("b", "acct-1", MIN);
        board.register("a", "acct-2", MIN);
        assert_eq!(board.table.read().unwrap().intervals, [60.0]);
        {
            let mut table = board.table.write().unwrap();
            for i in 1..MAX_INTERVALS {
                assert!(table.interval_id(i as f64 + 0.5).is_some());
            }
            assert_eq!(table.interval_id(0.25), None, "full");
        }
        // A new interval is kept by the row, and shown as exactly as any other.
        let odd = Duration::from_nanos(100_000_001);
        let row = board.register("c", "acct-1", odd);
        let t = task(&board, "acct-1", "c");
        assert_eq!(t.interval_seconds, odd.as_secs_f64());
        assert!(json(&t).contains(r#""interval_seconds":0.100000001,"#));
        assert_eq!(board.table.read().unwrap().intervals.len(), MAX_INTERVALS);
        // Back to an interval of the table: the row gives its box back.
        board.register("c", "acct-1", Duration::from_millis(2500));
        assert_eq!(task(&board, "acct-1", "c").interval_seconds, 2.5);
        assert!(row.rows.lock()[row.index as usize].rare.is_none());
        assert_eq!(task(&board, "acct-2", "a").interval_seconds, 60.0);
    }

    #[test]
    fn status_rows_keep_their_order_history_and_go_away_one_by_one() {
        let board = StatusBoard::new("x");
        for (c, a) in [
            ("b", "acct-2"),
            ("a", "acct-2"),
            ("b", "acct-1"),
            ("a", "acct-1"),
        ] {
            board.register(c, a, MIN);
        }
        let keys = |b: &StatusBoard| -> Vec<String> {
            let s = b.snapshot();
            s.tasks
                .iter()
                .map(|t| format!("{}/{}", t.account, t.collector))
                .collect()
        };
        assert_eq!(
            keys(&board),
            ["acct-1/a", "acct-1/b", "acct-2/a", "acct-2/b"]
        );

        // Registering again (a reload) keeps the row and takes the new interval.
        let row = board.register("a", "acct-1", MIN);
        row.succeeded(SystemTime::now(), MIN, None);
        let again = board.register("a", "acct-1", 2 * MIN);
        assert!(Arc::ptr_eq(&row.rows, &again.rows) && row.index == again.index);
        let t = task(&board, "acct-1", "a");
        assert_eq!((t.state, t.interval_seconds), (State::Ok, 120.0));

        board.remove("a", "acct-1");
        board.remove("a", "nobody");
        board.remove("c", "acct-2");
        assert_eq!(keys(&board), ["acct-1/b", "acct-2/a", "acct-2/b"]);
        board.remove("b", "acct-1");
        assert!(!board.table.read().unwrap().accounts.contains_key("acct-1"));
        // A row registered after its removal starts afresh.
        board.register("a", "acct-1", MIN);
        assert_eq!(task(&board, "acct-1", "a").state, State::NotYetRun);
    }
}
