//! Replacing a file atomically: everything is written to a temporary file in the same folder,
//! synced, then renamed over the target, so a reader sees the old file or the new one, never a
//! half-written one, and a failure (or a crash) leaves the old file as it was.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Writes are buffered in chunks of this size.
const BUFFER: usize = 256 * 1024;

/// A file being written in place of `path`; [`AtomicFile::commit`] puts it there. Dropped
/// without a commit, the temporary file is deleted and `path` is untouched.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    out: BufWriter<NamedTempFile>,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing a file that will replace `path`.
    pub(crate) fn create(path: &Path) -> io::Result<AtomicFile> {
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(path.file_name().unwrap_or_default());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // The same permissions a plain `File::create` gives (the umask applies), not the
        // owner-only ones of a temporary file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(folder)?;
        Ok(AtomicFile {
            out: BufWriter::with_capacity(BUFFER, temp),
            path: path.to_owned(),
        })
    }

    /// Flushes, syncs to disk and renames the file over its target.
    pub(crate) fn commit(self) -> io::Result<()> {
        let temp = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        temp.as_file().sync_all()?;
        let file: File = temp.persist(&self.path).map_err(|e| e.error)?;
        drop(file);
        Ok(())
    }
}

/// Removes the temporary files that a killed writer of `path` left beside it (`.<name>*.tmp`).
/// The caller makes sure none is being written (it holds the run lock).
pub(crate) fn remove_stale(path: &Path) {
    let (Some(folder), Some(name)) = (
        Some(crate::paths::folder_of(path)),
        path.file_name().and_then(|n| n.to_str()),
    ) else {
        return;
    };
    let prefix = format!(".{name}");
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|random| {
                    !random.is_empty() && random.bytes().all(|b| b.is_ascii_alphanumeric())
                })
        });
        if stale && let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(
                "{}: cannot remove this stale temporary file: {e}",
                entry.path().display()
            );
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_changes_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::fs::write(&path, "old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_dropped_uncommitted_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_as_readable_as_a_plainly_created_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let path = dir.path().join("atomic");
        AtomicFile::create(&path).unwrap().commit().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&path), mode(&plain));
    }
}
