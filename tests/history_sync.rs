//! `HistorySync` against an in-memory upstream: request budget, both orders,
//! deletions, invalidations, and agreement with a full recount.

use std::str::FromStr;
use std::time::Duration;

use balance_exporter::collector::CollectError;
use balance_exporter::providers::acedata::history::{HistorySync, PageSource, Totals};
use balance_exporter::providers::acedata::model::{HistoryRecord, Order};
use rust_decimal::Decimal;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Ord {
    NewestFirst,
    OldestFirst,
}

/// Records kept oldest first; pages served in `order`.
struct Upstream {
    records: Vec<HistoryRecord>,
    order: Ord,
    requests: u64,
    next_id: u64,
}

impl Upstream {
    fn new(order: Ord, n: usize) -> Self {
        let mut u = Upstream {
            records: Vec::new(),
            order,
            requests: 0,
            next_id: 0,
        };
        for _ in 0..n {
            u.push(false);
        }
        u
    }

    fn push(&mut self, invalid: bool) {
        let i = self.next_id;
        self.next_id += 1;
        // Cent values whose f64 sums would drift.
        let reward = Decimal::from_str(&format!("{}.{:02}", i % 7, (i * 37) % 100)).unwrap();
        self.records.push(HistoryRecord {
            id: format!("rec-{i}"),
            reward,
            invalid,
            order: Some(Order {
                price: Decimal::from_str(&format!("{}.1", i % 13)).unwrap(),
            }),
            created_at: Some(1.7e9 + i as f64),
        });
    }

    fn recount(&self) -> Totals {
        let mut t = Totals::default();
        for r in &self.records {
            let s = if r.invalid {
                &mut t.invalid
            } else {
                &mut t.valid
            };
            s.records += 1;
            s.reward += r.reward;
            s.order_amount += r.order_amount();
            t.last_record = Some(
                t.last_record
                    .map_or(r.created_at.unwrap(), |l: f64| l.max(r.created_at.unwrap())),
            );
        }
        t
    }
}

impl PageSource for Upstream {
    fn page(
        &mut self,
        limit: u64,
        offset: u64,
    ) -> impl std::future::Future<Output = Result<(u64, Vec<HistoryRecord>), CollectError>> + Send
    {
        self.requests += 1;
        let ordered: Vec<&HistoryRecord> = match self.order {
            Ord::OldestFirst => self.records.iter().collect(),
            Ord::NewestFirst => self.records.iter().rev().collect(),
        };
        let page = ordered
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        let count = self.records.len() as u64;
        async move { Ok((count, page)) }
    }
}

async fn sync_counted(sync: &mut HistorySync, up: &mut Upstream) -> (Totals, u64) {
    let before = up.requests;
    let t = *sync.sync(up).await.unwrap();
    (t, up.requests - before)
}

