//! The shared HTTP client every provider uses: one connection pool, a bound on the
//! requests in flight across all accounts, per-request timeout, a body-size cap,
//! retries with exponential backoff and jitter, and the mapping of transport and HTTP
//! failures to [`CollectError`].
//!
//! Retries stay inside the collection attempt: a retry is only started when it can
//! finish before the attempt's deadline (the start of the next attempt, given to
//! [`Upstream::send`]). Timeouts, connection failures, 5xx and 429 are retried; other
//! 4xx are not (a Yeastar 401 is retried once by its collector, after renewing the
//! token). A 429's `Retry-After` is honoured: the retry waits at least that long, and
//! when that does not fit, the error carries it so the scheduler waits too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::collector::CollectError;
use crate::text::truncate;

/// Default of the configuration's `max_concurrent_requests`: requests in flight at
/// once over all accounts.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 16;

/// Default cap on a response body; larger answers are a decode error.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The longest `Retry-After` taken at its word; longer ones are cut to this, so a
/// garbled header cannot stop polling for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How failed requests are retried inside one collection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles with each further retry.
    pub base_delay: Duration,
    /// Longest backoff (before jitter).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 = the first retry): exponential, with
    /// "equal jitter" (half fixed, half random) so that accounts failing together do
    /// not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        if half.is_zero() {
            return exp;
        }
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// How long to wait before retrying after `error` on try number `attempt`, or
    /// `None` when the error is not worth retrying or the tries are used up.
    pub fn delay_after(&self, error: &CollectError, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match error {
            CollectError::RateLimited {
                retry_after: Some(wait),
            } => Some(*wait + self.backoff(1) / 2),
            CollectError::RateLimited { retry_after: None }
            | CollectError::Timeout
            | CollectError::Connect(_) => Some(self.backoff(attempt)),
            CollectError::HttpStatus { status, .. } if *status >= 500 || *status == 408 => {
                Some(self.backoff(attempt))
            }
            _ => None,
        }
    }
}

/// Settings of the shared client; [`Default`] is what the exporter runs with.
#[derive(Clone)]
pub struct UpstreamOptions {
    /// Requests in flight at once over all accounts.
    pub max_concurrent: usize,
    /// Cap on a response body.
    pub max_body_bytes: usize,
    /// Limit of establishing a connection (the request `timeout` applies as well).
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Name resolution; `None` is the system resolver.
    pub resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            max_concurrent: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            resolver: None,
        }
    }
}

/// A request slot, given back when the request ends, or forgotten while the bound
/// owes permits (it went down while this one was out).
struct Permit<'a>(Option<tokio::sync::SemaphorePermit<'a>>, &'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let owed = self
            .1
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if let (true, Some(p)) = (owed, self.0.take()) {
            p.forget();
        }
    }
}

/// `dns_resolver` wants a sized resolver.
struct SharedResolver(Arc<dyn reqwest::dns::Resolve>);

impl reqwest::dns::Resolve for SharedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.resolve(name)
    }
}

/// The shared upstream HTTP client. Cheap to clone: one pointer (every account holds
/// one).
#[derive(Clone)]
pub struct Upstream(Arc<ClientCore>);

struct ClientCore {
    client: reqwest::Client,
    in_flight: Semaphore,
    /// The bound `in_flight` stands for now (see [`Upstream::set_max_concurrent`]).
    limit: Mutex<usize>,
    /// Permits to forget as requests in flight give them back, after the bound went
    /// down while they were out.
    debt: AtomicUsize,
    max_body: usize,
    retry: RetryPolicy,
}

impl Upstream {
    /// A client allowing at most `max_concurrent` requests in flight at once.
    pub fn new(max_concurrent: usize) -> Self {
        Upstream::with_options(UpstreamOptions {
            max_concurrent,
            ..UpstreamOptions::default()
        })
    }

