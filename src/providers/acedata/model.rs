//! Ace Data Cloud wire types and pure parsers (seeds 000 and 002).
//!
//! Money is kept as `Decimal` built from the number's shortest decimal text, so that
//! sums are exact to the cent; it becomes `f64` only when written to a gauge.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::collector::CollectError;

/// `POST /api/v1/balances/initialize/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Balance {
    /// The `credits` string parsed as a decimal.
    #[serde(deserialize_with = "decimal_from_string")]
    pub credits: Decimal,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default, deserialize_with = "optional_timestamp")]
    pub updated_at: Option<f64>,
}

/// One package of the balance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub amount: f64,
    #[serde(deserialize_with = "decimal_from_string_or_number")]
    pub price: Decimal,
}

/// The level object inside a distribution status.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Level {
    pub level: i64,
    #[serde(deserialize_with = "decimal_from_number")]
    pub threshold: Decimal,
    pub percentage: f64,
}

/// One distribution status (`results[0]` of `GET /api/v1/distribution-statuses/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Status {
    pub level: Level,
    /// Total spent by invited users.
    #[serde(deserialize_with = "decimal_from_number")]
    pub price: Decimal,
    /// Total commission earned.
    #[serde(deserialize_with = "decimal_from_number")]
    pub reward: Decimal,
}

/// One commission record, reduced to what the aggregates need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoryRecord {
    pub id: String,
    #[serde(deserialize_with = "decimal_from_number")]
    pub reward: Decimal,
    pub invalid: bool,
    #[serde(default)]
    pub order: Option<Order>,
    #[serde(default, deserialize_with = "optional_timestamp")]
    pub created_at: Option<f64>,
}

/// The order a commission came from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "decimal_from_number")]
    pub price: Decimal,
}

impl HistoryRecord {
    /// The order amount, zero when the record carries no order.
    pub fn order_amount(&self) -> Decimal {
        self.order.as_ref().map(|o| o.price).unwrap_or_default()
    }
}

/// One application (a subscribed API service with its own quota) of
/// `GET /api/v1/applications/`, reduced to what the metrics need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Application {
    pub id: String,
    pub service_id: String,
    /// `Usage` or `Period`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `Individual` or `Global`.
    #[serde(default)]
    pub scope: String,
    #[serde(deserialize_with = "decimal_from_number")]
    pub remaining_amount: Decimal,
    #[serde(deserialize_with = "decimal_from_number")]
    pub used_amount: Decimal,
    pub disabled: bool,
    pub allow_consume_global: bool,
    #[serde(default, deserialize_with = "optional_timestamp")]
    pub expired_at: Option<f64>,
    #[serde(default)]
    pub service: Option<Service>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub credentials: Vec<Credential>,
}

impl Application {
    /// The `service` label: the service's alias, else `service_id`.
    pub fn service_label(&self) -> &str {
        self.service
            .as_ref()
            .and_then(|s| s.alias.as_deref())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or(&self.service_id)
    }

    /// The `service_name` label: the service's display name, else the `service` label.
    pub fn service_name(&self) -> &str {
        self.service
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| self.service_label())
    }
}

/// The service an application belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// One API key of an application. The key itself (`token`) is deliberately not a
/// field: it is a secret, and what is never read can never be logged or exported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Credential {
    pub id: String,
    #[serde(default, deserialize_with = "optional_decimal_from_number")]
    pub limited_amount: Option<Decimal>,
    #[serde(deserialize_with = "decimal_from_number")]
    pub used_amount: Decimal,
    #[serde(default, deserialize_with = "optional_timestamp")]
    pub expired_at: Option<f64>,
}

/// A list answer: `{count, results}` as documented, or `{count, items}` as the
/// vendor's own clients read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    pub count: Option<u64>,
    pub items: Vec<T>,
}

#[derive(Deserialize)]
struct RawList<T> {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default = "Option::default")]
    results: Option<Vec<T>>,
    #[serde(default = "Option::default")]
    items: Option<Vec<T>>,
}

/// Parse the balance answer.
pub fn parse_balance(body: &[u8]) -> Result<Balance, CollectError> {
    parse_json(body, "balance")
}

