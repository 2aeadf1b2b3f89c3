//! `campaign verify`: the input file, the ledger and the results file reconcile.
//!
//! Checks: the input is the one the ledger last read; the results file's MD5 is the one recorded
//! when it was written; its header is the input's plus the result columns; every input row is in
//! it exactly once, in input order, with its cells unchanged and its outcome equal to the
//! ledger's ([`super::reconcile`]); no identity was issued twice; and identities that are no
//! longer in the input are listed (a discrepancy when they were issued or may have been, since
//! the results file cannot show them). Prints a one-line verdict, then each discrepancy.

use std::fmt::Write as _;

use anyhow::Context;

use super::findings::{Finding, Findings};
use super::reconcile::{Reconciler, ResultsFile, as_written};
use super::shown;
use crate::batches;
use crate::campaign::Campaign;
use crate::domain::RowStatus;
use crate::exit::Exit;
use crate::ledger::query::ResultRow;
use crate::ledger::{self, Ledger};
use crate::results::COLUMNS;

/// Notes of one kind printed at most.
const SHOWN_NOTES: usize = 20;

/// What verify concluded: the discrepancies and the notes, with what the verdict line names.
#[derive(Debug)]
pub(crate) struct Verdict {
    findings: Findings,
    /// Rows compared with the results file.
    compared: u64,
    /// The results file's MD5, when it exists.
    digest: Option<String>,
}

impl Verdict {
    /// Everything reconciles.
    pub(crate) fn ok(&self) -> bool {
        self.findings.count == 0
    }

    /// The discrepancy messages kept (the first ones), and how many there were in all.
    pub(crate) fn discrepancies(&self) -> (Vec<&str>, u64) {
        let kept = self.findings.discrepancies.iter();
        (
            kept.map(|d| d.message.as_str()).collect(),
            self.findings.count,
        )
    }

    /// Information that does not change the verdict.
    pub(crate) fn notes(&self) -> impl Iterator<Item = &str> {
        self.findings.notes.iter().map(|n| n.message.as_str())
    }

    /// The text `campaign verify` prints: the verdict line, each discrepancy, then the notes.
    pub(crate) fn text(&self, campaign: &Campaign) -> String {
        text(
            campaign,
            &self.findings,
            self.compared,
            self.digest.as_deref(),
        )
    }
}

pub(super) fn run(campaign: &Campaign, json: bool) -> anyhow::Result<Exit> {
    let verdict = check(campaign, ledger::is_locked(&campaign.state))?;
    let Verdict {
        findings,
        compared,
        digest,
    } = &verdict;
    let out = if json {
        let verdict = serde_json::json!({
            "ok": findings.count == 0,
            "discrepancy_count": findings.count,
            "rows_compared": compared,
            "input": campaign.input.display().to_string(),
            "state": campaign.state.display().to_string(),
            "results": campaign.results.display().to_string(),
            "results_md5": digest,
            "discrepancies": findings.discrepancies,
            "notes": findings.notes,
        });
        format!("{}\n", serde_json::to_string_pretty(&verdict)?)
    } else {
        verdict.text(campaign)
    };
    super::print(&out)?;
    // Exit 1 is "something to look at", as for a run with failed rows.
    Ok(if verdict.ok() {
        Exit::Ok
    } else {
        Exit::RowsFailed
    })
}

/// Runs every check; `running` says a run holds the state file (its results are not written
/// yet).
///
/// Three kinds of work run side by side, on the machine's cores: the row-by-row comparison
/// (input, ledger and results file streamed together), the two files' MD5s, and the checks of
/// the whole ledger (identities issued twice, shared issued ids, orphans), each thread with its
/// own read-only connection. The findings are put together in the same order whatever finishes
/// first.
pub(super) fn check(campaign: &Campaign, running: bool) -> anyhow::Result<Verdict> {
    crate::paths::check_regular("input", &campaign.input)?;
    let results_exist = campaign.results.exists();
    if results_exist {
        crate::paths::check_regular("results file", &campaign.results)?;
    }
    let ledger = super::open_read_only(campaign)?;
    let (digests, rows, whole) = std::thread::scope(|scope| {
        let digests = scope.spawn(|| digests(campaign, results_exist));
        let whole = scope.spawn(|| check_ledger(campaign));
        let mut rows = Findings::default();
        let compared = if results_exist {
            check_rows(campaign, &ledger, &mut rows)
        } else {
            Ok(0)
        };
        (joined(digests), compared.map(|n| (n, rows)), joined(whole))
    });
    let (input_md5, results_md5) = digests?;
    let (compared, rows) = rows?;
    let mut findings = Findings::default();
    if running {
        findings.note(Finding::new(
            "running",
            "a run is going on right now: it writes the results file when it ends; verify again \
             then",
        ));
    }
    check_input(campaign, &ledger, &input_md5, &mut findings)?;
    let digest = check_digest(campaign, &ledger, results_md5, &mut findings)?;
    findings.append(rows);
    findings.append(whole?);
    Ok(Verdict {
        findings,
        compared,
        digest,
    })
}

