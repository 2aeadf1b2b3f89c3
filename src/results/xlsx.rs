//! Results as an `.xlsx` workbook (rust_xlsxwriter), chosen when the results path ends in
//! `.xlsx`: one sheet named `results`, the same columns as the CSV, every cell a text cell (ids
//! stay ids, not numbers), written row by row in constant memory (the rows go to a temporary
//! file, not to RAM) and then streamed into the atomic file.

use std::io::Write;

use rust_xlsxwriter::{Workbook, XlsxError};

/// The sheet's name.
pub(crate) const SHEET: &str = "results";
/// Rows a sheet holds, header included.
pub(crate) const MAX_ROWS: u32 = 1_048_576;

/// A results workbook being written.
pub(super) struct XlsxResults {
    workbook: Workbook,
    next_row: u32,
}

impl XlsxResults {
    pub(super) fn new() -> Result<XlsxResults, XlsxError> {
        let mut workbook = Workbook::new();
        workbook
            .add_worksheet_with_constant_memory()?
            .set_name(SHEET)?;
        Ok(XlsxResults {
            workbook,
            next_row: 0,
        })
    }

    /// Appends one row of text cells; false when the sheet is full.
    pub(super) fn write_row<'a>(
        &mut self,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> Result<bool, XlsxError> {
        if self.next_row >= MAX_ROWS {
            return Ok(false);
        }
        let sheet = self.workbook.worksheet_from_index(0)?;
        for (column, cell) in cells.into_iter().enumerate() {
            if !cell.is_empty() {
                sheet.write_string(self.next_row, column as u16, cell)?;
            }
        }
        self.next_row += 1;
        Ok(true)
    }

    /// Writes the finished workbook to `out`.
    pub(super) fn finish(mut self, out: impl Write + Send) -> Result<(), XlsxError> {
        self.workbook.save_to_writer(out)
    }
}
