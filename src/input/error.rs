//! Why an input file cannot be read. Every message names the file and the line, and the column
//! when one is to blame; a malformed file stops the run before anything is sent.

use std::io;
use std::path::PathBuf;

/// A malformed or unreadable input file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:1: the file is empty: a header row is required", path.display())]
    Empty { path: PathBuf },
    #[error(
        "{}:{line}: no `{expected}` column (the recipient of {api}); columns found: {}",
        path.display(),
        found.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
    )]
    MissingRecipient {
        path: PathBuf,
        line: u64,
        expected: &'static str,
        api: &'static str,
        found: Vec<String>,
    },
    #[error("{}:{line}: column `{name}` appears twice (columns {first} and {second})", path.display())]
    DuplicateColumn {
        path: PathBuf,
        line: u64,
        name: String,
        first: usize,
        second: usize,
    },
    #[error(
        "{}:{line}: unbalanced quotes: the quoted field opened on this line is never closed",
        path.display()
    )]
    UnbalancedQuote { path: PathBuf, line: u64 },
    #[error(
        "{}:{line}: {found} fields where the header has {expected}: the file looks mangled \
         (a shifted, split or merged row)",
        path.display()
    )]
    FieldCount {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error(
        "{}:{line}{}: bytes that are not valid {encoding} ({how}); {advice}",
        path.display(),
        column.as_ref().map(|c| format!(": column `{c}`")).unwrap_or_default()
    )]
    Undecodable {
        path: PathBuf,
        line: u64,
        column: Option<String>,
        encoding: &'static str,
        /// `"given"`, `"detected"` or `"detected from its byte-order mark"`.
        how: &'static str,
        /// What would read the file: an encoding, or where it mixes encodings.
        advice: String,
    },
    /// Some lines are UTF-8 and others are not; found before reading a file read as GBK or
    /// GB18030 (detected, given, or given beside a UTF-8 BOM).
    #[error("{}:{line}: {message}", path.display())]
    MixedEncodings {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// A legacy encoding was given for a file whose lines are UTF-8.
    #[error(
        "{}:{line}: this line is UTF-8 (and no line is {encoding}), but the campaign says \
         encoding = {encoding}: remove `encoding` (or --encoding), and the file is read as UTF-8",
        path.display()
    )]
    Utf8ReadAsLegacy {
        path: PathBuf,
        line: u64,
        encoding: &'static str,
    },
    #[error(
        "{}:1: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as CSV UTF-8 \
         or GBK",
        path.display()
    )]
    Utf16 { path: PathBuf },
    #[error(
        "{}: this is a workbook (.xlsx), not a CSV file: name it .xlsx or set format = \"xlsx\" \
         in the campaign file",
        path.display()
    )]
    NotCsv { path: PathBuf },
    #[error("{}: cannot read the workbook: {message}", path.display())]
    Workbook { path: PathBuf, message: String },
    #[error(
        "{}: no sheet named {sheet:?}; sheets found: {}",
        path.display(),
        found.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
    )]
    NoSheet {
        path: PathBuf,
        sheet: String,
        found: Vec<String>,
    },
    #[error(
        "{}:{line}: a value in column {column}, beyond the header's last column {last}: give \
         the column a header, or delete the value",
        path.display()
    )]
    BeyondHeader {
        path: PathBuf,
        line: u64,
        column: String,
        last: String,
    },
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
}
