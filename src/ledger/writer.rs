//! The ledger's owner during a run: one thread holds the connection and applies messages from
//! the workers in grouped transactions.
//!
//! The one rule it exists for: a row's in-flight mark is committed (fsync'd) before the worker
//! that asked for it is told to go ahead, so no request ever leaves without its mark on disk.
//! Everything queued while one commit runs goes into the next, so the cost of durability is one
//! fsync per group, not per row.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::guard::StateGuard;
use super::{Ledger, LedgerError};
use crate::domain::{RowStatus, RunCounters, now_rfc3339};
use crate::top::{OutcomeClass, PlatformError};

/// Largest number of messages applied in one transaction.
const MAX_GROUP: usize = 4096;

/// A row to send, as read from the ledger.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) entry_id: i64,
    pub(crate) row: i64,
    pub(crate) payload: String,
    pub(crate) request_id: Option<String>,
    /// Attempts already made in earlier runs.
    pub(crate) attempts: u32,
}

/// One attempt, for the attempts table.
#[derive(Clone, Debug)]
pub(crate) struct AttemptLog {
    pub(crate) attempt: u32,
    pub(crate) started_at: String,
    pub(crate) latency_ms: i64,
    pub(crate) class: OutcomeClass,
    pub(crate) error: Option<PlatformError>,
    pub(crate) top_request_id: Option<String>,
    pub(crate) request_id: Option<String>,
}

/// Where a row stands after an attempt (or after being let go unsent).
#[derive(Clone, Debug)]
pub(crate) enum Settle {
    /// Not final: waits for a retry or the next run; the last error (if any) is kept.
    Pending(Option<PlatformError>),
    Issued {
        issued_id: String,
        detail: String,
    },
    Failed(PlatformError),
    Uncertain(PlatformError),
}

/// What the workers tell the ledger.
#[derive(Debug)]
pub(crate) enum Msg {
    /// Mark rows in flight; `ack` fires once every mark is durable.
    InFlight {
        entry_ids: Vec<i64>,
        ack: oneshot::Sender<()>,
    },
    /// Record an attempt (if one was made) and the row's new state.
    Record(Box<Record>),
    /// The next rows to send after `after_row`, in input order.
    NextPending {
        generation: i64,
        after_row: i64,
        limit: usize,
        reply: oneshot::Sender<Vec<Job>>,
    },
    /// The gateway became unreachable at `started_at` during run `run_id`: the run pauses.
    OutageBegan { run_id: i64, started_at: String },
    /// The outage that began at `started_at` ended: `recovered`, `halted` or `interrupted`.
    OutageEnded {
        run_id: i64,
        started_at: String,
        ended_at: String,
        ending: &'static str,
    },
}

/// An attempt's record and the row's new state.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) entry_id: i64,
    pub(crate) attempt: Option<AttemptLog>,
    /// Whether the attempt counts against `max_attempts` (throttled and fatal ones do not).
    pub(crate) counted: bool,
    pub(crate) settle: Settle,
    pub(crate) top_request_id: Option<String>,
    /// Set when the row reached a final state.
    pub(crate) finished_at: Option<String>,
}

impl Record {
    /// A row marked in flight but never sent: back to pending, untouched.
    pub(crate) fn unsent(entry_id: i64) -> Record {
        Record {
            entry_id,
            attempt: None,
            counted: false,
            settle: Settle::Pending(None),
            top_request_id: None,
            finished_at: None,
        }
    }

    /// An attempt that failed for now: the row waits for a retry, and the attempt counts against
    /// `max_attempts`.
    pub(crate) fn retry(entry_id: i64, attempt: AttemptLog, error: PlatformError) -> Record {
        Record::waiting(entry_id, attempt, true, error)
    }

    /// An attempt the platform turned away for reasons of its own (flow control, a
    /// configuration it refused), or one that never reached it (the gateway was unreachable):
    /// the row waits, and the attempt does not count against `max_attempts`.
    pub(crate) fn turned_away(entry_id: i64, attempt: AttemptLog, error: PlatformError) -> Record {
        Record::waiting(entry_id, attempt, false, error)
    }

    /// An attempt that settled the row for good (issued, failed or uncertain), finished now.
    pub(crate) fn settled(entry_id: i64, attempt: AttemptLog, settle: Settle) -> Record {
        Record {
            entry_id,
            top_request_id: attempt.top_request_id.clone(),
            attempt: Some(attempt),
            counted: true,
            settle,
            finished_at: Some(now_rfc3339()),
        }
    }

