//! Storing one reading of the input (a generation): its rows and their identities, and the
//! record of which input and params it came from; the row counts of a generation; and the
//! resume-time changes of state (crash recovery, reopening at the user's request).
//!
//! The ledger knows neither the campaign file nor the CSV: [`crate::ingest`] reads and
//! prepares the rows and hands them over through a [`NewGeneration`].

use rusqlite::{CachedStatement, params};

use super::requests::KeyOf;
use super::{Ledger, LedgerError};
use crate::domain::RowStatus;

/// Rows are committed in groups of this many while a generation is stored for good.
const COMMIT_EVERY: u64 = 20_000;

/// What the ledger recorded about the last reading of the input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LastIngest {
    /// The last reading ran to its end (and was committed).
    pub(crate) complete: bool,
    /// Size, modification time and file identity of the input it read.
    pub(crate) input_stat: Option<String>,
    /// MD5 of the input it read.
    pub(crate) input_fingerprint: Option<String>,
    /// Digest of the API and campaign params it used.
    pub(crate) params_fingerprint: Option<String>,
}

/// Which input a generation was read from, recorded when it is committed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InputRecord<'a> {
    pub(crate) stat: &'a str,
    pub(crate) fingerprint: &'a str,
    pub(crate) params_fingerprint: &'a str,
    /// The input's path, for messages.
    pub(crate) path: &'a str,
}

/// Row counts of one generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GenerationCounts {
    /// Data rows in the input.
    pub(crate) rows: u64,
    pub(crate) invalid: u64,
    pub(crate) duplicates: u64,
    /// Rows whose identity still has to be sent.
    pub(crate) to_send: u64,
    /// Rows whose identity already reached a final state in an earlier run.
    pub(crate) already_done: u64,
    /// Identities recorded earlier that are no longer in the input (kept, never sent).
    pub(crate) orphaned: u64,
}

/// A generation being stored, inside one transaction. Dropped without [`NewGeneration::commit`],
/// it is rolled back.
pub(crate) struct NewGeneration<'l> {
    ledger: &'l Ledger,
    /// The transaction is still open.
    open: bool,
    generation: i64,
    /// Whether the rows are kept (a run) or only counted and rolled back (a dry run).
    keep: bool,
    entries: u64,
    insert_row: CachedStatement<'l>,
}

impl Ledger {
    /// What the last reading of the input recorded.
    pub(crate) fn last_ingest(&self) -> Result<LastIngest, LedgerError> {
        Ok(LastIngest {
            complete: self.meta("ingested")?.as_deref() == Some("1"),
            input_stat: self.meta("input_stat")?,
            input_fingerprint: self.meta("input_fingerprint")?,
            params_fingerprint: self.meta("params_fingerprint")?,
        })
    }

    /// Records that the input was touched but not changed since the last reading.
    pub(crate) fn touch_input(&self, stat: &str) -> Result<(), LedgerError> {
        self.set_meta("input_stat", stat)
    }

    /// Starts storing a new reading of the input: its rows replace the current ones. With
    /// `keep` false (a dry run) nothing is committed.
    pub(crate) fn begin_generation(&self, keep: bool) -> Result<NewGeneration<'_>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let generation = self.generation()? + 1;
        self.conn.execute_batch("BEGIN").map_err(wrap)?;
        self.set_meta("ingested", "0")?;
        self.set_meta("gen", &generation.to_string())?;
        self.conn.execute("DELETE FROM rows", []).map_err(wrap)?;
        self.start_request_keys()?;
        Ok(NewGeneration {
            ledger: self,
            open: true,
            generation,
            keep,
            entries: 0,
            insert_row: self
                .conn
                .prepare_cached(
                    "INSERT INTO rows (row, line, kind, entry_id, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(wrap)?,
        })
    }

    /// Row counts of generation `generation`.
    pub(crate) fn counts(&self, generation: i64) -> Result<GenerationCounts, LedgerError> {
        let in_generation = |sql: &str| self.count(sql, [generation]);
        let of_kind =
            |k: RowStatus| self.count("SELECT COUNT(*) FROM rows WHERE kind = ?1", [k.as_str()]);
        Ok(GenerationCounts {
            rows: self.count("SELECT COUNT(*) FROM rows", [])?,
            invalid: of_kind(RowStatus::Invalid)?,
            duplicates: of_kind(RowStatus::Duplicate)?,
            to_send: in_generation(
                "SELECT COUNT(*) FROM entries WHERE generation = ?1 AND status IN ('pending', 'inflight')",
            )?,
            already_done: in_generation(
                "SELECT COUNT(*) FROM entries WHERE generation = ?1 AND status IN ('issued', 'failed', 'uncertain')",
            )?,
            orphaned: in_generation("SELECT COUNT(*) FROM entries WHERE generation <> ?1")?,
        })
    }

    /// Rows of generation `generation` still to send (read from the pending index, not a scan).
    pub(crate) fn pending_count(&self, generation: i64) -> Result<u64, LedgerError> {
        self.count(
            "SELECT COUNT(*) FROM entries WHERE generation = ?1 AND status = 'pending'",
            [generation],
        )
    }

