//! Yeastar Partner Portal: client-credential token exchange and refresh, and the
//! account balance query of seed 001, in the vendor's `{code, detailMessage, requestId,
//! result, status}` envelope.
//!
//! Error codes used (lower-case, like the vendor's `parameter_validation_failed`):
//!
//! | situation | HTTP | `code` | envelope `status` |
//! |---|---|---|---|
//! | token: missing `client_id`/`client_secret`/`grant_type` | 200 | `parameter_validation_failed` | 400 |
//! | token: unknown `grant_type` | 200 | `unsupported_grant_type` | 400 |
//! | token: wrong client id or secret | 200 | `invalid_client` | 401 |
//! | token: unknown, used or expired refresh token | 200 | `refresh_token_invalid` | 401 |
//! | balance: no `User-Agent` | 400 | `parameter_validation_failed` | 400 |
//! | balance: missing or unknown access token | 401 | `access_token_invalid` | 401 |
//! | balance: expired access token | 401 | `access_token_expired` | 401 |

mod state;

use std::any::Any;

use serde_json::{json, Value};

use self::state::YeastarState;
use super::reply::{status_reason, Reply};
use super::route::{Fault, Route};
use super::vendor::Vendor;
use super::{bearer, RecordedRequest, SimOptions, Simulator};

const VENDOR: &str = "yeastar";

#[allow(non_upper_case_globals)]
impl Route {
    /// `POST /auth/openapi/v1/oauth/token`
    pub const YeastarToken: Route = Route::new(
        VENDOR,
        "YeastarToken",
        "POST",
        "/auth/openapi/v1/oauth/token",
    );
    /// `GET /user/openapi/user/v1/client/account_balance`
    pub const YeastarBalance: Route = Route::new(
        VENDOR,
        "YeastarBalance",
        "GET",
        "/user/openapi/user/v1/client/account_balance",
    );
}

/// Every Yeastar route.
pub(crate) const ROUTES: &[Route] = &[Route::YeastarToken, Route::YeastarBalance];

/// Clients, tokens and balances.
#[derive(Debug, Default)]
pub(crate) struct YeastarSim {
    state: YeastarState,
}

/// A fresh 32-hex-digit request id, like the ones Yeastar puts in `requestId`.
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The response envelope.
pub(crate) fn envelope(code: &str, detail: &str, result: Value, status: u16) -> Value {
    json!({
        "code": code,
        "detailMessage": detail,
        "requestId": request_id(),
        "result": result,
        "status": status,
    })
}

/// An error answered with HTTP `status` and the same status in the envelope.
pub(crate) fn error(status: u16, code: &str, detail: &str) -> Reply {
    Reply::json(status, &envelope(code, detail, Value::Null, status))
}

