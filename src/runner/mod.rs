//! `campaign run`: prepares the ledger, dispatches the remaining rows concurrently under the
//! rate limit, stops cleanly on a halt or an interruption, and writes the results.

mod allowance;
mod backoff;
pub mod confirm;
mod halt;
pub mod pace;
mod signals;
mod worker;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use self::allowance::{Allowance, Refusal};
use self::backoff::Backoff;
pub use self::halt::Halt;
use self::pace::Pacer;
use crate::campaign::{Campaign, GatewayUrl, Limits, Secrets};
use crate::domain::{LiveCounters, RowStatus, RunCounters, RunEnding, now_rfc3339};
use crate::exit::Exit;
use crate::ingest::{Purpose, ingest};
use crate::ledger::budget::BudgetUse;
use crate::ledger::guard::StateGuard;
use crate::ledger::writer::{AttemptLog, Job, Msg, Record, Settle, Writer};
use crate::ledger::{self, Ledger};
use crate::notify::{Event, Notifier};
use crate::progress::{Output, Progress, say};
use crate::results;
use crate::top::client::{Client, ClientConfig};

/// Rows fetched from the ledger per query.
const FETCH_CHUNK: usize = 512;
/// Extra time, beyond the request timeout, that in-flight requests get to finish after a stop.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How often the state file is checked during a run (it is also checked before rows are
/// marked in flight, and before the final write).
const GUARD_EVERY: Duration = Duration::from_millis(500);
/// Retry backoff: first ceiling and cap.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// `campaign run` flags beyond the campaign file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub mode: Mode,
    pub reopen: Reopen,
    pub output: Output,
    /// `--limit N`: send at most this many not-yet-sent rows in this run (a canary).
    pub limit: Option<u64>,
    /// `--json`: the summary (or the dry-run plan) as one JSON object on stdout.
    pub json: bool,
    /// `--yes`: do not ask before a run against a real gateway.
    pub yes: bool,
}

/// Send, or only plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Send every row not yet done.
    #[default]
    Send,
    /// `--dry-run`: validate everything and print the plan; send nothing.
    DryRun,
}

/// Final rows the user asks to send again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reopen {
    /// `--retry-failed`
    pub failed: bool,
    /// `--resend-uncertain` (they may already have been issued).
    pub uncertain: bool,
}

/// Everything the workers share.
pub(crate) struct Ctx {
    client: Client,
    ledger: mpsc::Sender<Msg>,
    pacer: Pacer,
    in_flight: Semaphore,
    stop: CancellationToken,
    stats: Arc<LiveCounters>,
    limits: Limits,
    backoff: Backoff,
    halt: Mutex<Option<Halt>>,
    /// What `--limit` and the budget still allow this run to send.
    allowance: Allowance,
}

impl Ctx {
    async fn send(&self, msg: Msg) -> Result<(), worker::LedgerGone> {
        self.ledger.send(msg).await.map_err(|_| worker::LedgerGone)
    }

    async fn record(
        &self,
        job: &Job,
        attempt: Option<AttemptLog>,
        counted: bool,
        settle: Settle,
        top_request_id: Option<String>,
    ) -> Result<(), worker::LedgerGone> {
        let finished_at = (!matches!(settle, Settle::Pending(_))).then(now_rfc3339);
        self.send(Msg::Record(Box::new(Record {
            entry_id: job.entry_id,
            attempt,
            counted,
            settle,
            top_request_id,
            finished_at,
        })))
        .await
    }

    /// Stops the run for `reason` (the first reason wins).
    fn halt(&self, reason: Halt) {
        let mut halt = self.halt.lock().unwrap_or_else(|p| p.into_inner());
        if halt.is_none() {
            tracing::debug!("halting: {reason}");
            *halt = Some(reason);
        }
        self.stop.cancel();
    }

    fn check_failure_rate(&self) {
        let (failed, finished) = self.stats.failure_tally();
        let limit = self.limits.max_failure_rate;
        if finished >= self.limits.min_rows_for_halt
            && finished > 0
            && failed as f64 > limit * finished as f64
        {
            self.halt(Halt::FailureRate {
                failed,
                finished,
                limit,
            });
        }
    }
}

