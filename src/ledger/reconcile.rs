//! What reconciliation reads from and writes to the ledger: the `uncertain` rows with the times
//! that bound their requests, the issuing attempts that can show whether the query is up to
//! date, each row's verdict (`reconcile_checks`) and each pass (`reconcile_passes`).
//!
//! Times are RFC 3339 text as the runner writes them; SQL compares them with `julianday`, which
//! reads the offset, so a change of the local offset between runs does not reorder them.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};
use crate::domain::RowStatus;

/// Tables of reconciliation, created with the rest of the schema.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reconcile_passes (
    id INTEGER PRIMARY KEY,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    ending TEXT,
    checked INTEGER NOT NULL DEFAULT 0,
    issued INTEGER NOT NULL DEFAULT 0,
    resend INTEGER NOT NULL DEFAULT 0,
    uncertain INTEGER NOT NULL DEFAULT 0,
    queries INTEGER NOT NULL DEFAULT 0,
    throttle_events INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reconcile_checks (
    pass_id INTEGER NOT NULL,
    entry_id INTEGER NOT NULL,
    checked_at TEXT NOT NULL,
    verdict TEXT NOT NULL,
    certificate_code TEXT,
    reason TEXT NOT NULL,
    -- The earliest the row's requests can have started, as this check knew it: kept so that a
    -- row sent again keeps its earlier requests in its window.
    sent_from TEXT
);
CREATE INDEX IF NOT EXISTS reconcile_checks_entry ON reconcile_checks (entry_id);
";

/// An `uncertain` row of the current input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UncertainRow {
    pub(crate) entry_id: i64,
    pub(crate) row: i64,
    /// The object param as sent.
    pub(crate) payload: String,
    /// The earliest its requests can have started: its first recorded attempt; for a row found
    /// in flight after a crash, the start of the run that crashed; what an earlier check knew
    /// (a row sent again after a check); whichever is earliest. `None`: no trace of any.
    pub(crate) first_sent: Option<String>,
    /// When it became uncertain: the end of its last attempt, or when the crash was found.
    pub(crate) uncertain_since: Option<String>,
}

/// An attempt that issued, with the certificate it issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IssuedAttempt {
    pub(crate) row: i64,
    pub(crate) payload: String,
    pub(crate) issued_id: String,
    pub(crate) started_at: String,
    pub(crate) latency_ms: i64,
}

/// What a check decided for one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Exactly one certificate matches: the row is issued with it.
    Issued { code: String, detail: String },
    /// No certificate, and the query can be trusted to show it: send the row again.
    Resend { reason: String },
    /// Still unknown; `reason` says why.
    Uncertain { reason: String },
}

impl Verdict {
    /// The name stored in `reconcile_checks.verdict`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Verdict::Issued { .. } => "issued",
            Verdict::Resend { .. } => "resend",
            Verdict::Uncertain { .. } => "uncertain",
        }
    }
}

/// What one pass did, as `reconcile_passes` records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PassTally {
    /// Rows looked at.
    pub(crate) checked: u64,
    pub(crate) issued: u64,
    /// Rows put back to pending.
    pub(crate) resend: u64,
    /// Rows left uncertain.
    pub(crate) uncertain: u64,
    /// Query requests sent (pages, retries and throttled ones included).
    pub(crate) queries: u64,
    pub(crate) throttle_events: u64,
}

/// One recorded pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PassRecord {
    pub(crate) id: i64,
    /// `reconcile` (the command), `run-start` or `run-end`.
    pub(crate) trigger: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) ending: Option<String>,
    pub(crate) tally: PassTally,
}

const ISSUED_ATTEMPT: &str = "SELECT e.row, e.payload, e.issued_id, a.started_at, a.latency_ms
     FROM attempts a JOIN entries e ON e.id = a.entry_id
     WHERE a.class = 'issued' AND e.status = 'issued' AND e.issued_id IS NOT NULL
       AND e.issued_id <> ''";

fn issued_attempt(r: &rusqlite::Row<'_>) -> rusqlite::Result<IssuedAttempt> {
    Ok(IssuedAttempt {
        row: r.get(0)?,
        payload: r.get(1)?,
        issued_id: r.get(2)?,
        started_at: r.get(3)?,
        latency_ms: r.get(4)?,
    })
}

