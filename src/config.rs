//! The YAML configuration: schema, defaults, validation that reports every problem
//! with its path in one run, and secrets that never print.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::providers::{acedata, yeastar};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstream requests in flight at once, over all accounts.
    pub max_concurrent_requests: usize,
    pub acedata: Vec<acedata::AccountConfig>,
    pub yeastar: Vec<yeastar::AccountConfig>,
}

/// Polling cadence of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between the starts of two attempts.
    pub interval: Duration,
    /// Limit of one upstream request (connect, headers and body).
    pub timeout: Duration,
    /// How long the last good values stay exported after the last success.
    pub max_staleness: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_staleness: Duration::from_secs(3600),
        }
    }
}

/// The longest duration any setting accepts: far beyond any sensible poll cadence,
/// and far from the clock arithmetic overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

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

/// `invalid <what> (N problems):` followed by one indented line per problem.
pub fn write_problems(f: &mut fmt::Formatter<'_>, what: &str, problems: &[String]) -> fmt::Result {
    let plural = if problems.len() == 1 { "" } else { "s" };
    write!(f, "invalid {what} ({} problem{plural}):", problems.len())?;
    for p in problems {
        write!(f, "\n  - {p}")?;
    }
    Ok(())
}

impl Config {
    /// Read and validate the YAML file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = config::File::from(path)
            .format(config::FileFormat::Yaml)
            .required(true);
        Self::from_source(source, &path.display().to_string())
    }

    /// Validate a YAML document given as text (used by tests).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Self::from_source(
            config::File::from_str(text, config::FileFormat::Yaml),
            "<inline>",
        )
    }

    fn from_source<S>(source: S, origin: &str) -> Result<Config, ConfigError>
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
        Self::from_value(raw)
    }

    /// Validate an already-parsed document.
    pub fn from_value(raw: Value) -> Result<Config, ConfigError> {
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
            let acedata = root.accounts("acedata", |f| acedata::AccountConfig::parse(f, defaults));
            let yeastar = root.accounts("yeastar", |f| yeastar::AccountConfig::parse(f, defaults));
            root.finish();
            Config {
                max_concurrent_requests,
                acedata,
                yeastar,
            }
        };
        if config.acedata.is_empty() && config.yeastar.is_empty() && problems.is_empty() {
            problems.push(
                "no account configured: add an `acedata` or `yeastar` account (or run with --demo)"
                    .into(),
            );
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Reads the keys of one YAML mapping, recording a problem (with the key's path) for
/// every missing, mistyped or unknown key instead of stopping at the first.
pub struct Fields<'p> {
    path: String,
    map: Map<String, Value>,
    problems: &'p mut Vec<String>,
}

impl<'p> Fields<'p> {
    /// Read `map`, found at `path`, recording problems into `problems`.
    pub fn new(path: String, map: Map<String, Value>, problems: &'p mut Vec<String>) -> Self {
        Fields {
            path,
            map,
            problems,
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The path of this mapping, e.g. `acedata[0]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Record a problem about `key` of this mapping.
    pub fn problem(&mut self, key: &str, message: impl fmt::Display) {
        let p = self.key_path(key);
        self.problems.push(format!("{p}: {message}"));
    }

    /// Record a problem about a whole path (not one key of this mapping).
    pub fn problem_at(&mut self, path: &str, message: impl fmt::Display) {
        self.problems.push(format!("{path}: {message}"));
    }

    /// Whether `key` is present (and not null).
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// Take an optional key, deserialized as `T`.
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let value = self.map.remove(key)?;
        if value.is_null() {
            return None;
        }
        match serde_json::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                // serde names the offending value ("invalid type: integer `42`, …"),
                // which could be a secret put under the wrong key: keep only what was
                // expected.
                let message = e.to_string();
                let message = message.split(" at line").next().unwrap_or(&message);
                let expected = match message.split_once(", expected ") {
                    Some((_, what)) => format!("expected {what}"),
                    None if message.starts_with("invalid ") => "has the wrong type".into(),
                    None => message.to_string(),
                };
                self.problem(key, format!("{expected} (found {})", kind(&value)));
                None
            }
        }
    }

    /// Take a key that must be present.
    pub fn required<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        if !self.has(key) {
            self.problem(key, "is required");
            self.map.remove(key);
            return None;
        }
        self.take(key)
    }

    /// Take a non-empty string.
    pub fn string(&mut self, key: &str, required: bool) -> Option<String> {
        let s: Option<String> = if required {
            self.required(key)
        } else {
            self.take(key)
        };
        match s {
            Some(s) if s.trim().is_empty() => {
                self.problem(key, "must not be empty");
                None
            }
            other => other,
        }
    }

    /// Take a humantime duration (`30s`, `5m`), which must be positive.
    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let s: String = self.take(key)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) if d.is_zero() => {
                self.problem(key, "must be longer than zero");
                None
            }
            Ok(d) if d > MAX_DURATION => {
                self.problem(key, format!("`{s}` is longer than the limit of 365 days"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(
                    key,
                    format!("`{s}` is not a duration ({e}); use e.g. 30s, 5m, 1h"),
                );
                None
            }
        }
    }

    /// Take a URL with an http or https scheme.
    pub fn url(&mut self, key: &str, default: &str) -> String {
        let Some(s) = self.string(key, false) else {
            return default.to_string();
        };
        match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                s.trim_end_matches('/').to_string()
            }
            Ok(_) => {
                self.problem(key, format!("`{s}` must be an http:// or https:// URL"));
                default.to_string()
            }
            Err(e) => {
                self.problem(key, format!("`{s}` is not a URL ({e})"));
                default.to_string()
            }
        }
    }

    /// Take `interval`, `timeout` and `max_staleness`, falling back to `defaults`,
    /// and check that they fit together.
    pub fn timing(&mut self, defaults: Timing) -> Timing {
        let interval = self.duration("interval").unwrap_or(defaults.interval);
        // Unset values follow a short interval instead of contradicting it.
        let t = Timing {
            interval,
            timeout: self
                .duration("timeout")
                .unwrap_or(defaults.timeout.min(interval)),
            max_staleness: self
                .duration("max_staleness")
                .unwrap_or(defaults.max_staleness.max(interval)),
        };
        if t.timeout > t.interval {
            self.problem(
                "timeout",
                format!(
                    "{} is longer than the interval {}",
                    humantime::format_duration(t.timeout),
                    humantime::format_duration(t.interval)
                ),
            );
        }
        if t.max_staleness < t.interval {
            self.problem(
                "max_staleness",
                format!(
                    "{} is shorter than the interval {}: values would vanish between two polls",
                    humantime::format_duration(t.max_staleness),
                    humantime::format_duration(t.interval)
                ),
            );
        }
        t
    }

    /// Take a secret given as exactly one of `<base>`, `<base>_file` or `<base>_env`.
    /// With `required` false, none of the three is fine (returns `None` silently).
    pub fn secret(&mut self, base: &str, required: bool) -> Option<Secret> {
        let file_key = format!("{base}_file");
        let env_key = format!("{base}_env");
        let given: Vec<&str> = [base, file_key.as_str(), env_key.as_str()]
            .into_iter()
            .filter(|k| self.has(k))
            .collect();
        if given.len() > 1 {
            let list = given.join(", ");
            self.problem(
                base,
                format!("give exactly one of {base}, {file_key}, {env_key} (found {list})"),
            );
            for k in [base, file_key.as_str(), env_key.as_str()] {
                self.map.remove(k);
            }
            return None;
        }
        if given.is_empty() {
            for k in [base, file_key.as_str(), env_key.as_str()] {
                self.map.remove(k);
            }
            if required {
                self.problem(
                    base,
                    format!("is required (as {base}, {file_key} or {env_key})"),
                );
            }
            return None;
        }
        let source = if self.has(base) {
            SecretSource::Literal(SecretString::from(self.string(base, true)?))
        } else if self.has(&file_key) {
            SecretSource::File(PathBuf::from(self.string(&file_key, true)?))
        } else {
            SecretSource::Env(self.string(&env_key, true)?)
        };
        let key = given[0].to_string();
        let secret = Secret::new(source);
        if let Err(e) = secret.get() {
            self.problem(&key, e);
            return None;
        }
        Some(secret)
    }

    /// Take a nested mapping.
    pub fn object(&mut self, key: &str) -> Option<Fields<'_>> {
        let value = self.map.remove(key)?;
        let path = self.key_path(key);
        match value {
            Value::Object(map) => Some(Fields::new(path, map, self.problems)),
            Value::Null => None,
            other => {
                self.problems.push(format!(
                    "{path}: must be a mapping (found {})",
                    kind(&other)
                ));
                None
            }
        }
    }

    /// Take a list of account mappings, parse each with `parse`, and check that names
    /// are unique.
    fn accounts<T>(
        &mut self,
        key: &str,
        mut parse: impl FnMut(&mut Fields<'_>) -> Option<T>,
    ) -> Vec<T> {
        let Some(value) = self.map.remove(key) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        let items = match value {
            Value::Array(items) => items,
            Value::Null => return Vec::new(),
            other => {
                self.problems.push(format!(
                    "{path}: must be a list of accounts (found {})",
                    kind(&other)
                ));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Value::Object(map) = item else {
                self.problems.push(format!(
                    "{item_path}: must be a mapping (found {})",
                    kind(&item)
                ));
                continue;
            };
            if let Some(name) = map.get("name").and_then(Value::as_str) {
                if !names.insert(name.to_string()) {
                    self.problems.push(format!(
                        "{item_path}.name: `{name}` is used by another {key} account"
                    ));
                }
            }
            let mut fields = Fields::new(item_path, map, self.problems);
            let parsed = parse(&mut fields);
            fields.finish();
            out.extend(parsed);
        }
        out
    }

    /// Report every key nobody took as unknown.
    pub fn finish(self) {
        let mut unknown: Vec<_> = self.map.keys().cloned().collect();
        unknown.sort();
        for k in unknown {
            let p = if self.path.is_empty() {
                k
            } else {
                format!("{}.{k}", self.path)
            };
            self.problems.push(format!("{p}: unknown key"));
        }
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Written in the config file.
    Literal(SecretString),
    /// Read from a file (trailing whitespace trimmed), re-read when it changes.
    File(PathBuf),
    /// Read from an environment variable (by name).
    Env(String),
}

/// A secret value with its source. File secrets are re-read when the file's
/// modification time changes, so a rotated Kubernetes Secret is picked up without a
/// restart. `Debug` never shows the value.
#[derive(Debug)]
pub struct Secret {
    source: SecretSource,
    cache: Mutex<Option<(Option<FileStamp>, SecretString)>>,
}

/// What identifies one version of a file without reading it: modification time,
/// size and (on Unix) device and inode. A Kubernetes Secret rotation swaps a
/// symlink to a new file, which changes the inode even when the clock is coarse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: SystemTime,
    len: u64,
    inode: (u64, u64),
}

impl FileStamp {
    /// The stamp of the file `path` points to (symlinks followed); `None` when the
    /// file system keeps no modification time.
    pub fn of(path: &Path) -> std::io::Result<Option<FileStamp>> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let inode = (0, 0);
        Ok(meta.modified().ok().map(|modified| FileStamp {
            modified,
            len: meta.len(),
            inode,
        }))
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret::new(self.source.clone())
    }
}

impl Secret {
    /// A secret read from `source`.
    pub fn new(source: SecretSource) -> Self {
        Secret {
            source,
            cache: Mutex::new(None),
        }
    }

    /// A literal secret (used by the demo and by tests).
    pub fn literal(value: &str) -> Self {
        Secret::new(SecretSource::Literal(SecretString::from(value.to_string())))
    }

    /// The current value. Errors name the source (file path or variable name), never
    /// the value.
    pub fn get(&self) -> Result<SecretString, String> {
        match &self.source {
            SecretSource::Literal(s) => Ok(s.clone()),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretSource::File(path) => {
                let stamp = FileStamp::of(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((cached, value)) = cache.as_ref() {
                    if stamp.is_some() && *cached == stamp {
                        return Ok(value.clone());
                    }
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                let value = SecretString::from(text.to_string());
                *cache = Some((stamp, value.clone()));
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_yaml("acedata:\n  - name: main\n    token: t0k3n\n").unwrap();
        assert_eq!(c.max_concurrent_requests, 16);
        let a = &c.acedata[0];
        assert_eq!(a.timing, Timing::default());
        assert_eq!(a.base_url, "https://platform.acedata.cloud");
        assert!(a.initialize_distribution);
        assert_eq!(a.collectors.len(), 5);
        assert_eq!(a.application_thresholds.for_service("midjourney"), None);
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
        let c = Config::from_yaml(yaml).unwrap();
        assert_eq!(c.max_concurrent_requests, 4);
        assert_eq!(c.yeastar[0].timing.interval, Duration::from_secs(300));
        assert_eq!(c.yeastar[0].low_balance_threshold, Some(50.0));
        assert_eq!(c.acedata[0].user_id.as_deref(), Some("me"));
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
        let err = Config::from_yaml(yaml).unwrap_err();
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
    fn application_thresholds_name_services_with_a_wildcard() {
        let c = Config::from_yaml(
            "acedata:\n  - name: m\n    token: t\n    collectors: [applications]\n    application_thresholds: {midjourney: 100, \"*\": 20.5, suno: 0}\n",
        )
        .unwrap();
        let t = &c.acedata[0].application_thresholds;
        assert_eq!(t.for_service("midjourney"), Some(100.0));
        assert_eq!(t.for_service("suno"), Some(0.0));
        assert_eq!(t.for_service("anything"), Some(20.5));
        let only_named = Config::from_yaml(
            "acedata:\n  - name: m\n    token: t\n    application_thresholds: {midjourney: 100}\n",
        )
        .unwrap();
        assert_eq!(
            only_named.acedata[0]
                .application_thresholds
                .for_service("suno"),
            None
        );
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
        let text = Config::from_yaml(yaml).unwrap_err().to_string();
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

    #[test]
    fn mistyped_values_are_not_echoed() {
        let err = Config::from_yaml(
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
        let err = Config::from_yaml("{}").unwrap_err();
        assert!(err.to_string().contains("--demo"));
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::from_yaml(
            "acedata:\n  - name: m\n    token: super-secret-value\nyeastar:\n  - name: y\n    client_id: id\n    client_secret: other-secret-value\n",
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("super-secret-value"), "{dbg}");
        assert!(!dbg.contains("other-secret-value"), "{dbg}");
    }

    #[test]
    fn file_secret_is_reread_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("be-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let s = Secret::new(SecretSource::File(path.clone()));
        assert_eq!(s.get().unwrap().expose_secret(), "first");
        std::fs::write(&path, "second").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(s.get().unwrap().expose_secret(), "second");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
