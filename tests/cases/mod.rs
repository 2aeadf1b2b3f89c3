//! One module per area; `common` is the shared harness.

mod audit;
mod cli;
mod common;
mod files;
mod net;
mod protocol;
mod rails;
mod reconcile;
mod report;
mod resume;
mod run;
mod sim;
mod xlsx;
