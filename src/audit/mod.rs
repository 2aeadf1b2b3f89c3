//! Auditing and operations: `campaign status` (counts, progress, the last run, errors by code;
//! works during a run), `campaign export` (the results CSV and the per-attempt log rewritten
//! from the ledger) and `campaign verify` (the input, the ledger and the results file
//! reconcile). The ledger is the source of truth for all three; only `export` writes anything.

mod export;
mod findings;
mod rebuild;
mod reconcile;
mod results_file;
mod status;
#[cfg(test)]
mod tests;
mod verify;

pub(crate) use verify::Verdict;

use crate::campaign::Campaign;
use crate::exit::Exit;
use crate::ledger::{Ledger, LedgerError};

/// `campaign status`: a table, or JSON with `json` (the fields of [`status::StatusReport`]).
pub(crate) fn status(campaign: &Campaign, json: bool) -> anyhow::Result<Exit> {
    status::run(campaign, json)
}

/// `campaign export`: rewrites the results CSV from the ledger (atomically, its MD5 recorded),
/// and with `attempts` the per-attempt log too. Refuses while a run holds the state file.
pub(crate) fn export(
    campaign: &Campaign,
    attempts: Option<&std::path::Path>,
    output: crate::progress::Output,
) -> anyhow::Result<Exit> {
    export::run(campaign, attempts, output)
}

pub(crate) use rebuild::{refuse_fresh_ledger, refuse_ledger_behind_results};

/// `campaign rebuild`: a new ledger from a results file (issued and uncertain rows recorded,
/// the rest pending), for a campaign whose state file was lost.
pub(crate) fn rebuild(
    campaign: &Campaign,
    from: &std::path::Path,
    output: crate::progress::Output,
) -> anyhow::Result<Exit> {
    rebuild::run(campaign, from, output)
}

/// `campaign verify`: exit 0 when the input, the ledger and the results file reconcile, 1 with
/// every discrepancy listed otherwise; as one JSON object with `json` (shape in docs/json.md).
pub(crate) fn verify(campaign: &Campaign, json: bool) -> anyhow::Result<Exit> {
    verify::run(campaign, json)
}

/// `verify`'s checks without printing, for the report; `running` says whether a run holds the
/// state file (a run writing its own report passes `false`: its results are written).
pub(crate) fn verdict(campaign: &Campaign, running: bool) -> anyhow::Result<Verdict> {
    verify::check(campaign, running)
}

/// Opens the campaign's state file read-only and checks that it belongs to the campaign and its
/// API.
pub(crate) fn open_read_only(campaign: &Campaign) -> Result<Ledger, LedgerError> {
    let ledger = Ledger::open_read_only(&campaign.state)?;
    let found = ledger.meta("campaign")?.unwrap_or_default();
    if found != campaign.name {
        return Err(LedgerError::OtherCampaign {
            path: campaign.state.clone(),
            found,
            expected: campaign.name.clone(),
        });
    }
    if let Some(found) = ledger.meta("api")?
        && found != campaign.api.method
    {
        return Err(LedgerError::OtherApi {
            path: campaign.state.clone(),
            found,
            expected: campaign.api.method.to_owned(),
        });
    }
    Ok(ledger)
}

/// Prints to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    crate::progress::print(text).context("cannot write to stdout")
}

/// A cell value quoted for a message, shortened when long (JSON details can be).
fn shown(value: &str) -> String {
    const LONGEST: usize = 60;
    match value.char_indices().nth(LONGEST) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}
