//! The `acedata_distribution_history` collector and its incremental sync.
//!
//! Only aggregates and a sync marker are kept, never the records, so memory does not
//! grow with the number of records. A steady cycle (nothing new) costs one request:
//! the first page, whose `count` and first record match the marker. When records were
//! added, the first record tells the order: a new first record means newest-first
//! (new records sit before the old first one); the same first record means
//! oldest-first (new records follow the old last one, fetched from its offset). Any
//! surprise (a record deleted, the anchor not where expected) falls back to a full
//! pass, as does `full_sync_interval`, which also picks up records turned invalid.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::time::Instant;

use super::client::{AcedataClient, Attempt};
use super::metrics::AcedataMetrics;
use super::model::{to_f64, HistoryRecord};
use crate::collector::{impl_collector, CollectError};

/// Aggregates of one validity class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub records: u64,
    pub reward: Decimal,
    pub order_amount: Decimal,
}

/// Aggregates over every record: `[valid, invalid]`, plus the newest `created_at`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub valid: Sums,
    pub invalid: Sums,
    pub last_record: Option<f64>,
}

impl Sums {
    /// `self + other`; sums beyond what a decimal holds (about 7.9e28) are a decode
    /// error rather than a panic (which would abort the release binary).
    fn checked_add(self, other: Sums) -> Result<Sums, CollectError> {
        let overflow = || CollectError::decode("commission history sums overflow");
        Ok(Sums {
            records: self.records.saturating_add(other.records),
            reward: self.reward.checked_add(other.reward).ok_or_else(overflow)?,
            order_amount: self
                .order_amount
                .checked_add(other.order_amount)
                .ok_or_else(overflow)?,
        })
    }
}

impl Totals {
    fn add(&mut self, r: &HistoryRecord) -> Result<(), CollectError> {
        let one = Sums {
            records: 1,
            reward: r.reward,
            order_amount: r.order_amount(),
        };
        let s = if r.invalid {
            &mut self.invalid
        } else {
            &mut self.valid
        };
        *s = s.checked_add(one)?;
        if let Some(t) = r.created_at {
            self.last_record = Some(self.last_record.map_or(t, |l| l.max(t)));
        }
        Ok(())
    }

    /// The sum of two totals (the newest record time is the later one).
    fn checked_add(&self, other: &Totals) -> Result<Totals, CollectError> {
        Ok(Totals {
            valid: self.valid.checked_add(other.valid)?,
            invalid: self.invalid.checked_add(other.invalid)?,
            last_record: match (self.last_record, other.last_record) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        })
    }
}

/// Where pages come from: `(count, records)` for `limit`/`offset`.
pub trait PageSource {
    /// Fetch one page.
    fn page(
        &mut self,
        limit: u64,
        offset: u64,
    ) -> impl Future<Output = Result<(u64, Vec<HistoryRecord>), CollectError>> + Send;
}

impl PageSource for Attempt<'_> {
    fn page(
        &mut self,
        limit: u64,
        offset: u64,
    ) -> impl Future<Output = Result<(u64, Vec<HistoryRecord>), CollectError>> + Send {
        let attempt = *self;
        async move { attempt.history_page(limit, offset).await }
    }
}

/// The order upstream lists records in, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListOrder {
    Unknown,
    NewestFirst,
    OldestFirst,
}

/// What the last sync saw, to recognise "nothing new" cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    count: u64,
    /// Record at offset 0.
    first_id: String,
    /// Record at offset `count - 1`.
    last_id: String,
    order: ListOrder,
}

/// Incremental commission-history aggregation.
#[derive(Debug)]
pub struct HistorySync {
    page_size: u64,
    full_sync_interval: Duration,
    totals: Totals,
    marker: Option<Marker>,
    last_full: Option<Instant>,
}

/// How many times a full pass restarts when the list changes under it.
const FULL_PASS_ATTEMPTS: usize = 3;

/// New records found by an incremental cycle.
struct Found {
    added: Totals,
    ids: HashSet<String>,
}

impl Found {
    fn new() -> Self {
        Found {
            added: Totals::default(),
            ids: HashSet::new(),
        }
    }

    fn take(&mut self, r: &HistoryRecord) -> Result<(), CollectError> {
        if self.ids.insert(r.id.clone()) {
            self.added.add(r)?;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.ids.len() as u64
    }
}

impl HistorySync {
    /// A sync that has not run yet (its first run is a full pass).
    pub fn new(page_size: u32, full_sync_interval: Duration) -> Self {
        HistorySync {
            page_size: u64::from(page_size.max(1)),
            full_sync_interval,
            totals: Totals::default(),
            marker: None,
            last_full: None,
        }
    }

