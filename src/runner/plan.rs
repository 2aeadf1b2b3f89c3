//! `campaign run --dry-run`: the input ingested into a transaction that is rolled back, and the
//! plan printed; nothing is sent.

use anyhow::Context;

use crate::campaign::Campaign;
use crate::exit::Exit;
use crate::ingest::{Purpose, ingest};
use crate::ledger::{self, Ledger};
use crate::results;

/// Plans the run and prints the plan (as JSON with `json`).
pub(super) fn dry_run(campaign: &Campaign, limit: Option<u64>, json: bool) -> anyhow::Result<Exit> {
    // A campaign that never ran is planned in a throwaway state file on disk, not in memory:
    // a dry run of millions of rows must not hold them all in RAM.
    let scratch;
    // The run it previews would refuse a fresh ledger: so does the preview.
    if !campaign.state.exists() {
        crate::audit::refuse_fresh_ledger(campaign)?;
    }
    let (_lock, mut ledger) = if campaign.state.exists() {
        let lock = ledger::lock(&campaign.state)?;
        (
            Some(lock),
            Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?,
        )
    } else {
        scratch = tempfile::Builder::new()
            .prefix("campaign-dry-run")
            .tempdir()
            .context("cannot create a scratch directory for the dry run")?;
        let path = scratch.path().join("plan.db");
        (
            None,
            Ledger::open(&path, &campaign.name, campaign.api.method)?,
        )
    };
    let report = ingest(&mut ledger, campaign, Purpose::Plan)?;
    let budget = match campaign.limits.max_issued {
        Some(max) => Some((max, ledger.budget_use(campaign.api.is_idempotent())?.used)),
        None => None,
    };
    if json {
        let plan = results::plan_json(campaign, &report, limit, budget);
        let _ = crate::progress::print(&format!("{plan}\n"));
    } else {
        results::print_plan(campaign, &report, limit, budget);
    }
    Ok(Exit::Ok)
}
