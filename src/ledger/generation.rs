//! Storing one reading of the input (a generation): its rows and their identities, and the
//! record of which input and params it came from; the row counts of a generation; and the
//! resume-time changes of state (crash recovery, reopening at the user's request).
//!
//! The ledger knows neither the campaign file nor the CSV: [`crate::ingest`] reads and
//! prepares the rows and hands them over through a [`NewGeneration`].

use rusqlite::{CachedStatement, params};

use super::requests::{KeyOf, Request};
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

/// Where [`GenerationShape`] is kept in `meta`.
const SHAPE_KEY: &str = "generation_shape";

/// What a committed generation holds, counted while it was stored and kept in `meta`, so that
/// `status` and the results need no scan of a large ledger to know it. Rows never change kind
/// after ingest, and identities become orphaned only at ingest, so these stay true until the
/// next generation is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GenerationShape {
    /// Data rows in the input.
    pub(crate) rows: u64,
    pub(crate) invalid: u64,
    pub(crate) duplicates: u64,
    /// Rows with an identity of their own (one entry each).
    pub(crate) entries: u64,
    /// Identities recorded earlier that are no longer in the input.
    pub(crate) orphaned: u64,
}

impl GenerationShape {
    fn to_meta(self) -> String {
        format!(
            "rows={} invalid={} duplicates={} entries={} orphaned={}",
            self.rows, self.invalid, self.duplicates, self.entries, self.orphaned
        )
    }

    fn from_meta(text: &str) -> Option<GenerationShape> {
        let mut shape = GenerationShape::default();
        let mut seen = 0;
        for field in text.split(' ') {
            let (key, value) = field.split_once('=')?;
            let value = value.parse().ok()?;
            let slot = match key {
                "rows" => &mut shape.rows,
                "invalid" => &mut shape.invalid,
                "duplicates" => &mut shape.duplicates,
                "entries" => &mut shape.entries,
                "orphaned" => &mut shape.orphaned,
                _ => return None,
            };
            *slot = value;
            seen += 1;
        }
        (seen == 5 && shape.rows == shape.invalid + shape.duplicates + shape.entries)
            .then_some(shape)
    }
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
    /// Rows stored so far, and how many of them are invalid or duplicates.
    rows: u64,
    invalid: u64,
    duplicates: u64,
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
        // New rows: the results file shows the old ones (inserts have no trigger, for speed).
        self.conn
            .execute("DELETE FROM meta WHERE key = 'results_fresh'", [])
            .map_err(wrap)?;
        self.conn.execute("DELETE FROM rows", []).map_err(wrap)?;
        Ok(NewGeneration {
            ledger: self,
            open: true,
            generation,
            keep,
            entries: 0,
            rows: 0,
            invalid: 0,
            duplicates: 0,
            insert_row: self
                .conn
                .prepare_cached(
                    "INSERT INTO rows (row, line, kind, entry_id, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(wrap)?,
        })
    }

    /// What the current generation holds, as counted when it was stored; `None` while a
    /// reading is incomplete, or for a ledger written before these counts were kept.
    pub(crate) fn shape(&self) -> Result<Option<GenerationShape>, LedgerError> {
        if self.meta("ingested")?.as_deref() != Some("1") {
            return Ok(None);
        }
        Ok(self
            .meta(SHAPE_KEY)?
            .as_deref()
            .and_then(GenerationShape::from_meta))
    }

    /// Row counts of generation `generation`.
    pub(crate) fn counts(&self, generation: i64) -> Result<GenerationCounts, LedgerError> {
        if generation == self.generation()?
            && let Some(shape) = self.shape()?
        {
            let to_send = self.pending_count(generation)? + self.in_flight()?;
            return Ok(GenerationCounts {
                rows: shape.rows,
                invalid: shape.invalid,
                duplicates: shape.duplicates,
                to_send,
                already_done: shape.entries.saturating_sub(to_send),
                orphaned: shape.orphaned,
            });
        }
        self.counts_by_scan(generation)
    }

    /// Keeps the current generation's [`GenerationShape`] for a ledger stored before these
    /// counts were kept (one pass over it, once).
    pub(crate) fn keep_shape(&self) -> Result<(), LedgerError> {
        if self.meta("ingested")?.as_deref() != Some("1") || self.shape()?.is_some() {
            return Ok(());
        }
        let counts = self.counts_by_scan(self.generation()?)?;
        let shape = GenerationShape {
            rows: counts.rows,
            invalid: counts.invalid,
            duplicates: counts.duplicates,
            entries: counts.rows - counts.invalid - counts.duplicates,
            orphaned: counts.orphaned,
        };
        self.set_meta(SHAPE_KEY, &shape.to_meta())
    }

