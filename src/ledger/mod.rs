//! The ledger: the SQLite state file that is the source of truth for a campaign.
//!
//! It records every input row, every identity's sending state (exactly one `entries` row per
//! identity, so an identity can never be issued twice), every attempt and every run. During a
//! run one thread owns the connection ([`writer`]); everything else talks to it over a channel.

pub(crate) mod budget;
pub(crate) mod generation;
pub(crate) mod guard;
pub(crate) mod query;
pub(crate) mod reconcile;
pub(crate) mod report;
mod requests;

pub(crate) use requests::Request;
pub(crate) mod timeline;
pub(crate) mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per identity: the state that must change at most once from pending to issued.
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    generation INTEGER NOT NULL,
    row INTEGER NOT NULL,
    payload TEXT NOT NULL,
    request_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    issued_id TEXT,
    detail TEXT,
    error_code TEXT,
    error_sub_code TEXT,
    error_message TEXT,
    top_request_id TEXT,
    finished_at TEXT
);
-- Partial indexes: resuming finds the remaining work without touching finished rows.
CREATE INDEX IF NOT EXISTS entries_pending ON entries (generation, row) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS entries_inflight ON entries (id) WHERE status = 'inflight';
CREATE INDEX IF NOT EXISTS entries_failed ON entries (generation) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS entries_uncertain ON entries (generation) WHERE status = 'uncertain';
-- The current input file, one row per data row, in input order.
CREATE TABLE IF NOT EXISTS rows (
    row INTEGER PRIMARY KEY,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    entry_id INTEGER,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    entry_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    class TEXT NOT NULL,
    code TEXT,
    sub_code TEXT,
    message TEXT,
    top_request_id TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS attempts_entry ON attempts (entry_id, attempt);
-- Partial: `status` groups the unsuccessful attempts without reading the issued ones.
CREATE INDEX IF NOT EXISTS attempts_unsuccessful ON attempts (class, code, sub_code)
    WHERE class <> 'issued';
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    ending TEXT,
    sent INTEGER NOT NULL DEFAULT 0,
    issued INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    uncertain INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    throttle_events INTEGER NOT NULL DEFAULT 0,
    elapsed_ms INTEGER NOT NULL DEFAULT 0
);
-- The results file on disk shows the ledger as it is only until an identity changes state.
CREATE TRIGGER IF NOT EXISTS entries_update_results AFTER UPDATE ON entries
    BEGIN DELETE FROM meta WHERE key = 'results_fresh'; END;
CREATE TRIGGER IF NOT EXISTS entries_delete_results AFTER DELETE ON entries
    BEGIN DELETE FROM meta WHERE key = 'results_fresh'; END;
-- Periods when the gateway could not be reached and the run paused. `ending`: recovered, halted
-- (longer than max_outage_s) or interrupted; NULL with ended_at while it goes on, or when the
-- run was killed during it.
CREATE TABLE IF NOT EXISTS outages (
    run_id INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    ending TEXT,
    PRIMARY KEY (run_id, started_at)
);
";

/// `rows.kind` of a row that has an identity (an `entries` row, whose `status` is the row's
/// [`RowStatus`](crate::domain::RowStatus)). Rows without one have the kind `invalid` or
/// `duplicate`, spelled as their status. The status words in the SQL of this module are the
/// spellings of `RowStatus::as_str`; literals, so that SQLite can use the partial indexes.
pub(crate) const ENTRY_KIND: &str = "entry";

/// Ledger errors, each naming the state file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LedgerError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot open the lock file: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: another `campaign run` is using this state file right now; wait for it to finish \
         (or stop it) and run again"
    )]
    Busy { path: PathBuf },
    #[error(
        "{path}: this state file belongs to campaign {found:?}, not {expected:?}; use another --state"
    )]
    OtherCampaign {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{path}: this state file records campaign sends through {found}, but the campaign file \
         now says api = {expected:?}; a ledger belongs to one campaign and one API (its rows, \
         request ids and outcomes mean nothing to another): put `api` back, or give this \
         campaign a new name and state file"
    )]
    OtherApi {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{path}: no state file: nothing has been run for this campaign yet (if it did run, the \
         state file was lost: restore it from a backup, or `campaign rebuild` it from the last \
         results file)"
    )]
    Missing { path: PathBuf },
}

