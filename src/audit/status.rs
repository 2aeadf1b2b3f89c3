//! `campaign status`: counts per status, progress, the last run, errors grouped by code and
//! throttle events, read from the ledger without disturbing a run that is writing it.

use serde::Serialize;

use crate::campaign::Campaign;
use crate::domain::{RowStatus, RunCounters, RunEnding, StatusCounts};
use crate::exit::Exit;
use crate::ledger::reconcile::PassTally;
use crate::ledger::report::{ErrorGroup, RunRecord};
use crate::ledger::{self, Ledger};
use crate::results::summary::human_duration;

/// The last `campaign run`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct LastRun {
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    /// `running` while it goes on; `aborted` when it stopped without recording its end (killed,
    /// power loss).
    pub(crate) ending: RunEnding,
    #[serde(flatten)]
    pub(crate) counters: RunCounters,
    pub(crate) elapsed_ms: u64,
    /// Requests per second.
    pub(crate) rate: f64,
}

/// The last results file written, as the ledger recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ResultsInfo {
    pub(crate) path: String,
    pub(crate) md5: String,
    pub(crate) written_at: Option<String>,
}

/// The `max_issued` budget: rows issued or possibly issued (uncertain, in flight; for an
/// idempotent API also pending rows sent before) over all runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct BudgetInfo {
    pub(crate) max: u64,
    pub(crate) used: u64,
    pub(crate) left: u64,
}

/// The last reconciliation pass (`campaign reconcile`, or `run` before or after sending).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct LastReconcile {
    /// `reconcile`, `run-start` or `run-end`.
    pub(crate) trigger: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    /// `finished`, `refused` (no permission for the query), `halted`, `interrupted`; `null`
    /// while it goes on or when it was killed.
    pub(crate) ending: Option<String>,
    #[serde(flatten)]
    pub(crate) tally: PassTally,
}

/// Everything `campaign status` shows; serialised as is by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct StatusReport {
    pub(crate) campaign: String,
    pub(crate) api: String,
    pub(crate) state: String,
    /// Whether a run holds the state file right now.
    pub(crate) running: bool,
    /// Data rows of the current input.
    pub(crate) rows: u64,
    pub(crate) counts: StatusCounts,
    /// Rows being sent right now (counted as pending).
    pub(crate) in_flight: u64,
    /// Share of rows done (not pending), 0 to 1.
    pub(crate) progress: f64,
    /// Identities recorded earlier that are no longer in the input.
    pub(crate) orphaned: u64,
    /// Runs so far.
    pub(crate) runs: u64,
    pub(crate) last_run: Option<LastRun>,
    /// Unsuccessful attempts over all runs, grouped by class, code and sub-code.
    pub(crate) errors: Vec<ErrorGroup>,
    /// Flow-control answers over all runs.
    pub(crate) throttle_events: u64,
    pub(crate) results: Option<ResultsInfo>,
    /// `null` without `limits.max_issued`.
    pub(crate) budget: Option<BudgetInfo>,
    /// Reconciliation passes so far.
    pub(crate) reconciles: u64,
    pub(crate) last_reconcile: Option<LastReconcile>,
}

pub(super) fn run(campaign: &Campaign, json: bool) -> anyhow::Result<Exit> {
    let report = gather(campaign)?;
    if json {
        super::print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::print(&render(&report))?;
    }
    Ok(Exit::Ok)
}

/// Reads the report from the campaign's ledger.
pub(crate) fn gather(campaign: &Campaign) -> anyhow::Result<StatusReport> {
    let running = ledger::is_locked(&campaign.state);
    let ledger = super::open_read_only(campaign)?;
    let counts = ledger.status_counts()?;
    let rows = counts.total();
    let progress = if rows == 0 {
        0.0
    } else {
        ((rows - counts.pending) as f64 / rows as f64 * 10_000.0).round() / 10_000.0
    };
    let (last, runs) = ledger.last_run()?;
    let last_run = last
        .map(|run| last_run(&ledger, run, running))
        .transpose()?;
    let results = match (ledger.meta("results_path")?, ledger.meta("results_md5")?) {
        (Some(path), Some(md5)) => Some(ResultsInfo {
            path,
            md5,
            written_at: ledger.meta("results_written_at")?,
        }),
        _ => None,
    };
    let budget = match campaign.limits.max_issued {
        Some(max) => {
            let used = ledger.budget_use(campaign.api.is_idempotent())?.used;
            Some(BudgetInfo {
                max,
                used,
                left: max.saturating_sub(used),
            })
        }
        None => None,
    };
    let (last_reconcile, reconciles) = ledger.last_reconcile()?;
    Ok(StatusReport {
        campaign: campaign.name.clone(),
        api: ledger
            .meta("api")?
            .unwrap_or_else(|| campaign.api.method.to_owned()),
        state: campaign.state.display().to_string(),
        running,
        rows,
        counts,
        in_flight: ledger.in_flight()?,
        progress,
        orphaned: ledger.counts(ledger.generation()?)?.orphaned,
        runs,
        last_run,
        errors: ledger.error_groups()?,
        throttle_events: ledger.throttle_events()?,
        results,
        budget,
        reconciles,
        last_reconcile: last_reconcile.map(|p| LastReconcile {
            trigger: p.trigger,
            started_at: p.started_at,
            ended_at: p.ended_at,
            ending: p.ending,
            tally: p.tally,
        }),
    })
}

