//! The row-by-row part of `campaign verify`: the input, the ledger and the results file streamed
//! side by side, results records matched to input rows by their `row` column.
//!
//! A results record whose `row` is the next expected row is compared cell by cell. One that
//! claims a later row sets the rows in between aside (they are missing or come later: out of
//! order); one whose row was set aside is out of order; one whose row was already seen appears
//! twice. Rows still set aside at the end are missing. Memory stays flat as long as the results
//! file is in input order, which is what a correct one is.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::bits::Bits;
use crate::files::dialect::neutralise;
use crate::input::{InputReader, InputRow};
use crate::ledger::query::ResultRow;
use crate::results::{COLUMNS, write::outcome_cells};

use super::findings::{Finding, Findings};
use super::results_file::Record;
pub(super) use super::results_file::ResultsFile;
use super::shown;

/// One row as the input and the ledger have it (either may lack it when the input changed).
struct Expected {
    row: i64,
    input: Option<InputRow>,
    ledger: Option<ResultRow>,
}

/// Streams the expected rows against the results file and reports every difference.
pub(super) struct Reconciler<'a> {
    findings: &'a mut Findings,
    results: ResultsFile,
    /// The input's column names.
    names: Vec<String>,
    /// Cells are compared only when the results file has the expected number of columns.
    compare_cells: bool,
    /// The file's cells are neutralised (CSV), or as they are (workbook).
    neutralised: bool,
    /// Rows in the ledger; a results row above it is not in the ledger.
    ledger_rows: i64,
    set_aside: BTreeMap<i64, Expected>,
    /// Rows expected after the results file ended: `(first, last)`, all missing.
    past_the_end: Option<(i64, i64)>,
    seen: Bits,
    last_matched: Option<i64>,
    /// Rows found in the results file and compared.
    pub(super) compared: u64,
}

impl<'a> Reconciler<'a> {
    pub(super) fn new(
        findings: &'a mut Findings,
        results: ResultsFile,
        names: Vec<String>,
        compare_cells: bool,
        ledger_rows: i64,
    ) -> Self {
        let neutralised = results.neutralised();
        Reconciler {
            findings,
            results,
            names,
            compare_cells,
            neutralised,
            ledger_rows,
            set_aside: BTreeMap::new(),
            past_the_end: None,
            // The ledger's rows and a word's worth beyond, as this has always kept.
            seen: Bits::up_to(ledger_rows.max(0) as usize + 64),
            last_matched: None,
            compared: 0,
        }
    }

    /// Streams the input against the ledger's rows (`for_each_result` order) and both against
    /// the results file. Returns false when neither had a row left.
    pub(super) fn expect(
        &mut self,
        input: &mut Option<InputReader>,
        ledger: Option<ResultRow>,
    ) -> bool {
        let input_row = match input.as_mut().and_then(InputReader::next_row) {
            Some(Ok(row)) => Some(row),
            Some(Err(e)) => {
                self.findings.discrepancy(Finding::new(
                    "input-unreadable",
                    format!("input file: cannot read further: {e}"),
                ));
                *input = None;
                None
            }
            None => None,
        };
        let row = match (&input_row, &ledger) {
            (_, Some(l)) => l.row,
            (Some(i), None) => i.row as i64,
            (None, None) => return false,
        };
        self.offer(Expected {
            row,
            input: input_row,
            ledger,
        });
        true
    }

    /// Matches one expected row against the results records that come next.
    fn offer(&mut self, expected: Expected) {
        loop {
            let row_at = self.row_at();
            let Some(next) = self.results.peek(self.findings) else {
                // Nothing can match it any more: keep the number only (a truncated file must not
                // cost memory per row).
                let (first, _) = self.past_the_end.unwrap_or((expected.row, expected.row));
                self.past_the_end = Some((first, expected.row));
                return;
            };
            let claimed = row_of(next, row_at);
            let matched = claimed == Some(expected.row);
            let same = !matched
                && self.compare_cells
                && same_cells(next, &expected, self.names.len(), self.neutralised);
            if matched {
                let record = self.results.take(self.findings).expect("peeked");
                self.compare(&record, &expected, true);
                return;
            }
            if same {
                // Everything but the row number is this row's: the `row` cell was edited.
                let record = self.results.take(self.findings).expect("peeked");
                self.compare(&record, &expected, false);
                return;
            }
            match claimed {
                Some(later) if later > expected.row && later <= self.ledger_rows => {
                    self.set_aside.insert(expected.row, expected);
                    return;
                }
                _ => {
                    let record = self.results.take(self.findings).expect("peeked");
                    self.unexpected(&record, claimed);
                }
            }
        }
    }

