//! A run's numbers and how it ended: [`RunCounters`] is the one set of counters that the live
//! display, the `runs` table, the attempts tally and `campaign status` all read;
//! [`LiveCounters`] is its atomic twin that the workers bump during a run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// How a run ended, as the `runs` table records it and `campaign status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunEnding {
    /// Every row was sent (or the rest could not be).
    Finished,
    /// Stopped by a halting rule (exit 3); resumable.
    Halted,
    /// Stopped by Ctrl-C or SIGTERM (exit 130); resumable.
    Interrupted,
    /// Not ended: a run holds the state file right now.
    Running,
    /// Not ended, and no run holds the state file: it was killed before it could record its end.
    Aborted,
}

impl RunEnding {
    /// The spelling in the `runs` table and in `campaign status`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunEnding::Finished => "finished",
            RunEnding::Halted => "halted",
            RunEnding::Interrupted => "interrupted",
            RunEnding::Running => "running",
            RunEnding::Aborted => "aborted",
        }
    }

    /// Reads a spelling written by [`RunEnding::as_str`].
    pub(crate) fn parse(text: &str) -> Option<RunEnding> {
        [
            RunEnding::Finished,
            RunEnding::Halted,
            RunEnding::Interrupted,
            RunEnding::Running,
            RunEnding::Aborted,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }
}

impl fmt::Display for RunEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::types::FromSql for RunEnding {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        RunEnding::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown run ending {text:?}").into())
        })
    }
}

/// What one run did. Serialised flat, as `campaign status --json` prints it inside `last_run`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct RunCounters {
    /// Requests sent.
    pub(crate) sent: u64,
    pub(crate) issued: u64,
    pub(crate) failed: u64,
    pub(crate) uncertain: u64,
    /// Transient failures that were (or will be) retried.
    pub(crate) retries: u64,
    pub(crate) throttle_events: u64,
}

impl RunCounters {
    /// Rows that reached a final state in this run.
    pub(crate) fn done(&self) -> u64 {
        self.issued + self.failed + self.uncertain
    }
}

/// The counters of the run going on, shared by the workers, the progress display and the
/// halting rules (plus, for the failure-rate rule, what earlier runs finished).
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    sent: AtomicU64,
    issued: AtomicU64,
    failed: AtomicU64,
    uncertain: AtomicU64,
    /// Rows waiting out a backoff right now.
    retrying: AtomicU64,
    retries: AtomicU64,
    throttle_events: AtomicU64,
    /// Issued and failed rows of earlier runs, for the failure-rate rule.
    earlier_issued: AtomicU64,
    earlier_failed: AtomicU64,
}

impl LiveCounters {
    /// Counters that start from what earlier runs finished: `issued` and `failed` rows of the
    /// current input.
    pub(crate) fn after(earlier_issued: u64, earlier_failed: u64) -> LiveCounters {
        LiveCounters {
            earlier_issued: earlier_issued.into(),
            earlier_failed: earlier_failed.into(),
            ..LiveCounters::default()
        }
    }

    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Relaxed);
    }
    pub(crate) fn issued(&self) {
        self.issued.fetch_add(1, Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }
    pub(crate) fn uncertain(&self) {
        self.uncertain.fetch_add(1, Relaxed);
    }
    pub(crate) fn throttled(&self) {
        self.throttle_events.fetch_add(1, Relaxed);
    }
    pub(crate) fn retry_started(&self) {
        self.retries.fetch_add(1, Relaxed);
        self.retrying.fetch_add(1, Relaxed);
    }
    pub(crate) fn retry_ended(&self) {
        self.retrying.fetch_sub(1, Relaxed);
    }

    /// A consistent-enough copy of this run's counters.
    pub(crate) fn snapshot(&self) -> RunCounters {
        RunCounters {
            sent: self.sent.load(Relaxed),
            issued: self.issued.load(Relaxed),
            failed: self.failed.load(Relaxed),
            uncertain: self.uncertain.load(Relaxed),
            retries: self.retries.load(Relaxed),
            throttle_events: self.throttle_events.load(Relaxed),
        }
    }

    /// Rows waiting out a backoff right now.
    pub(crate) fn retrying(&self) -> u64 {
        self.retrying.load(Relaxed)
    }

    /// Failed and finished (issued + failed) rows over this and earlier runs.
    pub(crate) fn failure_tally(&self) -> (u64, u64) {
        let failed = self.failed.load(Relaxed) + self.earlier_failed.load(Relaxed);
        let issued = self.issued.load(Relaxed) + self.earlier_issued.load(Relaxed);
        (failed, failed + issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_read_back_from_their_spelling() {
        for ending in [
            RunEnding::Finished,
            RunEnding::Halted,
            RunEnding::Interrupted,
            RunEnding::Running,
            RunEnding::Aborted,
        ] {
            assert_eq!(RunEnding::parse(ending.as_str()), Some(ending));
            assert_eq!(
                serde_json::to_string(&ending).unwrap(),
                format!("\"{ending}\"")
            );
        }
    }

    #[test]
    fn the_failure_tally_counts_earlier_runs() {
        let live = LiveCounters::after(3, 1);
        live.issued();
        live.failed();
        live.uncertain();
        assert_eq!(live.failure_tally(), (2, 6));
        let counters = live.snapshot();
        assert_eq!((counters.issued, counters.done()), (1, 3));
        live.retry_started();
        assert_eq!((live.retrying(), live.snapshot().retries), (1, 1));
        live.retry_ended();
        assert_eq!(live.retrying(), 0);
    }
}
