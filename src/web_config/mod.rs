//! `--web.config.file`: TLS and basic auth for every HTTP endpoint, in the format of
//! the Prometheus exporter-toolkit:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   min_version: TLS12             # TLS12 (default) or TLS13; max_version likewise
//!   client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
//!   client_ca_file: ca.crt
//! basic_auth_users:
//!   prometheus: $2y$10$…           # bcrypt hash
//! ```
//!
//! The file (and the certificate, key and CA files it names) is checked for changes at
//! most once a second and re-read when one changed; a new version that does not load
//! is logged and the previous one stays in force. Whether TLS is on is fixed at start.
//!
//! One file per concern: [`schema`] walks the document and names every problem,
//! [`tls`] turns `tls_server_config` into a rustls acceptor, [`auth`] checks
//! basic-auth credentials against the bcrypt hashes, [`watch`] re-reads the files.

mod auth;
mod schema;
mod tls;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};

use tokio_rustls::TlsAcceptor;

use crate::config::fields::write_problems;
use crate::file_stamp::FileStamp;

pub use watch::{Refresh, WebConfigFile};

/// Every problem found in a web configuration file.
#[derive(Debug, thiserror::Error)]
pub struct WebConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "web configuration", &self.problems)
    }
}

/// One loaded, valid version of the web configuration.
pub struct WebConfig {
    tls: Option<TlsAcceptor>,
    auth: auth::BasicAuth,
    /// Files whose change means a reload (the config file itself and the ones it names).
    files: Vec<PathBuf>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.auth.user_names())
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Read and validate the file at `path`, reporting every problem.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| WebConfigError {
            problems: vec![format!("cannot read {}: {e}", path.display())],
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut config = Self::from_yaml(&text, dir)?;
        config.files.insert(0, path.to_path_buf());
        Ok(config)
    }

    /// Validate a document; relative file names are resolved against `dir`.
    pub fn from_yaml(text: &str, dir: &Path) -> Result<WebConfig, WebConfigError> {
        schema::parse(text, dir)
    }

    /// The TLS acceptor, when TLS is configured.
    pub fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// Whether requests must carry basic-auth credentials.
    pub fn requires_auth(&self) -> bool {
        !self.auth.is_empty()
    }

    /// Whether the `Authorization` header value grants access. Always true without
    /// `basic_auth_users`. A known user with a wrong password and an unknown user
    /// cost the same bcrypt work (for an unknown user the password is hashed at the
    /// users' cost); a successful check is remembered.
    pub async fn authorize(&self, authorization: Option<&[u8]>) -> bool {
        self.auth.authorize(authorization).await
    }

    fn stamps(&self) -> Vec<Option<FileStamp>> {
        self.files
            .iter()
            .map(|f| FileStamp::of(f).ok().flatten())
            .collect()
    }
}