    /// The current aggregates.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Bring the aggregates up to date. On error the previous aggregates stay.
    pub async fn sync<S: PageSource>(&mut self, src: &mut S) -> Result<&Totals, CollectError> {
        let due = self
            .last_full
            .is_none_or(|t| t.elapsed() >= self.full_sync_interval);
        match (self.marker.clone(), due) {
            (Some(m), false) => {
                if !self.incremental(src, &m).await? {
                    tracing::debug!("history changed in a way the marker cannot follow; full pass");
                    self.full(src).await?;
                }
            }
            _ => self.full(src).await?,
        }
        Ok(&self.totals)
    }

    /// One cycle that reads only what is new. Returns `Ok(false)` when the list
    /// changed in a way only a full pass can account for (deletions, reordering).
    async fn incremental<S: PageSource>(
        &mut self,
        src: &mut S,
        m: &Marker,
    ) -> Result<bool, CollectError> {
        if m.count == 0 {
            let (count, _) = src.page(1, 0).await?;
            return Ok(count == 0);
        }
        match m.order {
            ListOrder::OldestFirst => self.append_oldest_first(src, m).await,
            ListOrder::NewestFirst => {
                let (count, page) = src.page(self.page_size, 0).await?;
                self.prepend_newest_first(src, m, count, page).await
            }
            ListOrder::Unknown => {
                let (count, page) = src.page(self.page_size, 0).await?;
                let Some(first) = page.first() else {
                    return Ok(false);
                };
                if count < m.count {
                    return Ok(false);
                }
                if first.id != m.first_id {
                    // Something new came before the old first record.
                    return self.prepend_newest_first(src, m, count, page).await;
                }
                if count > m.count {
                    // Same first record, more records: they were appended.
                    return self.append_oldest_first(src, m).await;
                }
                // Same count and first record: check the last one too, which a
                // deletion plus an append would have changed.
                let (count, page) = src.page(1, m.count - 1).await?;
                Ok(count == m.count && page.first().is_some_and(|r| r.id == m.last_id))
            }
        }
    }

    /// Newest-first: every record before the old first one is new.
    async fn prepend_newest_first<S: PageSource>(
        &mut self,
        src: &mut S,
        m: &Marker,
        count: u64,
        mut page: Vec<HistoryRecord>,
    ) -> Result<bool, CollectError> {
        if count < m.count {
            return Ok(false);
        }
        let Some(new_first) = page.first().map(|r| r.id.clone()) else {
            return Ok(false);
        };
        let mut found = Found::new();
        let mut offset = 0;
        loop {
            if let Some(at) = page.iter().position(|r| r.id == m.first_id) {
                for r in &page[..at] {
                    found.take(r)?;
                }
                if m.count + found.len() != count {
                    return Ok(false);
                }
                self.apply(
                    found.added,
                    Marker {
                        count,
                        first_id: new_first,
                        last_id: m.last_id.clone(),
                        order: ListOrder::NewestFirst,
                    },
                )?;
                return Ok(true);
            }
            for r in &page {
                found.take(r)?;
            }
            offset += page.len() as u64;
            if page.is_empty() || offset >= count || found.len() > count - m.count {
                return Ok(false);
            }
            page = src.page(self.page_size, offset).await?.1;
        }
    }

    /// Oldest-first: the old last record sits at offset `m.count - 1` and every
    /// record after it is new.
    async fn append_oldest_first<S: PageSource>(
        &mut self,
        src: &mut S,
        m: &Marker,
    ) -> Result<bool, CollectError> {
        let mut offset = m.count - 1;
        let (count, page) = src.page(self.page_size, offset).await?;
        if count < m.count || page.first().is_none_or(|r| r.id != m.last_id) {
            return Ok(false);
        }
        let mut found = Found::new();
        let mut last_id = m.last_id.clone();
        let mut page = page;
        let mut skip = 1;
        loop {
            for r in &page[skip..] {
                found.take(r)?;
                last_id = r.id.clone();
            }
            offset += page.len() as u64;
            if page.is_empty() || offset >= count {
                break;
            }
            page = src.page(self.page_size, offset).await?.1;
            skip = 0;
        }
        if m.count + found.len() != count {
            return Ok(false);
        }
        let order = if found.len() > 0 {
            ListOrder::OldestFirst
        } else {
            m.order
        };
        self.apply(
            found.added,
            Marker {
                count,
                first_id: m.first_id.clone(),
                last_id,
                order,
            },
        )?;
        Ok(true)
    }

