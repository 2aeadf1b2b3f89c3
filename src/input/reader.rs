//! Streaming the input, CSV or `.xlsx`: one record at a time, whatever the file's size.
//!
//! For CSV the pipeline is file → [`sniff`](super::decode) (encoding) → strict decoder (legacy
//! encodings only; UTF-8 is validated by the CSV reader per record) → [`Scanner`] (record lines,
//! unclosed quotes) → `csv::Reader`. For a workbook it is [`SheetRows`]; either way the records
//! that come out are the same, so every rule after this (validation, identity, duplicates,
//! resume, verify) is the same.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, UTF_8};

use super::decode::{Origin, Sniffed, StrictDecoder, Undecodable, sniff};
use super::diagnose;
use super::scan::{Scanner, UnclosedQuote};
use super::sheet::{SheetRows, column_letter};
use super::{Format, InputError};
use crate::top::ApiSpec;

/// The header row, and where the columns that matter are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Column names exactly as in the file.
    pub(crate) columns: Vec<String>,
    /// The physical line of the header row.
    pub(crate) line: u64,
    /// Index of the recipient column (`open_id` or `alipay_id`).
    pub(crate) recipient: usize,
    /// Per-row param columns `(field name, column index)`, in the API's field order; includes
    /// `request_id` for the idempotent API when the file has that column.
    pub(crate) params: Vec<(&'static str, usize)>,
}

impl Header {
    fn new(
        path: &Path,
        line: u64,
        columns: Vec<String>,
        api: &'static ApiSpec,
    ) -> Result<Self, InputError> {
        // Names are matched trimmed: spreadsheet headers often carry stray spaces.
        let names: Vec<&str> = columns.iter().map(|c| c.trim()).collect();
        for (second, name) in names.iter().enumerate() {
            if let Some(first) = names[..second]
                .iter()
                .position(|n| !n.is_empty() && n == name)
            {
                return Err(InputError::DuplicateColumn {
                    path: path.to_owned(),
                    line,
                    name: (*name).to_owned(),
                    first: first + 1,
                    second: second + 1,
                });
            }
        }
        let index = |field: &str| names.iter().position(|n| *n == field);
        let Some(recipient) = index(api.recipient) else {
            return Err(InputError::MissingRecipient {
                path: path.to_owned(),
                line,
                expected: api.recipient,
                api: api.method,
                found: columns,
            });
        };
        let params = api
            .param_fields()
            .filter_map(|f| index(f.name).map(|i| (f.name, i)))
            .collect();
        Ok(Header {
            columns,
            line,
            recipient,
            params,
        })
    }
}

/// One data record.
#[derive(Clone, Debug)]
pub(crate) struct InputRow {
    /// 1-based data row number (the header is not counted; blank lines are skipped).
    pub(crate) row: u64,
    /// Physical line (1-based) where the record starts.
    pub(crate) line: u64,
    /// The decoded fields, exactly as in the file.
    pub(crate) record: csv::StringRecord,
    /// Why the row is invalid whatever its text says, when the reader knows (a workbook cell
    /// that is a date or an error in the recipient or a param column).
    pub(crate) problem: Option<String>,
}

/// A record as read: its line, its fields, and why it is invalid when the reader knows.
type ReadRecord = (u64, csv::StringRecord, Option<String>);

/// Where records come from.
enum Source {
    Csv(csv::Reader<Scanner<Box<dyn Read + Send>>>),
    Sheet(SheetRows),
}

/// A streaming reader of the input CSV.
pub(crate) struct InputReader {
    path: PathBuf,
    encoding: &'static Encoding,
    origin: Origin,
    bom: bool,
    header: Header,
    source: Source,
    rows: u64,
    /// The longest record's text so far (up to 4 KiB): the next record is allocated at this size.
    record_bytes: usize,
    done: bool,
}

