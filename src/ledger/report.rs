//! Read queries for auditing (`campaign status`, `export`, `verify`): errors grouped by code,
//! the attempts log, the last run, identities no longer in the input, and the checks that no
//! identity was issued twice.
//!
//! All of them only read, so they work on a read-only connection while a run writes the file.

use crate::top::outcome::split_issued_ids;
use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};
use crate::domain::{RowStatus, RunCounters, RunEnding};
use crate::top::OutcomeClass;

/// One group of unsuccessful attempts with the same class, code and sub-code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ErrorGroup {
    /// The outcome class (every class but `issued`).
    pub(crate) class: OutcomeClass,
    pub(crate) code: Option<String>,
    pub(crate) sub_code: Option<String>,
    /// Attempts in the group.
    pub(crate) count: u64,
    /// Distinct identities that met it.
    pub(crate) rows: u64,
    /// The message of the most recent attempt of the group.
    pub(crate) example: Option<String>,
}

/// One attempt, as the attempts log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttemptRow {
    /// The entry's row in the current input; `None` for an identity no longer in it.
    pub(crate) row: Option<i64>,
    pub(crate) attempt: i64,
    pub(crate) started_at: String,
    pub(crate) latency_ms: i64,
    pub(crate) class: OutcomeClass,
    pub(crate) code: Option<String>,
    pub(crate) sub_code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) top_request_id: Option<String>,
    pub(crate) request_id: Option<String>,
}

/// One `campaign run`, as the `runs` table recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunRecord {
    pub(crate) id: i64,
    pub(crate) started_at: String,
    /// `None` while the run goes on, or when it was killed before it could record its end.
    pub(crate) ended_at: Option<String>,
    pub(crate) ending: Option<RunEnding>,
    pub(crate) counters: RunCounters,
    pub(crate) elapsed_ms: u64,
}

/// The `runs` columns that [`RunRecord::from_row`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "id, started_at, ended_at, ending, sent, issued, failed, \
     uncertain, retries, throttle_events, elapsed_ms";

impl RunRecord {
    /// A row selected with [`RUN_COLUMNS`].
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        let n = |i| r.get::<_, i64>(i).map(|n| n as u64);
        Ok(RunRecord {
            id: r.get(0)?,
            started_at: r.get(1)?,
            ended_at: r.get(2)?,
            ending: r.get(3)?,
            counters: RunCounters {
                sent: n(4)?,
                issued: n(5)?,
                failed: n(6)?,
                uncertain: n(7)?,
                retries: n(8)?,
                throttle_events: n(9)?,
            },
            elapsed_ms: n(10)?,
        })
    }
}

/// What the attempts since a moment say: the live numbers of a run that has not recorded its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AttemptTally {
    pub(crate) counters: RunCounters,
    /// When the last of them started.
    pub(crate) last_started_at: Option<String>,
}

/// An identity, where it was last seen in the input, and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryRecord {
    pub(crate) identity: String,
    /// The row in the input it was last read from (in the current input only if `current`).
    pub(crate) row: i64,
    /// Whether the identity is in the current input.
    pub(crate) current: bool,
    pub(crate) status: RowStatus,
    pub(crate) issued_id: Option<String>,
}

impl rusqlite::types::FromSql for OutcomeClass {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        OutcomeClass::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown outcome class {text:?}").into())
        })
    }
}

const ENTRY_COLUMNS: &str = "identity, row, generation = (SELECT CAST(value AS INTEGER) FROM meta
     WHERE key = 'gen'), status, issued_id";

fn entry_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRecord> {
    Ok(EntryRecord {
        identity: r.get(0)?,
        row: r.get(1)?,
        current: r.get::<_, Option<bool>>(2)?.unwrap_or(false),
        status: r.get(3)?,
        issued_id: r.get(4)?,
    })
}

