//! The `acedata_orders` collector: the top-up orders created in the last 30 days, from
//! every page of `GET /api/v1/orders/?created_at_from=…` each interval (one page for
//! most accounts).
//!
//! Exported: the count per state (the six documented states always, 0 when none; an
//! undocumented state as given), the summed `price` of `Finished` orders (a number in
//! the list, a decimal string in other answers: both read exactly), the newest order
//! per state and the oldest order still `Pending`. An order listed twice while the
//! pages shift under a new order is counted once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::client::AcedataClient;
use super::clock::Clock;
use super::metrics::AcedataMetrics;
use super::model::{decimal_from_string_or_number, parse_page, parse_timestamp, to_f64};
use super::paging::all_pages;
use crate::collector::{impl_collector, CollectError};

/// The `collector` label.
pub const NAME: &str = "acedata_orders";

/// The documented order states, always exported.
pub const STATES: [&str; 6] = [
    "Pending", "Paid", "Finished", "Expired", "Failed", "Refunded",
];

/// How far back the orders are read.
pub const WINDOW: time::Duration = time::Duration::days(30);

/// Polls `GET /api/v1/orders/`.
pub struct OrdersCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
    pub(super) clock: Clock,
}

/// One order, reduced to what the metrics need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    #[serde(default)]
    pub id: Option<String>,
    pub state: String,
    #[serde(default, deserialize_with = "optional_price")]
    pub price: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_time")]
    pub created_at: Option<f64>,
}

fn optional_price<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    struct Price(#[serde(deserialize_with = "decimal_from_string_or_number")] Decimal);
    Ok(Option::<Price>::deserialize(d)?.map(|p| p.0))
}

fn optional_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Option::<String>::deserialize(d)? {
        Some(s) => parse_timestamp(&s).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

/// Parse one orders page: `(count, orders)`; `count` says when the last page is read.
pub fn parse_orders_page(body: &[u8]) -> Result<(u64, Vec<Order>), CollectError> {
    parse_page(body, "orders")
}

/// What the metrics show of the orders of the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderSummary {
    /// Orders per state, the documented states included at 0.
    pub counts: BTreeMap<String, u64>,
    /// Sum of the `Finished` orders' price; `None` when one of them has no price.
    pub finished_price: Option<Decimal>,
    /// Newest `created_at` per state.
    pub last_created: BTreeMap<String, f64>,
    /// Oldest `created_at` of a `Pending` order.
    pub oldest_pending: Option<f64>,
}

/// Summarise the orders created at or after `from` (Unix seconds); an order without
/// `created_at` is counted but dates nothing.
pub fn summarize(orders: &[Order], from: f64) -> OrderSummary {
    let mut s = OrderSummary {
        counts: STATES.iter().map(|st| (st.to_string(), 0)).collect(),
        finished_price: Some(Decimal::ZERO),
        ..OrderSummary::default()
    };
    let mut seen = HashSet::new();
    for o in orders {
        if o.created_at.is_some_and(|t| t < from) {
            continue;
        }
        if let Some(id) = &o.id {
            if !seen.insert(id.as_str()) {
                continue;
            }
        }
        *s.counts.entry(o.state.clone()).or_default() += 1;
        if o.state == "Finished" {
            s.finished_price = match (s.finished_price, o.price) {
                (Some(sum), Some(p)) => Some(sum + p),
                _ => None,
            };
        }
        if let Some(t) = o.created_at {
            let last = s.last_created.entry(o.state.clone()).or_insert(t);
            *last = last.max(t);
            if o.state == "Pending" {
                s.oldest_pending = Some(s.oldest_pending.map_or(t, |p: f64| p.min(t)));
            }
        }
    }
    s
}

