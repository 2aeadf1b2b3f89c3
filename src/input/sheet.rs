//! Reading the input from an `.xlsx` workbook (calamine): the first sheet or a named one, one row
//! at a time, with every cell as the text it holds.
//!
//! A thread owns the workbook and streams the sheet's cells (calamine's cell reader) into
//! records over a bounded channel, so memory does not grow with the rows; only the workbook's
//! shared-strings table is held whole (docs/benchmarks.md). Cells become text as a spreadsheet
//! shows their value: whole numbers without a decimal point or exponent (a 16-digit id stored as
//! a number stays 16 digits), other numbers in their shortest exact form, TRUE/FALSE, dates as
//! `YYYY-MM-DD` (with ` HH:MM:SS` when they have a time), errors as `#N/A` and the like; a
//! formula cell gives its cached value. A date, an error or a number too large to keep every
//! digit in the recipient or a param column makes the row `invalid`, with the reason.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{DataRef, Reader, Xlsx};

use super::InputError;

/// Rows buffered between the reading thread and the consumer.
const CHANNEL_ROWS: usize = 256;
/// The largest whole number an f64 holds exactly; above it a number may have lost digits.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// A cell's text, and whether it is something other than a plain value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    /// A date or time, rendered.
    Date(String),
    /// A spreadsheet error such as `#N/A`.
    Error(String),
    /// A whole number too large for a spreadsheet to hold every digit.
    Inexact(String),
}

impl Cell {
    pub(crate) fn text(&self) -> &str {
        match self {
            Cell::Text(t) | Cell::Date(t) | Cell::Error(t) | Cell::Inexact(t) => t,
        }
    }

    /// Why this cell cannot be a recipient id or a param, if it cannot.
    pub(crate) fn problem(&self, column: &str) -> Option<String> {
        match self {
            Cell::Text(_) => None,
            Cell::Date(t) => Some(format!(
                "{column}: the cell is a date ({t}), not an id or a value: format the column as \
                 text and type it again"
            )),
            Cell::Error(t) => Some(format!("{column}: the cell holds the error {t}")),
            Cell::Inexact(t) => Some(format!(
                "{column}: the number {t} is too large for a spreadsheet to keep every digit: \
                 format the column as text and type it again"
            )),
        }
    }
}

/// One row of the sheet: its number (1-based, as the spreadsheet shows it) and its non-empty
/// cells with their 0-based column.
pub(crate) struct SheetRow {
    pub(crate) line: u64,
    pub(crate) cells: Vec<(usize, Cell)>,
}

/// The rows of one sheet, read by a thread.
pub(crate) struct SheetRows {
    rows: Receiver<Result<SheetRow, InputError>>,
}

impl SheetRows {
    /// Opens the workbook and starts reading `sheet` (default: the first).
    pub(crate) fn open(path: &Path, sheet: Option<&str>) -> SheetRows {
        let (tx, rows) = sync_channel(CHANNEL_ROWS);
        let (path, sheet) = (path.to_owned(), sheet.map(str::to_owned));
        std::thread::spawn(move || {
            if let Err(e) = stream(&path, sheet.as_deref(), &tx) {
                let _ = tx.send(Err(e));
            }
        });
        SheetRows { rows }
    }

    /// The next row with at least one non-empty cell.
    pub(crate) fn next(&mut self) -> Option<Result<SheetRow, InputError>> {
        self.rows.recv().ok()
    }
}

