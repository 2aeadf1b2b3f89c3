//! One run's attempts over time, binned for the charts: sends and throttled answers per second,
//! latency percentiles per bin, and the marks (throttle bans and outages).
//!
//! The ledger streams the run's attempts once; this module folds them into at most
//! [`MAX_BINS`] bins, each with a fixed-size latency histogram, so memory does not depend on how
//! many attempts the run made.

use chrono::{DateTime, FixedOffset};

use crate::ledger::timeline::AttemptPoint;

/// At most this many bins per chart: enough to see the shape, few enough to keep the page small.
pub(crate) const MAX_BINS: f64 = 240.0;

/// Bin widths in seconds, smallest first; a run gets the smallest that fits in [`MAX_BINS`].
const WIDTHS: [f64; 17] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    14400.0, 43200.0, 86400.0,
];

/// What happened in one bin.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Bin {
    /// Requests that started in the bin, throttled ones included.
    pub sends: u64,
    pub throttled: u64,
    /// Latency percentiles (ms) of the answered requests that were not throttled.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    /// Not-throttled requests per latency bucket (see [`bucket`]); dropped once the
    /// percentiles are taken.
    pub(super) latency: Option<Box<[u32; BUCKETS]>>,
}

/// Latency buckets: exact below 100 ms, then two significant digits up to 100 s, then 10 s
/// steps up to 1000 s: within a few percent, in a fixed 460 counters per bin.
const BUCKETS: usize = 460;

/// The bucket of a latency.
fn bucket(ms: u64) -> usize {
    let ms = ms as usize;
    match ms {
        0..100 => ms,
        100..1000 => 100 + (ms - 100) / 10,
        1000..10_000 => 190 + (ms - 1000) / 100,
        10_000..100_000 => 280 + (ms - 10_000) / 1000,
        _ => (370 + (ms - 100_000) / 10_000).min(BUCKETS - 1),
    }
}

/// The middle of a bucket, in ms.
fn bucket_middle(index: usize) -> f64 {
    let (low, width) = match index {
        0..100 => (index, 1),
        100..190 => (100 + (index - 100) * 10, 10),
        190..280 => (1000 + (index - 190) * 100, 100),
        280..370 => (10_000 + (index - 280) * 1000, 1000),
        _ => (100_000 + (index - 370) * 10_000, 10_000),
    };
    low as f64 + (width - 1) as f64 / 2.0
}

/// Why part of a run is marked on the rate chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MarkKind {
    /// The gateway answered with flow-control errors: the run slowed down and waited.
    Throttle,
    /// The gateway could not be reached: the run paused.
    Outage,
}

/// A stretch of a run (seconds from its start).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mark {
    pub kind: MarkKind,
    pub from: f64,
    pub to: f64,
}

/// A run's timeline.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Timeline {
    /// When the run started, in the offset it was recorded with (for clock-time labels).
    pub start: DateTime<FixedOffset>,
    /// Seconds from the start to the end of the run (or of its last answer).
    pub span: f64,
    /// Seconds per bin.
    pub width: f64,
    pub bins: Vec<Bin>,
    pub marks: Vec<Mark>,
}

impl Timeline {
    /// An empty timeline from `start` to `end` (epoch seconds), with bins as wide as needed to
    /// stay within [`MAX_BINS`].
    pub(crate) fn new(start: DateTime<FixedOffset>, end: f64) -> Timeline {
        let span = (end - epoch(&start)).max(1.0);
        let width = WIDTHS
            .iter()
            .copied()
            .find(|w| span / w <= MAX_BINS)
            .unwrap_or((span / MAX_BINS).ceil());
        let count = (span / width).ceil() as usize;
        Timeline {
            start,
            span,
            width,
            bins: vec![Bin::default(); count],
            marks: Vec::new(),
        }
    }

    /// Counts one attempt in its bin (clamped: a clock step can put one just outside).
    pub(crate) fn add(&mut self, attempt: &AttemptPoint<'_>) {
        let offset = (attempt.at - epoch(&self.start)) / self.width;
        let index = (offset.max(0.0) as usize).min(self.bins.len() - 1);
        let bin = &mut self.bins[index];
        bin.sends += 1;
        if attempt.class == "throttled" {
            bin.throttled += 1;
        } else {
            let histogram = bin.latency.get_or_insert_with(|| Box::new([0; BUCKETS]));
            histogram[bucket(attempt.latency_ms)] += 1;
        }
    }

