//! Heap bytes per series and start-up insert time of the metrics registry at the scale
//! of 10,000 accounts, counted by a counting global allocator:
//!
//! ```text
//! cargo test --release --bench registry_mem -- --ignored --nocapture
//! ```
//!
//! Two families of about 1.2 million series in all: one shaped like
//! `balance_exporter_collector_errors_total` (labels collector, account, reason; 51,000
//! (account, collector) pairs × 7 reasons, created in random order as errors happen)
//! and a two-label family filled one account at a time (85 series each, the accounts in
//! random order), after the account names were interned in configuration order. The
//! figures: heap bytes per series (label symbols included) after the inserts, at the
//! peak while inserting and after an encode; insert time; the time of one pass of
//! updates over every series; and the heap one encode needs (its 68 kB output buffer
//! included).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use balance_exporter::metrics::{CounterVec, GaugeFamily, GaugeVec, Registry};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Counted as if the old block lived until the new one was filled (a copy):
            // the peak is an upper bound.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// A fixed pseudo-random permutation (xorshift, Fisher–Yates).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

const ACCOUNTS: usize = 10_000;
const APPS: usize = 85;
const COLLECTORS: [&str; 6] = [
    "acedata_balance",
    "acedata_distribution",
    "acedata_applications",
    "acedata_credentials",
    "acedata_history",
    "yeastar_balance",
];
const REASONS: [&str; 7] = [
    "timeout",
    "connect",
    "status",
    "decode",
    "auth",
    "rate_limited",
    "other",
];

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn bytes_per_series_and_insert_time() {
    let registry = Registry::new();
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("tenant-{i}")).collect();
    let apps: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    // The account names get their symbols in configuration order, as at start-up.
    let threshold = GaugeVec::new(&registry, "t_threshold", "T.", &["provider", "account"]);
    for a in &accounts {
        threshold.with_label_values(&["acedata", a]).set(10.0);
    }
    let errors = CounterVec::new(
        &registry,
        "t_collector_errors_total",
        "E.",
        &["collector", "account", "reason"],
    );
    let remaining = GaugeFamily::new(&registry, "t_remaining", "R.", &["application_id"]);
    let before = live();

    // 51,000 (account, collector) pairs × 7 reasons, in random order.
    let mut triples = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        let collectors = if i < 1_000 { 6 } else { 5 };
        for c in &COLLECTORS[..collectors] {
            for r in REASONS {
                triples.push((*c, a.as_str(), r));
            }
        }
    }
    shuffle(&mut triples, 0x9e37_79b9_7f4a_7c15);
    let mut order: Vec<usize> = (0..ACCOUNTS).collect();
    shuffle(&mut order, 0x2545_f491_4f6c_dd1d);
    let scratch = live() - before;

    PEAK.store(live(), Ordering::Relaxed);
    let started = Instant::now();
    for &(c, a, r) in &triples {
        errors.with_label_values(&[c, a, r]).inc();
    }
    let errors_time = started.elapsed();
    let started = Instant::now();
    for &i in &order {
        let series = apps.iter().map(|p| (vec![p.clone()], i as f64));
        remaining.replace(&accounts[i], series);
    }
    let replace_time = started.elapsed();
    let series = triples.len() + ACCOUNTS * APPS;
    let bytes = live() - before - scratch;
    let peak = PEAK.load(Ordering::Relaxed) - before - scratch;
    println!(
        "{series} series ({} errors + {} two-label): {bytes} heap bytes, {:.1} bytes/series \
         (peak while inserting {:.1} bytes/series)",
        triples.len(),
        ACCOUNTS * APPS,
        bytes as f64 / series as f64,
        peak as f64 / series as f64
    );
    println!(
        "insert: errors {errors_time:?}, two-label (replace per account) {replace_time:?}, total {:?}",
        errors_time + replace_time
    );

    // The hot path: every existing series written again.
    let started = Instant::now();
    for &(c, a, r) in &triples {
        errors.with_label_values(&[c, a, r]).inc();
    }
    for &i in &order {
        let series = apps.iter().map(|p| (vec![p.clone()], i as f64 + 1.0));
        remaining.replace(&accounts[i], series);
    }
    println!("update every existing series once: {:?}", started.elapsed());
    assert_eq!(remaining.count(&accounts[7]), APPS);

    // One encode to a sink: what it allocates besides its 68 kB output buffer.
    let mut text = 0usize;
    struct Sink<'a>(&'a mut usize);
    impl io::Write for Sink<'_> {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            *self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    for round in 0..2 {
        let base = live();
        PEAK.store(base, Ordering::Relaxed);
        let started = Instant::now();
        text = 0;
        registry.write_to(&mut Sink(&mut text)).unwrap();
        println!(
            "encode {round}: {:?}, {text} bytes of text, heap peak {} bytes above the \
             heap before it, {} bytes kept",
            started.elapsed(),
            PEAK.load(Ordering::Relaxed) - base,
            live() as isize - base as isize
        );
    }
    assert!(text > series * 40);
    let bytes = live() - before - scratch;
    println!(
        "after an encode: {bytes} heap bytes, {:.1} bytes/series",
        bytes as f64 / series as f64
    );

    // Stale accounts: every series of 1,000 accounts removed from the two-label family.
    let started = Instant::now();
    for &i in &order[..1_000] {
        remaining.clear(&accounts[i]);
    }
    println!("clear 1,000 accounts: {:?}", started.elapsed());
    assert_eq!(remaining.count(&accounts[order[0]]), 0);
}
