//! One row's journey: mark in flight (durably), wait for a slot, send, record, and retry or
//! settle according to the outcome class.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Ctx, Halt};
use crate::ledger::writer::{AttemptLog, Job, Msg, Settle};
use crate::top::{Outcome, PlatformError};

use super::pace::ThrottleVerdict;

/// The ledger thread is gone: nothing more can be recorded, so nothing more may be sent.
#[derive(Debug)]
pub(crate) struct LedgerGone;

/// One permit of `ctx.in_flight`, taken out of the semaphore (`forget`) so that it can travel
/// with its row from the dispatcher to a worker; it goes back to the semaphore on drop.
pub(crate) struct Slot {
    ctx: Arc<Ctx>,
}

impl Slot {
    /// Takes charge of one permit the caller has already forgotten.
    pub(crate) fn adopt(ctx: &Arc<Ctx>) -> Slot {
        Slot { ctx: ctx.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ctx.in_flight.add_permits(1);
    }
}

/// Sends one row until it settles, the run stops, or the ledger fails. `handed` is the permit
/// the dispatcher took for the row's first attempt, whose in-flight mark it has already
/// committed; later attempts take their own permit and mark the row themselves. Returns whether
/// the row ended `failed` (the platform refused it, so it was not issued).
pub(crate) async fn process(ctx: &Arc<Ctx>, job: Job, handed: Slot) -> Result<bool, LedgerGone> {
    let mut tries_this_run: u32 = 0;
    let mut handed = Some(handed);
    loop {
        let permit = match handed.take() {
            Some(slot) => {
                if ctx.stop.is_cancelled() {
                    // Marked but never sent: back to pending, untouched.
                    ctx.record(&job, None, false, Settle::Pending(None), None)
                        .await?;
                    return Ok(false);
                }
                slot
            }
            None => {
                if ctx.stop.is_cancelled() {
                    return Ok(false);
                }
                tokio::select! {
                    permit = ctx.in_flight.acquire() => permit.expect("the semaphore is never closed").forget(),
                    () = ctx.stop.cancelled() => return Ok(false),
                }
                let slot = Slot::adopt(ctx);
                tokio::select! {
                    () = ctx.pacer.wait_pause() => {}
                    () = ctx.stop.cancelled() => return Ok(false),
                }
                let (ack, marked) = oneshot::channel();
                ctx.send(Msg::InFlight {
                    entry_ids: vec![job.entry_id],
                    ack,
                })
                .await?;
                marked.await.map_err(|_| LedgerGone)?;
                slot
            }
        };
        let request = ctx.client.prepare(&job.payload);
        let sent = tokio::select! {
            () = ctx.pacer.wait_slot() => true,
            () = ctx.stop.cancelled() => false,
        };
        if !sent {
            // Marked but never sent: let it go back to pending, untouched.
            ctx.record(&job, None, false, Settle::Pending(None), None)
                .await?;
            return Ok(false);
        }

        let started_at = crate::domain::now_rfc3339();
        let started = Instant::now();
        ctx.stats.sent();
        let attempt = ctx.client.send_prepared(request).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let class = attempt.outcome.class();
        let counted = !matches!(
            attempt.outcome,
            Outcome::Throttled { .. } | Outcome::Fatal(_)
        );
        if counted {
            tries_this_run += 1;
        }
        let log = AttemptLog {
            attempt: job.attempts + tries_this_run + u32::from(!counted),
            started_at,
            latency_ms,
            class,
            error: attempt.outcome.error().cloned(),
            top_request_id: attempt.top_request_id.clone(),
            request_id: job.request_id.clone(),
        };
        let top_request_id = attempt.top_request_id;
        if !matches!(attempt.outcome, Outcome::Throttled { .. }) {
            ctx.pacer.on_clean_answer();
        }

        let settle = match attempt.outcome {
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
                let error = PlatformError {
                    message: format!(
                        "retries exhausted after {tries_this_run} attempts; last: {}",
                        error.message
                    ),
                    ..error
                };
                // The last answer may mean "issued" (a lost answer, alsc `SENDING`): never
                // `failed`, which `--retry-failed` would send again.
                if error.may_have_issued() {
                    ctx.stats.uncertain();
                    Settle::Uncertain(error)
                } else {
                    ctx.stats.failed();
                    Settle::Failed(error)
                }
            }
            Outcome::Transient(error) => {
                ctx.record(
                    &job,
                    Some(log),
                    true,
                    Settle::Pending(Some(error)),
                    top_request_id,
                )
                .await?;
                drop(permit);
                ctx.stats.retry_started();
                let delay = ctx.backoff.delay(tries_this_run);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.stop.cancelled() => {}
                }
                ctx.stats.retry_ended();
                continue;
            }
            Outcome::Throttled { ban, error } => {
                ctx.stats.throttled();
                ctx.record(
                    &job,
                    Some(log),
                    false,
                    Settle::Pending(Some(error.clone())),
                    top_request_id,
                )
                .await?;
                if let ThrottleVerdict::TooLong(ban) = ctx.pacer.on_throttle(ban) {
                    ctx.halt(Halt::LongBan { ban, error });
                }
                continue;
            }
            Outcome::Fatal(error) => {
                ctx.record(
                    &job,
                    Some(log),
                    false,
                    Settle::Pending(Some(error.clone())),
                    top_request_id,
                )
                .await?;
                ctx.halt(Halt::Fatal(error));
                return Ok(false);
            }
        };
        let refused = matches!(settle, Settle::Failed(_));
        ctx.record(&job, Some(log), counted, settle, top_request_id)
            .await?;
        ctx.check_failure_rate();
        return Ok(refused);
    }
}
