//! `basic_auth_users`: bcrypt hashes, checked a few at a time, successes remembered.
//!
//! A bcrypt check costs tens of milliseconds of CPU by design. So that a scraper
//! presenting the same right password every 15 s does not pay it each time, a
//! successful check is remembered by a SHA-256 of (user, hash, password); so that
//! wrong passwords sent in bulk cannot take every core, at most
//! [`CONCURRENT_VERIFICATIONS`] run at once and the rest queue.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::fields::Fields;

/// Successful verifications remembered at most (a full cache is emptied).
const AUTH_CACHE_CAPACITY: usize = 1024;

/// bcrypt verifications running at once: they cost tens of milliseconds of CPU each,
/// so wrong passwords sent in bulk queue up instead of taking every core.
const CONCURRENT_VERIFICATIONS: usize = 2;

/// Highest bcrypt cost accepted (cost 16 takes seconds per check; each step doubles).
const MAX_BCRYPT_COST: u32 = 16;

/// The users and their bcrypt hashes, with the cache of successful checks.
pub(super) struct BasicAuth {
    users: BTreeMap<String, String>,
    /// The highest bcrypt cost among the users: an unknown user's password is hashed
    /// at this cost, so that it takes as long as checking a wrong password.
    dummy_cost: u32,
    /// SHA-256 of (user, hash, password) of successful verifications.
    verified: Mutex<HashSet<[u8; 32]>>,
    verifications: Arc<Semaphore>,
}

impl BasicAuth {
    pub(super) fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let dummy_cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        BasicAuth {
            users,
            dummy_cost,
            verified: Mutex::new(HashSet::new()),
            verifications: Arc::new(Semaphore::new(CONCURRENT_VERIFICATIONS)),
        }
    }

    /// Take and check `basic_auth_users` (user name → bcrypt hash) from the document.
    pub(super) fn users(root: &mut Fields<'_>) -> BTreeMap<String, String> {
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

    pub(super) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub(super) fn user_names(&self) -> Vec<&str> {
        self.users.keys().map(String::as_str).collect()
    }

    /// See [`super::WebConfig::authorize`].
    pub(super) async fn authorize(&self, authorization: Option<&[u8]>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            let cost = self.dummy_cost;
            let Ok(_permit) = self.verifications.acquire().await else {
                return false;
            };
            let _ = tokio::task::spawn_blocking(move || bcrypt::hash(password, cost)).await;
            return false;
        };
        let key = cache_key(&user, &hash, &password);
        if self.cached(&key) {
            return true;
        }
        let Ok(_permit) = self.verifications.acquire().await else {
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

/// An `Authorization` header value for `user` and `password`.
#[cfg(test)]
pub(super) fn basic(user: &str, password: &str) -> Vec<u8> {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::web_config::WebConfig;

    // bcrypt at cost 4 (cheap for tests).
    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).unwrap()
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
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), bcrypt::hash("pw", 7).unwrap());
        let c = BasicAuth::new(users);
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
}
