//! `campaign check`: a preflight that issues nothing. It reports, each as `ok` or as a problem
//! with its fix: the campaign file and the input (validated as a dry run does), the state and
//! results folders, the secrets, a signed harmless call (`taobao.time.get`: app key, secret and
//! sign method), a harmless call that needs the session (`taobao.user.seller.get`, for APIs that
//! send one), the clock skew to the gateway, and the gateway's latency with the number of
//! requests in flight the configured qps needs. Exit 0 when all is well, 3 otherwise.

mod probe;

use std::fmt::Write as _;
use std::time::Duration;

use crate::campaign::{Campaign, GatewayUrl, Secrets};
use crate::exit::Exit;
use crate::ingest::{Purpose, ingest};
use crate::ledger::Ledger;

use self::probe::{ProbeError, Prober};

/// The platform refuses a timestamp further than this from its clock.
const MAX_SKEW: Duration = Duration::from_secs(600);
/// Skew worth a word even though the platform accepts it.
const NOTABLE_SKEW: Duration = Duration::from_secs(60);
/// `taobao.time.get` calls made to measure the latency (the first one included).
const LATENCY_SAMPLES: usize = 5;

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) what: &'static str,
    pub(crate) verdict: Verdict,
    pub(crate) detail: String,
}

/// How one check came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ok,
    /// Information that needs no action.
    Note,
    /// Something to fix before the run, and how.
    Problem {
        fix: String,
    },
}

fn ok(what: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        what,
        verdict: Verdict::Ok,
        detail: detail.into(),
    }
}

fn problem(what: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        what,
        verdict: Verdict::Problem { fix: fix.into() },
        detail: detail.into(),
    }
}

/// Runs every check on a loaded campaign and prints the report.
pub(crate) async fn run(campaign: &Campaign) -> anyhow::Result<Exit> {
    let mut findings = vec![ok(
        "campaign file",
        format!(
            "{} ({}, {})",
            campaign.path.display(),
            campaign.name,
            campaign.api.method
        ),
    )];
    findings.push(check_input(campaign));
    if let Some(query) = campaign.api.reconcile.filter(|_| campaign.reconcile) {
        findings.push(Finding {
            what: "reconcile",
            verdict: Verdict::Note,
            detail: format!(
                "uncertain rows are looked up with {} once older than reconcile_after_s = {} s; \
                 that needs the app's permission for it (without it they stay uncertain), and \
                 its live semantics (filters, paging, how soon a certificate shows) are \
                 unverified: see docs/reconcile.md",
                query.method,
                campaign.limits.reconcile_after.as_secs_f64()
            ),
        });
    }
    findings.push(match crate::paths::check_run(campaign) {
        Ok(()) => ok(
            "folders",
            "the state and results files can be written where they go",
        ),
        Err(e) => problem(
            "folders",
            e.to_string(),
            "create the folder or fix its permissions, or point state/results elsewhere",
        ),
    });
    let secrets = match check_secrets(campaign) {
        Ok((finding, secrets)) => {
            findings.push(finding);
            Some(secrets)
        }
        Err(finding) => {
            findings.push(finding);
            None
        }
    };
    if let Some(secrets) = secrets {
        findings.extend(check_gateway(campaign, &secrets).await?);
    }
    let problems = findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Problem { .. }))
        .count();
    let _ = crate::progress::print(&render(campaign, &findings, problems));
    Ok(if problems == 0 {
        Exit::Ok
    } else {
        Exit::Halted
    })
}

/// The report when the campaign file (or a flag) cannot be used: one problem, exit 3.
pub(crate) fn unloadable(path: &std::path::Path, error: &str) -> Exit {
    let finding = problem(
        "campaign file",
        error,
        "fix the file at the line and field named (see the README's campaign file section)",
    );
    let mut out = format!("check: {} (nothing is sent)\n", path.display());
    render_findings(&mut out, &[finding], 1);
    let _ = crate::progress::print(&out);
    Exit::Halted
}

