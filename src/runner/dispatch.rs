//! The dispatcher: starts the workers, feeds them pending rows (marked in flight in batches,
//! each with the permit it was marked under) until none are left, the run stops, or `--limit`
//! or the budget allows no more, then drains the workers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Halt;
use super::allowance::Refusal;
use super::ctx::{Ctx, LedgerGone, Slot};
use super::worker;
use crate::ledger::writer::{Job, Msg, Record};
use crate::top::Gateway;

/// Rows fetched from the ledger per query.
const FETCH_CHUNK: usize = 512;

/// A row marked in flight, with the permit it was marked under.
type Handed<G> = (Job, Slot<G>);

/// A job queue many workers can take from.
type SharedJobs<G> = Arc<tokio::sync::Mutex<mpsc::Receiver<Handed<G>>>>;

/// The run stopped (or the ledger is gone) while rows were handed out.
struct Stopped;

/// Feeds pending rows of `generation` to the workers, then drains them (in-flight requests get
/// `drain_limit` after a stop). Returns why sending ended early, if `--limit` or the budget
/// ended it.
pub(super) async fn dispatch<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    generation: i64,
    drain_limit: Duration,
) -> Option<Refusal> {
    let workers = ctx.limits.concurrency.get() * 2 + 2;
    let (jobs_tx, jobs_rx) = mpsc::channel(workers);
    // One permit per worker waiting for a row and not yet promised one: rows are marked in
    // flight only for workers that will take them at once.
    let idle = Arc::new(Semaphore::new(0));
    let mut tasks = spawn_workers(
        ctx,
        workers,
        &idle,
        Arc::new(tokio::sync::Mutex::new(jobs_rx)),
    );
    let refused = feed(ctx, generation, &idle, &jobs_tx).await;
    drop(jobs_tx);
    drain(ctx, &mut tasks, drain_limit).await;
    refused
}

/// Starts `count` workers, each taking rows from `jobs` until the queue closes or the ledger is
/// gone.
fn spawn_workers<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    count: usize,
    idle: &Arc<Semaphore>,
    jobs: SharedJobs<G>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let ctx = ctx.clone();
        let jobs = jobs.clone();
        let idle = idle.clone();
        tasks.spawn(async move {
            loop {
                idle.add_permits(1);
                let job = { jobs.lock().await.recv().await };
                let Some((job, slot)) = job else { return };
                match worker::process(&ctx, job, slot).await {
                    Ok(refused) => ctx.allowance.settle(refused),
                    Err(LedgerGone) => {
                        ctx.halt(Halt::Ledger);
                        return;
                    }
                }
            }
        });
    }
    tasks
}

/// Hands out pending rows chunk by chunk, as far as `--limit` and the budget allow, until none
/// are left or the run stops.
async fn feed<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    generation: i64,
    idle: &Semaphore,
    jobs_tx: &mpsc::Sender<Handed<G>>,
) -> Option<Refusal> {
    let mut after_row = 0;
    while !ctx.stop.is_cancelled() {
        let Some(mut rest) = next_pending(ctx, generation, after_row).await else {
            break;
        };
        let Some(last) = rest.last() else { break };
        after_row = last.row;
        while !rest.is_empty() {
            let (granted, refusal) = ctx.allowance.grant(&rest);
            let mut chunk = rest.drain(..granted).collect::<Vec<_>>().into_iter();
            if let Err(Stopped) = hand_out(ctx, idle, jobs_tx, &mut chunk).await {
                return None;
            }
            match refusal {
                None => {}
                Some(Refusal::Budget) if ctx.allowance.wait_for_room(&ctx.stop).await => {}
                Some(refusal) => return Some(refusal),
            }
        }
    }
    None
}

/// The next chunk of pending rows after `after_row`, in input order; `None` (and the run halts)
/// when the ledger is gone.
async fn next_pending<G: Gateway>(
    ctx: &Ctx<G>,
    generation: i64,
    after_row: i64,
) -> Option<Vec<Job>> {
    let (reply, chunk) = tokio::sync::oneshot::channel();
    let asked = Msg::NextPending {
        generation,
        after_row,
        limit: FETCH_CHUNK,
        reply,
    };
    if ctx.send(asked).await.is_err() {
        ctx.halt(Halt::Ledger);
        return None;
    }
    let Ok(chunk) = chunk.await else {
        ctx.halt(Halt::Ledger);
        return None;
    };
    Some(chunk)
}