/// The last run's numbers; a run that has not recorded its end gets them from its attempts.
fn last_run(ledger: &Ledger, run: RunRecord, running: bool) -> anyhow::Result<LastRun> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let mut last = LastRun {
        started_at: run.started_at.clone(),
        ended_at: run.ended_at.clone(),
        ending: run.ending.unwrap_or(RunEnding::Aborted),
        counters: run.counters,
        elapsed_ms: run.elapsed_ms,
        rate: 0.0,
    };
    if run.ended_at.is_none() {
        // A run keeps its counters in its row as it goes; for a run recorded by an older
        // version they come from its attempts.
        let (counters, last_activity) = if ledger.has_live_counters(run.id)? {
            (run.counters, None)
        } else {
            let tally = ledger.attempts_since(&run.started_at)?;
            (tally.counters, tally.last_started_at)
        };
        let since_start = |until: chrono::DateTime<chrono::FixedOffset>| {
            parse(&run.started_at)
                .map_or(0, |start| (until - start).num_milliseconds().max(0) as u64)
        };
        let elapsed = if running {
            since_start(chrono::Local::now().fixed_offset())
        } else {
            // Up to its last attempt; a run with live counters kept that time itself.
            last_activity
                .as_deref()
                .and_then(parse)
                .map_or(run.elapsed_ms, since_start)
        };
        last = LastRun {
            ending: if running {
                RunEnding::Running
            } else {
                RunEnding::Aborted
            },
            counters,
            elapsed_ms: elapsed,
            ..last
        };
    }
    if last.elapsed_ms > 0 {
        last.rate =
            (last.counters.sent as f64 * 1000.0 / last.elapsed_ms as f64 * 10.0).round() / 10.0;
    }
    Ok(last)
}

/// The readable table.
pub(crate) fn render(r: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "campaign  {} ({})", r.campaign, r.api);
    let _ = writeln!(
        out,
        "state     {} ({})",
        r.state,
        if r.running {
            "a run is going on right now"
        } else {
            "no run is going on"
        }
    );
    let _ = writeln!(
        out,
        "progress  {} of {} rows done ({:.1}%)",
        r.rows - r.counts.pending,
        r.rows,
        r.progress * 100.0
    );
    for (status, n) in r.counts.iter() {
        let _ = write!(out, "  {:<10} {n:>9}", status.as_str());
        if status == RowStatus::Pending && r.in_flight > 0 {
            let _ = write!(out, "  ({} in flight)", r.in_flight);
        }
        out.push('\n');
    }
    if r.orphaned > 0 {
        let _ = writeln!(
            out,
            "  {} identities in the ledger are no longer in the input (see `campaign verify`)",
            r.orphaned
        );
    }
    match &r.last_run {
        None => out.push_str("last run  none yet\n"),
        Some(run) => {
            let when = match (run.ending, &run.ended_at) {
                (RunEnding::Running, _) => format!("running since {}", run.started_at),
                (RunEnding::Aborted, _) => format!(
                    "started {}, stopped without recording its end (killed?)",
                    run.started_at
                ),
                (ending, Some(end)) => format!("{ending} {end}"),
                (ending, None) => ending.to_string(),
            };
            let elapsed = human_duration(std::time::Duration::from_millis(run.elapsed_ms));
            let _ = writeln!(out, "last run  #{}: {when}, after {elapsed}", r.runs);
            let _ = writeln!(
                out,
                "          {} requests ({:.1}/s), {} issued, {} failed, {} uncertain, {} retries, {} throttle events",
                run.counters.sent,
                run.rate,
                run.counters.issued,
                run.counters.failed,
                run.counters.uncertain,
                run.counters.retries,
                run.counters.throttle_events
            );
        }
    }
    if let Some(b) = &r.budget {
        let _ = writeln!(
            out,
            "budget    {} of {} used (issued or possibly issued), {} left",
            b.used, b.max, b.left
        );
    }
    render_errors(&mut out, &r.errors);
    let _ = writeln!(out, "throttle  {} events over all runs", r.throttle_events);
    if let Some(p) = &r.last_reconcile {
        let t = &p.tally;
        let _ = writeln!(
            out,
            "reconcile #{} ({}): {} {}; {} checked: {} issued, {} to send again, {} still \
             uncertain ({}, {} throttle events)",
            r.reconciles,
            p.trigger,
            p.ending.as_deref().unwrap_or("not ended"),
            p.ended_at.as_deref().unwrap_or(&p.started_at),
            plural(t.checked, "row", "rows"),
            t.issued,
            t.resend,
            t.uncertain,
            plural(t.queries, "query", "queries"),
            t.throttle_events
        );
    }
    match &r.results {
        None => out.push_str("results   none written yet\n"),
        Some(res) => {
            let _ = writeln!(
                out,
                "results   {} (md5 {}{})",
                res.path,
                res.md5,
                res.written_at
                    .as_deref()
                    .map(|t| format!(", written {t}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

fn render_errors(out: &mut String, errors: &[ErrorGroup]) {
    use std::fmt::Write as _;
    if errors.is_empty() {
        out.push_str("errors    none\n");
        return;
    }
    out.push_str("errors    unsuccessful attempts over all runs, by code:\n");
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let width = |f: &dyn Fn(&ErrorGroup) -> usize| errors.iter().map(f).max().unwrap_or(0);
    let class_w = width(&|e| e.class.as_str().len());
    let code_w = width(&|e| text(&e.code).chars().count());
    let sub_w = width(&|e| text(&e.sub_code).chars().count());
    for e in errors {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let _ = writeln!(
            out,
            "  {:<class_w$}  {:<code_w$}  {:<sub_w$}  {:>12}, {:<9}  e.g. {}",
            e.class.as_str(),
            text(&e.code),
            text(&e.sub_code),
            plural(e.count, "attempt", "attempts"),
            plural(e.rows, "row", "rows"),
            e.example.as_deref().unwrap_or("-")
        );
    }
}

/// `1 row`, `2 rows`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
