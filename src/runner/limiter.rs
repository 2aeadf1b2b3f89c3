//! What holds the run's rate back right now, and for how long each limiter held over the run.
//!
//! A watcher samples the run every [`SAMPLE_EVERY`]: a flow-control ban, the in-flight cap being
//! full, rows all waiting out a retry backoff, or else the pace itself. The progress display
//! shows the current limiter; the summary names the one that held longest when the run fell
//! short of `qps`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ctx::Ctx;
use crate::results::summary::human_duration;
use crate::top::Gateway;

/// How often the limiter is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// A run below this share of `qps` says so in its summary.
pub(crate) const SHORTFALL: f64 = 0.97;

/// What limits the rate at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Limiter {
    /// The pacer: `rate` per second, `qps` or less after throttling.
    Paced { rate: f64, qps: f64 },
    /// Every in-flight place is taken.
    InFlightCap(usize),
    /// A flow-control ban pauses the run.
    Throttled { ends_in: Duration },
    /// The gateway cannot be reached; the run waits for it.
    Unreachable,
    /// Every row in progress waits out a retry backoff.
    RetryBackoff,
}

/// The kinds of limiter, for the time each held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    FullPace,
    SlowedPace,
    InFlightCap,
    Throttled,
    Unreachable,
    RetryBackoff,
}

const KINDS: usize = 6;

impl Limiter {
    fn kind(&self) -> Kind {
        match self {
            Limiter::Paced { rate, qps } if rate < qps => Kind::SlowedPace,
            Limiter::Paced { .. } => Kind::FullPace,
            Limiter::InFlightCap(_) => Kind::InFlightCap,
            Limiter::Throttled { .. } => Kind::Throttled,
            Limiter::Unreachable => Kind::Unreachable,
            Limiter::RetryBackoff => Kind::RetryBackoff,
        }
    }
}

impl fmt::Display for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limiter::Paced { rate, qps } if rate < qps => {
                write!(f, "paced at {rate:.1}/s (slowed after throttling)")
            }
            Limiter::Paced { qps, .. } => write!(f, "paced at qps {qps}"),
            Limiter::InFlightCap(cap) => write!(f, "in-flight cap {cap}"),
            Limiter::Throttled { ends_in } => {
                write!(
                    f,
                    "throttled: ban ends in {}s",
                    ends_in.as_secs_f64().ceil()
                )
            }
            Limiter::Unreachable => f.write_str("gateway unreachable"),
            Limiter::RetryBackoff => f.write_str("retry backoff"),
        }
    }
}

/// One look at the run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    pub(crate) unreachable: bool,
    pub(crate) ban_left: Option<Duration>,
    pub(crate) in_flight: usize,
    pub(crate) cap: usize,
    pub(crate) retrying: u64,
    pub(crate) rate: f64,
    pub(crate) qps: f64,
}

/// What limits the run in `sample`, the most binding first.
pub(crate) fn classify(sample: &Sample) -> Limiter {
    if sample.unreachable {
        Limiter::Unreachable
    } else if let Some(ends_in) = sample.ban_left {
        Limiter::Throttled { ends_in }
    } else if sample.cap > 0 && sample.in_flight >= sample.cap {
        Limiter::InFlightCap(sample.cap)
    } else if sample.retrying > 0 && sample.in_flight == 0 {
        Limiter::RetryBackoff
    } else {
        Limiter::Paced {
            rate: sample.rate,
            qps: sample.qps,
        }
    }
}

#[derive(Default)]
struct Record {
    now: Option<Limiter>,
    /// Rows sent, and the time spent, while rows were still being handed out.
    sent: u64,
    feeding: Duration,
    held: [Duration; KINDS],
    /// The last limiter seen of each kind (for its name in the summary).
    last: [Option<Limiter>; KINDS],
}

/// The limiter now and the time each held, shared by the watcher, the display and the summary.
#[derive(Clone, Default)]
pub(crate) struct Watch {
    record: Arc<Mutex<Record>>,
}

