//! Telling that a file changed without reading it.

use std::path::Path;
use std::time::SystemTime;

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
