//! `campaign report`: one self-contained HTML page that shows what a campaign did, for
//! operations to look at and finance to file with the results.
//!
//! The page needs no network and no JavaScript: the charts are inline SVG ([`chart`]) and the
//! HTML comes from an escaping template ([`page`]). Everything is read from the ledger through
//! aggregating queries and binned ([`timeline`]), so a ledger of millions of rows reports in
//! seconds into a page of a few hundred kilobytes, with flat memory.

mod chart;
mod gather;
mod outcomes;
mod page;
mod timeline;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use askama::Template;

use crate::campaign::{Campaign, ReportFile};
use crate::exit::Exit;
use crate::files::AtomicFile;
use crate::ledger;

/// `campaign report`: writes the page to `out` (default: [`default_path`]) and says where.
pub(crate) fn run(campaign: &Campaign, out: Option<&Path>, quiet: bool) -> anyhow::Result<Exit> {
    let path = out.map_or_else(|| default_path(campaign), Path::to_owned);
    let running = ledger::is_locked(&campaign.state);
    write(campaign, &path, running)?;
    if !quiet {
        crate::progress::print(&format!("report: {}\n", path.display()))
            .context("cannot write to stdout")?;
    }
    Ok(Exit::Ok)
}

/// With `report` set in the campaign file, writes the page at the end of a run (which has
/// recorded its end and written its results); says where when `say_where`. A failure is only a
/// warning: the run's work is done, and `campaign report` writes the page from the ledger.
pub(crate) fn after_run(campaign: &Campaign, say_where: bool) {
    let path = match &campaign.report {
        None => return,
        Some(ReportFile::BesideResults) => default_path(campaign),
        Some(ReportFile::At(path)) => path.clone(),
    };
    // This run holds the state file, but nothing in it moves any more.
    match write(campaign, &path, false) {
        Ok(()) if say_where => {
            let _ = crate::progress::print(&format!("report: {}\n", path.display()));
        }
        Ok(()) => {}
        Err(e) => tracing::warn!(
            "cannot write the report {}: {e:#}; `campaign report` writes it from the ledger",
            path.display()
        ),
    }
}

/// `<name>.report.html` beside the results file.
pub(crate) fn default_path(campaign: &Campaign) -> PathBuf {
    campaign
        .results
        .with_file_name(format!("{}.report.html", campaign.name))
}

/// Builds the page from the campaign's ledger and writes it atomically to `path`. `running`:
/// another run holds the state file (its numbers are still moving).
pub(crate) fn write(campaign: &Campaign, path: &Path, running: bool) -> anyhow::Result<()> {
    let ledger = crate::audit::open_read_only(campaign)?;
    let verdict = crate::audit::verdict(campaign, running)?;
    let secrets = campaign
        .secrets()
        .map(|s| {
            std::iter::once(s.app_secret.expose().to_owned())
                .chain(s.session.map(|s| s.expose().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let page = gather::page(&gather::Sources {
        campaign,
        ledger: &ledger,
        verdict,
        secrets,
    })?;
    let html = page.render().context("cannot render the report page")?;
    let write = || -> std::io::Result<()> {
        let mut file = AtomicFile::create(path)?;
        file.write_all(html.as_bytes())?;
        file.commit()
    };
    write().with_context(|| format!("cannot write the report {}", path.display()))
}
