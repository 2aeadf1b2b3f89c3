//! Reconciliation: turning `uncertain` rows of a non-idempotent API into a known answer by asking
//! the platform's read API (`tmall.nrt.certificate.query`) what it issued, instead of sending
//! again. [`command`] is `campaign reconcile`; `campaign run` uses [`in_run`] before and after
//! sending. The rules are in [`judge`], one pass over the ledger in [`pass`].
//!
//! An uncertain row becomes `issued` when exactly one certificate is its own, `pending` (sent
//! once more by the next run) when none is and the query is shown to be up to date, and stays
//! `uncertain` with the reason otherwise. This is the only way an uncertain row is sent again
//! without `--resend-uncertain`.

pub(crate) mod in_run;
pub(crate) mod judge;
pub(crate) mod pass;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use self::pass::{Pass, PassEnd, PassReport};
use crate::campaign::Campaign;
use crate::domain::now_rfc3339;
use crate::exit::Exit;
use crate::ledger::reconcile::Verdict;
use crate::ledger::{self, Ledger, LedgerError};
use crate::progress::Output;
use crate::runner::backoff::Backoff;
use crate::runner::pace::Pacer;

/// Retry backoff of a query whose answer was lost: first ceiling and cap.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

fn backoff() -> Backoff {
    Backoff::new(BACKOFF_BASE, BACKOFF_MAX, None)
}

/// `3 uncertain rows checked: 1 issued, 1 sent again next run, 1 still uncertain (5 queries)`.
fn describe(report: &PassReport) -> String {
    let t = &report.tally;
    let mut line = format!(
        "{} uncertain {} checked: {} issued, {} to send again, {} still uncertain ({} {}",
        t.checked,
        if t.checked == 1 { "row" } else { "rows" },
        t.issued,
        t.resend,
        t.uncertain,
        t.queries,
        if t.queries == 1 { "query" } else { "queries" },
    );
    if t.throttle_events > 0 {
        line.push_str(&format!(", {} throttled", t.throttle_events));
    }
    line.push(')');
    if let PassEnd::Refused(error) = &report.end {
        line.push_str(&format!(
            "; the platform refused the query: {} (code {}): the app needs the permission for it",
            error.message,
            error.code.as_deref().unwrap_or("?")
        ));
    }
    line
}

/// `campaign reconcile`: one pass over the uncertain rows, each row's verdict printed, the
/// results file rewritten when it exists. Exit 0 when no row is left uncertain, 1 when some
/// are, 3 on a halt, 130 when interrupted.
pub(crate) async fn command(campaign: Campaign, output: Output) -> anyhow::Result<Exit> {
    let Some(spec) = campaign.api.reconcile else {
        anyhow::bail!(
            "{}: {} has no read API to reconcile with{}",
            campaign.path.display(),
            campaign.api.method,
            if campaign.api.is_idempotent() {
                " (it is idempotent: uncertain rows do not arise, resends are deduplicated)"
            } else {
                ""
            }
        );
    };
    let secrets = campaign.secrets()?;
    if !campaign.state.exists() {
        return Err(LedgerError::Missing {
            path: campaign.state.clone(),
        }
        .into());
    }
    let _lock = ledger::lock(&campaign.state)?;
    let mut ledger = Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?;
    let recovered = ledger.recover_in_flight(false, &now_rfc3339())?;
    if recovered > 0 {
        tracing::warn!(
            "{recovered} rows were in flight when the last run stopped and are now `uncertain`"
        );
    }
    let (client, sim) = crate::runner::connect(&campaign, &secrets).await?;
    let pacer = Arc::new(Pacer::new(
        campaign.limits.qps.get(),
        campaign.limits.max_ban_wait,
    ));
    let stop = CancellationToken::new();
    let interrupted = crate::runner::signals::watch(
        stop.clone(),
        crate::runner::on_quit_saving(sim.as_ref(), Box::new(|| {})),
    );
    let backoff = backoff();
    let pass = Pass {
        client: &client,
        spec,
        pacer: &pacer,
        backoff: &backoff,
        stop: &stop,
        reconcile_after: campaign.limits.reconcile_after,
        timeout: campaign.gateway.timeout,
        max_attempts: campaign.limits.max_attempts,
        concurrency: campaign.limits.fixed_concurrency(),
        trigger: "reconcile",
        only_due: false,
    };
    let report = pass.run(&mut ledger).await;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    let report = report?;
    let rewritten = rewrite_results(&campaign, &mut ledger, &report)?;
    if output == Output::Normal {
        crate::progress::print(&render(&report, rewritten.as_deref()))
            .context("cannot write to stdout")?;
    }
    Ok(match report.end {
        PassEnd::Halted(halt) => {
            eprintln!("campaign: halted: {halt}");
            Exit::Halted
        }
        PassEnd::Interrupted if interrupted.is_cancelled() => Exit::Interrupted,
        PassEnd::Interrupted => Exit::Halted,
        PassEnd::Refused(_) | PassEnd::Finished if report.tally.uncertain > 0 => Exit::RowsFailed,
        PassEnd::Refused(_) | PassEnd::Finished => Exit::Ok,
    })
}

/// Each row's verdict, then the totals.
fn render(report: &PassReport, rewritten: Option<&str>) -> String {
    let mut out = String::new();
    for (row, verdict) in &report.verdicts {
        let line = match verdict {
            Verdict::Issued { code, .. } => {
                format!("row {row}: issued, certificate {code} (reconciled)")
            }
            Verdict::Resend { reason } => {
                format!("row {row}: pending, the next run sends it: {reason}")
            }
            Verdict::Uncertain { reason } => format!("row {row}: still uncertain: {reason}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("reconcile: {}\n", describe(report)));
    match &report.end {
        PassEnd::Interrupted => out.push_str("reconcile: interrupted; run it again to go on\n"),
        PassEnd::Halted(_) | PassEnd::Refused(_) | PassEnd::Finished => {}
    }
    if let Some(rewritten) = rewritten {
        out.push_str(rewritten);
        out.push('\n');
    }
    out
}

/// Rewrites the results file when one exists and a row changed, so that it and `verify` agree
/// with the ledger. Returns a line saying so.
fn rewrite_results(
    campaign: &Campaign,
    ledger: &mut Ledger,
    report: &PassReport,
) -> anyhow::Result<Option<String>> {
    if report.tally.issued + report.tally.resend == 0 || !campaign.results.exists() {
        return Ok(None);
    }
    let written =
        crate::results::write_results(campaign, ledger, &campaign.results).with_context(|| {
            format!(
                "the ledger is updated, but the results file {} could not be rewritten \
                 (`campaign export` writes it)",
                campaign.results.display()
            )
        })?;
    Ok(Some(format!(
        "results: {} (md5 {})",
        campaign.results.display(),
        written.digest
    )))
}
