//! Tests of reading input files: encodings, detection, malformed files and line numbers.

use std::path::PathBuf;

use encoding_rs::{Encoding, GB18030, GBK, UTF_8};

use super::*;
use crate::top::{ApiSpec, find_api};

fn tmall() -> &'static ApiSpec {
    find_api("tmall.nrt.certificate.send").unwrap()
}

fn alsc() -> &'static ApiSpec {
    find_api("alibaba.alsc.right.decisionsend").unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn file(bytes: &[u8]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, bytes).unwrap();
    Fixture { _dir: dir, path }
}

/// `(row, line, fields)`.
type Row = (u64, u64, Vec<String>);

/// Every row as `(row, line, fields)`, or the error's message with the temp dir cut off.
fn read(
    bytes: &[u8],
    encoding: Option<&'static Encoding>,
    api: &'static ApiSpec,
) -> Result<(InputReader, Vec<Row>), String> {
    let f = file(bytes);
    let shown = |e: InputError| {
        e.to_string()
            .replace(&f.path.display().to_string(), "in.csv")
    };
    let mut reader = InputReader::open(&f.path, encoding, api).map_err(shown)?;
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row() {
        let row = row.map_err(shown)?;
        rows.push((
            row.row,
            row.line,
            row.record.iter().map(str::to_owned).collect(),
        ));
    }
    Ok((reader, rows))
}

fn fields(list: &[&str]) -> Vec<String> {
    list.iter().map(std::string::ToString::to_string).collect()
}

#[test]
fn reads_utf8_with_header_and_param_columns() {
    let (reader, rows) = read(b"note,open_id,channel\nhi,A1,7\nyo,A2,\n", None, tmall()).unwrap();
    let header = reader.header();
    assert_eq!(header.columns, fields(&["note", "open_id", "channel"]));
    assert_eq!(header.recipient, 1);
    assert_eq!(header.params, vec![("channel", 2)]);
    assert_eq!(reader.encoding(), UTF_8);
    assert_eq!(
        rows,
        vec![
            (1, 2, fields(&["hi", "A1", "7"])),
            (2, 3, fields(&["yo", "A2", ""]))
        ]
    );
}

#[test]
fn request_id_is_a_param_column_only_for_the_idempotent_api() {
    let (r, _) = read(b"alipay_id,request_id,act_codes\n", None, alsc()).unwrap();
    assert_eq!(r.header().params, vec![("act_codes", 2), ("request_id", 1)]);
    let (r, _) = read(b"open_id,request_id\n", None, tmall()).unwrap();
    assert!(r.header().params.is_empty());
}

#[test]
fn utf8_bom_is_skipped() {
    let (reader, rows) = read(
        b"\xEF\xBB\xBFopen_id,\xE5\xA7\x93\xE5\x90\x8D\nA1,\xE5\xBC\xA0\xE4\xB8\x89\n",
        None,
        tmall(),
    )
    .unwrap();
    assert_eq!(reader.header().columns, fields(&["open_id", "姓名"]));
    assert_eq!(reader.encoding(), UTF_8);
    assert_eq!(rows[0].2, fields(&["A1", "张三"]));
}

#[test]
fn gbk_is_detected_and_chinese_columns_survive() {
    let text = "open_id,姓名,备注\nA1,张三,\"春节, 礼物\"\nA2,李四,𠀀\n";
    let (bytes, _, unmappable) = GB18030.encode(text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err());
    let (reader, rows) = read(&bytes, None, tmall()).unwrap();
    assert_eq!(reader.encoding(), GB18030);
    assert_eq!(
        reader.header().columns,
        fields(&["open_id", "姓名", "备注"])
    );
    assert_eq!(rows[0].2, fields(&["A1", "张三", "春节, 礼物"]));
    assert_eq!(rows[1].2, fields(&["A2", "李四", "𠀀"]));

    let (gbk, _, _) = GBK.encode("open_id,姓名\nA1,王五\n");
    let (reader, rows) = read(&gbk, Some(GBK), tmall()).unwrap();
    assert_eq!(reader.encoding(), GBK);
    assert_eq!(rows[0].2, fields(&["A1", "王五"]));
}

