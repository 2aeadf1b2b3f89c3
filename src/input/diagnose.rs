//! What to tell a user whose input does not decode: which lines are UTF-8 and which are not,
//! and which encoding would read the whole file.
//!
//! Lines are split on `\n`, which is safe for both UTF-8 and GBK/GB18030 (neither uses the byte
//! 0x0A inside a character). A line is classified only when it holds non-ASCII bytes: ASCII
//! reads the same in every encoding we accept. A line counts as UTF-8 only when it is valid
//! UTF-8 with at least one character of three bytes or more (U+0800 and up, where Chinese text
//! lives): GBK text often happens to be valid UTF-8 made of two-byte characters (U+0080 to
//! U+07FF), but GB2312's common hanzi can never form a longer UTF-8 character (a test below
//! checks every pair of them).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use encoding_rs::{Encoding, GB18030, GBK, UTF_8};

use super::decode::StrictDecoder;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The first line whose non-ASCII bytes are valid UTF-8, and the first whose are not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lines {
    pub(crate) utf8: Option<u64>,
    pub(crate) other: Option<u64>,
}

impl Lines {
    /// Both kinds of line: the file mixes encodings.
    pub(crate) fn mixed(&self) -> Option<Mixed> {
        Some(Mixed {
            utf8: self.utf8?,
            other: self.other?,
        })
    }
}

/// A file with UTF-8 lines and lines in another encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mixed {
    pub(crate) utf8: u64,
    pub(crate) other: u64,
}

impl fmt::Display for Mixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, first_kind, later, later_kind) = if self.utf8 < self.other {
            (self.utf8, "UTF-8", self.other, "not (it looks like GBK)")
        } else {
            (
                self.other,
                "not UTF-8 (it looks like GBK)",
                self.utf8,
                "UTF-8",
            )
        };
        write!(
            f,
            "this file mixes encodings at line {later}: line {first} is {first_kind} and line \
             {later} is {later_kind}; save the whole file again in one encoding (CSV UTF-8 is \
             best)"
        )
    }
}

/// Reads the whole file (skipping a UTF-8 byte-order mark) and finds the first UTF-8 line and
/// the first line that is not UTF-8; stops as soon as it has both.
pub(crate) fn classify(path: &Path) -> io::Result<Lines> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let mut lines = Lines::default();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(lines);
        }
        number += 1;
        let text = match number {
            1 => line.strip_prefix(UTF8_BOM).unwrap_or(&line),
            _ => &line[..],
        };
        if text.is_ascii() {
            continue;
        }
        match std::str::from_utf8(text) {
            Ok(text) if text.chars().any(|c| c >= '\u{800}') => lines.utf8.get_or_insert(number),
            Ok(_) => continue,
            Err(_) => lines.other.get_or_insert(number),
        };
        if lines.mixed().is_some() {
            return Ok(lines);
        }
    }
}

/// What would read a file that failed to decode as `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Advice {
    /// The whole file decodes as this encoding.
    Use(&'static Encoding),
    Mixed(Mixed),
    /// Not UTF-8 (at the first line) and not GB18030 either (at the second).
    Neither {
        utf8: u64,
        gb18030: u64,
    },
    /// The file could not be read again to find out.
    Unknown,
}

/// Looks at the whole file again to say what would work; called only on the error path.
pub(crate) fn advise(path: &Path, failed: &'static Encoding) -> Advice {
    let Ok(lines) = classify(path) else {
        return Advice::Unknown;
    };
    if let Some(mixed) = lines.mixed() {
        return Advice::Mixed(mixed);
    }
    let Some(not_utf8) = lines.other else {
        return match failed == UTF_8 {
            true => Advice::Unknown,
            false => Advice::Use(UTF_8),
        };
    };
    match legacy_error_line(path) {
        Ok(None) if failed == UTF_8 => Advice::Use(GBK),
        Ok(Some(gb18030)) => Advice::Neither {
            utf8: not_utf8,
            gb18030,
        },
        _ => Advice::Unknown,
    }
}

/// The line on which GB18030 decoding of the file (without a byte-order mark) fails, if any.
fn legacy_error_line(path: &Path) -> io::Result<Option<u64>> {
    let mut file = File::open(path)?;
    let mut head = [0; 3];
    let n = file.read(&mut head)?;
    let head = if head[..n] == *UTF8_BOM {
        &[][..]
    } else {
        &head[..n]
    };
    let mut decoder = StrictDecoder::new(head.chain(file), GB18030);
    match io::copy(&mut decoder, &mut io::sink()) {
        Ok(_) => Ok(None),
        Err(e) => match e
            .get_ref()
            .and_then(|p| p.downcast_ref::<super::decode::Undecodable>())
        {
            Some(u) => Ok(Some(u.line)),
            None => Err(e),
        },
    }
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Advice::Use(encoding) => {
                let label = encoding.name().to_ascii_lowercase();
                write!(
                    f,
                    "the whole file reads as {label}: run again with `--encoding {label}`, or \
                     set `encoding = \"{label}\"` in the campaign file"
                )
            }
            Advice::Mixed(mixed) => mixed.fmt(f),
            Advice::Neither { utf8, gb18030 } => write!(
                f,
                "it is neither UTF-8 (line {utf8}) nor GBK/GB18030 (line {gb18030}); save the \
                 file as CSV UTF-8"
            ),
            Advice::Unknown => write!(
                f,
                "save the file as UTF-8 or give the right encoding (utf-8, gbk, gb18030)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(bytes: &[u8]) -> Lines {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, bytes).unwrap();
        classify(&path).unwrap()
    }

    #[test]
    fn gbk_names_never_pass_for_utf8() {
        // Every GB2312 hanzi (both levels), alone and next to the following one.
        let mut hanzi = Vec::new();
        for lead in 0xB0..=0xF7u8 {
            for trail in 0xA1..=0xFEu8 {
                let bytes = [lead, trail];
                let (text, bad) = GBK.decode_without_bom_handling(&bytes);
                if !bad && text.chars().all(|c| c >= '\u{4E00}') {
                    hanzi.push([lead, trail]);
                }
            }
        }
        assert!(hanzi.len() > 6700, "{}", hanzi.len());
        let mut file = b"open_id,name\n".to_vec();
        for pair in hanzi.windows(2) {
            file.extend_from_slice(b"A1,");
            file.extend_from_slice(&pair[0]);
            file.extend_from_slice(b"\nA2,");
            file.extend_from_slice(&pair.concat());
            file.push(b'\n');
        }
        assert_eq!(
            lines_of(&file),
            Lines {
                utf8: None,
                other: Some(2)
            }
        );
    }

    #[test]
    fn utf8_chinese_counts_and_latin_accents_do_not() {
        let lines = lines_of("a\nJosé\n张伟\n".as_bytes());
        assert_eq!(lines.utf8, Some(3));
        assert_eq!(lines.other, None);
    }
}
