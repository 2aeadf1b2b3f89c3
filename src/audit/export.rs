//! `campaign export`: the results CSV rewritten from the ledger, byte for byte what a run writes
//! (the same writer), and the per-attempt log. Both are written atomically; the results digest is
//! recorded in the ledger, so `export` takes the run lock and refuses while a run is going on.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::campaign::Campaign;
use crate::exit::Exit;
use crate::ledger::report::AttemptRow;
use crate::ledger::{self, Ledger, LedgerError};
use crate::results::{self, neutralise, write::BOM};

/// The attempts log's columns.
pub const ATTEMPT_COLUMNS: [&str; 10] = [
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
    bom: bool,
    quiet: bool,
) -> anyhow::Result<Exit> {
    if !campaign.state.exists() {
        return Err(LedgerError::Missing {
            path: campaign.state.clone(),
        }
        .into());
    }
    let _lock = ledger::lock(&campaign.state).context(
        "`campaign export` rewrites the results file and needs the state file to itself",
    )?;
    let mut ledger = Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?;
    let had_bom = starts_with_bom(&campaign.results);
    let written = results::write_results(campaign, &mut ledger, &campaign.results, bom)
        .with_context(|| format!("cannot write the results to {}", campaign.results.display()))?;
    let (rows, digest) = (written.rows(), written.digest);
    if !quiet {
        println!(
            "results: {} ({rows} rows, md5 {digest}, recorded in {})",
            campaign.results.display(),
            campaign.state.display()
        );
        if had_bom && !bom {
            println!(
                "note: the previous results file started with a byte-order mark; this one does \
                 not (add --bom to keep it)"
            );
        }
    }
    if let Some(path) = attempts {
        let written = write_attempts(&ledger, path, bom)
            .with_context(|| format!("cannot write the attempts log to {}", path.display()))?;
        if !quiet {
            println!("attempts: {} ({written} attempts)", path.display());
        }
    }
    Ok(Exit::Ok)
}

fn starts_with_bom(path: &Path) -> bool {
    let mut head = [0; 3];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| head == BOM)
}

/// Writes the per-attempt log, streamed, atomically. Returns how many attempts it holds.
pub fn write_attempts(ledger: &Ledger, path: &Path, bom: bool) -> anyhow::Result<u64> {
    let temp = temporary_path(path);
    let written = write_attempts_to(ledger, &temp, bom);
    match written {
        Ok(n) => {
            std::fs::rename(&temp, path)?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

fn write_attempts_to(ledger: &Ledger, temp: &Path, bom: bool) -> anyhow::Result<u64> {
    let mut file = BufWriter::with_capacity(256 * 1024, File::create(temp)?);
    if bom {
        file.write_all(BOM)?;
    }
    let mut out = csv::Writer::from_writer(file);
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
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(written)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(name)
}