#[tokio::test(start_paused = true)]
async fn steady_cycles_cost_at_most_two_requests_whatever_n() {
    for order in [Ord::NewestFirst, Ord::OldestFirst] {
        for n in [0usize, 1, 2, 99, 100, 101, 5000] {
            let mut up = Upstream::new(order, n);
            let mut sync = HistorySync::new(100, Duration::from_secs(3600));
            let (t, first) = sync_counted(&mut sync, &mut up).await;
            assert_eq!(t, up.recount(), "{order:?} n={n}");
            assert_eq!(first, (n as u64).div_ceil(100).max(1), "{order:?} n={n}");
            for _ in 0..3 {
                let (t, reqs) = sync_counted(&mut sync, &mut up).await;
                // One request once the order is known (two records with timestamps);
                // two while it is not (the last record is checked too).
                let budget = if n >= 2 { 1 } else { 2 };
                assert!(reqs <= budget, "{order:?} n={n}: {reqs}");
                assert_eq!(t, up.recount());
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn new_records_cost_at_most_two_requests_when_they_fit_a_page() {
    for order in [Ord::NewestFirst, Ord::OldestFirst] {
        let mut up = Upstream::new(order, 1000);
        let mut sync = HistorySync::new(100, Duration::from_secs(3600));
        sync_counted(&mut sync, &mut up).await;
        for added in [1usize, 5, 50] {
            for _ in 0..added {
                up.push(added == 5);
            }
            let (t, reqs) = sync_counted(&mut sync, &mut up).await;
            assert_eq!(t, up.recount(), "{order:?} +{added}");
            assert!(reqs <= 2, "{order:?} +{added}: {reqs} requests");
        }
        // Many new records: more pages, still correct and far below a full pass.
        for _ in 0..250 {
            up.push(false);
        }
        let (t, reqs) = sync_counted(&mut sync, &mut up).await;
        assert_eq!(t, up.recount());
        assert!(reqs <= 5, "{order:?}: {reqs}");
    }
}

#[tokio::test(start_paused = true)]
async fn from_empty_and_from_one_record_either_order_is_learned() {
    for order in [Ord::NewestFirst, Ord::OldestFirst] {
        for start in [0usize, 1] {
            let mut up = Upstream::new(order, start);
            let mut sync = HistorySync::new(3, Duration::from_secs(3600));
            sync_counted(&mut sync, &mut up).await;
            for step in 0..10 {
                up.push(step % 3 == 0);
                let (t, _) = sync_counted(&mut sync, &mut up).await;
                assert_eq!(t, up.recount(), "{order:?} start={start} step={step}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn deletions_fall_back_to_a_full_pass() {
    for order in [Ord::NewestFirst, Ord::OldestFirst] {
        let mut up = Upstream::new(order, 30);
        let mut sync = HistorySync::new(10, Duration::from_secs(3600));
        sync_counted(&mut sync, &mut up).await;
        // The newest record disappears and two new ones arrive: same count + 1.
        up.records.pop();
        up.push(false);
        up.push(true);
        let (t, _) = sync_counted(&mut sync, &mut up).await;
        assert_eq!(t, up.recount(), "{order:?} replace newest");
        // The oldest record disappears.
        up.records.remove(0);
        let (t, _) = sync_counted(&mut sync, &mut up).await;
        assert_eq!(t, up.recount(), "{order:?} drop oldest");
        up.records.remove(3);
        up.push(false);
        let (t, _) = sync_counted(&mut sync, &mut up).await;
        assert_eq!(t, up.recount(), "{order:?} drop middle, add one");
    }
}

#[tokio::test(start_paused = true)]
async fn invalidations_show_after_the_full_sync_interval() {
    for order in [Ord::NewestFirst, Ord::OldestFirst] {
        let mut up = Upstream::new(order, 40);
        let mut sync = HistorySync::new(10, Duration::from_secs(600));
        sync_counted(&mut sync, &mut up).await;
        up.records[7].invalid = true;
        let (t, reqs) = sync_counted(&mut sync, &mut up).await;
        assert_eq!(reqs, 1);
        assert_eq!(t.invalid.records, 0, "not visible to an incremental cycle");
        tokio::time::advance(Duration::from_secs(601)).await;
        let (t, reqs) = sync_counted(&mut sync, &mut up).await;
        assert_eq!(reqs, 4, "a full pass");
        assert_eq!(t, up.recount());
        assert_eq!(t.invalid.records, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn random_histories_agree_with_a_recount() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..60 {
        let order = if round % 2 == 0 {
            Ord::NewestFirst
        } else {
            Ord::OldestFirst
        };
        let mut up = Upstream::new(order, rnd(40) as usize);
        let page = 1 + rnd(12) as u32;
        let mut sync = HistorySync::new(page, Duration::from_secs(100));
        let mut dirty = false;
        for step in 0..25 {
            match rnd(10) {
                0 if !up.records.is_empty() => {
                    let i = rnd(up.records.len() as u64) as usize;
                    up.records[i].invalid = !up.records[i].invalid;
                    dirty = true;
                }
                1 if !up.records.is_empty() => {
                    let i = rnd(up.records.len() as u64) as usize;
                    up.records.remove(i);
                }
                2 => tokio::time::advance(Duration::from_secs(101)).await,
                3 if !up.records.is_empty() => {
                    // A deletion and an append in the same cycle: same count.
                    let i = rnd(up.records.len() as u64) as usize;
                    up.records.remove(i);
                    up.push(false);
                }
                _ => {
                    for _ in 0..rnd(15) {
                        up.push(rnd(4) == 0);
                    }
                }
            }
            let due = {
                let (t, _) = sync_counted(&mut sync, &mut up).await;
                t
            };
            if !dirty {
                assert_eq!(
                    due,
                    up.recount(),
                    "round {round} step {step} {order:?} page {page}"
                );
            }
            if rnd(5) == 0 {
                tokio::time::advance(Duration::from_secs(101)).await;
                let (t, _) = sync_counted(&mut sync, &mut up).await;
                assert_eq!(
                    t,
                    up.recount(),
                    "after full pass: round {round} step {step}"
                );
                dirty = false;
            }
        }
    }
}
