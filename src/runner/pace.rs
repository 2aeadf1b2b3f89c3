//! Pacing: one rate limiter shared by every worker, slowed down by throttling and sped up again.
//!
//! Two layers. A governor limiter spaces turns evenly at the current rate: a row takes its turn
//! before it is marked in flight, so rows in flight are those whose turn came, not a queue
//! waiting for one. Its small burst lets the schedule absorb a worker that wakes a little late,
//! so the achieved rate is the configured one rather than drifting below it. Under it, a
//! sliding window is the hard guarantee that no one-second window at the gateway, wherever it
//! starts, ever holds more than `qps` requests. The window counts each request from the moment
//! it is admitted until a second after it was actually written to the connection (the HTTP body
//! stamps that moment, see [`Ticket`]): a request admitted but not yet written counts as
//! being written now. So the time between the pacing decision and the write (task scheduling,
//! the marking round trip, a connection being opened), which varies on a loaded machine, can
//! never bunch requests at the gateway. A flow-control answer pauses everyone until the ban
//! ends and halves the rate; each second's worth of clean answers then adds back a tenth of
//! `qps`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Added to the one-second window: covers the way from the stamp (the body's first poll) to the
/// gateway's clock: the write that follows the poll (the thread may be preempted in between: on
/// a loaded machine about 1 request in 500 took longer than this, debug build) and the network.
/// The simulator counts from the kernel's receive timestamp, so its own scheduling does not
/// enter. The pace is kept a little under `qps` by it: 1 / 1.008 = 99.2% of `qps` when the
/// window binds.
const WINDOW_GUARD: Duration = Duration::from_millis(8);

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

/// The requests of the last second at the gateway, at most `cap` of them: those admitted and
/// not yet written, and the write instants of the last second (sorted).
struct Window {
    cap: usize,
    unwritten: usize,
    written: VecDeque<Instant>,
}

impl Window {
    fn span() -> Duration {
        Duration::from_secs(1) + WINDOW_GUARD
    }

    /// Takes a place for a request written from now on, or says how long until one frees up.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let span = Window::span();
        while self
            .written
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= span)
        {
            self.written.pop_front();
        }
        if self.unwritten + self.written.len() < self.cap {
            self.unwritten += 1;
            return Ok(());
        }
        // Full of unwritten requests: one of them frees nothing before it is written.
        let wait = match self.written.front() {
            Some(&oldest) => (oldest + span).saturating_duration_since(now),
            None => Duration::from_millis(1),
        };
        Err(wait.max(Duration::from_micros(100)))
    }

    /// An admitted request was written at `at`: it counts until `at` + the span.
    fn written(&mut self, at: Instant) {
        self.unwritten = self.unwritten.saturating_sub(1);
        let place = self.written.iter().rev().take_while(|t| **t > at).count();
        self.written.insert(self.written.len() - place, at);
    }
}

/// One admitted request's place in the window. [`Ticket::written`] records the moment its bytes
/// were handed to the connection; a ticket dropped without it (the request failed before or
/// while it was written) counts as written when dropped, which is never earlier than the truth.
pub(crate) struct Ticket {
    window: Option<Arc<Mutex<Window>>>,
}

impl Ticket {
    /// The request is being written now.
    pub(crate) fn written(mut self) {
        self.stamp();
    }

