//! What one run may still send: the `--limit N` canary (rows sent in this run) and the
//! `max_issued` budget (rows issued or possibly issued over all runs, as the ledger counts them
//! in [`crate::ledger::budget`]).
//!
//! The dispatcher asks before it hands out each row; a row's share of the budget is taken then,
//! before the row is marked in flight, and given back only when the platform refused the row
//! (`failed`). Retries of a row take nothing more.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ledger::budget::BudgetUse;
use crate::ledger::writer::Job;

/// Why the dispatcher may not hand out the next row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--limit N` rows were handed out in this run.
    Limit,
    /// The budget is used up.
    Budget,
}

/// The budget of a campaign with `max_issued`.
#[derive(Debug)]
struct Budget {
    max: u64,
    /// Rows issued or possibly issued, counting this run's rows from the moment they are
    /// handed out.
    used: u64,
    /// Pending rows the ledger already counted (sent before, idempotent API).
    counted: HashSet<i64>,
}

#[derive(Debug, Default)]
struct State {
    limit_left: Option<u64>,
    budget: Option<Budget>,
    /// Rows handed out whose worker has not finished with them.
    open: u64,
}

/// The run's allowance; shared by the dispatcher (which takes) and the workers (which settle).
#[derive(Debug, Default)]
pub(crate) struct Allowance {
    state: Mutex<State>,
    settled: Notify,
}

impl Allowance {
    /// `limit`: rows this run may hand out; `budget`: `max_issued` with what the ledger counts.
    pub(crate) fn new(limit: Option<u64>, budget: Option<(u64, BudgetUse)>) -> Allowance {
        Allowance {
            state: Mutex::new(State {
                limit_left: limit,
                budget: budget.map(|(max, found)| Budget {
                    max,
                    used: found.used,
                    counted: found.counted_pending,
                }),
                open: 0,
            }),
            settled: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the allowance for as many leading `rows` as it covers; returns how many, and why
    /// not more (`None` when it covered them all).
    pub(crate) fn grant(&self, rows: &[Job]) -> (usize, Option<Refusal>) {
        let mut state = self.state();
        let State {
            limit_left,
            budget,
            open,
        } = &mut *state;
        for (granted, job) in rows.iter().enumerate() {
            if *limit_left == Some(0) {
                return (granted, Some(Refusal::Limit));
            }
            if let Some(budget) = budget.as_mut()
                && !budget.counted.remove(&job.entry_id)
            {
                if budget.used >= budget.max {
                    return (granted, Some(Refusal::Budget));
                }
                budget.used += 1;
            }
            if let Some(left) = limit_left.as_mut() {
                *left -= 1;
            }
            *open += 1;
        }
        (rows.len(), None)
    }

    /// A worker is done with a handed-out row; `refused` when the platform refused it (`failed`),
    /// which gives its share of the budget back.
    pub(crate) fn settle(&self, refused: bool) {
        {
            let mut state = self.state();
            state.open = state.open.saturating_sub(1);
            if refused && let Some(budget) = state.budget.as_mut() {
                budget.used = budget.used.saturating_sub(1);
            }
        }
        self.settled.notify_waiters();
    }

    /// After a budget refusal: waits until a refused row gave its share back (`true`: try again)
    /// or until every handed-out row is done without that, or the run stops (`false`: the
    /// budget is reached).
    pub(crate) async fn wait_for_room(&self, stop: &CancellationToken) -> bool {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let state = self.state();
                if state.budget.as_ref().is_none_or(|b| b.used < b.max) {
                    return true;
                }
                if state.open == 0 {
                    return false;
                }
            }
            tokio::select! {
                () = settled => {}
                () = stop.cancelled() => return false,
            }
        }
    }

    /// The budget's `max_issued` and rows counted against it now, if there is a budget.
    pub(crate) fn budget(&self) -> Option<(u64, u64)> {
        self.state().budget.as_ref().map(|b| (b.max, b.used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(ids: std::ops::RangeInclusive<i64>) -> Vec<Job> {
        ids.map(|id| Job {
            entry_id: id,
            row: id,
            payload: String::new(),
            request_id: None,
            attempts: 0,
        })
        .collect()
    }

    fn found(used: u64, counted: &[i64]) -> BudgetUse {
        BudgetUse {
            used,
            counted_pending: counted.iter().copied().collect(),
        }
    }

    #[test]
    fn the_limit_counts_rows_handed_out() {
        let allowance = Allowance::new(Some(3), None);
        assert_eq!(allowance.grant(&jobs(1..=2)), (2, None));
        assert_eq!(allowance.grant(&jobs(3..=5)), (1, Some(Refusal::Limit)));
        assert_eq!(allowance.grant(&jobs(4..=5)), (0, Some(Refusal::Limit)));
    }

    #[test]
    fn the_budget_counts_what_the_ledger_found_and_gives_back_refusals() {
        // 8 of 10 used, two of them pending rows sent before (ids 1 and 2).
        let allowance = Allowance::new(None, Some((10, found(8, &[1, 2]))));
        assert_eq!(allowance.grant(&jobs(1..=5)), (4, Some(Refusal::Budget)));
        assert_eq!(allowance.budget(), Some((10, 10)));
        allowance.settle(true);
        assert_eq!(allowance.budget(), Some((10, 9)));
        assert_eq!(allowance.grant(&jobs(5..=6)), (1, Some(Refusal::Budget)));
        allowance.settle(false);
        assert_eq!(allowance.budget(), Some((10, 10)));
    }

    #[tokio::test]
    async fn waiting_for_room_ends_when_nothing_is_open() {
        let allowance = Allowance::new(None, Some((2, found(0, &[]))));
        let stop = CancellationToken::new();
        assert_eq!(allowance.grant(&jobs(1..=3)), (2, Some(Refusal::Budget)));
        allowance.settle(true);
        assert!(allowance.wait_for_room(&stop).await, "a refusal gave room");
        assert_eq!(allowance.grant(&jobs(3..=3)), (1, None));
        allowance.settle(false);
        allowance.settle(false);
        assert!(!allowance.wait_for_room(&stop).await, "all done, no room");
    }
}
