//! The domain words every layer shares: a row's status and the counts per status, how a run
//! ended, a run's counters, and the clock. Everything here is plain data with its spellings;
//! nothing here imports from the rest of the crate but `top`'s outcome classes.

pub mod clock;
pub mod run;
pub mod status;

pub use clock::now_rfc3339;
pub use run::{LiveCounters, RunCounters, RunEnding};
pub use status::{RowStatus, StatusCounts};
