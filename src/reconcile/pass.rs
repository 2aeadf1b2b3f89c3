//! One reconciliation pass: every `uncertain` row old enough is looked up with the read API,
//! page by page, paced and throttled like sends, and gets a verdict that is committed at once.
//!
//! Queries issue nothing, so a lost or garbled answer is simply asked again (up to
//! `max_attempts`); a throttle pauses the pass like a run; a permission refusal ends the pass
//! with every row left uncertain; another configuration error halts it.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Local, TimeDelta, Utc};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::judge::{self, Found, Freshness, RowKey, Window};
use crate::domain::now_rfc3339;
use crate::ledger::reconcile::{IssuedAttempt, PassTally, UncertainRow, Verdict};
use crate::ledger::{Ledger, LedgerError};
use crate::runner::Halt;
use crate::runner::backoff::Backoff;
use crate::runner::pace::{Pacer, ThrottleVerdict};
use crate::top::query::PageAsk;
use crate::top::{Certificate, Client, Outcome, PlatformError, QuerySpec};

/// Pages asked per recipient at most: a recipient with more certificates than this stays
/// uncertain rather than be judged from part of the list.
const MAX_PAGES: u64 = 50;

/// How a pass ended.
#[derive(Clone, Debug)]
pub(crate) enum PassEnd {
    Finished,
    /// The platform refused the query for lack of permission: rows stay uncertain. Never a
    /// reason to stop a run.
    Refused(PlatformError),
    /// A configuration error or a ban too long to wait: the caller halts.
    Halted(Halt),
    Interrupted,
}

impl PassEnd {
    /// The spelling in `reconcile_passes.ending`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            PassEnd::Finished => "finished",
            PassEnd::Refused(_) => "refused",
            PassEnd::Halted(_) => "halted",
            PassEnd::Interrupted => "interrupted",
        }
    }
}

/// What a pass did.
#[derive(Clone, Debug)]
pub(crate) struct PassReport {
    pub tally: PassTally,
    pub end: PassEnd,
    /// Rows whose last attempt was too recent to look up.
    pub too_recent: u64,
    /// How long until the youngest of those is old enough.
    pub next_due: Option<Duration>,
    /// Each row checked and its verdict, in the order they were decided.
    pub verdicts: Vec<(i64, Verdict)>,
}

/// Everything a pass needs besides the ledger.
pub(crate) struct Pass<'a> {
    pub client: &'a Client,
    pub spec: &'static QuerySpec,
    pub pacer: &'a Pacer,
    pub backoff: &'a Backoff,
    pub stop: &'a CancellationToken,
    pub reconcile_after: Duration,
    /// The request timeout: how long after a send its certificate can still be created.
    pub timeout: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
    /// `reconcile`, `run-start` or `run-end`, as recorded.
    pub trigger: &'static str,
    /// Leave rows too recent to look up out of the pass (not counted, nothing recorded), as
    /// `run` does; the command reports them with their reason.
    pub only_due: bool,
}

/// What looking up one row found.
enum Looked {
    Decided(Verdict),
    /// No certificate: the verdict waits for the freshness check.
    NoneFound(Window),
}

/// Why a lookup stopped short.
enum Stopped {
    /// This recipient's list could not be had; the reason goes to the row.
    Failed(String),
    /// The whole pass ends.
    Pass(PassEnd),
}

/// Query counters, shared by the lookups running at once.
#[derive(Default)]
struct Counters {
    queries: std::sync::atomic::AtomicU64,
    throttle_events: std::sync::atomic::AtomicU64,
}

