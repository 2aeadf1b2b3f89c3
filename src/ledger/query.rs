//! Read-side queries: the per-row results in input order, status counts, error groups.

use rusqlite::params;

use crate::bits::Bits;

use super::{ENTRY_KIND, Ledger, LedgerError};
use crate::domain::{RowStatus, RunCounters, RunEnding, StatusCounts};

/// One input row's final picture, as the results CSV shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResultRow {
    pub(crate) row: i64,
    pub(crate) line: i64,
    pub(crate) status: RowStatus,
    pub(crate) attempts: i64,
    pub(crate) request_id: Option<String>,
    pub(crate) issued_id: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) error_code: Option<String>,
    pub(crate) error_sub_code: Option<String>,
    pub(crate) error_message: Option<String>,
    pub(crate) top_request_id: Option<String>,
    pub(crate) finished_at: Option<String>,
}

/// A results row's status: its kind when it has no identity, else its identity's state as the
/// results file shows it.
fn result_status(kind: &str, entry_status: Option<RowStatus>) -> RowStatus {
    match (RowStatus::parse(kind), entry_status) {
        (Some(status @ (RowStatus::Invalid | RowStatus::Duplicate)), _) => status,
        (_, Some(status)) => status.in_results(),
        (_, None) => RowStatus::Pending,
    }
}

impl ResultRow {
    /// A row with no outcome yet.
    pub(crate) fn new(row: i64, line: i64, status: RowStatus) -> ResultRow {
        ResultRow {
            row,
            line,
            status,
            attempts: 0,
            request_id: None,
            issued_id: None,
            detail: None,
            error_code: None,
            error_sub_code: None,
            error_message: None,
            top_request_id: None,
            finished_at: None,
        }
    }
}

impl Ledger {
    /// Calls `each` for every row of the current input, in input order, streaming.
    pub(crate) fn for_each_result<E: From<LedgerError>>(
        &self,
        mut each: impl FnMut(ResultRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let wrap = |e| self.wrap(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.row, r.line, r.kind, r.reason, e.status, e.attempts, e.request_id,
                        e.issued_id, e.detail, e.error_code, e.error_sub_code, e.error_message,
                        e.top_request_id, e.finished_at
                 FROM rows r LEFT JOIN entries e ON e.id = r.entry_id ORDER BY r.row",
            )
            .map_err(wrap)?;
        let mut rows = stmt.query([]).map_err(wrap)?;
        while let Some(r) = rows.next().map_err(wrap)? {
            let kind: String = r.get(2).map_err(wrap)?;
            let entry_status: Option<RowStatus> = r.get(4).map_err(wrap)?;
            let status = result_status(&kind, entry_status);
            let result = if kind == ENTRY_KIND {
                ResultRow {
                    row: r.get(0).map_err(wrap)?,
                    line: r.get(1).map_err(wrap)?,
                    status,
                    attempts: r.get::<_, Option<i64>>(5).map_err(wrap)?.unwrap_or(0),
                    request_id: r.get(6).map_err(wrap)?,
                    issued_id: r.get(7).map_err(wrap)?,
                    detail: r.get(8).map_err(wrap)?,
                    error_code: r.get(9).map_err(wrap)?,
                    error_sub_code: r.get(10).map_err(wrap)?,
                    error_message: r.get(11).map_err(wrap)?,
                    top_request_id: r.get(12).map_err(wrap)?,
                    finished_at: r.get(13).map_err(wrap)?,
                }
            } else {
                ResultRow {
                    error_message: r.get(3).map_err(wrap)?,
                    ..ResultRow::new(r.get(0).map_err(wrap)?, r.get(1).map_err(wrap)?, status)
                }
            };
            each(result)?;
        }
        Ok(())
    }

    /// Rows of the current input per result status.
    ///
    /// From the counts kept at ingest and the partial indexes of the unfinished states, so that
    /// it costs milliseconds on millions of rows: every entry of the current input that is not
    /// pending, in flight, failed or uncertain is issued.
    pub(crate) fn status_counts(&self) -> Result<StatusCounts, LedgerError> {
        let Some(shape) = self.shape()? else {
            return self.status_counts_by_scan();
        };
        let generation = self.generation()?;
        // Literal statuses, as everywhere in the ledger (see `ENTRY_KIND`): each query is
        // answered by its partial index.
        let count = |sql: &str| self.count(sql, [generation]);
        let pending = self.pending_count(generation)?;
        let inflight = self.in_flight()?;
        let failed =
            count("SELECT COUNT(*) FROM entries WHERE generation = ?1 AND status = 'failed'")?;
        let uncertain =
            count("SELECT COUNT(*) FROM entries WHERE generation = ?1 AND status = 'uncertain'")?;
        let unfinished = pending + inflight + failed + uncertain;
        let mut counts = StatusCounts::default();
        counts.add(RowStatus::Pending, pending + inflight);
        counts.add(RowStatus::Failed, failed);
        counts.add(RowStatus::Uncertain, uncertain);
        counts.add(RowStatus::Issued, shape.entries.saturating_sub(unfinished));
        counts.add(RowStatus::Invalid, shape.invalid);
        counts.add(RowStatus::Duplicate, shape.duplicates);
        Ok(counts)
    }

    /// [`Ledger::status_counts`] by reading every row: for a ledger without the ingest counts.
    pub(crate) fn status_counts_by_scan(&self) -> Result<StatusCounts, LedgerError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.kind, e.status, COUNT(*) FROM rows r LEFT JOIN entries e ON e.id = r.entry_id
                 GROUP BY r.kind, e.status",
            )
            .map_err(|e| self.wrap(e))?;
        let mut counts = StatusCounts::default();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<RowStatus>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.wrap(e))?;
        for row in rows {
            let (kind, entry_status, n) = row.map_err(|e| self.wrap(e))?;
            counts.add(result_status(&kind, entry_status), n as u64);
        }
        Ok(counts)
    }

    /// Identities that had more than one issuing attempt succeed: always empty in a correct
    /// ledger; `verify` reports any.
    ///
    /// One pass over the attempts in storage order with a bit per identity (an eighth of a
    /// byte per row), instead of grouping them, which costs a sort or a lookup per attempt.
    pub(crate) fn doubly_issued(&self) -> Result<Vec<(i64, i64)>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let max_id = self.count("SELECT COALESCE(MAX(id), 0) FROM entries", [])?;
        let mut seen = Bits::up_to(max_id as usize);
        let mut twice = std::collections::BTreeSet::new();
        let mut stmt = self
            .conn
            .prepare("SELECT entry_id FROM attempts WHERE class = 'issued'")
            .map_err(wrap)?;
        let mut rows = stmt.query([]).map_err(wrap)?;
        while let Some(r) = rows.next().map_err(wrap)? {
            let id: i64 = r.get(0).map_err(wrap)?;
            // Seen before, or an attempt whose entry is gone: counted exactly below.
            if seen.insert(id) != Some(false) {
                twice.insert(id);
            }
        }
        let mut out = Vec::new();
        for id in twice {
            let times = self.count(
                "SELECT COUNT(*) FROM attempts WHERE entry_id = ?1 AND class = 'issued'",
                [id],
            )?;
            if times > 1 {
                out.push((id, times as i64));
            }
        }
        Ok(out)
    }
}

