//! The YAML configuration: the top-level keys, one section per vendor (read by the
//! vendor, see [`crate::provider`]), and validation that reports every problem with
//! its path in one run.

pub mod fields;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use self::fields::{kind, write_problems, Fields};
use crate::collector::Scheduled;
use crate::provider::{self, Account, Provider, ProviderMetrics, Threshold};
use crate::timing::Timing;
use crate::upstream::Upstream;

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

pub use crate::upstream::DEFAULT_MAX_CONCURRENT_REQUESTS;

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
    /// Every collector of every configured account, with its account's cadence.
    pub fn collectors(&self, metrics: &ProviderMetrics, upstream: &Upstream) -> Vec<Scheduled> {
        self.sections
            .iter()
            .flat_map(|section| {
                section.accounts.iter().flat_map(|a| {
                    provider::account_collectors(section.provider, a.as_ref(), metrics, upstream)
                })
            })
            .collect()
    }

    /// Every configured low-balance threshold.
    pub fn thresholds(&self) -> Vec<Threshold> {
        self.sections
            .iter()
            .flat_map(|section| {
                section.accounts.iter().filter_map(|a| {
                    a.low_balance_threshold().map(|value| Threshold {
                        provider: section.provider.name(),
                        account: a.name().to_string(),
                        value,
                    })
                })
            })
            .collect()
    }

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

    /// Keep only the accounts for which `keep(provider, account name)` holds.
    pub fn retain(&mut self, keep: impl Fn(&str, &str) -> bool) {
        for section in &mut self.sections {
            let provider = section.provider.name();
            section.accounts.retain(|a| keep(provider, a.name()));
        }
    }

    /// The number of configured accounts of every vendor (0 included).
    pub fn account_counts(&self) -> Vec<(&'static str, usize)> {
        self.sections
            .iter()
            .map(|s| (s.provider.name(), s.accounts.len()))
            .collect()
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
