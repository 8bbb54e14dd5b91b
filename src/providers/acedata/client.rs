//! HTTP calls to Ace Data Cloud. Returns typed answers; knows nothing of metrics.
//!
//! Two types, because an account's collectors each keep a client for as long as the
//! process runs, while a deadline belongs to one collection attempt only:
//! - [`AcedataClient`], the stored handle: one pointer to what every request of the
//!   account needs, shared by the account's collectors.
//! - [`Attempt`], the requests of one attempt: made by [`AcedataClient::until`] (failed
//!   requests are retried while a retry can finish before the deadline) or
//!   [`AcedataClient::once`] (each request is tried once), and dropped with the attempt.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::model::{self, Application, Balance, HistoryRecord, Level, ListPage, Status};
use crate::collector::CollectError;
use crate::secret::Secret;
use crate::upstream::Upstream;

/// A client for one account: one pointer, cheap to clone; an account's collectors
/// share one. Requests are made through an [`Attempt`].
#[derive(Clone)]
pub struct AcedataClient {
    account: Arc<AccountClient>,
}

/// The requests of one collection attempt of one account, with the attempt's deadline.
#[derive(Clone, Copy)]
pub struct Attempt<'a> {
    account: &'a AccountClient,
    deadline: Option<Instant>,
}

/// What every request of one account needs, and the account's name (which its
/// collectors label their series with).
struct AccountClient {
    name: Box<str>,
    upstream: Upstream,
    base_url: Box<str>,
    token: Secret,
    user_id: Option<Box<str>>,
    timeout: Duration,
}

impl AcedataClient {
    /// The platform token as it is sent now (for redacting error messages), if readable.
    pub fn secrets(&self) -> Vec<secrecy::SecretString> {
        self.account.token.get().into_iter().collect()
    }

    /// The account's configured name.
    pub fn account(&self) -> &str {
        &self.account.name
    }

    /// A client for the account `name` at `base_url` (no trailing slash).
    pub fn new(
        upstream: Upstream,
        name: &str,
        base_url: &str,
        token: Secret,
        user_id: Option<String>,
        timeout: Duration,
    ) -> Self {
        AcedataClient {
            account: Arc::new(AccountClient {
                name: name.into(),
                upstream,
                base_url: base_url.trim_end_matches('/').into(),
                token,
                user_id: user_id.map(Into::into),
                timeout,
            }),
        }
    }

    /// The requests of one collection attempt: failed requests are retried while a
    /// retry can finish before `deadline`.
    pub fn until(&self, deadline: Instant) -> Attempt<'_> {
        Attempt {
            account: &self.account,
            deadline: Some(deadline),
        }
    }

    /// Requests without a deadline, for one-off calls: each request is tried once.
    pub fn once(&self) -> Attempt<'_> {
        Attempt {
            account: &self.account,
            deadline: None,
        }
    }
}

