//! Telling files apart and telling a file unchanged, portably: on Unix by device and inode (and
//! the change time, which no one can set back); elsewhere by what every platform has (size and
//! modification time), with canonical paths standing in for the file identity.

use std::fs::Metadata;
use std::io;
use std::path::Path;

/// The file's identity on this machine: `(device, inode)` on Unix; `None` where the platform
/// has no such number (callers fall back to comparing canonical paths).
pub(crate) fn file_id(meta: &Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// A cheap identity of the file as it is now, to tell at a glance that it has not changed since
/// the last run without reading it. On Unix: size, modification time, change time, device and
/// inode; the change time (ctime) is the part no one can set back: an edit that restores the size
/// and the modification time (`touch -r`, a tool that keeps times) still moves it. Elsewhere:
/// size and modification time only.
pub(crate) fn quick_stat(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(format!(
            "{}:{}.{}:{}.{}:{}:{}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.dev(),
            meta.ino()
        ))
    }
    #[cfg(not(unix))]
    {
        let modified = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(format!("{}:{}", meta.len(), modified.as_nanos()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_keeps_its_identity_and_a_rewrite_changes_its_stat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(file_id(&meta), file_id(&std::fs::metadata(&path).unwrap()));
        let before = quick_stat(&path).unwrap();
        assert_eq!(quick_stat(&path).unwrap(), before);
        std::fs::write(&path, "three").unwrap();
        assert_ne!(quick_stat(&path).unwrap(), before);
    }
}