/// Reads the sheet and sends its rows; stops quietly when the receiver is gone.
fn stream(
    path: &PathBuf,
    sheet: Option<&str>,
    tx: &SyncSender<Result<SheetRow, InputError>>,
) -> Result<(), InputError> {
    let workbook_error = |e: &dyn std::fmt::Display| InputError::Workbook {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut workbook: Xlsx<BufReader<File>> = match calamine::open_workbook(path) {
        Ok(workbook) => workbook,
        Err(calamine::XlsxError::Io(source)) => {
            return Err(InputError::Io {
                path: path.clone(),
                source,
            });
        }
        Err(e) => return Err(workbook_error(&e)),
    };
    let names = workbook.sheet_names();
    let name = match sheet {
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .cloned()
            .ok_or_else(|| InputError::NoSheet {
                path: path.clone(),
                sheet: wanted.to_owned(),
                found: names.clone(),
            })?,
        None => names.first().cloned().ok_or_else(|| InputError::Workbook {
            path: path.clone(),
            message: "the workbook has no sheet".to_owned(),
        })?,
    };
    let mut cells = workbook
        .worksheet_cells_reader(&name)
        .map_err(|e| workbook_error(&e))?;
    let mut row: Option<SheetRow> = None;
    loop {
        let cell = cells.next_cell().map_err(|e| workbook_error(&e))?;
        let Some(cell) = cell else { break };
        let (r, c) = cell.get_position();
        let Some(value) = convert(cell.get_value()) else {
            continue;
        };
        let line = u64::from(r) + 1;
        if row.as_ref().is_some_and(|row| row.line != line)
            && tx.send(Ok(row.take().expect("checked"))).is_err()
        {
            return Ok(());
        }
        row.get_or_insert_with(|| SheetRow {
            line,
            cells: Vec::new(),
        })
        .cells
        .push((c as usize, value));
    }
    if let Some(row) = row {
        let _ = tx.send(Ok(row));
    }
    Ok(())
}

/// The cell's text; `None` for an empty cell (formatting only, or an empty string).
fn convert(value: &DataRef<'_>) -> Option<Cell> {
    let cell = match value {
        DataRef::Empty => return None,
        DataRef::String(s) => Cell::Text(s.clone()),
        DataRef::SharedString(s) => Cell::Text((*s).to_owned()),
        DataRef::Int(i) => Cell::Text(i.to_string()),
        DataRef::Float(f) => number(*f),
        DataRef::Bool(b) => Cell::Text(if *b { "TRUE" } else { "FALSE" }.to_owned()),
        DataRef::DateTime(d) if d.is_duration() => number(d.as_f64()),
        DataRef::DateTime(d) => {
            let (y, m, day, h, min, s, _) = d.to_ymd_hms_milli();
            Cell::Date(if (h, min, s) == (0, 0, 0) {
                format!("{y:04}-{m:02}-{day:02}")
            } else {
                format!("{y:04}-{m:02}-{day:02} {h:02}:{min:02}:{s:02}")
            })
        }
        DataRef::DateTimeIso(s) => Cell::Date(s.clone()),
        DataRef::DurationIso(s) => Cell::Text(s.clone()),
        DataRef::Error(e) => Cell::Error(e.to_string()),
    };
    match &cell {
        Cell::Text(t) if t.is_empty() => None,
        _ => Some(cell),
    }
}

/// A number as text: whole numbers as integers, others in their shortest exact form.
fn number(f: f64) -> Cell {
    if f.fract() == 0.0 && f.abs() < EXACT {
        Cell::Text(format!("{}", f as i64))
    } else if f.fract() == 0.0 && f.is_finite() {
        Cell::Inexact(format!("{f}"))
    } else {
        Cell::Text(format!("{f}"))
    }
}

/// The spreadsheet's name of a 0-based column: A, B, …, Z, AA, ….
pub(crate) fn column_letter(mut column: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (column % 26) as u8);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_cell_shows_them() {
        assert_eq!(
            number(2088123456789012.0),
            Cell::Text("2088123456789012".into())
        );
        assert_eq!(number(7.0), Cell::Text("7".into()));
        assert_eq!(number(-3.0), Cell::Text("-3".into()));
        assert_eq!(number(7.5), Cell::Text("7.5".into()));
        assert_eq!(number(0.1), Cell::Text("0.1".into()));
        assert_eq!(number(1e20), Cell::Inexact("100000000000000000000".into()));
    }

    #[test]
    fn columns_are_lettered_like_a_spreadsheet() {
        let letters: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_letter)
            .collect();
        assert_eq!(
            letters,
            ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]
        );
    }
}