impl Watch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `limiter` held for `span`.
    pub(crate) fn note(&self, limiter: Limiter, span: Duration) {
        let mut record = self.lock();
        let kind = limiter.kind() as usize;
        record.now = Some(limiter);
        record.held[kind] += span;
        record.last[kind] = Some(limiter);
    }

    /// `sent` rows so far, in `feeding` since the run began handing rows out.
    fn progress(&self, sent: u64, feeding: Duration) {
        let mut record = self.lock();
        record.sent = sent;
        record.feeding = feeding;
    }

    /// Every row was handed out: nothing limits the rate any more.
    fn fed(&self) {
        self.lock().now = None;
    }

    /// The rate achieved while rows were still being handed out (start-up and the last
    /// answers do not count), once it was sampled over a second.
    pub(crate) fn achieved(&self) -> Option<f64> {
        let record = self.lock();
        let secs = record.feeding.as_secs_f64();
        (secs >= 1.0).then(|| record.sent as f64 / secs)
    }

    /// The time rows were being handed out, as sampled.
    fn feeding(&self) -> Duration {
        self.lock().feeding
    }

    /// The limiter now, once sampled.
    pub(crate) fn now(&self) -> Option<Limiter> {
        self.lock().now
    }

    /// When `achieved` per second fell below [`SHORTFALL`] of `qps`: the limiter other than the
    /// full pace that held longest and for how long (if any did), and how long the full pace
    /// held.
    pub(crate) fn shortfall(&self, achieved: f64, qps: f64) -> Option<Shortfall> {
        if achieved >= SHORTFALL * qps {
            return None;
        }
        let record = self.lock();
        let longest = (0..KINDS)
            .filter(|&k| k != Kind::FullPace as usize && !record.held[k].is_zero())
            .max_by_key(|&k| record.held[k])
            .and_then(|k| Some((record.last[k]?, record.held[k])));
        Some(Shortfall {
            longest,
            paced: record.held[Kind::FullPace as usize],
        })
    }
}

/// Why a run fell below `qps`, as far as the limiters tell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Shortfall {
    /// The limiter other than the full pace that held longest, and for how long.
    pub(crate) longest: Option<(Limiter, Duration)>,
    /// How long the run was paced at the full `qps`: time in which the sends, not a limiter,
    /// fell behind (a machine too busy to keep the pace, or the start).
    pub(crate) paced: Duration,
}

impl Shortfall {
    /// The end of the summary's `below qps:` line: the limiter, unless it held for less than
    /// the full pace did; then that the sends fell behind the pace.
    fn explain(&self, feeding: Duration) -> String {
        let of = human_duration(feeding);
        match self.longest {
            Some((limiter, held)) if held >= self.paced => {
                format!("{limiter} held for {} of {of}", human_duration(held))
            }
            longest => {
                let other = longest.map_or_else(String::new, |(limiter, held)| {
                    format!("; {limiter} held for {}", human_duration(held))
                });
                format!(
                    "paced at qps for {} of {of}, yet the sends fell behind the pace (a busy \
                     machine, or the start){other}",
                    human_duration(self.paced)
                )
            }
        }
    }
}

/// Samples `ctx` into `watch` until every row was handed out (`ctx.fed`) or the run stops.
pub(crate) async fn watch<G: Gateway>(ctx: Arc<Ctx<G>>, watch: Watch) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let began = tokio::time::Instant::now();
    let mut last = began;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.fed.cancelled() => break,
            () = ctx.stop.cancelled() => break,
        }
        let now = tokio::time::Instant::now();
        watch.progress(ctx.stats.snapshot().sent, now - began);
        let sample = Sample {
            unreachable: ctx.outage.note().is_some(),
            ban_left: ctx.pacer.pause_left(),
            in_flight: ctx.in_flight.now(),
            cap: ctx.in_flight.cap(),
            retrying: ctx.stats.retrying(),
            rate: ctx.pacer.rate(),
            qps: ctx.limits.qps.get(),
        };
        watch.note(classify(&sample), now - last);
        last = now;
    }
    watch.fed();
}

/// What the summary says about the pace: the peak in flight, how the in-flight count was
/// bounded, and why the run fell short of `qps` when it did.
pub(crate) struct PaceReport {
    pub(crate) peak_in_flight: usize,
    pub(crate) in_flight_bound: String,
    pub(crate) shortfall: Option<String>,
}

