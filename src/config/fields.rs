//! Reading one YAML mapping key by key, recording every problem with its path.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::secret::{Secret, SecretSource};
use crate::timing::{Timing, MAX_DURATION};

/// `invalid <what> (N problems):` followed by one indented line per problem.
pub fn write_problems(f: &mut fmt::Formatter<'_>, what: &str, problems: &[String]) -> fmt::Result {
    let plural = if problems.len() == 1 { "" } else { "s" };
    write!(f, "invalid {what} ({} problem{plural}):", problems.len())?;
    for p in problems {
        write!(f, "\n  - {p}")?;
    }
    Ok(())
}

/// What is wrong with a duration, without the text itself (humantime's own messages
/// quote the unit, which could be part of a secret put under the wrong key).
fn duration_problem(e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    match e {
        E::InvalidCharacter(at) => format!("unexpected character at position {}", at + 1),
        E::NumberExpected(at) => format!("a number was expected at position {}", at + 1),
        E::UnknownUnit { start, .. } => format!("unknown unit at position {}", start + 1),
        E::NumberOverflow => "the number is too large".into(),
        E::Empty => "it is empty".into(),
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
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
    unknown_timing: HashSet<&'static str>,
}

impl<'p> Fields<'p> {
    /// Read `map`, found at `path`, recording problems into `problems`.
    pub fn new(path: String, map: Map<String, Value>, problems: &'p mut Vec<String>) -> Self {
        Fields {
            path,
            map,
            problems,
            unknown_timing: HashSet::new(),
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

    /// Whether a problem was already recorded at `path`.
    fn has_problem_at(&self, path: &str) -> bool {
        let prefix = format!("{path}: ");
        self.problems.iter().any(|p| p.starts_with(&prefix))
    }

    /// Whether the timing value `key` (taken by [`Fields::timing`]) did not parse, here or
    /// in `defaults` it fell back to: its stand-in is no value of the user's, so a check
    /// comparing it with another value is skipped (one cause makes one problem).
    pub fn timing_unknown(&self, key: &str) -> bool {
        self.unknown_timing.contains(key)
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

    /// Take a finite number (no NaN or infinity).
    pub fn finite(&mut self, key: &str) -> Option<f64> {
        let n = self.take::<f64>(key)?;
        if !n.is_finite() {
            self.problem(key, "must be a finite number");
            return None;
        }
        Some(n)
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
                self.problem(key, "is longer than the limit of 365 days");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(
                    key,
                    format!(
                        "is not a duration ({}): expected a number and a unit, e.g. 30s, 5m, 1h",
                        duration_problem(&e)
                    ),
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
            // The scheme and host are part of the value, which is never repeated.
            Ok(_) => {
                self.problem(
                    key,
                    "is not an http:// or https:// URL with a host: expected e.g. https://api.example.com",
                );
                default.to_string()
            }
            // The parser's messages (`relative URL without a base`, `invalid port
            // number`) never contain the input.
            Err(e) => {
                self.problem(
                    key,
                    format!("is not a URL ({e}): expected e.g. https://api.example.com"),
                );
                default.to_string()
            }
        }
    }

    /// Take `interval`, `timeout` and `max_staleness`, falling back to `defaults`,
    /// and check that they fit together.
    pub fn timing(&mut self, defaults: Timing) -> Timing {
        const KEYS: [&str; 3] = ["interval", "timeout", "max_staleness"];
        let given = KEYS.map(|k| self.has(k));
        let interval = self.duration("interval").unwrap_or(defaults.interval);
        // Unset values follow the interval instead of contradicting it: a timeout no
        // longer than a short interval, a max_staleness that outlasts a long one with
        // room for the jitter and a slower attempt (else values would vanish for a
        // moment between two successes).
        let timeout = self
            .duration("timeout")
            .unwrap_or(defaults.timeout.min(interval));
        let t = Timing {
            interval,
            timeout,
            max_staleness: self.duration("max_staleness").unwrap_or_else(|| {
                defaults
                    .max_staleness
                    .max(crate::timing::longest_gap(interval, timeout))
            }),
        };
        // A value that did not parse stands in as its default, here or inherited from
        // `defaults`; comparing that stand-in would report problems the user never wrote.
        for (key, given) in KEYS.into_iter().zip(given) {
            let unknown = if given {
                self.has_problem_at(&self.key_path(key))
            } else {
                self.path != "defaults" && self.has_problem_at(&format!("defaults.{key}"))
            };
            if unknown {
                self.unknown_timing.insert(key);
            }
        }
        let interval_ok = !self.timing_unknown("interval");
        if interval_ok && !self.timing_unknown("timeout") && t.timeout > t.interval {
            self.problem(
                "timeout",
                format!(
                    "{} is longer than the interval {}",
                    humantime::format_duration(t.timeout),
                    humantime::format_duration(t.interval)
                ),
            );
        }
        if interval_ok && !self.timing_unknown("max_staleness") && t.max_staleness < t.interval {
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
    pub(crate) fn accounts<T>(
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