    /// After a crash, rows left in flight may or may not have reached the platform. For an
    /// idempotent API they are simply sent again (same idempotency key); otherwise they become
    /// `uncertain`. Returns how many rows were found in flight.
    pub(crate) fn recover_in_flight(
        &self,
        idempotent: bool,
        now: &str,
    ) -> Result<u64, LedgerError> {
        let (to, message) = if idempotent {
            (
                RowStatus::Pending,
                "in flight when the previous run stopped; sent again with the same request_id",
            )
        } else {
            (
                RowStatus::Uncertain,
                "in flight when the previous run stopped: the platform may have issued it; \
                 check, then use --resend-uncertain to send it again",
            )
        };
        self.conn
            .execute(
                "UPDATE entries SET status = ?1, error_code = 'interrupted', error_sub_code = NULL,
                 error_message = ?2, finished_at = CASE WHEN ?1 = 'uncertain' THEN ?3 END
                 WHERE status = 'inflight'",
                params![to, message, now],
            )
            .map(|n| n as u64)
            .map_err(|e| self.wrap(e))
    }

    /// Puts final rows back to pending at the user's request (`--retry-failed`,
    /// `--resend-uncertain`). Only rows of the current input count. Returns how many rows were
    /// reopened.
    pub(crate) fn reopen(&self, failed: bool, uncertain: bool) -> Result<u64, LedgerError> {
        let generation = self.generation()?;
        let mut reopened = 0;
        for (wanted, state) in [
            (failed, RowStatus::Failed),
            (uncertain, RowStatus::Uncertain),
        ] {
            if wanted {
                reopened += self
                    .conn
                    .execute(
                        "UPDATE entries SET status = 'pending', finished_at = NULL
                         WHERE status = ?1 AND generation = ?2",
                        params![state, generation],
                    )
                    .map_err(|e| self.wrap(e))? as u64;
            }
        }
        Ok(reopened)
    }
}

impl NewGeneration<'_> {
    /// Stores an invalid row and why.
    pub(crate) fn invalid(&mut self, row: u64, line: u64, reason: &str) -> Result<(), LedgerError> {
        self.insert_row
            .execute(params![
                row as i64,
                line as i64,
                RowStatus::Invalid.as_str(),
                None::<i64>,
                reason
            ])
            .map_err(|e| self.ledger.wrap(e))?;
        self.checkpoint(row)
    }

    /// Stores a valid row: its identity's entry (created pending, or carried over from an
    /// earlier generation with its state), or a duplicate of an earlier row of this input with
    /// the same identity or the same request (`key_of` gives a payload's request key).
    pub(crate) fn valid(
        &mut self,
        row: u64,
        line: u64,
        identity: &str,
        request_id: Option<String>,
        payload: String,
        key_of: &KeyOf<'_>,
    ) -> Result<(), LedgerError> {
        let number = row as i64;
        let placed = self.ledger.place(
            key_of,
            self.generation,
            number,
            identity,
            request_id,
            payload,
        )?;
        self.entries = self.entries.saturating_add_signed(placed.entries_added);
        self.insert_row
            .execute(params![
                number,
                line as i64,
                placed.kind,
                placed.entry_id,
                placed.reason
            ])
            .map_err(|e| self.ledger.wrap(e))?;
        self.checkpoint(row)
    }

    /// A run commits every few thousand rows, so a huge input does not grow one transaction.
    fn checkpoint(&self, row: u64) -> Result<(), LedgerError> {
        if self.keep && row.is_multiple_of(COMMIT_EVERY) {
            self.ledger
                .conn
                .execute_batch("COMMIT; BEGIN")
                .map_err(|e| self.ledger.wrap(e))?;
        }
        Ok(())
    }

    /// Row counts of the generation as stored so far.
    pub(crate) fn counts(&self) -> Result<GenerationCounts, LedgerError> {
        self.ledger.counts(self.generation)
    }

    /// Commits the generation (a run), recording which input it was read from; a dry run's
    /// generation is rolled back instead.
    pub(crate) fn commit(mut self, input: &InputRecord<'_>) -> Result<(), LedgerError> {
        if !self.keep {
            return self.rollback();
        }
        let ledger = self.ledger;
        ledger.set_meta("generation_entries", &self.entries.to_string())?;
        ledger.set_meta("input_stat", input.stat)?;
        ledger.set_meta("input_fingerprint", input.fingerprint)?;
        ledger.set_meta("params_fingerprint", input.params_fingerprint)?;
        ledger.set_meta("input_path", input.path)?;
        ledger.set_meta("ingested", "1")?;
        self.end("COMMIT")
    }

    /// Undoes everything stored since [`Ledger::begin_generation`].
    pub(crate) fn rollback(mut self) -> Result<(), LedgerError> {
        self.end("ROLLBACK")
    }

    fn end(&mut self, how: &str) -> Result<(), LedgerError> {
        self.open = false;
        self.ledger
            .conn
            .execute_batch(how)
            .map_err(|e| self.ledger.wrap(e))
    }
}

impl Drop for NewGeneration<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.end("ROLLBACK");
        }
    }
}
