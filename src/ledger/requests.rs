//! Duplicates by effective request, found during ingest.
//!
//! The ledger keys rows by identity (the recipient and the row's own cells), so that changing a
//! campaign default never makes an issued row look new. Within one input, though, two rows that
//! send the same request (the same recipient and resolved params, however the cells are
//! spelled: see [`crate::input::request_key`]) are one row sent twice. So ingest keeps, per
//! request key, the row that holds it, and every other row with that key is a `duplicate`.
//!
//! A row already sent counts with the request it was sent with (its payload is frozen), and it
//! wins the key over a row never sent, wherever each is in the input: a row never sent whose
//! request equals one already issued is a duplicate, never sent. Two rows that both reached a
//! final state before stay as they are (nothing of theirs is sent again).

use rusqlite::{OptionalExtension, params};

use super::{ENTRY_KIND, Ledger, LedgerError};
use crate::domain::RowStatus;

/// The request key of a payload: `(identity, payload, request_id it was sent with)` to the key.
/// Computed by the caller, who knows the API and the campaign (see `crate::input::request_key`).
pub(crate) type KeyOf<'a> = dyn Fn(&str, &str, Option<&str>) -> [u8; 16] + 'a;

/// A valid row's request: its idempotency key (if the API has one), the object param as it
/// goes on the wire, and its request key.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: Option<String>,
    pub(crate) object_json: String,
    pub(crate) key: [u8; 16],
}

/// Where a valid row goes.
#[derive(Debug)]
pub(crate) struct Placed {
    /// `entry` or `duplicate`.
    pub(crate) kind: &'static str,
    pub(crate) entry_id: i64,
    pub(crate) reason: Option<String>,
    /// How the count of this generation's entries changes (+1 new, 0, or 0 when a new holder
    /// replaced a retired one).
    pub(crate) entries_added: i64,
}

/// How far an identity got: 0 never sent, 1 attempted but not final, 2 final.
fn rank(status: &str, attempts: i64) -> i64 {
    match RowStatus::parse(status) {
        Some(RowStatus::Issued | RowStatus::Uncertain | RowStatus::Failed) => 2,
        _ if attempts > 0 || status != RowStatus::Pending.as_str() => 1,
        _ => 0,
    }
}

