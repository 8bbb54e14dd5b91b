//! Ace Data Cloud: one account per platform token, answered in the shapes of seeds 000
//! (balance) and 002 (distribution status, levels, history).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::applications;
use super::detail as acedata_detail;
use super::spend::Spend;
use crate::simulator::clock::{format_micros, format_secs, unix_now};
use crate::simulator::reply::Reply;
use crate::simulator::{HistoryOrder, ListKey, SimOptions};

/// A credit package attached to an Ace Data Cloud balance (seed 000 `packages[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPackage {
    /// `id`
    pub id: String,
    /// `name`
    pub name: String,
    /// `amount`, a JSON number.
    pub amount: u64,
    /// `price`, sent as a string such as `"9.90"`.
    pub price: String,
}

impl SimPackage {
    /// The single package of seed 000.
    pub fn seed() -> SimPackage {
        SimPackage {
            id: "pkg-uuid".into(),
            name: "Basic Package".into(),
            amount: 100,
            price: "9.90".into(),
        }
    }
}

/// Credits consumed per second while drifting, in cents (0.05 credits/s).
const CREDITS_DRIFT_CENTS_PER_SEC: f64 = 5.0;

const BALANCE_ID: &str = "a1b2c3d4-e5f6-7890-abcd-ef1234567890";
const BALANCE_USER_ID: &str = "user-uuid";
/// `created_at`/`updated_at` of the seed balance: 2024-01-15T10:30:00Z.
const BALANCE_CREATED_AT: i64 = 1_705_314_600;
const DISTRIBUTION_USER_ID: &str = "b87f67c1-b04f-4332-99a1-7a5e651331c6";
/// Seed status timestamps: 2024-01-01T00:00:00Z and 2024-08-01T00:00:00Z.
const STATUS_CREATED_AT: i64 = 1_704_067_200;
const STATUS_UPDATED_AT: i64 = 1_722_470_400;
/// The seed history record's `created_at`, 2024-08-01T10:00:00Z; deterministic records
/// follow it one hour apart.
const HISTORY_BASE: i64 = 1_722_506_400;
const HISTORY_SPACING: i64 = 3600;

/// The three seed levels: id, level, threshold, percentage.
const LEVELS: [(&str, i64, i64, f64); 3] = [
    ("level-1-uuid", 1, 0, 0.1),
    ("level-2-uuid", 2, 1000, 0.15),
    ("level-3-uuid", 3, 5000, 0.2),
];

/// Order prices (in cents) that generated records cycle through. The first is the seed
/// record's 50.0; the others carry cents so that summing mistakes show.
const ORDER_PRICES_CENTS: [i64; 10] = [5000, 12350, 100, 1235, 9999, 99, 25000, 777, 4210, 1];
const INVITEES: [&str; 5] = ["New User", "Alice", "Bob", "Carol", "Dave"];

/// Deterministic records whose number (1-based) has this remainder mod 7 are invalid
/// (refunded): 3 of the default 20, 4 of the demo's 25.
fn generated_invalid(no: u64) -> bool {
    no % 7 == 4
}

fn cents_to_f64(cents: i64) -> f64 {
    cents as f64 / 100.0
}

pub(crate) fn f64_to_cents(value: f64) -> i64 {
    (value * 100.0).round() as i64
}

fn level_for(price_cents: i64) -> usize {
    LEVELS
        .iter()
        .rposition(|(_, _, threshold, _)| threshold * 100 <= price_cents)
        .unwrap_or(0)
}

fn level_json(index: usize) -> Value {
    let (id, level, threshold, percentage) = LEVELS[index];
    json!({ "id": id, "level": level, "threshold": threshold, "percentage": percentage })
}

#[derive(Debug, Clone)]
struct Status {
    price_cents: i64,
    reward_cents: i64,
    updated_at: i64,
}

impl Status {
    fn seed() -> Status {
        Status {
            price_cents: 50_000,
            reward_cents: 5_000,
            updated_at: STATUS_UPDATED_AT,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": "status-uuid",
            "user_id": DISTRIBUTION_USER_ID,
            "level": level_json(level_for(self.price_cents)),
            "price": cents_to_f64(self.price_cents),
            "reward": cents_to_f64(self.reward_cents),
            "tags": null,
            "metadata": null,
            "created_at": format_micros(STATUS_CREATED_AT),
            "updated_at": format_micros(self.updated_at),
        })
    }
}

