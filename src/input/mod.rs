//! The input CSV: streamed reading in UTF-8, UTF-8 with BOM or GBK/GB18030, per-row validation,
//! row identity and idempotency keys.
//!
//! [`InputReader`] hands out one record at a time, so memory stays flat in the number of rows; a
//! malformed file (no recipient column, unbalanced quotes, a row with the wrong number of fields,
//! undecodable bytes) is an [`InputError`] naming the file and line. [`prepare`] turns a record into
//! the object param that is sent, or into the reason the row is invalid.

mod decode;
mod diagnose;
mod error;
mod prepare;
mod reader;
mod request_key;
mod scan;
mod sheet;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use md5::{Digest, Md5};

pub(crate) use crate::files::identity::quick_stat;
pub(crate) use decode::parse_encoding;
pub(crate) use error::InputError;
pub(crate) use prepare::{Prepared, prepare, request_id_for};
pub(crate) use reader::{Header, InputReader, InputRow};
pub(crate) use request_key::request_key;
pub(crate) use sheet::SheetRows;

/// What kind of file the input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    /// An Excel workbook (Office Open XML).
    Xlsx,
}

impl Format {
    /// By the file's extension: `.xlsx` (any case) is a workbook, anything else CSV.
    pub(crate) fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("xlsx") => Format::Xlsx,
            _ => Format::Csv,
        }
    }

    /// Parses `csv` or `xlsx`, as the campaign file spells it.
    pub(crate) fn parse(label: &str) -> Result<Format, String> {
        match label.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            _ => Err(format!("unknown format {label:?} (expected csv or xlsx)")),
        }
    }
}

/// The MD5 digest (lower-case hex) of the file's bytes, read in a streaming fashion; the ledger
/// keeps it to tell "input changed since the last run".
pub(crate) fn fingerprint(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => md5.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(md5.finalize()))
}
