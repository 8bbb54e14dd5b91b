//! The YAML configuration: the top-level keys, one section per vendor (read by the
//! vendor, see [`crate::provider`]), and validation that reports every problem with
//! its path in one run.

pub mod fields;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use self::fields::{kind, write_problems, Fields};
use crate::provider::{Account, Provider};
use crate::timing::Timing;

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstream requests in flight at once, over all accounts.
    pub max_concurrent_requests: usize,
    /// One section per known vendor, in the order of the vendor list.
    pub sections: Vec<Section>,
}

/// The accounts of one vendor.
#[derive(Clone)]
pub struct Section {
    pub provider: &'static dyn Provider,
    pub accounts: Vec<Arc<dyn Account>>,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("provider", &self.provider.name())
            .field("accounts", &self.accounts)
            .finish()
    }
}

/// Default of `max_concurrent_requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 16;

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "configuration", &self.problems)
    }
}

impl Config {
    /// Read and validate the YAML file at `path`, with a section for each of
    /// `providers`.
    pub fn load(path: &Path, providers: &[&'static dyn Provider]) -> Result<Config, ConfigError> {
        let source = config::File::from(path)
            .format(config::FileFormat::Yaml)
            .required(true);
        Self::from_source(source, &path.display().to_string(), providers)
    }

    /// Validate a YAML document given as text.
    pub fn from_yaml(
        text: &str,
        providers: &[&'static dyn Provider],
    ) -> Result<Config, ConfigError> {
        Self::from_source(
            config::File::from_str(text, config::FileFormat::Yaml),
            "<inline>",
            providers,
        )
    }

    fn from_source<S>(
        source: S,
        origin: &str,
        providers: &[&'static dyn Provider],
    ) -> Result<Config, ConfigError>
    where
        S: config::Source + Send + Sync + 'static,
    {
        let raw = config::Config::builder()
            .add_source(source)
            .build()
            .and_then(|c| c.try_deserialize::<Value>())
            .map_err(|e| ConfigError {
                problems: vec![format!("{origin}: {e}")],
            })?;
        Self::from_value(raw, providers)
    }

    /// Validate an already-parsed document.
    pub fn from_value(
        raw: Value,
        providers: &[&'static dyn Provider],
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let config = {
            let mut root = match raw {
                Value::Object(map) => Fields::new(String::new(), map, &mut problems),
                Value::Null => Fields::new(String::new(), Map::new(), &mut problems),
                other => {
                    return Err(ConfigError {
                        problems: vec![format!(
                            "the document must be a mapping, found {}",
                            kind(&other)
                        )],
                    })
                }
            };
            let max_concurrent_requests = root
                .take::<usize>("max_concurrent_requests")
                .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS);
            if max_concurrent_requests == 0 {
                root.problem("max_concurrent_requests", "must be at least 1");
            }
            let defaults = match root.object("defaults") {
                Some(mut d) => {
                    let t = d.timing(Timing::default());
                    d.finish();
                    t
                }
                None => Timing::default(),
            };
            let sections = providers
                .iter()
                .map(|&provider| Section {
                    provider,
                    accounts: root
                        .accounts(provider.name(), |f| provider.parse_account(f, defaults)),
                })
                .collect();
            root.finish();
            Config {
                max_concurrent_requests,
                sections,
            }
        };
        if config.account_count() == 0 && problems.is_empty() {
            let sections: Vec<String> = providers
                .iter()
                .map(|p| format!("`{}`", p.name()))
                .collect();
            problems.push(format!(
                "no account configured: add an {} account (or run with --demo)",
                sections.join(" or ")
            ));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// How many accounts are configured, over all vendors.
    pub fn account_count(&self) -> usize {
        self.sections.iter().map(|s| s.accounts.len()).sum()
    }

    /// The accounts of type `A` (one vendor's), for that vendor's code and tests.
    pub fn accounts<A: Account>(&self) -> impl Iterator<Item = &A> {
        self.sections
            .iter()
            .flat_map(|s| s.accounts.iter())
            .filter_map(|a| a.as_any().downcast_ref::<A>())
    }

    /// `1 Ace Data Cloud and 2 Yeastar`: the accounts per vendor, for people.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .sections
            .iter()
            .map(|s| format!("{} {}", s.accounts.len(), s.provider.title()))
            .collect();
        match parts.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::acedata::AccountConfig as Ace;
    use crate::providers::yeastar::AccountConfig as Ys;

    fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, &crate::providers::all())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = from_yaml("acedata:\n  - name: main\n    token: t0k3n\n").unwrap();
        assert_eq!(c.max_concurrent_requests, 16);
        let a = c.accounts::<Ace>().next().unwrap();
        assert_eq!(a.timing, Timing::default());
        assert_eq!(a.base_url, "https://platform.acedata.cloud");
        assert!(a.initialize_distribution);
        assert_eq!(a.collectors.len(), 4);
        assert_eq!(a.history.page_size, 100);
        assert_eq!(a.history.full_sync_interval, Duration::from_secs(6 * 3600));
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
            "defaults.interval: `soon` is not a duration",
            "defaults.colour: unknown key",
            "acedata[0].token: give exactly one of token, token_file, token_env",
            "acedata[0].collectors: unknown collector `wallet`",
            "acedata[0].history.page_size",
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
}