    fn apply(&mut self, added: Totals, marker: Marker) -> Result<(), CollectError> {
        self.totals = self.totals.checked_add(&added)?;
        self.marker = Some(marker);
        Ok(())
    }

    async fn full<S: PageSource>(&mut self, src: &mut S) -> Result<(), CollectError> {
        let known = self.marker.as_ref().map_or(ListOrder::Unknown, |m| m.order);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (totals, mut marker, consistent) = self.full_pass(src).await?;
            if consistent || attempt >= FULL_PASS_ATTEMPTS {
                if !consistent {
                    tracing::warn!(
                        "commission history kept changing during a full pass; using the last pass"
                    );
                }
                if marker.order == ListOrder::Unknown {
                    marker.order = known;
                }
                self.totals = totals;
                self.marker = Some(marker);
                self.last_full = Some(Instant::now());
                return Ok(());
            }
        }
    }

    /// One pass over every page: fresh totals, the marker, and whether `count` stayed
    /// the same throughout.
    async fn full_pass<S: PageSource>(
        &self,
        src: &mut S,
    ) -> Result<(Totals, Marker, bool), CollectError> {
        let mut totals = Totals::default();
        let (count, mut page) = src.page(self.page_size, 0).await?;
        let first = page.first().map(|r| (r.id.clone(), r.created_at));
        let mut last = None;
        let mut offset = 0u64;
        let mut consistent = true;
        loop {
            for r in &page {
                totals.add(r)?;
            }
            if let Some(r) = page.last() {
                last = Some((r.id.clone(), r.created_at));
            }
            offset += page.len() as u64;
            if page.is_empty() || offset >= count {
                break;
            }
            let (c, next) = src.page(self.page_size, offset).await?;
            consistent &= c == count;
            page = next;
        }
        consistent &= offset == count;
        let order = match (&first, &last) {
            (Some((_, Some(a))), Some((_, Some(b)))) if a > b => ListOrder::NewestFirst,
            (Some((_, Some(a))), Some((_, Some(b)))) if a < b => ListOrder::OldestFirst,
            _ => ListOrder::Unknown,
        };
        let marker = Marker {
            count: offset,
            first_id: first.map(|f| f.0).unwrap_or_default(),
            last_id: last.map(|l| l.0).unwrap_or_default(),
            order,
        };
        Ok((totals, marker, consistent))
    }
}

/// Polls the commission history incrementally.
pub struct HistoryCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
    pub(super) sync: HistorySync,
}

impl HistoryCollector {
    /// Write the aggregates to the gauges; no I/O.
    pub fn update(metrics: &AcedataMetrics, account: &str, t: &Totals) {
        let classes = [("false", t.valid), ("true", t.invalid)];
        metrics.history_records.replace(
            account,
            classes.map(|(k, s)| (vec![k.to_string()], s.records as f64)),
        );
        metrics.history_reward.replace(
            account,
            classes.map(|(k, s)| (vec![k.to_string()], to_f64(s.reward))),
        );
        metrics.history_order_amount.replace(
            account,
            classes.map(|(k, s)| (vec![k.to_string()], to_f64(s.order_amount))),
        );
        metrics.history_last_record.set_opt(account, t.last_record);
    }
}

impl_collector!(
    HistoryCollector,
    "acedata_distribution_history",
    [
        history_records,
        history_reward,
        history_order_amount,
        history_last_record
    ]
);

