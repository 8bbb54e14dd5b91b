//! The document: its top-level keys and `http_server_config`, every problem named.
//! `tls_server_config` is [`super::tls`]'s and `basic_auth_users` [`super::auth`]'s.

use std::path::Path;

use serde_json::Value;

use super::auth::BasicAuth;
use super::{tls, WebConfig, WebConfigError};
use crate::config::fields::Fields;

/// Validate a document; relative file names are resolved against `dir`.
pub(super) fn parse(text: &str, dir: &Path) -> Result<WebConfig, WebConfigError> {
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
            let tls = tls::acceptor(&mut f, dir, &mut files);
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
        let users = BasicAuth::users(&mut root);
        root.finish();
        (tls, users)
    };
    if !problems.is_empty() {
        return Err(WebConfigError { problems });
    }
    Ok(WebConfig {
        tls,
        auth: BasicAuth::new(users),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = parse(yaml, Path::new("/tmp")).unwrap_err();
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
        let c = parse("", Path::new(".")).unwrap();
        assert!(c.tls().is_none());
        assert!(!c.requires_auth());
    }
}
