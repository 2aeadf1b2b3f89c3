//! The results CSV, the end-of-run summary and the dry-run plan.

pub(crate) mod read;
pub(crate) mod summary;
pub(crate) mod write;
pub(crate) mod xlsx;

pub(crate) use summary::{Summary, plan_json, print_plan, print_summary, summary_json};
pub(crate) use write::{COLUMNS, ResultsError, Written, unchanged_results, write_results};
