//! Bringing the input file into the ledger, and getting a state file ready for a run.
//!
//! Ingest streams the input once, validates each row, and upserts one `entries` row per
//! identity; a second row with the same identity is a duplicate. When neither the input file
//! nor the campaign params changed since the last complete ingest, it is skipped: resuming costs
//! a few meta reads. When they did change, rows are re-read, but an identity that was already
//! sent keeps its state, so nothing is issued twice because of it.

use rusqlite::params;

use super::{Ledger, LedgerError};
use crate::campaign::Campaign;
use crate::domain::RowStatus;
use crate::input::{self, Header, InputError, InputReader, Prepared};

/// Rows are committed in groups of this many during ingest.
const INGEST_GROUP: u64 = 20_000;

/// What ingest found. The counts are filled in for dry runs only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Data rows in the input.
    pub rows: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// Rows whose identity still has to be sent.
    pub to_send: u64,
    /// Rows whose identity already reached a final state in an earlier run.
    pub already_done: u64,
    /// The input and params were unchanged since the last ingest, which was reused.
    pub reused: bool,
    pub input_changed: bool,
    pub params_changed: bool,
    /// Identities recorded earlier that are no longer in the input (kept, never sent).
    pub orphaned: u64,
    /// The first few invalid rows, as `row N (line L): reason`, when this ingest read the file.
    pub invalid_examples: Vec<String>,
}

/// How many invalid rows an ingest report quotes.
const INVALID_EXAMPLES: usize = 10;

