//! The simulator's counters and the JSON that `GET /sim/stats` answers with.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::call::Method;

/// The counters at `GET /sim/stats` (and [`SimServer::stats`](super::SimServer::stats)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Every request to the gateway path, valid or not.
    pub calls: u64,
    /// Issuances (certificate codes and right grants); an idempotent replay is not one.
    pub issued: u64,
    /// Identities issued more than once; 0 after a correct campaign.
    pub duplicates: u64,
    /// The most calls that arrived within any sliding one-second window.
    pub peak_calls_per_second: u64,
    /// Calls refused for a missing or wrong signature or `sign_method` (codes 24 and 25).
    pub rejected_signatures: u64,
    /// Calls refused by flow control (code 7).
    pub throttled: u64,
    /// alsc calls answered from the stored result of an earlier call with the same `request_id`.
    pub replayed: u64,
    /// Answers held back by the withhold fault or trigger.
    pub withheld: u64,
    /// Issuances per identity (method, then the object param without `request_id`, keys sorted).
    pub issued_by_identity: BTreeMap<String, u64>,
    /// Calls per kind of answer: `issued`, `replayed`, `alsc:STATUS`, `tmall:code:CODE`,
    /// `certificate-query`, `time-get`, `user-seller-get`, `error:CODE[:SUB_CODE]`, `http-502`,
    /// `malformed`. Sums to `calls`.
    pub calls_by_outcome: BTreeMap<String, u64>,
    /// Calls per `method` parameter, valid or not; `other` for a missing or unknown method.
    /// Sums to `calls`.
    #[serde(default)]
    pub calls_by_method: BTreeMap<String, u64>,
}

/// How long after its arrival a call may still be recorded and counted in its one-second
/// window: calls reach the counters out of order (each is stamped when its bytes arrived, then
/// waits for its handler, which on a loaded machine can take hundreds of milliseconds).
const REORDER: Duration = Duration::from_secs(5);

/// The call-level counters; issuance counts live with the issuing state.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    calls: u64,
    /// Arrivals of the last second and [`REORDER`] before the newest, sorted: the windows that
    /// start at them may still gain a late-recorded call.
    recent: VecDeque<Instant>,
    /// The busiest window among those that start at a call no longer in `recent`.
    peak: u64,
    rejected_signatures: u64,
    throttled: u64,
    replayed: u64,
    withheld: u64,
    by_outcome: HashMap<String, u64>,
    by_method: HashMap<&'static str, u64>,
}

/// The calls of the sorted `arrivals` in the one-second window that starts at `arrivals[first]`.
fn window_from(arrivals: &VecDeque<Instant>, first: usize) -> u64 {
    let end = arrivals[first] + Duration::from_secs(1);
    (arrivals.partition_point(|t| *t < end) - first) as u64
}

impl Stats {
    /// Records a call to `method` (the parameter as sent) that arrived at `at`. Calls are
    /// recorded slightly out of order; each is put in its place, and a window's count is final
    /// only once nothing recorded later can still fall into it.
    pub(crate) fn arrive(&mut self, at: Instant, method: Option<&str>) {
        self.calls += 1;
        let method = method.and_then(Method::find).map_or("other", Method::name);
        *self.by_method.entry(method).or_default() += 1;
        if self.recent.front().is_some_and(|first| at < *first) {
            // Later than REORDER: its window's calls are gone; count it with those kept.
            self.recent.push_front(at);
            self.peak = self.peak.max(window_from(&self.recent, 0));
            self.recent.pop_front();
            return;
        }
        let later = self.recent.iter().rev().take_while(|t| **t > at).count();
        self.recent.insert(self.recent.len() - later, at);
        let newest = *self.recent.back().expect("just inserted");
        let Some(horizon) = newest.checked_sub(Duration::from_secs(1) + REORDER) else {
            return;
        };
        while self.recent.front().is_some_and(|t| *t < horizon) {
            self.peak = self.peak.max(window_from(&self.recent, 0));
            self.recent.pop_front();
        }
    }

    /// The most calls that arrived within any sliding second so far.
    fn peak(&self) -> u64 {
        (0..self.recent.len()).fold(self.peak, |peak, first| {
            peak.max(window_from(&self.recent, first))
        })
    }

