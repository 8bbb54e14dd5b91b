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

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::fields::{write_problems, Fields};
use crate::file_stamp::FileStamp;

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

/// Successful verifications remembered at most (a full cache is emptied).
const AUTH_CACHE_CAPACITY: usize = 1024;

/// bcrypt verifications running at once: they cost tens of milliseconds of CPU each,
/// so wrong passwords sent in bulk queue up instead of taking every core.
const CONCURRENT_VERIFICATIONS: usize = 2;

/// Highest bcrypt cost accepted (cost 16 takes seconds per check; each step doubles).
const MAX_BCRYPT_COST: u32 = 16;

/// How often the files are checked for changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One loaded, valid version of the web configuration.
pub struct WebConfig {
    tls: Option<TlsAcceptor>,
    users: BTreeMap<String, String>,
    /// The highest bcrypt cost among the users: an unknown user's password is hashed
    /// at this cost, so that it takes as long as checking a wrong password.
    dummy_cost: u32,
    /// SHA-256 of (user, hash, password) of successful verifications.
    verified: Mutex<HashSet<[u8; 32]>>,
    verifications: Arc<Semaphore>,
    /// Files whose change means a reload (the config file itself and the ones it names).
    files: Vec<PathBuf>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.users.keys().collect::<Vec<_>>())
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
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize::<Value>())
            .map_err(|e| WebConfigError {
                problems: vec![format!("not a valid YAML document: {e}")],
            })?;
        let map = match raw {
            Value::Object(map) => map,
            Value::Null => Default::default(),
            _ => {
                return Err(WebConfigError {
                    problems: vec!["the document must be a mapping".into()],
                })
            }
        };
        let mut problems = Vec::new();
        let mut files = Vec::new();
        let (tls, users) = {
            let mut root = Fields::new(String::new(), map, &mut problems);
            let tls = root.object("tls_server_config").and_then(|mut f| {
                let tls = parse_tls(&mut f, dir, &mut files);
                f.finish();
                tls
            });
            if let Some(mut http) = root.object("http_server_config") {
                // HTTP/2 is not served; `http2: true` (the toolkit's default) is harmless.
                let _ = http.take::<bool>("http2");
                if http.has("headers") {
                    http.problem("headers", "is not supported by this exporter");
                    let _ = http.take::<Value>("headers");
                }
                http.finish();
            }
            let users = parse_users(&mut root);
            root.finish();
            (tls, users)
        };
        if !problems.is_empty() {
            return Err(WebConfigError { problems });
        }
        let dummy_cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        Ok(WebConfig {
            tls,
            users,
            dummy_cost,
            verified: Mutex::new(HashSet::new()),
            verifications: Arc::new(Semaphore::new(CONCURRENT_VERIFICATIONS)),
            files,
        })
    }

    /// The TLS acceptor, when TLS is configured.
    pub fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// Whether requests must carry basic-auth credentials.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the `Authorization` header value grants access. Always true without
    /// `basic_auth_users`. A known user with a wrong password and an unknown user
    /// cost the same bcrypt work (for an unknown user the password is hashed at the
    /// users' cost); a successful check is remembered.
    pub async fn authorize(&self, authorization: Option<&[u8]>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            let cost = self.dummy_cost;
            let Ok(_slot) = self.verifications.acquire().await else {
                return false;
            };
            let _ = tokio::task::spawn_blocking(move || bcrypt::hash(password, cost)).await;
            return false;
        };
        let key = cache_key(&user, &hash, &password);
        if self.cached(&key) {
            return true;
        }
        let Ok(_slot) = self.verifications.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= AUTH_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    fn stamps(&self) -> Vec<Option<FileStamp>> {
        self.files
            .iter()
            .map(|f| FileStamp::of(f).ok().flatten())
            .collect()
    }
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// `Basic base64(user:password)` → `(user, password)`.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn parse_users(root: &mut Fields<'_>) -> BTreeMap<String, String> {
    let Some(value) = root.take::<Value>("basic_auth_users") else {
        return BTreeMap::new();
    };
    let Value::Object(map) = value else {
        root.problem(
            "basic_auth_users",
            "must be a mapping of user name to bcrypt hash",
        );
        return BTreeMap::new();
    };
    let mut users = BTreeMap::new();
    for (user, hash) in map {
        let path = format!("basic_auth_users.{user}");
        if user.is_empty() || user.contains(':') {
            root.problem_at(&path, "a user name must be non-empty and contain no `:`");
            continue;
        }
        let Some(hash) = hash.as_str() else {
            root.problem_at(&path, "must be a bcrypt hash (a string like $2y$10$…)");
            continue;
        };
        if let Ok(cost) = hash.parse::<bcrypt::HashParts>().map(|p| p.get_cost()) {
            if cost > MAX_BCRYPT_COST {
                root.problem_at(
                    &path,
                    format!("bcrypt cost {cost} is above {MAX_BCRYPT_COST}: every check would take many seconds"),
                );
                continue;
            }
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            // Not echoed: a plain-text password put here by mistake must not reach a log.
            root.problem_at(
                &path,
                "is not a bcrypt hash (like $2y$10$ followed by 53 characters; make one with `htpasswd -nBC 10 \"\" | tr -d ':'`)",
            );
            continue;
        }
        users.insert(user, hash.to_string());
    }
    users
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