/// A check's outcome from its thread.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>) -> anyhow::Result<T> {
    thread
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a verify thread panicked")))
}

/// The MD5s of the input and of the results file (`None` when it does not exist).
fn digests(campaign: &Campaign, results_exist: bool) -> anyhow::Result<(String, Option<String>)> {
    let input = crate::input::fingerprint(&campaign.input)
        .with_context(|| format!("cannot read the input {}", campaign.input.display()))?;
    let results = match crate::input::fingerprint(&campaign.results) {
        Ok(found) => Some(found),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !results_exist => None,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", campaign.results.display()));
        }
    };
    Ok((input, results))
}

/// The checks of the whole ledger, with a connection of their own.
fn check_ledger(campaign: &Campaign) -> anyhow::Result<Findings> {
    let ledger = super::open_read_only(campaign)?;
    let mut findings = Findings::default();
    check_issued_twice(&ledger, &mut findings)?;
    check_orphans(&ledger, &mut findings)?;
    note_unfinished(&ledger, &mut findings)?;
    Ok(findings)
}

fn text(campaign: &Campaign, findings: &Findings, compared: u64, digest: Option<&str>) -> String {
    let files = format!(
        "input {}, ledger {}, results {}",
        campaign.input.display(),
        campaign.state.display(),
        campaign.results.display()
    );
    let mut out = String::new();
    if findings.count == 0 {
        let _ = writeln!(
            out,
            "verify: OK — {compared} rows reconcile ({files}, md5 {})",
            digest.unwrap_or_default()
        );
    } else {
        let plural = if findings.count == 1 { "y" } else { "ies" };
        let _ = writeln!(
            out,
            "verify: {} discrepanc{plural} ({files})",
            findings.count
        );
        for d in &findings.discrepancies {
            let _ = writeln!(out, "  {}", d.message);
        }
        let hidden = findings.count - findings.discrepancies.len() as u64;
        if hidden > 0 {
            let _ = writeln!(out, "  … and {hidden} more not shown");
        }
    }
    for note in &findings.notes {
        let _ = writeln!(out, "note: {}", note.message);
    }
    out
}

/// The input must be the file the ledger last read: rows are matched by number.
fn check_input(
    campaign: &Campaign,
    ledger: &Ledger,
    now: &str,
    f: &mut Findings,
) -> anyhow::Result<()> {
    match ledger.meta("input_fingerprint")? {
        Some(recorded) if recorded != now => f.discrepancy(
            Finding::new(
                "input-changed",
                format!(
                    "input file {}: changed since the ledger last read it (md5 {recorded}, now \
                     {now}); run `campaign run` to bring the ledger up to date (rows already sent \
                     are not sent again)",
                    campaign.input.display()
                ),
            )
            .values(recorded, now),
        ),
        Some(_) => {}
        None => f.discrepancy(Finding::new(
            "input-never-read",
            format!(
                "ledger {}: has never read an input file",
                campaign.state.display()
            ),
        )),
    }
    Ok(())
}

/// Compares the results file's MD5 with the recorded one; returns the file's MD5 if it exists.
fn check_digest(
    campaign: &Campaign,
    ledger: &Ledger,
    found: Option<String>,
    f: &mut Findings,
) -> anyhow::Result<Option<String>> {
    let path = &campaign.results;
    let Some(found) = found else {
        f.discrepancy(Finding::new(
            "results-missing",
            format!(
                "results file {}: does not exist (`campaign export` writes it from the ledger)",
                path.display()
            ),
        ));
        return Ok(None);
    };
    match ledger.meta("results_md5")? {
        None => f.discrepancy(Finding::new(
            "results-unrecorded",
            format!(
                "results file {}: the ledger records no results file written yet",
                path.display()
            ),
        )),
        Some(recorded) if recorded != found => {
            let written = ledger.meta("results_path")?.unwrap_or_default();
            let at = ledger.meta("results_written_at")?.unwrap_or_default();
            f.discrepancy(
                Finding::new(
                    "results-digest",
                    format!(
                        "results file {}: md5 is {found}, but the ledger recorded {recorded} when \
                         it wrote {written} at {at}: the file was edited or replaced since",
                        path.display()
                    ),
                )
                .values(recorded, found.clone()),
            );
        }
        Some(_) => {}
    }
    Ok(Some(found))
}