    fn stamp(&mut self) {
        if let Some(window) = self.window.take() {
            window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .written(Instant::now());
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.stamp();
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
    window: Option<Arc<Mutex<Window>>>,
}

/// An even spacing at `rate`, with a burst of about 2% of a second's sends (at least 2) so that
/// late wake-ups are caught up instead of lost.
fn limiter(rate: f64) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst = NonZeroU32::new((rate / 50.0) as u32)
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
                Arc::new(Mutex::new(Window {
                    cap: (qps.floor() as usize).max(1),
                    unwritten: 0,
                    written: VecDeque::new(),
                }))
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

    /// Waits for a row's turn at the current rate; the row is then marked in flight and sent.
    pub(crate) async fn wait_turn(&self) {
        let limiter = self.lock().limiter.clone();
        limiter.until_ready().await;
    }

    /// Takes a turn if one is due now, without waiting.
    pub(crate) fn try_turn(&self) -> bool {
        let limiter = self.lock().limiter.clone();
        limiter.check().is_ok()
    }

    /// Waits for a turn and a place in the window for a call whose write is not stamped (it
    /// counts as written now); the call should follow at once.
    pub(crate) async fn wait_slot(&self) {
        self.wait_turn().await;
        self.admit().await.written();
    }

    /// Waits for a place in the one-second window; the request should be written at once, and
    /// the ticket stamped when it is.
    pub(crate) async fn admit(&self) -> Ticket {
        let Some(window) = &self.window else {
            return Ticket { window: None };
        };
        loop {
            let admitted = window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .admit(Instant::now());
            match admitted {
                Ok(()) => {
                    return Ticket {
                        window: Some(window.clone()),
                    };
                }
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
            unwritten: 0,
            written: VecDeque::new(),
        };
        let at = |ms: u64| start + Duration::from_millis(ms);
        for ms in [0, 10, 20] {
            assert_eq!(window.admit(at(ms)), Ok(()));
            window.written(at(ms));
        }
        // The fourth must wait until the first is a full second (plus guard) old.
        let wait = window.admit(at(500)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500) + WINDOW_GUARD);
        let span = 1000 + WINDOW_GUARD.as_millis() as u64;
        assert!(window.admit(at(span - 1)).is_err());
        assert_eq!(window.admit(at(span)), Ok(()));
        assert_eq!(window.unwritten + window.written.len(), 3);
    }

    #[test]
    fn a_request_counts_from_when_it_was_written_not_admitted() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let span = 1000 + WINDOW_GUARD.as_millis() as u64;
        let mut window = Window {
            cap: 2,
            unwritten: 0,
            written: VecDeque::new(),
        };
        // A is admitted at 0 but not written yet (a loaded machine, a new connection); B is
        // written at once.
        assert_eq!(window.admit(at(0)), Ok(()));
        assert_eq!(window.admit(at(10)), Ok(()));
        window.written(at(10));
        // B has left the window by 2 s; A, unwritten, still counts as being written now.
        assert_eq!(window.admit(at(2000)), Ok(()));
        assert!(window.admit(at(2001)).is_err());
        // A is written at 1.99 s: it holds its place until a full window after that, so the
        // gateway never sees three requests within one second.
        window.written(at(1990));
        window.written(at(2001));
        assert!(window.admit(at(1990 + span - 1)).is_err());
        assert_eq!(window.admit(at(1990 + span)), Ok(()));
    }

    #[tokio::test]
    async fn turns_are_spaced_and_tickets_fill_the_window() {
        // 200 turns at qps 400: the limiter spaces them, and the window holds them all.
        let pacer = Pacer::new(400.0, Duration::from_secs(300));
        let mut sent = Vec::new();
        for _ in 0..200 {
            pacer.wait_turn().await;
            pacer.admit().await.written();
            sent.push(Instant::now());
        }
        let window = pacer.window.as_ref().unwrap().lock().unwrap();
        assert_eq!(window.written.len(), 200);
        assert_eq!(window.unwritten, 0);
        drop(window);
        // The burst is small (2% of a second's sends, 8 here): after it, the other 192 turns at
        // 400/s take at least 192 × 2.5 ms, less one period for where the first one fell.
        assert!(sent.last().unwrap().duration_since(sent[0]) >= Duration::from_micros(477_500));
    }

    #[tokio::test]
    async fn a_ticket_dropped_unwritten_counts_as_written_then() {
        let pacer = Pacer::new(2.0, Duration::from_secs(300));
        drop(pacer.admit().await);
        let window = pacer.window.as_ref().unwrap().lock().unwrap();
        assert_eq!((window.unwritten, window.written.len()), (0, 1));
    }
}
