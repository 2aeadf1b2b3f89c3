//! The results CSV, the end-of-run summary and the dry-run plan.

pub mod read;
pub mod summary;
pub mod write;

pub use summary::{Summary, print_plan, print_summary};
pub use write::{COLUMNS, ResultsError, Written, write_results};
