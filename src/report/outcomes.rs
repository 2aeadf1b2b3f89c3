//! Outcomes by class and error code, tallied in the same pass over the attempts as the
//! timelines: a handful of groups, whatever the number of attempts.

use crate::ledger::timeline::AttemptPoint;
use crate::ledger::{Ledger, LedgerError};

/// Attempts with the same class, code and sub-code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub class: String,
    pub code: Option<String>,
    pub sub_code: Option<String>,
    pub count: u64,
    /// The rowids of the group's first and last attempt, for their times and message.
    first: i64,
    last: i64,
}

/// A group with when it was first and last seen and its latest message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub group: Group,
    pub first_seen: String,
    pub last_seen: String,
    pub example: Option<String>,
}

/// The groups seen so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    groups: Vec<Group>,
}

impl Tally {
    /// Counts one attempt (in rowid order).
    pub(crate) fn add(&mut self, a: &AttemptPoint<'_>) {
        // Few groups: a linear search, and an allocation only for a new one.
        let found = self.groups.iter_mut().find(|g| {
            g.class == a.class && g.code.as_deref() == a.code && g.sub_code.as_deref() == a.sub_code
        });
        match found {
            Some(group) => {
                group.count += 1;
                group.last = a.rowid;
            }
            None => self.groups.push(Group {
                class: a.class.to_owned(),
                code: a.code.map(str::to_owned),
                sub_code: a.sub_code.map(str::to_owned),
                count: 1,
                first: a.rowid,
                last: a.rowid,
            }),
        }
    }

    /// The groups, the largest first, with their times and latest message from the ledger.
    pub(crate) fn finish(mut self, ledger: &Ledger) -> Result<Vec<Outcome>, LedgerError> {
        self.groups.sort_by(|a, b| {
            b.count.cmp(&a.count).then_with(|| {
                (&a.class, &a.code, &a.sub_code).cmp(&(&b.class, &b.code, &b.sub_code))
            })
        });
        self.groups
            .into_iter()
            .map(|group| {
                let (first_seen, _) = ledger.attempt_detail(group.first)?;
                let (last_seen, example) = ledger.attempt_detail(group.last)?;
                Ok(Outcome {
                    group,
                    first_seen,
                    last_seen,
                    example,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_grouped_by_class_code_and_sub_code_largest_first() {
        let ledger = Ledger::in_memory("c", "m").unwrap();
        ledger
            .conn
            .execute_batch(
                "INSERT INTO attempts (entry_id, attempt, started_at, latency_ms, class, code,
                                       sub_code, message)
                 VALUES (1, 1, 't1', 5, 'transient', '15', 'isp.x', 'first'),
                        (2, 1, 't2', 5, 'issued', NULL, NULL, NULL),
                        (3, 1, 't3', 5, 'transient', '15', 'isp.x', 'latest'),
                        (4, 1, 't4', 5, 'transient', '15', NULL, 'no sub-code');",
            )
            .unwrap();
        let mut tally = Tally::default();
        ledger
            .for_each_attempt_in(&(1..5), |a| tally.add(&a))
            .unwrap();
        let outcomes = tally.finish(&ledger).unwrap();
        let seen: Vec<_> = outcomes
            .iter()
            .map(|o| {
                (
                    o.group.class.as_str(),
                    o.group.sub_code.as_deref(),
                    o.group.count,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("transient", Some("isp.x"), 2),
                ("issued", None, 1),
                ("transient", None, 1)
            ]
        );
        let x = &outcomes[0];
        assert_eq!((x.first_seen.as_str(), x.last_seen.as_str()), ("t1", "t3"));
        assert_eq!(x.example.as_deref(), Some("latest"));
    }
}
