//! Ace Data Cloud spend, top-up orders and auto-recharge configurations (SPEC, "Spend,
//! orders and auto-recharge"), built as literal JSON:
//! - `GET /api/v1/usage/apis/aggregate/`: rows of the last 35 days, dated from the
//!   simulator's clock (so "today" is the caller's today), filtered by
//!   `created_at_from`, in the documented shape (`results` + `api_map{name, path}`) or
//!   the vendor clients' (`items` + `apis{title}`), [`UsageShape`];
//! - `GET /api/v1/orders/`: newest first, filtered by `created_at_from`, paged;
//! - `GET /api/v1/auto-recharge-configs/`: paged.
//!
//! The seed data sets off every spend alert: `Midjourney Imagine` spends 96.25 today
//! against 20 a day before (a spike), the 7-day spend leaves the seed's 100 credits
//! under three days, one order `Failed` three hours ago, one has been `Pending` for
//! two hours, and the `suno` application (quota 40, threshold 50 in `--demo`) has its
//! auto-recharge `Paused`. One API's name carries quotes, a newline and non-ASCII
//! text; one API has no name at all.

use serde_json::{json, Value};
use time::{Date, Duration, OffsetDateTime};

use super::applications::FALLING_APP;
use crate::simulator::clock::format_secs;
use crate::simulator::reply::Reply;
use crate::simulator::{ListKey, SimOptions, UsageShape};

/// How many days back the usage rows reach (always beyond the month and the week).
pub(crate) const USAGE_DAYS: i64 = 35;

/// The application whose auto-recharge is `Paused` (the seed `suno` application).
pub(crate) const PAUSED_APP: &str = "00000000-0000-4000-b000-000000000002";

/// The seed orders, each created a fixed time before `now`.
fn seed_orders(now: i64) -> Vec<Value> {
    let order = |id: &str, state: &str, price: Value, amount: u64, app: &str, age_secs: i64| {
        json!({
            "id": id, "user_id": "u-1", "state": state, "price": price, "amount": amount,
            "application_id": app, "package_id": "pkg-uuid",
            "created_at": format_secs(now - age_secs),
            "updated_at": format_secs(now - age_secs + 60),
        })
    };
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;
    vec![
        order("ord-1", "Finished", json!(49.99), 500, FALLING_APP, 2 * DAY),
        // The price as a decimal string, as other answers give it.
        order(
            "ord-2",
            "Finished",
            json!("19.90"),
            100,
            PAUSED_APP,
            10 * DAY,
        ),
        order("ord-3", "Failed", json!(99.0), 1000, FALLING_APP, 3 * HOUR),
        order("ord-4", "Pending", json!(9.9), 100, PAUSED_APP, 2 * HOUR),
        order("ord-5", "Expired", json!(9.9), 100, PAUSED_APP, 5 * DAY),
        order("ord-6", "Refunded", json!(5), 50, FALLING_APP, 20 * DAY),
        // Older than 30 days: outside every window.
        order(
            "ord-7",
            "Finished",
            json!(1000),
            10000,
            FALLING_APP,
            45 * DAY,
        ),
    ]
}

/// The seed auto-recharge configurations.
fn seed_auto_recharge() -> Vec<Value> {
    vec![
        json!({"id": "ar-1", "user_id": "u-1", "application_id": FALLING_APP, "status": "Active",
               "threshold": 50, "package_id": "p-1", "created_at": "2024-06-01T00:00:00Z"}),
        json!({"id": "ar-2", "user_id": "u-1", "application_id": PAUSED_APP, "status": "Paused",
               "threshold": 20, "package_id": "p-2", "created_at": "2024-06-02T00:00:00Z"}),
        json!({"id": "ar-3", "user_id": "u-1", "application_id": "00000000-0000-4000-b000-000000000006",
               "status": "Disabled", "threshold": 10, "package_id": null, "created_at": "2024-06-03T00:00:00Z"}),
    ]
}

/// The seed usage rows: `(days before today, api_id, amount)`.
fn seed_usage() -> Vec<(i64, &'static str, Value)> {
    let mut rows = vec![(0, "api-mj", json!(96.25))];
    for days in 1..USAGE_DAYS {
        rows.push((days, "api-mj", json!(20)));
    }
    for days in 0..USAGE_DAYS {
        rows.push((days, "api-suno", json!(4.2)));
    }
    rows.push((2, "api-chat", json!(1.5)));
    rows.push((9, "api-chat", json!(0.75)));
    rows.push((3, "api-legacy", json!(2)));
    rows
}