impl std::fmt::Debug for InputReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputReader")
            .field("path", &self.path)
            .field("encoding", &self.encoding.name())
            .field("header", &self.header)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl InputReader {
    /// Opens the file as its extension says (`.xlsx`: the first sheet, else CSV), settles a
    /// CSV's encoding (given, else detected) and reads the header row.
    #[cfg(test)]
    pub(crate) fn open(
        path: &Path,
        encoding: Option<&'static Encoding>,
        api: &'static ApiSpec,
    ) -> Result<InputReader, InputError> {
        InputReader::open_as(path, encoding, None, None, api)
    }

    /// [`InputReader::open`] with the format (default: by extension) and, for a workbook, the
    /// sheet (default: the first) given.
    pub(crate) fn open_as(
        path: &Path,
        encoding: Option<&'static Encoding>,
        format: Option<Format>,
        sheet: Option<&str>,
        api: &'static ApiSpec,
    ) -> Result<InputReader, InputError> {
        let source = match format.unwrap_or_else(|| Format::of(path)) {
            Format::Xlsx => {
                let reader = InputReader::new(
                    path,
                    UTF_8,
                    Origin::Given,
                    true,
                    Source::Sheet(SheetRows::open(path, sheet)),
                );
                return reader.with_header(api);
            }
            Format::Csv => path,
        };
        InputReader::open_csv(source, encoding, api)
    }

    fn new(
        path: &Path,
        encoding: &'static Encoding,
        origin: Origin,
        bom: bool,
        source: Source,
    ) -> InputReader {
        InputReader {
            path: path.to_owned(),
            encoding,
            origin,
            bom,
            header: Header {
                columns: Vec::new(),
                line: 1,
                recipient: 0,
                params: Vec::new(),
            },
            source,
            rows: 0,
            record_bytes: 64,
            done: false,
        }
    }

    /// Reads the header row.
    fn with_header(mut self, api: &'static ApiSpec) -> Result<InputReader, InputError> {
        let (line, record, _) = match self.read() {
            None => {
                return Err(InputError::Empty {
                    path: self.path.clone(),
                });
            }
            Some(result) => result?,
        };
        let columns = record.iter().map(str::to_owned).collect();
        self.header = Header::new(&self.path, line, columns, api)?;
        Ok(self)
    }

    fn open_csv(
        path: &Path,
        encoding: Option<&'static Encoding>,
        api: &'static ApiSpec,
    ) -> Result<InputReader, InputError> {
        let io_err = |source| InputError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let (mut encoding, mut origin, bom, head) =
            match sniff(&mut file, encoding).map_err(io_err)? {
                Sniffed::Utf16 => return Err(InputError::Utf16 { path: path.into() }),
                Sniffed::Text {
                    encoding,
                    origin,
                    bom,
                    head,
                } => (encoding, origin, bom, head),
            };
        if head.get_ref().starts_with(b"PK\x03\x04") {
            return Err(InputError::NotCsv { path: path.into() });
        }
        if encoding != UTF_8 {
            // GBK and GB18030 decode almost any bytes, so a UTF-8 line in such a file would be
            // read as nonsense without an error: the lines decide before anything is read. (A
            // BOM says UTF-8 while the campaign says otherwise; or the first 64 KiB were not
            // UTF-8 but a later line is; or the campaign names a legacy encoding for a UTF-8
            // file.)
            let lines = diagnose::classify(path).map_err(io_err)?;
            if let Some(mixed) = lines.mixed() {
                return Err(InputError::MixedEncodings {
                    path: path.into(),
                    line: mixed.utf8.max(mixed.other),
                    message: mixed.to_string(),
                });
            }
            match (lines.utf8, lines.other) {
                (Some(_), None) if bom => (encoding, origin) = (UTF_8, Origin::Bom),
                (Some(_), None) if origin == Origin::Detected => encoding = UTF_8,
                (Some(line), None) => {
                    return Err(InputError::Utf8ReadAsLegacy {
                        path: path.into(),
                        line,
                        encoding: encoding.name(),
                    });
                }
                _ => {}
            }
        }
        let source = head.chain(file);
        let text: Box<dyn Read + Send> = if encoding == UTF_8 {
            Box::new(source)
        } else {
            Box::new(StrictDecoder::new(source, encoding))
        };
        let csv = crate::files::dialect::reader(Scanner::new(text));
        InputReader::new(path, encoding, origin, bom, Source::Csv(csv)).with_header(api)
    }

    /// The header row.
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// The encoding the file is read with.
    #[cfg(test)]
    pub(crate) fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    /// Whether results made from this file should start with a UTF-8 byte-order mark by
    /// default: when it had one, is GBK/GB18030, or is a workbook. A spreadsheet program in a
    /// Chinese locale reads a CSV without the mark in the legacy encoding, so UTF-8 text would
    /// come out garbled.
    pub(crate) fn wants_bom(&self) -> bool {
        self.bom || self.encoding != UTF_8
    }

    /// The next data record; `None` at the end or after an error (a malformed file stops).
    pub(crate) fn next_row(&mut self) -> Option<Result<InputRow, InputError>> {
        let (line, record, problem) = match self.read()? {
            Ok(read) => read,
            Err(e) => return Some(Err(e)),
        };
        if record.len() != self.header.columns.len() {
            self.done = true;
            return Some(Err(InputError::FieldCount {
                path: self.path.clone(),
                line,
                expected: self.header.columns.len(),
                found: record.len(),
            }));
        }
        self.rows += 1;
        Some(Ok(InputRow {
            row: self.rows,
            line,
            record,
            problem,
        }))
    }

    /// Reads one record with the line it starts on and, for a workbook, why it is invalid.
    fn read(&mut self) -> Option<Result<ReadRecord, InputError>> {
        if self.done {
            return None;
        }
        let csv = match &mut self.source {
            Source::Csv(csv) => csv,
            Source::Sheet(_) => {
                let read = self.read_sheet();
                self.done = !matches!(read, Some(Ok(_)));
                return read;
            }
        };
        let width = self.header.columns.len();
        let mut record = csv::StringRecord::with_capacity(self.record_bytes, width);
        let result = csv.read_record(&mut record);
        self.record_bytes = self
            .record_bytes
            .max(record.as_byte_record().as_slice().len());
        let line = csv.get_mut().next_record_line();
        match result {
            Ok(true) => Some(Ok((line.unwrap_or(1), record, None))),
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.error(e, line)))
            }
        }
    }

    /// The next row of a workbook as a record of the header's width (the header row itself:
    /// up to its last non-empty cell); a value beyond the header's last column stops the run.
    fn read_sheet(&mut self) -> Option<Result<ReadRecord, InputError>> {
        let Source::Sheet(rows) = &mut self.source else {
            return None;
        };
        let row = match rows.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        let header = &self.header;
        let width = match header.columns.len() {
            0 => row.cells.iter().map(|(c, _)| c + 1).max().unwrap_or(0),
            width => width,
        };
        let mut cells = vec![""; width];
        let mut problem = None;
        for (column, cell) in &row.cells {
            let Some(slot) = cells.get_mut(*column) else {
                return Some(Err(InputError::BeyondHeader {
                    path: self.path.clone(),
                    line: row.line,
                    column: column_letter(*column),
                    last: column_letter(width.saturating_sub(1)),
                }));
            };
            *slot = cell.text();
            let checked =
                *column == header.recipient || header.params.iter().any(|(_, at)| at == column);
            if problem.is_none() && checked && !header.columns.is_empty() {
                problem = cell.problem(header.columns[*column].trim());
            }
        }
        Some(Ok((row.line, csv::StringRecord::from(cells), problem)))
    }

    fn error(&self, e: csv::Error, record_line: Option<u64>) -> InputError {
        let path = self.path.clone();
        let line = record_line
            .or_else(|| e.position().map(csv::Position::line))
            .unwrap_or(1);
        let how = self.origin.describe();
        let advice = || diagnose::advise(&self.path, self.encoding).to_string();
        let message = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(source) => {
                let payload = source.get_ref();
                if let Some(q) = payload.and_then(|p| p.downcast_ref::<UnclosedQuote>()) {
                    InputError::UnbalancedQuote { path, line: q.line }
                } else if let Some(u) = payload.and_then(|p| p.downcast_ref::<Undecodable>()) {
                    InputError::Undecodable {
                        path,
                        line: u.line,
                        column: None,
                        encoding: self.encoding.name(),
                        how,
                        advice: advice(),
                    }
                } else {
                    InputError::Io { path, source }
                }
            }
            csv::ErrorKind::Utf8 { err, .. } => InputError::Undecodable {
                path,
                line,
                column: Some(
                    self.header
                        .columns
                        .get(err.field())
                        .cloned()
                        .unwrap_or_else(|| format!("#{}", err.field() + 1)),
                ),
                encoding: self.encoding.name(),
                how,
                advice: advice(),
            },
            _ => InputError::Csv {
                path,
                line,
                message,
            },
        }
    }
}