    fn waiting(entry_id: i64, attempt: AttemptLog, counted: bool, error: PlatformError) -> Record {
        Record {
            entry_id,
            top_request_id: attempt.top_request_id.clone(),
            attempt: Some(attempt),
            counted,
            settle: Settle::Pending(Some(error)),
            finished_at: None,
        }
    }
}

/// The handle the run keeps: send messages, then [`Writer::finish`] to get the ledger back.
pub(crate) struct Writer {
    pub(crate) tx: mpsc::Sender<Msg>,
    thread: JoinHandle<(Ledger, Result<(), LedgerError>)>,
}

impl Writer {
    /// Moves the ledger onto its own thread.
    ///
    /// With a `guard`, rows are marked in flight only while the state file is still the one the
    /// run has open: once it is lost, marks are refused (the rows stay unsent) while outcomes of
    /// requests already sent are still recorded in the open ledger.
    ///
    /// Each group's attempts are added to run `run`'s counters in the same transaction, so the
    /// `runs` row tells a running or killed run's numbers without a pass over the attempts.
    pub(crate) fn start(
        ledger: Ledger,
        capacity: usize,
        guard: Option<Arc<StateGuard>>,
        run: RunClock,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(capacity);
        let thread = std::thread::Builder::new()
            .name("ledger".to_owned())
            .spawn(move || {
                let mut ledger = ledger;
                let result = serve(&mut ledger, rx, guard.as_deref(), run);
                (ledger, result)
            })
            .expect("spawn the ledger thread");
        Writer { tx, thread }
    }

    /// Waits until every sender is gone and the last group is committed; returns the ledger and
    /// the first error the thread met, if any.
    pub(crate) fn finish(self) -> (Ledger, Result<(), LedgerError>) {
        drop(self.tx);
        self.thread
            .join()
            .expect("the ledger thread does not panic")
    }
}

/// The run whose counters the writer keeps: its id and when it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunClock {
    pub(crate) id: i64,
    pub(crate) started: Instant,
}

fn serve(
    ledger: &mut Ledger,
    mut rx: mpsc::Receiver<Msg>,
    guard: Option<&StateGuard>,
    run: RunClock,
) -> Result<(), LedgerError> {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(msg) => group.push(msg),
                Err(_) => break,
            }
        }
        let marks = group.iter().any(|m| matches!(m, Msg::InFlight { .. }));
        if marks && guard.is_some_and(|g| g.check().is_err()) {
            // Dropping the acks tells the dispatcher no row may leave.
            group.retain(|m| !matches!(m, Msg::InFlight { .. }));
        }
        let path = ledger.path.clone();
        let tx = ledger
            .conn
            .transaction()
            .map_err(|e| super::sqlite(&path, e))?;
        let mut replies = Vec::with_capacity(group.len());
        let mut tally = RunCounters::default();
        for msg in group.drain(..) {
            if let Msg::Record(record) = &msg
                && let Some(attempt) = &record.attempt
            {
                count_attempt(&mut tally, attempt.class);
            }
            if let Some(reply) = apply(&tx, msg).map_err(|e| super::sqlite(&path, e))? {
                replies.push(reply);
            }
        }
        if tally.sent > 0 {
            add_to_run(&tx, run, &tally).map_err(|e| super::sqlite(&path, e))?;
        }
        tx.commit().map_err(|e| super::sqlite(&path, e))?;
        for reply in replies {
            reply.send();
        }
    }
    Ok(())
}

/// Counts one attempt the way the run's counters do.
fn count_attempt(tally: &mut RunCounters, class: OutcomeClass) {
    tally.sent += 1;
    match class {
        OutcomeClass::Issued => tally.issued += 1,
        OutcomeClass::Permanent => tally.failed += 1,
        OutcomeClass::Unknown => tally.uncertain += 1,
        OutcomeClass::Transient => tally.retries += 1,
        OutcomeClass::Throttled => tally.throttle_events += 1,
        OutcomeClass::Fatal | OutcomeClass::Unreachable => {}
    }
}

/// Adds a group's attempts to the run's row (the run's end overwrites them with its own).
fn add_to_run(tx: &Transaction<'_>, run: RunClock, tally: &RunCounters) -> rusqlite::Result<()> {
    let n = |v: u64| v as i64;
    tx.prepare_cached(
        "UPDATE runs SET sent = sent + ?2, issued = issued + ?3, failed = failed + ?4,
         uncertain = uncertain + ?5, retries = retries + ?6,
         throttle_events = throttle_events + ?7, elapsed_ms = ?8
         WHERE id = ?1 AND ended_at IS NULL",
    )?
    .execute(params![
        run.id,
        n(tally.sent),
        n(tally.issued),
        n(tally.failed),
        n(tally.uncertain),
        n(tally.retries),
        n(tally.throttle_events),
        run.started.elapsed().as_millis() as i64
    ])
    .map(drop)
}

