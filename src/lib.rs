//! `campaign`: a batch campaign runner for the Taobao Open Platform.
//!
//! Data flows one way: input → ledger → runner → top → ledger → results.

pub mod audit;
pub mod campaign;
pub mod check;
pub mod cli;
pub mod domain;
pub mod exit;
pub mod files;
pub mod help;
pub mod ingest;
pub mod input;
pub mod ledger;
pub mod notify;
pub mod paths;
pub mod progress;
pub mod results;
pub mod runner;
pub mod secret;
pub mod sim;
pub mod top;
