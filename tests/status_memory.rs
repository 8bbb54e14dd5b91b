//! What the status page's table costs per row: 10,000 accounts × 8 collectors
//! (80,000 rows, the 10,000-account deployment), counted by a global allocator in this
//! test binary of its own. Two figures: the bytes asked for, and the bytes glibc's
//! malloc takes for them (its chunks carry an 8-byte header, are 16-byte aligned and
//! never smaller than 32 bytes), which is what the process's heap grows by.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use balance_exporter::collector::CollectError;
use balance_exporter::status::{ErrorInfo, StatusBoard, TaskRow};

struct Counting;

static ASKED: AtomicIsize = AtomicIsize::new(0);
static CHUNKS: AtomicIsize = AtomicIsize::new(0);

/// The size of the glibc malloc chunk that serves a request of `size` bytes.
fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ASKED.fetch_add(l.size() as isize, Relaxed);
        CHUNKS.fetch_add(chunk(l.size()), Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ASKED.fetch_sub(l.size() as isize, Relaxed);
        CHUNKS.fetch_sub(chunk(l.size()), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ASKED.fetch_add(new as isize - l.size() as isize, Relaxed);
        CHUNKS.fetch_add(chunk(new) - chunk(l.size()), Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ACCOUNTS: usize = 10_000;
const COLLECTORS: [&str; 8] = [
    "acedata_balance",
    "acedata_distribution_status",
    "acedata_distribution_levels",
    "acedata_distribution_history",
    "acedata_applications",
    "acedata_usage",
    "acedata_orders",
    "acedata_auto_recharge",
];
const ROWS: usize = ACCOUNTS * COLLECTORS.len();

fn live() -> (isize, isize) {
    (ASKED.load(Relaxed), CHUNKS.load(Relaxed))
}

fn per_row(before: (isize, isize), after: (isize, isize)) -> (f64, f64) {
    let n = ROWS as f64;
    (
        (after.0 - before.0) as f64 / n,
        (after.1 - before.1) as f64 / n,
    )
}

#[test]
fn status_board_rows_stay_small() {
    let interval = Duration::from_secs(60);
    let now = SystemTime::now();
    let board = StatusBoard::new("/etc/balance-exporter.yaml");
    // The scheduler holds each task's row; room for them is not the board's cost.
    let mut rows: Vec<TaskRow> = Vec::with_capacity(ROWS);
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("customer-{i:05}")).collect();

    let start = live();
    // In the order the scheduler starts them: collectors by account.
    for account in &names {
        for c in COLLECTORS {
            rows.push(board.register(c, account, interval));
        }
    }
    // The steady state: every row has run once and is scheduled again.
    for r in &rows {
        r.succeeded(now, Duration::from_millis(120), Some(12));
        r.scheduled(now + interval, None);
    }
    let ok = per_row(start, live());
    println!(
        "{ROWS} rows, all ok: {:.1} bytes/row asked, {:.1} bytes/row in malloc chunks",
        ok.0, ok.1
    );

    // An upstream outage: every row failing with an error, a tenth with a note.
    let error = CollectError::HttpStatus {
        status: 503,
        detail: "Service Unavailable: upstream is down for maintenance".into(),
    };
    for (i, r) in rows.iter().enumerate() {
        let info = ErrorInfo::from_error(&error, &[], now);
        r.failed(now, Duration::from_millis(120), info, false, Some(12));
        let note = (i % 10 == 0).then(|| "later than usual: Retry-After 10m".to_string());
        r.scheduled(now + interval, note);
    }
    let failing = per_row(start, live());
    println!(
        "{ROWS} rows, all failing: {:.1} bytes/row asked, {:.1} bytes/row in malloc chunks",
        failing.0, failing.1
    );

    // Removing every row gives everything back (what `rows` still holds aside).
    rows.clear();
    for account in &names {
        for c in COLLECTORS {
            board.remove(c, account);
        }
    }
    let left = per_row(start, live());
    println!("after removing every row: {left:?} bytes/row");

    assert_eq!(board.snapshot().tasks.len(), 0);
    // (An empty map may keep its root node, and printing allocates a little.)
    assert!(
        left.1 * ROWS as f64 <= 4096.0,
        "removed rows leave {left:?} bytes each"
    );
    // Measured: 78 asked, 84 in chunks (the 64-byte row, its share of its account's
    // lock, name and map entry; the rarely-set parts are boxed and absent while the
    // row succeeds). A lock and an allocation per row took 136.
    assert!(ok.1 < 96.0, "{ok:?} bytes per row");
    // Measured: 254 and 281, mostly the error and its message.
    assert!(failing.1 < 320.0, "{failing:?} bytes per row");
}
