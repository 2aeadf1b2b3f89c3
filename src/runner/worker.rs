//! One row's journey, in three steps repeated until the row settles: acquire (a permit, the
//! end of any throttle pause, the row's turn at the pace, its in-flight mark on disk), attempt
//! (a place in the one-second window, the call, stamped when it is written), settle (record the outcome, then retry, wait, halt or finish according to its
//! class).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::ctx::{Ctx, LedgerGone, Slot};
use super::pace::ThrottleVerdict;
use super::{Halt, outage};
use crate::domain::now_rfc3339;
use crate::ledger::writer::{AttemptLog, Job, Msg, Record, Settle};
use crate::top::{Gateway, Outcome, PlatformError};

/// What one attempt brought back.
struct Answer {
    outcome: Outcome,
    log: AttemptLog,
}

/// What the row does after an attempt was recorded.
enum Next {
    /// Another attempt (after a backoff or a throttle pause).
    Again,
    /// Nothing more in this run; `refused` when it ended `failed`.
    Done { refused: bool },
}

/// Sends one row until it settles, the run stops, or the ledger fails. `handed` is the permit
/// the dispatcher took for the row's first attempt, whose in-flight mark it has already
/// committed; later attempts take their own permit and mark the row themselves. Returns whether
/// the row ended `failed` (the platform refused it, so it was not issued).
pub(crate) async fn process<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    job: Job,
    handed: Slot<G>,
) -> Result<bool, LedgerGone> {
    let mut tries_this_run: u32 = 0;
    let mut handed = Some(handed);
    loop {
        let Some(permit) = acquire(ctx, &job, handed.take()).await? else {
            return Ok(false);
        };
        let Some(answer) = attempt(ctx, &job, &mut tries_this_run).await else {
            // Marked but never sent: back to pending, untouched.
            ctx.record(Record::unsent(job.entry_id)).await?;
            return Ok(false);
        };
        match settle(ctx, &job, answer, tries_this_run, permit).await? {
            Next::Again => {}
            Next::Done { refused } => return Ok(refused),
        }
    }
}

/// The permit to send the row, with its in-flight mark durable: the dispatcher's (`handed`), or
/// a new one for a later attempt. `None` when the run stopped first.
async fn acquire<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    job: &Job,
    handed: Option<Slot<G>>,
) -> Result<Option<Slot<G>>, LedgerGone> {
    if let Some(slot) = handed {
        if ctx.stop.is_cancelled() {
            // Marked but never sent: back to pending, untouched.
            ctx.record(Record::unsent(job.entry_id)).await?;
            return Ok(None);
        }
        return Ok(Some(slot));
    }
    if ctx.stop.is_cancelled() {
        return Ok(None);
    }
    let permit = tokio::select! {
        permit = ctx.in_flight.acquire() => permit.expect("the semaphore is never closed"),
        () = ctx.stop.cancelled() => return Ok(None),
    };
    tokio::select! {
        () = ctx.wait_open() => {}
        () = ctx.stop.cancelled() => return Ok(None),
    }
    tokio::select! {
        () = ctx.pacer.wait_turn() => {}
        () = ctx.stop.cancelled() => return Ok(None),
    }
    permit.forget();
    let slot = Slot::adopt(ctx);
    let (ack, marked) = oneshot::channel();
    ctx.send(Msg::InFlight {
        entry_ids: vec![job.entry_id],
        ack,
    })
    .await?;
    marked.await.map_err(|_| LedgerGone)?;
    Ok(Some(slot))
}