#[test]
fn a_character_cut_at_the_sniff_boundary_still_means_utf8() {
    let mut text = String::from("open_id,note\n");
    while text.len() < decode::SNIFF_LEN - 100 {
        text.push_str("A1,x\n");
    }
    text.push_str("A9,");
    let pad = decode::SNIFF_LEN - 1 - text.len();
    text.push_str(&"y".repeat(pad));
    text.push_str("汉\n");
    assert!(!text.is_char_boundary(decode::SNIFF_LEN));
    let (reader, rows) = read(text.as_bytes(), None, tmall()).unwrap();
    assert_eq!(reader.encoding(), UTF_8);
    assert_eq!(rows.last().unwrap().2[1], format!("{}汉", "y".repeat(pad)));
}

#[test]
fn undecodable_bytes_name_their_line() {
    let mut late_gbk = b"open_id,note\n".to_vec();
    for _ in 0..20_000 {
        late_gbk.extend_from_slice(b"A1,x\n");
    }
    late_gbk.extend_from_slice(b"A2,\xD5\xC5\n");
    let e = read(&late_gbk, None, tmall()).unwrap_err();
    assert_eq!(
        e,
        "in.csv:20002: column `note`: bytes that are not valid UTF-8 (detected); the whole file \
         reads as gbk: run again with `--encoding gbk`, or set `encoding = \"gbk\"` in the \
         campaign file"
    );

    let (gbk, _, _) = GBK.encode("open_id,姓名\nA1,王五\n");
    let e = read(&gbk, Some(UTF_8), tmall()).unwrap_err();
    assert!(
        e.starts_with(
            "in.csv:1: column `#2`: bytes that are not valid UTF-8 (given); the whole \
             file reads as gbk"
        ),
        "{e}"
    );
    let e = read("open_id,姓名\nA1,王五\n".as_bytes(), Some(GBK), tmall());
    assert!(
        e.is_err() || e.unwrap().1[0].2[1] != "王五",
        "UTF-8 read as GBK"
    );

    let e = read(b"open_id,n\nA1,x\nA2,\"a\nb\xFF\"\n", Some(GBK), tmall()).unwrap_err();
    assert!(
        e.starts_with("in.csv:4: bytes that are not valid GBK (given)"),
        "{e}"
    );
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn with_bom(text: &[u8]) -> Vec<u8> {
    [BOM, text].concat()
}

#[test]
fn gbk_after_a_utf8_bom_names_the_command_that_works_and_that_command_works() {
    let (gbk, _, _) = GBK.encode("open_id,姓名\nA1,王五\nA2,赵六\n");
    let file = with_bom(&gbk);
    let e = read(&file, None, tmall()).unwrap_err();
    assert_eq!(
        e,
        "in.csv:1: column `#2`: bytes that are not valid UTF-8 (detected from its byte-order \
         mark); the whole file reads as gbk: run again with `--encoding gbk`, or set `encoding = \
         \"gbk\"` in the campaign file"
    );
    let (reader, rows) = read(&file, Some(GBK), tmall()).unwrap();
    assert_eq!(reader.encoding(), GBK);
    assert_eq!(reader.header().columns, fields(&["open_id", "姓名"]));
    assert_eq!(rows[1].2, fields(&["A2", "赵六"]));
    assert!(reader.wants_bom());
}

#[test]
fn a_file_that_mixes_encodings_says_at_which_line() {
    let (gbk, _, _) = GBK.encode("A2,赵六\n");
    let file = with_bom(&["open_id,姓名\nA1,王五\n".as_bytes(), &gbk].concat());
    let e = read(&file, None, tmall()).unwrap_err();
    assert!(
        e.starts_with(
            "in.csv:3: column `姓名`: bytes that are not valid UTF-8 (detected from its \
             byte-order mark); this file mixes encodings at line 3: line 1 is UTF-8 and line 3 \
             is not (it looks like GBK)"
        ),
        "{e}"
    );
    for given in [GBK, GB18030] {
        let e = read(&file, Some(given), tmall()).unwrap_err();
        assert!(
            e.starts_with("in.csv:3: this file mixes encodings at line 3"),
            "{e}"
        );
    }
    // GBK first and UTF-8 later, read as UTF-8.
    let file = [b"open_id,n\n".as_slice(), &gbk, "A3,孙七\n".as_bytes()].concat();
    let e = read(&file, Some(UTF_8), tmall()).unwrap_err();
    assert!(
        e.contains(
            "this file mixes encodings at line 3: line 2 is not UTF-8 (it looks like \
             GBK) and line 3 is UTF-8"
        ),
        "{e}"
    );
}

#[test]
fn a_utf8_line_past_the_first_64_kib_of_a_gbk_file_is_an_error_not_nonsense() {
    // Detection reads the first 64 KiB: GBK there, so GB18030; a UTF-8 line after that would
    // decode as GB18030 without an error, into other characters.
    let mut bytes = b"open_id,n\n".to_vec();
    let (gbk, _, _) = GBK.encode("A,王五\n");
    let mut lines = 1;
    while bytes.len() <= super::decode::SNIFF_LEN {
        bytes.extend_from_slice(&gbk);
        lines += 1;
    }
    bytes.extend_from_slice("B,孙七\n".as_bytes());
    let utf8_line = lines + 1;
    for given in [None, Some(GBK), Some(GB18030)] {
        let e = read(&bytes, given, tmall()).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "in.csv:{utf8_line}: this file mixes encodings at line {utf8_line}: line 2 is \
                 not UTF-8 (it looks like GBK) and line {utf8_line} is UTF-8"
            )),
            "{given:?}: {e}"
        );
    }
    // Without the UTF-8 line, the same file reads as detected.
    bytes.truncate(bytes.len() - "B,孙七\n".len());
    let (reader, rows) = read(&bytes, None, tmall()).unwrap();
    assert_eq!(reader.encoding(), GB18030);
    assert_eq!(rows.last().unwrap().2, fields(&["A", "王五"]));
}