fn tls_version(f: &mut Fields<'_>, key: &str) -> Option<&'static rustls::SupportedProtocolVersion> {
    let v: String = f.take(key)?;
    match v.as_str() {
        "TLS12" => Some(&rustls::version::TLS12),
        "TLS13" => Some(&rustls::version::TLS13),
        "TLS10" | "TLS11" => {
            f.problem(key, format!("{v} is not supported (TLS12 and TLS13 are)"));
            None
        }
        _ => {
            f.problem(key, format!("`{v}` is not one of TLS12, TLS13"));
            None
        }
    }
}

fn resolve(dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn parse_tls(f: &mut Fields<'_>, dir: &Path, files: &mut Vec<PathBuf>) -> Option<TlsAcceptor> {
    let cert_file = f.string("cert_file", true).map(|s| resolve(dir, &s));
    let key_file = f.string("key_file", true).map(|s| resolve(dir, &s));
    let ca_file = f.string("client_ca_file", false).map(|s| resolve(dir, &s));
    let min = tls_version(f, "min_version");
    let max = tls_version(f, "max_version");
    let client_auth = match f.take::<String>("client_auth_type").as_deref() {
        None | Some("NoClientCert") => Some(ClientAuth::None),
        Some("VerifyClientCertIfGiven") => Some(ClientAuth::VerifyIfGiven),
        Some("RequireAndVerifyClientCert") => Some(ClientAuth::RequireAndVerify),
        Some(v @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            f.problem(
                "client_auth_type",
                format!("{v} (a certificate that is not verified) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"),
            );
            None
        }
        Some(v) => {
            f.problem(
                "client_auth_type",
                format!("`{v}` is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
            );
            None
        }
    };
    // Go's defaults for these are good; rustls has no equivalent knobs.
    let _ = f.take::<bool>("prefer_server_cipher_suites");
    for key in [
        "cipher_suites",
        "curve_preferences",
        "client_allowed_sans",
        "cert",
        "key",
    ] {
        if f.has(key) {
            f.problem(key, "is not supported by this exporter");
            let _ = f.take::<Value>(key);
        }
    }
    if client_auth.is_some_and(|c| c != ClientAuth::None) && ca_file.is_none() {
        f.problem(
            "client_ca_file",
            "is required when client_auth_type verifies client certificates",
        );
    }
    if client_auth == Some(ClientAuth::None) && ca_file.is_some() {
        f.problem(
            "client_auth_type",
            "client_ca_file is set but client certificates are not asked for; set client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven",
        );
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let rank = |v: &rustls::SupportedProtocolVersion| {
            u8::from(v.version == rustls::ProtocolVersion::TLSv1_3)
        };
        let lo = min.map_or(0, rank);
        let hi = max.map_or(1, rank);
        if lo > hi {
            f.problem("max_version", "is lower than min_version");
        }
        rustls::ALL_VERSIONS
            .iter()
            .copied()
            .filter(|v| (lo..=hi).contains(&rank(v)))
            .collect()
    };
    let path = f.path().to_string();
    let certs = cert_file.as_ref().and_then(|p| {
        let certs: Result<Vec<_>, _> =
            CertificateDer::pem_file_iter(p).and_then(|it| it.collect::<Result<Vec<_>, _>>());
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                f.problem(
                    "cert_file",
                    format!("{} holds no PEM certificate", p.display()),
                );
                None
            }
            Err(e) => {
                f.problem(
                    "cert_file",
                    format!("cannot read a PEM certificate from {}: {e}", p.display()),
                );
                None
            }
        }
    });
    let key = key_file
        .as_ref()
        .and_then(|p| match PrivateKeyDer::from_pem_file(p) {
            Ok(k) => Some(k),
            Err(e) => {
                // The error names the file, never its content.
                f.problem(
                    "key_file",
                    format!("cannot read a PEM private key from {}: {e}", p.display()),
                );
                None
            }
        });
    let roots = ca_file.as_ref().and_then(|p| {
        let certs =
            CertificateDer::pem_file_iter(p).and_then(|it| it.collect::<Result<Vec<_>, _>>());
        let mut roots = RootCertStore::empty();
        match certs {
            Ok(c) => {
                for cert in c {
                    if let Err(e) = roots.add(cert) {
                        f.problem("client_ca_file", format!("{}: {e}", p.display()));
                    }
                }
                if roots.is_empty() {
                    f.problem(
                        "client_ca_file",
                        format!("{} holds no usable CA certificate", p.display()),
                    );
                    return None;
                }
                Some(roots)
            }
            Err(e) => {
                f.problem(
                    "client_ca_file",
                    format!("cannot read PEM certificates from {}: {e}", p.display()),
                );
                None
            }
        }
    });
    files.extend(cert_file.iter().chain(&key_file).chain(&ca_file).cloned());
    let (certs, key, client_auth) = (certs?, key?, client_auth?);
    if versions.is_empty() {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = match (client_auth, roots) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (auth, Some(roots)) => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if auth == ClientAuth::VerifyIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            match builder.build() {
                Ok(v) => v as Arc<dyn rustls::server::danger::ClientCertVerifier>,
                Err(e) => {
                    f.problem("client_ca_file", e);
                    return None;
                }
            }
        }
        (_, None) => return None,
    };
    let built = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)
                .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))
        });
    match built {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(TlsAcceptor::from(Arc::new(config)))
        }
        Err(e) => {
            f.problem_at(&path, e);
            None
        }
    }
}

