//! The results file as `campaign verify` reads it: a CSV (byte-order mark skipped) or an
//! `.xlsx` workbook's first sheet, record by record with the line each starts on; a record that
//! cannot be read is a finding, not an error.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::findings::{Finding, Findings};
use crate::files::dialect;
use crate::input::{Format, SheetRows};

/// One data record of the results file.
pub(super) struct Record {
    pub(super) line: u64,
    pub(super) cells: Vec<String>,
}

/// Where the results records come from.
enum Records {
    Csv(csv::Reader<BufReader<File>>),
    /// A workbook's first sheet; records are padded to the header's width (a sheet does not
    /// store trailing empty cells).
    Sheet(SheetRows, usize),
}

/// The results file, read record by record.
pub(super) struct ResultsFile {
    records: Records,
    peeked: Option<Record>,
    done: bool,
    utf8_reported: bool,
}

impl ResultsFile {
    /// Opens the file (a CSV skipping a byte-order mark, or an `.xlsx` workbook) and reads its
    /// header row.
    pub(super) fn open(
        path: &Path,
        findings: &mut Findings,
    ) -> std::io::Result<(ResultsFile, Option<Vec<String>>)> {
        let records = if Format::of(path) == Format::Xlsx {
            File::open(path)?;
            Records::Sheet(SheetRows::open(path, None), 0)
        } else {
            let mut buffered = BufReader::new(File::open(path)?);
            dialect::skip_bom(&mut buffered)?;
            Records::Csv(dialect::reader(buffered))
        };
        let mut file = ResultsFile {
            records,
            peeked: None,
            done: false,
            utf8_reported: false,
        };
        let header = file.read(findings).map(|r| r.cells);
        if let (Records::Sheet(_, width), Some(header)) = (&mut file.records, &header) {
            *width = header.len();
        }
        Ok((file, header))
    }

    /// Whether the file's cells were neutralised when written (CSV); a workbook's text cells
    /// are written as they are.
    pub(super) fn neutralised(&self) -> bool {
        matches!(self.records, Records::Csv(_))
    }

    pub(super) fn read(&mut self, findings: &mut Findings) -> Option<Record> {
        if self.done {
            return None;
        }
        let reader = match &mut self.records {
            Records::Csv(reader) => reader,
            Records::Sheet(rows, width) => {
                let record = match rows.next() {
                    Some(Ok(row)) => {
                        let mut cells = vec![String::new(); *width];
                        for (column, cell) in row.cells {
                            if column >= cells.len() {
                                cells.resize(column + 1, String::new());
                            }
                            cells[column] = cell.text().to_owned();
                        }
                        Some(Record {
                            line: row.line,
                            cells,
                        })
                    }
                    Some(Err(e)) => {
                        findings.discrepancy(Finding::new(
                            "results-unreadable",
                            format!("results file: cannot read further: {e}"),
                        ));
                        None
                    }
                    None => None,
                };
                self.done = record.is_none();
                return record;
            }
        };
        let mut record = csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                findings.discrepancy(Finding::new(
                    "results-unreadable",
                    format!("results file: cannot read further: {e}"),
                ));
                self.done = true;
                return None;
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        let cells = record
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        if std::str::from_utf8(record.as_slice()).is_err() && !self.utf8_reported {
            self.utf8_reported = true;
            findings.discrepancy(
                Finding::new(
                    "results-not-utf8",
                    format!(
                        "results line {line}: not UTF-8 text (was the file saved in another \
                         encoding?)"
                    ),
                )
                .line(line),
            );
        }
        Some(Record { line, cells })
    }

    pub(super) fn peek(&mut self, findings: &mut Findings) -> Option<&Record> {
        if self.peeked.is_none() {
            self.peeked = self.read(findings);
        }
        self.peeked.as_ref()
    }

    pub(super) fn take(&mut self, findings: &mut Findings) -> Option<Record> {
        self.peek(findings);
        self.peeked.take()
    }
}