/// The header, then every row; returns how many rows were compared.
fn check_rows(campaign: &Campaign, ledger: &Ledger, f: &mut Findings) -> anyhow::Result<u64> {
    let input = campaign
        .open_input()
        .with_context(|| format!("cannot read the input {}", campaign.input.display()))?;
    let (results, header) = ResultsFile::open(&campaign.results, f)
        .with_context(|| format!("cannot read {}", campaign.results.display()))?;
    let names = input.header().columns.clone();
    let compare_cells = check_header(&names, header.as_deref(), results.neutralised(), f);
    let ledger_rows = ledger.counts(ledger.generation()?)?.rows as i64;
    let mut reconciler = Reconciler::new(f, results, names, compare_cells, ledger_rows);
    let mut input = Some(input);
    // The ledger's rows are read on a thread of their own (with its own connection) while
    // this one reads the two files and compares.
    let (rows, received) = batches::channel();
    let read = std::thread::scope(|scope| {
        let reading = scope.spawn(move || send_ledger_rows(campaign, rows));
        for row in received.into_iter().flatten() {
            reconciler.expect(&mut input, Some(row));
        }
        joined(reading)
    });
    read?;
    // Rows the input has beyond the ledger's (the input grew since the last run).
    while reconciler.expect(&mut input, None) {}
    let compared = reconciler.compared;
    reconciler.finish();
    Ok(compared)
}

/// Hands over the ledger's rows of the current input, in input order.
fn send_ledger_rows(
    campaign: &Campaign,
    mut rows: batches::Sender<ResultRow>,
) -> anyhow::Result<()> {
    let ledger = super::open_read_only(campaign)?;
    let stopped = || anyhow::anyhow!("verify stopped reading the ledger's rows");
    ledger.for_each_result(|row| rows.push(row).map_err(|_| stopped()))?;
    rows.finish().map_err(|_| stopped())
}

/// Whether cells can be compared: the header has the expected width. Reports any difference.
fn check_header(
    names: &[String],
    header: Option<&[String]>,
    neutralised: bool,
    f: &mut Findings,
) -> bool {
    let expected: Vec<String> = names
        .iter()
        .map(|c| as_written(c, neutralised).into_owned())
        .chain(COLUMNS.iter().map(|c| (*c).to_owned()))
        .collect();
    let Some(header) = header else {
        f.discrepancy(Finding::new(
            "header-missing",
            "results file: empty, not even a header row",
        ));
        return false;
    };
    if header.len() != expected.len() {
        f.discrepancy(
            Finding::new(
                "header-width",
                format!(
                    "header: the results file has {} columns, expected {} (the input's {}, then \
                     the {} result columns); rows were matched by their row column only, cells \
                     not compared",
                    header.len(),
                    expected.len(),
                    names.len(),
                    COLUMNS.len()
                ),
            )
            .line(1)
            .values(expected.len().to_string(), header.len().to_string()),
        );
        return false;
    }
    for (i, (want, found)) in expected.iter().zip(header).enumerate() {
        if want != found {
            f.discrepancy(
                Finding::new(
                    "header",
                    format!(
                        "header, column {}: should be {}, the results file has {}",
                        i + 1,
                        shown(want),
                        shown(found)
                    ),
                )
                .line(1)
                .column(want.clone())
                .values(want.clone(), found.clone()),
            );
        }
    }
    true
}

