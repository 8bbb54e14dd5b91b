//! Ace Data Cloud applications (`GET /api/v1/applications/`): one per subscribed API
//! service, each with its own quota and API keys, in the shape the vendor documents
//! (SPEC, "Ace Data Cloud service quotas").
//!
//! The seed set is seven applications, kept as the JSON the endpoint answers:
//! - `midjourney`: `Usage`, may NOT use the global credits; with drift its quota
//!   falls by 0.01 a second (its key's use rises with it);
//! - `suno`: `Period`, expires three days after the simulator starts (with drift; a
//!   fixed date without);
//! - `openai`: may use the global credits, quota nearly gone, its key at 95.5 % of its
//!   `limited_amount`;
//! - four more (one without a service alias, one disabled, one without keys), so
//!   that a small page size spans several pages.
//!
//! Every API key's `token` starts with [`APPLICATION_TOKEN_PREFIX`]: a secret the
//! exporter must never show.

use serde_json::{json, Value};

use crate::simulator::clock::{format_micros, unix_now};

/// Every simulated API key's `token` starts with this.
pub const APPLICATION_TOKEN_PREFIX: &str = "sk-never-export-this-";

/// `expired_at` of the `suno` application without drift: 2024-09-01T00:00:00Z.
const FIXED_EXPIRY: i64 = 1_725_148_800;
/// With drift, `suno` expires this long after the simulator starts (three days).
const EXPIRY_AHEAD_SECS: i64 = 3 * 24 * 3600;
/// With drift, `midjourney`'s quota falls by this many cents a second.
pub(crate) const DRIFT_CENTS_PER_SEC: f64 = 1.0;
/// The application whose quota falls with drift.
pub(crate) const FALLING_APP: &str = "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a";

fn token(n: u32) -> String {
    format!("{APPLICATION_TOKEN_PREFIX}{n:04}")
}

fn service(id: &str, alias: Value, name: &str) -> Value {
    json!({ "id": id, "alias": alias, "name": name })
}