impl Ledger {
    /// Starts an ingest's table of request keys (temporary: on disk, not in memory).
    pub(crate) fn start_request_keys(&self) -> Result<(), LedgerError> {
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS request_keys (
                     key BLOB PRIMARY KEY, row INTEGER NOT NULL, entry_id INTEGER NOT NULL,
                     rank INTEGER NOT NULL) WITHOUT ROWID;
                 DELETE FROM request_keys;",
            )
            .map_err(|e| self.wrap(e))
    }

    /// Places valid row `row` of generation `generation`: its own entry, or a duplicate of the
    /// row that holds the same identity or the same request.
    pub(crate) fn place(
        &self,
        key_of: &KeyOf<'_>,
        generation: i64,
        row: i64,
        identity: &str,
        request: Request,
    ) -> Result<Placed, LedgerError> {
        let Request {
            id: request_id,
            object_json,
            key: own_key,
        } = request;
        let wrap = |e| self.wrap(e);
        type Existing = (i64, i64, i64, String, i64, String, Option<String>);
        let existing: Option<Existing> = self
            .conn
            .prepare_cached(
                "SELECT id, generation, row, status, attempts, payload, request_id FROM entries
                 WHERE identity = ?1",
            )
            .map_err(wrap)?
            .query_row([identity], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
            .map_err(wrap)?;
        if let Some((id, entry_generation, earlier, ..)) = &existing
            && *entry_generation == generation
        {
            return Ok(Placed {
                kind: RowStatus::Duplicate.as_str(),
                entry_id: *id,
                reason: Some(format!("same recipient and params as row {earlier}")),
                entries_added: 0,
            });
        }
        // A row sent before counts with the request it was sent with.
        let (rank, key) = match existing {
            Some((_, _, _, status, attempts, payload, rid)) if rank(&status, attempts) > 0 => (
                rank(&status, attempts),
                key_of(identity, &payload, rid.as_deref()),
            ),
            _ => (0, own_key),
        };
        let holder: Option<(i64, i64, i64)> = self
            .conn
            .prepare_cached("SELECT row, entry_id, rank FROM request_keys WHERE key = ?1")
            .map_err(wrap)?
            .query_row([&key[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(wrap)?;
        match holder {
            None => {
                let id = self.upsert(identity, generation, row, &object_json, request_id)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO request_keys (key, row, entry_id, rank) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(wrap)?
                    .execute(params![&key[..], row, id, rank])
                    .map_err(wrap)?;
                Ok(Placed {
                    kind: ENTRY_KIND,
                    entry_id: id,
                    reason: None,
                    entries_added: 1,
                })
            }
            // Both reached a final state before: history, nothing is sent again.
            Some((_, _, 2)) if rank == 2 => {
                let id = self.upsert(identity, generation, row, &object_json, request_id)?;
                Ok(Placed {
                    kind: ENTRY_KIND,
                    entry_id: id,
                    reason: None,
                    entries_added: 1,
                })
            }
            Some((held_row, held_entry, held_rank)) if rank > held_rank => {
                let id = self.upsert(identity, generation, row, &object_json, request_id)?;
                let reason = format!("sends the same request as row {row}, which was sent before");
                self.conn
                    .execute(
                        "UPDATE rows SET kind = ?1, entry_id = ?2, reason = ?3
                         WHERE entry_id = ?4 AND (row = ?5 OR kind = ?1)",
                        params![
                            RowStatus::Duplicate.as_str(),
                            id,
                            reason,
                            held_entry,
                            held_row
                        ],
                    )
                    .map_err(wrap)?;
                self.retire(held_entry)?;
                self.conn
                    .execute(
                        "UPDATE request_keys SET row = ?2, entry_id = ?3, rank = ?4 WHERE key = ?1",
                        params![&key[..], row, id, rank],
                    )
                    .map_err(wrap)?;
                Ok(Placed {
                    kind: ENTRY_KIND,
                    entry_id: id,
                    reason: None,
                    entries_added: 0,
                })
            }
            Some((held_row, held_entry, _)) => Ok(Placed {
                kind: RowStatus::Duplicate.as_str(),
                entry_id: held_entry,
                reason: Some(format!(
                    "sends the same request as row {held_row} (same recipient and resolved params)"
                )),
                entries_added: 0,
            }),
        }
    }

    /// Inserts the identity, or moves an existing one into this generation (keeping the payload
    /// it was sent with, if it was).
    fn upsert(
        &self,
        identity: &str,
        generation: i64,
        row: i64,
        object_json: &str,
        request_id: Option<String>,
    ) -> Result<i64, LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO entries (identity, generation, row, payload, request_id, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending')
                 ON CONFLICT (identity) DO UPDATE SET generation = excluded.generation, row = excluded.row,
                     payload = CASE WHEN status = 'pending' AND attempts = 0
                                    THEN excluded.payload ELSE payload END
                 RETURNING id",
            )
            .map_err(|e| self.wrap(e))?
            .query_row(
                params![identity, generation, row, object_json, request_id],
                |r| r.get(0),
            )
            .map_err(|e| self.wrap(e))
    }

    /// Takes an identity that lost its request key out of this generation: deleted when it was
    /// never attempted, else moved to generation 0 (kept, never sent).
    fn retire(&self, entry_id: i64) -> Result<(), LedgerError> {
        let deleted = self
            .conn
            .execute(
                "DELETE FROM entries WHERE id = ?1 AND status = 'pending' AND attempts = 0
                 AND NOT EXISTS (SELECT 1 FROM attempts WHERE entry_id = ?1)",
                [entry_id],
            )
            .map_err(|e| self.wrap(e))?;
        if deleted == 0 {
            self.conn
                .execute(
                    "UPDATE entries SET generation = 0 WHERE id = ?1",
                    [entry_id],
                )
                .map_err(|e| self.wrap(e))?;
        }
        Ok(())
    }
}
