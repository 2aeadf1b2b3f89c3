//! How a run ends once sending stopped: the ending settled (a ledger or state-file failure
//! outranks the rest), recorded in the `runs` table, the results written, the summary and the
//! messages printed, the notification posted, and the exit code chosen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::signals::OnQuit;
use super::{Halt, RunOptions, notices};
use crate::campaign::Campaign;
use crate::domain::{LiveCounters, RowStatus, RunCounters, RunEnding, StatusCounts, now_rfc3339};
use crate::exit::Exit;
use crate::ledger::guard::StateGuard;
use crate::ledger::{Ledger, LedgerError, RunLock};
use crate::notify::{Event, Notifier};
use crate::progress::{Output, say};
use crate::results::{self, ResultsError, Written};

/// How the dispatch ended.
#[derive(Clone, Debug)]
pub(super) enum Ending {
    /// Every row that could be sent was; `limit_reached` when `--limit` stopped the sending.
    Finished {
        limit_reached: bool,
    },
    Halted(Halt),
    Interrupted,
}

impl Ending {
    /// What the `runs` table records.
    pub(super) fn recorded(&self) -> RunEnding {
        match self {
            Ending::Finished { .. } => RunEnding::Finished,
            Ending::Halted(_) => RunEnding::Halted,
            Ending::Interrupted => RunEnding::Interrupted,
        }
    }

    /// The text of a halted ending.
    fn halt_text(&self) -> String {
        match self {
            Ending::Halted(halt) => halt.to_string(),
            _ => String::new(),
        }
    }
}

/// What sending left behind, for the conclusion.
pub(super) struct Executed {
    /// The run lock, held until the results are written.
    pub(super) _lock: RunLock,
    pub(super) ending: Ending,
    /// The ledger, back from its thread, and the first error the thread met.
    pub(super) ledger: Ledger,
    pub(super) written: Result<(), LedgerError>,
    pub(super) guard: Arc<StateGuard>,
    pub(super) run_id: i64,
    pub(super) started: Instant,
    pub(super) stats: Arc<LiveCounters>,
    pub(super) to_send: u64,
    /// The pace the run ended at.
    pub(super) pacer_rate: f64,
    /// The peak in flight and the shortfall below `qps`, if any.
    pub(super) pace: super::limiter::PaceReport,
    pub(super) notifier: Option<Notifier>,
    /// Cancels the progress notifications.
    pub(super) progress_posts: CancellationToken,
    /// What reconciliation did before and after sending, for the summary.
    pub(super) reconciled: Vec<String>,
    /// Uncertain rows found not issued at the end: the next run sends them.
    pub(super) to_resend: u64,
}

