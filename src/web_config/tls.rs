//! `tls_server_config` → a rustls [`TlsAcceptor`], in four steps:
//!
//! 1. [`TlsSettings::take`] reads the keys and checks them against each other;
//! 2. [`read_certificates`], [`read_key`] and [`read_client_cas`] read the PEM files;
//! 3. [`client_verifier`] decides how client certificates are checked;
//! 4. [`server_config`] puts it together.
//!
//! Each step names its problems and carries on, so that one run names every problem;
//! the acceptor is built only when there were none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

use crate::config::fields::Fields;

/// The acceptor `f` (the `tls_server_config` section) describes; `None` when it has a
/// problem (named in `f`). Every file it names is added to `files`, loaded or not, so
/// that fixing one triggers a reload.
pub(super) fn acceptor(
    f: &mut Fields<'_>,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Option<TlsAcceptor> {
    let settings = TlsSettings::take(f, dir);
    let section = f.path().to_string();
    let certs = settings
        .cert_file
        .as_deref()
        .and_then(|p| read_certificates(f, p));
    let key = settings.key_file.as_deref().and_then(|p| read_key(f, p));
    let roots = settings
        .client_ca_file
        .as_deref()
        .and_then(|p| read_client_cas(f, p));
    files.extend(settings.files().cloned());
    let (certs, key, client_auth) = (certs?, key?, settings.client_auth?);
    if settings.versions.is_empty() {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = client_verifier(f, client_auth, roots, &provider)?;
    match server_config(provider, &settings.versions, verifier, certs, key) {
        Ok(config) => Some(TlsAcceptor::from(Arc::new(config))),
        Err(e) => {
            f.problem_at(&section, e);
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

/// The keys of `tls_server_config`, each checked alone and against the others; `None`
/// where a key has a problem.
struct TlsSettings {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    /// The protocol versions from `min_version` to `max_version` (empty when they
    /// are the wrong way round).
    versions: Vec<&'static SupportedProtocolVersion>,
    client_auth: Option<ClientAuth>,
}

impl TlsSettings {
    fn take(f: &mut Fields<'_>, dir: &Path) -> TlsSettings {
        let resolve = |file: String| dir.join(file); // an absolute `file` replaces `dir`
        let cert_file = f.string("cert_file", true).map(resolve);
        let key_file = f.string("key_file", true).map(resolve);
        let client_ca_file = f.string("client_ca_file", false).map(resolve);
        let min = tls_version(f, "min_version");
        let max = tls_version(f, "max_version");
        let client_auth = client_auth(f);
        refuse_unsupported(f);
        if client_auth.is_some_and(|c| c != ClientAuth::None) && client_ca_file.is_none() {
            f.problem(
                "client_ca_file",
                "is required when client_auth_type verifies client certificates",
            );
        }
        if client_auth == Some(ClientAuth::None) && client_ca_file.is_some() {
            f.problem(
                "client_auth_type",
                "client_ca_file is set but client certificates are not asked for; set client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven",
            );
        }
        TlsSettings {
            cert_file,
            key_file,
            client_ca_file,
            versions: versions_between(f, min, max),
            client_auth,
        }
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        let files = [&self.cert_file, &self.key_file, &self.client_ca_file];
        files.into_iter().flatten()
    }
}

fn tls_version(f: &mut Fields<'_>, key: &str) -> Option<&'static SupportedProtocolVersion> {
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

/// The versions rustls offers from `min` (default: the lowest) to `max` (default: the
/// highest).
fn versions_between(
    f: &mut Fields<'_>,
    min: Option<&'static SupportedProtocolVersion>,
    max: Option<&'static SupportedProtocolVersion>,
) -> Vec<&'static SupportedProtocolVersion> {
    let rank =
        |v: &SupportedProtocolVersion| u8::from(v.version == rustls::ProtocolVersion::TLSv1_3);
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
}

fn client_auth(f: &mut Fields<'_>) -> Option<ClientAuth> {
    match f.take::<String>("client_auth_type").as_deref() {
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
    }
}

/// The toolkit's keys that have no rustls equivalent.
fn refuse_unsupported(f: &mut Fields<'_>) {
    // Go's defaults for this one are good; accepting it costs nothing.
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
}

fn read_certificates(f: &mut Fields<'_>, p: &Path) -> Option<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(p).and_then(|it| it.collect::<Result<Vec<_>, _>>());
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
}

fn read_key(f: &mut Fields<'_>, p: &Path) -> Option<PrivateKeyDer<'static>> {
    match PrivateKeyDer::from_pem_file(p) {
        Ok(k) => Some(k),
        Err(e) => {
            // The error names the file, never its content.
            f.problem(
                "key_file",
                format!("cannot read a PEM private key from {}: {e}", p.display()),
            );
            None
        }
    }
}

fn read_client_cas(f: &mut Fields<'_>, p: &Path) -> Option<RootCertStore> {
    let certs = CertificateDer::pem_file_iter(p).and_then(|it| it.collect::<Result<Vec<_>, _>>());
    let certs = match certs {
        Ok(c) => c,
        Err(e) => {
            f.problem(
                "client_ca_file",
                format!("cannot read PEM certificates from {}: {e}", p.display()),
            );
            return None;
        }
    };
    let mut roots = RootCertStore::empty();
    for cert in certs {
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

fn client_verifier(
    f: &mut Fields<'_>,
    client_auth: ClientAuth,
    roots: Option<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    let roots = match (client_auth, roots) {
        (ClientAuth::None, _) => return Some(WebPkiClientVerifier::no_client_auth()),
        (_, None) => return None,
        (_, Some(roots)) => roots,
    };
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if client_auth == ClientAuth::VerifyIfGiven {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    match builder.build() {
        Ok(v) => Some(v),
        Err(e) => {
            f.problem("client_ca_file", e);
            None
        }
    }
}

/// HTTP/1.1 only (ALPN says so): HTTP/2 is not served.
fn server_config(
    provider: Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
    verifier: Arc<dyn ClientCertVerifier>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
