//! `campaign export`: the results CSV rewritten from the ledger, byte for byte what a run writes
//! (the same writer), and the per-attempt log. Both are written atomically; the results digest is
//! recorded in the ledger, so `export` takes the run lock and refuses while a run is going on.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::campaign::Campaign;
use crate::exit::Exit;
use crate::files::AtomicFile;
use crate::files::dialect::{self, BOM, neutralise, starts_with_bom};
use crate::ledger::report::AttemptRow;
use crate::ledger::{self, Ledger, LedgerError};
use crate::progress::Output;
use crate::results;

/// The attempts log's columns.
pub(crate) const ATTEMPT_COLUMNS: [&str; 10] = [
    "row",
    "attempt",
    "started_at",
    "latency_ms",
    "class",
    "code",
    "sub_code",
    "message",
    "top_request_id",
    "request_id",
];

pub(super) fn run(
    campaign: &Campaign,
    attempts: Option<&Path>,
    output: Output,
) -> anyhow::Result<Exit> {
    if !campaign.state.exists() {
        return Err(LedgerError::Missing {
            path: campaign.state.clone(),
        }
        .into());
    }
    crate::paths::check_export(campaign, attempts)?;
    let _lock = ledger::lock(&campaign.state).context(
        "`campaign export` rewrites the results file and needs the state file to itself",
    )?;
    crate::files::atomic::remove_stale(&campaign.results);
    if let Some(attempts) = attempts {
        crate::files::atomic::remove_stale(attempts);
    }
    let mut ledger = Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?;
    let had_bom = starts_with_bom(&campaign.results);
    let written = results::write_results(campaign, &mut ledger, &campaign.results)
        .with_context(|| format!("cannot write the results to {}", campaign.results.display()))?;
    let (rows, digest, bom) = (written.rows(), written.digest.clone(), written.bom);
    let mut out = format!(
        "results: {} ({rows} rows, md5 {digest}, recorded in {})\n",
        campaign.results.display(),
        campaign.state.display()
    );
    if had_bom && !bom {
        out.push_str(
            "note: the previous results file started with a byte-order mark; this one does not \
             (add --bom, or set bom = true in the campaign file, to keep it)\n",
        );
    }
    if output == Output::Normal {
        super::print(&out)?;
    }
    if let Some(path) = attempts {
        let written = write_attempts(&ledger, path, bom)
            .with_context(|| format!("cannot write the attempts log to {}", path.display()))?;
        if output == Output::Normal {
            super::print(&format!(
                "attempts: {} ({written} attempts)\n",
                path.display()
            ))?;
        }
    }
    Ok(Exit::Ok)
}

/// Writes the per-attempt log, streamed, atomically. Returns how many attempts it holds.
pub(crate) fn write_attempts(ledger: &Ledger, path: &Path, bom: bool) -> anyhow::Result<u64> {
    let mut file = AtomicFile::create(path)?;
    if bom {
        file.write_all(BOM)?;
    }
    let mut out = dialect::writer(file);
    out.write_record(ATTEMPT_COLUMNS)?;
    let mut written = 0;
    ledger.for_each_attempt(|a: AttemptRow| -> anyhow::Result<()> {
        let text = |v: Option<String>| v.unwrap_or_default();
        let cells = [
            a.row.map(|r| r.to_string()).unwrap_or_default(),
            a.attempt.to_string(),
            a.started_at,
            a.latency_ms.to_string(),
            a.class.as_str().to_owned(),
            text(a.code),
            text(a.sub_code),
            text(a.message),
            text(a.top_request_id),
            text(a.request_id),
        ];
        out.write_record(cells.iter().map(|c| neutralise(c).into_owned()))?;
        written += 1;
        Ok(())
    })?;
    out.into_inner()
        .map_err(csv::IntoInnerError::into_error)?
        .commit()?;
    Ok(written)
}