/// Prepares the call, waits for a place in the pacer's one-second window and sends it, stamping
/// the window when the call is written. `None` when the run stopped before a place came
/// (nothing was sent).
async fn attempt<G: Gateway>(ctx: &Ctx<G>, job: &Job, tries_this_run: &mut u32) -> Option<Answer> {
    let request = ctx.gateway.prepare(&job.payload);
    let ticket = tokio::select! {
        ticket = ctx.pacer.admit() => ticket,
        () = ctx.stop.cancelled() => return None,
    };
    let started_at = now_rfc3339();
    let started = Instant::now();
    ctx.stats.sent();
    let attempt = ctx
        .gateway
        .send(request, Box::new(move || ticket.written()))
        .await;
    let latency = started.elapsed();
    let latency_ms = latency.as_millis() as i64;
    ctx.in_flight.observe(latency, ctx.pacer.rate());
    // Throttled and fatal answers are the platform's business, not the row's, and an
    // unreachable gateway never saw the row: they do not count against `max_attempts`.
    let counted = !matches!(
        attempt.outcome,
        Outcome::Throttled { .. } | Outcome::Fatal(_) | Outcome::Unreachable(_)
    );
    ctx.watch_answer(&attempt.outcome);
    if counted {
        *tries_this_run += 1;
    }
    if !matches!(attempt.outcome, Outcome::Throttled { .. }) {
        ctx.pacer.on_clean_answer();
    }
    let log = AttemptLog {
        attempt: job.attempts + *tries_this_run + u32::from(!counted),
        started_at,
        latency_ms,
        class: attempt.outcome.class(),
        error: attempt.outcome.error().cloned(),
        top_request_id: attempt.top_request_id,
        request_id: job.request_id.clone(),
    };
    Some(Answer {
        outcome: attempt.outcome,
        log,
    })
}

/// Records the answer and decides what the row does next, by the outcome's class.
async fn settle<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    job: &Job,
    answer: Answer,
    tries_this_run: u32,
    permit: Slot<G>,
) -> Result<Next, LedgerGone> {
    let Answer { outcome, log } = answer;
    let entry_id = job.entry_id;
    let settled = match outcome {
        Outcome::Issued { issued_id, detail } => {
            ctx.stats.issued();
            Settle::Issued { issued_id, detail }
        }
        Outcome::Permanent(error) => {
            ctx.stats.failed();
            Settle::Failed(error)
        }
        Outcome::Unknown(error) => {
            ctx.stats.uncertain();
            Settle::Uncertain(error)
        }
        Outcome::Transient(error) if tries_this_run >= ctx.limits.max_attempts => {
            exhausted(ctx, error, tries_this_run)
        }
        Outcome::Transient(error) => {
            ctx.record(Record::retry(entry_id, log, error)).await?;
            drop(permit);
            ctx.stats.retry_started();
            let delay = ctx.backoff.delay(tries_this_run);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = ctx.stop.cancelled() => {}
            }
            ctx.stats.retry_ended();
            return Ok(Next::Again);
        }
        Outcome::Throttled { ban, error } => {
            ctx.stats.throttled();
            ctx.record(Record::turned_away(entry_id, log, error.clone()))
                .await?;
            if let ThrottleVerdict::TooLong(ban) = ctx.pacer.on_throttle(ban) {
                ctx.halt(Halt::LongBan { ban, error });
            }
            return Ok(Next::Again);
        }
        Outcome::Fatal(error) => {
            ctx.record(Record::turned_away(entry_id, log, error.clone()))
                .await?;
            ctx.halt(Halt::Fatal(error));
            return Ok(Next::Done { refused: false });
        }
        Outcome::Unreachable(error) => {
            // Nothing reached the platform: the row waits for the gateway, at no cost.
            ctx.record(Record::turned_away(entry_id, log, error.clone()))
                .await?;
            drop(permit);
            if let Some(down) = ctx.outage.begin() {
                tokio::spawn(outage::probe_until_back(ctx.clone(), down, error.message));
            }
            tokio::select! {
                () = ctx.outage.wait_up() => {}
                () = ctx.stop.cancelled() => {}
            }
            return Ok(Next::Again);
        }
    };
    let refused = matches!(settled, Settle::Failed(_));
    ctx.record(Record::settled(entry_id, log, settled)).await?;
    ctx.check_failure_rate();
    Ok(Next::Done { refused })
}

/// The last retry failed for now too: `failed`, unless the last answer may mean "issued" (a
/// lost answer, alsc `SENDING`): then `uncertain`, never `failed`, which `--retry-failed` would
/// send again.
fn exhausted<G: Gateway>(ctx: &Ctx<G>, error: PlatformError, tries_this_run: u32) -> Settle {
    let error = PlatformError {
        message: format!(
            "retries exhausted after {tries_this_run} attempts; last: {}",
            error.message
        ),
        ..error
    };
    if error.may_have_issued() {
        ctx.stats.uncertain();
        Settle::Uncertain(error)
    } else {
        ctx.stats.failed();
        Settle::Failed(error)
    }
}