/// The name of each seed API (`api-legacy` has none).
const API_NAMES: [(&str, &str, &str); 3] = [
    ("api-mj", "Midjourney Imagine", "/v1/midjourney/imagine"),
    ("api-suno", "Suno Audio", "/v1/suno/audios"),
    ("api-chat", "Chat \"GPT\"\n翻译 ✓", "/v1/chat/completions"),
];

/// One account's spend data.
#[derive(Debug, Clone)]
pub(crate) struct Spend {
    /// `(days before today, api_id, amount)`.
    usage: Vec<(i64, String, Value)>,
    /// Newest first.
    orders: Vec<Value>,
    auto_recharge: Vec<Value>,
}

/// The simulator's "now": the fixed clock of the options, else the wall clock.
pub(crate) fn now(opts: &SimOptions) -> i64 {
    opts.now.unwrap_or_else(crate::simulator::clock::unix_now)
}

fn date_of(unix: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `created_at_from` as Unix seconds; missing or unreadable means no lower bound.
fn from_param(query: &str) -> Option<i64> {
    let text = query_param(query, "created_at_from")?;
    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

impl Spend {
    pub fn new(opts: &SimOptions) -> Spend {
        let mut orders = seed_orders(now(opts));
        orders.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
        Spend {
            usage: seed_usage()
                .into_iter()
                .map(|(d, id, v)| (d, id.to_string(), v))
                .collect(),
            orders,
            auto_recharge: seed_auto_recharge(),
        }
    }

    /// `GET /api/v1/usage/apis/aggregate/`
    pub fn usage(&self, opts: &SimOptions, query: &str) -> Reply {
        let today = date_of(now(opts));
        let from = from_param(query).map(date_of);
        let rows: Vec<Value> = self
            .usage
            .iter()
            .filter_map(|(days, id, amount)| {
                let date = today.checked_sub(Duration::days(*days))?;
                if from.is_some_and(|f| date < f) {
                    return None;
                }
                let text = format!(
                    "{:04}-{:02}-{:02}",
                    date.year(),
                    u8::from(date.month()),
                    date.day()
                );
                Some(json!({"date": text, "api_id": id, "amount": amount}))
            })
            .collect();
        let total: f64 = rows.iter().filter_map(|r| r["amount"].as_f64()).sum();
        let total = (total * 100.0).round() / 100.0;
        let body = match opts.usage_shape {
            UsageShape::Results => {
                let map: serde_json::Map<String, Value> = API_NAMES
                    .iter()
                    .map(|(id, name, path)| (id.to_string(), json!({"name": name, "path": path})))
                    .collect();
                json!({"results": rows, "total": total, "api_map": map})
            }
            UsageShape::Items => {
                let map: serde_json::Map<String, Value> = API_NAMES
                    .iter()
                    .map(|(id, name, _)| (id.to_string(), json!({"title": name})))
                    .collect();
                json!({"items": rows, "total": total, "apis": map})
            }
        };
        Reply::json(200, &body)
    }

    /// `GET /api/v1/orders/`
    pub fn orders(&self, opts: &SimOptions, query: &str, page: (usize, usize)) -> Reply {
        let from = from_param(query);
        let matching: Vec<&Value> = self
            .orders
            .iter()
            .filter(|o| {
                let created = o["created_at"].as_str().and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                });
                match (from, created) {
                    (Some(f), Some(c)) => c.unix_timestamp() >= f,
                    _ => true,
                }
            })
            .collect();
        list_page(opts.list_key, matching, page)
    }

    /// `GET /api/v1/auto-recharge-configs/`
    pub fn auto_recharge(&self, opts: &SimOptions, page: (usize, usize)) -> Reply {
        list_page(opts.list_key, self.auto_recharge.iter().collect(), page)
    }

    /// Adds an order (any JSON object) as the newest one.
    pub fn add_order(&mut self, order: Value) {
        self.orders.insert(0, order);
    }

    /// Replaces the auto-recharge configurations.
    pub fn set_auto_recharge(&mut self, configs: Vec<Value>) {
        self.auto_recharge = configs;
    }

    /// Replaces the usage rows: `(days before today, api_id, amount)`.
    pub fn set_usage(&mut self, rows: Vec<(i64, String, Value)>) {
        self.usage = rows;
    }
}

fn list_page(key: ListKey, all: Vec<&Value>, (limit, offset): (usize, usize)) -> Reply {
    let key = match key {
        ListKey::Results => "results",
        ListKey::Items => "items",
    };
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    let mut body = serde_json::Map::new();
    body.insert("count".into(), json!(all.len()));
    body.insert(key.into(), Value::Array(page));
    Reply::json(200, &Value::Object(body))
}