/// The web configuration file in force, re-read when it or a file it names changes.
///
/// Requests only read the configuration in force ([`WebConfigFile::current`]); the
/// files are checked apart from them, on a blocking thread every second
/// ([`WebConfigFile::watch`]), so a slow disk never holds up a scrape.
pub struct WebConfigFile {
    path: PathBuf,
    state: Mutex<Watched>,
}

struct Watched {
    current: Arc<WebConfig>,
    stamps: Vec<Option<FileStamp>>,
}

impl WebConfigFile {
    /// Load `path`; an invalid file is an error naming every problem.
    pub fn load(path: &Path) -> Result<WebConfigFile, WebConfigError> {
        let config = WebConfig::load(path)?;
        Ok(WebConfigFile {
            path: path.to_path_buf(),
            state: Mutex::new(Watched {
                stamps: config.stamps(),
                current: Arc::new(config),
            }),
        })
    }

    /// The configuration in force now. Never touches the file system.
    pub fn current(&self) -> Arc<WebConfig> {
        self.lock().current.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-read the files if one changed (blocking file system work). A changed file
    /// that does not load is logged and the previous configuration stays; so is one
    /// that turns TLS on or off, which needs a restart.
    pub fn refresh(&self) {
        let (current, seen) = {
            let state = self.lock();
            (state.current.clone(), state.stamps.clone())
        };
        let stamps = current.stamps();
        if stamps == seen {
            return;
        }
        let loaded = WebConfig::load(&self.path);
        let mut state = self.lock();
        state.stamps = stamps;
        match loaded {
            Ok(next) if next.tls.is_some() != state.current.tls.is_some() => {
                tracing::error!(path = %self.path.display(), "web configuration changed whether TLS is on; that needs a restart, the previous web configuration stays in force");
            }
            Ok(next) => {
                tracing::info!(path = %self.path.display(), tls = next.tls.is_some(), basic_auth_users = next.users.len(), "web configuration reloaded");
                state.stamps = next.stamps();
                state.current = Arc::new(next);
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "web configuration rejected; the previous one stays in force");
            }
        }
    }