#[test]
fn a_legacy_encoding_given_for_a_utf8_file_is_refused_with_the_line() {
    let bytes = "open_id,n\nA,x\nB,王五\n".as_bytes();
    for given in [GBK, GB18030] {
        let e = read(bytes, Some(given), tmall()).unwrap_err();
        assert_eq!(
            e,
            format!(
                "in.csv:3: this line is UTF-8 (and no line is {0}), but the campaign says \
                 encoding = {0}: remove `encoding` (or --encoding), and the file is read as UTF-8",
                given.name()
            )
        );
    }
    let (reader, rows) = read(bytes, None, tmall()).unwrap();
    assert_eq!(reader.encoding(), UTF_8);
    assert_eq!(rows[1].2, fields(&["B", "王五"]));
}

#[test]
fn a_utf8_file_with_a_bom_is_utf8_whatever_encoding_is_given() {
    let file = with_bom("open_id,姓名\nA1,王五\n".as_bytes());
    for given in [None, Some(UTF_8), Some(GBK), Some(GB18030)] {
        let (reader, rows) = read(&file, given, tmall()).unwrap();
        assert_eq!(reader.encoding(), UTF_8, "{given:?}");
        assert_eq!(rows[0].2, fields(&["A1", "王五"]));
    }
}

#[test]
fn bytes_that_are_neither_utf8_nor_gbk_say_so() {
    let e = read(b"open_id,n\nA1,\xFF\xFF\n", None, tmall()).unwrap_err();
    assert!(
        e.ends_with(
            "it is neither UTF-8 (line 2) nor GBK/GB18030 (line 2); save the file as \
             CSV UTF-8"
        ),
        "{e}"
    );
}

#[test]
fn results_want_a_bom_for_a_bom_or_a_chinese_legacy_encoding() {
    let (plain, _) = read(b"open_id\nA1\n", None, tmall()).unwrap();
    assert!(!plain.wants_bom());
    let (marked, _) = read(&with_bom(b"open_id\nA1\n"), None, tmall()).unwrap();
    assert!(marked.wants_bom());
    let (gbk, _, _) = GBK.encode("open_id,姓名\nA1,王五\n");
    let (detected, _) = read(&gbk, None, tmall()).unwrap();
    assert!(detected.wants_bom());
    let (given, _) = read(b"open_id\nA1\n", Some(GBK), tmall()).unwrap();
    assert!(given.wants_bom());
}

#[test]
fn missing_recipient_names_file_line_expected_and_found() {
    let e = read(b"openid,channel\nA1,7\n", None, tmall()).unwrap_err();
    assert_eq!(
        e,
        "in.csv:1: no `open_id` column (the recipient of tmall.nrt.certificate.send); columns \
         found: `openid`, `channel`"
    );
    let e = read(b"open_id\nA1\n", None, alsc()).unwrap_err();
    assert!(e.contains("no `alipay_id` column"), "{e}");
}