/// How the dispatch ended.
#[derive(Clone, Debug)]
enum Ending {
    /// Every row that could be sent was; `limit_reached` when `--limit` stopped the sending.
    Finished {
        limit_reached: bool,
    },
    Halted(Halt),
    Interrupted,
}

impl Ending {
    /// What the `runs` table records.
    fn recorded(&self) -> RunEnding {
        match self {
            Ending::Finished { .. } => RunEnding::Finished,
            Ending::Halted(_) => RunEnding::Halted,
            Ending::Interrupted => RunEnding::Interrupted,
        }
    }
}

/// Runs (or resumes) a campaign; returns the exit code. Errors are usage or environment
/// problems found before anything was sent.
pub async fn run(campaign: Campaign, options: RunOptions) -> anyhow::Result<Exit> {
    let secrets = campaign.secrets()?;
    let notifier = match &campaign.notify {
        Some(config) => Some(Notifier::new(config, campaign.notify_secret()?)?),
        None => None,
    };
    // Found now, not after every row was sent.
    crate::paths::check_run(&campaign)?;
    if options.mode == Mode::DryRun {
        return dry_run(&campaign, options.limit, options.json);
    }
    if !campaign.state.exists() {
        crate::audit::refuse_fresh_ledger(&campaign)?;
    }
    let _lock = ledger::lock(&campaign.state)?;
    let mut ledger = Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?;
    let budget = prepare(&mut ledger, &campaign, &options)?;
    if confirm::needed(&campaign, options.yes) {
        let mut rows = ledger.pending_count(ledger.generation()?)?;
        let used = budget.as_ref().map(|(max, found)| (*max, found.used));
        if let Some((max, used)) = used {
            rows = rows.min(max.saturating_sub(used));
        }
        if let Some(limit) = options.limit {
            rows = rows.min(limit);
        }
        let plan = confirm::Plan {
            campaign: &campaign,
            rows,
            budget: used,
        };
        if !confirm::ask(&plan).await? {
            say("campaign: not confirmed; nothing was sent");
            return Ok(Exit::Usage);
        }
    }

    let sim = match &campaign.gateway.url {
        GatewayUrl::Sim => Some(start_sim(&campaign, &secrets).await?),
        GatewayUrl::Http(_) => None,
    };
    let url = match (&campaign.gateway.url, &sim) {
        (GatewayUrl::Http(url), _) => url.clone(),
        (GatewayUrl::Sim, Some(sim)) => sim.url(),
        (GatewayUrl::Sim, None) => unreachable!("the simulator was started above"),
    };
    let client = Client::new(
        ClientConfig {
            url,
            app_key: campaign.gateway.app_key.clone(),
            secret: secrets.app_secret.clone(),
            session: secrets.session.clone(),
            sign_method: campaign.gateway.sign_method,
            connect_timeout: campaign.gateway.connect_timeout,
            request_timeout: campaign.gateway.timeout,
        },
        campaign.api,
    )
    .context("cannot build the HTTP client")?;

    let started = Instant::now();
    let started_at = now_rfc3339();
    let run_id = ledger.begin_run(&started_at)?;
    let generation = ledger.generation()?;
    let to_send = ledger.pending_count(generation)?;
    let (earlier_issued, earlier_failed) = ledger.issued_and_failed(to_send)?;
    let stats = Arc::new(LiveCounters::after(earlier_issued, earlier_failed));

    let guard =
        Arc::new(StateGuard::new(&campaign.state).with_context(|| {
            format!("{}: cannot watch the state file", campaign.state.display())
        })?);
    let writer = Writer::start(ledger, 8192, Some(guard.clone()));
    let ctx = Arc::new(Ctx {
        client,
        ledger: writer.tx.clone(),
        pacer: Pacer::new(campaign.limits.qps.get(), campaign.limits.max_ban_wait),
        in_flight: Semaphore::new(campaign.limits.concurrency.get()),
        stop: CancellationToken::new(),
        stats: stats.clone(),
        limits: campaign.limits.clone(),
        backoff: Backoff::new(BACKOFF_BASE, BACKOFF_MAX, None),
        halt: Mutex::new(None),
        allowance: Allowance::new(options.limit, budget),
    });
    let progress = Progress::start(to_send, stats.clone(), options.output);
    let progress_posts = match &notifier {
        Some(notifier) => post_progress(
            notifier.clone(),
            campaign.notify.as_ref().and_then(|n| n.every),
            &campaign,
            to_send,
            stats.clone(),
            started,
        ),
        None => CancellationToken::new(),
    };
    let interrupted = signals::watch(
        ctx.stop.clone(),
        record_hard_quit(&campaign, run_id, started, stats.clone()),
    );
    let drain_limit = campaign.gateway.timeout + campaign.gateway.connect_timeout + DRAIN_GRACE;
    let watchdog = tokio::spawn(watch_state_file(ctx.clone(), guard.clone()));
    let refused = dispatch(&ctx, generation, drain_limit).await;
    watchdog.abort();
    let _ = watchdog.await;
    progress.finish();

    let ending = if let Some(halt) = ctx.halt.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Ending::Halted(halt)
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
    drop(ctx);
    let (mut ledger, written) = writer.finish();
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    // Requests were sent: from here on a failure is not a usage error (exit 2) but a halt.
    let mut ending = match written {
        Ok(()) => ending,
        Err(e) => Ending::Halted(Halt::LedgerWrite(describe(&e))),
    };
    // Checked once more before the final write: a lost state file outranks every other reason.
    if let Err(finding) = guard.check() {
        ending = Ending::Halted(Halt::LedgerLost(finding.to_owned()));
    }
    let elapsed = started.elapsed();
    let counters = stats.snapshot();
    if let Err(e) = ledger.end_run(
        run_id,
        &now_rfc3339(),
        ending.recorded(),
        &counters,
        elapsed,
    ) && !matches!(ending, Ending::Halted(Halt::LedgerWrite(_)))
    {
        ending = Ending::Halted(Halt::LedgerWrite(describe(&e)));
    }
    // Rows still in flight after the drain (it timed out) may have reached the platform: they
    // are settled as the next run would settle them, so the results file does not show them
    // as pending (a ledger rebuilt from it would send them again).
    if let Err(e) = ledger.recover_in_flight(campaign.api.is_idempotent(), &now_rfc3339()) {
        tracing::error!("{e}");
    }
    remove_stale_temporaries(&campaign.results);
    let written = results::write_results(&campaign, &mut ledger, &campaign.results);
    let counts = match &written {
        Ok(written) => written.counts,
        Err(_) => ledger.status_counts().unwrap_or_default(),
    };
    let pending = counts.get(RowStatus::Pending);
    let mut notes = Vec::new();
    if let (
        Ending::Finished {
            limit_reached: true,
        },
        Some(limit),
    ) = (&ending, options.limit)
    {
        notes.push(format!(
            "limit reached: --limit {limit} rows were sent in this run; {pending} rows remain \
             pending: look at the results, then run again without --limit to continue"
        ));
    }
    if let Some(max) = campaign.limits.max_issued
        && let Ok(budget) = ledger.budget_use(campaign.api.is_idempotent())
    {
        let used = budget.used;
        notes.push(format!(
            "budget: {used} of max_issued = {max} used (issued or possibly issued), {} left",
            max.saturating_sub(used)
        ));
    }
    let summary = results::Summary {
        counts: &counts,
        elapsed,
        counters,
        final_rate: pacer_rate,
        results: &campaign.results,
        digest: written.as_ref().ok().map(|w| w.digest.as_str()),
        bom: written.as_ref().ok().map(|w| w.bom),
        notes: &notes,
    };
    if options.output == Output::Normal && !options.json {
        results::print_summary(&summary);
    }
    if let Err(e) = &written {
        say(&format!(
            "campaign: error: cannot write the results to {}: {}",
            campaign.results.display(),
            describe(e)
        ));
    }
    let lost = matches!(&ending, Ending::Halted(Halt::LedgerLost(_)));
    if lost {
        say(&format!("campaign: halted: {}", halt_text(&ending)));
        let rebuild = format!(
            "campaign rebuild {} --from {}",
            campaign.path.display(),
            campaign.results.display()
        );
        match &written {
            Ok(_) => say(&format!(
                "campaign: every outcome, this run's included, is in the results file {}: put the \
                 state file back from a backup, or rebuild it from the results with `{rebuild}`; \
                 then run again (nothing is sent twice)",
                campaign.results.display()
            )),
            Err(_) => say(&format!(
                "campaign: the results could not be written either: do not run this campaign \
                 again until the state file {} is restored",
                campaign.state.display()
            )),
        }
    }
    if let (Err(e), false) = (&written, lost) {
        say(&format!(
            "campaign: progress is saved in the ledger; {}",
            remedy_for(e)
        ));
    }
    let exit = match (&ending, written.is_ok()) {
        _ if lost => Exit::Halted,
        (Ending::Interrupted, written) => {
            if written {
                say(
                    "campaign: interrupted; progress is saved: run the same command again to resume",
                );
            }
            Exit::Interrupted
        }
        (_, false) => Exit::Halted,
        (Ending::Halted(halt), true) => {
            say(&format!("campaign: halted: {halt}"));
            say(match &halt {
                Halt::LedgerWrite(_) => {
                    "campaign: progress is saved (each row's in-flight mark was on disk before \
                     its request left); free space (or fix the error above) and run again"
                }
                _ => "campaign: progress is saved; run the same command again to resume",
            });
            Exit::Halted
        }
        (Ending::Finished { .. }, true) if counts.need_attention() => Exit::RowsFailed,
        (Ending::Finished { .. }, true) => Exit::Ok,
    };
    if options.json {
        let ending = results::summary::Ending {
            recorded: ending.recorded(),
            exit,
            reason: matches!(ending, Ending::Halted(_)).then(|| halt_text(&ending)),
            results_error: written.as_ref().err().map(|e| describe(e)),
        };
        let object = results::summary_json(&campaign, &summary, &ending);
        // Best effort, like the text summary: a closed stdout must not change the exit code.
        let _ = crate::progress::print(&format!("{object}\n"));
    }
    if let Some(notifier) = notifier {
        progress_posts.cancel();
        let reason = match &ending {
            Ending::Halted(halt) => Some(format!("halted: {halt}")),
            _ => notes.first().filter(|n| n.starts_with("limit")).cloned(),
        };
        notifier
            .post(&Event {
                counts: Some(counts),
                reason,
                ..event(
                    &campaign,
                    ending.recorded().as_str(),
                    to_send,
                    counters,
                    elapsed,
                )
            })
            .await;
    }
    Ok(exit)
}

