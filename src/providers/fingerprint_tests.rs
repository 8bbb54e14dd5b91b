//! Each vendor's account fingerprint (what a reload compares): every key flips it,
//! each secret by its source, and the same file read twice gives the same one.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::fingerprint::Fingerprint;
use crate::provider::Account;
use crate::providers::acedata::AccountConfig as Ace;
use crate::providers::yeastar::AccountConfig as Ys;

/// The one account of a `section:` whose keys are `keys`.
fn account(section: &str, keys: &[(&str, String)]) -> Arc<dyn Account> {
    let mut yaml = format!("{section}:\n");
    for (i, (key, value)) in keys.iter().enumerate() {
        let lead = if i == 0 { "  - " } else { "    " };
        yaml.push_str(&format!("{lead}{key}: {value}\n"));
    }
    let config = Config::from_yaml(&yaml, &super::all()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut accounts = config.sections.into_iter().flat_map(|s| s.accounts);
    accounts.next().expect("one account")
}

/// The fingerprint of the one account of a `section:` whose keys are `keys`.
fn fingerprint(section: &str, keys: &[(&str, String)]) -> Fingerprint {
    account(section, keys)
        .fingerprint()
        .expect("the vendor fingerprints its accounts")
}

/// Whether two accounts are configured the same by `==` (every field, secrets by
/// source): what the fingerprints must agree with.
fn same(a: &dyn Account, b: &dyn Account) -> bool {
    fn eq<T: PartialEq + 'static>(a: &dyn Account, b: &dyn Account) -> Option<bool> {
        Some(a.as_any().downcast_ref::<T>()? == b.as_any().downcast_ref::<T>()?)
    }
    eq::<Ace>(a, b)
        .or_else(|| eq::<Ys>(a, b))
        .expect("two accounts of one known vendor")
}

