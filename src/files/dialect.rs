//! The one CSV dialect, as xsv's `config.rs` keeps it: every CSV reader and writer of the crate
//! is built here (comma, `"` quotes, records of any width, no header handling by the parser),
//! with the byte-order mark and the cell neutralising that spreadsheets need.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

/// The UTF-8 byte-order mark: written first with `--bom`, skipped when read.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Read buffer of a CSV reader.
const READ_BUFFER: usize = 64 * 1024;

/// A reader of records of any width; the header row is a record like the others.
pub(crate) fn reader<R: Read>(source: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(READ_BUFFER)
        .from_reader(source)
}

/// A writer of records of any width.
pub(crate) fn writer<W: Write>(sink: W) -> csv::Writer<W> {
    csv::WriterBuilder::new().flexible(true).from_writer(sink)
}

/// Consumes a byte-order mark at the start of `source`, if there is one.
pub(crate) fn skip_bom<R: BufRead>(source: &mut R) -> io::Result<()> {
    if source.fill_buf()?.starts_with(BOM) {
        source.consume(BOM.len());
    }
    Ok(())
}

/// Whether the file at `path` starts with a byte-order mark (false when it cannot be read).
pub(crate) fn starts_with_bom(path: &Path) -> bool {
    let mut head = [0; 3];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == BOM)
}

/// Makes a cell safe to open in a spreadsheet: text that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`.
pub(crate) fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_plain_text_is_not() {
        for cell in ["=SUM(A1)", "+1", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "AXBZ", "2088111111111111", "a=b", "中文"] {
            assert!(matches!(neutralise(cell), Cow::Borrowed(_)), "{cell}");
        }
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let mut out = writer(Vec::new());
        out.write_record(["a", "b,c"]).unwrap();
        out.write_record(["\"q\""]).unwrap();
        let bytes = out.into_inner().unwrap();
        let file = [BOM, &bytes].concat();
        let mut source = io::BufReader::new(file.as_slice());
        skip_bom(&mut source).unwrap();
        let records: Vec<csv::StringRecord> =
            reader(source).records().map(Result::unwrap).collect();
        assert_eq!(records[0], vec!["a", "b,c"]);
        assert_eq!(records[1], vec!["\"q\""]);
    }
}
