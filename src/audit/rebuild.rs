//! `campaign rebuild`: a new ledger from a results file, for a campaign whose state file was
//! lost. Rows `issued` or `uncertain` in the results file are recorded as such (with their
//! issued ids, request ids, attempts and details); every other row is pending, so the next run
//! sends only what was never issued. Also: the check that refuses to start a fresh ledger when a
//! campaign evidently ran before.

use std::path::Path;

use anyhow::Context;
use rusqlite::params;

use crate::campaign::Campaign;
use crate::domain::RowStatus;
use crate::exit::Exit;
use crate::files::dialect::neutralise;
use crate::ledger::{self, Ledger, sidecar};
use crate::progress::Output;
use crate::results::read::{ReadError, ResultRecord, first_issued, read_results};

/// A run, export or rebuild that finds no state file refuses to start a fresh ledger when the
/// campaign evidently ran: its lock file or SQLite journal is there, or its results file has a
/// row that was (or may have been) issued. Sending from a fresh ledger would issue those again.
pub(crate) fn refuse_fresh_ledger(campaign: &Campaign) -> anyhow::Result<()> {
    let state = &campaign.state;
    let rebuild = format!(
        "campaign rebuild {} --from {}",
        campaign.path.display(),
        campaign.results.display()
    );
    let remedy = format!(
        "restore the state file from a backup, or rebuild it from the last results file with \
         `{rebuild}`; only if nothing was ever sent for this campaign, remove {} and move the \
         results file away",
        ledger::lock_path(state).display()
    );
    for (what, path) in [
        ("its lock file", ledger::lock_path(state)),
        ("its journal", sidecar(state, "-wal")),
    ] {
        anyhow::ensure!(
            !path.exists(),
            "{}: the state file is missing, but {what} {} shows this campaign ran before; a fresh \
             ledger would send every row again. {remedy}",
            state.display(),
            path.display()
        );
    }
    if let Some(record) = first_issued(&campaign.results).unwrap_or_default() {
        anyhow::bail!(
            "{}: the state file is missing, but the results file {} shows row {} as {} (line \
             {}); a fresh ledger would send it again. {remedy}",
            state.display(),
            campaign.results.display(),
            record.row,
            record.status,
            record.line
        );
    }
    Ok(())
}

/// `campaign rebuild CAMPAIGN.toml --from RESULTS`.
pub(super) fn run(campaign: &Campaign, from: &Path, output: Output) -> anyhow::Result<Exit> {
    let state = &campaign.state;
    anyhow::ensure!(
        !state.exists(),
        "{}: exists already; `campaign rebuild` only creates a missing state file (move it away \
         first if you really mean to replace it)",
        state.display()
    );
    crate::paths::check_regular("input", &campaign.input)?;
    crate::paths::check_regular("results file", from)?;
    crate::paths::check_writable("state", state)?;
    let mut protected = vec![("input", campaign.input.clone())];
    protected.push(("results file", from.to_owned()));
    crate::paths::check_outputs(
        &[
            ("state file", state.as_path()),
            ("state file's journal", &sidecar(state, "-wal")),
            ("state file's shared memory", &sidecar(state, "-shm")),
        ],
        &protected,
    )?;
    let _lock = ledger::lock(state)?;
    // Built under another name and renamed at the end: an interrupted rebuild leaves no state
    // file that looks complete.
    let building = sidecar(state, ".rebuilding");
    let _ = std::fs::remove_file(&building);
    let _ = std::fs::remove_file(sidecar(&building, "-wal"));
    let _ = std::fs::remove_file(sidecar(&building, "-shm"));
    let counts = {
        let mut ledger = Ledger::open(&building, &campaign.name, campaign.api.method)?;
        crate::ingest::ingest(&mut ledger, campaign, crate::ingest::Purpose::Run)?;
        let counts = restore(&ledger, campaign, from)?;
        ledger
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .map_err(|e| ledger.wrap(e))?;
        ledger.set_meta("rebuilt_from", &from.display().to_string())?;
        counts
    };
    // SQLite's files of the lost state file would be applied to the new one: the journal is
    // kept aside (it is all that is left of the lost file), the shared memory removed.
    let wal = sidecar(state, "-wal");
    if wal.exists() {
        let aside = sidecar(state, &format!("-wal.lost-{}", std::process::id()));
        std::fs::rename(&wal, &aside)
            .with_context(|| format!("cannot move {} aside", wal.display()))?;
        if output == Output::Normal {
            super::print(&format!(
                "note: {} belonged to the lost state file; kept as {}\n",
                wal.display(),
                aside.display()
            ))?;
        }
    }
    let shm = sidecar(state, "-shm");
    if shm.exists() {
        std::fs::remove_file(&shm).with_context(|| format!("cannot remove {}", shm.display()))?;
    }
    std::fs::rename(&building, state).with_context(|| {
        format!(
            "cannot rename {} to {}",
            building.display(),
            state.display()
        )
    })?;
    if output == Output::Normal {
        super::print(&format!(
            "rebuilt {} from {}: {} issued, {} uncertain, {} rows pending (run `campaign run` to \
             send them; nothing issued is sent again)\n",
            state.display(),
            from.display(),
            counts.0,
            counts.1,
            counts.2
        ))?;
    }
    Ok(Exit::Ok)
}