    /// Check the files every second on a blocking thread until `stop` is cancelled.
    pub fn watch(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RECHECK_INTERVAL) => {}
                }
                let this = this.clone();
                let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // bcrypt of "s3cret-pass" at cost 4 (cheap for tests).
    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).unwrap()
    }

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password() {
        let yaml = format!(
            "basic_auth_users:\n  alice: {}\n  Bob.Smith: {}\n",
            hash("s3cret-pass"),
            hash("other")
        );
        let c = WebConfig::from_yaml(&yaml, Path::new(".")).unwrap();
        assert!(c.requires_auth());
        assert!(c.authorize(Some(&basic("alice", "s3cret-pass"))).await);
        // Cached now: still right, and a wrong password is still wrong.
        assert!(c.authorize(Some(&basic("alice", "s3cret-pass"))).await);
        assert!(!c.authorize(Some(&basic("alice", "s3cret-pasS"))).await);
        assert!(c.authorize(Some(&basic("Bob.Smith", "other"))).await);
        assert!(!c.authorize(Some(&basic("bob.smith", "other"))).await);
        assert!(!c.authorize(Some(&basic("mallory", "s3cret-pass"))).await);
        assert!(!c.authorize(None).await);
        assert!(!c.authorize(Some(b"Bearer abc")).await);
        assert!(!c.authorize(Some(b"Basic !!!")).await);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("$2"), "{dbg}");
    }

    #[tokio::test]
    async fn unknown_user_costs_a_verification_too() {
        let yaml = format!(
            "basic_auth_users:\n  alice: {}\n",
            bcrypt::hash("pw", 7).unwrap()
        );
        let c = WebConfig::from_yaml(&yaml, Path::new(".")).unwrap();
        // The unknown user's password is hashed at the real hash's cost…
        assert_eq!(c.dummy_cost, 7);
        // …and so the fastest of several tries takes about as long either way
        // (the minimum is robust against a busy machine).
        let mut fastest = [Duration::MAX; 2];
        for _ in 0..5 {
            for (i, user) in ["alice", "nobody"].into_iter().enumerate() {
                let t = std::time::Instant::now();
                assert!(!c.authorize(Some(&basic(user, "wrong"))).await);
                fastest[i] = fastest[i].min(t.elapsed());
            }
        }
        // Without the dummy verification the unknown user would answer a thousand
        // times faster; a wide band keeps a loaded machine from failing this.
        let ratio = fastest[0].as_secs_f64() / fastest[1].as_secs_f64();
        assert!((0.2..5.0).contains(&ratio), "known {fastest:?} unknown");
    }

    #[test]
    fn every_problem_is_named() {
        let yaml = r#"
tls_server_config:
  key_file: /nonexistent/key.pem
  min_version: TLS10
  client_auth_type: RequireAndVerifyClientCert
  cipher_suites: [TLS_AES_128_GCM_SHA256]
  colour: blue
http_server_config:
  headers: {X-Frame-Options: deny}
basic_auth_users:
  alice: not-a-hash
  "a:b": $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi
surprise: 1
"#;
        let e = WebConfig::from_yaml(yaml, Path::new("/tmp")).unwrap_err();
        let text = e.to_string();
        for needle in [
            "tls_server_config.cert_file: is required",
            "tls_server_config.key_file: cannot read a PEM private key from /nonexistent/key.pem",
            "tls_server_config.min_version: TLS10 is not supported",
            "tls_server_config.client_ca_file: is required",
            "tls_server_config.cipher_suites: is not supported",
            "tls_server_config.colour: unknown key",
            "http_server_config.headers: is not supported",
            "basic_auth_users.alice: is not a bcrypt hash",
            "basic_auth_users.a:b: a user name must be non-empty",
            "surprise: unknown key",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn empty_file_means_no_protection() {
        let c = WebConfig::from_yaml("", Path::new(".")).unwrap();
        assert!(c.tls().is_none());
        assert!(!c.requires_auth());
    }
}
