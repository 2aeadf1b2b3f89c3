//! `campaign run`: prepares the ledger, dispatches the remaining rows concurrently under the
//! rate limit, stops cleanly on a halt or an interruption, and writes the results.
//!
//! A run reads as its lifecycle: check ([`open::check`]) → open ([`open::open`]) → execute
//! (this module: the dispatcher and its watchers) → conclude ([`conclude::conclude`]).

mod allowance;
pub(crate) mod backoff;
mod conclude;
pub(crate) mod confirm;
mod ctx;
mod dispatch;
mod halt;
mod inflight;
mod limiter;
mod notices;
mod open;
mod outage;
pub(crate) mod pace;
mod plan;
pub(crate) mod signals;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use self::allowance::{Allowance, Refusal};
use self::backoff::Backoff;
use self::conclude::{Ending, Executed};
use self::ctx::Ctx;
pub(crate) use self::halt::Halt;
pub(crate) use self::halt::remedy;
use self::open::Session;
pub(crate) use self::open::connect;
pub(crate) use self::open::{on_quit_saving, start_sim};
use self::pace::Pacer;
use crate::campaign::Campaign;
use crate::domain::{LiveCounters, now_rfc3339};
use crate::exit::Exit;
use crate::ledger::guard::StateGuard;
use crate::ledger::writer::{RunClock, Writer};
use crate::progress::{Output, Progress, say};
use crate::reconcile::in_run::{Effect, InRun};

/// Extra time, beyond the request timeout, that in-flight requests get to finish after a stop.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Retry backoff: first ceiling and cap.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Messages the ledger thread's channel holds.
const LEDGER_QUEUE: usize = 8192;

/// `campaign run` flags beyond the campaign file.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunOptions {
    pub(crate) mode: Mode,
    pub(crate) reopen: Reopen,
    pub(crate) output: Output,
    /// `--limit N`: send at most this many not-yet-sent rows in this run (a canary).
    pub(crate) limit: Option<u64>,
    /// `--json`: the summary (or the dry-run plan) as one JSON object on stdout.
    pub(crate) json: bool,
    /// `--yes`: do not ask before a run against a real gateway.
    pub(crate) yes: bool,
}

/// Send, or only plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Send every row not yet done.
    #[default]
    Send,
    /// `--dry-run`: validate everything and print the plan; send nothing.
    DryRun,
}

/// Final rows the user asks to send again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reopen {
    /// `--retry-failed`
    pub(crate) failed: bool,
    /// `--resend-uncertain` (they may already have been issued).
    pub(crate) uncertain: bool,
}

/// Runs (or resumes) a campaign; returns the exit code. Errors are usage or environment
/// problems found before anything was sent.
pub(crate) async fn run(campaign: Campaign, options: RunOptions) -> anyhow::Result<Exit> {
    let checked = open::check(&campaign)?;
    if options.mode == Mode::DryRun {
        return plan::dry_run(&campaign, options.limit, options.json);
    }
    let Some(session) = open::open(&campaign, &options, checked).await? else {
        say("campaign: not confirmed; nothing was sent");
        return Ok(Exit::Usage);
    };
    let executed = execute(&campaign, &options, session).await?;
    conclude::conclude(&campaign, &options, executed).await
}

