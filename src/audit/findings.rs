//! What `campaign verify` found: discrepancies (exit 1) and notes (information), collected by the
//! whole-file checks ([`super::verify`]) and the row-by-row reconciliation ([`super::reconcile`]).
//! Each is a [`Finding`]: a kind, where (row, results line, column) and what each side holds, and
//! the sentence printed for people; `verify --json` prints them as objects (docs/json.md).

use serde::Serialize;

/// Discrepancies printed at most; the verdict counts them all.
const SHOWN_DISCREPANCIES: usize = 1000;

/// One discrepancy or note. Fields that do not apply are `None` (`null` in JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct Finding {
    /// A stable word for what was found, e.g. `cell`, `missing-rows`, `results-digest`.
    pub(super) kind: &'static str,
    /// The input row (for a range, its first row).
    pub(super) row: Option<i64>,
    /// The last row of a range of rows.
    pub(super) last_row: Option<i64>,
    /// The recipient identity, for findings about one.
    pub(super) identity: Option<String>,
    /// The line of the results file.
    pub(super) line: Option<u64>,
    /// The column name.
    pub(super) column: Option<String>,
    /// What the input, the ledger or the recorded digest says it should be, in full.
    pub(super) expected: Option<String>,
    /// What the results file holds, in full.
    pub(super) found: Option<String>,
    /// The sentence `verify` prints.
    pub(super) message: String,
}

impl Finding {
    pub(super) fn new(kind: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            kind,
            row: None,
            last_row: None,
            identity: None,
            line: None,
            column: None,
            expected: None,
            found: None,
            message: message.into(),
        }
    }

    pub(super) fn row(mut self, row: i64) -> Finding {
        self.row = Some(row);
        self
    }

    pub(super) fn rows(mut self, first: i64, last: i64) -> Finding {
        self.row = Some(first);
        self.last_row = Some(last);
        self
    }

    pub(super) fn identity(mut self, identity: impl Into<String>) -> Finding {
        self.identity = Some(identity.into());
        self
    }

    pub(super) fn line(mut self, line: u64) -> Finding {
        self.line = Some(line);
        self
    }

    pub(super) fn column(mut self, column: impl Into<String>) -> Finding {
        self.column = Some(column.into());
        self
    }

    pub(super) fn values(
        mut self,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Finding {
        self.expected = Some(expected.into());
        self.found = Some(found.into());
        self
    }
}

/// What verify found: discrepancies (exit 1) and notes (information).
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub(super) discrepancies: Vec<Finding>,
    /// All discrepancies, shown or not.
    pub(super) count: u64,
    pub(super) notes: Vec<Finding>,
}

impl Findings {
    pub(super) fn discrepancy(&mut self, finding: Finding) {
        self.count += 1;
        if self.discrepancies.len() < SHOWN_DISCREPANCIES {
            self.discrepancies.push(finding);
        }
    }

    pub(super) fn note(&mut self, finding: Finding) {
        self.notes.push(finding);
    }

    /// Adds what another check found after what this one holds, as if found here.
    pub(super) fn append(&mut self, other: Findings) {
        let shown = other.discrepancies.len() as u64;
        for finding in other.discrepancies {
            self.discrepancy(finding);
        }
        // Those the other check found but did not keep are counted all the same.
        self.count += other.count - shown;
        self.notes.extend(other.notes);
    }
}
