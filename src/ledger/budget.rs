//! The `max_issued` budget as the ledger sees it: how many identities are issued, or may be.
//!
//! A row counts against the budget once it may have been issued on the platform, whatever its
//! state says next, so that no crash, halt or interruption can hand its share back:
//! - `issued`, `uncertain` (its answer was lost) and `inflight` (a run is sending it, or one
//!   was killed while it did);
//! - for an idempotent API, also a `pending` row that was sent before (an earlier attempt, or in
//!   flight when a run stopped): its answer may have been lost after the platform issued it.
//!   It is sent again with the same idempotency key, so it is never issued twice, and it is
//!   counted once. For a non-idempotent API a pending row was never issued: every lost answer
//!   makes it `uncertain`.
//!
//! Every identity the ledger holds counts, including those no longer in the input (they were
//! issued all the same). A `failed` row does not count: the platform refused it.

use std::collections::HashSet;

use super::{Ledger, LedgerError};
use crate::domain::RowStatus;

/// What the budget rule counts in a ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BudgetUse {
    /// Identities issued or possibly issued.
    pub(crate) used: u64,
    /// The `pending` entries among them (idempotent API only): sending one again does not
    /// count a second time.
    pub(crate) counted_pending: HashSet<i64>,
}

impl Ledger {
    /// Counts the identities that are issued or may be, as the budget rule says (module docs).
    pub(crate) fn budget_use(&self, idempotent: bool) -> Result<BudgetUse, LedgerError> {
        let settled = self.count(
            "SELECT COUNT(*) FROM entries WHERE status IN (?1, ?2, ?3)",
            [RowStatus::Issued, RowStatus::Uncertain, RowStatus::Inflight],
        )?;
        let mut counted_pending = HashSet::new();
        if idempotent {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id FROM entries WHERE status = 'pending'
                     AND (attempts > 0 OR error_code = 'interrupted')",
                )
                .map_err(|e| self.wrap(e))?;
            let ids = stmt
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(|e| self.wrap(e))?;
            for id in ids {
                counted_pending.insert(id.map_err(|e| self.wrap(e))?);
            }
        }
        Ok(BudgetUse {
            used: settled + counted_pending.len() as u64,
            counted_pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with(states: &[(&str, i64, Option<&str>)]) -> Ledger {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        for (i, (state, attempts, code)) in states.iter().enumerate() {
            ledger
                .conn
                .execute(
                    "INSERT INTO entries (identity, generation, row, payload, status, attempts,
                     error_code) VALUES (?1, 1, ?2, '{}', ?3, ?4, ?5)",
                    rusqlite::params![format!("id{i}"), i as i64 + 1, state, attempts, code],
                )
                .unwrap();
        }
        ledger
    }

    #[test]
    fn counts_what_may_have_been_issued() {
        let ledger = ledger_with(&[
            ("issued", 1, None),
            ("uncertain", 1, Some("15")),
            ("inflight", 0, None),
            ("failed", 1, Some("15")),
            ("pending", 0, None),
            ("pending", 2, Some("15")),
            ("pending", 0, Some("interrupted")),
        ]);
        // Not idempotent: a pending row was never issued.
        assert_eq!(ledger.budget_use(false).unwrap().used, 3);
        // Idempotent: a pending row sent before may have been.
        let budget = ledger.budget_use(true).unwrap();
        assert_eq!(budget.used, 5);
        assert_eq!(budget.counted_pending, HashSet::from([6, 7]));
    }
}