fn check_issued_twice(ledger: &Ledger, f: &mut Findings) -> anyhow::Result<()> {
    for (entry_id, times) in ledger.doubly_issued()? {
        let entry = ledger.entry(entry_id)?;
        let who = describe(entry.clone(), entry_id);
        f.discrepancy(about(
            Finding::new(
                "issued-twice",
                format!("{who}: issued {times} times (the ledger has {times} successful attempts)"),
            ),
            entry.as_ref(),
        ));
    }
    for (issued_id, holders) in ledger.shared_issued_ids(SHOWN_NOTES)? {
        let rows: Vec<String> = holders.into_iter().map(|e| describe(Some(e), 0)).collect();
        f.discrepancy(
            Finding::new(
                "issued-id-shared",
                format!(
                    "issued_id {}: recorded for {} identities: {}",
                    shown(&issued_id),
                    rows.len(),
                    rows.join("; ")
                ),
            )
            .column("issued_id")
            .values("", issued_id),
        );
    }
    for entry in ledger.issued_after_unknown(SHOWN_NOTES)? {
        f.note(about(
            Finding::new(
                "issued-after-unknown",
                format!(
                    "{}: issued after an attempt whose outcome was unknown (sent again with \
                     --resend-uncertain); the platform may have issued it twice: check with the \
                     platform",
                    describe(Some(entry.clone()), 0)
                ),
            ),
            Some(&entry),
        ));
    }
    Ok(())
}

/// Identities no longer in the input: the results file cannot show them, so one that was issued
/// (or may have been) is a discrepancy; the others are notes.
fn check_orphans(ledger: &Ledger, f: &mut Findings) -> anyhow::Result<()> {
    if ledger.shape()?.is_some_and(|shape| shape.orphaned == 0) {
        return Ok(());
    }
    let mut noted = 0u64;
    ledger.for_each_orphan(|e| -> anyhow::Result<()> {
        let who = describe(Some(e.clone()), 0);
        match e.status {
            RowStatus::Issued => f.discrepancy(about(
                Finding::new(
                    "orphan-issued",
                    format!(
                        "{who}: issued (issued_id {}) but no longer in the input, so the results \
                         file does not show it",
                        shown(e.issued_id.as_deref().unwrap_or(""))
                    ),
                ),
                Some(&e),
            )),
            RowStatus::Uncertain | RowStatus::Inflight => f.discrepancy(about(
                Finding::new(
                    "orphan-uncertain",
                    format!(
                        "{who}: may have been issued (status {}) but is no longer in the input, \
                         so the results file does not show it",
                        e.status
                    ),
                ),
                Some(&e),
            )),
            status => {
                noted += 1;
                if noted <= SHOWN_NOTES as u64 {
                    f.note(about(
                        Finding::new(
                            "orphan",
                            format!("{who}: no longer in the input; status {status}, never issued"),
                        ),
                        Some(&e),
                    ));
                }
            }
        }
        Ok(())
    })?;
    if noted > SHOWN_NOTES as u64 {
        f.note(Finding::new(
            "orphans-not-shown",
            format!(
                "… and {} more identities no longer in the input, never issued",
                noted - SHOWN_NOTES as u64
            ),
        ));
    }
    Ok(())
}

/// Reconciling says nothing about being finished: say what is left to do.
fn note_unfinished(ledger: &Ledger, f: &mut Findings) -> anyhow::Result<()> {
    let counts = ledger.status_counts()?;
    if counts.pending > 0 {
        f.note(Finding::new(
            "pending",
            format!(
                "{} still pending: the campaign is not finished (`campaign run` resumes it)",
                rows_are(counts.pending)
            ),
        ));
    }
    if counts.uncertain > 0 {
        f.note(Finding::new(
            "uncertain",
            format!(
                "{} uncertain: `campaign reconcile` asks the platform about them (tmall); \
                 `campaign run --resend-uncertain` sends them again unchecked",
                rows_are(counts.uncertain)
            ),
        ));
    }
    Ok(())
}

fn rows_are(n: u64) -> String {
    if n == 1 {
        "1 row is".to_owned()
    } else {
        format!("{n} rows are")
    }
}

/// The finding with the entry's identity and row.
fn about(finding: Finding, entry: Option<&crate::ledger::report::EntryRecord>) -> Finding {
    match entry {
        Some(e) => finding.row(e.row).identity(e.identity.clone()),
        None => finding,
    }
}

/// `row 7 (open_id=X)`, or `identity open_id=X (was row 7)` when it left the input.
fn describe(entry: Option<crate::ledger::report::EntryRecord>, id: i64) -> String {
    match entry {
        Some(e) if e.current => format!("row {} ({})", e.row, e.identity),
        Some(e) => format!("identity {} (was row {})", e.identity, e.row),
        None => format!("ledger entry {id}"),
    }
}