impl Attempt<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<bytes::Bytes, CollectError> {
        let token = self
            .account
            .token
            .current()
            .await
            .map_err(|e| CollectError::Unauthorized {
                status: 0,
                detail: format!("no platform token: {e}"),
            })?;
        let url = format!("{}{path}", self.account.base_url);
        let mut request = self
            .account
            .upstream
            .client()
            .request(method, url)
            .header("accept", "application/json")
            .header("authorization", format!("Bearer {}", token.expose_secret()));
        if !query.is_empty() {
            request = request.query(query);
        }
        self.account
            .upstream
            .send(request, self.account.timeout, self.deadline, &[token])
            .await
    }

    fn list_query(&self, mut q: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        if let Some(u) = &self.account.user_id {
            q.push(("user_id", u.to_string()));
        }
        q
    }

    /// `POST /api/v1/balances/initialize/`.
    pub async fn balance(&self) -> Result<Balance, CollectError> {
        let body = self
            .call(Method::POST, "/api/v1/balances/initialize/", &[])
            .await?;
        model::parse_balance(&body)
    }

    /// `GET /api/v1/distribution-statuses/`.
    pub async fn statuses(&self) -> Result<ListPage<Status>, CollectError> {
        let q = self.list_query(Vec::new());
        let body = self
            .call(Method::GET, "/api/v1/distribution-statuses/", &q)
            .await?;
        model::parse_statuses(&body)
    }

    /// `POST /api/v1/distribution-statuses/initialize/`. The answer is not needed.
    pub async fn initialize_status(&self) -> Result<(), CollectError> {
        self.call(
            Method::POST,
            "/api/v1/distribution-statuses/initialize/",
            &[],
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/v1/distribution-levels/`.
    pub async fn levels(&self) -> Result<ListPage<Level>, CollectError> {
        let q = self.list_query(Vec::new());
        let body = self
            .call(Method::GET, "/api/v1/distribution-levels/", &q)
            .await?;
        model::parse_levels(&body)
    }

    /// One page of `GET /api/v1/distribution-histories/`: `(count, records)`.
    pub async fn history_page(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<(u64, Vec<HistoryRecord>), CollectError> {
        let q = self.list_query(vec![
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
        ]);
        let body = self
            .call(Method::GET, "/api/v1/distribution-histories/", &q)
            .await?;
        model::parse_history_page(&body)
    }

    /// The `user_id` of the calls that need one: the configured one, else `me`.
    fn user_id_or_me(&self) -> String {
        self.account.user_id.as_deref().unwrap_or("me").to_string()
    }

    /// `GET /api/v1/usage/apis/aggregate/` from `from` (`YYYY-MM-DDT00:00:00Z`): the
    /// raw answer, parsed by [`super::usage::parse_aggregate`].
    pub async fn usage_aggregate(&self, from: String) -> Result<bytes::Bytes, CollectError> {
        let q = [("created_at_from", from), ("user_id", self.user_id_or_me())];
        self.call(Method::GET, "/api/v1/usage/apis/aggregate/", &q)
            .await
    }

    /// One page of `GET /api/v1/orders/` of orders created from `from` (RFC 3339).
    pub async fn orders_page(
        &self,
        from: &str,
        limit: u64,
        offset: u64,
    ) -> Result<bytes::Bytes, CollectError> {
        let q = [
            ("created_at_from", from.to_string()),
            ("user_id", self.user_id_or_me()),
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
        ];
        self.call(Method::GET, "/api/v1/orders/", &q).await
    }

    /// One page of `GET /api/v1/auto-recharge-configs/`.
    pub async fn auto_recharge_page(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<bytes::Bytes, CollectError> {
        let q = [
            ("user_id", self.user_id_or_me()),
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
        ];
        self.call(Method::GET, "/api/v1/auto-recharge-configs/", &q)
            .await
    }

    /// One page of `GET /api/v1/applications/`: `(count, applications)`. `user_id` is
    /// always sent (the configured one, else `me`): without it a normal account gets
    /// 403 `permission_denied` on this list.
    pub async fn applications_page(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<(u64, Vec<Application>), CollectError> {
        let user_id = self.account.user_id.as_deref().unwrap_or("me").to_string();
        let q = [
            ("user_id", user_id),
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
        ];
        let body = self.call(Method::GET, "/api/v1/applications/", &q).await?;
        model::parse_applications_page(&body)
    }
}

#[cfg(test)]
impl AcedataClient {
    /// A client of account `main` and `token` at `base_url`, for the collectors' unit
    /// tests.
    pub(super) fn for_test(base_url: &str, token: &str) -> Self {
        Self::new(
            Upstream::new(1),
            "main",
            base_url,
            Secret::literal(token),
            None,
            Duration::from_secs(5),
        )
    }

    /// A client whose every request fails: for the tests of an `update`, which does
    /// no I/O.
    pub(super) fn unreachable() -> Self {
        Self::for_test("http://127.0.0.1:9", "t")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each collector keeps a client for the life of the process, thousands of them:
    /// the stored handle is one pointer, the deadline lives only in an [`Attempt`].
    #[test]
    fn the_stored_client_is_one_pointer() {
        assert_eq!(std::mem::size_of::<AcedataClient>(), 8);
    }
}
