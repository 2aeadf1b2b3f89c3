//! Read queries for `campaign report`: every run, each run's attempts as a range of rowids,
//! the attempts of a range streamed in one pass (for binning and grouping with flat memory),
//! and the `uncertain` rows.
//!
//! Attempts carry no run id; since the runner records them in the order they finish and one
//! run ends before the next starts, each run's attempts are a range of rowids, found by a
//! binary search on the start time: a few point reads whatever the ledger's size.

use std::ops::Range;

use rusqlite::OptionalExtension;

use super::report::{RUN_COLUMNS, RunRecord};
use super::{Ledger, LedgerError};
use crate::domain::RowStatus;

/// Seconds since the Unix epoch of a stored RFC 3339 time (any offset); SQL.
const EPOCH: &str = "unixepoch(started_at, 'subsec')";

/// One attempt as the report reads it, borrowed from the query row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AttemptPoint<'r> {
    pub rowid: i64,
    /// When it started, epoch seconds.
    pub at: f64,
    pub latency_ms: u64,
    /// The stored outcome class (`issued`, `permanent`, `transient`, `unknown`, `throttled`,
    /// `fatal`).
    pub class: &'r str,
    pub code: Option<&'r str>,
    pub sub_code: Option<&'r str>,
}

/// What the `runs` table does not hold: a run's exit code and, for a halt, why. Kept in `meta`
/// (`run.<id>.exit`, `run.<id>.reason`), so older ledgers need no new column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunExit {
    pub code: Option<i64>,
    pub reason: Option<String>,
}

/// An `uncertain` row of the current input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UncertainRow {
    /// The data row in the input (1 = the first row after the header).
    pub row: i64,
    pub recipient: Option<String>,
    pub attempts: u64,
    pub error_code: Option<String>,
    pub error_sub_code: Option<String>,
    pub error_message: Option<String>,
    pub top_request_id: Option<String>,
    pub finished_at: Option<String>,
}