/// Parse a list answer of any item type.
pub fn parse_list<T: DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<ListPage<T>, CollectError> {
    let raw: RawList<T> = parse_json(body, what)?;
    let items = match (raw.results, raw.items) {
        (Some(r), _) => r,
        (None, Some(i)) => i,
        (None, None) => {
            return Err(CollectError::Decode(format!(
                "{what}: neither `results` nor `items` in the answer"
            )))
        }
    };
    Ok(ListPage {
        count: raw.count,
        items,
    })
}

/// Parse one page of a list read page by page: `(count, items)`. `count` is required,
/// as it says when the last page has been read.
pub fn parse_page<T: DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<(u64, Vec<T>), CollectError> {
    let page = parse_list::<T>(body, what)?;
    let count = page
        .count
        .ok_or_else(|| CollectError::decode(format!("{what}: `count` is missing")))?;
    Ok((count, page.items))
}

/// Parse a distribution-statuses answer.
pub fn parse_statuses(body: &[u8]) -> Result<ListPage<Status>, CollectError> {
    parse_list(body, "distribution statuses")
}

/// Parse a distribution-levels answer.
pub fn parse_levels(body: &[u8]) -> Result<ListPage<Level>, CollectError> {
    parse_list(body, "distribution levels")
}

/// Parse one distribution-histories page; `count` is required here because the
/// sync needs it.
pub fn parse_history_page(body: &[u8]) -> Result<(u64, Vec<HistoryRecord>), CollectError> {
    parse_page(body, "distribution histories")
}

/// Parse one applications page; `count` is required to know when the last page
/// has been read.
pub fn parse_applications_page(body: &[u8]) -> Result<(u64, Vec<Application>), CollectError> {
    parse_page(body, "applications")
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CollectError> {
    serde_json::from_slice(body).map_err(|e| CollectError::Decode(format!("{what}: {e}")))
}

fn decimal_text(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|_| format!("`{s}` is not a decimal number"))
}

/// A JSON string holding a decimal (`"100.00"`).
fn decimal_from_string<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let s = String::deserialize(d)?;
    decimal_text(&s).map_err(D::Error::custom)
}

/// A JSON number, kept exact as the decimal it was written as.
fn decimal_from_number<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let f = f64::deserialize(d)?;
    decimal_from_f64(f).map_err(D::Error::custom)
}

/// A JSON number or null.
fn optional_decimal_from_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Decimal>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(f) => decimal_from_f64(f).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

/// A list that may be given as null.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A decimal written either as a string or as a number.
pub(crate) fn decimal_from_string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(f64),
    }
    match Either::deserialize(d)
        .map_err(|_| D::Error::custom("expected a decimal string or number"))?
    {
        Either::S(s) => decimal_text(&s).map_err(D::Error::custom),
        Either::N(f) => decimal_from_f64(f).map_err(D::Error::custom),
    }
}

/// `f64`'s `Display` is the shortest text that reads back as the same number, i.e.
/// the decimal the JSON most likely said.
pub fn decimal_from_f64(f: f64) -> Result<Decimal, String> {
    if !f.is_finite() {
        return Err(format!("{f} is not a finite number"));
    }
    decimal_text(&f.to_string())
}

fn optional_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    parse_timestamp(&s).map(Some).map_err(D::Error::custom)
}

/// RFC 3339 text to Unix seconds, the double nearest to the exact time: the seconds and
/// their fraction are read as one decimal (float division of the nanoseconds rounds
/// twice, and would be a step off what a client computes from the same text).
pub fn parse_timestamp(s: &str) -> Result<f64, String> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time ({e})"))?;
    let nanos = t.unix_timestamp_nanos();
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
        .parse::<f64>()
        .map_err(|e| format!("`{s}` is not an RFC 3339 time ({e})"))
}

