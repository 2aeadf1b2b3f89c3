//! The in-flight count: how many rows may be marked in flight at once, and the peak reached.
//!
//! A set `concurrency` is a hard cap. Unset, the cap follows what the rate needs by Little's
//! law: rows in flight = rate × time each one spends in flight. The time is a recent high
//! percentile of the measured latency (p99 of the last [`SAMPLES`] answers), with
//! [`HEADROOM`] on top, so a slow tail or a burst of catch-up sends does not make the run wait
//! for a place; the cap stays within `1..=max_concurrency`. The pacer keeps the rate, so a cap
//! above the need costs nothing: rows in flight stay at rate × latency. The peak in flight is
//! what a crash can leave uncertain for the non-idempotent API, and the summary prints it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit, TryAcquireError};

/// Latencies kept for the percentile.
const SAMPLES: usize = 512;
/// The percentile of the recent latencies used as the time in flight.
const PERCENTILE: f64 = 0.99;
/// Margin on Little's law.
const HEADROOM: f64 = 1.25;
/// The adaptive cap before any latency is measured (the old fixed default).
const INITIAL: usize = 16;
/// Until this many answers, the cap is resized after each; then after every [`RESIZE_EVERY`].
const WARM_UP: u64 = 64;
const RESIZE_EVERY: u64 = 16;

/// Rows in flight needed to keep `rate` per second when each spends `latency` in flight, with
/// headroom, within `1..=max`.
pub(crate) fn needed(rate: f64, latency: Duration, max: usize) -> usize {
    let need = (rate * latency.as_secs_f64() * HEADROOM).ceil() + 1.0;
    if need.is_finite() && need < max as f64 {
        (need as usize).max(1)
    } else {
        max.max(1)
    }
}

/// The `PERCENTILE` of `samples` (not empty).
fn percentile(samples: &VecDeque<Duration>) -> Duration {
    let mut sorted: Vec<Duration> = samples.iter().copied().collect();
    let at = ((sorted.len() as f64 * PERCENTILE).ceil() as usize).clamp(1, sorted.len()) - 1;
    *sorted.select_nth_unstable(at).1
}

struct Sizing {
    cap: usize,
    /// Permits to swallow as they come back, after the cap went down with rows in flight.
    debt: usize,
    latencies: VecDeque<Duration>,
    answers: u64,
}

