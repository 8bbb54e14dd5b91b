//! The `acedata_usage` collector: credits spent per API today, over the last 7 days
//! and month to date, from one `GET /api/v1/usage/apis/aggregate/` per
//! `usage_interval`.
//!
//! The request asks for every row from the earlier of the first day of the current
//! UTC month and six days before today, so that one answer covers all three windows
//! (on the 3rd of a month that reaches back into the month before). Both documented
//! answer shapes are read: `results` + `api_map{name}` (the docs) and `items` +
//! `apis{title}` (the vendor's own clients). A row with a date that is not
//! `YYYY-MM-DD` fails the poll as `decode`, and the last good values stay.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Deserialize;
use time::{Date, Duration};
use tokio::time::Instant;

use super::client::AcedataClient;
use super::clock::Clock;
use super::metrics::AcedataMetrics;
use super::model::{decimal_from_string_or_number, parse_json, to_f64};
use crate::collector::{impl_collector, CollectError};

/// The `collector` label.
pub const NAME: &str = "acedata_usage";

/// Polls `GET /api/v1/usage/apis/aggregate/`.
pub struct UsageCollector {
    pub(super) client: AcedataClient,
    pub(super) metrics: Arc<AcedataMetrics>,
    pub(super) clock: Clock,
}

/// One row of the aggregate: an API's spend on one day.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Row {
    date: String,
    api_id: String,
    #[serde(deserialize_with = "decimal_from_string_or_number")]
    amount: Decimal,
}

/// An entry of `api_map` (`name`) or `apis` (`title`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct ApiName {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct RawAggregate {
    #[serde(default)]
    results: Option<Vec<Row>>,
    #[serde(default)]
    items: Option<Vec<Row>>,
    #[serde(default)]
    api_map: Option<HashMap<String, Option<ApiName>>>,
    #[serde(default)]
    apis: Option<HashMap<String, Option<ApiName>>>,
}

/// The spend of one API in each window; `None` where it has no row in that window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSpend {
    /// The `api` label: the API's name or title, else its id.
    pub name: String,
    pub today: Option<Decimal>,
    pub last_7d: Option<Decimal>,
    pub month_to_date: Option<Decimal>,
}

/// The first day the aggregate is asked for: the earlier of the first day of the
/// month and six days before `today`.
pub fn window_start(today: Date) -> Date {
    let month_start = today.replace_day(1).unwrap_or(today);
    let week_start = today.saturating_sub(Duration::days(6));
    month_start.min(week_start)
}

/// `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn parse_date(s: &str) -> Result<Date, CollectError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, format).map_err(|_| {
        CollectError::decode(format!("usage aggregate: `{s}` is not a YYYY-MM-DD date"))
    })
}

fn add(slot: &mut Option<Decimal>, amount: Decimal) {
    *slot = Some(slot.unwrap_or_default() + amount);
}

/// Parse the aggregate answer into each API's spend as of `today` (UTC), by `api_id`.
pub fn parse_aggregate(
    body: &[u8],
    today: Date,
) -> Result<BTreeMap<String, ApiSpend>, CollectError> {
    let raw: RawAggregate = parse_json(body, "usage aggregate")?;
    let rows = raw.results.or(raw.items).ok_or_else(|| {
        CollectError::decode("usage aggregate: neither `results` nor `items` in the answer")
    })?;
    let names: HashMap<String, String> = raw
        .api_map
        .into_iter()
        .chain(raw.apis)
        .flatten()
        .filter_map(|(id, entry)| {
            let entry = entry?;
            let name = entry.name.or(entry.title)?;
            (!name.trim().is_empty()).then_some((id, name))
        })
        .collect();
    let week_start = today.saturating_sub(Duration::days(6));
    let mut spend: BTreeMap<String, ApiSpend> = BTreeMap::new();
    for row in rows {
        let date = parse_date(&row.date)?;
        // Rows after today (an upstream clock ahead of ours) belong to no window yet.
        if date > today {
            continue;
        }
        let in_week = date >= week_start;
        let in_month = date.year() == today.year() && date.month() == today.month();
        if !(in_week || in_month) {
            continue;
        }
        let api = spend.entry(row.api_id.clone()).or_insert_with(|| ApiSpend {
            name: names
                .get(&row.api_id)
                .cloned()
                .unwrap_or(row.api_id.clone()),
            ..ApiSpend::default()
        });
        if date == today {
            add(&mut api.today, row.amount);
        }
        if in_week {
            add(&mut api.last_7d, row.amount);
        }
        if in_month {
            add(&mut api.month_to_date, row.amount);
        }
    }
    Ok(spend)
}

