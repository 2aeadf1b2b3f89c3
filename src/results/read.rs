//! Reading a results file back: what `campaign rebuild` restores a lost ledger from, and what
//! tells a run that a campaign already ran when its state file is missing.
//!
//! A results file is the input's columns, then [`COLUMNS`]; the outcome columns are found from
//! the end, so an input column named like one of ours does no harm. Cells the writer
//! neutralised (a leading `'` before `=`, `+`, `-`, `@`, tab or carriage return) are read back
//! without the `'`.

use std::path::{Path, PathBuf};

use crate::domain::RowStatus;
use crate::files::dialect;
use crate::input::{Format, SheetRows};
use crate::results::COLUMNS;

/// One results row's outcome columns, and its input cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResultRecord {
    /// The results line (1 = the header).
    pub(crate) line: u64,
    /// The input's cells, as the results file holds them (neutralised).
    pub(crate) input: Vec<String>,
    pub(crate) row: i64,
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) request_id: Option<String>,
    pub(crate) issued_id: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) error_code: Option<String>,
    pub(crate) error_sub_code: Option<String>,
    pub(crate) error_message: Option<String>,
    pub(crate) top_request_id: Option<String>,
    pub(crate) finished_at: Option<String>,
}

impl ResultRecord {
    /// The status, when it is one a results file can hold.
    pub(crate) fn row_status(&self) -> Option<RowStatus> {
        RowStatus::parse(&self.status).filter(|s| RowStatus::IN_RESULTS.contains(s))
    }
}

/// A results file that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{path}: not a results file of this tool: its header does not end with the {} result \
         columns (row, status, ..., finished_at)",
        COLUMNS.len()
    )]
    NotResults { path: PathBuf },
    #[error("{path}:{line}: {what}")]
    Bad {
        path: PathBuf,
        line: u64,
        what: String,
    },
}

/// Streams a results file: its input header, then each row.
pub(crate) fn read_results(
    path: &Path,
    mut each: impl FnMut(&[String], ResultRecord) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let csv_error = |source| ReadError::Csv {
        path: path.to_owned(),
        source,
    };
    let io_error = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut records: Box<dyn Iterator<Item = Result<Vec<String>, ReadError>>> =
        if Format::of(path) == Format::Xlsx {
            drop(file);
            Box::new(sheet_records(path))
        } else {
            let mut source = std::io::BufReader::new(file);
            dialect::skip_bom(&mut source).map_err(io_error)?;
            let reader = dialect::reader(source);
            Box::new(reader.into_records().map(move |record| {
                record
                    .map(|r| r.iter().map(str::to_owned).collect())
                    .map_err(csv_error)
            }))
        };
    let header: Vec<String> = match records.next() {
        Some(header) => header?,
        None => {
            return Err(ReadError::NotResults {
                path: path.to_owned(),
            });
        }
    };
    let width = header.len();
    if width < COLUMNS.len() || header[width - COLUMNS.len()..] != COLUMNS {
        return Err(ReadError::NotResults {
            path: path.to_owned(),
        });
    }
    let input_header = header[..width - COLUMNS.len()].to_vec();
    for (n, record) in records.enumerate() {
        let line = n as u64 + 2;
        let mut record = record?;
        if Format::of(path) == Format::Xlsx && record.len() < width {
            // A sheet does not store trailing empty cells.
            record.resize(width, String::new());
        }
        let bad = |what: String| ReadError::Bad {
            path: path.to_owned(),
            line,
            what,
        };
        if record.len() != width {
            return Err(bad(format!(
                "{} fields, the header has {width}",
                record.len()
            )));
        }
        let cells: Vec<&str> = record.iter().map(String::as_str).collect();
        let (input, ours) = cells.split_at(width - COLUMNS.len());
        let text = |i: usize| Some(restore(ours[i])).filter(|s| !s.is_empty());
        let number = |i: usize, name: &str| {
            restore(ours[i])
                .parse::<i64>()
                .map_err(|_| bad(format!("{name}: not a number: {:?}", ours[i])))
        };
        let result = ResultRecord {
            line,
            input: input.iter().map(|c| (*c).to_owned()).collect(),
            row: number(0, "row")?,
            status: restore(ours[1]),
            attempts: number(2, "attempts")?,
            request_id: text(3),
            issued_id: text(4),
            detail: text(5),
            error_code: text(6),
            error_sub_code: text(7),
            error_message: text(8),
            top_request_id: text(9),
            finished_at: text(10),
        };
        each(&input_header, result)?;
    }
    Ok(())
}

/// The rows of a results workbook's first sheet, as cells (empty rows skipped).
fn sheet_records(path: &Path) -> impl Iterator<Item = Result<Vec<String>, ReadError>> {
    let mut rows = SheetRows::open(path, None);
    let path = path.to_owned();
    std::iter::from_fn(move || {
        Some(match rows.next()? {
            Ok(row) => {
                let width = row.cells.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
                let mut cells = vec![String::new(); width];
                for (column, cell) in row.cells {
                    cells[column] = cell.text().to_owned();
                }
                Ok(cells)
            }
            Err(e) => Err(ReadError::Bad {
                path: path.clone(),
                line: 0,
                what: e.to_string(),
            }),
        })
    })
}

/// A cell as it was before the writer neutralised it.
fn restore(cell: &str) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_owned(),
        _ => cell.to_owned(),
    }
}

/// The first row of a results file that was, or may have been, issued: evidence that the
/// campaign ran. `None` when the file does not exist or holds none.
pub(crate) fn first_issued(path: &Path) -> Result<Option<ResultRecord>, ReadError> {
    if !path.is_file() {
        return Ok(None);
    }
    let mut found = None;
    let stop = read_results(path, |_, record| {
        if matches!(
            record.row_status(),
            Some(RowStatus::Issued | RowStatus::Uncertain)
        ) {
            found = Some(record);
            // Stop reading: one row is evidence enough.
            return Err(ReadError::Bad {
                path: PathBuf::new(),
                line: 0,
                what: String::new(),
            });
        }
        Ok(())
    });
    match (stop, found) {
        (_, Some(record)) => Ok(Some(record)),
        (Ok(()), None) => Ok(None),
        (Err(e), None) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralised_cells_are_restored() {
        assert_eq!(restore("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(restore("'-1"), "-1");
        assert_eq!(restore("'plain"), "'plain");
        assert_eq!(restore("x"), "x");
    }

    #[test]
    fn outcome_columns_are_found_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(
            &path,
            "\u{feff}open_id,status,row,status,attempts,request_id,issued_id,detail,error_code,error_sub_code,error_message,top_request_id,finished_at\n\
             A,x,1,issued,1,,C1,{},,,,t1,2026-01-01T00:00:00+08:00\n\
             B,y,2,failed,2,,,,15,isv.x,'-no,t2,\n",
        )
        .unwrap();
        let mut seen = Vec::new();
        read_results(&path, |header, r| {
            assert_eq!(header, ["open_id", "status"]);
            seen.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen[0].row, 1);
        assert_eq!(seen[0].status, "issued");
        assert_eq!(seen[0].issued_id.as_deref(), Some("C1"));
        assert_eq!(seen[0].input, ["A", "x"]);
        assert_eq!(seen[1].error_message.as_deref(), Some("-no"));
        assert_eq!(first_issued(&path).unwrap().unwrap().row, 1);
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        assert!(matches!(
            read_results(&path, |_, _| Ok(())),
            Err(ReadError::NotResults { .. })
        ));
    }
}
