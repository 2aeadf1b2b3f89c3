//! Reads everything the page shows from the campaign, its files and its ledger, and formats it.

use std::path::Path;

use chrono::DateTime;

use super::chart::{self, EndMark};
use super::outcomes::{Outcome, Tally};
use super::page::{
    Budget, CountRow, FileFact, OutcomeRow, Page, RunCharts, RunRow, Uncertain, UncertainRow,
    Verdict,
};
use super::timeline::{Mark, MarkKind, Timeline, epoch};
use crate::campaign::{Campaign, GatewayUrl};
use crate::domain::RunEnding;
use crate::ledger::Ledger;
use crate::ledger::report::RunRecord;
use crate::ledger::timeline::RunExit;
use crate::results::summary::human_duration;
use crate::top::Scrubber;

/// Runs charted at most (the latest ones with requests); the table lists them all.
const CHARTED_RUNS: usize = 12;
/// `uncertain` rows listed at most.
const LISTED_UNCERTAIN: usize = 200;
/// `verify` discrepancies listed at most.
const LISTED_DISCREPANCIES: usize = 50;

/// What the page is built from besides the ledger.
pub(super) struct Sources<'a> {
    pub campaign: &'a Campaign,
    pub ledger: &'a Ledger,
    /// The verdict of `verify`, taken by the caller.
    pub verdict: crate::audit::Verdict,
    /// Text that must never appear on the page (the secrets, when the environment has them).
    pub secrets: Vec<String>,
}

pub(super) fn page(s: &Sources<'_>) -> anyhow::Result<Page> {
    let campaign = s.campaign;
    let ledger = s.ledger;
    let scrubber = Scrubber::new(s.secrets.iter().map(String::as_str));
    let scrub = |text: &str| scrubber.text(text);
    let counts = ledger.status_counts()?;
    let rows = counts.total();
    let records = ledger.runs()?;
    let (charts, charts_note, outcomes) = read_attempts(ledger, campaign, &records)?;
    let (uncertain_total, uncertain_rows) =
        ledger.uncertain_listing(campaign.api.recipient, LISTED_UNCERTAIN)?;
    let (discrepancies, count) = s.verdict.discrepancies();
    Ok(Page {
        campaign: campaign.name.clone(),
        generated_at: crate::domain::now_rfc3339(),
        version: env!("CARGO_PKG_VERSION"),
        facts: vec![
            ("API", campaign.api.method.to_owned()),
            ("gateway", gateway_host(&campaign.gateway.url)),
            ("app key", campaign.gateway.app_key.clone()),
            ("state (ledger)", campaign.state.display().to_string()),
        ],
        files: files(campaign, ledger)?,
        runs: records
            .iter()
            .map(|r| Ok(run_row(r, &ledger.run_exit(r.id)?)))
            .collect::<Result<_, crate::ledger::LedgerError>>()?,
        counts: counts
            .iter()
            .map(|(status, count)| CountRow {
                status: status.as_str(),
                count,
                share: share(count, rows),
            })
            .collect(),
        rows,
        charts,
        charts_note,
        outcomes: outcomes
            .into_iter()
            .map(|o| OutcomeRow {
                class: o.group.class,
                code: o.group.code.unwrap_or_default(),
                sub_code: o.group.sub_code.unwrap_or_default(),
                count: o.group.count,
                first_seen: o.first_seen,
                last_seen: o.last_seen,
                example: scrub(o.example.as_deref().unwrap_or_default()),
            })
            .collect(),
        uncertain: Uncertain {
            total: uncertain_total,
            rows: uncertain_rows
                .into_iter()
                .map(|u| UncertainRow {
                    row: u.row,
                    recipient: u.recipient.unwrap_or_default(),
                    attempts: u.attempts,
                    error: [u.error_code, u.error_sub_code]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" "),
                    message: scrub(u.error_message.as_deref().unwrap_or_default()),
                    top_request_id: u.top_request_id.unwrap_or_default(),
                    finished_at: u.finished_at.unwrap_or_default(),
                })
                .collect(),
            how_to_check: how_to_check(campaign),
        },
        budget: budget(ledger, campaign)?,
        verdict: Verdict {
            ok: s.verdict.ok(),
            headline: scrub(s.verdict.text(campaign).lines().next().unwrap_or_default()),
            discrepancies: discrepancies
                .iter()
                .take(LISTED_DISCREPANCIES)
                .map(|d| scrub(d))
                .collect(),
            hidden: count.saturating_sub(discrepancies.len().min(LISTED_DISCREPANCIES) as u64),
            notes: s.verdict.notes().map(scrub).collect(),
        },
    })
}

