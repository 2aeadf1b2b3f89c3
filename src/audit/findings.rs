//! What `campaign verify` found: discrepancies (exit 1) and notes (information), collected by the
//! whole-file checks ([`super::verify`]) and the row-by-row reconciliation ([`super::reconcile`]).

/// Discrepancies printed at most; the verdict counts them all.
const SHOWN_DISCREPANCIES: usize = 1000;

/// What verify found: discrepancies (exit 1) and notes (information).
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub(super) discrepancies: Vec<String>,
    /// All discrepancies, shown or not.
    pub(super) count: u64,
    pub(super) notes: Vec<String>,
}

impl Findings {
    pub(super) fn discrepancy(&mut self, message: String) {
        self.count += 1;
        if self.discrepancies.len() < SHOWN_DISCREPANCIES {
            self.discrepancies.push(message);
        }
    }

    pub(super) fn note(&mut self, message: String) {
        self.notes.push(message);
    }
}