impl UsageCollector {
    /// Write the spend to the gauges, replacing the account's previous set; no I/O.
    pub fn update(&self, spend: &BTreeMap<String, ApiSpend>) {
        let m = &self.metrics;
        let a = self.client.account();
        let per_api = |value: fn(&ApiSpend) -> Option<Decimal>| {
            spend.iter().filter_map(move |(id, s)| {
                value(s).map(|v| (vec![id.clone(), s.name.clone()], to_f64(v)))
            })
        };
        m.usage_today.replace(a, per_api(|s| s.today));
        m.usage_last_7d.replace(a, per_api(|s| s.last_7d));
        m.usage_month_to_date
            .replace(a, per_api(|s| s.month_to_date));
    }
}

impl_collector!(
    UsageCollector,
    NAME,
    [usage_today, usage_last_7d, usage_month_to_date]
);

impl UsageCollector {
    async fn poll(&mut self, deadline: Instant) -> Result<(), CollectError> {
        let today = (self.clock)().date();
        let from = format!("{}T00:00:00Z", format_date(window_start(today)));
        let body = self.client.until(deadline).usage_aggregate(from).await?;
        let spend = parse_aggregate(&body, today)?;
        self.update(&spend);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::Collector;
    use std::str::FromStr;
    use time::macros::date;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// The SPEC's example answer, in the documented shape.
    const SPEC_RESULTS: &str = r#"{"results": [{"date": "2024-08-15", "api_id": "api-uuid-1", "amount": 45.5}], "total": 88.0, "api_map": {"api-uuid-1": {"name": "Midjourney Imagine", "path": "/v1/midjourney/imagine"}}}"#;
    /// The same, in the shape the vendor's own clients read.
    const SPEC_ITEMS: &str = r#"{"items": [{"date": "2024-08-15", "api_id": "api-uuid-1", "amount": 45.5}], "total": 88.0, "apis": {"api-uuid-1": {"title": "Midjourney Imagine"}}}"#;

    #[test]
    fn the_window_covers_the_month_and_the_last_seven_days() {
        assert_eq!(window_start(date!(2024 - 08 - 15)), date!(2024 - 08 - 01));
        assert_eq!(window_start(date!(2024 - 08 - 07)), date!(2024 - 08 - 01));
        // Early in the month the week reaches into the month before.
        assert_eq!(window_start(date!(2024 - 09 - 03)), date!(2024 - 08 - 28));
        assert_eq!(window_start(date!(2024 - 03 - 01)), date!(2024 - 02 - 24));
        assert_eq!(window_start(date!(2025 - 01 - 02)), date!(2024 - 12 - 27));
        assert_eq!(format_date(date!(2024 - 01 - 05)), "2024-01-05");
    }

    #[test]
    fn both_spec_shapes_parse_to_the_same_spend() {
        for body in [SPEC_RESULTS, SPEC_ITEMS] {
            let spend = parse_aggregate(body.as_bytes(), date!(2024 - 08 - 15)).unwrap();
            let api = &spend["api-uuid-1"];
            assert_eq!(api.name, "Midjourney Imagine", "{body}");
            assert_eq!(api.today, Some(dec("45.5")));
            assert_eq!(api.last_7d, Some(dec("45.5")));
            assert_eq!(api.month_to_date, Some(dec("45.5")));
        }
    }

    #[test]
    fn rows_fall_into_their_windows_exactly_across_a_month_boundary() {
        // Today is 2024-09-03: the week is Aug 28 .. Sep 3, the month Sep 1 .. Sep 3.
        let body = r#"{"results": [
            {"date": "2024-08-27", "api_id": "a", "amount": 1000},
            {"date": "2024-08-28", "api_id": "a", "amount": 0.1},
            {"date": "2024-08-31", "api_id": "a", "amount": "0.2"},
            {"date": "2024-09-01", "api_id": "a", "amount": 0.7},
            {"date": "2024-09-03", "api_id": "a", "amount": 0.01},
            {"date": "2024-09-03", "api_id": "a", "amount": 0.02},
            {"date": "2024-09-04", "api_id": "a", "amount": 500},
            {"date": "2024-08-29", "api_id": "b", "amount": 3},
            {"date": "2024-08-20", "api_id": "c", "amount": 3}
        ], "api_map": {"b": {"name": ""}, "c": null}}"#;
        let spend = parse_aggregate(body.as_bytes(), date!(2024 - 09 - 03)).unwrap();
        let a = &spend["a"];
        assert_eq!(a.name, "a", "no name: the id");
        assert_eq!(a.today, Some(dec("0.03")));
        assert_eq!(a.last_7d, Some(dec("1.03")));
        assert_eq!(a.month_to_date, Some(dec("0.73")));
        // An API without a row today or this month has no series there, never a 0.
        let b = &spend["b"];
        assert_eq!(
            (b.today, b.last_7d, b.month_to_date),
            (None, Some(dec("3")), None)
        );
        assert_eq!(b.name, "b", "an empty name is no name");
        assert!(!spend.contains_key("c"), "a row in no window: no API");
    }

    #[test]
    fn odd_api_names_are_kept_as_given() {
        let body = r#"{"items": [{"date": "2024-08-15", "api_id": "x", "amount": 1}],
                      "apis": {"x": {"title": "Chat \"GPT\"\n文字 ✓"}}}"#;
        let spend = parse_aggregate(body.as_bytes(), date!(2024 - 08 - 15)).unwrap();
        assert_eq!(spend["x"].name, "Chat \"GPT\"\n文字 ✓");
    }

    #[test]
    fn malformed_answers_are_decode_errors() {
        let today = date!(2024 - 08 - 15);
        for body in [
            r#"{"results": [{"date": "15/08/2024", "api_id": "a", "amount": 1}]}"#,
            r#"{"results": [{"date": "2024-02-30", "api_id": "a", "amount": 1}]}"#,
            r#"{"results": [{"date": "2024-08-15T00:00:00Z", "api_id": "a", "amount": 1}]}"#,
            r#"{"results": [{"date": "2024-08-15", "api_id": "a", "amount": "lots"}]}"#,
            r#"{"results": [{"date": "2024-08-15", "api_id": "a"}]}"#,
            r#"{"total": 1}"#,
            r#"{"results": [{"date": "2024-08-15", "#,
        ] {
            let e = parse_aggregate(body.as_bytes(), today).unwrap_err();
            assert_eq!(e.reason(), "decode", "{body}: {e}");
        }
    }

    /// 2024-09-03T12:00:00Z: early in a month, so the week reaches into August.
    fn september_third() -> time::OffsetDateTime {
        time::macros::datetime!(2024-09-03 12:00 UTC)
    }

    #[tokio::test]
    async fn a_poll_on_the_third_of_a_month_against_the_simulator() {
        use crate::metrics::Registry;
        use crate::simulator::{Route, SimOptions, Simulator};
        let sim = Simulator::start(SimOptions {
            now: Some(september_third().unix_timestamp()),
            ..SimOptions::default()
        })
        .await
        .unwrap();
        sim.add_acedata_account("tok");
        let registry = Registry::new();
        let mut c = UsageCollector {
            client: AcedataClient::for_test(&sim.base_url(), "tok"),
            metrics: Arc::new(AcedataMetrics::new(&registry)),
            clock: september_third,
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        c.collect(deadline).await.unwrap();
        let req = sim.last_request(Route::AcedataUsage).unwrap();
        assert_eq!(
            req.query_param("created_at_from").as_deref(),
            Some("2024-08-28T00:00:00Z")
        );
        let mut out = Vec::new();
        registry.encode(&mut out);
        let t = String::from_utf8(out).unwrap();
        let mj = r#"{account="main",api="Midjourney Imagine",api_id="api-mj"}"#;
        let legacy = r#"{account="main",api="api-legacy",api_id="api-legacy"}"#;
        for line in [
            // Sep 1-2 at 20, Sep 3 at 96.25; Aug 28-31 only in the week.
            format!("acedata_usage_today_credits{mj} 96.25"),
            format!("acedata_usage_month_to_date_credits{mj} 136.25"),
            format!("acedata_usage_last_7d_credits{mj} 216.25"),
            // Three days ago is Aug 31: in the week, not in September.
            format!("acedata_usage_last_7d_credits{legacy} 2"),
        ] {
            assert!(t.contains(&line), "missing {line} in:\n{t}");
        }
        assert!(
            !t.contains(&format!("acedata_usage_month_to_date_credits{legacy}")),
            "{t}"
        );
        sim.shutdown().await;
    }

    #[test]
    fn update_replaces_the_accounts_series() {
        use crate::metrics::Registry;
        let registry = Registry::new();
        let c = UsageCollector {
            client: AcedataClient::unreachable(),
            metrics: Arc::new(AcedataMetrics::new(&registry)),
            clock: super::super::clock::system,
        };
        let text = || {
            let mut out = Vec::new();
            registry.encode(&mut out);
            String::from_utf8(out).unwrap()
        };
        let today = date!(2024 - 08 - 15);
        c.update(&parse_aggregate(SPEC_RESULTS.as_bytes(), today).unwrap());
        let t = text();
        for name in ["today", "last_7d", "month_to_date"] {
            let line = format!(
                r#"acedata_usage_{name}_credits{{account="main",api="Midjourney Imagine",api_id="api-uuid-1"}} 45.5"#
            );
            assert!(t.contains(&line), "missing {line} in:\n{t}");
        }
        c.update(&parse_aggregate(br#"{"results": []}"#, today).unwrap());
        assert!(!text().contains("api-uuid-1"), "gone APIs are removed");
    }
}