/// Budget used, when `max_issued` is set.
fn budget(ledger: &Ledger, campaign: &Campaign) -> anyhow::Result<Option<Budget>> {
    let Some(limit) = campaign.limits.max_issued else {
        return Ok(None);
    };
    let used = ledger.budget_use(campaign.api.is_idempotent())?.used;
    Ok(Some(Budget {
        limit,
        used,
        left: limit.saturating_sub(used),
        share: share(used, limit),
    }))
}

/// The gateway's host (and port): never the whole URL, whose query could carry a token.
fn gateway_host(url: &GatewayUrl) -> String {
    match url {
        GatewayUrl::Sim => "the built-in simulator (url = \"sim\")".to_owned(),
        GatewayUrl::Http(url) => match reqwest::Url::parse(url) {
            Ok(parsed) => {
                let host = parsed.host_str().unwrap_or_default();
                match parsed.port() {
                    Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
                    None => format!("{}://{host}", parsed.scheme()),
                }
            }
            Err(_) => "(not a valid URL)".to_owned(),
        },
    }
}

/// The input and results files with their MD5 now, against what the ledger recorded.
fn files(campaign: &Campaign, ledger: &Ledger) -> anyhow::Result<Vec<FileFact>> {
    let md5 = |path: &Path| match crate::input::fingerprint(path) {
        Ok(md5) => (md5, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ("(the file does not exist)".into(), false)
        }
        Err(e) => (format!("(cannot read it: {e})"), false),
    };
    let (input_md5, _) = md5(&campaign.input);
    let input_note = match ledger.meta("input_fingerprint")? {
        Some(recorded) if recorded != input_md5 => Some(format!(
            "changed since the ledger last read it (then md5 {recorded})"
        )),
        _ => None,
    };
    let (results_md5, exists) = md5(&campaign.results);
    let recorded = ledger.meta("results_md5")?;
    let results_note = match recorded {
        None => Some("the ledger records no results file written yet".to_owned()),
        Some(recorded) if exists && recorded != results_md5 => Some(format!(
            "differs from the md5 recorded when it was written ({recorded}): edited or replaced since"
        )),
        Some(_) => ledger
            .meta("results_written_at")?
            .map(|at| format!("written {at}; the md5 matches the ledger's record"))
            .filter(|_| exists),
    };
    Ok(vec![
        FileFact {
            role: "input",
            path: campaign.input.display().to_string(),
            md5: input_md5,
            note: input_note,
        },
        FileFact {
            role: "results",
            path: campaign.results.display().to_string(),
            md5: results_md5,
            note: results_note,
        },
    ])
}

fn run_row(run: &RunRecord, recorded: &RunExit) -> RunRow {
    let (ending, tone, exit) = match run.ending {
        Some(RunEnding::Finished) => ("finished", "ok", "0 or 1"),
        Some(RunEnding::Halted) => ("halted", "bad", "3"),
        Some(RunEnding::Interrupted) => ("interrupted", "warn", "130"),
        Some(RunEnding::Running) => ("running", "warn", ""),
        Some(RunEnding::Aborted) | None => (
            "stopped without recording its end (killed?), or still running",
            "bad",
            "",
        ),
    };
    let c = &run.counters;
    let rate = if run.elapsed_ms > 0 {
        format!("{:.1}", c.sent as f64 * 1000.0 / run.elapsed_ms as f64)
    } else {
        String::new()
    };
    RunRow {
        id: run.id,
        started_at: run.started_at.clone(),
        ended_at: run.ended_at.clone().unwrap_or_default(),
        duration: if run.ended_at.is_some() {
            human_duration(std::time::Duration::from_millis(run.elapsed_ms))
        } else {
            String::new()
        },
        ending: match &recorded.reason {
            Some(reason) => format!("{ending}: {reason}"),
            None => ending.to_owned(),
        },
        tone,
        // Runs of older versions did not record it: what their ending implies.
        exit: recorded
            .code
            .map_or_else(|| exit.to_owned(), |code| code.to_string()),
        sent: c.sent,
        issued: c.issued,
        failed: c.failed,
        uncertain: c.uncertain,
        retries: c.retries,
        throttle_events: c.throttle_events,
        rate,
    }
}

