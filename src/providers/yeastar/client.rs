//! HTTP calls to the Yeastar Partner Portal. Returns typed answers; knows nothing of
//! metrics or token lifetimes.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::model::{self, BalanceInfo, TokenGrant};
use crate::collector::CollectError;
use crate::upstream::Upstream;

/// A client for one account. Cheap to clone.
#[derive(Clone)]
pub struct YeastarClient {
    upstream: Upstream,
    base_url: Arc<str>,
    user_agent: Arc<str>,
    timeout: Duration,
    deadline: Option<Instant>,
}

impl YeastarClient {
    /// A client for `base_url` sending `user_agent` on every request.
    pub fn new(upstream: Upstream, base_url: &str, user_agent: &str, timeout: Duration) -> Self {
        YeastarClient {
            upstream,
            base_url: base_url.trim_end_matches('/').into(),
            user_agent: user_agent.into(),
            timeout,
            deadline: None,
        }
    }

    /// This client for one collection attempt: failed requests are retried while a
    /// retry can finish before `deadline`. (Without one, each request is tried once.)
    pub fn until(&self, deadline: Instant) -> Self {
        YeastarClient {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// `POST /auth/openapi/v1/oauth/token` with the given form; `secret` is the
    /// credential the form carries (the client secret or the refresh token).
    async fn token(
        &self,
        form: &[(&str, &str)],
        secret: &SecretString,
    ) -> Result<TokenGrant, CollectError> {
        let request = self
            .upstream
            .client()
            .post(format!("{}/auth/openapi/v1/oauth/token", self.base_url))
            .header(reqwest::header::USER_AGENT, &*self.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form);
        let body = self
            .upstream
            .send(
                request,
                self.timeout,
                self.deadline,
                std::slice::from_ref(secret),
            )
            .await?;
        model::parse_token(&body)
    }

    /// Exchange client credentials (`grant_type=pp_credentials`).
    pub async fn exchange(
        &self,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<TokenGrant, CollectError> {
        self.token(
            &[
                ("client_id", client_id),
                ("client_secret", client_secret.expose_secret()),
                ("grant_type", "pp_credentials"),
            ],
            client_secret,
        )
        .await
    }

    /// Refresh (`grant_type=refresh_token`).
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenGrant, CollectError> {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ],
            refresh_token,
        )
        .await
    }

    /// `GET /user/openapi/user/v1/client/account_balance`.
    pub async fn balance(&self, access_token: &SecretString) -> Result<BalanceInfo, CollectError> {
        let request = self
            .upstream
            .client()
            .get(format!(
                "{}/user/openapi/user/v1/client/account_balance",
                self.base_url
            ))
            .header(reqwest::header::USER_AGENT, &*self.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", access_token.expose_secret()),
            );
        let body = self
            .upstream
            .send(
                request,
                self.timeout,
                self.deadline,
                std::slice::from_ref(access_token),
            )
            .await?;
        model::parse_balance(&body)
    }
}