/// A decimal as a gauge value.
pub fn to_f64(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rust_decimal::prelude::FromPrimitive;

    /// A timestamp is the double nearest to its text, as a client reading the same text
    /// computes it (microseconds, as the vendor writes them, and nanoseconds).
    #[test]
    fn timestamps_are_the_nearest_double() {
        for micros in 0..2000 {
            let text = format!("2026-12-05T10:46:20.{:06}Z", micros * 499 % 1_000_000);
            let exact = format!("1796467580.{:06}", micros * 499 % 1_000_000);
            assert_eq!(
                parse_timestamp(&text),
                Ok(exact.parse::<f64>().unwrap()),
                "{text}"
            );
        }
        assert_eq!(
            parse_timestamp("2026-12-05T12:46:20.123456789+02:00"),
            Ok("1796467580.123456789".parse::<f64>().unwrap())
        );
        assert_eq!(parse_timestamp("1969-12-31T23:59:58.5Z"), Ok(-1.5),);
    }

    /// The answer of seed 000, verbatim.
    const SEED_BALANCE: &str = r#"{
"id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
"user_id": "user-uuid",
"credits": "100.00",
"packages": [
{
"id": "pkg-uuid",
"name": "Basic Package",
"amount": 100,
"price": "9.90"
}
],
"created_at": "2024-01-15T10:30:00Z",
"updated_at": "2024-01-15T10:30:00Z"
}"#;

    const SEED_STATUS: &str = r#"{
"count": 1,
"results": [
{
"id": "status-uuid",
"user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
"level": {
"id": "level-uuid",
"level": 1,
"threshold": 0,
"percentage": 0.1
},
"price": 500.0,
"reward": 50.0,
"tags": null,
"metadata": null,
"created_at": "2024-01-01T00:00:00.000000Z",
"updated_at": "2024-08-01T00:00:00.000000Z"
}
]
}"#;

    const SEED_LEVELS: &str = r#"{
"count": 3,
"results": [
{"id": "level-1-uuid","level": 1,"threshold": 0,"percentage": 0.1,"tags": null,"metadata": null},
{"id": "level-2-uuid","level": 2,"threshold": 1000,"percentage": 0.15,"tags": null,"metadata": null},
{"id": "level-3-uuid","level": 3,"threshold": 5000,"percentage": 0.2,"tags": null,"metadata": null}
]
}"#;

    const SEED_HISTORY: &str = r#"{
