//! Configuration of one Yeastar Partner Portal account.

use crate::config::fields::Fields;
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::secret::Secret;
use crate::timing::Timing;

/// Default API base URL.
pub const DEFAULT_BASE_URL: &str = "https://openapi.partner.yeastar.com";
/// Default `User-Agent` header.
pub const DEFAULT_USER_AGENT: &str = "OpenAPI";

/// How the exporter gets an access token.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Exchanged and refreshed by the exporter (preferred).
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    /// A token managed outside the exporter; a token file is re-read when it changes.
    StaticToken(Secret),
}

/// One configured Yeastar account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    pub base_url: String,
    pub auth: Auth,
    pub user_agent: String,
    pub timing: Timing,
    pub low_balance_threshold: Option<f64>,
}

impl AccountConfig {
    /// The fingerprint of every key (a key added to the struct and not fed here does
    /// not compile: the destructuring names them all, and an unused one is a lint
    /// error).
    pub fn fingerprint(&self) -> Fingerprint {
        let AccountConfig {
            name,
            base_url,
            auth,
            user_agent,
            timing,
            low_balance_threshold,
        } = self;
        let mut f = Fingerprinter::new();
        f.key("name", name).key("base_url", base_url);
        match auth {
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => {
                f.key("client_id", client_id);
                client_secret.fingerprint("client_secret", &mut f);
            }
            Auth::StaticToken(token) => token.fingerprint("access_token", &mut f),
        }
        f.key("user_agent", user_agent)
            .key("timing", timing)
            .number("low_balance_threshold", *low_balance_threshold);
        f.finish()
    }

    /// Read one account mapping; problems go to `f`.
    pub fn parse(f: &mut Fields<'_>, defaults: Timing) -> Option<Self> {
        let name = f.string("name", true);
        let base_url = f.url("base_url", DEFAULT_BASE_URL);
        let has_client = [
            "client_id",
            "client_secret",
            "client_secret_file",
            "client_secret_env",
        ]
        .iter()
        .any(|k| f.has(k));
        let has_static = ["access_token", "access_token_file", "access_token_env"]
            .iter()
            .any(|k| f.has(k));
        let auth = match (has_client, has_static) {
            (true, true) => {
                let path = f.path().to_string();
                f.problem(
                    "access_token",
                    format!(
                        "give either client credentials or an access token for {path}, not both"
                    ),
                );
                None
            }
            (false, false) => {
                f.problem(
                    "client_id",
                    "is required: give client_id with client_secret (or client_secret_file / client_secret_env), or an access_token (or access_token_file / access_token_env)",
                );
                None
            }
            // Each helper names its own problem (a missing key, an unset variable,
            // an empty file): one cause, one problem.
            (true, false) => {
                let client_id = f.string("client_id", true);
                let client_secret = f.secret("client_secret", true);
                match (client_id, client_secret) {
                    (Some(client_id), Some(client_secret)) => Some(Auth::ClientCredentials {
                        client_id,
                        client_secret,
                    }),
                    _ => None,
                }
            }
            (false, true) => f.secret("access_token", true).map(Auth::StaticToken),
        };
        // Always consume every auth key so none is reported as unknown twice.
        for k in [
            "client_id",
            "client_secret",
            "client_secret_file",
            "client_secret_env",
            "access_token",
            "access_token_file",
            "access_token_env",
        ] {
            let _ = f.take::<serde_json::Value>(k);
        }
        let user_agent = if f.has("user_agent") {
            f.string("user_agent", true)
        } else {
            let _ = f.take::<serde_json::Value>("user_agent");
            Some(DEFAULT_USER_AGENT.to_string())
        };
        let timing = f.timing(defaults);
        let low_balance_threshold = f.finite("low_balance_threshold");
        Some(AccountConfig {
            name: name?,
            base_url,
            auth: auth?,
            user_agent: user_agent?,
            timing,
            low_balance_threshold,
        })
    }
}
