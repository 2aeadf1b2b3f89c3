//! The summary printed at the end of a run, and the plan printed by `--dry-run`: as text, or
//! with `--json` as one JSON object each (shapes in docs/json.md).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::campaign::Campaign;
use crate::domain::{RowStatus, RunCounters, RunEnding, StatusCounts};
use crate::exit::Exit;
use crate::ingest::IngestReport;

/// What the end-of-run summary shows.
pub(crate) struct Summary<'a> {
    pub(crate) counts: &'a StatusCounts,
    pub(crate) elapsed: Duration,
    pub(crate) counters: RunCounters,
    /// The pace the run ended at (below `qps` after throttling).
    pub(crate) final_rate: f64,
    pub(crate) results: &'a Path,
    /// The results file's MD5, when it could be written.
    pub(crate) digest: Option<&'a str>,
    /// Whether the results file starts with a byte-order mark, when it could be written.
    pub(crate) bom: Option<bool>,
    /// Whether the results file was written by this run (`false`: it was already up to date).
    pub(crate) rewritten: bool,
    /// The most rows in flight at once: what a crash could have left uncertain.
    pub(crate) peak_in_flight: usize,
    /// How the in-flight count was bounded, e.g. `concurrency = 16`.
    pub(crate) in_flight_bound: String,
    /// Why the run fell short of `qps`, when it did: the limiter that held longest.
    pub(crate) shortfall: Option<&'a str>,
    /// Lines printed after the results line (limit reached, budget).
    pub(crate) notes: &'a [String],
}

/// Formats a duration as `1h02m03s`, `2m03s` or `3.4s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

/// `writeln!` into a `String` (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Prints the end-of-run summary to stdout.
pub(crate) fn print_summary(s: &Summary<'_>) {
    let mut out = String::new();
    outln!(out, "rows: {}", s.counts.total());
    for (status, n) in s.counts.iter() {
        outln!(out, "  {:<10} {n:>9}", status.as_str());
    }
    // A rate over less than a second says nothing.
    let rate = match s.elapsed.as_secs_f64() {
        secs if secs >= 1.0 => format!(" ({:.1}/s)", s.counters.sent as f64 / secs),
        _ => String::new(),
    };
    outln!(
        out,
        "this run: {} requests in {}{rate}, {} retries, {} throttle events",
        s.counters.sent,
        human_duration(s.elapsed),
        s.counters.retries,
        s.counters.throttle_events
    );
    if s.counters.sent > 0 {
        outln!(
            out,
            "  peak in flight: {} ({})",
            s.peak_in_flight,
            s.in_flight_bound
        );
    }
    if let Some(shortfall) = s.shortfall {
        outln!(out, "  {shortfall}");
    }
    if s.counters.throttle_events > 0 {
        outln!(
            out,
            "  ended at a pace of {:.1}/s after throttling",
            s.final_rate
        );
    }
    if let Some(digest) = s.digest {
        let unchanged = if s.rewritten {
            ""
        } else {
            "; already up to date, left as it was"
        };
        outln!(
            out,
            "results: {} (md5 {digest}{unchanged})",
            s.results.display()
        );
    }
    for note in s.notes {
        outln!(out, "{note}");
    }
    let uncertain = s.counts.get(RowStatus::Uncertain);
    if uncertain > 0 {
        let (rows, are) = if uncertain == 1 {
            ("row is", "it")
        } else {
            ("rows are", "them")
        };
        outln!(
            out,
            "note: {uncertain} {rows} uncertain: the platform may have issued {are}. For tmall, \
             `campaign reconcile` (or the next run) asks the platform; \
             `campaign run --resend-uncertain` sends {are} again unchecked."
        );
    }
    // Output is best effort: a closed stdout must not turn a finished run into an error.
    let _ = crate::progress::print(&out);
}

/// How a run ended, for the JSON summary.
pub(crate) struct Ending {
    pub(crate) recorded: RunEnding,
    pub(crate) exit: Exit,
    /// Why it halted, when it did.
    pub(crate) reason: Option<String>,
    /// Why the results file could not be written, when it could not.
    pub(crate) results_error: Option<String>,
}

