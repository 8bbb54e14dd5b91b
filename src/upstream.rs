//! The shared HTTP client every provider uses: one connection pool, a bound on the
//! requests in flight across all accounts, per-request timeout, a body-size cap, and
//! the mapping of transport and HTTP failures to [`CollectError`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::collector::CollectError;

/// Default cap on a response body; larger answers are a decode error.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A successful (2xx) upstream answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The shared upstream HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    in_flight: Arc<Semaphore>,
    max_body: usize,
}

impl Upstream {
    /// A client allowing at most `max_concurrent` requests in flight at once.
    pub fn new(max_concurrent: usize) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("balance-exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with static settings builds");
        Upstream {
            client,
            in_flight: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_body: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The underlying client, for building requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send `request` with `timeout` covering connect, headers and body, and return
    /// the body of a 2xx answer. Non-2xx answers become errors by status.
    pub async fn send(
        &self,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<Answer, CollectError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let work = async {
            let response = request.send().await.map_err(map_transport)?;
            let status = response.status();
            let retry_after = retry_after(&response);
            let body = read_capped(response, self.max_body).await?;
            if status.is_success() {
                return Ok(Answer { status, body });
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

fn map_transport(e: reqwest::Error) -> CollectError {
    if e.is_timeout() {
        CollectError::Timeout
    } else if e.is_connect() {
        CollectError::Connect(root_cause(&e))
    } else if e.is_decode() || e.is_body() {
        CollectError::Decode(root_cause(&e))
    } else {
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
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(value)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn httpdate_parse(s: &str) -> Option<std::time::SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let dt = time::PrimitiveDateTime::parse(s, &format).ok()?;
    Some(dt.assume_utc().into())
}

/// A short, secret-free description of an error body: the vendor's `detail`,
/// `error.message`, Yeastar's `detailMessage`, or the start of the text.
pub fn error_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for ptr in ["/detail", "/error/message", "/detailMessage", "/message"] {
            if let Some(s) = v.pointer(ptr).and_then(|d| d.as_str()) {
                if !s.is_empty() {
                    return truncate(s, 200);
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

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_prefers_vendor_fields() {
        assert_eq!(
            error_detail(br#"{"detail":"Invalid token."}"#),
            "Invalid token."
        );
        assert_eq!(
            error_detail(br#"{"error":{"code":"x","message":"slow down"}}"#),
            "slow down"
        );
        assert_eq!(
            error_detail(b"<html>\n<b>Bad Gateway</b></html>"),
            "<html> <b>Bad Gateway</b></html>"
        );
        assert_eq!(error_detail(b""), "empty body");
    }

    #[test]
    fn http_dates_parse() {
        assert!(httpdate_parse("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert!(httpdate_parse("soon").is_none());
    }
}