impl Ledger {
    /// Unsuccessful attempts (every class but `issued`) grouped by class, code and sub-code, the
    /// largest groups first.
    pub(crate) fn error_groups(&self) -> Result<Vec<ErrorGroup>, LedgerError> {
        // SQLite takes the bare `message` from the row that holds MAX(rowid): the latest one.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT class, code, sub_code, COUNT(*), COUNT(DISTINCT entry_id), MAX(rowid), message
                 FROM attempts WHERE class <> 'issued'
                 GROUP BY class, code, sub_code ORDER BY COUNT(*) DESC, class, code, sub_code",
            )
            .map_err(|e| self.wrap(e))?;
        let groups = stmt
            .query_map([], |r| {
                Ok(ErrorGroup {
                    class: r.get(0)?,
                    code: r.get(1)?,
                    sub_code: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    rows: r.get::<_, i64>(4)? as u64,
                    example: r.get(6)?,
                })
            })
            .map_err(|e| self.wrap(e))?;
        groups
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.wrap(e))
    }

    /// Throttled attempts over all runs.
    pub(crate) fn throttle_events(&self) -> Result<u64, LedgerError> {
        self.count(
            // The first term lets SQLite use the partial index of unsuccessful attempts.
            "SELECT COUNT(*) FROM attempts WHERE class <> 'issued' AND class = 'throttled'",
            [],
        )
    }

    /// Calls `each` for every attempt in the order they were recorded, streaming.
    pub(crate) fn for_each_attempt<E: From<LedgerError>>(
        &self,
        mut each: impl FnMut(AttemptRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let wrap = |e| self.wrap(e);
        let generation = self.generation()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT CASE WHEN e.generation = ?1 THEN e.row END, a.attempt, a.started_at,
                        a.latency_ms, a.class, a.code, a.sub_code, a.message, a.top_request_id,
                        a.request_id
                 FROM attempts a JOIN entries e ON e.id = a.entry_id ORDER BY a.rowid",
            )
            .map_err(wrap)?;
        let mut rows = stmt.query([generation]).map_err(wrap)?;
        while let Some(r) = rows.next().map_err(wrap)? {
            each(AttemptRow {
                row: r.get(0).map_err(wrap)?,
                attempt: r.get(1).map_err(wrap)?,
                started_at: r.get(2).map_err(wrap)?,
                latency_ms: r.get(3).map_err(wrap)?,
                class: r.get(4).map_err(wrap)?,
                code: r.get(5).map_err(wrap)?,
                sub_code: r.get(6).map_err(wrap)?,
                message: r.get(7).map_err(wrap)?,
                top_request_id: r.get(8).map_err(wrap)?,
                request_id: r.get(9).map_err(wrap)?,
            })?;
        }
        Ok(())
    }

    /// The most recent run, and how many runs there were.
    pub(crate) fn last_run(&self) -> Result<(Option<RunRecord>, u64), LedgerError> {
        let wrap = |e| self.wrap(e);
        let count: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
            .map_err(wrap)?;
        let last = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT 1"),
                [],
                RunRecord::from_row,
            )
            .optional()
            .map_err(wrap)?;
        Ok((last, count as u64))
    }

    /// Tallies the attempts started at or after `since` (RFC 3339 as the runner writes it): the
    /// numbers of a run that has not recorded its end yet.
    pub(crate) fn attempts_since(&self, since: &str) -> Result<AttemptTally, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(class = 'issued'), 0),
                        COALESCE(SUM(class = 'permanent'), 0), COALESCE(SUM(class = 'unknown'), 0),
                        COALESCE(SUM(class = 'transient'), 0), COALESCE(SUM(class = 'throttled'), 0),
                        MAX(started_at)
                 FROM attempts WHERE started_at >= ?1",
                [since],
                |r| {
                    let n = |i| r.get::<_, i64>(i).map(|n| n as u64);
                    Ok(AttemptTally {
                        counters: RunCounters {
                            sent: n(0)?,
                            issued: n(1)?,
                            failed: n(2)?,
                            uncertain: n(3)?,
                            retries: n(4)?,
                            throttle_events: n(5)?,
                        },
                        last_started_at: r.get(6)?,
                    })
                },
            )
            .map_err(|e| self.wrap(e))
    }

    /// Identities of the current input that are in flight right now (shown as pending).
    pub(crate) fn in_flight(&self) -> Result<u64, LedgerError> {
        self.count(
            "SELECT COUNT(*) FROM entries WHERE status = 'inflight' AND generation = ?1",
            [self.generation()?],
        )
    }

    /// Calls `each` for every identity recorded by an earlier ingest that is no longer in the
    /// current input, in the order they were first recorded.
    pub(crate) fn for_each_orphan<E: From<LedgerError>>(
        &self,
        mut each: impl FnMut(EntryRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let wrap = |e| self.wrap(e);
        let generation = self.generation()?;
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE generation <> ?1 ORDER BY id");
        let mut stmt = self.conn.prepare(&sql).map_err(wrap)?;
        let mut rows = stmt.query([generation]).map_err(wrap)?;
        while let Some(r) = rows.next().map_err(wrap)? {
            each(entry_record(r).map_err(wrap)?)?;
        }
        Ok(())
    }

    /// The identity behind an `entries` id.
    pub(crate) fn entry(&self, id: i64) -> Result<Option<EntryRecord>, LedgerError> {
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1");
        self.conn
            .query_row(&sql, [id], entry_record)
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Issued ids that the ledger records for more than one identity (at most `limit` of them),
    /// each with those identities: a sign that one issuance was booked to two recipients.
    pub(crate) fn shared_issued_ids(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, Vec<EntryRecord>)>, LedgerError> {
        let wrap = |e| self.wrap(e);
        // One pass: the ids held more than once, and first of all any cell that holds several
        // ids (then each cell must be split before ids are compared).
        let mut shared = self
            .conn
            .prepare(
                "SELECT issued_id, instr(issued_id, ';') > 0 FROM entries
                 WHERE issued_id IS NOT NULL AND issued_id <> ''
                 GROUP BY issued_id HAVING COUNT(*) > 1 OR instr(issued_id, ';') > 0
                 ORDER BY 2 DESC, MIN(id) LIMIT ?1",
            )
            .map_err(wrap)?;
        let ids = shared
            .query_map([limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })
            .map_err(wrap)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(wrap)?;
        if ids.first().is_some_and(|(_, several)| *several) {
            return self.shared_among_several(limit);
        }
        // Their holders, in one more pass (issued ids have no index).
        let mut out: Vec<(String, Vec<EntryRecord>)> =
            ids.into_iter().map(|(id, _)| (id, Vec::new())).collect();
        if out.is_empty() {
            return Ok(out);
        }
        let marks = vec!["?"; out.len()].join(", ");
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE issued_id IN ({marks}) ORDER BY id");
        let mut holders = self.conn.prepare(&sql).map_err(wrap)?;
        let wanted: Vec<&str> = out.iter().map(|(id, _)| id.as_str()).collect();
        let found = holders
            .query_map(rusqlite::params_from_iter(wanted), entry_record)
            .map_err(wrap)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(wrap)?;
        for entry in found {
            let holder = out
                .iter_mut()
                .find(|(id, _)| Some(id.as_str()) == entry.issued_id.as_deref());
            if let Some((_, entries)) = holder {
                entries.push(entry);
            }
        }
        Ok(out)
    }

    /// [`Ledger::shared_issued_ids`] when some cells hold several ids (alsc): each cell is split
    /// as [`split_issued_ids`] reads it, into a temporary table, and single ids are compared.
    fn shared_among_several(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, Vec<EntryRecord>)>, LedgerError> {
        let wrap = |e| self.wrap(e);
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS issued_parts (id TEXT NOT NULL, entry INTEGER NOT NULL);
                 DELETE FROM issued_parts;",
            )
            .map_err(wrap)?;
        {
            let mut cells = self
                .conn
                .prepare("SELECT id, issued_id FROM entries WHERE issued_id IS NOT NULL AND issued_id <> ''")
                .map_err(wrap)?;
            let mut insert = self
                .conn
                .prepare("INSERT INTO issued_parts (id, entry) VALUES (?1, ?2)")
                .map_err(wrap)?;
            let mut rows = cells.query([]).map_err(wrap)?;
            while let Some(row) = rows.next().map_err(wrap)? {
                let entry: i64 = row.get(0).map_err(wrap)?;
                let cell: String = row.get(1).map_err(wrap)?;
                for id in split_issued_ids(&cell) {
                    insert.execute(params![id, entry]).map_err(wrap)?;
                }
            }
        }
        self.conn
            .execute_batch("CREATE INDEX IF NOT EXISTS temp.issued_parts_id ON issued_parts (id)")
            .map_err(wrap)?;
        let ids = self
            .conn
            .prepare(
                "SELECT id FROM issued_parts GROUP BY id HAVING COUNT(DISTINCT entry) > 1
                 ORDER BY MIN(entry) LIMIT ?1",
            )
            .map_err(wrap)?
            .query_map([limit as i64], |r| r.get::<_, String>(0))
            .map_err(wrap)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(wrap)?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE id IN
                 (SELECT entry FROM issued_parts WHERE id = ?1) ORDER BY id"
        );
        let mut holders = self.conn.prepare(&sql).map_err(wrap)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let entries = holders
                .query_map(params![id], entry_record)
                .map_err(wrap)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(wrap)?;
            out.push((id, entries));
        }
        Ok(out)
    }

    /// Identities sent again after an attempt whose outcome was unknown and then issued: the
    /// platform may have issued them twice (non-idempotent API only; at most `limit`). A resend
    /// that reconciliation ordered (no certificate found in between) is not one of them.
    pub(crate) fn issued_after_unknown(
        &self,
        limit: usize,
    ) -> Result<Vec<EntryRecord>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let reconciled = if self.has_table("reconcile_checks")? {
            "AND NOT EXISTS (SELECT 1 FROM reconcile_checks c WHERE c.entry_id = u.entry_id
                 AND c.verdict = 'resend'
                 AND julianday(c.checked_at) >= julianday(u.started_at)
                 AND julianday(c.checked_at) <= julianday(i.started_at))"
        } else {
            ""
        };
        // Driven from the attempts whose outcome was unknown (few, and found through the
        // partial index of unsuccessful attempts), not from every issued identity.
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.id IN
                 (SELECT u.entry_id FROM attempts u JOIN attempts i
                      ON i.entry_id = u.entry_id AND i.attempt > u.attempt AND i.class = 'issued'
                  WHERE u.class <> 'issued' AND u.class = 'unknown' {reconciled})
             AND status = 'issued' ORDER BY id LIMIT ?1"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(wrap)?;
        let entries = stmt
            .query_map([limit as i64], entry_record)
            .map_err(wrap)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(wrap)?;
        Ok(entries)
    }

    /// Whether the state file has a table (one written before the table existed may not).
    pub(crate) fn has_table(&self, name: &str) -> Result<bool, LedgerError> {
        Ok(self.count(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        // Statuses and classes spelled as `RowStatus::as_str` and `OutcomeClass::as_str` write them.
        let ledger = Ledger::in_memory("c", "m").unwrap();
        ledger
            .conn
            .execute_batch(
                "INSERT INTO meta VALUES ('gen', '2');
                 INSERT INTO entries (id, identity, generation, row, payload, status, issued_id)
                 VALUES (1, 'open_id=A', 2, 1, '{}', 'issued', 'X1'),
                        (2, 'open_id=B', 2, 2, '{}', 'failed', NULL),
                        (3, 'open_id=C', 1, 7, '{}', 'issued', 'X1'),
                        (4, 'open_id=D', 2, 3, '{}', 'inflight', NULL);
                 INSERT INTO attempts (entry_id, attempt, started_at, latency_ms, class, code,
                                       sub_code, message)
                 VALUES (2, 1, '2026-01-01T00:00:01', 5, 'transient', '15', 'isp.x', 'first'),
                        (2, 2, '2026-01-01T00:00:02', 5, 'transient', '15', 'isp.x', 'second'),
                        (2, 3, '2026-01-01T00:00:03', 5, 'permanent', '15', 'isv.y', 'no'),
                        (1, 1, '2026-01-01T00:00:04', 5, 'unknown', '15', 'isp.t', 'lost'),
                        (1, 2, '2026-01-01T00:00:05', 5, 'issued', NULL, NULL, NULL),
                        (3, 1, '2026-01-01T00:00:06', 5, 'throttled', '7', NULL, 'limited');",
            )
            .unwrap();
        ledger
    }

    #[test]
    fn errors_are_grouped_by_class_code_and_sub_code_with_the_latest_message() {
        let groups = ledger().error_groups().unwrap();
        assert_eq!(groups.len(), 4, "{groups:?}");
        assert_eq!(groups[0].sub_code.as_deref(), Some("isp.x"));
        assert_eq!((groups[0].count, groups[0].rows), (2, 1));
        assert_eq!(groups[0].example.as_deref(), Some("second"));
        assert_eq!(ledger().throttle_events().unwrap(), 1);
    }

    #[test]
    fn attempts_stream_in_order_and_hide_rows_of_identities_no_longer_in_the_input() {
        let mut seen = Vec::new();
        ledger()
            .for_each_attempt::<LedgerError>(|a| {
                seen.push((a.row, a.attempt, a.class));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[0], (Some(2), 1, OutcomeClass::Transient));
        assert_eq!(seen[5], (None, 1, OutcomeClass::Throttled));
    }

    #[test]
    fn live_numbers_come_from_the_attempts_since_the_run_started() {
        let tally = ledger().attempts_since("2026-01-01T00:00:03").unwrap();
        let counters = tally.counters;
        assert_eq!((counters.sent, counters.issued, counters.failed), (4, 1, 1));
        assert_eq!((counters.uncertain, counters.throttle_events), (1, 1));
        assert_eq!(
            tally.last_started_at.as_deref(),
            Some("2026-01-01T00:00:06")
        );
        assert_eq!(ledger().in_flight().unwrap(), 1);
    }

    #[test]
    fn orphans_shared_issued_ids_and_resends_after_unknown_are_found() {
        let ledger = ledger();
        let mut orphans = Vec::new();
        ledger
            .for_each_orphan::<LedgerError>(|e| {
                orphans.push(e);
                Ok(())
            })
            .unwrap();
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].identity, "open_id=C");
        assert!(!orphans[0].current);
        assert!(ledger.entry(1).unwrap().unwrap().current);

        let shared = ledger.shared_issued_ids(10).unwrap();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].0, "X1");
        assert_eq!(shared[0].1.len(), 2);

        let resent = ledger.issued_after_unknown(10).unwrap();
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].identity, "open_id=A");
    }

    #[test]
    fn identities_issued_more_than_once_are_found_with_their_count() {
        let ledger = ledger();
        assert_eq!(ledger.doubly_issued().unwrap(), []);
        ledger
            .conn
            .execute_batch(
                "INSERT INTO attempts (entry_id, attempt, started_at, latency_ms, class)
                 VALUES (3, 2, '2026-01-01T00:00:07', 5, 'issued'),
                        (1, 3, '2026-01-01T00:00:08', 5, 'issued'),
                        (3, 3, '2026-01-01T00:00:09', 5, 'issued'),
                        (1, 4, '2026-01-01T00:00:10', 5, 'issued'),
                        (99, 1, '2026-01-01T00:00:11', 5, 'issued'),
                        (99, 2, '2026-01-01T00:00:12', 5, 'issued'),
                        (98, 1, '2026-01-01T00:00:13', 5, 'issued');",
            )
            .unwrap();
        // Entry 99 and 98 are gone from `entries` (beyond the largest id): still counted.
        assert_eq!(ledger.doubly_issued().unwrap(), [(1, 3), (3, 2), (99, 2)]);
    }

    #[test]
    fn shared_ids_inside_cells_of_several_ids_are_found_and_escapes_respected() {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        ledger
            .conn
            .execute_batch(
                r"INSERT INTO entries (id, identity, generation, row, payload, status, issued_id)
                  VALUES (1, 'a', 1, 1, '{}', 'issued', 'R\;1;S'),
                         (2, 'b', 1, 2, '{}', 'issued', 'R'),
                         (3, 'c', 1, 3, '{}', 'issued', '1'),
                         (4, 'd', 1, 4, '{}', 'issued', 'T;S');",
            )
            .unwrap();
        let shared = ledger.shared_issued_ids(10).unwrap();
        let ids: Vec<&str> = shared.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["S"], "R;1 is one id, not R and 1");
        let holders: Vec<&str> = shared[0].1.iter().map(|e| e.identity.as_str()).collect();
        assert_eq!(holders, ["a", "d"]);
    }
}