/// One pass over every attempt: the charts of the latest runs that made requests, and the
/// outcomes by class and code.
fn read_attempts(
    ledger: &Ledger,
    campaign: &Campaign,
    runs: &[RunRecord],
) -> anyhow::Result<(Vec<RunCharts>, Option<String>, Vec<Outcome>)> {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    let starts: Vec<_> = runs.iter().map(|r| parse(&r.started_at)).collect();
    let epochs: Vec<f64> = starts
        .iter()
        .map(|s| s.as_ref().map_or(0.0, epoch))
        .collect();
    // Attempts from before the first run (none, normally), then each run's.
    let ranges = ledger.attempt_ranges(&epochs)?;
    let mut outcomes = Tally::default();
    ledger.for_each_attempt_in(&ranges[0], |a| outcomes.add(&a))?;
    let with_requests = (0..runs.len())
        .filter(|&i| !ranges[i + 1].is_empty() && starts[i].is_some())
        .count();
    let skipped = with_requests.saturating_sub(CHARTED_RUNS);
    let mut charts = Vec::new();
    let mut seen = 0;
    for (i, run) in runs.iter().enumerate() {
        let rows = &ranges[i + 1];
        let charted = match starts[i] {
            Some(_) if !rows.is_empty() => {
                seen += 1;
                seen > skipped
            }
            _ => false,
        };
        let Some(start) = starts[i].filter(|_| charted) else {
            ledger.for_each_attempt_in(rows, |a| outcomes.add(&a))?;
            continue;
        };
        let end = match run.ended_at.as_deref().and_then(parse) {
            Some(end) => epoch(&end),
            None => ledger.attempts_end(rows)?.unwrap_or(epoch(&start)),
        };
        let mut timeline = Timeline::new(start, end);
        ledger.for_each_attempt_in(rows, |a| {
            outcomes.add(&a);
            timeline.add(&a);
        })?;
        timeline.finish();
        for (from, to) in ledger.run_outages(run.id)? {
            let t0 = epoch(&start);
            timeline.marks.push(Mark {
                kind: MarkKind::Outage,
                from: (from - t0).max(0.0),
                to: (to.unwrap_or(end) - t0).clamp(0.0, timeline.span),
            });
        }
        if timeline.is_empty() {
            continue;
        }
        let end_mark = match run.ending {
            Some(RunEnding::Halted) => Some(EndMark::Halted),
            Some(RunEnding::Interrupted) => Some(EndMark::Interrupted),
            Some(RunEnding::Aborted) | None => Some(EndMark::Aborted),
            Some(RunEnding::Finished | RunEnding::Running) => None,
        };
        charts.push(RunCharts {
            id: run.id,
            caption: caption(&timeline, end_mark, ledger.run_exit(run.id)?.reason),
            rate_svg: chart::rate(&timeline, Some(campaign.limits.qps.get()), end_mark)?,
            latency_svg: chart::latency(&timeline)?,
        });
    }
    let note = if skipped > 0 {
        Some(format!(
            "The {CHARTED_RUNS} latest runs that sent requests are charted; {skipped} earlier \
             ones are in the table above only. The qps line is the campaign file's `qps` now."
        ))
    } else if !charts.is_empty() {
        Some(
            "The qps line is the campaign file's `qps` now (a run started with --qps had its own)."
                .to_owned(),
        )
    } else {
        None
    };
    Ok((charts, note, outcomes.finish(ledger)?))
}