    /// Takes the percentiles and marks the throttled stretches, once every attempt is in.
    pub(crate) fn finish(&mut self) {
        for bin in &mut self.bins {
            bin.settle();
        }
        self.marks = throttle_marks(&self.bins, self.width);
    }

    /// Whether any request was made.
    pub(crate) fn is_empty(&self) -> bool {
        self.bins.iter().all(|b| b.sends == 0)
    }
}

/// Epoch seconds, with milliseconds.
pub(crate) fn epoch(at: &DateTime<FixedOffset>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

impl Bin {
    /// Takes the percentiles from the latency histogram, then drops it.
    fn settle(&mut self) {
        let Some(histogram) = self.latency.take() else {
            return;
        };
        let total: u64 = histogram.iter().map(|&n| u64::from(n)).sum();
        let at = |share: f64| {
            // The bucket holding the ceil(share × total)-th answer, at its middle.
            let rank = ((share * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            histogram.iter().enumerate().find_map(|(i, &n)| {
                seen += u64::from(n);
                (seen >= rank).then(|| bucket_middle(i))
            })
        };
        self.p50 = at(0.50);
        self.p90 = at(0.90);
        self.p99 = at(0.99);
    }
}

/// Consecutive bins with throttled answers, as marks.
fn throttle_marks(bins: &[Bin], width: f64) -> Vec<Mark> {
    let mut marks: Vec<Mark> = Vec::new();
    for (i, bin) in bins.iter().enumerate() {
        if bin.throttled == 0 {
            continue;
        }
        let (from, to) = (i as f64 * width, (i + 1) as f64 * width);
        match marks.last_mut() {
            Some(last) if last.to == from => last.to = to,
            _ => marks.push(Mark {
                kind: MarkKind::Throttle,
                from,
                to,
            }),
        }
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(at: f64, class: &str, latency_ms: u64) -> AttemptPoint<'_> {
        AttemptPoint {
            rowid: 0,
            at,
            latency_ms,
            class,
            code: None,
            sub_code: None,
        }
    }

    #[test]
    fn percentiles_come_from_the_answers_that_were_not_throttled() {
        let start = DateTime::parse_from_rfc3339("2026-11-22T10:00:00+08:00").unwrap();
        let t0 = epoch(&start);
        let mut timeline = Timeline::new(start, t0 + 2.0);
        assert_eq!((timeline.width, timeline.bins.len()), (1.0, 2));
        for i in 0..100 {
            let (class, ms) = match i {
                0..89 => ("issued", 10),
                89..99 => ("permanent", 20),
                _ => ("unknown", 1500),
            };
            timeline.add(&attempt(t0 + 0.5, class, ms));
        }
        for _ in 0..500 {
            timeline.add(&attempt(t0 + 0.7, "throttled", 1));
        }
        // One past the end lands in the last bin.
        timeline.add(&attempt(t0 + 9.0, "issued", 30));
        timeline.finish();
        let first = &timeline.bins[0];
        assert_eq!((first.sends, first.throttled), (600, 500));
        assert_eq!(
            (first.p50, first.p90, first.p99),
            (Some(10.0), Some(20.0), Some(20.0))
        );
        assert_eq!(
            (timeline.bins[1].sends, timeline.bins[1].p99),
            (1, Some(30.0))
        );
        assert_eq!(timeline.marks.len(), 1);
    }

    #[test]
    fn buckets_keep_two_significant_digits() {
        assert_eq!(bucket_middle(bucket(1549)), 1549.5);
        assert_eq!(bucket_middle(bucket(99)), 99.0);
        assert_eq!(bucket_middle(bucket(123_456)), 124_999.5);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert!(bucket_middle(BUCKETS - 1) > 900_000.0);
    }

    #[test]
    fn a_long_run_gets_wide_bins() {
        let start = DateTime::parse_from_rfc3339("2026-11-22T10:00:00+08:00").unwrap();
        let day = Timeline::new(start, epoch(&start) + 86_400.0);
        assert_eq!(day.width, 600.0);
        assert!(day.bins.len() as f64 <= MAX_BINS);
    }

    #[test]
    fn consecutive_throttled_bins_make_one_mark() {
        let bin = |throttled| Bin {
            throttled,
            ..Bin::default()
        };
        let bins = [bin(0), bin(3), bin(1), bin(0), bin(2)];
        let marks = throttle_marks(&bins, 5.0);
        let spans: Vec<(f64, f64)> = marks.iter().map(|m| (m.from, m.to)).collect();
        assert_eq!(spans, vec![(5.0, 15.0), (20.0, 25.0)]);
    }
}