/// The report as printed.
pub(crate) fn render(campaign: &Campaign, findings: &[Finding], problems: usize) -> String {
    let mut out = format!("check: campaign {} (nothing is sent)\n", campaign.name);
    render_findings(&mut out, findings, problems);
    out
}

fn render_findings(out: &mut String, findings: &[Finding], problems: usize) {
    for f in findings {
        let word = match f.verdict {
            Verdict::Ok => "ok",
            Verdict::Note => "note",
            Verdict::Problem { .. } => "PROBLEM",
        };
        let _ = writeln!(out, "  {word:<8} {:<14} {}", f.what, f.detail);
        if let Verdict::Problem { fix } = &f.verdict {
            let _ = writeln!(out, "  {:<8} {:<14} fix: {fix}", "", "");
        }
    }
    match problems {
        0 => out.push_str("check: all well\n"),
        1 => out.push_str("check: 1 problem\n"),
        n => {
            let _ = writeln!(out, "check: {n} problems");
        }
    }
}

/// The input, validated as `--dry-run` does, in a throwaway ledger.
fn check_input(campaign: &Campaign) -> Finding {
    let planned = (|| -> anyhow::Result<_> {
        let scratch = tempfile::Builder::new()
            .prefix("campaign-check")
            .tempdir()?;
        let mut ledger = Ledger::open(
            &scratch.path().join("plan.db"),
            &campaign.name,
            campaign.api.method,
        )?;
        Ok(ingest(&mut ledger, campaign, Purpose::Plan)?)
    })();
    match planned {
        Ok(report) => ok(
            "input",
            format!(
                "{}: {} rows, {} invalid, {} duplicate",
                campaign.input.display(),
                report.rows,
                report.invalid,
                report.duplicates
            ),
        ),
        Err(e) => problem(
            "input",
            format!("{e:#}"),
            "fix the file at the line named (`campaign run --dry-run` shows the plan)",
        ),
    }
}

fn check_secrets(campaign: &Campaign) -> Result<(Finding, Secrets), Finding> {
    let fix = "export the variable in the environment (secrets never live in the campaign file)";
    let secrets = campaign
        .secrets()
        .map_err(|e| problem("secrets", e.to_string(), fix))?;
    campaign
        .notify_secret()
        .map_err(|e| problem("secrets", e.to_string(), fix))?;
    let detail = match (&campaign.gateway.url, &secrets.session) {
        (GatewayUrl::Sim, _) => "the simulator's (or the environment's, when set)".to_owned(),
        (_, Some(_)) if campaign.api.needs_session => format!(
            "{} and {} are set",
            campaign.gateway.app_secret_env, campaign.gateway.session_env
        ),
        _ => format!("{} is set", campaign.gateway.app_secret_env),
    };
    Ok((ok("secrets", detail), secrets))
}

/// The signed calls, the clock and the latency.
async fn check_gateway(campaign: &Campaign, secrets: &Secrets) -> anyhow::Result<Vec<Finding>> {
    let sim = match &campaign.gateway.url {
        GatewayUrl::Sim => Some(crate::runner::start_sim(campaign, secrets).await?),
        GatewayUrl::Http(_) => None,
    };
    let url = match (&campaign.gateway.url, &sim) {
        (GatewayUrl::Http(url), _) => url.clone(),
        (GatewayUrl::Sim, Some(sim)) => sim.url(),
        (GatewayUrl::Sim, None) => unreachable!("the simulator was started above"),
    };
    let prober = Prober::new(campaign, secrets, url)?;
    let findings = probe_all(campaign, &prober).await;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(findings)
}

