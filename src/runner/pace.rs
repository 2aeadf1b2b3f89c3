//! Pacing: one rate limiter shared by every worker, slowed down by throttling and sped up again.
//!
//! Sends are spaced evenly by a governor limiter with a burst of one, a little slower than `qps`
//! so that no one-second window, wherever it starts, holds more than `qps` sends even when a
//! send is delayed by scheduling. A flow-control answer pauses everyone until the ban ends and
//! halves the rate; each second's worth of clean answers then adds back a tenth of `qps`.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How much slower than `qps` sends are spaced: the slack that keeps every one-second window at
/// or under `qps` when sends jitter by a few milliseconds, while the achieved rate stays within
/// 1% of `qps`.
const SPACING_MARGIN: f64 = 0.006;

/// Pause when a flow-control answer announces no ban time.
pub const DEFAULT_BAN: Duration = Duration::from_secs(1);

/// What a throttle means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    /// Wait it out: every worker pauses until the ban ends.
    Wait,
    /// The ban is longer than `max_ban_wait` (e.g. the daily quota is used up): halt.
    TooLong(Duration),
}

struct State {
    limiter: Arc<DefaultDirectRateLimiter>,
    rate: f64,
    paused_until: Option<Instant>,
    clean_since_change: u64,
}

/// The run's shared pace.
pub struct Pacer {
    qps: f64,
    max_ban_wait: Duration,
    state: Mutex<State>,
}

fn limiter(rate: f64) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / (rate * (1.0 - SPACING_MARGIN)));
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a positive period")
        .allow_burst(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(quota))
}

impl Pacer {
    pub fn new(qps: f64, max_ban_wait: Duration) -> Pacer {
        Pacer {
            qps,
            max_ban_wait,
            state: Mutex::new(State {
                limiter: limiter(qps),
                rate: qps,
                paused_until: None,
                clean_since_change: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current target rate (requests per second).
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// How long until a throttle pause ends, if one is on.
    pub fn pause_left(&self) -> Option<Duration> {
        let until = self.lock().paused_until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Waits out any throttle pause (a pause may be extended while waiting).
    pub async fn wait_pause(&self) {
        while let Some(left) = self.pause_left() {
            tokio::time::sleep(left).await;
        }
    }

    /// Waits for this send's slot.
    pub async fn wait_slot(&self) {
        let limiter = self.lock().limiter.clone();
        limiter.until_ready().await;
    }

    /// A flow-control answer: pause everyone for the ban and halve the rate.
    pub fn on_throttle(&self, ban: Option<Duration>) -> ThrottleVerdict {
        let ban = ban.unwrap_or(DEFAULT_BAN);
        if ban > self.max_ban_wait {
            return ThrottleVerdict::TooLong(ban);
        }
        let mut state = self.lock();
        let until = Instant::now() + ban;
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        let floor = (self.qps / 64.0).min(1.0);
        state.rate = (state.rate / 2.0).max(floor);
        state.limiter = limiter(state.rate);
        state.clean_since_change = 0;
        ThrottleVerdict::Wait
    }

    /// An answer that was not a throttle: after a second's worth of them, speed up a step.
    pub fn on_clean_answer(&self) {
        let mut state = self.lock();
        if state.rate >= self.qps {
            return;
        }
        state.clean_since_change += 1;
        if state.clean_since_change as f64 >= state.rate.max(1.0) {
            state.rate = (state.rate + self.qps / 10.0).min(self.qps);
            state.limiter = limiter(state.rate);
            state.clean_since_change = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_halves_and_clean_answers_recover_to_qps() {
        let pacer = Pacer::new(100.0, Duration::from_secs(300));
        assert_eq!(
            pacer.on_throttle(Some(Duration::from_millis(1))),
            ThrottleVerdict::Wait
        );
        assert_eq!(pacer.rate(), 50.0);
        assert_eq!(pacer.on_throttle(None), ThrottleVerdict::Wait);
        assert_eq!(pacer.rate(), 25.0);
        assert!(pacer.pause_left().is_some());
        let mut answers = 0;
        while pacer.rate() < 100.0 {
            pacer.on_clean_answer();
            answers += 1;
            assert!(answers < 10_000, "never recovered");
        }
        assert_eq!(pacer.rate(), 100.0);
        // Recovery is gradual: it took several seconds' worth of answers, not one.
        assert!(answers > 100, "recovered after only {answers} answers");
    }

    #[test]
    fn a_ban_longer_than_the_bound_halts() {
        let pacer = Pacer::new(10.0, Duration::from_secs(300));
        assert_eq!(
            pacer.on_throttle(Some(Duration::from_secs(31_062))),
            ThrottleVerdict::TooLong(Duration::from_secs(31_062))
        );
        assert_eq!(pacer.rate(), 10.0);
        assert!(pacer.pause_left().is_none());
    }

    #[test]
    fn spacing_never_puts_more_than_qps_in_a_second() {
        // The limiter's own clock: count how many cells a fresh limiter grants in one second
        // worth of periods without waiting.
        for qps in [1.0, 7.0, 20.0, 50.0, 333.0, 1000.0] {
            let period = 1.0 / (qps * (1.0 - SPACING_MARGIN));
            // Sends at 0, p, 2p, ...: the number inside any closed one-second window.
            let in_window = (1.0 / period).floor() as u64 + 1;
            assert!(
                in_window <= qps as u64,
                "qps {qps}: {in_window} sends fit in one second"
            );
            assert!(1.0 / period >= qps * 0.99, "qps {qps}: rate below 99%");
        }
    }
}