impl Ledger {
    /// Every run, oldest first.
    pub(crate) fn runs(&self) -> Result<Vec<RunRecord>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id"))
            .map_err(wrap)?;
        let runs = stmt.query_map([], RunRecord::from_row).map_err(wrap)?;
        runs.collect::<rusqlite::Result<Vec<_>>>().map_err(wrap)
    }

    /// Records how a run ended beyond its `ending`: the exit code and, for a halt, the reason.
    pub(crate) fn record_run_exit(
        &self,
        id: i64,
        code: i32,
        reason: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.set_meta(&format!("run.{id}.exit"), &code.to_string())?;
        if let Some(reason) = reason {
            self.set_meta(&format!("run.{id}.reason"), reason)?;
        }
        Ok(())
    }

    /// A run's exit code and halt reason, as [`Ledger::record_run_exit`] recorded them (none
    /// for runs of older versions, or killed ones).
    pub(crate) fn run_exit(&self, id: i64) -> Result<RunExit, LedgerError> {
        Ok(RunExit {
            code: self
                .meta(&format!("run.{id}.exit"))?
                .and_then(|c| c.parse().ok()),
            reason: self.meta(&format!("run.{id}.reason"))?,
        })
    }

    /// A run's outages (the gateway could not be reached and the run paused), as epoch seconds
    /// from and to; `to` is `None` while one goes on or when the run stopped during it.
    pub(crate) fn run_outages(&self, run_id: i64) -> Result<Vec<(f64, Option<f64>)>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT unixepoch(started_at, 'subsec'), unixepoch(ended_at, 'subsec')
                 FROM outages WHERE run_id = ?1 ORDER BY started_at",
            )
            .map_err(wrap)?;
        let outages = stmt
            .query_map([run_id], |r| Ok((r.get::<_, Option<f64>>(0)?, r.get(1)?)))
            .map_err(wrap)?
            .filter_map(|o| match o {
                Ok((Some(from), to)) => Some(Ok((from, to))),
                Ok((None, _)) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(wrap)?;
        Ok(outages)
    }

    /// The attempts as rowid ranges: first those from before the first run start given (none,
    /// normally), then one range per run start (oldest first, as epoch seconds): a run's
    /// attempts are those that started at or after its start and before the next run's.
    pub(crate) fn attempt_ranges(
        &self,
        run_starts: &[f64],
    ) -> Result<Vec<Range<i64>>, LedgerError> {
        let end = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(rowid), 0) + 1 FROM attempts",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.wrap(e))?;
        let mut bounds = Vec::with_capacity(run_starts.len() + 2);
        bounds.push(1);
        for &start in run_starts {
            bounds.push(self.first_attempt_from(start, end)?);
        }
        bounds.push(end);
        Ok(bounds.windows(2).map(|w| w[0]..w[1].max(w[0])).collect())
    }

    /// The smallest rowid whose attempt started at or after `epoch` (or `end`): a binary search,
    /// a few point reads whatever the size.
    fn first_attempt_from(&self, epoch: f64, end: i64) -> Result<i64, LedgerError> {
        let sql =
            format!("SELECT rowid, {EPOCH} FROM attempts WHERE rowid >= ?1 ORDER BY rowid LIMIT 1");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.wrap(e))?;
        let (mut lo, mut hi) = (1, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let found = stmt
                .query_row([mid], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<f64>>(1)?))
                })
                .optional()
                .map_err(|e| self.wrap(e))?;
            match found {
                Some((_, Some(t))) if t >= epoch => hi = mid,
                Some((rowid, _)) => lo = rowid + 1,
                None => hi = mid,
            }
        }
        Ok(lo)
    }

    /// When the last attempts of a range had their answer (epoch seconds): the end of a run
    /// that did not record one. Reads the range's last rows only, which are the latest
    /// to within the requests that were in flight together.
    pub(crate) fn attempts_end(&self, rows: &Range<i64>) -> Result<Option<f64>, LedgerError> {
        const TAIL: i64 = 10_000;
        let sql = format!(
            "SELECT MAX({EPOCH} + latency_ms / 1000.0) FROM attempts WHERE rowid >= ?1 AND rowid < ?2"
        );
        let from = rows.start.max(rows.end - TAIL);
        self.conn
            .query_row(&sql, [from, rows.end], |r| r.get(0))
            .map_err(|e| self.wrap(e))
    }

    /// Calls `each` for every attempt of a rowid range, in rowid order: one pass, nothing kept.
    pub(crate) fn for_each_attempt_in(
        &self,
        rows: &Range<i64>,
        mut each: impl FnMut(AttemptPoint<'_>),
    ) -> Result<(), LedgerError> {
        let wrap = |e| self.wrap(e);
        let sql = format!(
            "SELECT rowid, {EPOCH}, latency_ms, class, code, sub_code
             FROM attempts WHERE rowid >= ?1 AND rowid < ?2 ORDER BY rowid"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(wrap)?;
        let mut found = stmt.query([rows.start, rows.end]).map_err(wrap)?;
        while let Some(r) = found.next().map_err(wrap)? {
            let text = |i| -> rusqlite::Result<Option<&str>> {
                match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(t) => Ok(std::str::from_utf8(t).ok()),
                    _ => Ok(None),
                }
            };
            each(AttemptPoint {
                rowid: r.get(0).map_err(wrap)?,
                at: r.get::<_, Option<f64>>(1).map_err(wrap)?.unwrap_or(0.0),
                latency_ms: r.get::<_, i64>(2).map_err(wrap)?.max(0) as u64,
                class: text(3).map_err(wrap)?.unwrap_or_default(),
                code: text(4).map_err(wrap)?,
                sub_code: text(5).map_err(wrap)?,
            });
        }
        Ok(())
    }

    /// An attempt's start time (as stored) and message.
    pub(crate) fn attempt_detail(
        &self,
        rowid: i64,
    ) -> Result<(String, Option<String>), LedgerError> {
        self.conn
            .query_row(
                "SELECT started_at, message FROM attempts WHERE rowid = ?1",
                [rowid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.wrap(e))
    }

    /// The current input's `uncertain` rows in input order (at most `limit`), with how many there
    /// are in all. `recipient` names the object param's recipient field.
    pub(crate) fn uncertain_listing(
        &self,
        recipient: &str,
        limit: usize,
    ) -> Result<(u64, Vec<UncertainRow>), LedgerError> {
        let wrap = |e| self.wrap(e);
        let generation = self.generation()?;
        let total = self.count(
            "SELECT COUNT(*) FROM entries WHERE status = ?2 AND generation = ?1",
            rusqlite::params![generation, RowStatus::Uncertain],
        )?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT row, json_extract(payload, '$.' || ?3), attempts, error_code,
                        error_sub_code, error_message, top_request_id, finished_at
                 FROM entries WHERE status = ?4 AND generation = ?1
                 ORDER BY row LIMIT ?2",
            )
            .map_err(wrap)?;
        let rows = stmt
            .query_map(
                rusqlite::params![generation, limit as i64, recipient, RowStatus::Uncertain],
                |r| {
                    Ok(UncertainRow {
                        row: r.get(0)?,
                        recipient: r.get::<_, Option<rusqlite::types::Value>>(1)?.map(text),
                        attempts: r.get::<_, i64>(2)? as u64,
                        error_code: r.get(3)?,
                        error_sub_code: r.get(4)?,
                        error_message: r.get(5)?,
                        top_request_id: r.get(6)?,
                        finished_at: r.get(7)?,
                    })
                },
            )
            .map_err(wrap)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(wrap)?;
        Ok((total, rows))
    }
}