#[derive(Debug, Clone)]
struct HistoryRecord {
    no: u64,
    price_cents: i64,
    reward_cents: i64,
    percentage: f64,
    invalid: bool,
    created_at: i64,
}

impl HistoryRecord {
    fn to_json(&self) -> Value {
        let order_id = format!("00000000-0000-4000-9000-{:012x}", self.no);
        let invitee = (self.no as usize - 1) % INVITEES.len();
        let invitee_id = format!("00000000-0000-4000-a000-{:012x}", invitee + 1);
        json!({
            "id": format!("00000000-0000-4000-8000-{:012x}", self.no),
            "user_id": DISTRIBUTION_USER_ID,
            "inviter_id": DISTRIBUTION_USER_ID,
            "invitee_id": invitee_id,
            "order_id": order_id,
            "percentage": self.percentage,
            "reward": cents_to_f64(self.reward_cents),
            "invalid": self.invalid,
            "order": { "id": order_id, "price": cents_to_f64(self.price_cents), "state": "Finished" },
            "invitee": { "id": invitee_id, "nickname": INVITEES[invitee] },
            "tags": null,
            "metadata": null,
            "created_at": format_micros(self.created_at),
        })
    }
}

/// The state of one Ace Data Cloud account (one platform token).
#[derive(Debug, Clone)]
pub(crate) struct AcedataAccount {
    credits_cents: i64,
    credits_residual: f64,
    packages: Vec<SimPackage>,
    balance_updated_at: i64,
    status: Option<Status>,
    /// Oldest first.
    history: Vec<HistoryRecord>,
    /// `GET /api/v1/applications/` elements, as answered.
    applications: Vec<Value>,
    applications_residual: f64,
    /// Spend, orders and auto-recharge.
    pub spend: Spend,
    last_tick: Instant,
    next_history_at: Instant,
}

impl AcedataAccount {
    pub fn new(opts: &SimOptions) -> AcedataAccount {
        let now = Instant::now();
        let mut account = AcedataAccount {
            credits_cents: 10_000,
            credits_residual: 0.0,
            packages: opts.packages.clone(),
            balance_updated_at: BALANCE_CREATED_AT,
            status: opts.status_initialized.then(Status::seed),
            history: Vec::with_capacity(opts.history_records),
            applications: applications::seed(opts.drift),
            applications_residual: 0.0,
            spend: Spend::new(opts),
            last_tick: now,
            next_history_at: now + opts.history_interval,
        };
        // With drift the generated history ends an hour before now, so new records
        // appear after it; without drift it starts at the seed record's timestamp.
        let first = if opts.drift {
            unix_now() - HISTORY_SPACING * opts.history_records as i64
        } else {
            HISTORY_BASE
        };
        for i in 0..opts.history_records {
            let no = i as u64 + 1;
            let record = generated_record(no, LEVELS[0].3, first + HISTORY_SPACING * i as i64);
            account.history.push(record);
        }
        account
    }

