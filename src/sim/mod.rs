//! The built-in TOP gateway simulator (`campaign sim`, `url = "sim"`): a local gateway for the
//! two issuing APIs, the certificate query and two harmless calls, that checks requests like
//! the platform, answers with its shapes and codes, counts issuances per recipient identity, and
//! injects seeded faults. See `docs/simulator.md`.
//!
//! Layout: `config` holds the configuration and its defaults, `cli` the `campaign sim`
//! command, `call` names the methods and the shape of a checked call, `check` validates a
//! request, `issue` decides and books what an issuing call does, `query` answers
//! `tmall.nrt.certificate.query` from those books, `ids` makes the ids, `faults` plans injected
//! faults and flow control, `shapes` and `answer` render the answer, `gateway` ties them
//! together under one briefly held lock, `server` is the HTTP side, `arrival` its clock of when
//! requests arrived (the kernel's receive timestamps), and `stats` the counters.

mod answer;
mod arrival;
mod call;
mod check;
mod cli;
mod config;
mod faults;
mod flow;
mod gateway;
mod ids;
mod issue;
mod params;
mod query;
mod saved;
mod server;
mod shapes;
mod stats;

pub use cli::{SimArgs, run_cli};
pub use config::{DEFAULT_ADDR, DEFAULT_APP_KEY, DEFAULT_SECRET, DEFAULT_SESSION, SimConfig};
pub use faults::{Faults, LatencyTail};
pub use query::Preissued;
pub(crate) use saved::book_path;
pub use server::{SimServer, start};
pub use stats::SimStats;