/// Records the results file's issued and uncertain rows; returns (issued, uncertain, pending).
fn restore(ledger: &Ledger, campaign: &Campaign, from: &Path) -> anyhow::Result<(u64, u64, u64)> {
    let workbook = crate::input::Format::of(from) == crate::input::Format::Xlsx;
    let mut input = campaign.open_input()?;
    let names: Vec<String> = input
        .header()
        .columns
        .iter()
        .map(|c| neutralise(c).into_owned())
        .collect();
    let bad = |line: u64, what: String| ReadError::Bad {
        path: from.to_owned(),
        line,
        what,
    };
    let (mut issued, mut uncertain) = (0, 0);
    let tx = ledger
        .conn
        .unchecked_transaction()
        .map_err(|e| ledger.wrap(e))?;
    let mut entry_of = tx
        .prepare("SELECT kind, entry_id FROM rows WHERE row = ?1")
        .map_err(|e| ledger.wrap(e))?;
    let mut record_outcome = tx
        .prepare(
            "UPDATE entries SET status = ?2, attempts = ?3, request_id = COALESCE(?4, request_id),
             issued_id = ?5, detail = ?6, error_code = ?7, error_sub_code = ?8, error_message = ?9,
             top_request_id = ?10, finished_at = ?11 WHERE id = ?1",
        )
        .map_err(|e| ledger.wrap(e))?;
    read_results(from, |header, r: ResultRecord| {
        if header != names {
            return Err(bad(
                1,
                format!(
                    "the input columns are {header:?}, but the input {} has {names:?}: this results file is not of this input",
                    campaign.input.display()
                ),
            ));
        }
        let row = match input.next_row() {
            Some(Ok(row)) => row,
            Some(Err(e)) => return Err(bad(r.line, e.to_string())),
            None => {
                return Err(bad(
                    r.line,
                    format!("row {}: the input has no such row", r.row),
                ));
            }
        };
        // A CSV's cells are neutralised; a workbook's text cells are as they were.
        let cells: Vec<String> = row
            .record
            .iter()
            .map(|c| match workbook {
                true => c.to_owned(),
                false => neutralise(c).into_owned(),
            })
            .collect();
        if row.row as i64 != r.row || cells != r.input {
            return Err(bad(
                r.line,
                format!(
                    "row {}: differs from row {} of the input {} (the results are of another \
                     version of the input)",
                    r.row,
                    row.row,
                    campaign.input.display()
                ),
            ));
        }
        let status = match r.row_status() {
            Some(s @ (RowStatus::Issued | RowStatus::Uncertain)) => s,
            Some(_) => return Ok(()),
            None => return Err(bad(r.line, format!("status: unknown: {:?}", r.status))),
        };
        let (kind, entry_id): (String, Option<i64>) = entry_of
            .query_row([r.row], |q| Ok((q.get(0)?, q.get(1)?)))
            .map_err(|e| bad(r.line, e.to_string()))?;
        let Some(entry_id) = entry_id.filter(|_| kind == "entry") else {
            return Err(bad(
                r.line,
                format!(
                    "row {}: {status} in the results, but {kind} in the input now",
                    r.row
                ),
            ));
        };
        record_outcome
            .execute(params![
                entry_id,
                status.as_str(),
                r.attempts,
                r.request_id,
                r.issued_id,
                r.detail,
                r.error_code,
                r.error_sub_code,
                r.error_message,
                r.top_request_id,
                r.finished_at
            ])
            .map_err(|e| bad(r.line, e.to_string()))?;
        match status {
            RowStatus::Issued => issued += 1,
            _ => uncertain += 1,
        }
        Ok(())
    })?;
    drop(entry_of);
    drop(record_outcome);
    tx.commit().map_err(|e| ledger.wrap(e))?;
    let pending = ledger.pending_count(ledger.generation()?)?;
    Ok((issued, uncertain, pending))
}

