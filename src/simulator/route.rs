//! The simulated endpoints and the faults that can be injected into them.

use std::time::Duration;

/// One simulated upstream endpoint. Requests are counted and faults are injected per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /api/v1/balances/initialize/`
    AcedataBalance,
    /// `GET /api/v1/distribution-statuses/`
    AcedataStatus,
    /// `POST /api/v1/distribution-statuses/initialize/`
    AcedataStatusInit,
    /// `GET /api/v1/distribution-levels/`
    AcedataLevels,
    /// `GET /api/v1/distribution-histories/`
    AcedataHistory,
    /// `GET /api/v1/applications/`
    AcedataApplications,
    /// `POST /auth/openapi/v1/oauth/token`
    YeastarToken,
    /// `GET /user/openapi/user/v1/client/account_balance`
    YeastarBalance,
}

impl Route {
    /// Every route, in a fixed order.
    pub const ALL: [Route; 8] = [
        Route::AcedataBalance,
        Route::AcedataStatus,
        Route::AcedataStatusInit,
        Route::AcedataLevels,
        Route::AcedataHistory,
        Route::AcedataApplications,
        Route::YeastarToken,
        Route::YeastarBalance,
    ];

    /// The route serving `path`, if any. Paths are matched exactly (Ace Data Cloud paths
    /// end with a slash, Yeastar paths do not).
    pub fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/api/v1/balances/initialize/" => Route::AcedataBalance,
            "/api/v1/distribution-statuses/" => Route::AcedataStatus,
            "/api/v1/distribution-statuses/initialize/" => Route::AcedataStatusInit,
            "/api/v1/distribution-levels/" => Route::AcedataLevels,
            "/api/v1/distribution-histories/" => Route::AcedataHistory,
            "/api/v1/applications/" => Route::AcedataApplications,
            "/auth/openapi/v1/oauth/token" => Route::YeastarToken,
            "/user/openapi/user/v1/client/account_balance" => Route::YeastarBalance,
            _ => return None,
        })
    }

    /// The request path of this route.
    pub fn path(self) -> &'static str {
        match self {
            Route::AcedataBalance => "/api/v1/balances/initialize/",
            Route::AcedataStatus => "/api/v1/distribution-statuses/",
            Route::AcedataStatusInit => "/api/v1/distribution-statuses/initialize/",
            Route::AcedataLevels => "/api/v1/distribution-levels/",
            Route::AcedataHistory => "/api/v1/distribution-histories/",
            Route::AcedataApplications => "/api/v1/applications/",
            Route::YeastarToken => "/auth/openapi/v1/oauth/token",
            Route::YeastarBalance => "/user/openapi/user/v1/client/account_balance",
        }
    }

    /// The HTTP method the vendor documents for this route.
    pub fn method(self) -> &'static str {
        match self {
            Route::AcedataBalance | Route::AcedataStatusInit | Route::YeastarToken => "POST",
            Route::AcedataStatus
            | Route::AcedataLevels
            | Route::AcedataHistory
            | Route::AcedataApplications
            | Route::YeastarBalance => "GET",
        }
    }

    /// Whether the route belongs to the Yeastar Partner Portal (its errors use the
    /// `{code, detailMessage, requestId, result, status}` envelope).
    pub fn is_yeastar(self) -> bool {
        matches!(self, Route::YeastarToken | Route::YeastarBalance)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A misbehaviour injected into one route with [`Simulator::inject_fault`].
///
/// [`Simulator::inject_fault`]: super::Simulator::inject_fault
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and the vendor's usual JSON error body
    /// (Ace Data Cloud: `{"detail": …}`; Yeastar: the `{code, detailMessage, …}` envelope).
    Status(u16),
    /// HTTP 429, with a `Retry-After: <seconds>` header when given.
    RateLimited {
        /// Seconds to put in the `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer normally (on top of [`SimOptions::latency`]).
    ///
    /// [`SimOptions::latency`]: super::SimOptions::latency
    Delay(Duration),
    /// HTTP 200 with a truncated JSON document.
    MalformedJson,
    /// HTTP 200 with well-formed JSON whose fields have the wrong types
    /// (e.g. `credits` as an object, `accountBalance` as the string `"abc"`).
    WrongTypes,
    /// HTTP 502 with an HTML page, as a reverse proxy in front of the API would send.
    Html,
    /// HTTP 200 with `content-type: application/json` and no body.
    EmptyBody,
    /// HTTP 200 with a valid JSON object of (at least) this many bytes.
    HugeBody(usize),
    /// A vendor-level error: on Yeastar routes HTTP 200 with `code` other than `success`;
    /// on Ace Data Cloud routes HTTP 400 with the `{"error": {"code", "message"}}` body.
    ApiError,
    /// A careless upstream that echoes the request's credential in its error: the
    /// bearer token (401), or on the Yeastar token route the `client_secret` /
    /// `refresh_token` form field (HTTP 200, `invalid_client`). Tests that secrets never
    /// reach a log line or the status page.
    EchoCredentials,
}