/// The seed applications; `drift` picks a moving or a fixed expiry date.
pub(crate) fn seed(drift: bool) -> Vec<Value> {
    let expiry = if drift {
        unix_now() + EXPIRY_AHEAD_SECS
    } else {
        FIXED_EXPIRY
    };
    vec![
        json!({
            "id": FALLING_APP, "user_id": "u-1",
            "service_id": "svc-mj", "type": "Usage", "scope": "Individual",
            "remaining_amount": 312.5, "used_amount": 187.5, "paid": true, "disabled": false,
            "allow_consume_global": false, "expired_at": null,
            "service": service("svc-mj", json!("midjourney"), "Midjourney"),
            "packages": [{"id": "p-1", "name": "500 Times Package", "type": "Usage", "price": 49.99, "amount": 500}],
            "credentials": [{"id": "cred-1", "token": token(1), "type": "Token", "host": null,
                             "limited_amount": 200, "used_amount": 150.25, "expired_at": null}],
            "tags": null, "metadata": null,
            "created_at": "2024-05-30T14:41:20.052849Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
        json!({
            "id": "00000000-0000-4000-b000-000000000002", "user_id": "u-1",
            "service_id": "svc-suno", "type": "Period", "scope": "Individual",
            "remaining_amount": 40, "used_amount": 60, "paid": true, "disabled": false,
            "allow_consume_global": false, "expired_at": format_micros(expiry),
            "service": service("svc-suno", json!("suno"), "Suno"),
            "packages": [{"id": "p-2", "name": "Monthly Package", "type": "Period", "price": 19.9, "amount": 100}],
            "credentials": [
                {"id": "cred-2", "token": token(2), "type": "Token", "host": null,
                 "limited_amount": null, "used_amount": 35.5, "expired_at": format_micros(expiry)},
                {"id": "cred-3", "token": token(3), "type": "Token", "host": "api.example.test",
                 "limited_amount": 50, "used_amount": 24.5, "expired_at": null},
            ],
            "tags": null, "metadata": null,
            "created_at": "2024-06-01T09:00:00.000000Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
        json!({
            "id": "00000000-0000-4000-b000-000000000003", "user_id": "u-1",
            "service_id": "svc-openai", "type": "Usage", "scope": "Global",
            "remaining_amount": 5.5, "used_amount": 994.5, "paid": true, "disabled": false,
            "allow_consume_global": true, "expired_at": null,
            "service": service("svc-openai", json!("openai"), "OpenAI Chat"),
            "packages": [],
            "credentials": [{"id": "cred-4", "token": token(4), "type": "Token", "host": null,
                             "limited_amount": 100, "used_amount": 95.5, "expired_at": null}],
            "tags": null, "metadata": null,
            "created_at": "2024-06-02T09:00:00.000000Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
        json!({
            "id": "00000000-0000-4000-b000-000000000004", "user_id": "u-1",
            "service_id": "svc-luma", "type": "Usage", "scope": "Individual",
            "remaining_amount": 1000, "used_amount": 0.01, "paid": true, "disabled": false,
            "allow_consume_global": false, "expired_at": null,
            "service": service("svc-luma", json!("luma"), "Luma"),
            "packages": [],
            "credentials": [{"id": "cred-5", "token": token(5), "type": "Token", "host": null,
                             "limited_amount": null, "used_amount": 0.01, "expired_at": null}],
            "tags": null, "metadata": null,
            "created_at": "2024-06-03T09:00:00.000000Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
        json!({
            "id": "00000000-0000-4000-b000-000000000005", "user_id": "u-1",
            "service_id": "svc-serp", "type": "Usage", "scope": "Individual",
            "remaining_amount": 77.77, "used_amount": 22.23, "paid": false, "disabled": false,
            "allow_consume_global": false, "expired_at": null,
            "service": service("svc-serp", Value::Null, "Google SERP"),
            "packages": [],
            "credentials": [],
            "tags": null, "metadata": null,
            "created_at": "2024-06-04T09:00:00.000000Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
        json!({
            "id": "00000000-0000-4000-b000-000000000006", "user_id": "u-1",
            "service_id": "svc-kling", "type": "Usage", "scope": "Individual",
            "remaining_amount": 0, "used_amount": 250, "paid": true, "disabled": true,
            "allow_consume_global": false, "expired_at": null,
            "service": service("svc-kling", json!("kling"), "Kling"),
            "packages": [],
            "credentials": [{"id": "cred-6", "token": token(6), "type": "Token", "host": null,
                             "limited_amount": 0, "used_amount": 0, "expired_at": null}],
            "tags": null, "metadata": null,
            "created_at": "2024-06-05T09:00:00.000000Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
        json!({
            "id": "00000000-0000-4000-b000-000000000007", "user_id": "u-1",
            "service_id": "svc-flux", "type": "Usage", "scope": "Individual",
            "remaining_amount": 123.45, "used_amount": 76.55, "paid": true, "disabled": false,
            "allow_consume_global": true, "expired_at": null,
            "service": service("svc-flux", json!("flux"), "Flux"),
            "packages": [],
            "credentials": [{"id": "cred-7", "token": token(7), "type": "Token", "host": null,
                             "limited_amount": 1000, "used_amount": 12.34, "expired_at": null}],
            "tags": null, "metadata": null,
            "created_at": "2024-06-06T09:00:00.000000Z", "updated_at": "2024-08-16T07:51:15.603207Z",
        }),
    ]
}

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or(0.0) * 100.0).round() as i64
}

fn from_cents(c: i64) -> Value {
    json!(c as f64 / 100.0)
}

/// Moves `cents` of quota from remaining to used (never below zero remaining), on
/// the application and on its first API key.
pub(crate) fn consume(app: &mut Value, cents_to_move: i64) {
    let remaining = cents(&app["remaining_amount"]);
    let moved = cents_to_move.min(remaining).max(0);
    if moved == 0 {
        return;
    }
    app["remaining_amount"] = from_cents(remaining - moved);
    app["used_amount"] = from_cents(cents(&app["used_amount"]) + moved);
    if let Some(key) = app["credentials"].get_mut(0) {
        key["used_amount"] = from_cents(cents(&key["used_amount"]) + moved);
    }
}

/// Sets an application's amounts (whole cents).
pub(crate) fn set_amounts(app: &mut Value, remaining: f64, used: f64) {
    app["remaining_amount"] = from_cents((remaining * 100.0).round() as i64);
    app["used_amount"] = from_cents((used * 100.0).round() as i64);
}
