//! Live counters of a run, shared by the workers, the progress display and the halting rules.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of this run (plus, for the failure-rate rule, what earlier runs finished).
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub issued: AtomicU64,
    pub failed: AtomicU64,
    pub uncertain: AtomicU64,
    /// Rows waiting out a backoff right now.
    pub retrying: AtomicU64,
    pub retries: AtomicU64,
    pub throttle_events: AtomicU64,
    /// Issued and failed rows of earlier runs, for the failure-rate rule.
    pub earlier_issued: AtomicU64,
    pub earlier_failed: AtomicU64,
}

/// A consistent-enough copy for display.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sent: u64,
    pub issued: u64,
    pub failed: u64,
    pub uncertain: u64,
    pub retrying: u64,
    pub retries: u64,
    pub throttle_events: u64,
}

impl Snapshot {
    /// Rows that reached a final state in this run.
    pub fn done(&self) -> u64 {
        self.issued + self.failed + self.uncertain
    }
}

impl Stats {
    pub fn sent(&self) {
        self.sent.fetch_add(1, Relaxed);
    }
    pub fn issued(&self) {
        self.issued.fetch_add(1, Relaxed);
    }
    pub fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }
    pub fn uncertain(&self) {
        self.uncertain.fetch_add(1, Relaxed);
    }
    pub fn throttled(&self) {
        self.throttle_events.fetch_add(1, Relaxed);
    }
    pub fn retry_started(&self) {
        self.retries.fetch_add(1, Relaxed);
        self.retrying.fetch_add(1, Relaxed);
    }
    pub fn retry_ended(&self) {
        self.retrying.fetch_sub(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.sent.load(Relaxed),
            issued: self.issued.load(Relaxed),
            failed: self.failed.load(Relaxed),
            uncertain: self.uncertain.load(Relaxed),
            retrying: self.retrying.load(Relaxed),
            retries: self.retries.load(Relaxed),
            throttle_events: self.throttle_events.load(Relaxed),
        }
    }

    /// Failed and finished (issued + failed) rows over this and earlier runs.
    pub fn failure_tally(&self) -> (u64, u64) {
        let failed = self.failed.load(Relaxed) + self.earlier_failed.load(Relaxed);
        let issued = self.issued.load(Relaxed) + self.earlier_issued.load(Relaxed);
        (failed, failed + issued)
    }
}
