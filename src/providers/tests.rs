//! The configuration of every listed vendor, end to end: sections, defaults, every
//! problem named with its path, secrets that never print.

use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::providers::acedata::AccountConfig as Ace;
use crate::providers::yeastar::AccountConfig as Ys;
use crate::timing::Timing;

fn from_yaml(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, &super::all())
}

#[test]
fn minimal_config_gets_defaults() {
    let c = from_yaml("acedata:\n  - name: main\n    token: t0k3n\n").unwrap();
    assert_eq!(c.max_concurrent_requests, 16);
    let a = c.accounts::<Ace>().next().unwrap();
    assert_eq!(a.timing, Timing::default());
    assert_eq!(a.base_url, "https://platform.acedata.cloud");
    assert!(a.initialize_distribution);
    assert_eq!(a.collectors.len(), 8);
    assert_eq!(a.application_thresholds.for_service("midjourney"), None);
    assert_eq!(a.history.page_size, 100);
    assert_eq!(a.history.full_sync_interval, Duration::from_secs(6 * 3600));
}

/// An unset `max_staleness` outlasts the gap between two successes, whatever the
/// interval: with `max_staleness` equal to a long interval, an attempt slower than the
/// one before (or the jitter of the second) removed the values for a moment although
/// nothing failed.
#[test]
fn unset_max_staleness_leaves_room_for_a_slower_attempt_and_the_jitter() {
    let timing = |extra: &str| {
        let c = from_yaml(&format!("{extra}acedata:\n  - name: main\n    token: t\n")).unwrap();
        let timing = c.accounts::<Ace>().next().unwrap().timing;
        timing
    };
    // Below the 1 h default nothing changes.
    assert_eq!(
        timing("defaults:\n  interval: 30m\n").max_staleness,
        Duration::from_secs(3600)
    );
    // 2 h, 10 s of timeout, 2 s of jitter.
    let long = timing("defaults:\n  interval: 2h\n");
    assert_eq!(long.max_staleness, Duration::from_secs(2 * 3600 + 12));
    let long = timing("defaults:\n  interval: 1h\n  timeout: 30s\n");
    assert_eq!(long.max_staleness, Duration::from_secs(3600 + 32));
    // Given for the account, it is taken as it is.
    let yaml = "acedata:\n  - name: main\n    token: t\n    interval: 2h\n    max_staleness: 2h\n";
    let c = from_yaml(yaml).unwrap();
    let given = c.accounts::<Ace>().next().unwrap().timing;
    assert_eq!(given.max_staleness, Duration::from_secs(2 * 3600));
}

