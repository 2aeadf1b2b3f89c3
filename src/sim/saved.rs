//! The in-process simulator's book on disk (`<state>.sim.json`): the certificates it issued and
//! the per-identity issue counts, so a `url = "sim"` campaign's next run meets a gateway that
//! remembers the earlier runs, as a real one does.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One certificate as saved.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedCertificate {
    pub code: String,
    pub open_id: String,
    pub out_id: Value,
    pub channel: Value,
    pub biz_code: Option<String>,
    /// When it was issued, on the gateway's clock, in milliseconds since 1970 (UTC).
    pub created_ms: i64,
}

/// What the simulator keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SavedBook {
    pub certificates: Vec<SavedCertificate>,
    /// Certificates issued per identity, for duplicate detection.
    pub issued_by_identity: Vec<(String, u32)>,
    pub issued: u64,
    pub duplicates: u64,
}

/// The book file beside the state file `state`.
pub(crate) fn book_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".sim.json");
    PathBuf::from(name)
}

/// Reads the book at `path`; an absent file is an empty book.
pub(crate) fn load(path: &Path) -> anyhow::Result<SavedBook> {
    use anyhow::Context;
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a simulator book", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedBook::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the book to `path` atomically.
pub(crate) fn save(path: &Path, book: &SavedBook) -> std::io::Result<()> {
    let mut file = crate::files::atomic::AtomicFile::create(path)?;
    serde_json::to_writer(&mut file, book)?;
    file.flush()?;
    file.commit()
}