/// A notification about this run, before the counts and the reason are known.
fn event(
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

/// Posts a progress notification every `every` until `stop` is cancelled.
fn post_progress(
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

/// The text of a halted ending.
fn halt_text(ending: &Ending) -> String {
    match ending {
        Ending::Halted(halt) => halt.to_string(),
        _ => String::new(),
    }
}

/// An error and its causes on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// What to do when the results could not be written after sending.
fn remedy_for(_error: &dyn std::error::Error) -> &'static str {
    "free space (or fix the error above) and run again, or `campaign export` to write the results"
}

/// Checks every half second that the state file is still the one the run has open; halts the
/// run at the first sign that it was deleted, replaced or truncated.
async fn watch_state_file(ctx: Arc<Ctx>, guard: Arc<StateGuard>) {
    let mut tick = tokio::time::interval(GUARD_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.stop.cancelled() => return,
        }
        if let Err(finding) = guard.check() {
            ctx.halt(Halt::LedgerLost(finding.to_owned()));
            return;
        }
    }
}

/// Removes temporary files that a killed run or export left beside `results` (the atomic
/// writer's `.<name>*.tmp`): the caller holds the run lock, so none is being written.
pub(crate) fn remove_stale_temporaries(results: &Path) {
    let (Some(folder), Some(name)) = (
        Some(crate::paths::folder_of(results)),
        results.file_name().and_then(|n| n.to_str()),
    ) else {
        return;
    };
    let prefix = format!(".{name}");
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|random| {
                    !random.is_empty() && random.bytes().all(|b| b.is_ascii_alphanumeric())
                })
        });
        if stale && let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(
                "{}: cannot remove this stale temporary file: {e}",
                entry.path().display()
            );
        }
    }
}