#[test]
fn spec_example_is_accepted() {
    std::env::set_var("BE_TEST_YEASTAR_SECRET", "s3cr3t");
    let yaml = r#"
max_concurrent_requests: 4
defaults:
  interval: 60s
  timeout: 10s
  max_staleness: 1h
acedata:
  - name: main
    base_url: https://platform.acedata.cloud
    token_env: BE_TEST_YEASTAR_SECRET
    interval: 60s
    low_balance_threshold: 100
    initialize_distribution: true
    user_id: me
    collectors: [balance, distribution_status, distribution_levels, distribution_history]
    history: { page_size: 100, full_sync_interval: 6h }
yeastar:
  - name: partner
    base_url: https://openapi.partner.yeastar.com
    client_id: "abc"
    client_secret_env: BE_TEST_YEASTAR_SECRET
    user_agent: OpenAPI
    interval: 5m
    low_balance_threshold: 50
"#;
    let c = from_yaml(yaml).unwrap();
    assert_eq!(c.max_concurrent_requests, 4);
    let y = c.accounts::<Ys>().next().unwrap();
    assert_eq!(y.timing.interval, Duration::from_secs(300));
    assert_eq!(y.low_balance_threshold, Some(50.0));
    let a = c.accounts::<Ace>().next().unwrap();
    assert_eq!(a.user_id.as_deref(), Some("me"));
    assert_eq!(c.summary(), "1 Ace Data Cloud and 1 Yeastar");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let yaml = r#"
max_concurrent_requests: many
defaults:
  interval: soon
  colour: blue
acedata:
  - name: main
    token: a
    token_file: /nonexistent
    collectors: [balance, wallet]
    history: { page_size: 0 }
  - name: main
    token: b
    interval: 1m
    timeout: 2m
yeastar:
  - name: p
    user_agent: ""
surprise: 1
"#;
    let err = from_yaml(yaml).unwrap_err();
    let text = err.to_string();
    for needle in [
        "max_concurrent_requests:",
        "defaults.interval: is not a duration (a number was expected at position 1)",
        "defaults.colour: unknown key",
        "acedata[0].token: give exactly one of token, token_file, token_env",
        "acedata[0].collectors[1]: is not a collector: expected one of balance,",
        "acedata[0].history.page_size: must be between 1 and 1000",
        "acedata[1].name: `main` is used by another acedata account",
        "acedata[1].timeout: 2m is longer than the interval 1m",
        "yeastar[0].client_id: is required",
        "yeastar[0].user_agent: must not be empty",
        "surprise: unknown key",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn mistyped_values_are_not_echoed() {
    let err = from_yaml(
            "max_concurrent_requests: \"SECRET-1\"\nacedata:\n  - name: m\n    token: 987654321987\n    low_balance_threshold: \"SECRET-2\"\n",
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("SECRET") && !text.contains("987654321987"),
        "{text}"
    );
    assert!(
        text.contains("acedata[0].token: expected a string"),
        "{text}"
    );
}

/// A secret pasted under a key of every kind (duration, URL, number, enum, bool, and a
/// nested duration) is named by its key, never repeated.
#[test]
fn a_secret_under_any_key_kind_is_not_echoed() {
    const SECRET: &str = "ysecret-BBB7wq";
    let yaml = format!(
        r#"
max_concurrent_requests: {SECRET}
defaults:
  timeout: {SECRET}
acedata:
  - name: m
    token: t
    interval: {SECRET}
    base_url: {SECRET}
    low_balance_threshold: {SECRET}
    initialize_distribution: {SECRET}
    collectors: [balance, {SECRET}]
    history: {{ page_size: {SECRET}, full_sync_interval: "5 {SECRET}" }}
yeastar:
  - name: y
    access_token: t
    base_url: "{SECRET}:x"
    max_staleness: "1ysecretBBB7wq"
"#
    );
    let text = from_yaml(&yaml).unwrap_err().to_string();
    assert!(!text.contains("ysecret") && !text.contains("BBB"), "{text}");
    for needle in [
        "max_concurrent_requests: expected usize (found a string)",
        "defaults.timeout: is not a duration",
        "acedata[0].interval: is not a duration (a number was expected at position 1): expected a number and a unit, e.g. 30s, 5m, 1h",
        "acedata[0].base_url: is not a URL (relative URL without a base): expected e.g. https://",
        "acedata[0].low_balance_threshold: expected f64 (found a string)",
        "acedata[0].initialize_distribution: expected a boolean (found a string)",
        "acedata[0].collectors[1]: is not a collector: expected one of balance, distribution_status",
        "acedata[0].history.page_size: expected u32 (found a string)",
        "acedata[0].history.full_sync_interval: is not a duration (unexpected character at position 10)",
        "yeastar[0].base_url: is not an http:// or https:// URL with a host",
        "yeastar[0].max_staleness: is not a duration (unknown unit at position 2)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let too_long = from_yaml("defaults:\n  interval: 400d\nacedata:\n  - name: m\n    token: t\n")
        .unwrap_err()
        .to_string();
    assert!(
        too_long.contains("defaults.interval: is longer than the limit of 365 days")
            && !too_long.contains("400"),
        "{too_long}"
    );
}

/// Every way a secret can be unusable, for each secret of both vendors, is one problem
/// on the key that gives it.
#[test]
fn a_missing_secret_is_one_problem() {
    let dir = std::env::temp_dir().join(format!("be-one-cause-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.join("missing");
    std::env::remove_var("BE_TEST_UNSET_SECRET");
    let sources = [
        (
            "BE_TEST_UNSET_SECRET is not set",
            "_env: BE_TEST_UNSET_SECRET".to_string(),
        ),
        ("is empty", format!("_file: {}", empty.display())),
        ("cannot read", format!("_file: {}", missing.display())),
        ("must not be empty", ": \"  \"".to_string()),
    ];
    for (expected, source) in &sources {
        for (section, key, rest) in [
            ("acedata", "token", ""),
            ("yeastar", "client_secret", "    client_id: id\n"),
            ("yeastar", "access_token", ""),
        ] {
            let yaml = format!("{section}:\n  - name: a\n{rest}    {key}{source}\n");
            let err = from_yaml(&yaml).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{yaml}\n{err}");
            let p = &err.problems[0];
            assert!(p.starts_with(&format!("{section}[0].{key}")), "{yaml}\n{p}");
            assert!(p.contains(expected), "{yaml}\n{p}");
        }
    }
    // A Yeastar account with a client_id and no secret at all, or the reverse.
    for (yaml, key) in [
        (
            "yeastar:\n  - name: a\n    client_id: id\n",
            "yeastar[0].client_secret: is required",
        ),
        (
            "yeastar:\n  - name: a\n    client_secret: s\n",
            "yeastar[0].client_id: is required",
        ),
    ] {
        let err = from_yaml(yaml).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].starts_with(key), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_config_names_the_way_out() {
    let err = from_yaml("{}").unwrap_err();
    assert!(err.to_string().contains("--demo"));
}

#[test]
fn secrets_never_print() {
    let c = from_yaml(
            "acedata:\n  - name: m\n    token: super-secret-value\nyeastar:\n  - name: y\n    client_id: id\n    client_secret: other-secret-value\n",
        )
        .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("super-secret-value"), "{dbg}");
    assert!(!dbg.contains("other-secret-value"), "{dbg}");
}

#[test]
fn application_thresholds_name_services_with_a_wildcard() {
    let c = from_yaml(
        "acedata:\n  - name: m\n    token: t\n    collectors: [applications]\n    application_thresholds: {midjourney: 100, \"*\": 20.5, suno: 0}\n",
    )
    .unwrap();
    let t = &c.accounts::<Ace>().next().unwrap().application_thresholds;
    assert_eq!(t.for_service("midjourney"), Some(100.0));
    assert_eq!(t.for_service("suno"), Some(0.0));
    assert_eq!(t.for_service("anything"), Some(20.5));
    let only_named = from_yaml(
        "acedata:\n  - name: m\n    token: t\n    application_thresholds: {midjourney: 100}\n",
    )
    .unwrap();
    let a = only_named.accounts::<Ace>().next().unwrap();
    assert_eq!(a.application_thresholds.for_service("suno"), None);
}

#[test]
fn every_application_threshold_problem_is_reported_with_its_path() {
    let yaml = r#"
acedata:
  - name: m
    token: t
    application_thresholds: {midjourney: -1, suno: "lots", "": 5, "*": -0.5, ok: 3}
  - name: n
    token: t
    application_thresholds: [1, 2]
"#;
    let text = from_yaml(yaml).unwrap_err().to_string();
    for needle in [
        "acedata[0].application_thresholds.midjourney: must be a non-negative finite number",
        "acedata[0].application_thresholds.suno: must be a number",
        "acedata[0].application_thresholds: a service name must not be empty",
        "acedata[0].application_thresholds.*: must be a non-negative finite number",
        "acedata[1].application_thresholds: expected a map",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains(".ok"), "{text}");
}

/// A duration that does not parse is one problem: its stand-in default is not compared
/// with the values around it (which would name an interval the user never wrote).
#[test]
fn a_duration_that_does_not_parse_is_one_problem() {
    let yaml = r#"
defaults:
  interval: soon
  timeout: 2m
  max_staleness: 3s
acedata:
  - name: m
    token: t
    interval: later
    max_staleness: 3s
    usage_interval: 2s
  - name: n
    token: t
    interval: 10s
    max_staleness: whenever
    usage_interval: 2h
  - name: o
    token: t
    max_staleness: 3s
    usage_interval: 2s
"#;
    let text = from_yaml(yaml).unwrap_err().to_string();
    for needle in [
        "(3 problems)",
        "defaults.interval: is not a duration",
        "acedata[0].interval: is not a duration",
        "acedata[1].max_staleness: is not a duration",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("the interval 1m"), "{text}");
    assert!(!text.contains("max_staleness 1h"), "{text}");
}