/// Refuses a state file that is behind the results file: a row the results show `issued` or
/// `uncertain` that the ledger has pending means the state file is older than the results (put
/// back from a backup, or replaced), and running would send that row again. The results file
/// is read only when it changed since the ledger wrote it (its size, times or inode differ).
pub(crate) fn refuse_ledger_behind_results(
    ledger: &Ledger,
    campaign: &Campaign,
) -> anyhow::Result<()> {
    let results = &campaign.results;
    let Ok(now) = crate::input::quick_stat(results) else {
        return Ok(());
    };
    if ledger.meta("results_stat")?.as_deref() == Some(now.as_str()) {
        return Ok(());
    }
    let recipient = campaign.api.recipient;
    let mut entry_of = ledger
        .conn
        .prepare(
            "SELECT e.identity, e.status FROM rows r JOIN entries e ON e.id = r.entry_id
             WHERE r.row = ?1 AND r.kind = 'entry'",
        )
        .map_err(|e| ledger.wrap(e))?;
    let mut behind = None;
    let read = read_results(results, |header, r| {
        if behind.is_some()
            || !matches!(
                r.row_status(),
                Some(RowStatus::Issued | RowStatus::Uncertain)
            )
        {
            return Ok(());
        }
        let Some(cell) = header
            .iter()
            .position(|c| c == recipient)
            .and_then(|i| r.input.get(i))
        else {
            return Ok(());
        };
        let found: Option<(String, String)> = entry_of
            .query_row([r.row], |q| Ok((q.get(0)?, q.get(1)?)))
            .ok();
        let Some((identity, status)) = found else {
            return Ok(());
        };
        let prefix = format!("{recipient}={cell}");
        let same_recipient = identity == prefix || identity.starts_with(&format!("{prefix}&"));
        let pending = matches!(
            RowStatus::parse(&status),
            Some(RowStatus::Pending | RowStatus::Inflight)
        );
        if same_recipient && pending {
            behind = Some(r);
        }
        Ok(())
    });
    if let Err(e) = read {
        tracing::warn!("cannot compare the results file with the ledger: {e}");
        return Ok(());
    }
    if let Some(r) = behind {
        anyhow::bail!(
            "{}: the ledger has row {} pending, but the results file {} shows it {} (line {}): \
             the state file is older than the results file (put back from a backup, or \
             replaced), and running would send that row again. Put back the newer state file, \
             or move this one away and rebuild it with `campaign rebuild {} --from {}`",
            campaign.state.display(),
            r.row,
            results.display(),
            r.status,
            r.line,
            campaign.path.display(),
            results.display()
        );
    }
    Ok(())
}