    /// A client with explicit settings.
    pub fn with_options(opts: UpstreamOptions) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // Never follow a redirect: it could carry the bearer token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("balance-exporter/", env!("CARGO_PKG_VERSION")));
        if let Some(resolver) = opts.resolver {
            builder = builder.dns_resolver(Arc::new(SharedResolver(resolver)));
        }
        let client = builder
            .build()
            .expect("a client with static settings builds");
        Upstream(Arc::new(ClientCore {
            client,
            in_flight: Semaphore::new(opts.max_concurrent.max(1)),
            limit: Mutex::new(opts.max_concurrent.max(1)),
            debt: AtomicUsize::new(0),
            max_body: opts.max_body_bytes,
            retry: opts.retry,
        }))
    }

    /// Change the bound of requests in flight (a reload changed
    /// `max_concurrent_requests`); the connection pool stays. Requests in flight
    /// finish; a lower bound holds from the moment enough of them have.
    pub fn set_max_concurrent(&self, max_concurrent: usize) {
        let new = max_concurrent.max(1);
        let mut limit = self.0.limit.lock().unwrap_or_else(|e| e.into_inner());
        let old = *limit;
        if new > old {
            let mut more = new - old;
            // Permits still owed from an earlier decrease cancel out first.
            let _ = self
                .0
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                    let paid = debt.min(more);
                    more -= paid;
                    Some(debt - paid)
                });
            self.0.in_flight.add_permits(more);
        } else if new < old {
            let fewer = old - new;
            let forgotten = self.0.in_flight.forget_permits(fewer);
            self.0.debt.fetch_add(fewer - forgotten, Ordering::AcqRel);
        }
        *limit = new;
    }

    /// The underlying client, for building requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.0.client
    }

    /// Send `request` and return the body of a 2xx answer; non-2xx answers become
    /// errors by status. Each try is limited by `timeout` (connect, headers and
    /// body); failed tries are retried as the module documentation says, as long as
    /// a retry can finish before `deadline` (the start of the next poll). Without a
    /// deadline the request is tried once. `secrets` are the credentials the request
    /// carries: an upstream may echo them in an error, and the debug log of a retry
    /// replaces them (as the status page and the failure log line do with the
    /// collector's secrets).
    pub async fn send(
        &self,
        request: RequestBuilder,
        timeout: Duration,
        deadline: Option<Instant>,
        secrets: &[SecretString],
    ) -> Result<Bytes, CollectError> {
        let mut attempt = 1;
        let mut limit = timeout;
        loop {
            // Every request the providers build has a clonable (in-memory) body.
            let Some(this_try) = request.try_clone() else {
                return self.send_once(request, limit).await;
            };
            let error = match self.send_once(this_try, limit).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let Some(delay) = self.0.retry.delay_after(&error, attempt) else {
                return Err(error);
            };
            let Some(deadline) = deadline else {
                return Err(error);
            };
            let starts = Instant::now() + delay;
            // A retry needs time to do something useful before the deadline.
            let left = deadline.saturating_duration_since(starts);
            if left < timeout.min(MIN_RETRY_WINDOW) {
                tracing::debug!(reason = error.reason(), error = %crate::redact::redact(&error.to_string(), secrets), attempt, "not retrying: the next try would not finish before the next poll");
                return Err(error);
            }
            tracing::debug!(reason = error.reason(), error = %crate::redact::redact(&error.to_string(), secrets), attempt, retry_in_seconds = delay.as_secs_f64(), "upstream request failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
            limit = timeout.min(left);
        }
    }

    /// One try: wait for a slot, send, read the capped body, map the status.
    async fn send_once(
        &self,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<Bytes, CollectError> {
        let permit = self
            .0
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let _permit = Permit(Some(permit), &self.0.debt);
        let work = async {
            let response = request.send().await.map_err(map_transport)?;
            let status = response.status();
            let retry_after = retry_after(&response);
            let body = read_capped(response, self.0.max_body).await?;
            if status.is_success() {
                return Ok(body);
            }
            let detail = error_detail(&body);
            Err(match status {
                StatusCode::UNAUTHORIZED => CollectError::Unauthorized {
                    status: status.as_u16(),
                    detail,
                },
                StatusCode::TOO_MANY_REQUESTS => CollectError::RateLimited { retry_after },
                _ => CollectError::HttpStatus {
                    status: status.as_u16(),
                    detail,
                },
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(CollectError::Timeout),
        }
    }
}

/// The shortest time left before the deadline for which a retry is still started
/// (or the request timeout, when that is shorter).
const MIN_RETRY_WINDOW: Duration = Duration::from_secs(1);

fn map_transport(e: reqwest::Error) -> CollectError {
    if e.is_timeout() {
        CollectError::Timeout
    } else if e.is_connect() {
        CollectError::Connect(root_cause(&e))
    } else if e.is_decode() {
        CollectError::Decode(root_cause(&e))
    } else {
        // Includes a connection closed while the body was being read.
        CollectError::Connect(root_cause(&e))
    }
}

/// The innermost message of an error chain, without the URL reqwest prefixes (the
/// URL can carry query parameters, never secrets, but the cause is what helps).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

async fn read_capped(response: Response, cap: usize) -> Result<Bytes, CollectError> {
    if let Some(len) = response.content_length() {
        if len > cap as u64 {
            return Err(CollectError::Decode(format!(
                "body of {len} bytes exceeds the {cap}-byte cap"
            )));
        }
    }
    let mut stream = response.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(map_transport)?;
        if buf.len() + chunk.len() > cap {
            return Err(CollectError::Decode(format!(
                "body exceeds the {cap}-byte cap"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    retry_after_wait(value, SystemTime::now())
}

/// The wait a `Retry-After` value asks for at `now`, at most [`MAX_RETRY_AFTER`]: its
/// delay-seconds, or the time until its HTTP date (any of the three forms RFC 9110
/// names; a date already past asks for no wait).
fn retry_after_wait(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A short, secret-free description of an error body: the vendor's `detail`,
/// `error.message` (with `error.code`), Yeastar's `detailMessage` (with `code`), or
/// the start of the text.
pub fn error_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for (ptr, code) in [
            ("/detail", ""),
            ("/error/message", "/error/code"),
            ("/detailMessage", "/code"),
            ("/message", ""),
        ] {
            if let Some(s) = v.pointer(ptr).and_then(|d| d.as_str()) {
                if !s.is_empty() {
                    // The vendor's own code says more than the HTTP status.
                    return match v.pointer(code).and_then(|c| c.as_str()) {
                        Some(c) if !c.is_empty() => {
                            format!("{} (code {})", truncate(s, 200), truncate(c, 60))
                        }
                        _ => truncate(s, 200),
                    };
                }
            }
        }
        if let Some(code) = v.pointer("/error/code").or_else(|| v.pointer("/code")) {
            return truncate(&code.to_string(), 200);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "empty body".into()
    } else {
        truncate(&text, 120)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Permits available plus permits out: the bound in force once every request
    /// that is out has ended.
    #[test]
    fn the_bound_can_change_while_requests_are_in_flight() {
        let u = Upstream::new(4);
        let shared = &u.0;
        let out: Vec<Permit<'_>> = (0..3)
            .map(|_| Permit(Some(shared.in_flight.try_acquire().unwrap()), &shared.debt))
            .collect();
        u.set_max_concurrent(2);
        assert_eq!(shared.in_flight.available_permits(), 0);
        drop(out);
        assert_eq!(
            shared.in_flight.available_permits(),
            2,
            "the lower bound holds once the requests out ended"
        );
        u.set_max_concurrent(5);
        assert_eq!(shared.in_flight.available_permits(), 5);
        let out: Vec<Permit<'_>> = (0..5)
            .map(|_| Permit(Some(shared.in_flight.try_acquire().unwrap()), &shared.debt))
            .collect();
        u.set_max_concurrent(1);
        u.set_max_concurrent(3);
        drop(out);
        assert_eq!(shared.in_flight.available_permits(), 3);
    }

    #[test]
    fn error_detail_prefers_vendor_fields() {
        assert_eq!(
            error_detail(br#"{"detail":"Invalid token."}"#),
            "Invalid token."
        );
        assert_eq!(
            error_detail(br#"{"error":{"code":"x","message":"slow down"}}"#),
            "slow down (code x)"
        );
        assert_eq!(
            error_detail(
                br#"{"code":"access_token_invalid","detailMessage":"Invalid access token"}"#
            ),
            "Invalid access token (code access_token_invalid)"
        );
        assert_eq!(
            error_detail(b"<html>\n<b>Bad Gateway</b></html>"),
            "<html> <b>Bad Gateway</b></html>"
        );
        assert_eq!(error_detail(b""), "empty body");
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        // Wed, 21 Oct 2015 07:28:00 GMT
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let at = |secs_before: u64| date - Duration::from_secs(secs_before);
        let http_date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            retry_after_wait(http_date, at(90)),
            Some(Duration::from_secs(90))
        );
        // A date already past asks for no wait.
        assert_eq!(
            retry_after_wait(http_date, date + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_wait(" 7 ", at(0)), Some(Duration::from_secs(7)));
        // A far date or a huge number is cut to the cap.
        assert_eq!(
            retry_after_wait(http_date, at(86_400)),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after_wait("999999", at(0)), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_wait("soon", at(0)), None);
        assert_eq!(retry_after_wait("-3", at(0)), None);
    }
}
