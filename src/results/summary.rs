//! The summary printed at the end of a run, and the plan printed by `--dry-run`.

use std::path::Path;
use std::time::Duration;

use crate::campaign::Campaign;
use crate::ledger::ingest::IngestReport;
use crate::runner::stats::Snapshot;

/// What the end-of-run summary shows.
pub struct Summary<'a> {
    pub counts: &'a [(&'static str, u64)],
    pub elapsed: Duration,
    pub snapshot: Snapshot,
    /// The pace the run ended at (below `qps` after throttling).
    pub final_rate: f64,
    pub results: &'a Path,
    pub digest: &'a str,
}

/// Formats a duration as `1h02m03s`, `2m03s` or `3.4s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

/// Prints the end-of-run summary to stdout.
pub fn print_summary(s: &Summary<'_>) {
    let total: u64 = s.counts.iter().map(|(_, n)| n).sum();
    println!("rows: {total}");
    for (status, n) in s.counts {
        println!("  {status:<10} {n:>9}");
    }
    let rate = s.snapshot.sent as f64 / s.elapsed.as_secs_f64().max(0.001);
    println!(
        "this run: {} requests in {} ({rate:.1}/s), {} retries, {} throttle events",
        s.snapshot.sent,
        human_duration(s.elapsed),
        s.snapshot.retries,
        s.snapshot.throttle_events
    );
    if s.snapshot.throttle_events > 0 {
        println!(
            "  ended at a pace of {:.1}/s after throttling",
            s.final_rate
        );
    }
    println!("results: {} (md5 {})", s.results.display(), s.digest);
    let uncertain = s
        .counts
        .iter()
        .find(|(st, _)| *st == "uncertain")
        .map_or(0, |(_, n)| *n);
    if uncertain > 0 {
        let (rows, are) = if uncertain == 1 {
            ("row is", "it")
        } else {
            ("rows are", "them")
        };
        println!(
            "note: {uncertain} {rows} uncertain: the platform may have issued {are}. Check, \
             then `campaign run --resend-uncertain` sends {are} again."
        );
    }
}

/// Prints the `--dry-run` plan to stdout.
pub fn print_plan(campaign: &Campaign, report: &IngestReport) {
    let qps = campaign.limits.qps;
    println!(
        "dry run: campaign {:?} ({}), nothing is sent",
        campaign.name, campaign.api.method
    );
    println!("  rows in input   {:>9}", report.rows);
    println!("  to send         {:>9}", report.to_send);
    println!("  already done    {:>9}", report.already_done);
    println!("  invalid         {:>9}", report.invalid);
    println!("  duplicates      {:>9}", report.duplicates);
    let estimate = Duration::from_secs_f64(report.to_send as f64 / qps);
    println!(
        "  estimated time  {:>9} at {qps} qps",
        human_duration(estimate)
    );
    if report.input_changed {
        println!("  the input file changed since the last run");
    }
    if report.params_changed {
        println!("  the campaign params changed since the last run");
    }
    if report.orphaned > 0 {
        println!(
            "  {} identities in the ledger are no longer in the input (kept, not sent)",
            report.orphaned
        );
    }
    if !report.invalid_examples.is_empty() {
        println!(
            "invalid rows{}:",
            if report.invalid > report.invalid_examples.len() as u64 {
                " (first few)"
            } else {
                ""
            }
        );
        for example in &report.invalid_examples {
            println!("  {example}");
        }
    }
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
