//! `campaign`: a batch campaign runner for the Taobao Open Platform.
//!
//! Data flows one way: input → ledger → runner → top → ledger → results.
//!
//! The library's API is what the binary and the integration tests use: [`cli`] (parse and
//! run), [`exit`], [`secret`], [`top`] (the protocol and its client) and [`sim`] (the
//! simulator). Everything else is `pub(crate)`, so the lints below see dead items.

#![warn(unreachable_pub)]
#![warn(
    clippy::cloned_instead_of_copied,
    clippy::explicit_iter_loop,
    clippy::flat_map_option,
    clippy::implicit_clone,
    clippy::inconsistent_struct_constructor,
    clippy::manual_let_else,
    clippy::map_unwrap_or,
    clippy::redundant_closure_for_method_calls,
    clippy::semicolon_if_nothing_returned,
    clippy::uninlined_format_args,
    clippy::unnested_or_patterns,
    clippy::unused_self
)]

pub(crate) mod audit;
pub(crate) mod batches;
pub(crate) mod bits;
pub(crate) mod campaign;
pub(crate) mod check;
pub mod cli;
pub(crate) mod domain;
pub mod exit;
pub(crate) mod files;
pub(crate) mod help;
pub(crate) mod ingest;
pub(crate) mod input;
pub(crate) mod ledger;
pub(crate) mod notify;
pub(crate) mod paths;
pub(crate) mod progress;
pub(crate) mod reconcile;
pub(crate) mod report;
pub(crate) mod results;
pub(crate) mod runner;
pub mod secret;
pub mod sim;
pub mod top;