    /// A record that is not the next expected row: out of order, repeated or unknown.
    fn unexpected(&mut self, record: &Record, claimed: Option<i64>) {
        let line = record.line;
        match claimed {
            None => {
                let cell = row_cell(record, self.row_at()).unwrap_or("");
                self.findings.discrepancy(
                    Finding::new(
                        "row-not-a-number",
                        format!(
                            "results line {line}: column row holds {}, not a row number of the \
                             input",
                            shown(cell)
                        ),
                    )
                    .line(line)
                    .column("row")
                    .values("", cell),
                );
            }
            Some(row) => {
                if let Some(expected) = self.set_aside.remove(&row) {
                    let after = self
                        .last_matched
                        .map(|r| format!(" after row {r}"))
                        .unwrap_or_default();
                    self.findings.discrepancy(
                        Finding::new(
                            "out-of-order",
                            format!("row {row}: out of order: it is on results line {line}{after}"),
                        )
                        .row(row)
                        .line(line),
                    );
                    self.compare(record, &expected, true);
                } else if self.seen.contains(row) {
                    self.findings.discrepancy(
                        Finding::new(
                            "row-twice",
                            format!(
                                "row {row}: appears twice in the results file (again on line \
                                 {line})"
                            ),
                        )
                        .row(row)
                        .line(line),
                    );
                } else {
                    self.findings.discrepancy(
                        Finding::new(
                            "row-not-in-ledger",
                            format!(
                                "results line {line}: row {row} is not in the ledger, which has \
                                 {} rows",
                                self.ledger_rows
                            ),
                        )
                        .row(row)
                        .line(line),
                    );
                }
            }
        }
    }

