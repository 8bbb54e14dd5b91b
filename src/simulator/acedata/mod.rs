//! Ace Data Cloud: one account per platform token, answered in the shapes of seeds 000
//! (balance) and 002 (distribution status, levels, history), plus the applications list.
//!
//! A missing token answers 401 `{"detail": "Authentication credentials were not
//! provided."}`, an unknown one 401 `{"detail": "Invalid token."}` (the `{"detail": …}`
//! error style; [`Fault::ApiError`] produces the other documented style, `{"error":
//! {"code", "message"}}`). List routes page with `limit` (default
//! [`SimOptions::default_page_size`]) and `offset`. The status's `level` object carries
//! the id of the matching entry of `distribution-levels` (`level-1-uuid`, where seed 002
//! shows the placeholder `level-uuid`), so both endpoints agree. The control methods
//! panic for a token that was never registered: that is a mistake in the test, not a
//! state to simulate.

mod account;
mod applications;
mod spend;

use std::any::Any;
use std::collections::HashMap;

use serde_json::{json, Value};

pub use self::account::SimPackage;
pub use self::applications::APPLICATION_TOKEN_PREFIX;

use self::account::AcedataAccount;
use super::reply::{status_reason, Reply};
use super::route::{Fault, Route};
use super::vendor::Vendor;
use super::{bearer, RecordedRequest, SimOptions, Simulator};

const VENDOR: &str = "acedata";

#[allow(non_upper_case_globals)]
impl Route {
    /// `POST /api/v1/balances/initialize/`
    pub const AcedataBalance: Route = Route::new(
        VENDOR,
        "AcedataBalance",
        "POST",
        "/api/v1/balances/initialize/",
    );
    /// `GET /api/v1/distribution-statuses/`
    pub const AcedataStatus: Route = Route::new(
        VENDOR,
        "AcedataStatus",
        "GET",
        "/api/v1/distribution-statuses/",
    );
    /// `POST /api/v1/distribution-statuses/initialize/`
    pub const AcedataStatusInit: Route = Route::new(
        VENDOR,
        "AcedataStatusInit",
        "POST",
        "/api/v1/distribution-statuses/initialize/",
    );
    /// `GET /api/v1/distribution-levels/`
    pub const AcedataLevels: Route = Route::new(
        VENDOR,
        "AcedataLevels",
        "GET",
        "/api/v1/distribution-levels/",
    );
    /// `GET /api/v1/distribution-histories/`
    pub const AcedataHistory: Route = Route::new(
        VENDOR,
        "AcedataHistory",
        "GET",
        "/api/v1/distribution-histories/",
    );
    /// `GET /api/v1/applications/`
    pub const AcedataApplications: Route = Route::new(
        VENDOR,
        "AcedataApplications",
        "GET",
        "/api/v1/applications/",
    );
}

#[allow(non_upper_case_globals)]
impl Route {
    /// `GET /api/v1/usage/apis/aggregate/`
    pub const AcedataUsage: Route = Route::new(
        VENDOR,
        "AcedataUsage",
        "GET",
        "/api/v1/usage/apis/aggregate/",
    );
    /// `GET /api/v1/orders/`
    pub const AcedataOrders: Route = Route::new(VENDOR, "AcedataOrders", "GET", "/api/v1/orders/");
    /// `GET /api/v1/auto-recharge-configs/`
    pub const AcedataAutoRecharge: Route = Route::new(
        VENDOR,
        "AcedataAutoRecharge",
        "GET",
        "/api/v1/auto-recharge-configs/",
    );
}

/// Every Ace Data Cloud route.
pub(crate) const ROUTES: &[Route] = &[
    Route::AcedataBalance,
    Route::AcedataStatus,
    Route::AcedataStatusInit,
    Route::AcedataLevels,
    Route::AcedataHistory,
    Route::AcedataApplications,
    Route::AcedataUsage,
    Route::AcedataOrders,
    Route::AcedataAutoRecharge,
];

/// Every registered account, by platform token.
#[derive(Debug, Default)]
pub(crate) struct AcedataSim {
    accounts: HashMap<String, AcedataAccount>,
}

/// An error in the `{"detail": …}` style.
pub(crate) fn detail(status: u16, detail: &str) -> Reply {
    Reply::json(status, &json!({ "detail": detail }))
}

/// The 401 for a missing or unknown platform token.
fn unauthorized(missing: bool) -> Reply {
    if missing {
        detail(401, "Authentication credentials were not provided.")
    } else {
        detail(401, "Invalid token.")
    }
}

