//! Writing the results: every input row in input order with its columns as they were, then the
//! outcome columns; CSV, or an `.xlsx` workbook when the path ends in `.xlsx` ([`super::xlsx`]);
//! atomically (temporary file, then rename), its MD5 recorded in the ledger.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::campaign::Campaign;
use crate::domain::{StatusCounts, now_rfc3339};
use crate::files::AtomicFile;
use crate::files::dialect::{self, BOM, neutralise};
use crate::files::digest::HashingWriter;
use crate::input::{Format, InputError};
use crate::ledger::query::ResultRow;
use crate::ledger::{Ledger, LedgerError};

use super::xlsx::XlsxResults;

/// The columns appended after the input's own.
pub(crate) const COLUMNS: [&str; 11] = [
    "row",
    "status",
    "attempts",
    "request_id",
    "issued_id",
    "detail",
    "error_code",
    "error_sub_code",
    "error_message",
    "top_request_id",
    "finished_at",
];

/// Results failures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResultsError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Xlsx { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{path}: the input file changed since the ledger read it ({what}); the results would pair \
         rows with the wrong outcomes. Run `campaign run` to re-read it (rows already sent are \
         not sent again), or restore the file"
    )]
    InputChanged { path: PathBuf, what: String },
}

/// The outcome columns of one row, in [`COLUMNS`] order.
pub(crate) fn outcome_cells(r: &ResultRow) -> [String; 11] {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        r.row.to_string(),
        r.status.as_str().to_owned(),
        r.attempts.to_string(),
        text(&r.request_id),
        text(&r.issued_id),
        text(&r.detail),
        text(&r.error_code),
        text(&r.error_sub_code),
        text(&r.error_message),
        text(&r.top_request_id),
        text(&r.finished_at),
    ]
}

/// What was written: the digest recorded in the ledger and the rows per status, tallied on the
/// way (so the summary needs no second pass over the ledger).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    /// MD5 of the file's bytes, lower-case hex.
    pub(crate) digest: String,
    /// Rows per status.
    pub(crate) counts: StatusCounts,
    /// Whether the file starts with a UTF-8 byte-order mark.
    pub(crate) bom: bool,
    /// Whether the file was written now; `false` when the one on disk was already up to date.
    pub(crate) rewritten: bool,
}

impl Written {
    /// Data rows written.
    pub(crate) fn rows(&self) -> u64 {
        self.counts.total()
    }
}