enum Reply {
    Ack(oneshot::Sender<()>),
    Jobs(oneshot::Sender<Vec<Job>>, Vec<Job>),
}

impl Reply {
    fn send(self) {
        // A worker that stopped waiting (interrupted) no longer needs the answer.
        match self {
            Reply::Ack(ack) => drop(ack.send(())),
            Reply::Jobs(reply, jobs) => drop(reply.send(jobs)),
        }
    }
}

fn apply(tx: &Transaction<'_>, msg: Msg) -> rusqlite::Result<Option<Reply>> {
    match msg {
        Msg::InFlight { entry_ids, ack } => {
            let mut mark = tx.prepare_cached("UPDATE entries SET status = ?2 WHERE id = ?1")?;
            for entry_id in entry_ids {
                mark.execute(params![entry_id, RowStatus::Inflight])?;
            }
            Ok(Some(Reply::Ack(ack)))
        }
        Msg::Record(record) => {
            let Record {
                entry_id,
                attempt,
                counted,
                settle,
                top_request_id,
                finished_at,
            } = *record;
            if attempt.is_none() && matches!(settle, Settle::Pending(None)) {
                // Marked in flight but never sent: back to pending, untouched, so that what an
                // earlier run left (its last error, a crash mark) still counts.
                tx.prepare_cached("UPDATE entries SET status = ?2 WHERE id = ?1")?
                    .execute(params![entry_id, RowStatus::Pending])?;
                return Ok(None);
            }
            if let Some(a) = attempt {
                let e = a.error.unwrap_or_default();
                tx.prepare_cached(
                    "INSERT INTO attempts (entry_id, attempt, started_at, latency_ms, class, code,
                     sub_code, message, top_request_id, request_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    entry_id,
                    a.attempt,
                    a.started_at,
                    a.latency_ms,
                    a.class.as_str(),
                    e.code,
                    e.sub_code,
                    e.message,
                    a.top_request_id,
                    a.request_id
                ])?;
            }
            let (state, issued_id, detail, error) = match settle {
                Settle::Pending(error) => (RowStatus::Pending, None, None, error),
                Settle::Issued { issued_id, detail } => {
                    (RowStatus::Issued, Some(issued_id), Some(detail), None)
                }
                Settle::Failed(mut error) => {
                    (RowStatus::Failed, None, error.detail.take(), Some(error))
                }
                Settle::Uncertain(mut error) => {
                    (RowStatus::Uncertain, None, error.detail.take(), Some(error))
                }
            };
            let error = error.unwrap_or_default();
            tx.prepare_cached(
                "UPDATE entries SET status = ?2, attempts = attempts + ?3, issued_id = ?4,
                 detail = ?5, error_code = ?6, error_sub_code = ?7, error_message = ?8,
                 top_request_id = COALESCE(?9, top_request_id), finished_at = ?10
                 WHERE id = ?1",
            )?
            .execute(params![
                entry_id,
                state,
                i64::from(counted),
                issued_id,
                detail,
                error.code,
                error.sub_code,
                (!error.message.is_empty()).then_some(error.message),
                top_request_id,
                finished_at
            ])?;
            Ok(None)
        }
        Msg::NextPending {
            generation,
            after_row,
            limit,
            reply,
        } => {
            let mut stmt = tx.prepare_cached(
                "SELECT id, row, payload, request_id, attempts FROM entries
                 WHERE generation = ?1 AND row > ?2 AND status = 'pending' ORDER BY row LIMIT ?3",
            )?;
            let jobs = stmt
                .query_map(params![generation, after_row, limit as i64], |r| {
                    Ok(Job {
                        entry_id: r.get(0)?,
                        row: r.get(1)?,
                        payload: r.get(2)?,
                        request_id: r.get(3)?,
                        attempts: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(Reply::Jobs(reply, jobs)))
        }
        Msg::OutageBegan { run_id, started_at } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outages (run_id, started_at) VALUES (?1, ?2)",
            )?
            .execute(params![run_id, started_at])?;
            Ok(None)
        }
        Msg::OutageEnded {
            run_id,
            started_at,
            ended_at,
            ending,
        } => {
            tx.prepare_cached(
                "UPDATE outages SET ended_at = ?3, ending = ?4 WHERE run_id = ?1 AND started_at = ?2",
            )?
            .execute(params![run_id, started_at, ended_at, ending])?;
            Ok(None)
        }
    }
}
