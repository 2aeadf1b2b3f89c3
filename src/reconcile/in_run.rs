//! Reconciliation inside `campaign run`: before sending, the uncertain rows left by earlier runs
//! that are old enough; after sending, the rest, waiting out `reconcile_after_s` first when it
//! is short ([`END_WAIT_MAX`]), else leaving them for the next run or `campaign reconcile`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::pass::{Pass, PassEnd, PassReport};
use crate::campaign::Campaign;
use crate::ledger::{Ledger, LedgerError};
use crate::progress::Output;
use crate::runner::Halt;
use crate::runner::backoff::Backoff;
use crate::runner::pace::Pacer;
use crate::top::{Client, QuerySpec};

/// The longest `reconcile_after_s` a run waits out at its end before reconciling.
pub(crate) const END_WAIT_MAX: Duration = Duration::from_secs(60);

/// What a pass means for the run around it.
#[derive(Debug)]
pub(crate) enum Effect {
    Carry,
    Halt(Halt),
    Interrupted,
}

/// One pass as the run reports it.
#[derive(Debug)]
pub(crate) struct Done {
    pub effect: Effect,
    /// Rows put back to pending: the next run sends them.
    pub resend: u64,
    /// A line for the run's summary, if there was anything to reconcile.
    pub line: Option<String>,
}

impl Done {
    fn nothing() -> Done {
        Done {
            effect: Effect::Carry,
            resend: 0,
            line: None,
        }
    }
}

/// The run's reconciler: `None` from [`InRun::new`] when `reconcile = false` or the API has no
/// read API to ask.
pub(crate) struct InRun {
    spec: &'static QuerySpec,
    pacer: Arc<Pacer>,
    backoff: Backoff,
    reconcile_after: Duration,
    timeout: Duration,
    max_attempts: u32,
    concurrency: usize,
    output: Output,
}

impl InRun {
    pub(crate) fn new(campaign: &Campaign, pacer: Arc<Pacer>, output: Output) -> Option<InRun> {
        let spec = campaign.api.reconcile.filter(|_| campaign.reconcile)?;
        Some(InRun {
            spec,
            pacer,
            backoff: super::backoff(),
            reconcile_after: campaign.limits.reconcile_after,
            timeout: campaign.gateway.timeout,
            max_attempts: campaign.limits.max_attempts,
            concurrency: campaign.limits.fixed_concurrency(),
            output,
        })
    }

    fn pass<'a>(
        &'a self,
        client: &'a Client,
        stop: &'a CancellationToken,
        trigger: &'static str,
    ) -> Pass<'a> {
        Pass {
            client,
            spec: self.spec,
            pacer: &self.pacer,
            backoff: &self.backoff,
            stop,
            reconcile_after: self.reconcile_after,
            timeout: self.timeout,
            max_attempts: self.max_attempts,
            concurrency: self.concurrency,
            trigger,
            only_due: true,
        }
    }

    /// Before sending: the uncertain rows old enough to look up.
    pub(crate) async fn before(
        &self,
        ledger: &mut Ledger,
        client: &Client,
        stop: &CancellationToken,
    ) -> Result<Done, LedgerError> {
        let due = self.due_in(ledger)?;
        if !due.iter().any(Option::is_none) {
            return Ok(Done::nothing());
        }
        let report = self.pass(client, stop, "run-start").run(ledger).await?;
        Ok(self.done("before sending", &report, None))
    }

    /// After sending: every uncertain row, after waiting until the youngest is old enough when
    /// `reconcile_after_s` is at most [`END_WAIT_MAX`].
    pub(crate) async fn after(
        &self,
        ledger: &mut Ledger,
        client: &Client,
        stop: &CancellationToken,
    ) -> Result<Done, LedgerError> {
        let due = self.due_in(ledger)?;
        if due.is_empty() {
            return Ok(Done::nothing());
        }
        let wait = due.iter().flatten().max().copied();
        let mut waited = None;
        if let Some(wait) = wait.filter(|_| self.reconcile_after <= END_WAIT_MAX) {
            if self.output == Output::Normal {
                crate::progress::say(&format!(
                    "campaign: waiting {:.1} s until the uncertain rows are older than \
                 reconcile_after_s, then asking the platform about them (Ctrl-C leaves them for \
                 the next run)",
                    wait.as_secs_f64()
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return Ok(Done { effect: Effect::Interrupted, ..Done::nothing() }),
            }
            waited = Some(wait);
        }
        let report = self.pass(client, stop, "run-end").run(ledger).await?;
        let mut done = self.done("after sending", &report, waited);
        if report.too_recent > 0 {
            let line = done.line.get_or_insert_with(String::new);
            line.push_str(&format!(
                "\n  {} uncertain {} too recent to ask about (reconcile_after_s = {}): the next \
                 run or `campaign reconcile` will",
                report.too_recent,
                if report.too_recent == 1 {
                    "row is"
                } else {
                    "rows are"
                },
                self.reconcile_after.as_secs_f64()
            ));
        }
        Ok(done)
    }

    /// For each uncertain row, how long until it is old enough (`None`: it is now).
    fn due_in(&self, ledger: &Ledger) -> Result<Vec<Option<Duration>>, LedgerError> {
        let now = Utc::now();
        Ok(ledger
            .uncertain_rows()?
            .iter()
            .map(|row| {
                let since = row
                    .uncertain_since
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
                let age = (now - since.to_utc()).to_std().unwrap_or_default();
                self.reconcile_after
                    .checked_sub(age)
                    .filter(|d| !d.is_zero())
            })
            .collect())
    }

    fn done(&self, when: &str, report: &PassReport, waited: Option<Duration>) -> Done {
        let effect = match &report.end {
            PassEnd::Finished => Effect::Carry,
            PassEnd::Refused(error) => {
                tracing::warn!(
                    "{}: {} (code {}); uncertain rows stay uncertain: grant the app this API, \
                     or check them on the platform and use --resend-uncertain",
                    self.spec.method,
                    error.message,
                    error.code.as_deref().unwrap_or("?")
                );
                Effect::Carry
            }
            PassEnd::Halted(halt) => Effect::Halt(halt.clone()),
            PassEnd::Interrupted => Effect::Interrupted,
        };
        let line =
            (report.tally.checked > 0 || matches!(report.end, PassEnd::Refused(_))).then(|| {
                let waited = waited
                    .map(|w| format!(" (after waiting {:.1} s)", w.as_secs_f64()))
                    .unwrap_or_default();
                format!("reconcile {when}{waited}: {}", super::describe(report))
            });
        Done {
            effect,
            resend: report.tally.resend,
            line,
        }
    }
}