/// Crash recovery, ingest, and the user's reopen flags, with what they found said out loud.
/// Returns `max_issued` with what the ledger counts against it, before rows are reopened: a
/// reopened `uncertain` row may have been issued, so it counts again when it is sent.
fn prepare(
    ledger: &mut Ledger,
    campaign: &Campaign,
    options: &RunOptions,
) -> anyhow::Result<Option<(u64, BudgetUse)>> {
    let recovered = ledger.recover_in_flight(campaign.api.is_idempotent(), &now_rfc3339())?;
    if recovered > 0 {
        if campaign.api.is_idempotent() {
            tracing::warn!(
                "{recovered} rows were in flight when the last run stopped; they will be sent again with the same request_id"
            );
        } else {
            tracing::warn!(
                "{recovered} rows were in flight when the last run stopped and are now `uncertain`: \
                 the platform may have issued them; check, then use --resend-uncertain if needed"
            );
        }
    }
    let report = ingest(ledger, campaign, Purpose::Run)?;
    if report.input_changed {
        tracing::warn!(
            "the input file changed since the last run; rows were re-read, and rows already sent keep their state (nothing is issued twice)"
        );
    }
    if report.params_changed {
        tracing::warn!(
            "the campaign params changed since the last run; they apply to rows not yet sent, and rows already sent are not sent again"
        );
    }
    let budget = match campaign.limits.max_issued {
        Some(max) => Some((max, ledger.budget_use(campaign.api.is_idempotent())?)),
        None => None,
    };
    let reopened = ledger.reopen(options.reopen.failed, options.reopen.uncertain)?;
    if reopened > 0 {
        tracing::info!("{reopened} rows reopened for sending");
    }
    Ok(budget)
}