/// The run's in-flight places.
pub(crate) struct InFlight {
    permits: Semaphore,
    /// `concurrency` was set: the cap never moves.
    fixed: bool,
    max: usize,
    sizing: Mutex<Sizing>,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    /// A hard cap of `fixed` when set, else an adaptive one up to `max`.
    pub(crate) fn new(fixed: Option<usize>, max: usize) -> InFlight {
        let max = fixed.unwrap_or(max).max(1);
        let cap = fixed.unwrap_or(INITIAL).clamp(1, max);
        InFlight {
            permits: Semaphore::new(cap),
            fixed: fixed.is_some(),
            max,
            sizing: Mutex::new(Sizing {
                cap,
                debt: 0,
                latencies: VecDeque::with_capacity(SAMPLES),
                answers: 0,
            }),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sizing> {
        self.sizing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most the cap can ever be.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The cap now.
    pub(crate) fn cap(&self) -> usize {
        self.lock().cap
    }

    /// Whether the cap was set by the user (`concurrency`).
    pub(crate) fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// Rows in flight now.
    pub(crate) fn now(&self) -> usize {
        self.now.load(Relaxed)
    }

    /// The most rows that were in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }

    /// Waits for a place; the caller forgets the permit and adopts it as a slot.
    pub(crate) async fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.permits.acquire().await
    }

    /// Places free right now.
    pub(crate) fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    pub(crate) fn try_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.permits.try_acquire_many(n)
    }

    /// A forgotten permit now travels with a row marked in flight.
    pub(crate) fn taken(&self) {
        let now = self.now.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
    }

    /// A row left flight: its place goes back, unless the cap went down meanwhile.
    pub(crate) fn release(&self) {
        self.now.fetch_sub(1, Relaxed);
        let mut sizing = self.lock();
        if sizing.debt > 0 {
            sizing.debt -= 1;
        } else {
            self.permits.add_permits(1);
        }
    }

    /// An answer took `latency`; the pace is `rate` per second. Resizes an adaptive cap.
    pub(crate) fn observe(&self, latency: Duration, rate: f64) {
        if self.fixed {
            return;
        }
        let mut sizing = self.lock();
        if sizing.latencies.len() == SAMPLES {
            sizing.latencies.pop_front();
        }
        sizing.latencies.push_back(latency);
        sizing.answers += 1;
        if sizing.answers > WARM_UP && !sizing.answers.is_multiple_of(RESIZE_EVERY) {
            return;
        }
        let target = needed(rate, percentile(&sizing.latencies), self.max);
        self.resize(&mut sizing, target);
    }

    fn resize(&self, sizing: &mut Sizing, target: usize) {
        if target > sizing.cap {
            let mut more = target - sizing.cap;
            let forgiven = more.min(sizing.debt);
            sizing.debt -= forgiven;
            more -= forgiven;
            self.permits.add_permits(more);
        } else if target < sizing.cap {
            let less = sizing.cap - target;
            let free = self.permits.available_permits().min(less);
            let took = u32::try_from(free)
                .ok()
                .and_then(|n| self.permits.try_acquire_many(n).ok());
            let took = match took {
                Some(permits) => {
                    permits.forget();
                    free
                }
                None => 0,
            };
            sizing.debt += less - took;
        }
        sizing.cap = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn littles_law_with_headroom_within_bounds() {
        // 500/s × 80 ms = 40 in flight on average; with headroom 51.
        assert_eq!(needed(500.0, Duration::from_millis(80), 256), 51);
        assert_eq!(needed(2000.0, Duration::from_millis(800), 256), 256);
        assert_eq!(needed(0.5, Duration::from_millis(1), 256), 2);
        assert_eq!(needed(f64::INFINITY, Duration::from_millis(1), 256), 256);
        assert_eq!(needed(10.0, Duration::ZERO, 256), 1);
    }

    #[test]
    fn the_adaptive_cap_grows_with_latency_and_shrinks_back() {
        let gate = InFlight::new(None, 256);
        assert_eq!(gate.cap(), INITIAL);
        for _ in 0..WARM_UP {
            gate.observe(Duration::from_millis(20), 500.0);
        }
        let fast = gate.cap();
        assert_eq!(fast, needed(500.0, Duration::from_millis(20), 256));
        for _ in 0..SAMPLES {
            gate.observe(Duration::from_millis(200), 500.0);
        }
        let slow = gate.cap();
        assert!(slow > fast, "{slow} <= {fast}");
        assert_eq!(slow, needed(500.0, Duration::from_millis(200), 256));
        assert_eq!(gate.available_permits(), slow);
        for _ in 0..SAMPLES {
            gate.observe(Duration::from_millis(20), 500.0);
        }
        assert_eq!(gate.cap(), fast);
        assert_eq!(gate.available_permits(), fast);
    }

    #[test]
    fn a_slow_tail_counts_through_the_percentile() {
        let gate = InFlight::new(None, 256);
        // 2% of answers take 800 ms: the p99 is the tail.
        for i in 0..SAMPLES {
            let ms = if i % 50 == 0 { 800 } else { 80 };
            gate.observe(Duration::from_millis(ms), 100.0);
        }
        assert_eq!(gate.cap(), needed(100.0, Duration::from_millis(800), 256));
    }

    #[test]
    fn a_set_concurrency_is_a_hard_cap() {
        let gate = InFlight::new(Some(16), 256);
        for _ in 0..SAMPLES {
            gate.observe(Duration::from_secs(2), 2000.0);
        }
        assert_eq!(gate.cap(), 16);
        assert_eq!(gate.max(), 16);
        assert_eq!(gate.available_permits(), 16);
    }

    #[test]
    fn shrinking_with_rows_in_flight_swallows_their_places_and_counts_the_peak() {
        let gate = InFlight::new(None, 256);
        // 16 rows in flight: every place taken.
        gate.try_acquire_many(16).unwrap().forget();
        (0..16).for_each(|_| gate.taken());
        assert_eq!(gate.peak(), 16);
        for _ in 0..WARM_UP {
            gate.observe(Duration::from_millis(1), 10.0);
        }
        assert_eq!(gate.cap(), 2);
        // The places of 14 of them are swallowed as they come back; then 2 are free.
        (0..16).for_each(|_| gate.release());
        assert_eq!(gate.available_permits(), 2);
        assert_eq!(gate.now(), 0);
        assert_eq!(gate.peak(), 16);
    }
}
