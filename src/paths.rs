//! The files around a run: owner-only permissions for everything the tool writes, and the
//! removal of temporary files a killed process left behind.
//!
//! The ledger, the results, the attempts log and their temporary files hold redeemable
//! certificate codes, so every file this tool creates is owner-only (0600): the process umask is
//! set to `077` before anything is opened (SQLite gives its `-wal` and `-shm` files the mode of
//! the database file), and a state file created by an older version is narrowed on open.

use std::path::Path;

/// Makes every file this process creates from now on owner-only (mode 0600, folders 0700).
pub fn owner_only_from_now_on() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Narrows an existing file to owner-only (0600); a file that does not exist is left alone.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