/// Feeds pending rows to the workers until none are left, the run stops, or `--limit` or the
/// budget allows no more (returned), then drains.
async fn dispatch(ctx: &Arc<Ctx>, generation: i64, drain_limit: Duration) -> Option<Refusal> {
    let workers = ctx.limits.concurrency.get() * 2 + 2;
    let (jobs_tx, jobs_rx) = async_channel(workers);
    // One permit per worker waiting for a row and not yet promised one: rows are marked in
    // flight only for workers that will take them at once.
    let idle = Arc::new(Semaphore::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let ctx = ctx.clone();
        let jobs = jobs_rx.clone();
        let idle = idle.clone();
        tasks.spawn(async move {
            loop {
                idle.add_permits(1);
                let job = { jobs.lock().await.recv().await };
                let Some((job, slot)) = job else { return };
                match worker::process(&ctx, job, slot).await {
                    Ok(refused) => ctx.allowance.settle(refused),
                    Err(worker::LedgerGone) => {
                        ctx.halt(Halt::Ledger);
                        return;
                    }
                }
            }
        });
    }
    drop(jobs_rx);

    let mut after_row = 0;
    let mut refused = None;
    'feed: while !ctx.stop.is_cancelled() {
        let (reply, chunk) = tokio::sync::oneshot::channel();
        let asked = Msg::NextPending {
            generation,
            after_row,
            limit: FETCH_CHUNK,
            reply,
        };
        if ctx.send(asked).await.is_err() {
            ctx.halt(Halt::Ledger);
            break;
        }
        let Ok(chunk) = chunk.await else {
            ctx.halt(Halt::Ledger);
            break;
        };
        let Some(last) = chunk.last() else { break };
        after_row = last.row;
        let mut rest = chunk;
        while !rest.is_empty() {
            let (granted, refusal) = ctx.allowance.grant(&rest);
            let mut chunk = rest.drain(..granted).collect::<Vec<_>>().into_iter();
            match hand_out(ctx, &idle, &jobs_tx, &mut chunk).await {
                Ok(()) => {}
                Err(Stopped) => break 'feed,
            }
            match refusal {
                None => {}
                Some(Refusal::Budget) if ctx.allowance.wait_for_room(&ctx.stop).await => {}
                Some(refusal) => {
                    refused = Some(refusal);
                    break 'feed;
                }
            }
        }
    }
    drop(jobs_tx);

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
                    return refused;
                }
            },
        };
        if joined.is_none() {
            return refused;
        }
    }
}

