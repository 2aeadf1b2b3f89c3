//! The safety rails of a money-issuing run, end to end against a simulator process: the
//! `--limit` canary, the `max_issued` budget, the confirmation prompt, `campaign check` and
//! notifications. One module each.

mod budget;
mod check;
mod limit;
mod notify;
mod prompt;
