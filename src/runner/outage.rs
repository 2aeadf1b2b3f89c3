//! A gateway-wide outage: when a request could not even connect (refused, DNS, TLS handshake,
//! connect timeout), nothing reached the platform, so the row is not at fault and costs no
//! attempt. The whole run pauses instead: no row is marked in flight while the gateway is down,
//! one prober knocks with a backoff of about 1 s growing to 30 s, and the run resumes by itself
//! when the gateway answers. An outage longer than `max_outage_s` halts the run (exit 3, rows
//! pending). Each outage is recorded in the ledger's `outages` table.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Halt;
use super::ctx::Ctx;
use crate::ledger::writer::Msg;
use crate::top::Gateway;

/// The first wait between probes, doubled after each failed one up to [`PROBE_MAX`].
const PROBE_FIRST: Duration = Duration::from_secs(1);
const PROBE_MAX: Duration = Duration::from_secs(30);

/// Whether the gateway is reachable; while it is not, since when and when the next probe goes.
pub(crate) struct Outage {
    state: watch::Sender<Option<Down>>,
    run_id: i64,
}

/// An outage going on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Down {
    since: Instant,
    since_wall: DateTime<Local>,
    next_probe: Instant,
}

impl Outage {
    /// No outage, for run `run_id`.
    pub(crate) fn new(run_id: i64) -> Outage {
        Outage {
            state: watch::Sender::new(None),
            run_id,
        }
    }

    /// Notes that the gateway could not be reached. Returns the new outage when this call began
    /// it (the caller starts the prober), `None` when one was already going on.
    pub(crate) fn begin(&self) -> Option<Down> {
        let mut began = None;
        self.state.send_if_modified(|state| {
            if state.is_some() {
                return false;
            }
            let now = Instant::now();
            let down = Down {
                since: now,
                since_wall: Local::now(),
                next_probe: now + PROBE_FIRST,
            };
            *state = Some(down);
            began = Some(down);
            true
        });
        began
    }

    /// Waits until the gateway is reachable (at once when it is).
    pub(crate) async fn wait_up(&self) {
        let mut state = self.state.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = state.wait_for(Option::is_none).await;
    }

    /// The progress note while the gateway is down:
    /// `gateway unreachable since HH:MM:SS, next try in Ns`.
    pub(crate) fn note(&self) -> Option<String> {
        let down = (*self.state.borrow())?;
        let wait = down.next_probe.saturating_duration_since(Instant::now());
        Some(format!(
            "gateway unreachable since {}, next try in {}s",
            down.since_wall.format("%H:%M:%S"),
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        ))
    }

    fn set_next_probe(&self, at: Instant) {
        self.state.send_modify(|state| {
            if let Some(down) = state {
                down.next_probe = at;
            }
        });
    }

    fn end(&self) {
        self.state.send_replace(None);
    }
}

/// How an outage ended, as the ledger spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Recovered,
    Halted,
    Interrupted,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Recovered => "recovered",
            Ended::Halted => "halted",
            Ended::Interrupted => "interrupted",
        }
    }
}

/// Probes the gateway with backoff until it answers (the run resumes), `max_outage_s` passes
/// (the run halts) or the run stops. Records the outage in the ledger.
pub(crate) async fn probe_until_back<G: Gateway>(ctx: Arc<Ctx<G>>, down: Down, cause: String) {
    let outage = &ctx.outage;
    let started_at = down
        .since_wall
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    let limit = ctx.limits.max_outage;
    tracing::warn!(
        "the gateway cannot be reached ({cause}); the run pauses and tries again until it \
         answers (for at most max_outage_s = {} s)",
        limit.as_secs()
    );
    // A lost ledger ends the run anyway; the outage record is not worth halting for.
    let _ = ctx
        .send(Msg::OutageBegan {
            run_id: outage.run_id,
            started_at: started_at.clone(),
        })
        .await;
    let deadline = down.since + limit;
    let mut delay = PROBE_FIRST;
    let ended = loop {
        let next = (Instant::now() + delay).min(deadline);
        outage.set_next_probe(next);
        let answered = tokio::select! {
            () = ctx.stop.cancelled() => break Ended::Interrupted,
            answered = async {
                tokio::time::sleep_until(next).await;
                // A probe reaches the gateway like a send does, so it takes a turn and a place
                // in the one-second window: the gateway never sees more than qps calls.
                ctx.pacer.wait_slot().await;
                ctx.gateway.probe().await
            } => answered,
        };
        if answered {
            break Ended::Recovered;
        }
        if Instant::now() >= deadline {
            ctx.halt(Halt::Outage {
                since: down.since_wall,
                limit,
            });
            break Ended::Halted;
        }
        delay = (delay * 2).min(PROBE_MAX);
    };
    let _ = ctx
        .send(Msg::OutageEnded {
            run_id: outage.run_id,
            started_at,
            ended_at: crate::domain::now_rfc3339(),
            ending: ended.as_str(),
        })
        .await;
    if ended == Ended::Recovered {
        tracing::info!(
            "the gateway answers again after {} s; the run resumes",
            down.since.elapsed().as_secs()
        );
    }
    outage.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_outage_at_a_time_and_waiters_resume_when_it_ends() {
        let outage = Arc::new(Outage::new(1));
        assert!(outage.note().is_none());
        outage.wait_up().await;
        let down = outage.begin().expect("the first report begins an outage");
        assert!(outage.begin().is_none(), "a second report joins it");
        let note = outage.note().unwrap();
        assert!(
            note.starts_with("gateway unreachable since ") && note.ends_with("next try in 1s"),
            "{note}"
        );
        assert_eq!(
            note,
            format!(
                "gateway unreachable since {}, next try in 1s",
                down.since_wall.format("%H:%M:%S")
            )
        );
        let waiter = tokio::spawn({
            let outage = outage.clone();
            async move { outage.wait_up().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        outage.set_next_probe(Instant::now() + Duration::from_millis(29_500));
        assert!(outage.note().unwrap().ends_with("next try in 30s"));
        outage.end();
        waiter.await.unwrap();
        assert!(outage.note().is_none());
        assert!(
            outage.begin().is_some(),
            "a later failure begins a new outage"
        );
    }
}