    /// Applies the wall-time drift since the last call (no-op without drift).
    pub fn tick(&mut self, opts: &SimOptions) {
        if !opts.drift {
            return;
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        self.credits_residual += elapsed.as_secs_f64() * CREDITS_DRIFT_CENTS_PER_SEC;
        let whole = self.credits_residual.floor();
        self.credits_residual -= whole;
        if whole >= 1.0 && self.credits_cents > 0 {
            self.credits_cents = (self.credits_cents - whole as i64).max(0);
            self.balance_updated_at = unix_now();
        }
        self.applications_residual += elapsed.as_secs_f64() * applications::DRIFT_CENTS_PER_SEC;
        let whole = self.applications_residual.floor();
        self.applications_residual -= whole;
        if let Some(app) = self
            .applications
            .iter_mut()
            .find(|a| a["id"] == applications::FALLING_APP)
        {
            applications::consume(app, whole as i64);
        }
        let interval = opts.history_interval.max(Duration::from_millis(10));
        while now >= self.next_history_at {
            self.next_history_at += interval;
            let no = self.history.len() as u64 + 1;
            let percentage = LEVELS[level_for(self.status_price())].3;
            let record = generated_record(no, percentage, self.next_created_at(true));
            if let Some(status) = self.status.as_mut() {
                if !record.invalid {
                    status.price_cents += record.price_cents;
                    status.reward_cents += record.reward_cents;
                    status.updated_at = record.created_at;
                }
            }
            self.history.push(record);
        }
    }

    fn status_price(&self) -> i64 {
        self.status.as_ref().map_or(0, |s| s.price_cents)
    }

    fn next_created_at(&self, drift: bool) -> i64 {
        let last = self.history.last().map(|r| r.created_at);
        if drift {
            last.map_or(unix_now(), |l| unix_now().max(l + 1))
        } else {
            last.map_or(HISTORY_BASE, |l| l + HISTORY_SPACING)
        }
    }

    pub fn set_credits_cents(&mut self, cents: i64) {
        self.credits_cents = cents;
        self.credits_residual = 0.0;
    }

    pub fn set_packages(&mut self, packages: Vec<SimPackage>) {
        self.packages = packages;
    }

    pub fn set_distribution(&mut self, price_cents: Option<i64>, reward_cents: Option<i64>) {
        let status = self.status.get_or_insert_with(Status::seed);
        if let Some(price) = price_cents {
            status.price_cents = price;
        }
        if let Some(reward) = reward_cents {
            status.reward_cents = reward;
        }
    }

    pub fn set_status_initialized(&mut self, initialized: bool) {
        if initialized {
            self.status.get_or_insert_with(Status::seed);
        } else {
            self.status = None;
        }
    }

    /// Appends a record as the newest one; returns its `id`.
    pub fn add_history_record(
        &mut self,
        reward_cents: i64,
        price_cents: i64,
        invalid: bool,
        drift: bool,
    ) -> String {
        let no = self.history.len() as u64 + 1;
        let record = HistoryRecord {
            no,
            price_cents,
            reward_cents,
            percentage: LEVELS[level_for(self.status_price())].3,
            invalid,
            created_at: self.next_created_at(drift),
        };
        let id = record.to_json()["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.history.push(record);
        id
    }

    /// Marks the record at `index` (0 = oldest) invalid or valid; false when out of range.
    pub fn set_history_invalid(&mut self, index: usize, invalid: bool) -> bool {
        match self.history.get_mut(index) {
            Some(record) => {
                record.invalid = invalid;
                true
            }
            None => false,
        }
    }

    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The applications as answered (API keys' tokens included).
    pub fn applications(&self) -> &[Value] {
        &self.applications
    }

    /// The application with `id`, if any.
    pub fn application_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.applications.iter_mut().find(|a| a["id"] == id)
    }

    /// Adds an application at the end of the list.
    pub fn add_application(&mut self, app: Value) {
        self.applications.push(app);
    }

    /// Removes the application with `id`; false when there is none.
    pub fn remove_application(&mut self, id: &str) -> bool {
        let before = self.applications.len();
        self.applications.retain(|a| a["id"] != id);
        self.applications.len() != before
    }

    /// Sets an application's `remaining_amount` and `used_amount`; false when there is
    /// no such application.
    pub fn set_application_amounts(&mut self, id: &str, remaining: f64, used: f64) -> bool {
        match self.application_mut(id) {
            Some(app) => {
                applications::set_amounts(app, remaining, used);
                true
            }
            None => false,
        }
    }

    /// Removes API key `credential` of application `id`; false when there is none.
    pub fn remove_credential(&mut self, id: &str, credential: &str) -> bool {
        let Some(keys) = self
            .application_mut(id)
            .and_then(|a| a["credentials"].as_array_mut())
        else {
            return false;
        };
        let before = keys.len();
        keys.retain(|k| k["id"] != credential);
        keys.len() != before
    }

    /// `GET /api/v1/applications/?user_id=&limit=&offset=`
    pub fn applications_page(&self, opts: &SimOptions, query: &str) -> Reply {
        let (limit, offset) = page_params(opts, query);
        let count = self.applications.len();
        let page: Vec<Value> = self
            .applications
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        Reply::json(200, &list(opts.list_key, count, page))
    }

    /// `POST /api/v1/balances/initialize/`
    pub fn balance(&self) -> Reply {
        let credits = self.credits_cents.max(0);
        let packages: Vec<Value> = self
            .packages
            .iter()
            .map(|p| json!({ "id": p.id, "name": p.name, "amount": p.amount, "price": p.price }))
            .collect();
        Reply::json(
            200,
            &json!({
                "id": BALANCE_ID,
                "user_id": BALANCE_USER_ID,
                "credits": format!("{}.{:02}", credits / 100, credits % 100),
                "packages": packages,
                "created_at": format_secs(BALANCE_CREATED_AT),
                "updated_at": format_secs(self.balance_updated_at),
            }),
        )
    }

    /// `GET /api/v1/distribution-statuses/`
    pub fn status(&self, opts: &SimOptions) -> Reply {
        let results: Vec<Value> = self.status.iter().map(Status::to_json).collect();
        Reply::json(200, &list(opts.list_key, results.len(), results))
    }

    /// `POST /api/v1/distribution-statuses/initialize/`: creates the status with the
    /// seed values when there is none, and answers the status object either way.
    pub fn status_init(&mut self) -> Reply {
        let status = self.status.get_or_insert_with(Status::seed);
        Reply::json(200, &status.to_json())
    }

    /// `GET /api/v1/distribution-levels/`
    pub fn levels(opts: &SimOptions) -> Reply {
        let results: Vec<Value> = (0..LEVELS.len())
            .map(|i| {
                let mut level = level_json(i);
                level["tags"] = Value::Null;
                level["metadata"] = Value::Null;
                level
            })
            .collect();
        Reply::json(200, &list(opts.list_key, results.len(), results))
    }

    /// `GET /api/v1/distribution-histories/?limit=&offset=`
    pub fn history(&self, opts: &SimOptions, query: &str) -> Reply {
        let (limit, offset) = page_params(opts, query);
        let count = self.history.len();
        let start = offset.min(count);
        let end = offset.saturating_add(limit).min(count);
        let page: Vec<Value> = match opts.history_order {
            HistoryOrder::OldestFirst => self.history[start..end]
                .iter()
                .map(HistoryRecord::to_json)
                .collect(),
            HistoryOrder::NewestFirst => self
                .history
                .iter()
                .rev()
                .skip(start)
                .take(end - start)
                .map(HistoryRecord::to_json)
                .collect(),
        };
        Reply::json(200, &list(opts.list_key, count, page))
    }
}

fn generated_record(no: u64, percentage: f64, created_at: i64) -> HistoryRecord {
    let price_cents = ORDER_PRICES_CENTS[(no as usize - 1) % ORDER_PRICES_CENTS.len()];
    // Commission rounded half-up to the cent.
    let permille = (percentage * 1000.0).round() as i64;
    let reward_cents = (price_cents * permille + 500) / 1000;
    HistoryRecord {
        no,
        price_cents,
        reward_cents,
        percentage,
        invalid: generated_invalid(no),
        created_at,
    }
}

fn list(key: ListKey, count: usize, page: Vec<Value>) -> Value {
    let key = match key {
        ListKey::Results => "results",
        ListKey::Items => "items",
    };
    let mut body = serde_json::Map::new();
    body.insert("count".into(), json!(count));
    body.insert(key.into(), Value::Array(page));
    Value::Object(body)
}

/// `limit` and `offset` the way Django REST framework's limit/offset pagination reads
/// them: a missing, non-numeric or zero `limit` means the default page size, `limit` is
/// capped by the maximum page size, a missing or non-numeric `offset` means 0.
pub(super) fn page_params(opts: &SimOptions, query: &str) -> (usize, usize) {
    let mut limit = None;
    let mut offset = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "limit" => limit = value.parse::<usize>().ok().filter(|l| *l > 0),
            "offset" => offset = value.parse::<usize>().ok(),
            _ => {}
        }
    }
    let mut limit = limit.unwrap_or(opts.default_page_size);
    if let Some(max) = opts.max_page_size {
        limit = limit.min(max);
    }
    (limit, offset.unwrap_or(0))
}

/// The 403 list endpoints answer without `?user_id=` when [`SimOptions::require_user_id`]
/// is set.
pub(crate) fn permission_denied() -> Reply {
    acedata_detail(403, "You do not have permission to perform this action.")
}
