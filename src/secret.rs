//! Secret values (tokens, client secrets) with their source: literal, file or
//! environment variable. They never print.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use secrecy::SecretString;

use crate::file_stamp::FileStamp;
use crate::fingerprint::Fingerprinter;

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
    /// The last read of a file secret; `None` for the others (at 10,000 accounts, a
    /// cache per literal token would hold 0.7 MB that is never used).
    cache: Option<Arc<Mutex<Cached>>>,
}

/// The last value read from a secret file, with the stamp of the file it came from.
type Cached = Option<(Option<FileStamp>, SecretString)>;

/// Two secrets are the same when they come from the same source: the same literal
/// value, file path or variable name (a reload compares configurations this way).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (&self.source, &other.source) {
            (SecretSource::Literal(a), SecretSource::Literal(b)) => {
                a.expose_secret() == b.expose_secret()
            }
            (SecretSource::File(a), SecretSource::File(b)) => a == b,
            (SecretSource::Env(a), SecretSource::Env(b)) => a == b,
            _ => false,
        }
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret::new(self.source.clone())
    }
}

impl Secret {
    /// Feed the key `name` with where this secret comes from, as `==` compares
    /// secrets: the kind of source and the inline value, file path or variable name (a
    /// rotated file or variable is the same secret: it is re-read, not restarted).
    pub fn fingerprint(&self, name: &str, f: &mut Fingerprinter) {
        use secrecy::ExposeSecret;
        match &self.source {
            // Only into the digest under the process's random keys (see
            // [`crate::fingerprint`]): nothing of the value is kept.
            SecretSource::Literal(value) => f.key(name, &(0u8, value.expose_secret())),
            SecretSource::File(path) => f.key(name, &(1u8, path)),
            SecretSource::Env(variable) => f.key(name, &(2u8, variable)),
        };
    }

    /// A secret read from `source`.
    pub fn new(source: SecretSource) -> Self {
        let cache = matches!(source, SecretSource::File(_)).then(|| Arc::new(Mutex::new(None)));
        Secret { source, cache }
    }

    /// A literal secret (used by the demo and by tests).
    pub fn literal(value: &str) -> Self {
        Secret::new(SecretSource::Literal(SecretString::from(value.to_string())))
    }

    /// The current value. Errors name the source (file path or variable name), never
    /// the value. A file secret is checked (and read when it changed) on the calling
    /// thread: use [`Secret::current`] on an async one.
    pub fn get(&self) -> Result<SecretString, String> {
        match &self.source {
            SecretSource::Literal(s) => Ok(s.clone()),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretSource::File(path) => read_file(path, self.file_cache()),
        }
    }

    /// [`Secret::get`] for async code: the file check and read run on a blocking
    /// thread, so a slow disk never stalls the runtime.
    pub async fn current(&self) -> Result<SecretString, String> {
        let SecretSource::File(path) = &self.source else {
            return self.get();
        };
        let (path, cache) = (path.clone(), self.file_cache().clone());
        tokio::task::spawn_blocking(move || read_file(&path, &cache))
            .await
            .unwrap_or_else(|e| Err(format!("reading the secret file failed: {e}")))
    }
}

impl Secret {
    fn file_cache(&self) -> &Arc<Mutex<Cached>> {
        self.cache
            .as_ref()
            .expect("a file secret has a cache from Secret::new")
    }
}

/// The secret in the file at `path`, from `cache` while the file is unchanged.
fn read_file(path: &Path, cache: &Mutex<Cached>) -> Result<SecretString, String> {
    let stamp = FileStamp::of(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use secrecy::ExposeSecret;

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