"count": 20,
"results": [
{
"id": "history-uuid",
"user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
"inviter_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
"invitee_id": "new-user-uuid",
"order_id": "order-uuid",
"percentage": 0.1,
"reward": 5.0,
"invalid": false,
"order": {
"id": "order-uuid",
"price": 50.0,
"state": "Finished"
},
"invitee": {
"id": "new-user-uuid",
"nickname": "New User"
},
"tags": null,
"metadata": null,
"created_at": "2024-08-01T10:00:00.000000Z"
}
]
}"#;

    /// The example application of the SPEC ("Ace Data Cloud service quotas"), verbatim.
    pub(crate) const SPEC_APPLICATION: &str = r#"{"id": "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a", "user_id": "u-1",
 "service_id": "svc-mj", "type": "Usage", "scope": "Individual",
 "remaining_amount": 312.5, "used_amount": 187.5, "paid": true, "disabled": false,
 "allow_consume_global": false, "expired_at": null,
 "service": {"id": "svc-mj", "alias": "midjourney", "name": "Midjourney"},
 "packages": [{"id": "p-1", "name": "500 Times Package", "type": "Usage", "price": 49.99, "amount": 500}],
 "credentials": [{"id": "cred-1", "token": "sk-never-export-this", "type": "Token", "host": null,
                  "limited_amount": 200, "used_amount": 150.25, "expired_at": null}],
 "tags": null, "metadata": null,
 "created_at": "2024-05-30T14:41:20.052849Z", "updated_at": "2024-08-16T07:51:15.603207Z"}"#;

    fn applications_body(key: &str, element: &str) -> String {
        format!(r#"{{"count": 1, "{key}": [{element}]}}"#)
    }

    #[test]
    fn spec_application_parses() {
        let (count, apps) =
            parse_applications_page(applications_body("results", SPEC_APPLICATION).as_bytes())
                .unwrap();
        assert_eq!(count, 1);
        let a = &apps[0];
        assert_eq!(a.id, "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a");
        assert_eq!(a.service_label(), "midjourney");
        assert_eq!(a.service_name(), "Midjourney");
        assert_eq!((a.kind.as_str(), a.scope.as_str()), ("Usage", "Individual"));
        assert_eq!(a.remaining_amount, dec("312.5"));
        assert_eq!(a.used_amount, dec("187.5"));
        assert!(!a.disabled && !a.allow_consume_global);
        assert_eq!(a.expired_at, None);
        assert_eq!(a.credentials.len(), 1);
        let c = &a.credentials[0];
        assert_eq!(c.id, "cred-1");
        assert_eq!(c.limited_amount, Some(dec("200")));
        assert_eq!(c.used_amount, dec("150.25"));
        assert_eq!(c.expired_at, None);
        let items = applications_body("items", SPEC_APPLICATION);
        assert_eq!(parse_applications_page(items.as_bytes()).unwrap().1, apps);
    }

    #[test]
    fn the_api_key_token_is_never_kept() {
        let (_, apps) =
            parse_applications_page(applications_body("results", SPEC_APPLICATION).as_bytes())
                .unwrap();
        let debug = format!("{apps:?}");
        assert!(!debug.contains("sk-never-export-this"), "{debug}");
        // A token of a wrong type is not even looked at.
        let odd = SPEC_APPLICATION.replace(r#""sk-never-export-this""#, r#"{"k": [1]}"#);
        assert!(parse_applications_page(applications_body("results", &odd).as_bytes()).is_ok());
    }

    #[test]
    fn application_fallbacks_and_optional_fields() {
        let period = SPEC_APPLICATION
            .replace(r#""alias": "midjourney""#, r#""alias": null"#)
            .replace(r#""name": "Midjourney""#, r#""name": """#)
            .replace(r#""type": "Usage""#, r#""type": "Period""#)
            .replace(
                r#""allow_consume_global": false, "expired_at": null"#,
                r#""allow_consume_global": true, "expired_at": "2024-09-01T00:00:00Z""#,
            )
            .replace(r#""limited_amount": 200"#, r#""limited_amount": null"#)
            .replace(
                r#""used_amount": 150.25, "expired_at": null"#,
                r#""used_amount": 150.25, "expired_at": "2024-08-01T10:00:00.000000Z""#,
            );
        let (_, apps) =
            parse_applications_page(applications_body("results", &period).as_bytes()).unwrap();
        let a = &apps[0];
        assert_eq!(a.service_label(), "svc-mj");
        assert_eq!(a.service_name(), "svc-mj");
        assert_eq!(a.kind, "Period");
        assert!(a.allow_consume_global);
        assert_eq!(a.expired_at, Some(1725148800.0));
        assert_eq!(a.credentials[0].limited_amount, None);
        assert_eq!(a.credentials[0].expired_at, Some(1722506400.0));
        let no_keys = SPEC_APPLICATION.replace(
            &SPEC_APPLICATION[SPEC_APPLICATION.find(r#""credentials""#).unwrap()
                ..SPEC_APPLICATION.find(r#""tags""#).unwrap()],
            r#""credentials": null, "#,
        );
        let (_, apps) =
            parse_applications_page(applications_body("results", &no_keys).as_bytes()).unwrap();
        assert!(apps[0].credentials.is_empty());
    }

    #[test]
    fn wrongly_typed_applications_are_decode_errors() {
        for (from, to) in [
            (
                r#""remaining_amount": 312.5"#,
                r#""remaining_amount": "lots""#,
            ),
            (
                r#""remaining_amount": 312.5"#,
                r#""remaining_amount": null"#,
            ),
            (r#""used_amount": 187.5"#, r#""used_amount": [1]"#),
            (r#""disabled": false"#, r#""disabled": "no""#),
            (r#""allow_consume_global": false, "#, ""),
            (r#""expired_at": null,"#, r#""expired_at": "tomorrow","#),
            (r#""limited_amount": 200"#, r#""limited_amount": "200x""#),
            (r#""id": "cred-1""#, r#""id": 1"#),
        ] {
            let body = applications_body("results", &SPEC_APPLICATION.replacen(from, to, 1));
            let e = parse_applications_page(body.as_bytes()).unwrap_err();
            assert_eq!(e.reason(), "decode", "{to}: {e}");
            assert!(!e.to_string().contains("sk-never"), "{e}");
        }
        let no_count = format!(r#"{{"results": [{SPEC_APPLICATION}]}}"#);
        assert_eq!(
            parse_applications_page(no_count.as_bytes())
                .unwrap_err()
                .reason(),
            "decode"
        );
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn seed_balance_parses() {
        let b = parse_balance(SEED_BALANCE.as_bytes()).unwrap();
        assert_eq!(b.credits, dec("100.00"));
        assert_eq!(b.packages.len(), 1);
        assert_eq!(b.packages[0].id, "pkg-uuid");
        assert_eq!(b.packages[0].name, "Basic Package");
        assert_eq!(b.packages[0].amount, 100.0);
        assert_eq!(b.packages[0].price, dec("9.90"));
        assert_eq!(b.updated_at, Some(1705314600.0));
    }

    #[test]
    fn unparseable_credits_are_a_decode_error_never_zero() {
        for credits in [r#""abc""#, r#""""#, "null", "{}", "[]"] {
            let body = SEED_BALANCE.replace(r#""100.00""#, credits);
            let e = parse_balance(body.as_bytes()).unwrap_err();
            assert_eq!(e.reason(), "decode", "{credits}: {e}");
        }
    }

    #[test]
    fn seed_status_parses() {
        let p = parse_statuses(SEED_STATUS.as_bytes()).unwrap();
        assert_eq!(p.count, Some(1));
        let s = &p.items[0];
        assert_eq!(s.level.level, 1);
        assert_eq!(s.level.percentage, 0.1);
        assert_eq!(s.price, dec("500"));
        assert_eq!(s.reward, dec("50"));
    }

    #[test]
    fn seed_levels_parse_from_results_and_items() {
        let p = parse_levels(SEED_LEVELS.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.items[2].threshold, dec("5000"));
        assert_eq!(p.items[1].percentage, 0.15);
        let items = SEED_LEVELS.replace(r#""results""#, r#""items""#);
        assert_eq!(parse_levels(items.as_bytes()).unwrap(), p);
        let neither = SEED_LEVELS.replace(r#""results""#, r#""data""#);
        assert_eq!(
            parse_levels(neither.as_bytes()).unwrap_err().reason(),
            "decode"
        );
    }

    #[test]
    fn seed_history_parses() {
        let (count, records) = parse_history_page(SEED_HISTORY.as_bytes()).unwrap();
        assert_eq!(count, 20);
        assert_eq!(records[0].id, "history-uuid");
        assert_eq!(records[0].reward, dec("5"));
        assert!(!records[0].invalid);
        assert_eq!(records[0].order_amount(), dec("50"));
        assert_eq!(records[0].created_at, Some(1722506400.0));
    }

    #[test]
    fn wrongly_typed_fields_are_decode_errors() {
        let cases = [
            SEED_HISTORY.replace(r#""reward": 5.0"#, r#""reward": "5.0x""#),
            SEED_HISTORY.replace(r#""invalid": false"#, r#""invalid": "no""#),
            SEED_HISTORY.replace(r#""count": 20"#, r#""count": "twenty""#),
            SEED_STATUS.replace(r#""price": 500.0"#, r#""price": null"#),
            SEED_LEVELS.replace(r#""level": 2"#, r#""level": "two""#),
            "<html>bad gateway</html>".to_string(),
            String::new(),
            "{\"count\": 1, \"results\": [".to_string(),
        ];
        for body in cases {
            let e = parse_history_page(body.as_bytes())
                .err()
                .or_else(|| parse_statuses(body.as_bytes()).err())
                .or_else(|| parse_levels(body.as_bytes()).err());
            if body.contains("history-uuid") {
                assert!(parse_history_page(body.as_bytes()).is_err(), "{body}");
            }
            assert_eq!(e.expect("some parser must reject").reason(), "decode");
        }
        assert!(parse_statuses(SEED_STATUS.replace("500.0", "null").as_bytes()).is_err());
        assert!(parse_levels(
            SEED_LEVELS
                .replace(r#""level": 2"#, r#""level": "two""#)
                .as_bytes()
        )
        .is_err());
    }

    #[test]
    fn sums_of_cents_are_exact() {
        let tenth = decimal_from_f64(0.1).unwrap();
        let mut sum = Decimal::ZERO;
        for _ in 0..10 {
            sum += tenth;
        }
        assert_eq!(sum, Decimal::ONE);
        assert_eq!(decimal_from_f64(12.35).unwrap(), dec("12.35"));
        assert_eq!(Decimal::from_f64(0.3), Some(dec("0.3")));
    }
}
