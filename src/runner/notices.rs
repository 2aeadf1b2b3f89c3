//! Notifications about a run (the `[notify]` table): the event a run posts when it ends, and
//! the progress posts every `notify.every_minutes` while it goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::campaign::Campaign;
use crate::domain::{LiveCounters, RunCounters};
use crate::notify::{Event, Notifier};

/// A notification about this run, before the counts and the reason are known.
pub(super) fn event(
    campaign: &Campaign,
    name: &'static str,
    to_send: u64,
    counters: RunCounters,
    elapsed: Duration,
) -> Event {
    Event {
        campaign: campaign.name.clone(),
        api: campaign.api.method.to_owned(),
        event: name,
        counts: None,
        to_send,
        counters,
        elapsed,
        reason: None,
        results: campaign.results.display().to_string(),
    }
}

/// Posts a progress notification every `every` until the returned token is cancelled.
pub(super) fn post_progress(
    notifier: Notifier,
    every: Option<Duration>,
    campaign: &Campaign,
    to_send: u64,
    stats: Arc<LiveCounters>,
    started: Instant,
) -> CancellationToken {
    let stop = CancellationToken::new();
    let Some(every) = every else { return stop };
    let template = event(
        campaign,
        "progress",
        to_send,
        RunCounters::default(),
        Duration::ZERO,
    );
    let cancelled = stop.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = cancelled.cancelled() => return,
            }
            let event = Event {
                counters: stats.snapshot(),
                elapsed: started.elapsed(),
                ..template.clone()
            };
            tokio::select! {
                () = notifier.post(&event) => {}
                () = cancelled.cancelled() => return,
            }
        }
    });
    stop
}