/// Writes the results file for the current input from the ledger, atomically, and records its
/// MD5 in the ledger. A CSV starts with a byte-order mark when the campaign says so, else when
/// the input [wants one](crate::input::InputReader::wants_bom).
pub(crate) fn write_results(
    campaign: &Campaign,
    ledger: &mut Ledger,
    path: &Path,
) -> Result<Written, ResultsError> {
    let io = |source| ResultsError::Io {
        path: path.to_owned(),
        source,
    };
    let now = crate::input::fingerprint(&campaign.input).map_err(|source| ResultsError::Io {
        path: campaign.input.clone(),
        source,
    })?;
    if let Some(recorded) = ledger.meta("input_fingerprint")?
        && recorded != now
    {
        // The remedy printed is "run again": the next run must read the file in full, whatever
        // its size and times say.
        ledger.set_meta("input_stat", "")?;
        return Err(changed(
            &campaign.input,
            format!("md5 {recorded}, now {now}"),
        ));
    }
    let mut input = campaign.open_input()?;
    let xlsx = Format::of(path) == Format::Xlsx;
    let bom = !xlsx && campaign.bom.unwrap_or_else(|| input.wants_bom());
    let mut digesting = HashingWriter::new(AtomicFile::create(path).map_err(io)?);
    if bom {
        digesting.write_all(BOM).map_err(io)?;
    }
    let xlsx_err = |e: rust_xlsxwriter::XlsxError| ResultsError::Xlsx {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut out = if xlsx {
        Sink::Xlsx(Box::new(XlsxResults::new().map_err(xlsx_err)?), digesting)
    } else {
        Sink::Csv(Box::new(dialect::writer(digesting)))
    };
    let header = input.header().columns.iter().map(String::as_str);
    out.write(header.chain(COLUMNS), path)?;

    let mut counts = StatusCounts::default();
    let written = ledger.for_each_result(|result| {
        counts.add(result.status, 1);
        let row = match input.next_row() {
            Some(Ok(row)) if row.row as i64 == result.row => row,
            Some(Err(e)) => return Err(ResultsError::Input(e)),
            _ => {
                return Err(changed(
                    &campaign.input,
                    format!("row {} differs", result.row),
                ));
            }
        };
        let cells = outcome_cells(&result);
        out.write(
            row.record.iter().chain(cells.iter().map(String::as_str)),
            path,
        )
    });
    let finished = written.and_then(|()| match input.next_row() {
        None => Ok(()),
        Some(Err(e)) => Err(ResultsError::Input(e)),
        Some(Ok(extra)) => Err(changed(
            &campaign.input,
            format!("row {} is new", extra.row),
        )),
    });
    if let Err(ResultsError::InputChanged { .. }) = &finished {
        ledger.set_meta("input_stat", "")?;
    }
    // Dropped on an error: the temporary file goes, the previous results stay.
    finished?;
    let (file, digest) = out.finish(path)?.finish().map_err(io)?;
    file.commit().map_err(io)?;
    ledger.set_meta("results_md5", &digest)?;
    ledger.set_meta("results_path", &path.display().to_string())?;
    ledger.set_meta("results_written_at", &now_rfc3339())?;
    // What the file looked like when written: a run reads it back only if this changed (see
    // `audit::refuse_ledger_behind_results`).
    if let Ok(stat) = crate::input::quick_stat(path) {
        ledger.set_meta("results_stat", &stat)?;
        ledger.set_meta(FRESH_KEY, &fresh_mark(&stat, path, bom))?;
    }
    Ok(Written {
        digest,
        counts,
        bom,
        rewritten: true,
    })
}

/// The `meta` key of the mark that says the results file on disk shows the ledger as it is.
/// Any change to an identity's state deletes it (a trigger on `entries`, see the ledger's
/// schema), and so does a new reading of the input.
pub(crate) const FRESH_KEY: &str = "results_fresh";

/// What identifies a results file as written: its size, times and inode (which no edit or
/// replacement keeps), where it is, and whether it starts with a byte-order mark.
fn fresh_mark(stat: &str, path: &Path, bom: bool) -> String {
    format!("{stat}|{bom}|{}", path.display())
}

/// The results file as the ledger last wrote it, when it is still up to date: nothing it shows
/// changed since (no identity changed state, the input was not read again and is the same file
/// with the same size and times), the file on disk is the one written (same size, times and
/// inode) at the same path, and its byte-order mark is still the one wanted. Then a run that
/// changed nothing leaves a large results file alone instead of writing it again.
pub(crate) fn unchanged_results(
    campaign: &Campaign,
    ledger: &Ledger,
    path: &Path,
) -> Result<Option<Written>, ResultsError> {
    let (Some(mark), Some(digest)) = (ledger.meta(FRESH_KEY)?, ledger.meta("results_md5")?) else {
        return Ok(None);
    };
    let (Ok(stat), Ok(input_stat)) = (
        crate::input::quick_stat(path),
        crate::input::quick_stat(&campaign.input),
    ) else {
        return Ok(None);
    };
    if ledger.meta("input_stat")?.as_deref() != Some(input_stat.as_str()) {
        return Ok(None);
    }
    let xlsx = Format::of(path) == Format::Xlsx;
    let bom = !xlsx && campaign.bom.unwrap_or_else(|| wants_bom(campaign));
    if mark != fresh_mark(&stat, path, bom) {
        return Ok(None);
    }
    Ok(Some(Written {
        digest,
        counts: ledger.status_counts()?,
        bom,
        rewritten: false,
    }))
}

/// Whether the input asks for a byte-order mark in the results (`false` if it cannot be read:
/// then the mark does not match and the results are written, which reports the error).
fn wants_bom(campaign: &Campaign) -> bool {
    campaign.open_input().is_ok_and(|input| input.wants_bom())
}

/// Where the rows go: a CSV writer (cells neutralised), or a workbook (text cells need no
/// neutralising: a spreadsheet never runs them) streamed into the digesting file at the end.
enum Sink {
    Csv(Box<csv::Writer<HashingWriter<AtomicFile>>>),
    Xlsx(Box<XlsxResults>, HashingWriter<AtomicFile>),
}

impl Sink {
    fn write<'a>(
        &mut self,
        cells: impl Iterator<Item = &'a str>,
        path: &Path,
    ) -> Result<(), ResultsError> {
        match self {
            Sink::Csv(out) => {
                let cells: Vec<Cow<'_, str>> = cells.map(neutralise).collect();
                out.write_record(cells.iter().map(|c| c.as_bytes()))
                    .map_err(|source| ResultsError::Csv {
                        path: path.to_owned(),
                        source,
                    })
            }
            Sink::Xlsx(sheet, _) => match sheet.write_row(cells) {
                Ok(true) => Ok(()),
                Ok(false) => Err(ResultsError::Xlsx {
                    path: path.to_owned(),
                    message: format!(
                        "more rows than an .xlsx sheet holds ({} with the header): write the \
                         results to a .csv file instead",
                        super::xlsx::MAX_ROWS
                    ),
                }),
                Err(e) => Err(ResultsError::Xlsx {
                    path: path.to_owned(),
                    message: e.to_string(),
                }),
            },
        }
    }

    /// Finishes the file's content; the file is still to be committed.
    fn finish(self, path: &Path) -> Result<HashingWriter<AtomicFile>, ResultsError> {
        let io = |source| ResultsError::Io {
            path: path.to_owned(),
            source,
        };
        match self {
            Sink::Csv(out) => out.into_inner().map_err(|e| io(e.into_error())),
            Sink::Xlsx(sheet, mut digesting) => {
                sheet
                    .finish(&mut digesting)
                    .map_err(|e| ResultsError::Xlsx {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?;
                Ok(digesting)
            }
        }
    }
}

fn changed(path: &Path, what: String) -> ResultsError {
    ResultsError::InputChanged {
        path: path.to_owned(),
        what,
    }
}
