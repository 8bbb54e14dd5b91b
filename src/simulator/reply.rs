//! Building HTTP answers: success bodies, the vendors' error bodies, and injected faults.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::route::{Fault, Route};

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

/// A fresh 32-hex-digit request id, like the ones Yeastar puts in `requestId`.
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The Yeastar response envelope.
pub(crate) fn yeastar_envelope(code: &str, detail: &str, result: Value, status: u16) -> Value {
    json!({
        "code": code,
        "detailMessage": detail,
        "requestId": request_id(),
        "result": result,
        "status": status,
    })
}

/// A Yeastar error answered with HTTP `status` and the same status in the envelope.
pub(crate) fn yeastar_error(status: u16, code: &str, detail: &str) -> Reply {
    Reply::json(status, &yeastar_envelope(code, detail, Value::Null, status))
}

/// An Ace Data Cloud error in the `{"detail": …}` style.
pub(crate) fn acedata_detail(status: u16, detail: &str) -> Reply {
    Reply::json(status, &json!({ "detail": detail }))
}

/// The Ace Data Cloud 401 for a missing or unknown platform token.
pub(crate) fn acedata_unauthorized(missing: bool) -> Reply {
    if missing {
        acedata_detail(401, "Authentication credentials were not provided.")
    } else {
        acedata_detail(401, "Invalid token.")
    }
}

/// 404 for paths the simulator does not serve.
pub(crate) fn not_found(path: &str) -> Reply {
    if path.starts_with("/api/") {
        acedata_detail(404, "Not found.")
    } else {
        yeastar_error(404, "not_found", "The requested resource does not exist")
    }
}

/// 405 for a known path called with the wrong method.
pub(crate) fn method_not_allowed(route: Route, method: &str) -> Reply {
    let mut reply = if route.is_yeastar() {
        yeastar_error(
            405,
            "method_not_allowed",
            &format!("Request method '{method}' not supported"),
        )
    } else {
        acedata_detail(405, &format!("Method \"{method}\" not allowed."))
    };
    reply.allow = Some(route.method());
    reply
}

fn status_reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// The answer for an injected fault. [`Fault::Delay`] is handled by the caller and never
/// reaches this function.
pub(crate) fn fault_reply(route: Route, fault: &Fault) -> Reply {
    match fault {
        Fault::Status(code) => status_fault(route, *code),
        Fault::RateLimited { retry_after } => {
            let mut reply = if route.is_yeastar() {
                yeastar_error(
                    429,
                    "too_many_requests",
                    "Request frequency exceeds the limit, please try again later",
                )
            } else {
                match retry_after {
                    Some(s) => acedata_detail(
                        429,
                        &format!("Request was throttled. Expected available in {s} seconds."),
                    ),
                    None => acedata_detail(429, "Request was throttled."),
                }
            };
            reply.retry_after = *retry_after;
            reply
        }
        // Handled by the caller, which has the request.
        Fault::Delay(_) | Fault::EchoCredentials => {
            Reply::raw(200, "application/json", Bytes::new())
        }
        Fault::MalformedJson => Reply::raw(
            200,
            "application/json",
            Bytes::from_static(malformed_body(route).as_bytes()),
        ),
        Fault::WrongTypes => Reply::json(200, &wrong_types_body(route)),
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
        Fault::ApiError => {
            if route.is_yeastar() {
                Reply::json(
                    200,
                    &yeastar_envelope(
                        "internal_server_error",
                        "The server encountered an internal error, please try again later",
                        Value::Null,
                        500,
                    ),
                )
            } else {
                Reply::json(
                    400,
                    &json!({
                        "error": {
                            "code": "bad_request",
                            "message": "The request could not be processed.",
                        }
                    }),
                )
            }
        }
    }
}

/// The answer of [`Fault::EchoCredentials`]: an error that repeats the credential of
/// `req` back.
pub(crate) fn echo_credentials(route: Route, req: &super::RecordedRequest) -> Reply {
    let bearer = req
        .authorization
        .as_deref()
        .and_then(super::bearer)
        .unwrap_or("")
        .to_string();
    match route {
        Route::YeastarToken => {
            let detail = match req.form_param("refresh_token") {
                Some(r) => format!("Invalid refresh_token {r}"),
                None => format!(
                    "Invalid client_secret {} for client_id {}",
                    req.form_param("client_secret").unwrap_or_default(),
                    req.form_param("client_id").unwrap_or_default()
                ),
            };
            Reply::json(
                200,
                &yeastar_envelope("invalid_client", &detail, Value::Null, 401),
            )
        }
        Route::YeastarBalance => yeastar_error(
            401,
            "access_token_invalid",
            &format!("Invalid access token {bearer}"),
        ),
        _ => acedata_detail(401, &format!("Invalid token: Bearer {bearer} was rejected")),
    }
}

fn status_fault(route: Route, code: u16) -> Reply {
    if route.is_yeastar() {
        let vendor_code = match code {
            400 => "parameter_validation_failed",
            401 => "access_token_invalid",
            403 => "forbidden",
            404 => "not_found",
            429 => "too_many_requests",
            500..=599 => "internal_server_error",
            _ => "request_failed",
        };
        return yeastar_error(code, vendor_code, status_reason(code));
    }
    match code {
        401 => acedata_unauthorized(false),
        403 => acedata_detail(403, "You do not have permission to perform this action."),
        404 => acedata_detail(404, "Not found."),
        429 => acedata_detail(429, "Request was throttled."),
        500 => acedata_detail(500, "A server error occurred."),
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
        Route::AcedataHistory => {
            r#"{"count": 20, "results": [{"id": "history-uuid", "reward": 5.0, "order": {"#
        }
        Route::AcedataApplications => {
            r#"{"count": 7, "results": [{"id": "0b7c2f1e-5a4d-4c3b-9e21-7f6a5d4c3b2a", "remaining_amount": 31"#
        }
        Route::YeastarToken => r#"{"code": "success", "detailMessage": "", "result": {"token": "#,
        Route::YeastarBalance => {
            r#"{"code": "success", "detailMessage": "", "result": {"accountBalance": 675."#
        }
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
        Route::AcedataApplications => json!({
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
        Route::YeastarToken => json!({
            "code": "success",
            "detailMessage": "",
            "requestId": request_id(),
            "result": { "token": 12345, "refreshToken": false, "expiresIn": "abc", "tokenHead": "Bearer " },
            "status": 200,
        }),
        Route::YeastarBalance => json!({
            "code": "success",
            "detailMessage": "",
            "requestId": request_id(),
            "result": { "accountBalance": "abc" },
            "status": 200,
        }),
    }
}