/// Ingest failures.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "{path}: no `{field}` column, and no default for it in [params] of the campaign file: \
         every row would be invalid"
    )]
    MissingParam {
        path: std::path::PathBuf,
        field: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A required param with neither a column nor a default would make every row invalid: say so
/// once, before anything is read.
fn check_required_params(campaign: &Campaign, header: &Header) -> Result<(), IngestError> {
    let api = campaign.api;
    let missing = api.param_fields().find(|field| {
        field.required
            && Some(field.name) != api.idempotency_key
            && !campaign.params.contains_key(field.name)
            && !header.params.iter().any(|(name, _)| *name == field.name)
    });
    match missing {
        Some(field) => Err(IngestError::MissingParam {
            path: campaign.input.clone(),
            field: field.name,
        }),
        None => Ok(()),
    }
}

impl Ledger {
    /// Brings the input into the ledger (or reuses the last ingest when nothing changed).
    ///
    /// A real run (`dry_run` false) gets only what changed: counting rows would cost a pass over
    /// the ledger that resuming must not pay. A dry run gets the counts too, and everything it
    /// did is rolled back.
    pub fn ingest(
        &mut self,
        campaign: &Campaign,
        dry_run: bool,
    ) -> Result<IngestReport, IngestError> {
        let keep = !dry_run;
        let stat = input::quick_stat(&campaign.input).map_err(|source| IngestError::Io {
            path: campaign.input.clone(),
            source,
        })?;
        let params_fingerprint = campaign.params_fingerprint();
        let previous_params = self.meta("params_fingerprint")?;
        let params_changed = previous_params
            .as_ref()
            .is_some_and(|p| *p != params_fingerprint);
        let complete = self.meta("ingested")?.as_deref() == Some("1");
        // Same size, modification time and file as the last complete ingest: resuming costs no
        // pass over the input. (The results writer hashes it in full at the end of the run.)
        if complete && !params_changed && self.meta("input_stat")?.as_deref() == Some(stat.as_str())
        {
            return self.reused(dry_run);
        }
        let fingerprint =
            input::fingerprint(&campaign.input).map_err(|source| IngestError::Io {
                path: campaign.input.clone(),
                source,
            })?;
        let previous_input = self.meta("input_fingerprint")?;
        let input_changed = previous_input.as_ref().is_some_and(|p| *p != fingerprint);
        if complete && !input_changed && !params_changed {
            // Touched but not changed.
            if keep {
                self.set_meta("input_stat", &stat)?;
            }
            return self.reused(dry_run);
        }

        let generation = self.generation()? + 1;
        let mut reader = InputReader::open(&campaign.input, campaign.encoding, campaign.api)?;
        check_required_params(campaign, reader.header())?;
        self.conn.execute_batch("BEGIN").map_err(|e| self.wrap(e))?;
        let mut examples = Vec::new();
        let result = self.ingest_rows(campaign, &mut reader, generation, keep, &mut examples);
        let finish = match (&result, keep) {
            (Ok(entries), true) => {
                self.set_meta("generation_entries", &entries.to_string())?;
                self.set_meta("input_stat", &stat)?;
                self.set_meta("input_fingerprint", &fingerprint)?;
                self.set_meta("params_fingerprint", &params_fingerprint)?;
                self.set_meta("input_path", &campaign.input.display().to_string())?;
                self.set_meta("ingested", "1")?;
                "COMMIT"
            }
            _ => "ROLLBACK",
        };
        let report = match result {
            Ok(_) if dry_run => self.counts(generation),
            Ok(_) => Ok(IngestReport::default()),
            Err(e) => {
                self.conn.execute_batch(finish).map_err(|e| self.wrap(e))?;
                return Err(e);
            }
        };
        let report = report.map(|r| IngestReport {
            input_changed,
            params_changed,
            invalid_examples: examples,
            ..r
        });
        self.conn.execute_batch(finish).map_err(|e| self.wrap(e))?;
        Ok(report?)
    }

    /// The report when the last ingest still holds.
    fn reused(&self, dry_run: bool) -> Result<IngestReport, IngestError> {
        let counted = if dry_run {
            self.counts(self.generation()?)?
        } else {
            IngestReport::default()
        };
        Ok(IngestReport {
            reused: true,
            ..counted
        })
    }

    fn ingest_rows(
        &self,
        campaign: &Campaign,
        reader: &mut InputReader,
        generation: i64,
        keep: bool,
        examples: &mut Vec<String>,
    ) -> Result<u64, IngestError> {
        let wrap = |e| self.wrap(e);
        self.set_meta("ingested", "0")?;
        self.set_meta("gen", &generation.to_string())?;
        self.conn.execute("DELETE FROM rows", []).map_err(wrap)?;
        let header = reader.header().clone();
        self.start_request_keys()?;
        let mut insert_row = self
            .conn
            .prepare_cached(
                "INSERT INTO rows (row, line, kind, entry_id, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(wrap)?;
        let mut entries = 0u64;
        while let Some(next) = reader.next_row() {
            let row = next?;
            let number = row.row as i64;
            match input::prepare(
                &campaign.name,
                campaign.api,
                &header,
                &campaign.params,
                &row.record,
            ) {
                Prepared::Invalid { reason } => {
                    if examples.len() < INVALID_EXAMPLES {
                        examples.push(format!("row {} (line {}): {reason}", row.row, row.line));
                    }
                    insert_row
                        .execute(params![
                            number,
                            row.line as i64,
                            RowStatus::Invalid.as_str(),
                            None::<i64>,
                            reason
                        ])
                        .map_err(wrap)?;
                }
                Prepared::Valid {
                    identity,
                    request_id,
                    object_json,
                } => {
                    let placed = self.place(
                        campaign,
                        generation,
                        number,
                        &identity,
                        request_id,
                        object_json,
                    )?;
                    entries = entries.saturating_add_signed(placed.entries_added);
                    let (kind, entry_id, reason) = (placed.kind, placed.entry_id, placed.reason);
                    insert_row
                        .execute(params![number, row.line as i64, kind, entry_id, reason])
                        .map_err(wrap)?;
                }
            }
            if keep && row.row % INGEST_GROUP == 0 {
                self.conn.execute_batch("COMMIT; BEGIN").map_err(wrap)?;
            }
        }
        Ok(entries)
    }

    /// Row counts of generation `generation`.
    pub fn counts(&self, generation: i64) -> Result<IngestReport, LedgerError> {
        let in_generation = |sql: &str| self.count(sql, [generation]);
        let of_kind =
            |k: RowStatus| self.count("SELECT COUNT(*) FROM rows WHERE kind = ?1", [k.as_str()]);
        Ok(IngestReport {
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
            ..IngestReport::default()
        })
    }

    /// Rows of generation `generation` still to send (read from the pending index, not a scan).
    pub fn pending_count(&self, generation: i64) -> Result<u64, LedgerError> {
        self.count(
            "SELECT COUNT(*) FROM entries WHERE generation = ?1 AND status = 'pending'",
            [generation],
        )
    }

    /// After a crash, rows left in flight may or may not have reached the platform. For an
    /// idempotent API they are simply sent again (same idempotency key); otherwise they become
    /// `uncertain`. Returns how many rows were found in flight.
    pub fn recover_in_flight(&self, idempotent: bool, now: &str) -> Result<u64, LedgerError> {
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
    pub fn reopen(&self, failed: bool, uncertain: bool) -> Result<u64, LedgerError> {
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