/// The pace report of a run that has stopped sending, with `sent` rows sent.
pub(crate) fn report<G: Gateway>(ctx: &Ctx<G>, watch: &Watch, sent: u64) -> PaceReport {
    let in_flight = &ctx.in_flight;
    let in_flight_bound = if in_flight.is_fixed() {
        format!("concurrency = {}", in_flight.max())
    } else {
        format!(
            "adaptive, last {}, max_concurrency = {}",
            in_flight.cap(),
            in_flight.max()
        )
    };
    let qps = ctx.limits.qps.get();
    // Over a second's worth of sends, a rate below qps is worth explaining.
    let shortfall = watch
        .achieved()
        .filter(|_| sent as f64 >= qps)
        .and_then(|achieved| {
            let shortfall = watch.shortfall(achieved, qps)?;
            Some(format!(
                "below qps: {achieved:.1}/s is {:.0}% of qps {qps}; {}",
                100.0 * achieved / qps,
                shortfall.explain(watch.feeding())
            ))
        });
    PaceReport {
        peak_in_flight: in_flight.peak(),
        in_flight_bound,
        shortfall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        Sample {
            in_flight: 10,
            cap: 16,
            rate: 500.0,
            qps: 500.0,
            ..Sample::default()
        }
    }

    #[test]
    fn the_most_binding_limiter_is_shown() {
        assert_eq!(classify(&sample()).to_string(), "paced at qps 500");
        let full = Sample {
            in_flight: 16,
            ..sample()
        };
        assert_eq!(classify(&full).to_string(), "in-flight cap 16");
        let banned = Sample {
            ban_left: Some(Duration::from_millis(4200)),
            ..full
        };
        assert_eq!(classify(&banned).to_string(), "throttled: ban ends in 5s");
        let down = Sample {
            unreachable: true,
            ..banned
        };
        assert_eq!(classify(&down).to_string(), "gateway unreachable");
        let waiting = Sample {
            in_flight: 0,
            retrying: 3,
            ..sample()
        };
        assert_eq!(classify(&waiting).to_string(), "retry backoff");
        let slowed = Sample {
            rate: 250.0,
            ..sample()
        };
        assert_eq!(
            classify(&slowed).to_string(),
            "paced at 250.0/s (slowed after throttling)"
        );
    }

    #[test]
    fn a_shortfall_names_the_limiter_that_held_longest() {
        let watch = Watch::default();
        let pace = Limiter::Paced {
            rate: 500.0,
            qps: 500.0,
        };
        watch.note(pace, Duration::from_secs(30));
        watch.note(Limiter::InFlightCap(16), Duration::from_secs(12));
        watch.note(
            Limiter::Throttled {
                ends_in: Duration::from_secs(1),
            },
            Duration::from_secs(2),
        );
        assert_eq!(
            watch.now().unwrap().to_string(),
            "throttled: ban ends in 1s"
        );
        assert_eq!(watch.shortfall(490.0, 500.0), None);
        let shortfall = watch.shortfall(186.0, 500.0).unwrap();
        assert_eq!(
            shortfall.longest,
            Some((Limiter::InFlightCap(16), Duration::from_secs(12)))
        );
        assert_eq!(shortfall.paced, Duration::from_secs(30));
        // The cap held for less than the full pace: the sends fell behind the pace, and the
        // line says so rather than blame the cap.
        assert_eq!(
            shortfall.explain(Duration::from_secs(44)),
            "paced at qps for 30.0s of 44.0s, yet the sends fell behind the pace (a busy \
             machine, or the start); in-flight cap 16 held for 12.0s"
        );
        watch.note(Limiter::InFlightCap(16), Duration::from_secs(20));
        assert_eq!(
            watch
                .shortfall(186.0, 500.0)
                .unwrap()
                .explain(Duration::from_secs(64)),
            "in-flight cap 16 held for 32.0s of 1m04s"
        );
        // Only the full pace held: still a line, saying the sends fell behind it.
        let paced = Watch::default();
        paced.note(pace, Duration::from_secs(3));
        let shortfall = paced.shortfall(400.0, 500.0).unwrap();
        assert_eq!(shortfall.longest, None);
        assert_eq!(
            shortfall.explain(Duration::from_secs(3)),
            "paced at qps for 3.0s of 3.0s, yet the sends fell behind the pace (a busy machine, \
             or the start)"
        );
    }

    #[test]
    fn the_achieved_rate_counts_the_time_rows_were_handed_out() {
        let watch = Watch::default();
        watch.progress(10, Duration::from_millis(500));
        assert_eq!(watch.achieved(), None);
        watch.progress(1000, Duration::from_secs(4));
        assert_eq!(watch.achieved(), Some(250.0));
        watch.note(Limiter::RetryBackoff, Duration::from_secs(1));
        watch.fed();
        assert_eq!(watch.now(), None);
    }
}
