//! The results CSV, the end-of-run summary and the dry-run plan.

pub mod read;
pub mod summary;
pub mod write;
pub mod xlsx;

pub use summary::{Summary, plan_json, print_plan, print_summary, summary_json};
pub use write::{COLUMNS, ResultsError, Written, write_results};