    /// Reports what is left: results records after the last expected row, rows never found.
    pub(super) fn finish(mut self) {
        while let Some(record) = self.results.take(self.findings) {
            let claimed = row_of(&record, self.row_at());
            self.unexpected(&record, claimed);
        }
        // Consecutive missing rows are reported as one range.
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        let tail = self.past_the_end.map(|(first, last)| first..=last);
        for row in self
            .set_aside
            .keys()
            .copied()
            .chain(tail.into_iter().flatten())
        {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == row => *last = row,
                _ => ranges.push((row, row)),
            }
        }
        for (first, last) in ranges {
            let message = if first == last {
                format!("row {first}: missing from the results file")
            } else {
                format!(
                    "rows {first} to {last}: missing from the results file ({} rows)",
                    last - first + 1
                )
            };
            self.findings
                .discrepancy(Finding::new("missing-rows", message).rows(first, last));
        }
    }

    fn row_at(&self) -> Option<usize> {
        self.compare_cells.then_some(self.names.len())
    }

    fn compare(&mut self, record: &Record, expected: &Expected, row_cell_ok: bool) {
        let row = expected.row;
        self.compared += 1;
        self.seen.insert(row);
        self.last_matched = Some(row);
        if !row_cell_ok {
            let cell = row_cell(record, self.row_at()).unwrap_or("");
            self.findings.discrepancy(
                Finding::new(
                    "cell",
                    format!(
                        "row {row}, column row: should be {row}, the results file has {} (line {})",
                        shown(cell),
                        record.line
                    ),
                )
                .row(row)
                .line(record.line)
                .column("row")
                .values(row.to_string(), cell),
            );
        }
        if !self.compare_cells {
            return;
        }
        let width = self.names.len() + COLUMNS.len();
        if record.cells.len() != width {
            self.findings.discrepancy(
                Finding::new(
                    "row-width",
                    format!(
                        "row {row}: has {} columns on results line {}, the header {width}",
                        record.cells.len(),
                        record.line
                    ),
                )
                .row(row)
                .line(record.line)
                .values(width.to_string(), record.cells.len().to_string()),
            );
            return;
        }
        match (&expected.input, &expected.ledger) {
            (None, _) => self.findings.discrepancy(
                Finding::new(
                    "row-not-in-input",
                    format!(
                        "row {row}: in the ledger and the results file, but no longer in the \
                         input file"
                    ),
                )
                .row(row)
                .line(record.line),
            ),
            (_, None) => self.findings.discrepancy(
                Finding::new(
                    "row-not-in-ledger",
                    format!(
                        "row {row}: in the input file, but not in the ledger (the input changed \
                         since the last run)"
                    ),
                )
                .row(row)
                .line(record.line),
            ),
            _ => {}
        }
        if let Some(input) = &expected.input {
            for (i, cell) in input.record.iter().enumerate() {
                let want = as_written(cell, self.neutralised);
                if record.cells[i] != want {
                    self.findings.discrepancy(
                        Finding::new(
                            "cell",
                            format!(
                                "row {row}, column {}: the input has {}, the results file has {}",
                                self.names[i],
                                shown(&want),
                                shown(&record.cells[i])
                            ),
                        )
                        .row(row)
                        .line(record.line)
                        .column(self.names[i].clone())
                        .values(want, record.cells[i].clone()),
                    );
                }
            }
        }
        if let Some(ledger) = &expected.ledger {
            let outcome = outcome_cells(ledger);
            // Index 0 is `row`, which is how the record was matched.
            for (j, cell) in outcome.iter().enumerate().skip(1) {
                let want = as_written(cell, self.neutralised);
                let found = &record.cells[self.names.len() + j];
                if *found != want {
                    self.findings.discrepancy(
                        Finding::new(
                            "outcome",
                            format!(
                                "row {row}, column {}: the ledger has {}, the results file has {}",
                                COLUMNS[j],
                                shown(&want),
                                shown(found)
                            ),
                        )
                        .row(row)
                        .line(record.line)
                        .column(COLUMNS[j])
                        .values(want, found.clone()),
                    );
                }
            }
        }
    }
}

/// The `row` cell: after the input's columns when the header says how many there are, else
/// the first of the last eleven (an input may have a column named like one of ours).
fn row_cell(record: &Record, row_at: Option<usize>) -> Option<&str> {
    let at = match row_at {
        Some(at) => at,
        None => record.cells.len().checked_sub(COLUMNS.len())?,
    };
    record.cells.get(at).map(String::as_str)
}

fn row_of(record: &Record, row_at: Option<usize>) -> Option<i64> {
    row_cell(record, row_at)?.trim().parse().ok()
}

/// A cell as the writer puts it in the file: neutralised in a CSV, as it is in a workbook.
pub(super) fn as_written(cell: &str, neutralised: bool) -> Cow<'_, str> {
    if neutralised {
        neutralise(cell)
    } else {
        Cow::Borrowed(cell)
    }
}

/// The cells the results file should hold for `expected`, as the writer puts them.
fn expected_cells(expected: &Expected, neutralised: bool) -> Option<Vec<String>> {
    let (input, ledger) = (expected.input.as_ref()?, expected.ledger.as_ref()?);
    let outcome = outcome_cells(ledger);
    Some(
        input
            .record
            .iter()
            .chain(outcome.iter().map(String::as_str))
            .map(|c| as_written(c, neutralised).into_owned())
            .collect(),
    )
}

/// Whether a record holds exactly the cells of `expected`, its `row` cell aside.
fn same_cells(record: &Record, expected: &Expected, row_at: usize, neutralised: bool) -> bool {
    expected_cells(expected, neutralised).is_some_and(|cells| {
        cells.len() == record.cells.len()
            && cells
                .iter()
                .zip(&record.cells)
                .enumerate()
                .all(|(i, (want, found))| i == row_at || want == found)
    })
}
