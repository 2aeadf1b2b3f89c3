//! The outcome classes of one attempt, shared by the client, the runner, the ledger and the
//! results. The runner matches on [`Outcome`] exhaustively; which platform error lands in which
//! class is a table ([`classify_error`] in `classify`), not a branch in the runner. What the
//! platform said is a [`PlatformError`] (`error`); an issued row's ids are one cell, written and
//! read here.

mod classify;
mod error;

use std::time::Duration;

pub use classify::{classify_error, parse_ban};
pub use error::{NO_ISSUED_CODE, PlatformError, TRANSPORT};

/// Joins several issued ids (alsc's right instance ids) into one `issued_id` cell: separated by
/// `;`, with `\\` written `\\\\` and `;` written `\\;` inside an id, so an id that contains the
/// separator stays one id. An id without either character is written as it is, so the common
/// cell is plain `A;B`. [`split_issued_ids`] reads it back.
pub fn join_issued_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (n, id) in ids.into_iter().enumerate() {
        if n > 0 {
            out.push(';');
        }
        for c in id.chars() {
            if matches!(c, ';' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The ids of an `issued_id` cell written by [`join_issued_ids`] (an empty cell has none). A
/// lone trailing `\\` is kept as it is.
pub fn split_issued_ids(cell: &str) -> Vec<String> {
    if cell.is_empty() {
        return Vec::new();
    }
    let mut ids = vec![String::new()];
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        let current = ids.last_mut().expect("never empty");
        match c {
            '\\' => current.push(chars.next().unwrap_or('\\')),
            ';' => ids.push(String::new()),
            c => current.push(c),
        }
    }
    ids
}

/// The class of an attempt's outcome, as stored in the attempts table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeClass {
    Issued,
    Permanent,
    Transient,
    Throttled,
    Fatal,
    Unknown,
    Unreachable,
}

impl OutcomeClass {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Issued => "issued",
            OutcomeClass::Permanent => "permanent",
            OutcomeClass::Transient => "transient",
            OutcomeClass::Throttled => "throttled",
            OutcomeClass::Fatal => "fatal",
            OutcomeClass::Unknown => "unknown",
            OutcomeClass::Unreachable => "unreachable",
        }
    }

    /// Reads a name written by [`OutcomeClass::as_str`].
    pub fn parse(name: &str) -> Option<OutcomeClass> {
        use OutcomeClass::{Fatal, Issued, Permanent, Throttled, Transient, Unknown, Unreachable};
        [
            Issued,
            Permanent,
            Transient,
            Throttled,
            Fatal,
            Unknown,
            Unreachable,
        ]
        .into_iter()
        .find(|class| class.as_str() == name)
    }
}

/// The classified outcome of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Issued: the certificate code (tmall) or the right instance ids (alsc, joined by
    /// [`join_issued_ids`]), and
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
    /// Nothing reached the platform: the connection could not be opened (refused, DNS, TLS
    /// handshake, connect timeout). A gateway-wide condition: the run pauses and probes; the
    /// attempt does not count.
    Unreachable(PlatformError),
}

impl Outcome {
    /// The answer to a request that may have reached the platform was lost (read timeout, reset,
    /// HTTP 5xx, a body that is not a TOP answer, a timeout sub-code): `Unknown` for a
    /// non-idempotent API, `Transient` for an idempotent one, whose resend is deduplicated.
    pub fn answer_lost(idempotent: bool, error: PlatformError) -> Outcome {
        if idempotent {
            Outcome::Transient(error)
        } else {
            Outcome::Unknown(error)
        }
    }

    /// The class stored in the attempts table.
    pub fn class(&self) -> OutcomeClass {
        match self {
            Outcome::Issued { .. } => OutcomeClass::Issued,
            Outcome::Permanent(_) => OutcomeClass::Permanent,
            Outcome::Transient(_) => OutcomeClass::Transient,
            Outcome::Throttled { .. } => OutcomeClass::Throttled,
            Outcome::Fatal(_) => OutcomeClass::Fatal,
            Outcome::Unknown(_) => OutcomeClass::Unknown,
            Outcome::Unreachable(_) => OutcomeClass::Unreachable,
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
            | Outcome::Unreachable(e)
            | Outcome::Throttled { error: e, .. } => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_with_the_separator_stay_apart() {
        let cases: &[&[&str]] = &[
            &["A", "B"],
            &["A;B"],
            &["A\\", "B"],
            &["A\\;B", ";", ""],
            &["7000246010032578xx"],
        ];
        for ids in cases {
            let cell = join_issued_ids(ids.iter().copied());
            assert_eq!(split_issued_ids(&cell), ids.to_vec(), "{cell}");
        }
        assert_eq!(join_issued_ids(["A", "B"]), "A;B");
        assert_eq!(join_issued_ids(["A;B"]), "A\\;B");
        assert_ne!(join_issued_ids(["A;B"]), join_issued_ids(["A", "B"]));
        assert!(split_issued_ids("").is_empty());
    }
}
