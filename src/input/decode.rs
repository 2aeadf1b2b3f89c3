//! Text encodings of the input: naming them, detecting them, and strict decoding to UTF-8.
//!
//! Detection when none is given: a UTF-8 byte-order mark means UTF-8; else UTF-8 when the first
//! 64 KiB are valid UTF-8 (a character cut at the 64 KiB boundary does not count against it);
//! else GB18030, the superset of GBK that spreadsheet programs in a Chinese locale write.
//! A UTF-8 BOM goes with UTF-8 unless another encoding is given; then the reader checks which
//! one the file's lines really are (a spreadsheet export can put a BOM before GBK text).
//!
//! Decoding is strict: undecodable bytes are an error with their line, never a silent U+FFFD,
//! since a mangled recipient id would be sent as is.

use std::io::{self, Cursor, Read};

use encoding_rs::{DecoderResult, Encoding, GB18030, GBK, UTF_8};

/// How many leading bytes detection looks at.
pub(crate) const SNIFF_LEN: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const BUF_LEN: usize = 64 * 1024;

/// Parses an encoding name as the campaign file and `--encoding` spell it: `utf-8`, `gbk` or
/// `gb18030` (case-insensitive; `utf8` is accepted too).
pub(crate) fn parse_encoding(label: &str) -> Result<&'static Encoding, String> {
    match label.trim().to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(UTF_8),
        "gbk" => Ok(GBK),
        "gb18030" => Ok(GB18030),
        _ => Err(format!(
            "unknown encoding {label:?} (expected utf-8, gbk or gb18030)"
        )),
    }
}

/// Where the encoding a file is read with came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `--encoding` or `encoding =`.
    Given,
    /// From the first bytes of the file.
    Detected,
    /// From the UTF-8 byte-order mark at its start.
    Bom,
}

impl Origin {
    /// As error messages put it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Origin::Given => "given",
            Origin::Detected => "detected",
            Origin::Bom => "detected from its byte-order mark",
        }
    }
}

/// The outcome of looking at the start of a file.
pub(crate) enum Sniffed {
    /// The encoding to use, where it came from, whether the file starts with a UTF-8
    /// byte-order mark, and the bytes read so far (BOM removed).
    Text {
        encoding: &'static Encoding,
        origin: Origin,
        bom: bool,
        head: Cursor<Vec<u8>>,
    },
    Utf16,
}

/// Reads up to [`SNIFF_LEN`] bytes from `source` and decides the encoding.
pub(crate) fn sniff(
    source: &mut impl Read,
    given: Option<&'static Encoding>,
) -> io::Result<Sniffed> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let full = source.take(SNIFF_LEN as u64).read_to_end(&mut head)? == SNIFF_LEN;
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Ok(Sniffed::Utf16);
    }
    let bom = head.starts_with(UTF8_BOM);
    let (encoding, origin) = match (bom, given) {
        (_, Some(given)) => (given, Origin::Given),
        (true, None) => (UTF_8, Origin::Bom),
        (false, None) if looks_like_utf8(&head, full) => (UTF_8, Origin::Detected),
        (false, None) => (GB18030, Origin::Detected),
    };
    let mut head = Cursor::new(head);
    if bom {
        head.set_position(UTF8_BOM.len() as u64);
    }
    Ok(Sniffed::Text {
        encoding,
        origin,
        bom,
        head,
    })
}

/// Whether `head` is valid UTF-8, allowing an incomplete character at its end when the file goes
/// on beyond it.
fn looks_like_utf8(head: &[u8], more_follows: bool) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => more_follows && e.error_len().is_none(),
    }
}

/// The line (1-based) on which the first undecodable bytes were found; carried as the payload of
/// an `io::Error` of kind `InvalidData` through the CSV reader.
#[derive(Debug, thiserror::Error)]
#[error("undecodable bytes on line {line}")]
pub(crate) struct Undecodable {
    pub(crate) line: u64,
}

/// A `Read` adapter that decodes a legacy encoding to UTF-8, failing on malformed input.
pub(crate) struct StrictDecoder<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    input_done: bool,
    output: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    finished: bool,
    /// Newlines in the output produced so far, for the line of a decoding error.
    newlines: u64,
    failed_at: Option<u64>,
}

impl<R: Read> StrictDecoder<R> {
    pub(crate) fn new(inner: R, encoding: &'static Encoding) -> Self {
        StrictDecoder {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; BUF_LEN].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            input_done: false,
            output: vec![0; BUF_LEN].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            finished: false,
            newlines: 0,
            failed_at: None,
        }
    }

    /// Decodes the next chunk into `output`; false once everything was decoded.
    fn refill(&mut self) -> io::Result<bool> {
        loop {
            if let Some(line) = self.failed_at {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Undecodable { line },
                ));
            }
            if self.finished {
                return Ok(false);
            }
            if self.in_start == self.in_end && !self.input_done {
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                self.in_start = 0;
                self.in_end = n;
                self.input_done = n == 0;
            }
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.input_done,
            );
            self.in_start += read;
            let produced = &self.output[..written];
            self.newlines += produced.iter().filter(|&&b| b == b'\n').count() as u64;
            match result {
                DecoderResult::InputEmpty => self.finished = self.input_done,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(..) => self.failed_at = Some(self.newlines + 1),
            }
            if written > 0 {
                self.out_start = 0;
                self.out_end = written;
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for StrictDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_start == self.out_end && !self.refill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}
