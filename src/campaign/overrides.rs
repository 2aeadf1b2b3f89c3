//! Command-line values that replace the campaign file's, applied in one place and checked by
//! the same validators as the file's own values.

use std::path::PathBuf;

use super::values::{Concurrency, Qps};
use super::{Campaign, CampaignError};

/// What the command line overrides; `None` keeps the campaign file's value.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    /// `--input`
    pub(crate) input: Option<PathBuf>,
    /// `--state`
    pub(crate) state: Option<PathBuf>,
    /// `--results`
    pub(crate) results: Option<PathBuf>,
    /// `--encoding`: a label such as `gbk`.
    pub(crate) encoding: Option<String>,
    /// `--bom` (`Some(true)`) or `--no-bom` (`Some(false)`).
    pub(crate) bom: Option<bool>,
    /// `--qps`
    pub(crate) qps: Option<Qps>,
    /// `--concurrency`
    pub(crate) concurrency: Option<Concurrency>,
}

impl Campaign {
    /// Loads a campaign file and applies the command line's overrides.
    pub(crate) fn load_with(
        path: &std::path::Path,
        overrides: &Overrides,
    ) -> Result<Campaign, CampaignError> {
        let mut campaign = Campaign::load(path)?;
        campaign.apply(overrides)?;
        Ok(campaign)
    }

    /// Replaces the values the command line gives; an invalid one is an error naming its flag.
    pub(crate) fn apply(&mut self, overrides: &Overrides) -> Result<(), CampaignError> {
        if let Some(label) = &overrides.encoding {
            let encoding =
                crate::input::parse_encoding(label).map_err(|message| CampaignError::Flag {
                    flag: "--encoding",
                    message,
                })?;
            self.encoding = Some(encoding);
        }
        if let Some(bom) = overrides.bom {
            self.bom = Some(bom);
        }
        if let Some(qps) = overrides.qps {
            self.limits.qps = qps;
        }
        if let Some(concurrency) = overrides.concurrency {
            self.limits.concurrency = Some(concurrency);
        }
        for (path, value) in [
            (&mut self.input, &overrides.input),
            (&mut self.state, &overrides.state),
            (&mut self.results, &overrides.results),
        ] {
            if let Some(value) = value {
                path.clone_from(value);
            }
        }
        Ok(())
    }
}
