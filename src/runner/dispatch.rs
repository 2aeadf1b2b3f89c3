//! The dispatcher: hands out pending rows (marked in flight in batches, each with the permit it
//! was marked under) until none are left, the run stops, or `--limit` or the budget allows no
//! more, then drains. Each row handed out gets a task of its own, so memory follows the rows in
//! progress, never the concurrency setting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Halt;
use super::allowance::Refusal;
use super::ctx::{Ctx, LedgerGone, Slot};
use super::worker;
use crate::ledger::writer::{Job, Msg};
use crate::top::Gateway;

/// Rows fetched from the ledger per query.
const FETCH_CHUNK: usize = 512;

/// A row marked in flight, with the permit it was marked under and its place among the rows
/// in progress.
type Handed<G> = (Job, Slot<G>, Place);

/// One place among the rows in progress, taken out of its semaphore (`forget`) so that it can
/// travel with its row into the row's task; it goes back on drop, when the task ends.
struct Place {
    room: Arc<Semaphore>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.room.add_permits(1);
    }
}

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
    // Rows in progress (in flight, or waiting out a retry backoff or an outage) at most.
    let room = Arc::new(Semaphore::new(ctx.in_flight.max() * 2 + 2));
    let mut tasks = JoinSet::new();
    let refused = feed(ctx, generation, &room, &mut tasks).await;
    ctx.fed.cancel();
    drain(ctx, &mut tasks, drain_limit).await;
    refused
}

/// Hands out pending rows chunk by chunk, as far as `--limit` and the budget allow, until none
/// are left or the run stops.
async fn feed<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    generation: i64,
    room: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
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
            if let Err(Stopped) = hand_out(ctx, room, tasks, &mut chunk).await {
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

/// Marks `rows` in flight batch by batch and starts a task for each, with its permit.
async fn hand_out<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    room: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    rows: &mut std::vec::IntoIter<Job>,
) -> Result<(), Stopped> {
    while rows.len() > 0 {
        let Some(batch) = mark_batch(ctx, room, rows).await else {
            return Err(Stopped);
        };
        for (job, slot, place) in batch {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let _place = place;
                match worker::process(&ctx, job, slot).await {
                    Ok(refused) => ctx.allowance.settle(refused),
                    Err(LedgerGone) => ctx.halt(Halt::Ledger),
                }
            });
        }
        // Finished tasks are reaped as we go: a JoinSet keeps their results until joined.
        while tasks.try_join_next().is_some() {}
    }
    Ok(())
}

/// Takes a place for a row in progress and an in-flight permit (waited for), waits until sending
/// is open (gateway reachable, no throttle pause) and for the row's turn at the pace, then takes
/// as many more rows as have their turn due now (within the free permits, the places and
/// `rows`), and marks them in flight with one message. Returns them with their permits and places once the marks are durable, so each can
/// be sent at once; `None` if the run stopped first (nothing marked) or the ledger is gone (the
/// run halts).
async fn mark_batch<G: Gateway>(
    ctx: &Arc<Ctx<G>>,
    room: &Arc<Semaphore>,
    rows: &mut std::vec::IntoIter<Job>,
) -> Option<Vec<Handed<G>>> {
    // A place first, then a permit: a row waiting for a permit (a retry) already holds its
    // place, so holding a permit while waiting for a place could wait for ever.
    tokio::select! {
        place = room.acquire() => place.expect("the semaphore is never closed").forget(),
        () = ctx.stop.cancelled() => return None,
    }
    let mut places = vec![Place { room: room.clone() }];
    let first = tokio::select! {
        permit = ctx.in_flight.acquire() => permit.expect("the semaphore is never closed"),
        () = ctx.stop.cancelled() => return None,
    };
    tokio::select! {
        () = ctx.wait_open() => {}
        () = ctx.stop.cancelled() => return None,
    }
    // The row's turn at the pace comes before its mark: rows in flight are rows being sent,
    // not rows queueing for the pace.
    tokio::select! {
        () = ctx.pacer.wait_turn() => {}
        () = ctx.stop.cancelled() => return None,
    }
    first.forget();
    let mut slots = vec![Slot::adopt(ctx)];
    let room_left = (ctx.in_flight.available_permits())
        .min(room.available_permits())
        .min(rows.len() - 1);
    // More rows whose turn is due now (the pace went on while the first was waited for).
    let more = (0..room_left).take_while(|_| ctx.pacer.try_turn()).count();
    if more > 0 {
        let more = u32::try_from(more).expect("at most `max_concurrency` permits");
        // Both or neither: a permit taken alone goes back on drop.
        if let (Ok(permits), Ok(taken)) = (
            ctx.in_flight.try_acquire_many(more),
            room.try_acquire_many(more),
        ) {
            permits.forget();
            taken.forget();
            slots.extend((0..more).map(|_| Slot::adopt(ctx)));
            places.extend((0..more).map(|_| Place { room: room.clone() }));
        }
    }
    // Slots first: `zip` stops on the first exhausted side before taking from the second, so no
    // row is taken without a slot.
    let batch: Vec<Handed<G>> = slots
        .into_iter()
        .zip(places)
        .zip(rows.by_ref())
        .map(|((slot, place), job)| (job, slot, place))
        .collect();
    let (ack, marked) = tokio::sync::oneshot::channel();
    let entry_ids = batch.iter().map(|(job, _, _)| job.entry_id).collect();
    if ctx.send(Msg::InFlight { entry_ids, ack }).await.is_err() || marked.await.is_err() {
        ctx.halt(Halt::Ledger);
        return None;
    }
    Some(batch)
}
