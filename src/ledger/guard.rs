//! Watching the state file during a run: the path must go on naming the file the run has open.
//!
//! A state file deleted, replaced or truncated while a run writes it is lost: the run would go
//! on writing an unlinked file, and the next run would start a fresh ledger and send everything
//! again. The guard remembers the file's device and inode (and its `-wal` file's) when the run
//! starts, and each check compares the path with them and with the largest size seen (SQLite
//! never shrinks our files during a run). The runner checks at least every second, before it
//! lets rows be marked in flight, and before the final write; on the first failure it stops
//! sending and writes the results from the ledger it still has open.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::sidecar;
use crate::files::identity::file_id;

/// One file watched: its path, identity and the largest size seen.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    /// Device and inode (Unix); `None` elsewhere, where only deletion and truncation show.
    id: Option<(u64, u64)>,
    largest: AtomicU64,
}

impl Watched {
    fn new(path: PathBuf) -> Option<Watched> {
        let meta = std::fs::metadata(&path).ok()?;
        Some(Watched {
            path,
            id: file_id(&meta),
            largest: AtomicU64::new(meta.len()),
        })
    }

    /// What happened to the file, if anything.
    fn check(&self) -> Option<String> {
        let shown = self.path.display();
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(format!("{shown} was deleted"));
            }
            Err(e) => return Some(format!("{shown} cannot be read: {e}")),
        };
        if file_id(&meta) != self.id {
            return Some(format!("{shown} was replaced by another file"));
        }
        let largest = self.largest.fetch_max(meta.len(), Ordering::Relaxed);
        (meta.len() < largest).then(|| {
            format!(
                "{shown} was truncated (from {largest} to {} bytes)",
                meta.len()
            )
        })
    }
}

/// The state file (and its `-wal` file) a run has open.
#[derive(Debug)]
pub(crate) struct StateGuard {
    files: Vec<Watched>,
    lost: OnceLock<String>,
}

impl StateGuard {
    /// Remembers the state file as it is now, open by the run.
    pub(crate) fn new(state: &Path) -> std::io::Result<StateGuard> {
        let main = Watched::new(state.to_owned()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the state file is missing")
        })?;
        let wal = Watched::new(sidecar(state, "-wal"));
        Ok(StateGuard {
            files: std::iter::once(main).chain(wal).collect(),
            lost: OnceLock::new(),
        })
    }

    /// Checks that the path still names the open file, not truncated; once it failed, it keeps
    /// failing with the first finding.
    pub(crate) fn check(&self) -> Result<(), &str> {
        if self.lost.get().is_none()
            && let Some(finding) = self.files.iter().find_map(Watched::check)
        {
            let _ = self.lost.set(finding);
        }
        match self.lost.get() {
            Some(finding) => Err(finding),
            None => Ok(()),
        }
    }

    /// The first finding, if a check failed.
    #[cfg(test)]
    pub(crate) fn lost(&self) -> Option<&str> {
        self.lost.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_replaced_and_truncated_files_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        std::fs::write(&path, b"0123456789").unwrap();
        let guard = StateGuard::new(&path).unwrap();
        assert_eq!(guard.check(), Ok(()));
        std::fs::write(&path, b"01234567890123").unwrap();
        assert_eq!(guard.check(), Ok(()), "growing is fine");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(3)
            .unwrap();
        assert!(
            guard
                .check()
                .unwrap_err()
                .contains("truncated (from 14 to 3 bytes)")
        );
        assert!(guard.lost().is_some());

        let replaced = StateGuard::new(&path).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(replaced.check().unwrap_err().contains("replaced"));

        let deleted = StateGuard::new(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(deleted.check().unwrap_err().contains("deleted"));
        std::fs::write(&path, b"back again").unwrap();
        assert!(deleted.check().is_err(), "the first finding stays");
    }
}