impl Pass<'_> {
    /// Runs the pass over the ledger's uncertain rows, recording it and every verdict.
    pub(crate) async fn run(&self, ledger: &mut Ledger) -> Result<PassReport, LedgerError> {
        let rows = ledger.uncertain_rows()?;
        let pass_id = ledger.begin_reconcile(self.trigger, &now_rfc3339())?;
        let now = Utc::now();
        let mut report = PassReport {
            tally: PassTally::default(),
            end: PassEnd::Finished,
            too_recent: 0,
            next_due: None,
            verdicts: Vec::new(),
        };
        let mut due = Vec::new();
        for row in rows {
            match self.settled(&row, now) {
                Ok(()) => due.push(row),
                Err((reason, wait)) => {
                    if wait.is_some() {
                        report.too_recent += 1;
                        report.next_due = report.next_due.max(wait);
                        if self.only_due {
                            continue;
                        }
                    }
                    decide(
                        ledger,
                        pass_id,
                        &row,
                        Verdict::Uncertain { reason },
                        &mut report,
                    )?;
                }
            }
        }

        let stop = self.stop.child_token();
        let counters = Counters::default();
        let mut none_found = Vec::new();
        let mut looked = futures_util::stream::iter(due)
            .map(|row| async {
                let looked = self.look_up(&row, &stop, &counters).await;
                (row, looked)
            })
            .buffer_unordered(self.concurrency.max(1));
        let mut ended = None;
        let mut unchecked = 0;
        while let Some((row, looked)) = looked.next().await {
            match looked {
                Ok(Looked::Decided(verdict)) => {
                    decide(ledger, pass_id, &row, verdict, &mut report)?;
                }
                Ok(Looked::NoneFound(window)) => none_found.push((row, window)),
                Err(Stopped::Failed(reason)) => {
                    decide(
                        ledger,
                        pass_id,
                        &row,
                        Verdict::Uncertain { reason },
                        &mut report,
                    )?;
                }
                Err(Stopped::Pass(end)) => {
                    unchecked += 1;
                    stop.cancel();
                    ended.get_or_insert(end);
                }
            }
        }
        drop(looked);

        let freshness = match (&ended, none_found.is_empty()) {
            (None, false) => match self
                .freshness(ledger, &none_found, &stop, &counters)
                .await?
            {
                Ok(freshness) => Some(freshness),
                Err(end) => {
                    ended = Some(end);
                    None
                }
            },
            _ => None,
        };
        match freshness {
            Some(freshness) => {
                for (row, window) in &none_found {
                    let verdict = match judge::none_found(&freshness, window) {
                        Ok(reason) => Verdict::Resend { reason },
                        Err(reason) => Verdict::Uncertain { reason },
                    };
                    decide(ledger, pass_id, row, verdict, &mut report)?;
                }
            }
            None => unchecked += none_found.len() as u64,
        }
        let ordering = std::sync::atomic::Ordering::Relaxed;
        report.tally.queries = counters.queries.load(ordering);
        report.tally.throttle_events = counters.throttle_events.load(ordering);
        report.tally.checked += unchecked;
        report.tally.uncertain = report.tally.checked - report.tally.issued - report.tally.resend;
        report.end = ended.unwrap_or(PassEnd::Finished);
        ledger.end_reconcile(pass_id, &now_rfc3339(), report.end.as_str(), &report.tally)?;
        Ok(report)
    }

    /// `Ok` when the row's last attempt is older than `reconcile_after`; else why not, with how
    /// long until it is (`None`: it never will be, the ledger lacks its times).
    fn settled(
        &self,
        row: &UncertainRow,
        now: DateTime<Utc>,
    ) -> Result<(), (String, Option<Duration>)> {
        let Some(since) = row.uncertain_since.as_deref().and_then(parse_time) else {
            return Err((
                "the ledger does not say when it became uncertain".to_owned(),
                None,
            ));
        };
        let age = (now - since.to_utc()).to_std().unwrap_or_default();
        if age >= self.reconcile_after {
            return Ok(());
        }
        let wait = self.reconcile_after - age;
        Err((
            format!(
                "too recent to look up: its last attempt ended {:.0} s ago, reconcile_after_s is \
                 {} (a new certificate may take that long to show)",
                age.as_secs_f64(),
                self.reconcile_after.as_secs_f64()
            ),
            Some(wait),
        ))
    }

    /// Looks one row up: its recipient's certificates for its template, then the match.
    async fn look_up(
        &self,
        row: &UncertainRow,
        stop: &CancellationToken,
        counters: &Counters,
    ) -> Result<Looked, Stopped> {
        let key = RowKey::from_payload(&row.payload).map_err(Stopped::Failed)?;
        let (Some(first), Some(since)) = (
            row.first_sent.as_deref().and_then(parse_time),
            row.uncertain_since.as_deref().and_then(parse_time),
        ) else {
            return Err(Stopped::Failed(
                "the ledger does not say when it was sent, so its certificate cannot be told from \
                 earlier ones"
                    .to_owned(),
            ));
        };
        let window = Window::new(first, since, self.timeout);
        let certificates = self
            .certificates(&key.recipient, &key.biz_code, stop, counters)
            .await?;
        Ok(match judge::find(&key, &window, &certificates) {
            Found::One(certificate) => {
                let checked_at = now_rfc3339();
                Looked::Decided(Verdict::Issued {
                    code: certificate.code.clone().unwrap_or_default(),
                    detail: judge::issued_detail(&certificate, self.spec.method, &checked_at),
                })
            }
            Found::None => Looked::NoneFound(window),
            Found::Unclear(reason) => Looked::Decided(Verdict::Uncertain { reason }),
        })
    }

    /// Whether the query shows a certificate this campaign issued after (or, failing that, old
    /// enough before) the rows that found none.
    async fn freshness(
        &self,
        ledger: &Ledger,
        none_found: &[(UncertainRow, Window)],
        stop: &CancellationToken,
        counters: &Counters,
    ) -> Result<Result<Freshness, PassEnd>, LedgerError> {
        let latest = none_found
            .iter()
            .filter_map(|(row, _)| row.uncertain_since.clone())
            .max_by_key(|t| parse_time(t));
        let settled_by =
            Local::now() - TimeDelta::from_std(self.reconcile_after).unwrap_or(TimeDelta::MAX);
        let settled_by = settled_by.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        let after = match &latest {
            Some(latest) => ledger.first_issued_since(latest)?,
            None => None,
        };
        let control = match after.filter(|k| ended_by(k, &settled_by)) {
            Some(control) => Some(control),
            None => ledger.last_issued_by(&settled_by)?,
        };
        let Some(control) = control else {
            return Ok(Ok(Freshness::NoControl));
        };
        let key = match RowKey::from_payload(&control.payload) {
            Ok(key) => key,
            Err(why) => return Ok(Ok(Freshness::Unknown(why))),
        };
        let listed = self
            .certificates(&key.recipient, &key.biz_code, stop, counters)
            .await;
        Ok(match listed {
            Ok(certificates) => {
                let shown = certificates
                    .iter()
                    .any(|c| c.code.as_deref() == Some(control.issued_id.as_str()));
                let (row, code) = (control.row, control.issued_id);
                Ok(if shown {
                    Freshness::Shown { row, code }
                } else {
                    Freshness::Missing { row, code }
                })
            }
            Err(Stopped::Failed(why)) => Ok(Freshness::Unknown(why)),
            Err(Stopped::Pass(end)) => Err(end),
        })
    }

    /// Every certificate of `recipient` for `biz_code`, all pages, or why not. The list must be
    /// complete by the answer's own `total_item`, else it is not used at all.
    async fn certificates(
        &self,
        recipient: &str,
        biz_code: &str,
        stop: &CancellationToken,
        counters: &Counters,
    ) -> Result<Vec<Certificate>, Stopped> {
        let mut listed: Vec<Certificate> = Vec::new();
        let mut total: Option<u64> = None;
        for page in 1..=MAX_PAGES {
            let ask = PageAsk {
                recipient,
                biz_code,
                page,
                page_size: self.spec.page_size,
            };
            let answer = self.ask(&ask, stop, counters).await?;
            if let Some(said) = answer.current_page.filter(|&p| p != page) {
                return Err(Stopped::Failed(format!(
                    "the query answered page {said} when asked for page {page}"
                )));
            }
            total = total.max(answer.total);
            let empty = answer.items.is_empty();
            for item in answer.items {
                let known = item.code.is_some() && listed.iter().any(|c| c.code == item.code);
                if !known {
                    listed.push(item);
                }
            }
            let have = listed.len() as u64;
            match total {
                Some(total) if have >= total => return Ok(listed),
                Some(total) if empty => {
                    return Err(Stopped::Failed(format!(
                        "the query's pages ended after {have} of the {total} certificates it \
                         announced"
                    )));
                }
                None if empty => return Ok(listed),
                _ => {}
            }
        }
        Err(Stopped::Failed(format!(
            "the recipient has more certificates than {MAX_PAGES} pages of {} hold",
            self.spec.page_size
        )))
    }

    /// One page, paced; asked again after a lost answer (a query issues nothing) and after a
    /// throttle.
    async fn ask(
        &self,
        ask: &PageAsk<'_>,
        stop: &CancellationToken,
        counters: &Counters,
    ) -> Result<crate::top::Page, Stopped> {
        let request = (self.spec.page_request)(ask);
        let interrupted = || Stopped::Pass(PassEnd::Interrupted);
        let mut tries = 0;
        loop {
            tokio::select! {
                () = self.pacer.wait_pause() => {}
                () = stop.cancelled() => return Err(interrupted()),
            }
            tokio::select! {
                () = self.pacer.wait_slot() => {}
                () = stop.cancelled() => return Err(interrupted()),
            }
            counters
                .queries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let attempt = self.client.query_page(self.spec, &request).await;
            let error = match attempt.answer.page {
                Ok(page) => {
                    self.pacer.on_clean_answer();
                    return Ok(page);
                }
                Err(Outcome::Throttled { ban, error }) => {
                    counters
                        .throttle_events
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match self.pacer.on_throttle(ban) {
                        ThrottleVerdict::Wait => continue,
                        ThrottleVerdict::TooLong(ban) => {
                            return Err(Stopped::Pass(PassEnd::Halted(Halt::LongBan {
                                ban,
                                error,
                            })));
                        }
                    }
                }
                Err(Outcome::Fatal(error)) if is_permission(&error) => {
                    return Err(Stopped::Pass(PassEnd::Refused(error)));
                }
                Err(Outcome::Fatal(error)) => {
                    return Err(Stopped::Pass(PassEnd::Halted(Halt::Fatal(error))));
                }
                Err(Outcome::Permanent(error)) => {
                    self.pacer.on_clean_answer();
                    return Err(Stopped::Failed(format!(
                        "the query was refused: {}",
                        describe(&error)
                    )));
                }
                Err(
                    Outcome::Transient(error)
                    | Outcome::Unknown(error)
                    | Outcome::Unreachable(error),
                ) => error,
                Err(Outcome::Issued { .. }) => {
                    PlatformError::new(None, None, "a query answered like an issuance")
                }
            };
            tries += 1;
            if tries >= self.max_attempts {
                return Err(Stopped::Failed(format!(
                    "the query failed {tries} times; last: {}",
                    describe(&error)
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(self.backoff.delay(tries)) => {}
                () = stop.cancelled() => return Err(interrupted()),
            }
        }
    }
}

/// Records a row's verdict and counts it.
fn decide(
    ledger: &mut Ledger,
    pass_id: i64,
    row: &UncertainRow,
    verdict: Verdict,
    report: &mut PassReport,
) -> Result<(), LedgerError> {
    report.tally.checked += 1;
    if ledger.record_check(pass_id, row, &now_rfc3339(), &verdict)? {
        match verdict {
            Verdict::Issued { .. } => report.tally.issued += 1,
            Verdict::Resend { .. } => report.tally.resend += 1,
            Verdict::Uncertain { .. } => {}
        }
    }
    report.verdicts.push((row.row, verdict));
    Ok(())
}

/// Whether an error says the app may not call the query (rather than a bad configuration).
pub(crate) fn is_permission(error: &PlatformError) -> bool {
    matches!(error.code.as_deref(), Some("11" | "12" | "13"))
        || error
            .sub_code
            .as_deref()
            .is_some_and(|s| s.to_ascii_lowercase().starts_with("isv.permission"))
}

/// `code 15, isp.x: message`.
fn describe(error: &PlatformError) -> String {
    let mut text = String::new();
    if let Some(code) = &error.code {
        text.push_str(&format!("code {code}"));
    }
    if let Some(sub) = &error.sub_code {
        text.push_str(&format!("{}{sub}", if text.is_empty() { "" } else { ", " }));
    }
    if text.is_empty() {
        error.message.clone()
    } else {
        format!("{text}: {}", error.message)
    }
}

fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}

/// Whether the issuing attempt ended at or before `at` (RFC 3339).
fn ended_by(attempt: &IssuedAttempt, at: &str) -> bool {
    match (parse_time(&attempt.started_at), parse_time(at)) {
        (Some(started), Some(at)) => started + TimeDelta::milliseconds(attempt.latency_ms) <= at,
        _ => false,
    }
}
