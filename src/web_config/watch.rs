//! Re-reading the web configuration when the file, or a file it names, changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{WebConfig, WebConfigError};
use crate::file_stamp::FileStamp;

/// How often the files are checked for changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The web configuration file in force, re-read when it or a file it names changes.
///
/// Requests only read the configuration in force ([`WebConfigFile::current`]); the
/// files are checked apart from them, on a blocking thread every second
/// ([`WebConfigFile::watch`]), so a slow disk never holds up a scrape.
pub struct WebConfigFile {
    path: PathBuf,
    state: Mutex<Watched>,
}

struct Watched {
    current: Arc<WebConfig>,
    stamps: Vec<Option<FileStamp>>,
}

/// What one [`WebConfigFile::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// No file changed; nothing was read.
    Unchanged,
    /// A new version is in force.
    Reloaded,
    /// A changed version did not load; the previous one stays in force.
    Rejected,
    /// A changed version turns TLS on or off; the previous one stays in force.
    NeedsRestart,
}

impl WebConfigFile {
    /// Load `path`; an invalid file is an error naming every problem.
    pub fn load(path: &Path) -> Result<WebConfigFile, WebConfigError> {
        let config = WebConfig::load(path)?;
        Ok(WebConfigFile {
            path: path.to_path_buf(),
            state: Mutex::new(Watched {
                stamps: config.stamps(),
                current: Arc::new(config),
            }),
        })
    }

    /// The configuration in force now. Never touches the file system.
    pub fn current(&self) -> Arc<WebConfig> {
        self.lock().current.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-read the files if one changed (blocking file system work). A changed file
    /// that does not load is logged and the previous configuration stays; so is one
    /// that turns TLS on or off, which needs a restart. Either is not read again
    /// until a file changes again.
    pub fn refresh(&self) -> Refresh {
        let (current, seen) = {
            let state = self.lock();
            (state.current.clone(), state.stamps.clone())
        };
        let stamps = current.stamps();
        if stamps == seen {
            return Refresh::Unchanged;
        }
        let loaded = WebConfig::load(&self.path);
        let mut state = self.lock();
        state.stamps = stamps;
        match loaded {
            Ok(next) if next.tls.is_some() != state.current.tls.is_some() => {
                tracing::error!(path = %self.path.display(), "web configuration changed whether TLS is on; that needs a restart, the previous web configuration stays in force");
                Refresh::NeedsRestart
            }
            Ok(next) => {
                tracing::info!(path = %self.path.display(), tls = next.tls.is_some(), basic_auth_users = next.auth.user_names().len(), "web configuration reloaded");
                state.stamps = next.stamps();
                state.current = Arc::new(next);
                Refresh::Reloaded
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "web configuration rejected; the previous one stays in force");
                Refresh::Rejected
            }
        }
    }

    /// Check the files every second on a blocking thread until `stop` is cancelled.
    pub fn watch(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RECHECK_INTERVAL) => {}
                }
                let this = this.clone();
                let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web_config::auth::basic;

    /// Write `text` to `path` with a modification time two seconds on, so that the
    /// change shows even on a file system with a coarse clock.
    fn rewrite(path: &Path, text: &str) {
        let before = std::fs::metadata(path).and_then(|m| m.modified()).unwrap();
        std::fs::write(path, text).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(before + Duration::from_secs(2)).unwrap();
    }

    fn users(password: &str) -> String {
        let hash = bcrypt::hash(password, 4).unwrap();
        format!("basic_auth_users:\n  alice: {hash}\n")
    }

    #[tokio::test]
    async fn a_version_that_does_not_load_leaves_the_previous_in_force() {
        let dir = std::env::temp_dir().join(format!(
            "be-web-watch-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, users("first")).unwrap();
        let file = WebConfigFile::load(&path).unwrap();
        let grants = |password: &'static str| {
            let config = file.current();
            async move { config.authorize(Some(&basic("alice", password))).await }
        };
        assert_eq!(file.refresh(), Refresh::Unchanged);

        rewrite(&path, &users("second"));
        assert_eq!(file.refresh(), Refresh::Reloaded);
        assert!(grants("second").await);
        assert!(!grants("first").await);

        rewrite(&path, "basic_auth_users:\n  alice: not-a-hash\n");
        assert_eq!(file.refresh(), Refresh::Rejected);
        assert!(grants("second").await);
        assert!(!grants("first").await);
        // Not read again until it changes again.
        assert_eq!(file.refresh(), Refresh::Unchanged);

        rewrite(&path, &users("third"));
        assert_eq!(file.refresh(), Refresh::Reloaded);
        assert!(grants("third").await);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