impl Ledger {
    /// The `uncertain` rows of the current input, in input order.
    pub(crate) fn uncertain_rows(&self) -> Result<Vec<UncertainRow>, LedgerError> {
        let wrap = |e| self.wrap(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.id, e.row, e.payload, e.finished_at,
                        (SELECT a.started_at FROM attempts a WHERE a.entry_id = e.id
                         ORDER BY a.attempt LIMIT 1),
                        CASE WHEN e.error_code = 'interrupted' THEN
                            (SELECT r.started_at FROM runs r
                             WHERE julianday(r.started_at) <= julianday(e.finished_at)
                             ORDER BY r.id DESC LIMIT 1)
                        END,
                        (SELECT c.sent_from FROM reconcile_checks c
                         WHERE c.entry_id = e.id AND c.sent_from IS NOT NULL
                         ORDER BY julianday(c.sent_from) LIMIT 1)
                 FROM entries e WHERE e.status = ?1 AND e.generation = ?2 ORDER BY e.row",
            )
            .map_err(wrap)?;
        let rows = stmt
            .query_map(
                params![RowStatus::Uncertain.as_str(), self.generation()?],
                |r| {
                    let first_attempt: Option<String> = r.get(4)?;
                    let crashed_run: Option<String> = r.get(5)?;
                    let checked_from: Option<String> = r.get(6)?;
                    Ok(UncertainRow {
                        entry_id: r.get(0)?,
                        row: r.get(1)?,
                        payload: r.get(2)?,
                        uncertain_since: r.get(3)?,
                        first_sent: earliest(earliest(first_attempt, crashed_run), checked_from),
                    })
                },
            )
            .map_err(wrap)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(wrap)
    }

