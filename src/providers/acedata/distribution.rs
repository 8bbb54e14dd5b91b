//! The `acedata_distribution_status` and `acedata_distribution_levels` collectors.

use std::sync::Arc;

use rust_decimal::Decimal;
use tokio::time::Instant;

use super::client::{AcedataClient, Attempt};
use super::metrics::AcedataMetrics;
use super::model::{to_f64, Level, Status};
use crate::collector::{impl_collector, CollectError, Collector};

/// Polls the distribution status (and the levels, for the spend remaining to the
/// next level). Initializes a missing status once when configured to.
pub struct StatusCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
    pub(super) initialize: bool,
    pub(super) initialized: bool,
}

/// What the spend remaining to the next level is: the threshold of the lowest level
/// above the current one, minus the invitee spend. `None` at the top level (and for
/// values too large to subtract).
pub fn next_level_spend_remaining(status: &Status, levels: &[Level]) -> Option<Decimal> {
    levels
        .iter()
        .filter(|l| l.level > status.level.level)
        .min_by_key(|l| l.level)
        .and_then(|next| next.threshold.checked_sub(status.price))
}

impl StatusCollector {
    /// Write a status (or its absence) to the gauges; no I/O.
    pub fn update(&self, status: Option<&Status>, levels: &[Level]) {
        let Some(s) = status else {
            self.clear_status();
            return;
        };
        let m = &self.metrics;
        let a = self.client.account();
        m.level.set(a, s.level.level as f64);
        m.commission_ratio.set(a, s.level.percentage);
        m.invitee_spend.set(a, to_f64(s.price));
        m.reward.set(a, to_f64(s.reward));
        m.next_level_remaining
            .set_opt(a, next_level_spend_remaining(s, levels).map(to_f64));
    }

    fn clear_status(&self) {
        for f in self.families() {
            f.clear(self.client.account());
        }
    }

    async fn fetch(&mut self, client: &Attempt<'_>) -> Result<Option<Status>, CollectError> {
        let mut page = client.statuses().await?;
        let empty = page.count == Some(0) || page.items.is_empty();
        if empty && self.initialize && !self.initialized {
            tracing::info!(
                collector = "acedata_distribution_status",
                account = %self.client.account(),
                "no distribution status yet; initializing it"
            );
            client.initialize_status().await?;
            self.initialized = true;
            page = client.statuses().await?;
        }
        Ok(page.items.into_iter().next())
    }
}

impl_collector!(
    StatusCollector,
    "acedata_distribution_status",
    [
        level,
        commission_ratio,
        invitee_spend,
        reward,
        next_level_remaining
    ]
);

impl StatusCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        // A handle of its own: `fetch` updates `self` while the attempt is running.
        let handle = self.client.clone();
        let client = handle.until(deadline);
        let status = self.fetch(&client).await?;
        let levels = match &status {
            Some(_) => client.levels().await?.items,
            None => Vec::new(),
        };
        self.update(status.as_ref(), &levels);
        Ok(())
    }
}

/// Polls the table of distribution levels.
pub struct LevelsCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
}

impl LevelsCollector {
    /// Write the level table to the gauges; no I/O. Levels gone upstream disappear.
    pub fn update(&self, levels: &[Level]) {
        let m = &self.metrics;
        let a = self.client.account();
        m.level_threshold.replace(
            a,
            levels
                .iter()
                .map(|l| (vec![l.level.to_string()], to_f64(l.threshold))),
        );
        m.level_commission_ratio.replace(
            a,
            levels
                .iter()
                .map(|l| (vec![l.level.to_string()], l.percentage)),
        );
    }
}

impl_collector!(
    LevelsCollector,
    "acedata_distribution_levels",
    [level_threshold, level_commission_ratio]
);

impl LevelsCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let levels = self.client.until(deadline).levels().await?.items;
        self.update(&levels);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn level(n: i64, threshold: &str) -> Level {
        Level {
            level: n,
            threshold: Decimal::from_str(threshold).unwrap(),
            percentage: 0.1,
        }
    }

    #[test]
    fn remaining_is_next_threshold_minus_spend_and_absent_at_top() {
        let levels = [level(3, "5000"), level(1, "0"), level(2, "1000")];
        let mut s = Status {
            level: level(1, "0"),
            price: Decimal::from_str("500.0").unwrap(),
            reward: Decimal::from_str("50").unwrap(),
        };
        assert_eq!(
            next_level_spend_remaining(&s, &levels),
            Some(Decimal::from_str("500").unwrap())
        );
        s.level = level(2, "1000");
        s.price = Decimal::from_str("1234.56").unwrap();
        assert_eq!(
            next_level_spend_remaining(&s, &levels),
            Some(Decimal::from_str("3765.44").unwrap())
        );
        s.level = level(3, "5000");
        assert_eq!(next_level_spend_remaining(&s, &levels), None);
    }
}
