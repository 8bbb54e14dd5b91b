//! HTTP answers before they become hyper responses, and the faults that look the same
//! whatever the vendor.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::route::Fault;

/// An answer before it is turned into a hyper response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub retry_after: Option<u64>,
    pub allow: Option<&'static str>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::raw(status, "application/json", Bytes::from(body.to_string()))
    }

    pub fn raw(status: u16, content_type: &'static str, body: Bytes) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type,
            retry_after: None,
            allow: None,
            body,
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// The reason phrase of `status`, e.g. `Bad Gateway`.
pub(crate) fn status_reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// The answer to a fault that every vendor shows alike (a proxy's HTML page, an empty or
/// a huge body); `None` for the faults a vendor answers in its own style.
pub(crate) fn common_fault(fault: &Fault) -> Option<Reply> {
    Some(match fault {
        Fault::Html => Reply::raw(
            502,
            "text/html",
            Bytes::from_static(
                b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            ),
        ),
        Fault::EmptyBody => Reply::raw(200, "application/json", Bytes::new()),
        Fault::HugeBody(size) => {
            const HEAD: &str = "{\"padding\":\"";
            const TAIL: &str = "\"}";
            let fill = size.saturating_sub(HEAD.len() + TAIL.len());
            let mut body = String::with_capacity(HEAD.len() + fill + TAIL.len());
            body.push_str(HEAD);
            body.push_str(&"x".repeat(fill));
            body.push_str(TAIL);
            Reply::raw(200, "application/json", Bytes::from(body))
        }
        _ => return None,
    })
}