impl HistoryCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let totals = *self.sync.sync(&mut self.client.until(deadline)).await?;
        Self::update(&self.metrics, self.client.account(), &totals);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Property: whatever the order, page size, appends, invalidations and full passes,
    //! the incremental aggregates equal a full recount of what upstream lists, with
    //! every record counted in the validity it had when it was last read.

    use std::future::ready;

    use futures_util::FutureExt;
    use proptest::prelude::*;

    use super::*;
    use crate::providers::acedata::model::Order;

    #[derive(Debug, Clone)]
    struct Rec {
        record: HistoryRecord,
        /// `invalid` as of the last time the sync read this record.
        counted_invalid: bool,
    }

    struct Fake {
        /// Oldest first.
        records: Vec<Rec>,
        newest_first: bool,
    }

    impl PageSource for Fake {
        fn page(
            &mut self,
            limit: u64,
            offset: u64,
        ) -> impl Future<Output = Result<(u64, Vec<HistoryRecord>), CollectError>> + Send {
            let n = self.records.len();
            let listed: Vec<HistoryRecord> = (0..n)
                .map(|i| if self.newest_first { n - 1 - i } else { i })
                .skip(offset as usize)
                .take(limit as usize)
                .map(|i| self.records[i].record.clone())
                .collect();
            ready(Ok((n as u64, listed)))
        }
    }

    impl Fake {
        fn push(&mut self, cents: i64, price_cents: i64, invalid: bool) {
            let i = self.records.len();
            self.records.push(Rec {
                record: HistoryRecord {
                    id: format!("rec-{i}"),
                    reward: Decimal::new(cents, 2),
                    invalid,
                    order: (price_cents > 0).then(|| Order {
                        price: Decimal::new(price_cents, 2),
                    }),
                    created_at: Some(1.7e9 + i as f64),
                },
                counted_invalid: invalid,
            });
        }

        fn recount(&self) -> Totals {
            let mut t = Totals::default();
            for r in &self.records {
                let mut record = r.record.clone();
                record.invalid = r.counted_invalid;
                t.add(&record).unwrap();
            }
            t
        }

        fn all_read(&mut self) {
            for r in &mut self.records {
                r.counted_invalid = r.record.invalid;
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<(i64, i64, bool)>),
        Invalidate(usize),
        FullPass,
        Sync,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop::collection::vec((0i64..100_000, 0i64..1_000_000, any::<bool>()), 1..15)
                .prop_map(Op::Append),
            2 => any::<usize>().prop_map(Op::Invalidate),
            1 => Just(Op::FullPass),
            2 => Just(Op::Sync),
        ]
    }

    fn sync(s: &mut HistorySync, fake: &mut Fake) {
        let before = s.last_full;
        s.sync(fake)
            .now_or_never()
            .expect("the fake never waits")
            .unwrap();
        if s.last_full != before {
            // A full pass (planned or a fallback) reads every record as it is now.
            fake.all_read();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn incremental_totals_equal_a_full_recount(
            newest_first in any::<bool>(),
            page_size in 1u32..8,
            initial in prop::collection::vec((0i64..100_000, 0i64..1_000_000, any::<bool>()), 0..30),
            ops in prop::collection::vec(op(), 0..25),
        ) {
            let mut fake = Fake { records: Vec::new(), newest_first };
            for (c, p, inv) in initial {
                fake.push(c, p, inv);
            }
            let mut s = HistorySync::new(page_size, Duration::from_secs(3600));
            sync(&mut s, &mut fake);
            prop_assert_eq!(*s.totals(), fake.recount());
            for op in ops {
                match &op {
                    Op::Append(records) => {
                        for &(c, p, inv) in records {
                            fake.push(c, p, inv);
                        }
                    }
                    Op::Invalidate(i) => {
                        if !fake.records.is_empty() {
                            let n = fake.records.len();
                            let r = &mut fake.records[*i % n].record;
                            r.invalid = !r.invalid;
                        }
                    }
                    Op::FullPass => s.last_full = None,
                    Op::Sync => {}
                }
                sync(&mut s, &mut fake);
                prop_assert_eq!(*s.totals(), fake.recount(), "after {:?}", op);
            }
            // A full pass always catches up with every invalidation.
            s.last_full = None;
            sync(&mut s, &mut fake);
            let mut current = fake.records.clone();
            for r in &mut current {
                r.counted_invalid = r.record.invalid;
            }
            prop_assert_eq!(*s.totals(), Fake { records: current, newest_first }.recount());
        }
    }

    #[test]
    fn sums_that_overflow_are_a_decode_error_not_a_panic() {
        let mut fake = Fake {
            records: Vec::new(),
            newest_first: true,
        };
        for _ in 0..3 {
            fake.push(i64::MAX, 0, false);
        }
        for r in &mut fake.records {
            r.record.reward = Decimal::MAX;
        }
        let mut s = HistorySync::new(10, Duration::from_secs(3600));
        let e = s.sync(&mut fake).now_or_never().unwrap().unwrap_err();
        assert_eq!(e.reason(), "decode");
    }
}
