//! A row's status, with its spelling in the ledger and in the results file in one place, and
//! the rows per status.

use std::fmt;

use serde::Serialize;

/// Where one input row stands.
///
/// `Issued`, `Failed`, `Uncertain`, `Pending` and `Inflight` are states of an identity in the
/// ledger's `entries.status`; `Invalid` and `Duplicate` are kinds of input rows (`rows.kind`)
/// that never get an identity of their own. The results file shows `Inflight` as `pending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RowStatus {
    Issued,
    Failed,
    Invalid,
    Duplicate,
    Uncertain,
    Pending,
    /// Being sent right now (or was, when a run was killed).
    Inflight,
}

impl RowStatus {
    /// The statuses a results row can have, in the order summaries list them.
    pub(crate) const IN_RESULTS: [RowStatus; 6] = [
        RowStatus::Issued,
        RowStatus::Failed,
        RowStatus::Invalid,
        RowStatus::Duplicate,
        RowStatus::Uncertain,
        RowStatus::Pending,
    ];

    /// The spelling in the ledger and in the results file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RowStatus::Issued => "issued",
            RowStatus::Failed => "failed",
            RowStatus::Invalid => "invalid",
            RowStatus::Duplicate => "duplicate",
            RowStatus::Uncertain => "uncertain",
            RowStatus::Pending => "pending",
            RowStatus::Inflight => "inflight",
        }
    }

    /// Reads a spelling written by [`RowStatus::as_str`].
    pub(crate) fn parse(text: &str) -> Option<RowStatus> {
        [RowStatus::Inflight]
            .into_iter()
            .chain(RowStatus::IN_RESULTS)
            .find(|s| s.as_str() == text)
    }

    /// How the results file shows it: a row in flight is still pending there.
    #[must_use]
    pub(crate) fn in_results(self) -> RowStatus {
        match self {
            RowStatus::Inflight => RowStatus::Pending,
            other => other,
        }
    }

    /// A status that makes a finished run exit 1: the user has rows to look at.
    pub(crate) fn needs_attention(self) -> bool {
        matches!(
            self,
            RowStatus::Failed | RowStatus::Invalid | RowStatus::Uncertain
        )
    }
}

impl fmt::Display for RowStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::types::FromSql for RowStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        RowStatus::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown row status {text:?}").into())
        })
    }
}

impl rusqlite::types::ToSql for RowStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

/// Rows per status, as the results file shows them (rows in flight count as pending). Serialised
/// with one field per status, as `campaign status --json` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct StatusCounts {
    pub(crate) issued: u64,
    pub(crate) failed: u64,
    pub(crate) invalid: u64,
    pub(crate) duplicate: u64,
    pub(crate) uncertain: u64,
    pub(crate) pending: u64,
}

impl StatusCounts {
    /// Adds `n` rows of `status`.
    pub(crate) fn add(&mut self, status: RowStatus, n: u64) {
        *self.slot(status) += n;
    }

    /// The rows of `status` (in flight: pending).
    pub(crate) fn get(&self, status: RowStatus) -> u64 {
        match status.in_results() {
            RowStatus::Issued => self.issued,
            RowStatus::Failed => self.failed,
            RowStatus::Invalid => self.invalid,
            RowStatus::Duplicate => self.duplicate,
            RowStatus::Uncertain => self.uncertain,
            RowStatus::Pending | RowStatus::Inflight => self.pending,
        }
    }

    fn slot(&mut self, status: RowStatus) -> &mut u64 {
        match status.in_results() {
            RowStatus::Issued => &mut self.issued,
            RowStatus::Failed => &mut self.failed,
            RowStatus::Invalid => &mut self.invalid,
            RowStatus::Duplicate => &mut self.duplicate,
            RowStatus::Uncertain => &mut self.uncertain,
            RowStatus::Pending | RowStatus::Inflight => &mut self.pending,
        }
    }

    /// Every status with its rows, in [`RowStatus::IN_RESULTS`] order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RowStatus, u64)> + '_ {
        RowStatus::IN_RESULTS.into_iter().map(|s| (s, self.get(s)))
    }

    /// All rows.
    pub(crate) fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    /// Whether any row failed, is invalid or is uncertain.
    pub(crate) fn need_attention(&self) -> bool {
        self.iter().any(|(s, n)| s.needs_attention() && n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_spelling() {
        for status in RowStatus::IN_RESULTS
            .into_iter()
            .chain([RowStatus::Inflight])
        {
            assert_eq!(RowStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RowStatus::parse("entry"), None);
    }

    #[test]
    fn rows_in_flight_count_as_pending() {
        let mut counts = StatusCounts::default();
        counts.add(RowStatus::Inflight, 2);
        counts.add(RowStatus::Pending, 1);
        counts.add(RowStatus::Issued, 4);
        assert_eq!(counts.pending, 3);
        assert_eq!(counts.get(RowStatus::Inflight), 3);
        assert_eq!(counts.total(), 7);
        assert!(!counts.need_attention());
        counts.add(RowStatus::Invalid, 1);
        assert!(counts.need_attention());
    }

    #[test]
    fn counts_serialise_one_field_per_status() {
        let json = serde_json::to_string(&StatusCounts::default()).unwrap();
        assert_eq!(
            json,
            r#"{"issued":0,"failed":0,"invalid":0,"duplicate":0,"uncertain":0,"pending":0}"#
        );
    }
}
