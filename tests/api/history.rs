//! Commission-history sync through the whole exporter: request budget per steady
//! cycle, both list orders, new records within one cycle, invalidations within a
//! full-sync interval.

use std::time::Duration;

use balance_exporter::simulator::{HistoryOrder, Route, SimOptions};

use crate::helpers::*;

/// The poll interval of these tests.
const INTERVAL: Duration = Duration::from_millis(200);

fn history_yaml(base: &str, page_size: u32, full_sync: &str) -> String {
    yaml(
        base,
        "200ms",
        &format!(
            "    collectors: [distribution_history]\n    history: {{ page_size: {page_size}, full_sync_interval: {full_sync} }}"
        ),
    )
}

const VALID: &str = r#"acedata_distribution_history_records{account="main",invalid="false"}"#;
const INVALID: &str = r#"acedata_distribution_history_records{account="main",invalid="true"}"#;
const REWARD: &str = r#"acedata_distribution_history_reward{account="main",invalid="false"}"#;
const AMOUNT: &str = r#"acedata_distribution_history_order_amount{account="main",invalid="false"}"#;

fn total(s: &Samples) -> f64 {
    s.value(VALID) + s.value(INVALID)
}

async fn steady_cycles_cost_at_most_two_requests(order: HistoryOrder) {
    let sim = simulator(SimOptions {
        history_records: 1000,
        history_order: order,
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&history_yaml(&sim.base_url(), 50, "1h")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    assert_eq!(total(&s), 1000.0, "{order:?}");
    // The first full pass: 1000 records / 50 per page, each page asked once (steady
    // cycles may have followed by now; they come after these in the log).
    let mut offsets: Vec<u64> = sim
        .request_log()
        .iter()
        .filter(|r| r.route == Some(Route::AcedataHistory))
        .take(20)
        .map(|r| r.query_param("offset").unwrap().parse().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..20).map(|i| i * 50).collect::<Vec<u64>>(),
        "{order:?}"
    );

    // Steady state: nothing new, ≤ 2 requests per cycle whatever N. Count over a
    // window of at least 6 requests, against the most cycles that window can hold.
    sim.reset_counters();
    let window = tokio::time::Instant::now();
    wait_until("steady cycles", || {
        sim.request_count(Route::AcedataHistory) >= 6
    })
    .await;
    let requests = sim.request_count(Route::AcedataHistory);
    let cycles = max_attempts(window.elapsed(), INTERVAL);
    assert!(
        requests <= 2 * cycles,
        "{order:?}: {requests} requests in at most {cycles} cycles"
    );

    // New records appear within one cycle, with exact sums.
    let before = app.samples().await;
    sim.add_history_record(ACE_TOKEN, 12.35, 123.5, false);
    sim.add_history_record(ACE_TOKEN, 0.1, 1.0, false);
    sim.add_history_record(ACE_TOKEN, 3.0, 30.0, true);
    // Within one cycle: a steady cycle is at most 2 requests, 3 with a page of news.
    one_full_poll(&sim, Route::AcedataHistory, 3).await;
    let after = app.samples().await;
    assert_eq!(total(&after), 1003.0, "{order:?}");
    assert_eq!(after.value(VALID), before.value(VALID) + 2.0);
    assert_eq!(after.value(INVALID), before.value(INVALID) + 1.0);
    let reward_delta = after.value(REWARD) - before.value(REWARD);
    assert!((reward_delta - 12.45).abs() < 1e-9, "{reward_delta}");
    let amount_delta = after.value(AMOUNT) - before.value(AMOUNT);
    assert!((amount_delta - 124.5).abs() < 1e-9, "{amount_delta}");
    assert!(
        after
            .value(r#"acedata_distribution_history_last_record_timestamp_seconds{account="main"}"#)
            >= before.value(
                r#"acedata_distribution_history_last_record_timestamp_seconds{account="main"}"#
            )
    );
    // Adding records did not trigger a full pass (which would be 21 requests).
    sim.reset_counters();
    let window = tokio::time::Instant::now();
    wait_until("more steady cycles", || {
        sim.request_count(Route::AcedataHistory) >= 4
    })
    .await;
    let requests = sim.request_count(Route::AcedataHistory);
    let cycles = max_attempts(window.elapsed(), INTERVAL);
    assert!(
        requests <= 2 * cycles,
        "{order:?}: {requests} requests in at most {cycles} cycles"
    );
    app.stop().await;
}

#[tokio::test]
async fn newest_first_steady_cycles_are_cheap_and_new_records_show() {
    steady_cycles_cost_at_most_two_requests(HistoryOrder::NewestFirst).await;
}

#[tokio::test]
async fn oldest_first_steady_cycles_are_cheap_and_new_records_show() {
    steady_cycles_cost_at_most_two_requests(HistoryOrder::OldestFirst).await;
}

#[tokio::test]
async fn records_turned_invalid_show_after_the_full_sync_interval() {
    let sim = simulator(SimOptions::default()).await;
    let app = spawn_yaml(&history_yaml(&sim.base_url(), 7, "1s")).await;
    app.wait_ready().await;
    let s = app.samples().await;
    let invalid_before = s.value(INVALID);
    let valid_before = s.value(VALID);
    // Find a valid record and make it invalid (index 0 = oldest).
    let body = history_json(&sim.base_url()).await;
    let n = body["count"].as_u64().unwrap() as usize;
    // Newest-first by default: index i (oldest-based) is at position n-1-i.
    let idx = (0..n)
        .find(|i| !body["results"][n - 1 - i]["invalid"].as_bool().unwrap())
        .unwrap();
    sim.set_history_invalid(ACE_TOKEN, idx, true);
    let s = app
        .wait_for("invalidation picked up by a full pass", |s| {
            s.get(INVALID) == Some(invalid_before + 1.0)
        })
        .await;
    assert_eq!(s.value(VALID), valid_before - 1.0);
    app.stop().await;
}

#[tokio::test]
async fn short_pages_from_upstream_are_followed() {
    // Upstream caps `limit` below the configured page size.
    let sim = simulator(SimOptions {
        history_records: 95,
        max_page_size: Some(10),
        ..SimOptions::default()
    })
    .await;
    let app = spawn_yaml(&history_yaml(&sim.base_url(), 100, "1h")).await;
    app.wait_ready().await;
    assert_eq!(total(&app.samples().await), 95.0);
    sim.add_history_record(ACE_TOKEN, 1.0, 10.0, false);
    app.wait_for("96", |s| total(s) == 96.0).await;
    app.stop().await;
}
