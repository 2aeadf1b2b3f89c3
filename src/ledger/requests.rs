//! Duplicates by effective request, found during ingest.
//!
//! The ledger keys rows by identity (the recipient and the row's own cells), so that changing a
//! campaign default never makes an issued row look new. Within one input, though, two rows that
//! send the same request (the same recipient and resolved params, however the cells are
//! spelled: see [`crate::input::request_key`]) are one row sent twice. So ingest finds, per
//! request key, the row that holds it, and every other row with that key is a `duplicate`.
//! A request holds its recipient, so the rows that could send the same request are the entries
//! of the same recipient: one range of the identity index (whose identities begin with the
//! recipient), usually empty. No table of keys is kept, and a row costs one index lookup.
//!
//! A row already sent counts with the request it was sent with (its payload is frozen), and it
//! wins the key over a row never sent, wherever each is in the input: a row never sent whose
//! request equals one already issued is a duplicate, never sent. Two rows that both reached a
//! final state before stay as they are (nothing of theirs is sent again).

use rusqlite::params;

use super::{ENTRY_KIND, Ledger, LedgerError};
use crate::domain::RowStatus;

/// The request key of a payload: `(identity, payload, request_id it was sent with)` to the key.
/// Computed by the caller, who knows the API and the campaign (see `crate::input::request_key`).
pub(crate) type KeyOf<'a> = dyn Fn(&str, &str, Option<&str>) -> [u8; 16] + 'a;

/// A valid row's request: its idempotency key (if the API has one), the object param as it
/// goes on the wire, and its request key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) object_json: &'a str,
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

/// An entry of the same recipient as the row being placed (its identity begins with the same
/// recipient pair).
#[derive(Debug)]
struct Kin {
    id: i64,
    generation: i64,
    row: i64,
    identity: String,
    rank: i64,
    payload: String,
    request_id: Option<String>,
}

/// The recipient pair an identity begins with (`open_id=…`): values are escaped, so the first
/// `&` ends it.
fn recipient_of(identity: &str) -> &str {
    identity.split('&').next().unwrap_or(identity)
}

