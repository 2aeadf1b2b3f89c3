//! A byte scanner between the decoded text and the CSV parser that knows what the parser does not
//! say: the physical line on which each record starts, and a quoted field left open at the end of
//! the file.
//!
//! csv-core (the parser under the `csv` crate) accepts a quote that is never closed: the field
//! simply runs to the end of the file and the last record comes out swallowing every line after
//! it. Its record positions also point at skipped blank lines rather than at the record. So this
//! scanner mirrors csv-core's state machine for the default dialect (`,` delimiter, `"` quote
//! with `""` escapes, `\r`, `\n` or `\r\n` terminators, blank lines skipped) and, at the end of
//! the input, fails with [`UnclosedQuote`] instead of reporting end of file, so the broken record
//! is never handed out.

use std::collections::VecDeque;
use std::io::{self, Read};

/// The line (1-based) where a quoted field that is never closed was opened; carried as the
/// payload of an `io::Error` of kind `InvalidData` through the CSV reader.
#[derive(Debug, thiserror::Error)]
#[error("quoted field opened on line {line} is never closed")]
pub(crate) struct UnclosedQuote {
    pub(crate) line: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records (also after `\r`, so `\r\n` and blank lines are skipped alike).
    StartRecord,
    StartField,
    InField,
    InQuotedField,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    QuoteInQuotedField,
}

/// Wraps the decoded text; [`Scanner::next_record_line`] yields record start lines in order.
pub(crate) struct Scanner<R> {
    inner: R,
    state: State,
    line: u64,
    quote_line: u64,
    starts: VecDeque<u64>,
}

impl<R: Read> Scanner<R> {
    pub(crate) fn new(inner: R) -> Self {
        Scanner {
            inner,
            state: State::StartRecord,
            line: 1,
            quote_line: 0,
            starts: VecDeque::new(),
        }
    }

    /// The line on which the next record not yet asked about starts.
    pub(crate) fn next_record_line(&mut self) -> Option<u64> {
        self.starts.pop_front()
    }

    fn scan(&mut self, bytes: &[u8]) {
        let mut state = self.state;
        let mut line = self.line;
        for &b in bytes {
            if state == State::StartRecord {
                if b == b'\r' || b == b'\n' {
                    line += u64::from(b == b'\n');
                    continue;
                }
                self.starts.push_back(line);
                state = State::StartField;
            }
            state = match (state, b) {
                (State::InQuotedField, b'"') => State::QuoteInQuotedField,
                (State::InQuotedField, _) => State::InQuotedField,
                (State::QuoteInQuotedField, b'"') => State::InQuotedField,
                (State::StartField, b'"') => {
                    self.quote_line = line;
                    State::InQuotedField
                }
                (_, b',') => State::StartField,
                (_, b'\r' | b'\n') => State::StartRecord,
                _ => State::InField,
            };
            line += u64::from(b == b'\n');
        }
        self.state = state;
        self.line = line;
    }
}

impl<R: Read> Read for Scanner<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.state == State::InQuotedField {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                UnclosedQuote {
                    line: self.quote_line,
                },
            ));
        }
        self.scan(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Result<Vec<u64>, u64> {
        let mut scanner = Scanner::new(text.as_bytes());
        let mut sink = Vec::new();
        match scanner.read_to_end(&mut sink) {
            Ok(_) => Ok(scanner.starts.into_iter().collect()),
            Err(e) => Err(e
                .get_ref()
                .and_then(|e| e.downcast_ref::<UnclosedQuote>())
                .expect("an unclosed quote")
                .line),
        }
    }

    #[test]
    fn record_starts_skip_blank_lines_and_quoted_newlines() {
        assert_eq!(lines("a,b\n1,2\n"), Ok(vec![1, 2]));
        assert_eq!(lines("a,b\r\n\r\n\n1,\"x\ny\"\n2,3"), Ok(vec![1, 4, 6]));
        assert_eq!(lines("a\r1\r\n2\n"), Ok(vec![1, 1, 2]));
        assert_eq!(lines("\"a\"\"\n\",b\nc,d\n"), Ok(vec![1, 3]));
    }

    #[test]
    fn open_quote_at_end_reports_its_line() {
        assert_eq!(lines("a,b\n1,2\n3,\"oops\n4,5\n6,7\n"), Err(3));
        assert_eq!(lines("a,b\n1,\"x\"\"\n"), Err(2));
        // A quote inside an unquoted field is a literal for csv-core, not an opening.
        assert_eq!(lines("a,b\n1,2\"\n3,4\n"), Ok(vec![1, 2, 3]));
        assert_eq!(lines("a,b\n1,\"2\"x\n"), Ok(vec![1, 2]));
    }
}