impl Vendor for AcedataSim {
    fn name(&self) -> &'static str {
        VENDOR
    }

    fn claims(&self, path: &str) -> bool {
        path.starts_with("/api/")
    }

    fn not_found(&self) -> Reply {
        detail(404, "Not found.")
    }

    fn method_not_allowed(&self, route: Route, method: &str) -> Reply {
        let mut reply = detail(405, &format!("Method \"{method}\" not allowed."));
        reply.allow = Some(route.method());
        reply
    }

    fn answer(
        &mut self,
        route: Route,
        req: &RecordedRequest,
        _body: &[u8],
        opts: &SimOptions,
    ) -> Reply {
        let token = req.authorization.as_deref().and_then(bearer);
        let Some(account) = token.and_then(|t| self.accounts.get_mut(t)) else {
            return unauthorized(token.is_none());
        };
        account.tick(opts);
        let is_list = matches!(
            route,
            Route::AcedataStatus
                | Route::AcedataLevels
                | Route::AcedataHistory
                | Route::AcedataApplications
                | Route::AcedataUsage
                | Route::AcedataOrders
                | Route::AcedataAutoRecharge
        );
        if is_list && opts.require_user_id && req.query_param("user_id").is_none() {
            return account::permission_denied();
        }
        let query = req.query.as_deref().unwrap_or("");
        match route {
            Route::AcedataBalance => account.balance(),
            Route::AcedataStatus => account.status(opts),
            Route::AcedataStatusInit => account.status_init(),
            Route::AcedataLevels => AcedataAccount::levels(opts),
            Route::AcedataApplications => account.applications_page(opts, query),
            Route::AcedataUsage => account.spend.usage(opts, query),
            Route::AcedataOrders => {
                account
                    .spend
                    .orders(opts, query, account::page_params(opts, query))
            }
            Route::AcedataAutoRecharge => account
                .spend
                .auto_recharge(opts, account::page_params(opts, query)),
            _ => account.history(opts, query),
        }
    }

    fn fault(&self, route: Route, fault: &Fault, req: &RecordedRequest) -> Reply {
        match fault {
            Fault::Status(code) => status_fault(*code),
            Fault::RateLimited { retry_after } => {
                let mut reply = match retry_after {
                    Some(s) => detail(
                        429,
                        &format!("Request was throttled. Expected available in {s} seconds."),
                    ),
                    None => detail(429, "Request was throttled."),
                };
                reply.retry_after = *retry_after;
                reply
            }
            Fault::MalformedJson => Reply::raw(
                200,
                "application/json",
                bytes::Bytes::from_static(malformed_body(route).as_bytes()),
            ),
            Fault::WrongTypes => Reply::json(200, &wrong_types_body(route)),
            Fault::EchoCredentials => {
                let bearer = req.authorization.as_deref().and_then(bearer).unwrap_or("");
                detail(401, &format!("Invalid token: Bearer {bearer} was rejected"))
            }
            Fault::EchoCredentialsServerError => {
                let bearer = req.authorization.as_deref().and_then(bearer).unwrap_or("");
                detail(
                    500,
                    &format!("Backend failure while checking token {bearer}"),
                )
            }
            _ => Reply::json(
                400,
                &json!({
                    "error": {
                        "code": "bad_request",
                        "message": "The request could not be processed.",
                    }
                }),
            ),
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn status_fault(code: u16) -> Reply {
    match code {
        401 => unauthorized(false),
        403 => detail(403, "You do not have permission to perform this action."),
        404 => detail(404, "Not found."),
        429 => detail(429, "Request was throttled."),
        500 => detail(500, "A server error occurred."),
        _ => Reply::json(
            code,
            &json!({
                "error": {
                    "code": status_reason(code).to_ascii_lowercase().replace(' ', "_"),
                    "message": status_reason(code),
                }
            }),
        ),
    }
}

fn malformed_body(route: Route) -> &'static str {
    match route {
        Route::AcedataBalance => {
            r#"{"id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "credits": "100.00", "packages": [{"id": "pkg-uuid", "#
        }
        Route::AcedataStatus | Route::AcedataStatusInit => {
            r#"{"count": 1, "results": [{"id": "status-uuid", "level": {"level": 1,"#
        }
        Route::AcedataLevels => {
            r#"{"count": 3, "results": [{"id": "level-1-uuid", "level": 1, "threshold": "#
        }
        Route::AcedataApplications => {
            r#"{"count": 7, "results": [{"id": "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a", "remaining_amount": 31"#
        }
        Route::AcedataUsage => {
            r#"{"results": [{"date": "2024-08-15", "api_id": "api-mj", "amount": 4"#
        }
        Route::AcedataOrders => r#"{"count": 6, "results": [{"id": "ord-1", "state": "Fin"#,
        Route::AcedataAutoRecharge => {
            r#"{"count": 3, "results": [{"id": "ar-1", "application_id": "#
        }
        _ => r#"{"count": 20, "results": [{"id": "history-uuid", "reward": 5.0, "order": {"#,
    }
}

/// A distribution status whose fields have the wrong types.
fn wrong_typed_status() -> Value {
    json!({
        "id": "status-uuid",
        "user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
        "level": "1",
        "price": "abc",
        "reward": { "amount": 50.0 },
        "tags": null,
        "metadata": null,
        "created_at": "2024-01-01T00:00:00.000000Z",
        "updated_at": "2024-08-01T00:00:00.000000Z",
    })
}

fn wrong_types_body(route: Route) -> Value {
    match route {
        Route::AcedataBalance => json!({
            "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
            "user_id": "user-uuid",
            "credits": { "value": "100.00" },
            "packages": [{ "id": "pkg-uuid", "name": "Basic Package", "amount": "a hundred", "price": 9.9 }],
            "created_at": "2024-01-15T10:30:00Z",
            "updated_at": 1705314600,
        }),
        Route::AcedataStatus => json!({ "count": "one", "results": [wrong_typed_status()] }),
        Route::AcedataStatusInit => wrong_typed_status(),
        Route::AcedataLevels => json!({
            "count": 3,
            "results": [
                { "id": "level-1-uuid", "level": "one", "threshold": "zero", "percentage": "10%" },
            ],
        }),
        Route::AcedataHistory => json!({
            "count": 1,
            "results": [{
                "id": "history-uuid",
                "percentage": 0.1,
                "reward": "abc",
                "invalid": "no",
                "order": { "id": "order-uuid", "price": [50.0], "state": "Finished" },
                "created_at": 1722506400,
            }],
        }),
        // A date that is not YYYY-MM-DD.
        Route::AcedataUsage => json!({
            "results": [{ "date": "15/08/2024", "api_id": "api-mj", "amount": 45.5 }],
            "total": 45.5,
            "api_map": { "api-mj": { "name": "Midjourney Imagine" } },
        }),
        Route::AcedataOrders => json!({
            "count": 1,
            "results": [{ "id": "ord-1", "state": "Finished", "price": "a lot", "created_at": 1722506400 }],
        }),
        Route::AcedataAutoRecharge => json!({
            "count": "three",
            "results": [{ "id": "ar-1", "application_id": 7, "status": "Active" }],
        }),
        _ => json!({
            "count": 1,
            "results": [{
                "id": "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a",
                "service_id": "svc-mj",
                "type": "Usage",
                "scope": "Individual",
                "remaining_amount": "plenty",
                "used_amount": { "value": 187.5 },
                "disabled": "no",
                "allow_consume_global": 0,
                "expired_at": 1725148800,
                "service": { "id": "svc-mj", "alias": "midjourney", "name": "Midjourney" },
                "credentials": [{ "id": 1, "token": "sk-never-export-this-wrong-types", "limited_amount": "200", "used_amount": null }],
            }],
        }),
    }
}

/// Ace Data Cloud accounts, for tests and the demo.
impl Simulator {
    /// Registers an Ace Data Cloud account for platform token `token` with the seed
    /// values (credits `"100.00"`, the configured packages and history). Registering an
    /// existing token resets its account.
    pub fn add_acedata_account(&self, token: &str) {
        self.vendor(|v: &mut AcedataSim, opts| {
            v.accounts
                .insert(token.to_owned(), AcedataAccount::new(opts))
        });
    }

    /// Removes an Ace Data Cloud account; its token then answers 401.
    pub fn remove_acedata_account(&self, token: &str) {
        self.vendor(|v: &mut AcedataSim, _| v.accounts.remove(token));
    }

    fn with_account<T>(
        &self,
        token: &str,
        f: impl FnOnce(&mut AcedataAccount, &SimOptions) -> T,
    ) -> T {
        self.vendor(|v: &mut AcedataSim, opts| {
            let account = v
                .accounts
                .get_mut(token)
                .unwrap_or_else(|| panic!("no Ace Data Cloud account registered for that token"));
            account.tick(opts);
            f(account, opts)
        })
    }

    /// Sets an account's credits, e.g. `"123.45"` (at most two decimals).
    ///
    /// # Panics
    /// When `token` is not registered or `credits` is not a non-negative decimal.
    pub fn set_credits(&self, token: &str, credits: &str) {
        let cents = parse_cents(credits)
            .unwrap_or_else(|| panic!("credits must look like \"123.45\", got {credits:?}"));
        self.with_account(token, |a, _| a.set_credits_cents(cents));
    }

    /// Replaces an account's packages.
    pub fn set_packages(&self, token: &str, packages: Vec<SimPackage>) {
        self.with_account(token, |a, _| a.set_packages(packages));
    }

    /// Sets the distribution status `price` (invitee spend); the level follows from the
    /// level thresholds. Creates the status if there is none.
    pub fn set_distribution_price(&self, token: &str, price: f64) {
        let cents = account::f64_to_cents(price);
        self.with_account(token, |a, _| a.set_distribution(Some(cents), None));
    }

    /// Sets the distribution status `reward`. Creates the status if there is none.
    pub fn set_distribution_reward(&self, token: &str, reward: f64) {
        let cents = account::f64_to_cents(reward);
        self.with_account(token, |a, _| a.set_distribution(None, Some(cents)));
    }

    /// Creates (seed values) or removes an account's distribution status.
    pub fn set_status_initialized(&self, token: &str, initialized: bool) {
        self.with_account(token, |a, _| a.set_status_initialized(initialized));
    }

    /// Appends a commission record as the newest one and returns its `id`. The status
    /// totals are not changed (set them with [`Simulator::set_distribution_price`]).
    pub fn add_history_record(
        &self,
        token: &str,
        reward: f64,
        order_price: f64,
        invalid: bool,
    ) -> String {
        let (reward, price) = (
            account::f64_to_cents(reward),
            account::f64_to_cents(order_price),
        );
        self.with_account(token, |a, opts| {
            a.add_history_record(reward, price, invalid, opts.drift)
        })
    }

    /// Marks the record at `index` (0 = the oldest record) invalid or valid.
    ///
    /// # Panics
    /// When the token is not registered or the index is out of range.
    pub fn set_history_invalid(&self, token: &str, index: usize, invalid: bool) {
        let found = self.with_account(token, |a, _| a.set_history_invalid(index, invalid));
        assert!(found, "no history record at index {index}");
    }

    /// Number of commission records of an account.
    pub fn history_len(&self, token: &str) -> usize {
        self.with_account(token, |a, _| a.history_len())
    }

    /// The applications of an account exactly as `GET /api/v1/applications/` lists them
    /// (API keys' tokens included).
    pub fn applications(&self, token: &str) -> Vec<serde_json::Value> {
        self.with_account(token, |a, _| a.applications().to_vec())
    }

    /// Adds an application (any JSON object; give it a unique `id`) at the end of the
    /// account's list.
    pub fn add_application(&self, token: &str, application: serde_json::Value) {
        self.with_account(token, |a, _| a.add_application(application));
    }

    /// Sets an application's `remaining_amount` and `used_amount` (whole cents).
    ///
    /// # Panics
    /// When the token is not registered or there is no application `id`.
    pub fn set_application_amounts(&self, token: &str, id: &str, remaining: f64, used: f64) {
        let found = self.with_account(token, |a, _| a.set_application_amounts(id, remaining, used));
        assert!(found, "no application {id}");
    }

    /// Removes an application.
    ///
    /// # Panics
    /// When the token is not registered or there is no application `id`.
    pub fn remove_application(&self, token: &str, id: &str) {
        let found = self.with_account(token, |a, _| a.remove_application(id));
        assert!(found, "no application {id}");
    }

    /// Removes API key `credential` of application `id`.
    ///
    /// # Panics
    /// When the token is not registered or there is no such key.
    pub fn remove_credential(&self, token: &str, id: &str, credential: &str) {
        let found = self.with_account(token, |a, _| a.remove_credential(id, credential));
        assert!(found, "no API key {credential} on application {id}");
    }
}

impl Simulator {
    /// Adds a top-up order (any JSON object) as the newest of an account's orders.
    pub fn add_order(&self, token: &str, order: serde_json::Value) {
        self.with_account(token, |a, _| a.spend.add_order(order));
    }

    /// Replaces an account's auto-recharge configurations.
    pub fn set_auto_recharge(&self, token: &str, configs: Vec<serde_json::Value>) {
        self.with_account(token, |a, _| a.spend.set_auto_recharge(configs));
    }

    /// Replaces an account's usage rows: `(days before today, api_id, amount)`; APIs
    /// other than the seed ones have no name.
    pub fn set_usage(&self, token: &str, rows: Vec<(i64, String, serde_json::Value)>) {
        self.with_account(token, |a, _| a.spend.set_usage(rows));
    }
}

/// `"123.45"` → 12345. At most two decimals, no sign.
pub(crate) fn parse_cents(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}
