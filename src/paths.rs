//! The files around a run: which paths may be read and written, owner-only permissions for
//! everything the tool writes.
//!
//! The ledger, the results, the attempts log and their temporary files hold redeemable
//! certificate codes, so every file this tool creates is owner-only (0600): the process umask is
//! set to `077` before anything is opened (SQLite gives its `-wal` and `-shm` files the mode of
//! the database file), and a state file created by an older version is narrowed on open.
//!
//! Before the first send (and before `export` writes anything) the paths are checked: the input
//! is a regular file, each output's folder takes new files, and no output is the state file (or
//! its `-wal`, `-shm`, `.lock`), the input, or another output.

use std::path::{Path, PathBuf};

use crate::campaign::Campaign;
use crate::ledger::sidecar;

/// Makes every file this process creates from now on owner-only (mode 0600, folders 0700) on
/// Unix; elsewhere files get the platform's default permissions.
pub(crate) fn owner_only_from_now_on() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Narrows an existing file to owner-only (0600); a file that does not exist is left alone.
/// Unix only: elsewhere files keep the platform's default permissions.
#[cfg(not(unix))]
pub(crate) fn make_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Narrows an existing file to owner-only (0600); a file that does not exist is left alone.
#[cfg(unix)]
pub(crate) fn make_private(path: &Path) -> std::io::Result<()> {
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

/// A path that cannot be used, found before anything is sent or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PathError {
    #[error(
        "{output}: the {what} would overwrite the {other_what} {other}; give the {what} another path"
    )]
    Clash {
        what: &'static str,
        output: PathBuf,
        other_what: &'static str,
        other: PathBuf,
    },
    #[error("{path}: the {what} path is a folder; give a file name")]
    Folder { what: &'static str, path: PathBuf },
    #[error("{path}: the folder for the {what} file does not exist")]
    NoFolder { what: &'static str, path: PathBuf },
    #[error("{path}: cannot write the {what} file in {folder}: {source}")]
    NotWritable {
        what: &'static str,
        path: PathBuf,
        folder: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: the {what} is not a regular file (a pipe, a device or a folder); it has to be \
         read more than once: save it to a file and give that file's path"
    )]
    NotRegular { what: &'static str, path: PathBuf },
    #[error("{path}: cannot read the {what}: {source}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The files of a campaign that no output may replace: the state file and SQLite's and our
/// files beside it, and the input.
pub(crate) fn protected(campaign: &Campaign) -> Vec<(&'static str, PathBuf)> {
    let state = &campaign.state;
    vec![
        ("state file", state.clone()),
        ("state file's journal", sidecar(state, "-wal")),
        ("state file's shared memory", sidecar(state, "-shm")),
        ("state file's lock", sidecar(state, ".lock")),
        ("input", campaign.input.clone()),
    ]
}

/// Refuses an output that is one of `protected` or another output: compared by canonical path
/// (a file that does not exist yet by its canonical folder) and, where both exist, by device
/// and inode, so a symbolic or hard link to the state file is caught too.
pub(crate) fn check_outputs(
    outputs: &[(&'static str, &Path)],
    protected: &[(&'static str, PathBuf)],
) -> Result<(), PathError> {
    for (n, &(what, output)) in outputs.iter().enumerate() {
        let others = protected
            .iter()
            .map(|(w, p)| (*w, p.as_path()))
            .chain(outputs[..n].iter().copied());
        for (other_what, other) in others {
            if same_file(output, other) {
                return Err(PathError::Clash {
                    what,
                    output: output.to_owned(),
                    other_what,
                    other: other.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Whether two paths name the same file (or would, once created).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use crate::files::identity::file_id;
    if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b))
        && let (Some(x), Some(y)) = (file_id(&x), file_id(&y))
    {
        return x == y;
    }
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The canonical path of a file, or of its folder joined with its name when it does not exist.
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(full) = std::fs::canonicalize(path) {
        return Some(full);
    }
    let name = path.file_name()?;
    Some(std::fs::canonicalize(folder_of(path)).ok()?.join(name))
}

/// The folder a file is in (`.` for a bare name).
pub(crate) fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// An output file: not a folder, and its folder exists and takes new files (tried by creating
/// and removing a temporary file there).
pub(crate) fn check_writable(what: &'static str, path: &Path) -> Result<(), PathError> {
    if path.is_dir() {
        return Err(PathError::Folder {
            what,
            path: path.to_owned(),
        });
    }
    let folder = folder_of(path);
    if !folder.is_dir() {
        return Err(PathError::NoFolder {
            what,
            path: path.to_owned(),
        });
    }
    tempfile::Builder::new()
        .prefix(".campaign-probe")
        .tempfile_in(folder)
        .map(drop)
        .map_err(|source| PathError::NotWritable {
            what,
            path: path.to_owned(),
            folder: folder.to_owned(),
            source,
        })
}

/// An input file: it exists and is a regular file (it is read more than once: to check it, to
/// ingest it and to write the results, so a pipe or `/dev/stdin` cannot work).
pub(crate) fn check_regular(what: &'static str, path: &Path) -> Result<(), PathError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(PathError::NotRegular {
            what,
            path: path.to_owned(),
        }),
        Err(source) => Err(PathError::Unreadable {
            what,
            path: path.to_owned(),
            source,
        }),
    }
}

/// Everything `campaign run` checks about its files before the first send: the input is a
/// regular file, the results and the state file can be written where they go, and no output
/// (nor the state file) is the input or the state file.
pub(crate) fn check_run(campaign: &Campaign) -> Result<(), PathError> {
    check_regular("input", &campaign.input)?;
    check_writable("results", &campaign.results)?;
    check_writable("state", &campaign.state)?;
    let input = [("input", campaign.input.clone())];
    let state = &campaign.state;
    check_outputs(
        &[
            ("state file", state.as_path()),
            ("state file's journal", &sidecar(state, "-wal")),
            ("state file's shared memory", &sidecar(state, "-shm")),
            ("state file's lock", &sidecar(state, ".lock")),
            ("simulator's book", &crate::sim::book_path(state)),
        ],
        &input,
    )?;
    check_outputs(&[("results", &campaign.results)], &protected(campaign))
}

/// The same for `campaign export`: the input is a regular file, and neither output is the
/// input, the state file or the other output.
pub(crate) fn check_export(campaign: &Campaign, attempts: Option<&Path>) -> Result<(), PathError> {
    check_regular("input", &campaign.input)?;
    let mut outputs = vec![("results", campaign.results.as_path())];
    outputs.extend(attempts.map(|a| ("attempts log", a)));
    for &(what, path) in &outputs {
        check_writable(what, path)?;
    }
    check_outputs(&outputs, &protected(campaign))
}