/// The run stopped (or the ledger is gone) while rows were handed out.
struct Stopped;

/// Marks `rows` in flight batch by batch and hands each to a worker with its permit.
async fn hand_out(
    ctx: &Arc<Ctx>,
    idle: &Semaphore,
    jobs_tx: &mpsc::Sender<(Job, worker::Slot)>,
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
                        if ctx
                            .record(&job, None, false, Settle::Pending(None), None)
                            .await
                            .is_err()
                        {
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
async fn mark_batch(
    ctx: &Arc<Ctx>,
    idle: &Semaphore,
    rows: &mut std::vec::IntoIter<Job>,
) -> Option<Vec<(Job, worker::Slot)>> {
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
    let mut slots = vec![worker::Slot::adopt(ctx)];
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
            slots.extend((0..more).map(|_| worker::Slot::adopt(ctx)));
        }
    }
    // Slots first: `zip` stops on the first exhausted side before taking from the second, so no
    // row is taken without a slot.
    let batch: Vec<(Job, worker::Slot)> = slots
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

/// A job queue many workers can take from; each row comes with the permit it was marked under.
type SharedJobs = Arc<tokio::sync::Mutex<mpsc::Receiver<(Job, worker::Slot)>>>;

fn async_channel(capacity: usize) -> (mpsc::Sender<(Job, worker::Slot)>, SharedJobs) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

/// What a hard quit (a second signal) does before exiting: clears the progress bar and records
/// the run as interrupted with its real duration and counts, through a connection of its own
/// (the ledger thread may be the thing that hangs).
fn record_hard_quit(
    campaign: &Campaign,
    run_id: i64,
    started: Instant,
    stats: Arc<LiveCounters>,
) -> signals::OnQuit {
    let state = campaign.state.clone();
    let name = campaign.name.clone();
    let method = campaign.api.method;
    Box::new(move || {
        crate::progress::clear();
        // Never create a state file here: one that vanished is the ledger guard's business.
        if !state.exists() {
            return;
        }
        let ended = Ledger::open(&state, &name, method).and_then(|ledger| {
            ledger.end_run(
                run_id,
                &now_rfc3339(),
                RunEnding::Interrupted,
                &stats.snapshot(),
                started.elapsed(),
            )
        });
        if let Err(e) = ended {
            tracing::warn!("could not record the end of the run: {e}");
        }
    })
}

async fn start_sim(
    campaign: &Campaign,
    secrets: &Secrets,
) -> anyhow::Result<crate::sim::SimServer> {
    let config = crate::sim::SimConfig {
        app_key: campaign.gateway.app_key.clone(),
        secret: secrets.app_secret.expose().to_owned(),
        session: secrets
            .session
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
        ..crate::sim::SimConfig::default()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    crate::sim::start(config, addr)
        .await
        .context("cannot start the built-in simulator")
}

/// `--dry-run`: ingest into a transaction that is rolled back, and print the plan.
fn dry_run(campaign: &Campaign, limit: Option<u64>, json: bool) -> anyhow::Result<Exit> {
    // A campaign that never ran is planned in a throwaway state file on disk, not in memory:
    // a dry run of millions of rows must not hold them all in RAM.
    let scratch;
    let (_lock, mut ledger) = if campaign.state.exists() {
        let lock = ledger::lock(&campaign.state)?;
        (
            Some(lock),
            Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?,
        )
    } else {
        scratch = tempfile::Builder::new()
            .prefix("campaign-dry-run")
            .tempdir()
            .context("cannot create a scratch directory for the dry run")?;
        let path = scratch.path().join("plan.db");
        (
            None,
            Ledger::open(&path, &campaign.name, campaign.api.method)?,
        )
    };
    let report = ingest(&mut ledger, campaign, Purpose::Plan)?;
    let budget = match campaign.limits.max_issued {
        Some(max) => Some((max, ledger.budget_use(campaign.api.is_idempotent())?.used)),
        None => None,
    };
    if json {
        let plan = results::plan_json(campaign, &report, limit, budget);
        let _ = crate::progress::print(&format!("{plan}\n"));
    } else {
        results::print_plan(campaign, &report, limit, budget);
    }
    Ok(Exit::Ok)
}