/// The end-of-run summary as one JSON object.
pub(crate) fn summary_json(campaign: &Campaign, s: &Summary<'_>, ending: &Ending) -> Value {
    let secs = s.elapsed.as_secs_f64();
    json!({
        "campaign": campaign.name,
        "api": campaign.api.method,
        "ending": ending.recorded.as_str(),
        "exit_code": ending.exit.code(),
        "reason": ending.reason,
        "rows": s.counts.total(),
        "counts": s.counts,
        "this_run": {
            "sent": s.counters.sent,
            "issued": s.counters.issued,
            "failed": s.counters.failed,
            "uncertain": s.counters.uncertain,
            "retries": s.counters.retries,
            "throttle_events": s.counters.throttle_events,
            "elapsed_ms": s.elapsed.as_millis() as u64,
            "rate": (secs >= 1.0).then(|| s.counters.sent as f64 / secs),
            "final_rate": s.final_rate,
            "peak_in_flight": s.peak_in_flight,
            "shortfall": s.shortfall,
        },
        "results": {
            "path": s.results.display().to_string(),
            "md5": s.digest,
            "bom": s.bom,
            "rewritten": s.digest.is_some().then_some(s.rewritten),
            "error": ending.results_error,
        },
        "notes": s.notes,
    })
}

/// Rows this run would send: the rows to send, capped by the budget and `--limit`.
fn this_run(report: &IngestReport, limit: Option<u64>, budget: Option<(u64, u64)>) -> u64 {
    let mut this_run = report.to_send;
    if let Some((max, used)) = budget {
        this_run = this_run.min(max.saturating_sub(used));
    }
    if let Some(limit) = limit {
        this_run = this_run.min(limit);
    }
    this_run
}

/// The `--dry-run` plan as one JSON object.
pub(crate) fn plan_json(
    campaign: &Campaign,
    report: &IngestReport,
    limit: Option<u64>,
    budget: Option<(u64, u64)>,
) -> Value {
    let sends = this_run(report, limit, budget);
    json!({
        "campaign": campaign.name,
        "api": campaign.api.method,
        "dry_run": true,
        "rows": report.rows,
        "to_send": report.to_send,
        "already_done": report.already_done,
        "invalid": report.invalid,
        "duplicates": report.duplicates,
        "this_run_sends": sends,
        "limit": limit,
        "budget": budget.map(|(max, used)| json!({ "max_issued": max, "used": used })),
        "qps": campaign.limits.qps.get(),
        "estimated_s": sends as f64 / campaign.limits.qps.get(),
        "input_changed": report.input_changed,
        "params_changed": report.params_changed,
        "orphaned": report.orphaned,
        "invalid_examples": report.invalid_examples,
    })
}

/// Prints the `--dry-run` plan to stdout; `limit` is `--limit`, `budget` is `max_issued` with
/// the rows already counted against it.
pub(crate) fn print_plan(
    campaign: &Campaign,
    report: &IngestReport,
    limit: Option<u64>,
    budget: Option<(u64, u64)>,
) {
    let mut out = String::new();
    let qps = campaign.limits.qps.get();
    outln!(
        out,
        "dry run: campaign {:?} ({}), nothing is sent",
        campaign.name,
        campaign.api.method
    );
    outln!(out, "  rows in input   {:>9}", report.rows);
    outln!(out, "  to send         {:>9}", report.to_send);
    outln!(out, "  already done    {:>9}", report.already_done);
    outln!(out, "  invalid         {:>9}", report.invalid);
    outln!(out, "  duplicates      {:>9}", report.duplicates);
    if let Some((max, used)) = budget {
        let left = max.saturating_sub(used);
        outln!(
            out,
            "  budget          {used:>9} of max_issued = {max} used, {left} left"
        );
    }
    if let Some(limit) = limit {
        outln!(out, "  --limit         {limit:>9} rows at most in this run");
    }
    let this_run = this_run(report, limit, budget);
    if this_run < report.to_send {
        outln!(
            out,
            "  this run sends  {this_run:>9} (then stops: {})",
            if limit.is_some_and(|l| l == this_run) {
                "the limit"
            } else {
                "the budget; raise max_issued to send the rest"
            }
        );
    }
    let estimate = Duration::from_secs_f64(this_run as f64 / qps);
    outln!(
        out,
        "  estimated time  {:>9} at {qps} qps",
        human_duration(estimate)
    );
    if report.input_changed {
        outln!(out, "  the input file changed since the last run");
    }
    if report.params_changed {
        outln!(out, "  the campaign params changed since the last run");
    }
    if report.orphaned > 0 {
        outln!(
            out,
            "  {} identities in the ledger are no longer in the input (kept, not sent)",
            report.orphaned
        );
    }
    if !report.invalid_examples.is_empty() {
        outln!(
            out,
            "invalid rows{}:",
            if report.invalid > report.invalid_examples.len() as u64 {
                " (first few)"
            } else {
                ""
            }
        );
        for example in &report.invalid_examples {
            outln!(out, "  {example}");
        }
    }
    // Output is best effort: a closed stdout must not turn a finished run into an error.
    let _ = crate::progress::print(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(3400)), "3.4s");
        assert_eq!(human_duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