/// Settles and records the ending, writes the results, tells the user, and returns the exit
/// code.
pub(super) async fn conclude(
    campaign: &Campaign,
    options: &RunOptions,
    executed: Executed,
) -> anyhow::Result<Exit> {
    let Executed {
        _lock,
        ending,
        mut ledger,
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
    } = executed;
    let elapsed = started.elapsed();
    let counters = stats.snapshot();
    let ending = record_ending(
        campaign, &ledger, &guard, ending, written, run_id, counters, elapsed,
    );
    crate::files::atomic::remove_stale(&campaign.results);
    let written = match results::unchanged_results(campaign, &ledger, &campaign.results) {
        Ok(Some(unchanged)) => Ok(unchanged),
        _ => results::write_results(campaign, &mut ledger, &campaign.results),
    };
    let counts = match &written {
        Ok(written) => written.counts,
        Err(_) => ledger.status_counts().unwrap_or_default(),
    };
    let mut notes = notes(campaign, options, &ledger, &ending, &counts);
    notes.extend(reconciled);
    if to_resend > 0 {
        notes.push(format!(
            "note: {to_resend} uncertain {} found not issued: run again to send {}",
            if to_resend == 1 {
                "row was"
            } else {
                "rows were"
            },
            if to_resend == 1 { "it" } else { "them" }
        ));
    }
    let summary = results::Summary {
        counts: &counts,
        elapsed,
        counters,
        final_rate: pacer_rate,
        peak_in_flight: pace.peak_in_flight,
        in_flight_bound: pace.in_flight_bound,
        shortfall: pace.shortfall.as_deref(),
        results: &campaign.results,
        digest: written.as_ref().ok().map(|w| w.digest.as_str()),
        bom: written.as_ref().ok().map(|w| w.bom),
        rewritten: written.as_ref().is_ok_and(|w| w.rewritten),
        notes: &notes,
    };
    if options.output == Output::Normal && !options.json {
        results::print_summary(&summary);
    }
    let exit = match tell(campaign, &ending, &written, &counts) {
        Exit::Ok if to_resend > 0 => Exit::RowsFailed,
        exit => exit,
    };
    let lost = matches!(&ending, Ending::Halted(Halt::LedgerLost(_)));
    if !lost {
        let reason = matches!(ending, Ending::Halted(_)).then(|| ending.halt_text());
        if let Err(e) = ledger.record_run_exit(run_id, exit as i32, reason.as_deref()) {
            tracing::warn!("cannot record the run's exit code: {e}");
        }
    }
    if written.is_ok() && !lost {
        crate::report::after_run(campaign, options.output == Output::Normal && !options.json);
    }
    if options.json {
        let ending = results::summary::Ending {
            recorded: ending.recorded(),
            exit,
            reason: matches!(ending, Ending::Halted(_)).then(|| ending.halt_text()),
            results_error: written.as_ref().err().map(|e| describe(e)),
        };
        let object = results::summary_json(campaign, &summary, &ending);
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
                ..notices::event(
                    campaign,
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

/// Settles the ending (requests were sent: from here on a failure is not a usage error, exit 2,
/// but a halt) and records it with the run's counters; settles rows still in flight.
#[allow(clippy::too_many_arguments)]
fn record_ending(
    campaign: &Campaign,
    ledger: &Ledger,
    guard: &StateGuard,
    ending: Ending,
    written: Result<(), LedgerError>,
    run_id: i64,
    counters: RunCounters,
    elapsed: Duration,
) -> Ending {
    let mut ending = match written {
        Ok(()) => ending,
        Err(e) => Ending::Halted(Halt::LedgerWrite(describe(&e))),
    };
    // Checked once more before the final write: a lost state file outranks every other reason.
    if let Err(finding) = guard.check() {
        ending = Ending::Halted(Halt::LedgerLost(finding.to_owned()));
    }
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
    ending
}

/// The summary's notes: a `--limit` that was reached, the budget used.
fn notes(
    campaign: &Campaign,
    options: &RunOptions,
    ledger: &Ledger,
    ending: &Ending,
    counts: &StatusCounts,
) -> Vec<String> {
    let pending = counts.get(RowStatus::Pending);
    let mut notes = Vec::new();
    if let (
        Ending::Finished {
            limit_reached: true,
        },
        Some(limit),
    ) = (ending, options.limit)
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
    notes
}

/// Says how the run ended and what to do next; returns the exit code.
fn tell(
    campaign: &Campaign,
    ending: &Ending,
    written: &Result<Written, ResultsError>,
    counts: &StatusCounts,
) -> Exit {
    if let Err(e) = written {
        say(&format!(
            "campaign: error: cannot write the results to {}: {}",
            campaign.results.display(),
            describe(e)
        ));
    }
    let lost = matches!(ending, Ending::Halted(Halt::LedgerLost(_)));
    if lost {
        tell_lost(campaign, ending, written.is_ok());
        return Exit::Halted;
    }
    if written.is_err() {
        say(&format!(
            "campaign: progress is saved in the ledger; {}",
            remedy_for_results()
        ));
    }
    match (ending, written.is_ok()) {
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
            say(match halt {
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
    }
}

/// The state file was lost during the run: where every outcome is, and how to get it back.
fn tell_lost(campaign: &Campaign, ending: &Ending, results_written: bool) {
    say(&format!("campaign: halted: {}", ending.halt_text()));
    let rebuild = format!(
        "campaign rebuild {} --from {}",
        campaign.path.display(),
        campaign.results.display()
    );
    if results_written {
        say(&format!(
            "campaign: every outcome, this run's included, is in the results file {}: put the \
             state file back from a backup, or rebuild it from the results with `{rebuild}`; \
             then run again (nothing is sent twice)",
            campaign.results.display()
        ));
    } else {
        say(&format!(
            "campaign: the results could not be written either: do not run this campaign \
             again until the state file {} is restored",
            campaign.state.display()
        ));
    }
}

/// An error and its causes on one line.
pub(super) fn describe(error: &dyn std::error::Error) -> String {
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
fn remedy_for_results() -> &'static str {
    "free space (or fix the error above) and run again, or `campaign export` to write the results"
}

/// What a hard quit (a second signal) does before exiting: clears the progress bar and records
/// the run as interrupted with its real duration and counts, through a connection of its own
/// (the ledger thread may be the thing that hangs).
pub(super) fn record_hard_quit(
    campaign: &Campaign,
    run_id: i64,
    started: Instant,
    stats: Arc<LiveCounters>,
) -> OnQuit {
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