    /// [`Ledger::counts`] by reading every row.
    fn counts_by_scan(&self, generation: i64) -> Result<GenerationCounts, LedgerError> {
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
        self.rows += 1;
        self.invalid += 1;
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
        request: Request<'_>,
        key_of: &KeyOf<'_>,
    ) -> Result<(), LedgerError> {
        let number = row as i64;
        let placed = self
            .ledger
            .place(key_of, self.generation, number, identity, request)?;
        self.entries = self.entries.saturating_add_signed(placed.entries_added);
        self.rows += 1;
        if placed.kind == RowStatus::Duplicate.as_str() {
            self.duplicates += 1;
        }
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
        let shape = GenerationShape {
            rows: self.rows,
            invalid: self.invalid,
            duplicates: self.duplicates,
            entries: self.entries,
            orphaned: ledger
                .count("SELECT COUNT(*) FROM entries", [])?
                .saturating_sub(self.entries),
        };
        // Read by earlier versions (this one reads the shape), so that one run on a ledger
        // handed back to them still counts its failure rate right.
        ledger.set_meta("generation_entries", &self.entries.to_string())?;
        ledger.set_meta(SHAPE_KEY, &shape.to_meta())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(identity: &str, payload: &str, _: Option<&str>) -> [u8; 16] {
        let mut key = [0; 16];
        for (i, b) in identity.bytes().chain(payload.bytes()).enumerate() {
            key[i % 16] ^= b;
        }
        key
    }

    /// Stores `ids` as one reading of the input: `""` is an invalid row.
    fn ingest(ledger: &Ledger, ids: &[&str]) {
        let mut generation = ledger.begin_generation(true).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let row = i as u64 + 1;
            if id.is_empty() {
                generation
                    .invalid(row, row + 1, "open_id is empty")
                    .unwrap();
            } else {
                let object_json = format!("{{\"open_id\":\"{id}\"}}");
                let request = Request {
                    id: None,
                    key: key_of(id, &object_json, None),
                    object_json: &object_json,
                };
                generation
                    .valid(row, row + 1, id, request, &key_of)
                    .unwrap();
            }
        }
        generation
            .commit(&InputRecord {
                stat: "s",
                fingerprint: "f",
                params_fingerprint: "p",
                path: "in.csv",
            })
            .unwrap();
    }

    fn set_status(ledger: &Ledger, identity: &str, status: &str) {
        ledger
            .conn
            .execute(
                "UPDATE entries SET status = ?2 WHERE identity = ?1",
                params![identity, status],
            )
            .unwrap();
    }

    /// The counts kept at ingest agree with a full scan, whatever the rows' states.
    #[test]
    fn kept_counts_agree_with_a_scan() {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        ingest(&ledger, &["a", "b", "", "a", "c", "d", "e", ""]);
        let check = |ledger: &Ledger| {
            let generation = ledger.generation().unwrap();
            assert!(ledger.shape().unwrap().is_some());
            assert_eq!(
                ledger.status_counts().unwrap(),
                ledger.status_counts_by_scan().unwrap()
            );
            assert_eq!(
                ledger.counts(generation).unwrap(),
                ledger.counts_by_scan(generation).unwrap()
            );
        };
        check(&ledger);
        set_status(&ledger, "a", "issued");
        set_status(&ledger, "b", "failed");
        set_status(&ledger, "c", "uncertain");
        set_status(&ledger, "d", "inflight");
        check(&ledger);
        let counts = ledger.status_counts().unwrap();
        assert_eq!(
            (
                counts.issued,
                counts.failed,
                counts.uncertain,
                counts.pending
            ),
            (1, 1, 1, 2)
        );
        assert_eq!((counts.invalid, counts.duplicate), (2, 1));
        // A new reading without `a` and `e`: they are orphaned, the rest carried over.
        ingest(&ledger, &["b", "c", "d", "f", "f"]);
        check(&ledger);
        assert_eq!(ledger.shape().unwrap().unwrap().orphaned, 2);
    }

    #[test]
    fn counts_are_not_trusted_while_a_reading_is_incomplete() {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        ingest(&ledger, &["a", "b"]);
        let generation = ledger.begin_generation(true).unwrap();
        assert_eq!(generation.ledger.shape().unwrap(), None);
        generation.rollback().unwrap();
        assert!(ledger.shape().unwrap().is_some());
    }

    #[test]
    fn a_damaged_shape_is_ignored() {
        for text in [
            "",
            "rows=3 invalid=1 duplicates=1 entries=1",
            "rows=3 invalid=1 duplicates=1 entries=2 orphaned=0",
            "rows=3 invalid=x duplicates=1 entries=1 orphaned=0",
        ] {
            assert_eq!(GenerationShape::from_meta(text), None, "{text}");
        }
        let shape = GenerationShape {
            rows: 5,
            invalid: 1,
            duplicates: 1,
            entries: 3,
            orphaned: 7,
        };
        assert_eq!(GenerationShape::from_meta(&shape.to_meta()), Some(shape));
    }
}