    /// The first issuing attempt that started at or after `at`.
    pub(crate) fn first_issued_since(
        &self,
        at: &str,
    ) -> Result<Option<IssuedAttempt>, LedgerError> {
        let sql = format!(
            "{ISSUED_ATTEMPT} AND julianday(a.started_at) >= julianday(?1)
             ORDER BY julianday(a.started_at) LIMIT 1"
        );
        self.conn
            .query_row(&sql, [at], issued_attempt)
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// The last issuing attempt that ended at or before `at`.
    pub(crate) fn last_issued_by(&self, at: &str) -> Result<Option<IssuedAttempt>, LedgerError> {
        let sql = format!(
            "{ISSUED_ATTEMPT}
               AND julianday(a.started_at) + a.latency_ms / 86400000.0 <= julianday(?1)
             ORDER BY julianday(a.started_at) DESC LIMIT 1"
        );
        self.conn
            .query_row(&sql, [at], issued_attempt)
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Records the start of a pass; returns its id.
    pub(crate) fn begin_reconcile(
        &self,
        trigger: &str,
        started_at: &str,
    ) -> Result<i64, LedgerError> {
        self.conn
            .execute(
                "INSERT INTO reconcile_passes (trigger, started_at) VALUES (?1, ?2)",
                [trigger, started_at],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a pass ended and what it did.
    pub(crate) fn end_reconcile(
        &self,
        id: i64,
        ended_at: &str,
        ending: &str,
        tally: &PassTally,
    ) -> Result<(), LedgerError> {
        let n = |v: u64| v as i64;
        self.conn
            .execute(
                "UPDATE reconcile_passes SET ended_at = ?2, ending = ?3, checked = ?4, issued = ?5,
                 resend = ?6, uncertain = ?7, queries = ?8, throttle_events = ?9 WHERE id = ?1",
                params![
                    id,
                    ended_at,
                    ending,
                    n(tally.checked),
                    n(tally.issued),
                    n(tally.resend),
                    n(tally.uncertain),
                    n(tally.queries),
                    n(tally.throttle_events)
                ],
            )
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Applies a verdict to an `uncertain` row and records the check, in one transaction.
    /// A row that is no longer uncertain is left as it is. Returns whether the row changed.
    ///
    /// Issued: the certificate code and its detail, the row's error cleared. Resend: back to
    /// pending with the reason as its message (the send's error code is kept). Uncertain: the
    /// reason goes into the detail under `reconcile` ([`with_reconcile_note`]); the send's
    /// error, its answer and the time it became uncertain are kept.
    pub(crate) fn record_check(
        &mut self,
        pass_id: i64,
        row: &UncertainRow,
        checked_at: &str,
        verdict: &Verdict,
    ) -> Result<bool, LedgerError> {
        let path = self.path.clone();
        let wrap = |e| super::sqlite(&path, e);
        let entry_id = row.entry_id;
        let tx = self.conn.transaction().map_err(wrap)?;
        let changed = match verdict {
            Verdict::Issued { code, detail } => tx.execute(
                "UPDATE entries SET status = 'issued', issued_id = ?2, detail = ?3,
                 error_code = NULL, error_sub_code = NULL, error_message = NULL, finished_at = ?4
                 WHERE id = ?1 AND status = 'uncertain'",
                params![entry_id, code, detail, checked_at],
            ),
            Verdict::Resend { reason } => tx.execute(
                "UPDATE entries SET status = 'pending', detail = NULL, error_message = ?2,
                 finished_at = NULL WHERE id = ?1 AND status = 'uncertain'",
                params![entry_id, reason],
            ),
            Verdict::Uncertain { reason } => {
                let kept: Option<String> = tx
                    .query_row(
                        "SELECT detail FROM entries WHERE id = ?1",
                        [entry_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(wrap)?
                    .flatten();
                let detail = with_reconcile_note(kept.as_deref(), reason, checked_at);
                tx.execute(
                    "UPDATE entries SET detail = ?2 WHERE id = ?1 AND status = 'uncertain'",
                    params![entry_id, detail],
                )
            }
        }
        .map_err(wrap)?;
        let (code, reason) = match verdict {
            Verdict::Issued { code, .. } => {
                (Some(code.as_str()), "exactly one certificate matches")
            }
            Verdict::Resend { reason } | Verdict::Uncertain { reason } => (None, reason.as_str()),
        };
        tx.execute(
            "INSERT INTO reconcile_checks (pass_id, entry_id, checked_at, verdict,
             certificate_code, reason, sent_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                pass_id,
                entry_id,
                checked_at,
                verdict.as_str(),
                code,
                reason,
                row.first_sent
            ],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(changed > 0)
    }

    /// The most recent pass, and how many there were.
    pub(crate) fn last_reconcile(&self) -> Result<(Option<PassRecord>, u64), LedgerError> {
        let wrap = |e| self.wrap(e);
        if !self.has_table("reconcile_passes")? {
            return Ok((None, 0));
        }
        let count = self.count("SELECT COUNT(*) FROM reconcile_passes", [])?;
        let last = self
            .conn
            .query_row(
                "SELECT id, trigger, started_at, ended_at, ending, checked, issued, resend,
                        uncertain, queries, throttle_events
                 FROM reconcile_passes ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    let n = |i| r.get::<_, i64>(i).map(|n| n as u64);
                    Ok(PassRecord {
                        id: r.get(0)?,
                        trigger: r.get(1)?,
                        started_at: r.get(2)?,
                        ended_at: r.get(3)?,
                        ending: r.get(4)?,
                        tally: PassTally {
                            checked: n(5)?,
                            issued: n(6)?,
                            resend: n(7)?,
                            uncertain: n(8)?,
                            queries: n(9)?,
                            throttle_events: n(10)?,
                        },
                    })
                },
            )
            .optional()
            .map_err(wrap)?;
        Ok((last, count))
    }
}

/// The detail of a row still uncertain after a check: what it held (the platform's answer, for
/// a success without a certificate code) with `"reconcile": {"reason", "checked_at"}` set; a
/// detail that is not a JSON object is kept under `"detail"`.
pub(crate) fn with_reconcile_note(detail: Option<&str>, reason: &str, checked_at: &str) -> String {
    use serde_json::Value;
    let mut object = match detail.map(serde_json::from_str::<Value>) {
        None => serde_json::Map::new(),
        Some(Ok(Value::Object(object))) => object,
        Some(_) => {
            let mut object = serde_json::Map::new();
            object.insert("detail".to_owned(), detail.unwrap_or_default().into());
            object
        }
    };
    object.insert(
        "reconcile".to_owned(),
        serde_json::json!({ "reason": reason, "checked_at": checked_at }),
    );
    Value::Object(object).to_string()
}

/// The earlier of two RFC 3339 times (either may be missing or unreadable: the other wins).
fn earliest(a: Option<String>, b: Option<String>) -> Option<String> {
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    match (parse(&a), parse(&b)) {
        (Some(x), Some(y)) if y < x => b,
        (Some(_), _) => a,
        (None, Some(_)) => b,
        (None, None) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_keeps_the_platforms_answer_and_replaces_an_earlier_note() {
        let answer = r#"{"code":"0","model":null}"#;
        let once = with_reconcile_note(Some(answer), "first", "T1");
        assert_eq!(
            once,
            r#"{"code":"0","model":null,"reconcile":{"reason":"first","checked_at":"T1"}}"#
        );
        let twice = with_reconcile_note(Some(&once), "second", "T2");
        assert_eq!(
            twice,
            r#"{"code":"0","model":null,"reconcile":{"reason":"second","checked_at":"T2"}}"#
        );
        assert_eq!(
            with_reconcile_note(None, "r", "T"),
            r#"{"reconcile":{"reason":"r","checked_at":"T"}}"#
        );
        assert_eq!(
            with_reconcile_note(Some("plain"), "r", "T"),
            r#"{"detail":"plain","reconcile":{"reason":"r","checked_at":"T"}}"#
        );
    }

    #[test]
    fn the_earliest_time_wins_whatever_the_offset() {
        let a = Some("2026-11-22T10:00:00+08:00".to_owned());
        let b = Some("2026-11-22T03:00:00+00:00".to_owned());
        assert_eq!(earliest(a.clone(), b), a);
        assert_eq!(earliest(None, a.clone()), a);
        assert_eq!(earliest(Some("junk".to_owned()), a.clone()), a);
    }
}