#[test]
fn header_names_are_matched_trimmed_and_must_be_unique() {
    let (r, _) = read(b" open_id ,x,,\nA,1,,\n", None, tmall()).unwrap();
    assert_eq!(r.header().recipient, 0);
    assert_eq!(r.header().columns[0], " open_id ");
    let e = read(b"open_id,channel,channel\n", None, tmall()).unwrap_err();
    assert_eq!(
        e,
        "in.csv:1: column `channel` appears twice (columns 2 and 3)"
    );
}

#[test]
fn unbalanced_quote_reports_where_it_opened() {
    let e = read(
        b"open_id,note\nA1,ok\nA2,\"never closed\nA3,x\nA4,y\n",
        None,
        tmall(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "in.csv:3: unbalanced quotes: the quoted field opened on this line is never closed"
    );
    let (gbk, _, _) = GBK.encode("open_id,备注\nA1,\"张三\n");
    assert!(
        read(&gbk, None, tmall())
            .unwrap_err()
            .starts_with("in.csv:2: unbalanced quotes")
    );
}

#[test]
fn wrong_field_count_is_a_malformed_file() {
    let e = read(b"open_id,a,b\nA1,1,2\nA2,1\n", None, tmall()).unwrap_err();
    assert_eq!(
        e,
        "in.csv:3: 2 fields where the header has 3: the file looks mangled (a shifted, split or \
         merged row)"
    );
}

#[test]
fn quoted_newlines_commas_and_blank_lines_keep_line_numbers_right() {
    let text =
        b"open_id,note\r\n\r\nA1,\"two\r\nlines, and \"\"quotes\"\"\"\r\n\nA2,\"a,b\"\r\nA3,last";
    let (_, rows) = read(text, None, tmall()).unwrap();
    assert_eq!(
        rows,
        vec![
            (1, 3, fields(&["A1", "two\r\nlines, and \"quotes\""])),
            (2, 6, fields(&["A2", "a,b"])),
            (3, 7, fields(&["A3", "last"])),
        ]
    );
}

#[test]
fn empty_and_utf16_files_are_refused() {
    assert_eq!(
        read(b"", None, tmall()).unwrap_err(),
        "in.csv:1: the file is empty: a header row is required"
    );
    assert_eq!(
        read(b"\n\r\n", None, tmall()).unwrap_err(),
        "in.csv:1: the file is empty: a header row is required"
    );
    assert!(
        read(b"\xFF\xFEo\0", None, tmall())
            .unwrap_err()
            .contains("UTF-16")
    );
    let e = InputReader::open(Path::new("/nonexistent/in.csv"), None, tmall())
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("/nonexistent/in.csv: "), "{e}");
}

#[test]
fn fingerprint_is_md5_of_the_bytes() {
    let f = file(b"abc");
    assert_eq!(
        fingerprint(&f.path).unwrap(),
        "900150983cd24fb0d6963f7d28e17f72"
    );
}

#[test]
fn parse_encoding_knows_three_names() {
    assert_eq!(parse_encoding("UTF-8").unwrap(), UTF_8);
    assert_eq!(parse_encoding("gbk").unwrap(), GBK);
    assert_eq!(parse_encoding("GB18030").unwrap(), GB18030);
    assert!(parse_encoding("latin1").is_err());
}

// A throughput check, not a timed assertion: `cargo test --release --lib input::tests::million
// -- --ignored --nocapture`.
#[test]
#[ignore]
fn million_rows_stream_and_prepare() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "alipay_id,act_codes,姓名").unwrap();
    for i in 0..1_000_000u64 {
        writeln!(out, "2088{i:012},\"[\"\"a{}\"\"]\",张三{i}", i % 7).unwrap();
    }
    drop(out);
    let defaults: std::collections::BTreeMap<String, String> =
        [("scene_code", "s"), ("biz_code", "b")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let start = std::time::Instant::now();
    let mut reader = InputReader::open(&path, None, alsc()).unwrap();
    let header = reader.header().clone();
    let mut valid = 0;
    while let Some(row) = reader.next_row() {
        let row = row.unwrap();
        if let Prepared::Valid { .. } = prepare("bench", alsc(), &header, &defaults, &row.record) {
            valid += 1;
        }
    }
    assert_eq!(valid, 1_000_000);
    eprintln!("1,000,000 rows read and prepared in {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let mut reader = InputReader::open(&path, None, alsc()).unwrap();
    while let Some(row) = reader.next_row() {
        row.unwrap();
    }
    eprintln!("1,000,000 rows read in {:?}", start.elapsed());
}