/// A JSON value extracted by SQLite, as text.
fn text(value: rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match value {
        Value::Text(s) => s,
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Null => String::new(),
        Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        ledger
            .conn
            .execute_batch(
                "INSERT INTO meta VALUES ('gen', '1');
                 INSERT INTO runs (id, started_at, ended_at, ending)
                 VALUES (1, '2026-01-01T10:00:00.000+08:00', '2026-01-01T10:00:09.000+08:00', 'halted'),
                        (2, '2026-01-01T03:00:00.000+00:00', NULL, NULL);
                 INSERT INTO entries (id, identity, generation, row, payload, status, error_code,
                                      error_message)
                 VALUES (1, 'open_id=A', 1, 1, '{\"open_id\":\"A\"}', 'issued', NULL, NULL),
                        (2, 'open_id=B', 1, 3, '{\"open_id\":\"<b>\"}', 'uncertain', '15', 'lost'),
                        (3, 'open_id=C', 1, 2, '{\"open_id\":\"C\"}', 'uncertain', 'timeout', NULL),
                        (4, 'open_id=D', 0, 9, '{\"open_id\":\"D\"}', 'uncertain', NULL, NULL);
                 INSERT INTO attempts (entry_id, attempt, started_at, latency_ms, class, code,
                                       sub_code, message)
                 VALUES (1, 1, '2026-01-01T10:00:00.500+08:00', 5, 'throttled', '7', NULL, 'ban'),
                        (1, 2, '2026-01-01T10:00:01.200+08:00', 250, 'issued', NULL, NULL, NULL),
                        (2, 1, '2026-01-01T10:00:03.900+08:00', 1234, 'unknown', '15', 'isp.t', 'first'),
                        (3, 1, '2026-01-01T02:00:04.000+00:00', 7, 'unknown', '15', 'isp.t', 'last'),
                        (3, 2, '2026-01-01T03:00:01.000+00:00', 40, 'unknown', 'timeout', NULL, NULL);",
            )
            .unwrap();
        ledger
    }

    fn epoch(t: &str) -> f64 {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0
    }

    #[test]
    fn each_run_gets_the_attempts_between_its_start_and_the_next_ones() {
        let ledger = ledger();
        let starts: Vec<f64> = ledger
            .runs()
            .unwrap()
            .iter()
            .map(|r| epoch(&r.started_at))
            .collect();
        assert_eq!(
            ledger.attempt_ranges(&starts).unwrap(),
            vec![1..1, 1..5, 5..6]
        );
        // The same across offsets: the second run started an hour after the first, in UTC.
        let end = ledger.attempts_end(&(1..5)).unwrap().unwrap();
        let answered = epoch("2026-01-01T10:00:03.900+08:00") + 1.234;
        assert!((end - answered).abs() < 1e-3, "{end} {answered}");
        assert_eq!(ledger.attempt_ranges(&[]).unwrap(), vec![1..6]);
    }

    #[test]
    fn a_range_streams_its_attempts_in_order_with_their_details() {
        let ledger = ledger();
        let mut seen = Vec::new();
        ledger
            .for_each_attempt_in(&(2..4), |a| {
                seen.push((
                    a.rowid,
                    a.at,
                    a.latency_ms,
                    a.class.to_owned(),
                    a.sub_code.map(str::to_owned),
                ));
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (
                    2,
                    epoch("2026-01-01T10:00:01.200+08:00"),
                    250,
                    "issued".to_owned(),
                    None
                ),
                (
                    3,
                    epoch("2026-01-01T10:00:03.900+08:00"),
                    1234,
                    "unknown".to_owned(),
                    Some("isp.t".to_owned())
                ),
            ]
        );
        let (started, message) = ledger.attempt_detail(3).unwrap();
        assert_eq!(started, "2026-01-01T10:00:03.900+08:00");
        assert_eq!(message.as_deref(), Some("first"));
    }

    #[test]
    fn a_runs_exit_and_halt_reason_are_kept() {
        let ledger = ledger();
        assert_eq!(ledger.run_exit(1).unwrap(), RunExit::default());
        ledger
            .record_run_exit(1, 3, Some("fatal: invalid signature"))
            .unwrap();
        ledger.record_run_exit(2, 1, None).unwrap();
        let halted = ledger.run_exit(1).unwrap();
        assert_eq!(halted.code, Some(3));
        assert_eq!(halted.reason.as_deref(), Some("fatal: invalid signature"));
        assert_eq!(ledger.run_exit(2).unwrap().reason, None);
    }

    #[test]
    fn a_runs_outages_are_read_in_epoch_seconds() {
        let ledger = ledger();
        ledger
            .conn
            .execute_batch(
                "INSERT INTO outages (run_id, started_at, ended_at, ending)
                 VALUES (1, '2026-01-01T10:00:02.000+08:00', '2026-01-01T10:00:05.500+08:00', 'recovered'),
                        (1, '2026-01-01T10:00:08.000+08:00', NULL, NULL),
                        (2, '2026-01-01T03:00:02.000+00:00', NULL, NULL);",
            )
            .unwrap();
        let outages = ledger.run_outages(1).unwrap();
        let t = epoch("2026-01-01T10:00:00.000+08:00");
        assert_eq!(outages, vec![(t + 2.0, Some(t + 5.5)), (t + 8.0, None)]);
    }

    #[test]
    fn uncertain_rows_of_the_current_input_in_input_order() {
        let (total, rows) = ledger().uncertain_listing("open_id", 1).unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].recipient.as_deref(), Some("C"));
        let (_, rows) = ledger().uncertain_listing("open_id", 10).unwrap();
        assert_eq!(rows[1].recipient.as_deref(), Some("<b>"));
    }
}
