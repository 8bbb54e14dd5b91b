//! Yeastar clients, tokens and balances, and the answers to the token and balance calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{envelope as yeastar_envelope, error as yeastar_error, request_id};
use crate::simulator::reply::Reply;
use crate::simulator::{bearer, SimOptions};

/// The seed balance, 675.24.
const SEED_BALANCE: f64 = 675.24;
/// Balance consumed per second while drifting (one cent every ten seconds).
const BALANCE_DRIFT_PER_SEC: f64 = 0.001;
/// Refresh tokens live 15 days.
const REFRESH_TTL: Duration = Duration::from_secs(15 * 24 * 3600);

#[derive(Debug, Clone)]
struct Balance {
    value: f64,
    residual: f64,
    last_tick: Instant,
}

#[derive(Debug, Clone)]
struct AccessToken {
    /// Client id, or the token itself for a static token.
    account: String,
    /// `None` for static tokens.
    expires_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    client_id: String,
    expires_at: Instant,
}

/// Clients, tokens and balances. A balance belongs to an account key: the client id for
/// client-credential clients, the token itself for static tokens.
#[derive(Debug, Default)]
pub(crate) struct YeastarState {
    secrets: HashMap<String, String>,
    balances: HashMap<String, Balance>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

fn new_balance() -> Balance {
    Balance {
        value: SEED_BALANCE,
        residual: 0.0,
        last_tick: Instant::now(),
    }
}

impl YeastarState {
    pub fn add_client(&mut self, client_id: &str, client_secret: &str) {
        self.secrets
            .insert(client_id.to_owned(), client_secret.to_owned());
        self.balances.insert(client_id.to_owned(), new_balance());
    }

    pub fn add_static_token(&mut self, token: &str) {
        self.access.insert(
            token.to_owned(),
            AccessToken {
                account: token.to_owned(),
                expires_at: None,
            },
        );
        self.balances.insert(token.to_owned(), new_balance());
    }

    /// False when `account` is neither a client id nor a static token.
    pub fn set_balance(&mut self, account: &str, value: f64) -> bool {
        match self.balances.get_mut(account) {
            Some(balance) => {
                balance.value = value;
                balance.residual = 0.0;
                true
            }
            None => false,
        }
    }

    /// Marks every issued (non-static) access token as expired.
    pub fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for token in self.access.values_mut() {
            if let Some(expires_at) = token.expires_at.as_mut() {
                *expires_at = (*expires_at).min(now);
            }
        }
    }

    /// Forgets every issued refresh token.
    pub fn revoke_refresh_tokens(&mut self) {
        self.refresh.clear();
    }

    pub fn issued_access_tokens(&self) -> usize {
        self.access
            .values()
            .filter(|t| t.expires_at.is_some())
            .count()
    }

    fn issue(&mut self, client_id: &str, opts: &SimOptions) -> Reply {
        let now = Instant::now();
        let token = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let refresh = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        // Forget dead tokens so a long benchmark does not accumulate them.
        self.access
            .retain(|_, t| t.expires_at.is_none_or(|e| e + REFRESH_TTL > now));
        self.access.insert(
            token.clone(),
            AccessToken {
                account: client_id.to_owned(),
                expires_at: Some(now + Duration::from_secs(opts.token_ttl_secs)),
            },
        );
        self.refresh.insert(
            refresh.clone(),
            RefreshToken {
                client_id: client_id.to_owned(),
                expires_at: now + REFRESH_TTL,
            },
        );
        let result = json!({
            "token": token,
            "refreshToken": refresh,
            "expiresIn": opts.token_ttl_secs.to_string(),
            "tokenHead": "Bearer ",
        });
        Reply::json(200, &yeastar_envelope("success", "", result, 200))
    }

    /// `POST /auth/openapi/v1/oauth/token` with a form-urlencoded body.
    pub fn token(&mut self, opts: &SimOptions, body: &[u8]) -> Reply {
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let token_error = |code: &str, detail: &str, status: u16| {
            Reply::json(200, &yeastar_envelope(code, detail, Value::Null, status))
        };
        match field("grant_type") {
            Some("pp_credentials") => {
                let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
                    return token_error(
                        "parameter_validation_failed",
                        "client_id and client_secret are required",
                        400,
                    );
                };
                if self.secrets.get(id).map(String::as_str) != Some(secret) {
                    return token_error(
                        "invalid_client",
                        "Invalid client_id or client_secret",
                        401,
                    );
                }
                self.issue(id, opts)
            }
            Some("refresh_token") => {
                let Some(refresh) = field("refresh_token") else {
                    return token_error(
                        "parameter_validation_failed",
                        "refresh_token is required",
                        400,
                    );
                };
                match self.refresh.remove(refresh) {
                    Some(r) if r.expires_at > Instant::now() => self.issue(&r.client_id, opts),
                    _ => token_error("refresh_token_invalid", "Invalid refresh token", 401),
                }
            }
            Some(_) => token_error("unsupported_grant_type", "Unsupported grant type", 400),
            None => token_error("parameter_validation_failed", "grant_type is required", 400),
        }
    }

    /// `GET /user/openapi/user/v1/client/account_balance`
    pub fn balance(
        &mut self,
        opts: &SimOptions,
        authorization: Option<&str>,
        user_agent: Option<&str>,
    ) -> Reply {
        if user_agent.is_none_or(|ua| ua.trim().is_empty()) {
            return yeastar_error(
                400,
                "parameter_validation_failed",
                "The User-Agent header is required",
            );
        }
        let Some(token) = authorization.and_then(bearer) else {
            return yeastar_error(401, "access_token_invalid", "Access token is required");
        };
        let Some(access) = self.access.get(token) else {
            return yeastar_error(401, "access_token_invalid", "Invalid access token");
        };
        if access.expires_at.is_some_and(|e| e <= Instant::now()) {
            return yeastar_error(401, "access_token_expired", "The access token has expired");
        }
        let Some(balance) = self.balances.get_mut(&access.account) else {
            return yeastar_error(401, "access_token_invalid", "Invalid access token");
        };
        if opts.drift {
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(balance.last_tick);
            balance.last_tick = now;
            balance.residual += elapsed.as_secs_f64() * BALANCE_DRIFT_PER_SEC * 100.0;
            let cents = balance.residual.floor();
            balance.residual -= cents;
            balance.value = ((balance.value * 100.0).round() - cents).max(0.0) / 100.0;
        }
        let result = json!({ "accountBalance": balance.value });
        Reply::json(
            200,
            &json!({
                "code": "success",
                "detailMessage": "",
                "requestId": request_id(),
                "result": result,
                "status": 200,
            }),
        )
    }
}
