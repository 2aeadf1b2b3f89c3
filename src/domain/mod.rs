//! The domain words every layer shares: a row's status and the counts per status, how a run
//! ended, a run's counters, and the clock. Everything here is plain data with its spellings;
//! nothing here imports from the rest of the crate but `top`'s outcome classes.

pub(crate) mod clock;
pub(crate) mod run;
pub(crate) mod status;

pub(crate) use clock::now_rfc3339;
pub(crate) use run::{LiveCounters, RunCounters, RunEnding};
pub(crate) use status::{RowStatus, StatusCounts};