/// Waits for the workers to finish; after a stop, for `drain_limit` at most, then abandons the
/// requests still in flight (they stay in flight in the ledger).
async fn drain<G: Gateway>(ctx: &Ctx<G>, tasks: &mut JoinSet<()>, drain_limit: Duration) {
    let mut deadline = None;
    loop {
        let joined = match deadline {
            None => tokio::select! {
                joined = tasks.join_next() => joined,
                () = ctx.stop.cancelled() => {
                    deadline = Some(tokio::time::Instant::now() + drain_limit);
                    continue;
                }
            },
            Some(deadline) => match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!(
                        "in-flight requests did not finish within {} s; they stay in flight in the ledger",
                        drain_limit.as_secs()
                    );
                    tasks.abort_all();
                    return;
                }
            },
        };
        if joined.is_none() {
            return;
        }
    }
}

/// Marks `rows` in flight batch by batch and hands each to a worker with its permit.
async fn hand_out<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    idle: &Semaphore,
    jobs_tx: &mpsc::Sender<Handed<G>>,
    rows: &mut std::vec::IntoIter<Job>,
) -> Result<(), Stopped> {
    while rows.len() > 0 {
        let Some(batch) = mark_batch(ctx, idle, rows).await else {
            return Err(Stopped);
        };
        let mut batch = batch.into_iter();
        while let Some((job, slot)) = batch.next() {
            let taker = tokio::select! {
                taker = jobs_tx.reserve() => taker,
                () = ctx.stop.cancelled() => Err(mpsc::error::SendError(())),
            };
            match taker {
                Ok(taker) => taker.send((job, slot)),
                Err(_) => {
                    // Marked but not handed out (stop, or no worker left): back to pending.
                    for (job, slot) in std::iter::once((job, slot)).chain(batch) {
                        drop(slot);
                        if ctx.record(Record::unsent(job.entry_id)).await.is_err() {
                            ctx.halt(Halt::Ledger);
                            break;
                        }
                    }
                    return Err(Stopped);
                }
            }
        }
    }
    Ok(())
}

/// Takes the in-flight permits that are free, as many as there are idle workers to take the
/// rows (at least one of each, waited for; at most one per row left in `rows`), waits out a
/// throttle pause, and marks that many rows in flight with one message. Returns them with their
/// permits once the marks are durable, so each can be sent at once; `None` if the run stopped
/// first (nothing marked) or the ledger is gone (the run halts).
async fn mark_batch<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    idle: &Semaphore,
    rows: &mut std::vec::IntoIter<Job>,
) -> Option<Vec<Handed<G>>> {
    // An idle worker first, then a permit: a worker waiting for a permit is never idle, so
    // holding a permit while waiting for an idle worker could wait for ever. Once the run
    // stops, a promised worker no longer matters: the workers drain the queue and exit.
    tokio::select! {
        worker = idle.acquire() => worker.expect("the semaphore is never closed").forget(),
        () = ctx.stop.cancelled() => return None,
    }
    tokio::select! {
        permit = ctx.in_flight.acquire() => permit.expect("the semaphore is never closed").forget(),
        () = ctx.stop.cancelled() => return None,
    }
    let mut slots = vec![Slot::adopt(ctx)];
    tokio::select! {
        () = ctx.pacer.wait_pause() => {}
        () = ctx.stop.cancelled() => return None,
    }
    let more = (ctx.in_flight.available_permits())
        .min(idle.available_permits())
        .min(rows.len() - 1);
    if more > 0 {
        let more = u32::try_from(more).expect("at most `concurrency` permits");
        // Both or neither: a permit taken alone goes back on drop.
        if let (Ok(permits), Ok(workers)) = (
            ctx.in_flight.try_acquire_many(more),
            idle.try_acquire_many(more),
        ) {
            permits.forget();
            workers.forget();
            slots.extend((0..more).map(|_| Slot::adopt(ctx)));
        }
    }
    // Slots first: `zip` stops on the first exhausted side before taking from the second, so no
    // row is taken without a slot.
    let batch: Vec<Handed<G>> = slots
        .into_iter()
        .zip(rows.by_ref())
        .map(|(slot, job)| (job, slot))
        .collect();
    let (ack, marked) = tokio::sync::oneshot::channel();
    let entry_ids = batch.iter().map(|(job, _)| job.entry_id).collect();
    if ctx.send(Msg::InFlight { entry_ids, ack }).await.is_err() || marked.await.is_err() {
        ctx.halt(Halt::Ledger);
        return None;
    }
    Some(batch)
}
