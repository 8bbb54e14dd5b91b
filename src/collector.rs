//! The `Collector` trait every provider collector implements, and the error whose
//! variant becomes the `reason` label of `balance_exporter_collector_errors_total`.

use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::metrics::GaugeFamily;
use crate::timing::Timing;

/// Why one collection attempt failed. Each variant maps to exactly one `reason` label.
///
/// Messages never carry a secret: they are built from status codes, vendor error
/// fields and parser messages only.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The request (connect, send or body read) did not finish within `timeout`.
    #[error("request timed out")]
    Timeout,
    /// The connection could not be established (refused, DNS failure, TLS failure).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The upstream rejected the credentials (HTTP 401).
    #[error("unauthorized (HTTP {status}): {detail}")]
    Unauthorized { status: u16, detail: String },
    /// The upstream asked us to slow down (HTTP 429).
    #[error("rate limited (HTTP 429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// Any other non-2xx HTTP status.
    #[error("unexpected HTTP status {status}: {detail}")]
    HttpStatus { status: u16, detail: String },
    /// The body could not be read or decoded into the documented shape.
    #[error("cannot decode response: {0}")]
    Decode(String),
    /// A 2xx answer whose envelope reports failure (Yeastar `code != "success"`).
    #[error("API error: code={code} detail={detail} request_id={request_id}")]
    Api {
        code: String,
        detail: String,
        request_id: String,
    },
    /// A bug in the exporter, such as a panic inside the collector. The attempt is
    /// counted and shown like any failure and retried at the next interval.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CollectError {
    /// Every value [`CollectError::reason`] can return, in a stable order.
    pub const REASONS: [&'static str; 8] = [
        "timeout",
        "connect",
        "unauthorized",
        "rate_limited",
        "http_status",
        "decode",
        "api_error",
        "internal",
    ];

    /// The `reason` label value of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            CollectError::Timeout => "timeout",
            CollectError::Connect(_) => "connect",
            CollectError::Unauthorized { .. } => "unauthorized",
            CollectError::RateLimited { .. } => "rate_limited",
            CollectError::HttpStatus { .. } => "http_status",
            CollectError::Decode(_) => "decode",
            CollectError::Api { .. } => "api_error",
            CollectError::Internal(_) => "internal",
        }
    }

    /// How long the upstream asked us to wait before the next attempt, if it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CollectError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Shorthand for a decode error from anything printable.
    pub fn decode(msg: impl std::fmt::Display) -> Self {
        CollectError::Decode(msg.to_string())
    }
}

/// One unit of polling: fetch from upstream, parse (pure functions), and write gauges
/// (a pure `update` of the collector's own, no I/O).
///
/// A collector owns whatever state it needs between attempts (for example the
/// commission-history sync marker), which is why `collect` takes `&mut self`.
/// Each attempt runs in a task of its own ([`crate::scheduler`]), so one failing (or
/// panicking) collector never stops another.
pub trait Collector: Send + 'static {
    /// The `collector` label, e.g. `acedata_balance`.
    fn name(&self) -> &'static str;
    /// The `account` label: the configured account name.
    fn account(&self) -> &str;
    /// Fetch, parse and update this collector's series; retries inside the attempt
    /// end before `deadline` (the start of the next attempt). On error nothing is
    /// written, so the last good values stay exported.
    fn collect(&mut self, deadline: Instant) -> BoxFuture<'_, Result<(), CollectError>>;
    /// Every gauge family this collector writes; its series are the account's ones
    /// in them.
    fn families(&self) -> Vec<&GaugeFamily>;
    /// Every secret value this collector sends or holds right now (tokens, client
    /// secrets, issued access and refresh tokens), so that an upstream error message
    /// that echoes one back can be redacted before it is shown or logged.
    fn secrets(&self) -> Vec<SecretString>;
    /// Remove every series this collector exports (data went stale, or the account
    /// was removed from the configuration).
    fn clear(&mut self) {
        for family in self.families() {
            family.clear(self.account());
        }
    }
    /// How many series this collector exports now, for the status page.
    fn series(&self) -> usize {
        self.families()
            .iter()
            .map(|f| f.count(self.account()))
            .sum()
    }
}

/// Implements [`Collector`] for a struct with the fields a collector of one account
/// holds: `account` (the `account` label), `client` (whose `secrets()` are all the
/// collector sends) and `metrics` (the provider's gauges, of which it writes the
/// fields listed). `collect` is the type's own `async fn poll(&mut self, deadline:
/// Instant) -> Result<(), CollectError>`.
///
/// ```text
/// impl_collector!(BalanceCollector, "acedata_balance", [credits, package_amount]);
/// ```
macro_rules! impl_collector {
    ($collector:ty, $name:expr, [$($family:ident),+ $(,)?]) => {
        impl $crate::collector::Collector for $collector {
            fn name(&self) -> &'static str {
                $name
            }

            fn account(&self) -> &str {
                self.client.account()
            }

            fn collect(
                &mut self,
                deadline: ::tokio::time::Instant,
            ) -> ::futures_util::future::BoxFuture<'_, Result<(), $crate::collector::CollectError>>
            {
                ::futures_util::FutureExt::boxed(self.poll(deadline))
            }

            fn families(&self) -> Vec<&$crate::metrics::GaugeFamily> {
                vec![$(&self.metrics.$family),+]
            }

            fn secrets(&self) -> Vec<::secrecy::SecretString> {
                self.client.secrets()
            }
        }
    };
}
pub(crate) use impl_collector;

/// A collector with the cadence of its account and the vendor it belongs to: what the
/// scheduler runs. The collectors of one `(provider, account)` share an upstream
/// account, so a rate limit on one holds them all.
pub struct Scheduled {
    pub collector: Box<dyn Collector>,
    pub timing: Timing,
    /// The `provider` label, e.g. `acedata`.
    pub provider: &'static str,
}
