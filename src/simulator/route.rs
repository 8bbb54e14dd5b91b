//! The simulated endpoints, each named by its vendor, and the faults that can be
//! injected into them.

use std::fmt;
use std::time::Duration;

/// One simulated upstream endpoint. Requests are counted and faults are injected per
/// route. Each vendor module defines its routes as associated constants
/// (`Route::AcedataBalance`, …); [`Route::all`] (beside the list of vendors) lists
/// every vendor's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    vendor: &'static str,
    name: &'static str,
    method: &'static str,
    path: &'static str,
}

impl Route {
    /// The route `method path` of `vendor`, called `name` in messages.
    pub const fn new(
        vendor: &'static str,
        name: &'static str,
        method: &'static str,
        path: &'static str,
    ) -> Route {
        Route {
            vendor,
            name,
            method,
            path,
        }
    }

    /// The vendor serving this route (its simulator module's name).
    pub fn vendor(self) -> &'static str {
        self.vendor
    }

    /// The request path of this route.
    pub fn path(self) -> &'static str {
        self.path
    }

    /// The HTTP method the vendor documents for this route.
    pub fn method(self) -> &'static str {
        self.method
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)
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
    /// HTTP 500 whose message names the request's credential in plain words
    /// (`… for token <value>`), as a failing backend's debug output might: a 5xx is
    /// retried, so this reaches the retry's debug log line.
    EchoCredentialsServerError,
}