/// Sends: records the run's start, moves the ledger onto its thread, and dispatches the pending
/// rows with the progress display, the notifications, the signal handler and the state-file
/// watchdog around it; then takes the ledger back.
async fn execute(
    campaign: &Campaign,
    options: &RunOptions,
    session: Session,
) -> anyhow::Result<Executed> {
    let Session {
        lock,
        ledger,
        client,
        sim,
        notifier,
        budget,
    } = session;
    let mut ledger = ledger;
    let started = Instant::now();
    let run_id = ledger.begin_run(&now_rfc3339())?;
    let generation = ledger.generation()?;
    let (earlier_issued, earlier_failed) = ledger.issued_and_failed()?;
    let stats = Arc::new(LiveCounters::after(earlier_issued, earlier_failed));
    // Queries and sends share one pace and one stop.
    let pacer = Arc::new(Pacer::new(
        campaign.limits.qps.get(),
        campaign.limits.max_ban_wait,
    ));
    let stop = CancellationToken::new();
    let interrupted = signals::watch(
        stop.clone(),
        open::on_quit_saving(
            sim.as_ref(),
            conclude::record_hard_quit(campaign, run_id, started, stats.clone()),
        ),
    );
    // Before sending: uncertain rows of earlier runs old enough are looked up; those found not
    // issued become pending and are sent now.
    let reconciler = InRun::new(campaign, pacer.clone(), options.output);
    let mut reconciled = Vec::new();
    let mut halted_before = None;
    if let Some(reconciler) = &reconciler {
        let done = reconciler.before(&mut ledger, &client, &stop).await?;
        if let Effect::Halt(halt) = done.effect {
            halted_before = Some(halt);
        }
        reconciled.extend(done.line);
    }
    let to_send = ledger.pending_count(generation)?;
    let guard =
        Arc::new(StateGuard::new(&campaign.state).with_context(|| {
            format!("{}: cannot watch the state file", campaign.state.display())
        })?);

    let writer = Writer::start(
        ledger,
        LEDGER_QUEUE,
        Some(guard.clone()),
        RunClock {
            id: run_id,
            started,
        },
    );
    let ctx = Arc::new(
        Ctx::new(
            run_id,
            client.clone(),
            writer.tx.clone(),
            campaign.limits.clone(),
            stats.clone(),
            Backoff::new(BACKOFF_BASE, BACKOFF_MAX, None),
            Allowance::new(options.limit, budget),
        )
        .sharing(pacer, stop.clone()),
    );
    if let Some(halt) = halted_before {
        ctx.halt(halt);
    }
    let limits_watch = limiter::Watch::default();
    let watcher = tokio::spawn(limiter::watch(ctx.clone(), limits_watch.clone()));
    let note: crate::progress::Note = {
        let outage = ctx.outage.clone();
        let limits_watch = limits_watch.clone();
        // An outage says since when and when the next try is; otherwise the current limiter.
        Arc::new(move || {
            outage
                .note()
                .or_else(|| limits_watch.now().map(|l| l.to_string()))
        })
    };
    let progress = Progress::start(to_send, stats.clone(), note, options.output);
    let progress_posts = match &notifier {
        Some(notifier) => notices::post_progress(
            notifier.clone(),
            campaign.notify.as_ref().and_then(|n| n.every),
            campaign,
            to_send,
            stats.clone(),
            started,
        ),
        None => CancellationToken::new(),
    };
    let drain_limit = campaign.gateway.timeout + campaign.gateway.connect_timeout + DRAIN_GRACE;
    let watchdog = tokio::spawn(ctx::watch_state_file(ctx.clone(), guard.clone()));
    let refused = dispatch::dispatch(&ctx, generation, drain_limit).await;
    // Nothing is sent any more: an outage prober still knocking records its end and stops.
    ctx.stop.cancel();
    let _ = watcher.await;
    watchdog.abort();
    let _ = watchdog.await;
    progress.finish();

    let ending = if let Some(halt) = ctx.take_halt() {
        Ending::Halted(halt.with_final_figures(&stats))
    } else if interrupted.is_cancelled() {
        Ending::Interrupted
    } else {
        match (refused, ctx.allowance.budget()) {
            (Some(Refusal::Budget), Some((max, _))) => Ending::Halted(Halt::Budget { max }),
            (refused, _) => Ending::Finished {
                limit_reached: refused == Some(Refusal::Limit),
            },
        }
    };
    let pacer_rate = ctx.pacer.rate();
    let pace = limiter::report(&ctx, &limits_watch, stats.snapshot().sent);
    drop(ctx);
    let (mut ledger, written) = writer.finish();
    // After sending: the rest of the uncertain rows, waiting until they are old enough.
    let mut ending = ending;
    let mut to_resend = 0;
    if let (Ending::Finished { .. }, Ok(()), Some(reconciler)) = (&ending, &written, &reconciler) {
        // The run's stop token ends with the dispatch; only a signal stops this pass.
        let done = reconciler.after(&mut ledger, &client, &interrupted).await?;
        match done.effect {
            Effect::Carry => {}
            Effect::Halt(halt) => ending = Ending::Halted(halt),
            Effect::Interrupted => ending = Ending::Interrupted,
        }
        to_resend = done.resend;
        reconciled.extend(done.line);
    }
    // Saves its book; on an early return above, dropping it does.
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(Executed {
        _lock: lock,
        ending,
        ledger,
        written,
        guard,
        run_id,
        started,
        stats,
        to_send,
        pacer_rate,
        pace,
        notifier,
        progress_posts,
        reconciled,
        to_resend,
    })
}