    /// Counts one answer in its `calls_by_outcome` bucket.
    pub(crate) fn answered(&mut self, bucket: &str) {
        match self.by_outcome.get_mut(bucket) {
            Some(count) => *count += 1,
            None => {
                self.by_outcome.insert(bucket.to_owned(), 1);
            }
        }
    }

    pub(crate) fn rejected_signature(&mut self) {
        self.rejected_signatures += 1;
    }

    pub(crate) fn throttled(&mut self) {
        self.throttled += 1;
    }

    pub(crate) fn replayed(&mut self) {
        self.replayed += 1;
    }

    pub(crate) fn withheld(&mut self) {
        self.withheld += 1;
    }

    /// The public counters; the issuance fields are filled in by the caller.
    pub(crate) fn snapshot(&self) -> SimStats {
        SimStats {
            calls: self.calls,
            peak_calls_per_second: self.peak(),
            rejected_signatures: self.rejected_signatures,
            throttled: self.throttled,
            replayed: self.replayed,
            withheld: self.withheld,
            calls_by_outcome: self
                .by_outcome
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            calls_by_method: self
                .by_method
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            ..SimStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_the_busiest_sliding_second() {
        let mut stats = Stats::default();
        let t0 = Instant::now() + Duration::from_secs(5);
        let at = |ms| t0 + Duration::from_millis(ms);
        // Two bursts of 3 that a fixed-second bucket would split, 600 ms apart: 6 in one window.
        for ms in [700, 800, 900, 1_300, 1_400, 1_500] {
            stats.arrive(at(ms), None);
        }
        for ms in [3_000, 3_100] {
            stats.arrive(at(ms), None);
        }
        let snap = stats.snapshot();
        assert_eq!(snap.calls, 8);
        assert_eq!(snap.peak_calls_per_second, 6);
    }

    #[test]
    fn a_call_exactly_one_second_later_starts_a_new_window() {
        let mut stats = Stats::default();
        let t0 = Instant::now() + Duration::from_secs(5);
        stats.arrive(t0, None);
        stats.arrive(t0 + Duration::from_secs(1), Some("taobao.time.get"));
        let snap = stats.snapshot();
        assert_eq!(snap.peak_calls_per_second, 1);
        assert_eq!(snap.calls_by_method["other"], 1);
        assert_eq!(snap.calls_by_method["taobao.time.get"], 1);
    }

    #[test]
    fn late_recorded_arrivals_count_in_their_own_window() {
        let mut stats = Stats::default();
        let t0 = Instant::now() + Duration::from_secs(5);
        let at = |ms| t0 + Duration::from_millis(ms);
        for ms in [0, 900, 500, 1_400, 1_100] {
            stats.arrive(at(ms), None);
        }
        // Windows: {0, 500, 900}, then {500, 900, 1100, 1400}.
        assert_eq!(stats.snapshot().peak_calls_per_second, 4);
        stats.arrive(at(100), None);
        assert_eq!(stats.snapshot().calls, 6);
        assert_eq!(stats.snapshot().peak_calls_per_second, 4);
    }

    #[test]
    fn a_call_recorded_late_still_counts_in_a_window_already_passed() {
        let mut stats = Stats::default();
        let t0 = Instant::now() + Duration::from_secs(5);
        let at = |ms| t0 + Duration::from_millis(ms);
        // 3 calls in [0, 1000), then a later one that ends their window, then the call of 500
        // recorded last (its handler ran late): 4 in the window from 0.
        for ms in [0, 300, 900, 1_600, 500] {
            stats.arrive(at(ms), None);
        }
        assert_eq!(stats.snapshot().peak_calls_per_second, 4);
        // Long after, the windows are final and keep that count.
        stats.arrive(at(60_000), None);
        assert_eq!(stats.snapshot().peak_calls_per_second, 4);
        assert_eq!(stats.snapshot().calls, 6);
    }

    #[test]
    fn buckets_count_answers() {
        let mut stats = Stats::default();
        stats.answered("issued");
        stats.answered("issued");
        stats.answered("error:25");
        let snap = stats.snapshot();
        assert_eq!(snap.calls_by_outcome["issued"], 2);
        assert_eq!(snap.calls_by_outcome["error:25"], 1);
    }
}