async fn probe_all(campaign: &Campaign, prober: &Prober) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (gateway_time, first) = match prober.time().await {
        Ok(answer) => answer,
        Err(e) => {
            findings.push(problem(
                "signed call",
                format!("taobao.time.get: {e}"),
                fix_for(&e),
            ));
            return findings;
        }
    };
    findings.push(ok(
        "signed call",
        format!(
            "taobao.time.get answered in {} ms: app key, secret and {} signing accepted",
            first.latency.as_millis(),
            campaign.gateway.sign_method.as_str()
        ),
    ));
    if campaign.api.needs_session {
        findings.push(match prober.seller().await {
            Ok(nick) => ok(
                "session",
                format!("taobao.user.seller.get accepted the session (seller {nick})"),
            ),
            Err(e) => problem(
                "session",
                format!("taobao.user.seller.get: {e}"),
                fix_for(&e),
            ),
        });
    }
    findings.push(clock(gateway_time - first.midpoint));
    let mut latencies = vec![first.latency];
    for _ in 1..LATENCY_SAMPLES {
        match prober.time().await {
            Ok((_, answer)) => latencies.push(answer.latency),
            Err(e) => {
                findings.push(problem(
                    "latency",
                    format!("a repeated taobao.time.get failed: {e}"),
                    fix_for(&e),
                ));
                return findings;
            }
        }
    }
    findings.push(in_flight(campaign, &mut latencies));
    findings
}

/// The skew between the gateway's clock and this machine's (gateway minus local).
fn clock(skew: chrono::Duration) -> Finding {
    let ahead = skew.num_seconds();
    let size = Duration::from_secs(ahead.unsigned_abs());
    let detail = match ahead {
        0 => "this machine's clock agrees with the gateway's (to the second)".to_owned(),
        s if s > 0 => format!("this machine's clock is {s} s behind the gateway's"),
        s => format!("this machine's clock is {} s ahead of the gateway's", -s),
    };
    if size > MAX_SKEW {
        problem(
            "clock",
            format!("{detail}; the platform refuses more than 10 minutes"),
            "set this machine's clock (e.g. enable NTP time synchronisation)",
        )
    } else if size > NOTABLE_SKEW {
        Finding {
            what: "clock",
            verdict: Verdict::Note,
            detail: format!("{detail}; accepted (the limit is 10 minutes), but worth fixing"),
        }
    } else {
        ok("clock", detail)
    }
}

/// The latency and what the configured qps needs in flight (qps × latency).
fn in_flight(campaign: &Campaign, latencies: &mut [Duration]) -> Finding {
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let slowest = latencies[latencies.len() - 1];
    let qps = campaign.limits.qps.get();
    let needed = (qps * median.as_secs_f64()).ceil().max(1.0) as usize;
    // Unset, the run keeps in flight what the rate needs, up to max_concurrency.
    let (concurrency, key) = match campaign.limits.concurrency {
        Some(c) => (c.get(), "concurrency"),
        None => (campaign.limits.max_concurrency.get(), "max_concurrency"),
    };
    let detail = format!(
        "median {} ms, slowest {} ms over {} calls of taobao.time.get; {qps} qps needs about \
         {needed} in flight ({key} {concurrency})",
        median.as_millis(),
        slowest.as_millis(),
        latencies.len()
    );
    if needed > concurrency {
        problem(
            "latency",
            detail,
            format!(
                "raise limits.{key} to at least {needed}, or expect about {:.1} qps",
                concurrency as f64 / median.as_secs_f64().max(f64::EPSILON)
            ),
        )
    } else {
        ok("latency", detail)
    }
}

/// What to do about a failed probe.
fn fix_for(error: &ProbeError) -> String {
    match error {
        ProbeError::Unreachable(_) => "check gateway.url (e.g. https://eco.taobao.com/router/rest), \
                                        the network and any proxy; gateway.timeout_ms may be too short"
            .to_owned(),
        ProbeError::Refused { code, .. } => crate::runner::remedy(Some(code)).to_owned(),
        ProbeError::Unexpected(_) => {
            "check gateway.url: it must lead straight to a TOP router (redirects are not followed)"
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_a_problem_past_ten_minutes() {
        assert_eq!(clock(chrono::Duration::seconds(0)).verdict, Verdict::Ok);
        assert_eq!(clock(chrono::Duration::seconds(-90)).verdict, Verdict::Note);
        let late = clock(chrono::Duration::seconds(601));
        assert!(matches!(late.verdict, Verdict::Problem { .. }));
        assert!(late.detail.contains("601 s behind"), "{}", late.detail);
        let early = clock(chrono::Duration::seconds(-700));
        assert!(early.detail.contains("700 s ahead"), "{}", early.detail);
    }
}