/// `created_at_from` of the request: 30 days before `now`, RFC 3339 in UTC.
pub fn window_from(now: OffsetDateTime) -> OffsetDateTime {
    (now - WINDOW).replace_nanosecond(0).unwrap_or(now - WINDOW)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl OrdersCollector {
    /// Write the summary to the gauges, replacing the account's previous set; no I/O.
    pub fn update(&self, s: &OrderSummary) {
        let m = &self.metrics;
        let a = self.client.account();
        m.orders.replace(
            a,
            s.counts.iter().map(|(st, n)| (vec![st.clone()], *n as f64)),
        );
        m.orders_finished_price
            .replace(a, s.finished_price.map(|p| (vec![], to_f64(p))));
        m.order_last_created.replace(
            a,
            s.last_created.iter().map(|(st, t)| (vec![st.clone()], *t)),
        );
        m.order_oldest_pending
            .replace(a, s.oldest_pending.map(|t| (vec![], t)));
    }
}

impl_collector!(
    OrdersCollector,
    NAME,
    [
        orders,
        orders_finished_price,
        order_last_created,
        order_oldest_pending
    ]
);

impl OrdersCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let from = window_from((self.clock)().to_offset(time::UtcOffset::UTC));
        let text = rfc3339(from);
        let client = self.client.until(deadline);
        let orders = all_pages(|limit, offset| {
            let (client, text) = (&client, &text);
            async move {
                let body = client.orders_page(text, limit, offset).await?;
                parse_orders_page(&body)
            }
        })
        .await?;
        self.update(&summarize(&orders, from.unix_timestamp() as f64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use time::macros::datetime;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn orders(results: &str) -> Vec<Order> {
        let body = format!(r#"{{"count": 99, "results": [{results}]}}"#);
        parse_orders_page(body.as_bytes()).unwrap().1
    }

    #[test]
    fn price_as_number_or_string_sums_exactly() {
        let o = orders(
            r#"{"id": "o1", "state": "Finished", "price": 0.1, "amount": 10, "application_id": "app", "created_at": "2024-08-10T00:00:00Z"},
               {"id": "o2", "state": "Finished", "price": "0.20", "created_at": "2024-08-11T00:00:00.000000Z"},
               {"id": "o3", "state": "Failed", "price": 5, "created_at": "2024-08-12T00:00:00Z"}"#,
        );
        let s = summarize(&o, 0.0);
        assert_eq!(s.finished_price, Some(dec("0.3")));
        assert_eq!(to_f64(s.finished_price.unwrap()), 0.3);
        assert_eq!(s.counts["Finished"], 2);
        assert_eq!(s.counts["Failed"], 1);
        for st in ["Pending", "Paid", "Expired", "Refunded"] {
            assert_eq!(s.counts[st], 0, "{st} is always there");
        }
        assert_eq!(s.last_created["Finished"], 1_723_334_400.0);
        assert!(!s.last_created.contains_key("Pending"));
        assert_eq!(s.oldest_pending, None);
    }

    #[test]
    fn pending_unknown_states_duplicates_and_the_window() {
        let o = orders(
            r#"{"id": "p1", "state": "Pending", "created_at": "2024-08-12T10:00:00Z"},
               {"id": "p2", "state": "Pending", "created_at": "2024-08-12T09:00:00Z"},
               {"id": "p2", "state": "Pending", "created_at": "2024-08-12T09:00:00Z"},
               {"id": "p0", "state": "Pending", "created_at": "2024-07-01T00:00:00Z"},
               {"id": "w", "state": "Chargeback", "created_at": null},
               {"state": "Finished", "price": null}"#,
        );
        let from = datetime!(2024-07-13 10:00 UTC).unix_timestamp() as f64;
        let s = summarize(&o, from);
        assert_eq!(
            s.counts["Pending"], 2,
            "a repeat and an order before the window don't count"
        );
        assert_eq!(
            s.counts["Chargeback"], 1,
            "an unknown state is exported as given"
        );
        assert_eq!(s.oldest_pending, Some(1_723_453_200.0));
        assert_eq!(s.last_created["Pending"], 1_723_456_800.0);
        assert!(!s.last_created.contains_key("Chargeback"));
        assert_eq!(
            s.finished_price, None,
            "a Finished order without price: no sum that lies"
        );
    }

    #[test]
    fn malformed_orders_are_decode_errors() {
        for body in [
            r#"{"count": 1, "results": [{"id": "o", "state": "Finished", "price": "a lot"}]}"#,
            r#"{"count": 1, "results": [{"id": "o", "state": "Finished", "created_at": "yesterday"}]}"#,
            r#"{"count": 1, "results": [{"id": "o", "price": 1}]}"#,
            r#"{"results": []}"#,
        ] {
            let e = parse_orders_page(body.as_bytes()).unwrap_err();
            assert_eq!(e.reason(), "decode", "{body}: {e}");
        }
        let (count, items) = parse_orders_page(br#"{"count": 0, "items": []}"#).unwrap();
        assert_eq!((count, items.len()), (0, 0));
    }

    #[test]
    fn the_window_starts_thirty_days_back() {
        let now = datetime!(2024-03-01 12:34:56.789 UTC);
        assert_eq!(rfc3339(window_from(now)), "2024-01-31T12:34:56Z");
    }
}
