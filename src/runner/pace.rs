//! Pacing: one rate limiter shared by every worker, slowed down by throttling and sped up again.
//!
//! Two layers. A governor limiter spaces sends evenly at the current rate; its small burst lets
//! the schedule absorb a worker that wakes a little late, so the achieved rate is the configured
//! one rather than drifting below it. Under it, a sliding window of the last `qps` send instants
//! is the hard guarantee: no one-second window, wherever it starts, ever holds more than `qps`
//! sends (with a few milliseconds of guard for the way to the wire). A flow-control answer
//! pauses everyone until the ban ends and halves the rate; each second's worth of clean answers
//! then adds back a tenth of `qps`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Added to the one-second window: the send instant is taken just before the request goes
/// out, and this covers the scheduling between here and the wire.
const WINDOW_GUARD: Duration = Duration::from_millis(3);

/// Above this rate the window is not kept (it would hold that many instants): such a `qps` means
/// "as fast as possible".
const UNLIMITED: f64 = 100_000.0;

/// Pause when a flow-control answer announces no ban time.
pub(crate) const DEFAULT_BAN: Duration = Duration::from_secs(1);

/// What a throttle means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThrottleVerdict {
    /// Wait it out: every worker pauses until the ban ends.
    Wait,
    /// The ban is longer than `max_ban_wait` (e.g. the daily quota is used up): halt.
    TooLong(Duration),
}

/// The send instants of the last second, at most `cap` of them.
struct Window {
    cap: usize,
    sends: VecDeque<Instant>,
}

impl Window {
    /// Takes a place for a send now, or says how long until one frees up.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let span = Duration::from_secs(1) + WINDOW_GUARD;
        while self
            .sends
            .front()
            .is_some_and(|&t| now.duration_since(t) >= span)
        {
            self.sends.pop_front();
        }
        if self.sends.len() < self.cap {
            self.sends.push_back(now);
            return Ok(());
        }
        let oldest = *self.sends.front().expect("a full window is not empty");
        Err((oldest + span)
            .saturating_duration_since(now)
            .max(Duration::from_micros(100)))
    }
}

struct State {
    limiter: Arc<DefaultDirectRateLimiter>,
    rate: f64,
    paused_until: Option<Instant>,
    clean_since_change: u64,
}

/// The run's shared pace.
pub(crate) struct Pacer {
    qps: f64,
    max_ban_wait: Duration,
    state: Mutex<State>,
    window: Option<Mutex<Window>>,
}

/// An even spacing at `rate`, with a burst of about 1% of a second's sends (at least 2) so that
/// late wake-ups are caught up instead of lost.
fn limiter(rate: f64) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst = NonZeroU32::new((rate / 100.0) as u32)
        .unwrap_or(NonZeroU32::MIN)
        .max(NonZeroU32::new(2).expect("2 > 0"));
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a positive period")
        .allow_burst(burst);
    Arc::new(RateLimiter::direct(quota))
}

impl Pacer {
    pub(crate) fn new(qps: f64, max_ban_wait: Duration) -> Pacer {
        Pacer {
            qps,
            max_ban_wait,
            state: Mutex::new(State {
                limiter: limiter(qps),
                rate: qps,
                paused_until: None,
                clean_since_change: 0,
            }),
            window: (qps < UNLIMITED).then(|| {
                Mutex::new(Window {
                    cap: (qps.floor() as usize).max(1),
                    sends: VecDeque::new(),
                })
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current target rate (requests per second).
    pub(crate) fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// How long until a throttle pause ends, if one is on.
    pub(crate) fn pause_left(&self) -> Option<Duration> {
        let until = self.lock().paused_until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Waits out any throttle pause (a pause may be extended while waiting).
    pub(crate) async fn wait_pause(&self) {
        while let Some(left) = self.pause_left() {
            tokio::time::sleep(left).await;
        }
    }

    /// Waits for this send's slot; the send should follow at once.
    pub(crate) async fn wait_slot(&self) {
        let limiter = self.lock().limiter.clone();
        limiter.until_ready().await;
        let Some(window) = &self.window else { return };
        loop {
            let admitted = window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .admit(Instant::now());
            match admitted {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// A flow-control answer: pause everyone for the ban and halve the rate.
    pub(crate) fn on_throttle(&self, ban: Option<Duration>) -> ThrottleVerdict {
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
    pub(crate) fn on_clean_answer(&self) {
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
    fn the_window_never_admits_more_than_qps_in_any_second() {
        let start = Instant::now();
        let mut window = Window {
            cap: 3,
            sends: VecDeque::new(),
        };
        let at = |ms: u64| start + Duration::from_millis(ms);
        for ms in [0, 10, 20] {
            assert_eq!(window.admit(at(ms)), Ok(()));
        }
        // The fourth must wait until the first is a full second (plus guard) old.
        let wait = window.admit(at(500)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500) + WINDOW_GUARD);
        assert!(window.admit(at(1000)).is_err());
        assert_eq!(window.admit(at(1003)), Ok(()));
        assert_eq!(window.sends.len(), 3);
    }

    #[tokio::test]
    async fn sends_are_spaced_and_recorded_in_the_window() {
        // 200 sends at qps 400: the window holds them all, and the limiter spaces them.
        let pacer = Pacer::new(400.0, Duration::from_secs(300));
        let mut sent = Vec::new();
        for _ in 0..200 {
            pacer.wait_slot().await;
            sent.push(Instant::now());
        }
        assert_eq!(
            pacer.window.as_ref().unwrap().lock().unwrap().sends.len(),
            200
        );
        // The burst is small: 200 sends at 400/s cannot take much less than half a second.
        assert!(sent.last().unwrap().duration_since(sent[0]) >= Duration::from_millis(480));
    }
}
