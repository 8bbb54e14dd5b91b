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

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rust_decimal::Decimal;
use tokio::time::Instant;

use super::client::AcedataClient;
use super::metrics::AcedataMetrics;
use super::model::{to_f64, HistoryRecord};
use crate::collector::{CollectError, Collector};

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

impl Totals {
    fn add(&mut self, r: &HistoryRecord) {
        let s = if r.invalid {
            &mut self.invalid
        } else {
            &mut self.valid
        };
        s.records += 1;
        s.reward += r.reward;
        s.order_amount += r.order_amount();
        if let Some(t) = r.created_at {
            self.last_record = Some(self.last_record.map_or(t, |l| l.max(t)));
        }
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

impl PageSource for AcedataClient {
    fn page(
        &mut self,
        limit: u64,
        offset: u64,
    ) -> impl Future<Output = Result<(u64, Vec<HistoryRecord>), CollectError>> + Send {
        let client = self.clone();
        async move { client.history_page(limit, offset).await }
    }
}

/// What the last sync saw, to recognise "nothing new" with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    count: u64,
    first_id: String,
    last_id: String,
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
        match (&self.marker, due) {
            (Some(m), false) => {
                let m = m.clone();
                if !self.incremental(src, &m).await? {
                    tracing::debug!("history changed in a way the marker cannot follow; full pass");
                    self.full(src).await?;
                }
            }
            _ => self.full(src).await?,
        }
        Ok(&self.totals)
    }

    /// Returns `Ok(false)` when a full pass is needed instead.
    async fn incremental<S: PageSource>(
        &mut self,
        src: &mut S,
        m: &Marker,
    ) -> Result<bool, CollectError> {
        let (count, first_page) = src.page(self.page_size, 0).await?;
        let Some(first) = first_page.first() else {
            return Ok(count == 0 && m.count == 0);
        };
        if m.count == 0 || count < m.count {
            return Ok(false);
        }
        if count == m.count {
            return Ok(first.id == m.first_id);
        }
        let mut added = Totals::default();
        let mut seen = HashSet::new();
        if first.id != m.first_id {
            // Newest-first: every record before the old first one is new.
            let limit = (count - m.count) + self.page_size;
            let new_first_id = first.id.clone();
            let mut page = first_page;
            let mut offset = 0;
            loop {
                for r in &page {
                    if r.id == m.first_id {
                        let marker = Marker {
                            count: m.count + seen.len() as u64,
                            first_id: new_first_id,
                            last_id: m.last_id.clone(),
                        };
                        self.apply(added, marker);
                        return Ok(true);
                    }
                    if seen.insert(r.id.clone()) {
                        added.add(r);
                    }
                }
                offset += page.len() as u64;
                if page.is_empty() || offset >= count || offset > limit {
                    return Ok(false);
                }
                page = src.page(self.page_size, offset).await?.1;
            }
        }
        // Oldest-first: the old last record is at offset m.count - 1, new ones follow.
        let mut offset = m.count - 1;
        let mut last_id = m.last_id.clone();
        let mut anchored = false;
        let mut latest_count = count;
        loop {
            let (c, page) = src.page(self.page_size, offset).await?;
            latest_count = latest_count.max(c);
            if page.is_empty() {
                break;
            }
            for r in &page {
                if !anchored {
                    if r.id != m.last_id {
                        return Ok(false);
                    }
                    anchored = true;
                    continue;
                }
                if seen.insert(r.id.clone()) {
                    added.add(r);
                    last_id = r.id.clone();
                }
            }
            offset += page.len() as u64;
            if offset >= latest_count {
                break;
            }
        }
        if !anchored {
            return Ok(false);
        }
        let new_count = m.count + seen.len() as u64;
        self.apply(
            added,
            Marker {
                count: new_count,
                first_id: m.first_id.clone(),
                last_id,
            },
        );
        Ok(true)
    }

    fn apply(&mut self, added: Totals, marker: Marker) {
        let t = &mut self.totals;
        for (sum, add) in [(&mut t.valid, added.valid), (&mut t.invalid, added.invalid)] {
            sum.records += add.records;
            sum.reward += add.reward;
            sum.order_amount += add.order_amount;
        }
        if let Some(l) = added.last_record {
            t.last_record = Some(t.last_record.map_or(l, |o| o.max(l)));
        }
        self.marker = Some(marker);
    }

    async fn full<S: PageSource>(&mut self, src: &mut S) -> Result<(), CollectError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (totals, marker, consistent) = self.full_pass(src).await?;
            if consistent || attempt >= FULL_PASS_ATTEMPTS {
                if !consistent {
                    tracing::warn!(
                        "commission history kept changing during a full pass; using the last pass"
                    );
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
        let first_id = page.first().map(|r| r.id.clone()).unwrap_or_default();
        let mut last_id = String::new();
        let mut offset = 0u64;
        let mut consistent = true;
        let mut seen = 0u64;
        loop {
            for r in &page {
                totals.add(r);
            }
            seen += page.len() as u64;
            if let Some(r) = page.last() {
                last_id = r.id.clone();
            }
            offset += page.len() as u64;
            if page.is_empty() || offset >= count {
                break;
            }
            let (c, next) = src.page(self.page_size, offset).await?;
            consistent &= c == count;
            page = next;
        }
        consistent &= seen == count;
        Ok((
            totals,
            Marker {
                count: seen,
                first_id,
                last_id,
            },
            consistent,
        ))
    }
}

/// Polls the commission history incrementally.
pub struct HistoryCollector {
    pub(super) account: String,
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

impl Collector for HistoryCollector {
    fn name(&self) -> &'static str {
        "acedata_distribution_history"
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<(), CollectError>> {
        async move {
            let totals = *self.sync.sync(&mut self.client).await?;
            Self::update(&self.metrics, &self.account, &totals);
            Ok(())
        }
        .boxed()
    }

    fn clear(&mut self) {
        let m = &self.metrics;
        for f in [
            &m.history_records,
            &m.history_reward,
            &m.history_order_amount,
            &m.history_last_record,
        ] {
            f.clear(&self.account);
        }
    }
}