/// An open ledger.
pub(crate) struct Ledger {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// Holds the exclusive right to run a campaign on a state file; released on drop.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

/// The lock file beside a state file.
pub(crate) fn lock_path(state: &Path) -> PathBuf {
    sidecar(state, ".lock")
}

/// A file beside the state file that belongs to it: `-wal`, `-shm` (SQLite's) or `.lock`.
pub(crate) fn sidecar(state: &Path, suffix: &str) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the run lock of a state file, or says that another run holds it.
pub(crate) fn lock(state: &Path) -> Result<RunLock, LedgerError> {
    let path = lock_path(state);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LedgerError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Busy {
            path: state.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(LedgerError::Lock { path, source }),
    }
}

/// Whether a run holds the state file right now (without taking the lock for long).
pub(crate) fn is_locked(state: &Path) -> bool {
    match File::options().write(true).open(lock_path(state)) {
        Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

impl Ledger {
    /// Opens (creating if needed) the state file for `campaign`, checking it belongs to it.
    pub(crate) fn open(path: &Path, campaign: &str, api: &str) -> Result<Ledger, LedgerError> {
        // Older versions created it readable by everyone; it holds certificate codes.
        for file in [
            path.to_owned(),
            sidecar(path, "-wal"),
            sidecar(path, "-shm"),
        ] {
            crate::paths::make_private(&file).map_err(|source| LedgerError::Io {
                path: file.clone(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| sqlite(path, source))?;
        let ledger = Ledger {
            conn,
            path: path.to_owned(),
        };
        ledger.init(campaign, api)?;
        Ok(ledger)
    }

    /// An in-memory ledger, for tests.
    #[cfg(test)]
    pub(crate) fn in_memory(campaign: &str, api: &str) -> Result<Ledger, LedgerError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| sqlite(&path, source))?;
        let ledger = Ledger { conn, path };
        ledger.init(campaign, api)?;
        Ok(ledger)
    }

    /// Opens an existing state file read-only, for `status`, `export` and `verify`; works while a
    /// run is writing it.
    pub(crate) fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Missing {
                path: path.to_owned(),
            });
        }
        // One connection per thread: SQLite's own locking of the connection is not needed.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|source| sqlite(path, source))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|source| sqlite(path, source))?;
        Ok(Ledger {
            conn,
            path: path.to_owned(),
        })
    }

    fn init(&self, campaign: &str, api: &str) -> Result<(), LedgerError> {
        self.conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(|source| sqlite(&self.path, source))?;
        self.create(campaign, api)
    }

    /// Creates the schema if needed and checks the file belongs to `campaign`.
    fn create(&self, campaign: &str, api: &str) -> Result<(), LedgerError> {
        let wrap = |source| sqlite(&self.path, source);
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        self.conn.execute_batch(SCHEMA).map_err(wrap)?;
        self.conn.execute_batch(reconcile::SCHEMA).map_err(wrap)?;
        match self.meta("campaign")? {
            Some(found) if found != campaign => {
                return Err(LedgerError::OtherCampaign {
                    path: self.path.clone(),
                    found,
                    expected: campaign.to_owned(),
                });
            }
            Some(_) => match self.meta("api")? {
                Some(found) if found != api => {
                    return Err(LedgerError::OtherApi {
                        path: self.path.clone(),
                        found,
                        expected: api.to_owned(),
                    });
                }
                Some(_) => {}
                None => self.set_meta("api", api)?,
            },
            None => {
                self.set_meta("campaign", campaign)?;
                self.set_meta("api", api)?;
                self.set_meta("schema_version", SCHEMA_VERSION)?;
            }
        }
        Ok(())
    }

    /// Reads a `meta` value.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|source| sqlite(&self.path, source))
    }

    /// Writes a `meta` value.
    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|source| sqlite(&self.path, source))
    }

    /// The current ingest generation (0 before the first ingest).
    pub(crate) fn generation(&self) -> Result<i64, LedgerError> {
        Ok(self.meta("gen")?.and_then(|g| g.parse().ok()).unwrap_or(0))
    }

    /// Runs a `SELECT COUNT(*) ...` query.
    pub(crate) fn count(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<u64, LedgerError> {
        self.conn
            .query_row(sql, params, |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.wrap(e))
    }

    pub(crate) fn wrap(&self, source: rusqlite::Error) -> LedgerError {
        sqlite(&self.path, source)
    }
}

pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> LedgerError {
    LedgerError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_state_file_of_another_campaign() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Ledger::open(&path, "a", "m").unwrap();
        let err = Ledger::open(&path, "b", "m").err().unwrap();
        assert!(matches!(err, LedgerError::OtherCampaign { .. }), "{err}");
    }

    #[test]
    fn refuses_a_state_file_of_another_api() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Ledger::open(&path, "a", "m").unwrap();
        let err = Ledger::open(&path, "a", "n").err().unwrap();
        assert!(matches!(err, LedgerError::OtherApi { .. }), "{err}");
        Ledger::open(&path, "a", "m").unwrap();
    }

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let first = lock(&path).unwrap();
        assert!(is_locked(&path));
        assert!(matches!(lock(&path), Err(LedgerError::Busy { .. })));
        drop(first);
        assert!(!is_locked(&path));
        lock(&path).unwrap();
    }
}