/// `base` with `key` set to `value` (in its place, or appended when new).
fn with(
    base: &[(&'static str, String)],
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let mut keys = base.to_vec();
    match keys.iter_mut().find(|(k, _)| *k == key) {
        Some(kv) => kv.1 = value.to_string(),
        None => keys.push((key, value.to_string())),
    }
    keys
}

/// `base` without `gone`.
fn without(base: &[(&'static str, String)], gone: &[&str]) -> Vec<(&'static str, String)> {
    base.iter()
        .filter(|(k, _)| !gone.contains(k))
        .cloned()
        .collect()
}

/// Secret files and variables of one test, removed at the end.
struct Sources {
    dir: PathBuf,
    variables: Vec<String>,
}

impl Sources {
    fn new(test: &str) -> Sources {
        let dir =
            std::env::temp_dir().join(format!("be-fingerprint-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Sources {
            dir,
            variables: Vec::new(),
        }
    }

    /// The path of a secret file holding `value`.
    fn file(&self, name: &str, value: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, value).unwrap();
        path.display().to_string()
    }

    /// The name of a (test-unique) environment variable holding `value`.
    fn variable(&mut self, name: &str, value: &str) -> String {
        let variable = format!(
            "BE_FINGERPRINT_{}_{name}",
            self.dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('-', "_")
                .to_uppercase()
        );
        std::env::set_var(&variable, value);
        self.variables.push(variable.clone());
        variable
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        for v in &self.variables {
            std::env::remove_var(v);
        }
    }
}

/// Every variant gives a fingerprint of its own, none the base's, and is a change by
/// `==` too; the base parsed again is the same by both.
fn assert_each_flips(
    section: &str,
    base: &[(&'static str, String)],
    variants: &[(&str, Vec<(&'static str, String)>)],
) {
    let first = account(section, base);
    let again = account(section, base);
    assert!(same(first.as_ref(), again.as_ref()));
    assert_eq!(
        first.fingerprint(),
        again.fingerprint(),
        "the same configuration read twice"
    );
    let mut seen = vec![("base", fingerprint(section, base))];
    for (what, keys) in variants {
        let changed = account(section, keys);
        assert!(
            !same(first.as_ref(), changed.as_ref()),
            "{section}: {what} is no change"
        );
        let f = changed.fingerprint().expect("a fingerprint");
        if let Some((other, _)) = seen.iter().find(|(_, g)| *g == f) {
            panic!("{section}: {what} gives the fingerprint of {other}");
        }
        seen.push((what, f));
    }
}

#[test]
fn every_acedata_key_and_secret_source_flips_the_fingerprint() {
    let mut src = Sources::new("acedata");
    let (file_a, file_b) = (src.file("a", "t0k3n"), src.file("b", "t0k3n"));
    let (var_a, var_b) = (src.variable("A", "t0k3n"), src.variable("B", "t0k3n"));
    let base: Vec<(&'static str, String)> = [
        ("name", "main"),
        ("base_url", "http://127.0.0.1:1"),
        ("token", "t0k3n"),
        ("interval", "60s"),
        ("timeout", "10s"),
        ("max_staleness", "1h"),
        ("low_balance_threshold", "5"),
        ("initialize_distribution", "true"),
        ("user_id", "me"),
        ("collectors", "[balance, usage]"),
        ("history", "{page_size: 100, full_sync_interval: 6h}"),
        ("application_thresholds", r#"{"*": 3, midjourney: 1}"#),
        ("usage_interval", "5m"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let b = &base;
    let token = ["token"];
    let variants = [
        ("name", with(b, "name", "other")),
        ("base_url", with(b, "base_url", "http://127.0.0.1:2")),
        ("inline token", with(b, "token", "t0k3n2")),
        (
            "token_file",
            with(&without(b, &token), "token_file", &file_a),
        ),
        (
            "another token_file",
            with(&without(b, &token), "token_file", &file_b),
        ),
        ("token_env", with(&without(b, &token), "token_env", &var_a)),
        (
            "another token_env",
            with(&without(b, &token), "token_env", &var_b),
        ),
        ("interval", with(b, "interval", "30s")),
        ("timeout", with(b, "timeout", "5s")),
        ("max_staleness", with(b, "max_staleness", "2h")),
        (
            "low_balance_threshold",
            with(b, "low_balance_threshold", "6"),
        ),
        (
            "no low_balance_threshold",
            without(b, &["low_balance_threshold"]),
        ),
        (
            "initialize_distribution",
            with(b, "initialize_distribution", "false"),
        ),
        ("user_id", with(b, "user_id", "you")),
        ("no user_id", without(b, &["user_id"])),
        (
            "collectors in another order",
            with(b, "collectors", "[usage, balance]"),
        ),
        ("fewer collectors", with(b, "collectors", "[balance]")),
        (
            "history.page_size",
            with(b, "history", "{page_size: 50, full_sync_interval: 6h}"),
        ),
        (
            "history.full_sync_interval",
            with(b, "history", "{page_size: 100, full_sync_interval: 1h}"),
        ),
        (
            "an application threshold",
            with(b, "application_thresholds", r#"{"*": 3, midjourney: 2}"#),
        ),
        (
            "an application threshold's service",
            with(b, "application_thresholds", r#"{"*": 3, suno: 1}"#),
        ),
        (
            "one application threshold less",
            with(b, "application_thresholds", r#"{"*": 3}"#),
        ),
        ("usage_interval", with(b, "usage_interval", "10m")),
    ];
    assert_each_flips("acedata", b, &variants);
}

#[test]
fn every_yeastar_key_and_secret_source_flips_the_fingerprint() {
    let mut src = Sources::new("yeastar");
    let (file_a, file_b) = (src.file("a", "s3cr3t"), src.file("b", "s3cr3t"));
    let (var_a, var_b) = (src.variable("A", "s3cr3t"), src.variable("B", "s3cr3t"));
    let base: Vec<(&'static str, String)> = [
        ("name", "partner"),
        ("base_url", "http://127.0.0.1:1"),
        ("client_id", "abc"),
        ("client_secret", "s3cr3t"),
        ("user_agent", "OpenAPI"),
        ("interval", "5m"),
        ("timeout", "10s"),
        ("max_staleness", "1h"),
        ("low_balance_threshold", "50"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let b = &base;
    let secret = ["client_secret"];
    let client = ["client_id", "client_secret"];
    let variants = [
        ("name", with(b, "name", "other")),
        ("base_url", with(b, "base_url", "http://127.0.0.1:2")),
        ("client_id", with(b, "client_id", "abd")),
        ("inline client_secret", with(b, "client_secret", "s3cr3t2")),
        (
            "client_secret_file",
            with(&without(b, &secret), "client_secret_file", &file_a),
        ),
        (
            "another client_secret_file",
            with(&without(b, &secret), "client_secret_file", &file_b),
        ),
        (
            "client_secret_env",
            with(&without(b, &secret), "client_secret_env", &var_a),
        ),
        (
            "another client_secret_env",
            with(&without(b, &secret), "client_secret_env", &var_b),
        ),
        (
            "access_token of the same text",
            with(&without(b, &client), "access_token", "s3cr3t"),
        ),
        (
            "access_token_file",
            with(&without(b, &client), "access_token_file", &file_a),
        ),
        (
            "access_token_env",
            with(&without(b, &client), "access_token_env", &var_a),
        ),
        ("user_agent", with(b, "user_agent", "Other")),
        ("interval", with(b, "interval", "4m")),
        ("timeout", with(b, "timeout", "5s")),
        ("max_staleness", with(b, "max_staleness", "2h")),
        (
            "low_balance_threshold",
            with(b, "low_balance_threshold", "51"),
        ),
        (
            "no low_balance_threshold",
            without(b, &["low_balance_threshold"]),
        ),
    ];
    assert_each_flips("yeastar", b, &variants);
}

/// A secret is compared by its source: a file or variable whose content changed is the
/// same secret (it is re-read where it is used), so the account keeps running.
#[test]
fn a_secret_whose_file_or_variable_changed_keeps_its_fingerprint() {
    let mut src = Sources::new("rotated");
    let file = src.file("token", "first");
    let variable = src.variable("TOKEN", "first");
    let by = |key: &'static str, value: &str| {
        account(
            "acedata",
            &[("name", "main".to_string()), (key, value.to_string())],
        )
    };
    let (by_file, by_variable) = (by("token_file", &file), by("token_env", &variable));
    // The same file read twice.
    let again = by("token_file", &file);
    assert_eq!(by_file.fingerprint(), again.fingerprint());
    src.file("token", "second");
    std::env::set_var(&variable, "second");
    for (before, key, value) in [
        (&by_file, "token_file", &file),
        (&by_variable, "token_env", &variable),
    ] {
        let after = by(key, value);
        assert!(same(before.as_ref(), after.as_ref()), "{key}");
        assert_eq!(before.fingerprint(), after.fingerprint(), "{key}");
    }
    assert_ne!(by_file.fingerprint(), by_variable.fingerprint());
    assert_ne!(
        by("token", "first").fingerprint(),
        by("token", "second").fingerprint()
    );
}