impl Ledger {
    /// The entries whose recipient is `identity`'s: one range of the identity index, usually
    /// empty or the identity itself. Since a request holds its recipient, two rows can send
    /// the same request only if they are for the same recipient, so these are all the rows
    /// that could.
    fn kin(&self, identity: &str) -> Result<Vec<Kin>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let recipient = recipient_of(identity);
        // Every identity that starts with the recipient pair sorts in [pair, pair + "'"):
        // `'` follows `&`, the separator. Others in the range (a longer value) are dropped.
        let end = format!("{recipient}'");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, generation, row, identity, status, attempts, payload, request_id
                 FROM entries WHERE identity >= ?1 AND identity < ?2",
            )
            .map_err(wrap)?;
        let rows = stmt
            .query_map(params![recipient, end], |r| {
                Ok(Kin {
                    id: r.get(0)?,
                    generation: r.get(1)?,
                    row: r.get(2)?,
                    identity: r.get(3)?,
                    rank: rank(&r.get::<_, String>(4)?, r.get(5)?),
                    payload: r.get(6)?,
                    request_id: r.get(7)?,
                })
            })
            .map_err(wrap)?;
        let mut kin = Vec::new();
        for k in rows {
            let k = k.map_err(wrap)?;
            if recipient_of(&k.identity) == recipient {
                kin.push(k);
            }
        }
        Ok(kin)
    }

    /// Places valid row `row` of generation `generation`: its own entry, or a duplicate of the
    /// row that holds the same identity or the same request.
    pub(crate) fn place(
        &self,
        key_of: &KeyOf<'_>,
        generation: i64,
        row: i64,
        identity: &str,
        request: Request<'_>,
    ) -> Result<Placed, LedgerError> {
        let kin = self.kin(identity)?;
        let existing = kin.iter().find(|k| k.identity == identity);
        if let Some(same) = existing
            && same.generation == generation
        {
            return Ok(Placed {
                kind: RowStatus::Duplicate.as_str(),
                entry_id: same.id,
                reason: Some(format!("same recipient and params as row {}", same.row)),
                entries_added: 0,
            });
        }
        // A row sent before counts with the request it was sent with.
        let (rank, key) = match existing {
            Some(sent) if sent.rank > 0 => (
                sent.rank,
                key_of(identity, &sent.payload, sent.request_id.as_deref()),
            ),
            _ => (0, request.key),
        };
        // The row of this input that holds the same request: the one sent furthest, else the
        // first.
        let holder = kin
            .iter()
            .filter(|k| k.generation == generation && k.identity != identity)
            .filter(|k| key_of(&k.identity, &k.payload, k.request_id.as_deref()) == key)
            .max_by_key(|k| (k.rank, std::cmp::Reverse(k.row)));
        let existing_id = existing.map(|e| e.id);
        let entry =
            |ledger: &Ledger| ledger.upsert(existing_id, identity, generation, row, request);
        match holder {
            None => Ok(Placed {
                kind: ENTRY_KIND,
                entry_id: entry(self)?,
                reason: None,
                entries_added: 1,
            }),
            // Both reached a final state before: history, nothing is sent again.
            Some(held) if rank == 2 && held.rank == 2 => Ok(Placed {
                kind: ENTRY_KIND,
                entry_id: entry(self)?,
                reason: None,
                entries_added: 1,
            }),
            Some(held) if rank > held.rank => {
                let id = entry(self)?;
                self.take_over(held, id, row)?;
                Ok(Placed {
                    kind: ENTRY_KIND,
                    entry_id: id,
                    reason: None,
                    entries_added: 0,
                })
            }
            Some(held) => Ok(Placed {
                kind: RowStatus::Duplicate.as_str(),
                entry_id: held.id,
                reason: Some(format!(
                    "sends the same request as row {} (same recipient and resolved params)",
                    held.row
                )),
                entries_added: 0,
            }),
        }
    }

    /// Row `row` (entry `id`), sent before, takes the request over from `held`, never sent:
    /// the held row and its duplicates become duplicates of row `row`, and the held identity
    /// leaves this generation.
    fn take_over(&self, held: &Kin, id: i64, row: i64) -> Result<(), LedgerError> {
        let reason = format!("sends the same request as row {row}, which was sent before");
        self.conn
            .execute(
                "UPDATE rows SET kind = ?1, entry_id = ?2, reason = ?3
                 WHERE entry_id = ?4 AND (row = ?5 OR kind = ?1)",
                params![RowStatus::Duplicate.as_str(), id, reason, held.id, held.row],
            )
            .map_err(|e| self.wrap(e))?;
        self.retire(held.id)
    }

    /// Inserts the identity, or moves the existing entry `existing` into this generation
    /// (keeping the payload it was sent with, if it was). Two plain statements rather than an
    /// upsert: a single-row insert needs no statement journal, which an upsert (that may also
    /// update) writes for every row.
    fn upsert(
        &self,
        existing: Option<i64>,
        identity: &str,
        generation: i64,
        row: i64,
        request: Request<'_>,
    ) -> Result<i64, LedgerError> {
        let wrap = |e| self.wrap(e);
        if let Some(id) = existing {
            self.conn
                .prepare_cached(
                    "UPDATE entries SET generation = ?2, row = ?3,
                         payload = CASE WHEN status = 'pending' AND attempts = 0
                                        THEN ?4 ELSE payload END
                     WHERE id = ?1",
                )
                .map_err(wrap)?
                .execute(params![id, generation, row, request.object_json])
                .map_err(wrap)?;
            return Ok(id);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO entries (identity, generation, row, payload, request_id, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
            )
            .map_err(wrap)?
            .execute(params![
                identity,
                generation,
                row,
                request.object_json,
                request.id
            ])
            .map_err(wrap)?;
        Ok(self.conn.last_insert_rowid())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kin_are_the_entries_of_the_same_recipient_and_no_other() {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        for (id, identity) in [
            (1, "open_id=A"),
            (2, "open_id=A&channel=7"),
            (3, "open_id=A!"),
            (4, "open_id=AB"),
            (5, "open_id=A%26channel"),
            (6, "open_id=@"),
        ] {
            ledger
                .conn
                .execute(
                    "INSERT INTO entries (id, identity, generation, row, payload, status)
                     VALUES (?1, ?2, 1, ?1, '{}', 'pending')",
                    params![id, identity],
                )
                .unwrap();
        }
        let ids = |identity: &str| -> Vec<i64> {
            ledger.kin(identity).unwrap().iter().map(|k| k.id).collect()
        };
        assert_eq!(ids("open_id=A&out_id=1"), [1, 2]);
        assert_eq!(ids("open_id=A"), [1, 2]);
        assert_eq!(ids("open_id=AB&channel=7"), [4]);
        assert_eq!(ids("open_id=Z"), Vec::<i64>::new());
    }
}