/// The `meta` key holding the id of the latest run that kept its counters up to date.
const LIVE_COUNTERS_KEY: &str = "live_counters_run";

/// The `runs` table: one row per `campaign run`.
impl Ledger {
    /// Records the start of a run; returns its id.
    ///
    /// The run's counters are kept up to date as its attempts are recorded (see
    /// [`super::writer`]), so `status` reads a running or killed run's numbers from its row.
    pub(crate) fn begin_run(&self, started_at: &str) -> Result<i64, LedgerError> {
        self.conn
            .execute("INSERT INTO runs (started_at) VALUES (?1)", [started_at])
            .map_err(|e| self.wrap(e))?;
        let id = self.conn.last_insert_rowid();
        self.set_meta(LIVE_COUNTERS_KEY, &id.to_string())?;
        Ok(id)
    }

    /// Whether run `id` kept its counters up to date while it ran (runs recorded by older
    /// versions only wrote them at their end).
    pub(crate) fn has_live_counters(&self, id: i64) -> Result<bool, LedgerError> {
        Ok(self
            .meta(LIVE_COUNTERS_KEY)?
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|first| id >= first))
    }

    /// Records how a run ended and what it did.
    pub(crate) fn end_run(
        &self,
        id: i64,
        ended_at: &str,
        ending: RunEnding,
        counters: &RunCounters,
        elapsed: std::time::Duration,
    ) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE runs SET ended_at = ?2, ending = ?3, sent = ?4, issued = ?5, failed = ?6,
                 uncertain = ?7, retries = ?8, throttle_events = ?9, elapsed_ms = ?10 WHERE id = ?1",
                params![
                    id,
                    ended_at,
                    ending.as_str(),
                    counters.sent as i64,
                    counters.issued as i64,
                    counters.failed as i64,
                    counters.uncertain as i64,
                    counters.retries as i64,
                    counters.throttle_events as i64,
                    elapsed.as_millis() as i64
                ],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Issued and failed identities of the current input, for the failure-rate rule.
    pub(crate) fn issued_and_failed(&self) -> Result<(u64, u64), LedgerError> {
        let counts = self.status_counts()?;
        Ok((counts.issued, counts.failed))
    }
}