/// What a run's charts show beyond their legends.
fn caption(timeline: &Timeline, end_mark: Option<EndMark>, reason: Option<String>) -> String {
    let throttled = timeline
        .marks
        .iter()
        .filter(|m| m.kind == MarkKind::Throttle)
        .count();
    let mut caption = format!(
        "{} bins of {}.",
        timeline.bins.len(),
        human_duration(std::time::Duration::from_secs_f64(timeline.width))
    );
    let outages = timeline
        .marks
        .iter()
        .filter(|m| m.kind == MarkKind::Outage)
        .count();
    if outages > 0 {
        caption.push_str(&format!(
            " Shaded purple: {outages} outage{} (the gateway could not be reached; the run \
             paused and probed it).",
            if outages == 1 { "" } else { "s" }
        ));
    }
    if throttled > 0 {
        caption.push_str(&format!(
            " Shaded red: {throttled} stretch{} with flow-control answers (the run slowed down \
             and waited out the ban).",
            if throttled == 1 { "" } else { "es" }
        ));
    }
    let end = match end_mark {
        Some(EndMark::Halted) => match &reason {
            Some(reason) => format!(" The black line marks where the run halted: {reason}."),
            None => " The black line marks where the run halted.".to_owned(),
        },
        Some(EndMark::Interrupted) => {
            " The black line marks where the run was interrupted.".to_owned()
        }
        Some(EndMark::Aborted) => {
            " The black line marks its last answer: the run did not record its end.".to_owned()
        }
        None => String::new(),
    };
    caption.push_str(&end);
    caption
}

/// What to do about `uncertain` rows, for this campaign's API.
fn how_to_check(campaign: &Campaign) -> Vec<String> {
    let file = campaign.path.display();
    if campaign.api.is_idempotent() {
        vec![format!(
            "The answer to these requests was lost. {} is idempotent: `campaign run {file} \
             --resend-uncertain` sends them again with the same request_id, and the platform \
             issues at most once.",
            campaign.api.method
        )]
    } else {
        vec![
            format!(
                "The platform may have issued these rows, or not: the answer was lost (a read \
                 timeout, a timeout sub-code, an HTTP 5xx, an answer that was not TOP's, or a \
                 crash while in flight). {} has no idempotency key, so sending again could issue \
                 twice.",
                campaign.api.method
            ),
            format!(
                "`campaign reconcile {file}` (and `campaign run`, before and after sending, \
                 unless `reconcile = false`) asks tmall.nrt.certificate.query about each row: a \
                 row found issued is recorded `issued`, a row shown not issued goes back to \
                 `pending` for the next run, and a row it cannot settle stays uncertain with the \
                 reason in its detail."
            ),
            "For rows still uncertain after that, check on the platform side before doing \
             anything: look the recipient up in the merchant back office around the time shown, \
             or ask platform support with the platform request id where there is one."
                .to_owned(),
            format!(
                "Then: rows that were issued need nothing sent (note them for finance); when none \
                 of the listed rows was issued, `campaign run {file} --resend-uncertain` sends \
                 every uncertain row once more."
            ),
        ]
    }
}

/// `n` of `total` as a percentage.
fn share(n: u64, total: u64) -> String {
    if total == 0 {
        String::new()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_shows_its_host_only() {
        let url = GatewayUrl::Http("https://eco.taobao.com:8443/router/rest?token=x".into());
        assert_eq!(gateway_host(&url), "https://eco.taobao.com:8443");
        let url = GatewayUrl::Http("http://127.0.0.1/router/rest".into());
        assert_eq!(gateway_host(&url), "http://127.0.0.1");
    }

    #[test]
    fn the_caption_counts_outages() {
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00+08:00").unwrap();
        let mut timeline = Timeline::new(start, epoch(&start) + 10.0);
        let caption_now = |t: &Timeline| caption(t, None, None);
        assert!(!caption_now(&timeline).contains("outage"));
        for from in [2.0, 6.0] {
            timeline.marks.push(Mark {
                kind: MarkKind::Outage,
                from,
                to: from + 1.0,
            });
        }
        assert!(
            caption_now(&timeline).contains("Shaded purple: 2 outages"),
            "{}",
            caption_now(&timeline)
        );
    }

    #[test]
    fn shares_are_rounded() {
        assert_eq!(share(1, 8), "12.5%");
        assert_eq!(share(0, 0), "");
    }
}
