//! Yeastar access-token lifecycle: exchange client credentials, refresh before
//! expiry, fall back to a new exchange when a refresh fails, or use a static token.

use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::client::YeastarClient;
use super::config::Auth;
use crate::collector::CollectError;

/// Refresh tokens live 15 days upstream; treat them as expired a little earlier.
const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 24 * 3600 - 3600);

struct Tokens {
    access: SecretString,
    access_refresh_at: Instant,
    refresh: SecretString,
    refresh_expires_at: Instant,
}

/// Holds the current token pair of one account and renews it when due.
pub struct TokenManager {
    auth: Auth,
    tokens: Option<Tokens>,
}

impl TokenManager {
    /// A manager with no token yet.
    pub fn new(auth: Auth) -> Self {
        TokenManager { auth, tokens: None }
    }

    /// Whether a rejected token can be replaced by asking upstream for a new one.
    pub fn can_renew(&self) -> bool {
        matches!(self.auth, Auth::ClientCredentials { .. })
    }

    /// A token to send now: the current one, a refreshed one when it is due, or a
    /// fresh exchange when there is none or the refresh fails.
    pub async fn access_token(
        &mut self,
        client: &YeastarClient,
    ) -> Result<SecretString, CollectError> {
        let (client_id, client_secret) = match &self.auth {
            Auth::StaticToken(secret) => {
                return secret
                    .current()
                    .await
                    .map_err(|e| CollectError::Unauthorized {
                        status: 0,
                        detail: format!("no access token: {e}"),
                    })
            }
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => (client_id.clone(), client_secret),
        };
        let now = Instant::now();
        if let Some(t) = &self.tokens {
            if now < t.access_refresh_at {
                return Ok(t.access.clone());
            }
            if now < t.refresh_expires_at {
                match client.refresh(&t.refresh).await {
                    Ok(grant) => {
                        tracing::debug!("yeastar access token refreshed");
                        return Ok(self.store(grant));
                    }
                    Err(e) => {
                        // The refresh token may be echoed back in the error.
                        let error = crate::redact::redact(&e.to_string(), &self.secrets());
                        tracing::warn!(error = %error, "yeastar token refresh failed; exchanging client credentials");
                    }
                }
            }
        }
        let secret = client_secret
            .current()
            .await
            .map_err(|e| CollectError::Unauthorized {
                status: 0,
                detail: format!("no client secret: {e}"),
            })?;
        let grant = client.exchange(&client_id, &secret).await?;
        tracing::debug!("yeastar client credentials exchanged for an access token");
        Ok(self.store(grant))
    }

    /// Every secret this manager holds: the client secret or static token, and the
    /// current access and refresh tokens (for redacting error messages).
    pub fn secrets(&self) -> Vec<SecretString> {
        let configured = match &self.auth {
            Auth::StaticToken(s) => s.get().ok(),
            Auth::ClientCredentials { client_secret, .. } => client_secret.get().ok(),
        };
        let issued = self
            .tokens
            .iter()
            .flat_map(|t| [t.access.clone(), t.refresh.clone()]);
        configured.into_iter().chain(issued).collect()
    }

    /// The access token was rejected: the next call refreshes it.
    pub fn invalidate(&mut self) {
        if let Some(t) = &mut self.tokens {
            t.access_refresh_at = Instant::now();
        }
    }

    fn store(&mut self, grant: super::model::TokenGrant) -> SecretString {
        let now = Instant::now();
        // Capped so that a nonsensical `expiresIn` cannot overflow the clock.
        let lifetime = Duration::from_secs(grant.expires_in).min(REFRESH_TOKEN_LIFETIME);
        // Renew when a fifth of the lifetime (at most 5 minutes) is left.
        let margin = (lifetime / 5).min(Duration::from_secs(300));
        let access = SecretString::from(grant.token);
        self.tokens = Some(Tokens {
            access: access.clone(),
            access_refresh_at: now + lifetime.saturating_sub(margin),
            refresh: SecretString::from(grant.refresh_token),
            refresh_expires_at: now + REFRESH_TOKEN_LIFETIME,
        });
        access
    }
}
