//! `campaign status`, `export` and `verify`.

use crate::campaign::Campaign;
use crate::exit::Exit;

/// `campaign status`.
pub fn status(_campaign: &Campaign, _json: bool) -> anyhow::Result<Exit> {
    anyhow::bail!("`campaign status` is not yet available")
}

/// `campaign export`.
pub fn export(
    _campaign: &Campaign,
    _attempts: Option<&std::path::Path>,
    _bom: bool,
    _quiet: bool,
) -> anyhow::Result<Exit> {
    anyhow::bail!("`campaign export` is not yet available")
}

/// `campaign verify`.
pub fn verify(_campaign: &Campaign) -> anyhow::Result<Exit> {
    anyhow::bail!("`campaign verify` is not yet available")
}