impl Vendor for YeastarSim {
    fn name(&self) -> &'static str {
        VENDOR
    }

    fn claims(&self, _path: &str) -> bool {
        true
    }

    fn not_found(&self) -> Reply {
        error(404, "not_found", "The requested resource does not exist")
    }

    fn method_not_allowed(&self, route: Route, method: &str) -> Reply {
        let mut reply = error(
            405,
            "method_not_allowed",
            &format!("Request method '{method}' not supported"),
        );
        reply.allow = Some(route.method());
        reply
    }

    fn answer(
        &mut self,
        route: Route,
        req: &RecordedRequest,
        body: &[u8],
        opts: &SimOptions,
    ) -> Reply {
        match route {
            Route::YeastarToken if opts.echo_credentials => {
                self.fault(route, &Fault::EchoCredentials, req)
            }
            Route::YeastarToken => self.state.token(opts, body),
            _ => self.state.balance(
                opts,
                req.authorization.as_deref(),
                req.user_agent.as_deref(),
            ),
        }
    }

    fn fault(&self, route: Route, fault: &Fault, req: &RecordedRequest) -> Reply {
        match fault {
            Fault::Status(code) => {
                let vendor_code = match code {
                    400 => "parameter_validation_failed",
                    401 => "access_token_invalid",
                    403 => "forbidden",
                    404 => "not_found",
                    429 => "too_many_requests",
                    500..=599 => "internal_server_error",
                    _ => "request_failed",
                };
                error(*code, vendor_code, status_reason(*code))
            }
            Fault::RateLimited { retry_after } => {
                let mut reply = error(
                    429,
                    "too_many_requests",
                    "Request frequency exceeds the limit, please try again later",
                );
                reply.retry_after = *retry_after;
                reply
            }
            Fault::MalformedJson => Reply::raw(
                200,
                "application/json",
                bytes::Bytes::from_static(match route {
                    Route::YeastarToken => {
                        br#"{"code": "success", "detailMessage": "", "result": {"token": "#
                    }
                    _ => br#"{"code": "success", "detailMessage": "", "result": {"accountBalance": 675."#,
                }),
            ),
            Fault::WrongTypes => Reply::json(
                200,
                &match route {
                    Route::YeastarToken => json!({
                        "code": "success",
                        "detailMessage": "",
                        "requestId": request_id(),
                        "result": { "token": 12345, "refreshToken": false, "expiresIn": "abc", "tokenHead": "Bearer " },
                        "status": 200,
                    }),
                    _ => json!({
                        "code": "success",
                        "detailMessage": "",
                        "requestId": request_id(),
                        "result": { "accountBalance": "abc" },
                        "status": 200,
                    }),
                },
            ),
            Fault::EchoCredentialsServerError => {
                let credential = match route {
                    Route::YeastarToken => req
                        .form_param("refresh_token")
                        .or_else(|| req.form_param("client_secret"))
                        .unwrap_or_default(),
                    _ => req
                        .authorization
                        .as_deref()
                        .and_then(bearer)
                        .unwrap_or("")
                        .to_string(),
                };
                error(
                    500,
                    "internal_server_error",
                    &format!("Backend failure while checking token {credential}"),
                )
            }
            Fault::EchoCredentials => match route {
                Route::YeastarToken => {
                    let detail = match req.form_param("refresh_token") {
                        Some(r) => format!("Invalid refresh_token {r}"),
                        None => format!(
                            "Invalid client_secret {} for client_id {}",
                            req.form_param("client_secret").unwrap_or_default(),
                            req.form_param("client_id").unwrap_or_default()
                        ),
                    };
                    Reply::json(200, &envelope("invalid_client", &detail, Value::Null, 401))
                }
                _ => {
                    let bearer = req.authorization.as_deref().and_then(bearer).unwrap_or("");
                    error(
                        401,
                        "access_token_invalid",
                        &format!("Invalid access token {bearer}"),
                    )
                }
            },
            _ => Reply::json(
                200,
                &envelope(
                    "internal_server_error",
                    "The server encountered an internal error, please try again later",
                    Value::Null,
                    500,
                ),
            ),
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Yeastar clients and tokens, for tests and the demo.
impl Simulator {
    /// Registers a Yeastar API client; its balance starts at the seed's 675.24.
    pub fn add_yeastar_client(&self, client_id: &str, client_secret: &str) {
        self.vendor(|v: &mut YeastarSim, _| v.state.add_client(client_id, client_secret));
    }

    /// Registers a never-expiring Yeastar access token with its own balance (675.24).
    pub fn add_yeastar_static_token(&self, token: &str) {
        self.vendor(|v: &mut YeastarSim, _| v.state.add_static_token(token));
    }

    /// Sets the balance of a Yeastar account, named by client id or static token.
    ///
    /// # Panics
    /// When `account` is neither.
    pub fn set_yeastar_balance(&self, account: &str, balance: f64) {
        let found = self.vendor(|v: &mut YeastarSim, _| v.state.set_balance(account, balance));
        assert!(found, "no Yeastar client or static token {account:?}");
    }

    /// Makes every issued Yeastar access token expired (the balance call answers 401
    /// `access_token_expired`); refresh tokens stay valid. Static tokens are not affected.
    pub fn expire_yeastar_tokens(&self) {
        self.vendor(|v: &mut YeastarSim, _| v.state.expire_access_tokens());
    }

    /// Invalidates every issued Yeastar refresh token, so a refresh must fall back to
    /// client credentials.
    pub fn revoke_yeastar_refresh_tokens(&self) {
        self.vendor(|v: &mut YeastarSim, _| v.state.revoke_refresh_tokens());
    }

    /// Yeastar access tokens issued and not yet forgotten (expired ones included).
    pub fn yeastar_tokens_issued(&self) -> usize {
        self.vendor(|v: &mut YeastarSim, _| v.state.issued_access_tokens())
    }
}
