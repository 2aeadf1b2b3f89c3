//! The outcome classes of one attempt, shared by the client, the runner, the ledger and the
//! results. The runner matches on [`Outcome`] exhaustively; which platform error lands in which
//! class is a table in this module, not a branch in the runner.

use std::time::Duration;

/// What the platform (or the transport) said, as recorded in the ledger and the results.
///
/// Errors produced on our side of the wire use code `transport` and a sub-code naming what
/// happened: `connect` (never left), `timeout` (answer lost), `http-NNN`, `malformed-body`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformError {
    pub code: Option<String>,
    pub sub_code: Option<String>,
    pub message: String,
}

/// The class of an attempt's outcome, as stored in the attempts table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    Issued,
    Permanent,
    Transient,
    Throttled,
    Fatal,
    Unknown,
}

impl OutcomeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Issued => "issued",
            OutcomeClass::Permanent => "permanent",
            OutcomeClass::Transient => "transient",
            OutcomeClass::Throttled => "throttled",
            OutcomeClass::Fatal => "fatal",
            OutcomeClass::Unknown => "unknown",
        }
    }
}

/// The classified outcome of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Issued: the certificate code (tmall) or the `;`-joined right instance ids (alsc), and
    /// the rest of the answer as compact JSON.
    Issued { issued_id: String, detail: String },
    /// The platform refused this row for good.
    Permanent(PlatformError),
    /// Safe to send again later (with backoff).
    Transient(PlatformError),
    /// Flow control: slow the whole run down; `ban` is the announced wait, if any.
    Throttled {
        ban: Option<Duration>,
        error: PlatformError,
    },
    /// A configuration problem (signature, app key, session, permission, method): halt the run.
    Fatal(PlatformError),
    /// The request may have been processed but the answer was lost (non-idempotent API only).
    Unknown(PlatformError),
}

impl Outcome {
    pub fn class(&self) -> OutcomeClass {
        match self {
            Outcome::Issued { .. } => OutcomeClass::Issued,
            Outcome::Permanent(_) => OutcomeClass::Permanent,
            Outcome::Transient(_) => OutcomeClass::Transient,
            Outcome::Throttled { .. } => OutcomeClass::Throttled,
            Outcome::Fatal(_) => OutcomeClass::Fatal,
            Outcome::Unknown(_) => OutcomeClass::Unknown,
        }
    }

    /// The error, for every class but `Issued`.
    pub fn error(&self) -> Option<&PlatformError> {
        match self {
            Outcome::Issued { .. } => None,
            Outcome::Permanent(e)
            | Outcome::Transient(e)
            | Outcome::Fatal(e)
            | Outcome::Unknown(e)
            | Outcome::Throttled { error: e, .. } => Some(e),
        }
    }
}
