//! Unit tests of the row matching behind `campaign verify`: the input, ledger rows and a results
//! file in a temporary directory, with the results records tampered with in each way.

use super::findings::Findings;
use super::reconcile::{Reconciler, ResultsFile};
use crate::domain::RowStatus;
use crate::files::dialect::{self, neutralise};
use crate::input::InputReader;
use crate::ledger::query::ResultRow;
use crate::results::{COLUMNS, write::outcome_cells};
use crate::top::find_api;

const INPUT: &str = "open_id,note\nA,one\nB,=two\nC,three\nD,four\n";

fn ledger_row(row: i64) -> ResultRow {
    ResultRow {
        attempts: 1,
        issued_id: Some(format!("X{row}")),
        finished_at: Some("2026-01-01T00:00:00.000+08:00".to_owned()),
        ..ResultRow::new(row, row + 1, RowStatus::Issued)
    }
}

/// The records a correct results file holds (header first).
fn correct() -> Vec<Vec<String>> {
    let mut records = vec![
        ["open_id", "note"]
            .into_iter()
            .chain(COLUMNS)
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    ];
    for (i, line) in INPUT.lines().skip(1).enumerate() {
        let outcome = outcome_cells(&ledger_row(i as i64 + 1));
        records.push(
            line.split(',')
                .chain(outcome.iter().map(String::as_str))
                .map(|c| neutralise(c).into_owned())
                .collect(),
        );
    }
    records
}

/// Reconciles `records` against the input and four issued ledger rows; returns the findings.
fn reconcile(records: &[Vec<String>]) -> Findings {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("in.csv");
    std::fs::write(&input_path, INPUT).unwrap();
    let results_path = dir.path().join("out.csv");
    let mut writer = dialect::writer(std::fs::File::create(&results_path).unwrap());
    for r in records {
        writer.write_record(r).unwrap();
    }
    writer.flush().unwrap();

    let api = find_api("tmall.nrt.certificate.send").unwrap();
    let mut input = Some(InputReader::open(&input_path, None, api).unwrap());
    let names = input.as_ref().unwrap().header().columns.clone();
    let mut findings = Findings::default();
    let (results, header) = ResultsFile::open(&results_path, &mut findings).unwrap();
    assert_eq!(header.as_ref(), records.first());
    let mut reconciler = Reconciler::new(&mut findings, results, names, true, 4);
    for row in 1..=4 {
        assert!(reconciler.expect(&mut input, Some(ledger_row(row))));
    }
    assert!(!reconciler.expect(&mut input, None));
    reconciler.finish();
    findings
}

fn discrepancies(records: &[Vec<String>]) -> Vec<String> {
    let findings = reconcile(records);
    assert_eq!(findings.count as usize, findings.discrepancies.len());
    findings
        .discrepancies
        .into_iter()
        .map(|d| d.message)
        .collect()
}

#[test]
fn a_correct_file_reconciles_formula_cells_included() {
    assert_eq!(discrepancies(&correct()), Vec::<String>::new());
}

#[test]
fn an_edited_row_number_is_named_and_the_row_still_matched() {
    let mut records = correct();
    records[2][2] = "7".to_owned();
    assert_eq!(
        discrepancies(&records),
        [r#"row 2, column row: should be 2, the results file has "7" (line 3)"#]
    );
}

#[test]
fn a_repeated_row_and_a_row_the_ledger_lacks_are_named() {
    let mut records = correct();
    records.push(records[1].clone());
    let mut extra = records[4].clone();
    extra[0] = "E".to_owned();
    extra[2] = "9".to_owned();
    records.push(extra);
    assert_eq!(
        discrepancies(&records),
        [
            "row 1: appears twice in the results file (again on line 6)",
            "results line 7: row 9 is not in the ledger, which has 4 rows",
        ]
    );
}

#[test]
fn consecutive_missing_rows_are_one_range_and_reversed_rows_are_out_of_order() {
    let mut records = correct();
    records.drain(2..4);
    assert_eq!(
        discrepancies(&records),
        ["rows 2 to 3: missing from the results file (2 rows)"]
    );

    let mut records = correct();
    records[1..].reverse();
    let found = discrepancies(&records);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found.iter().all(|d| d.contains("out of order")),
        "{found:?}"
    );
}

#[test]
fn a_row_cell_that_is_not_a_number_and_a_short_record_are_named() {
    let mut records = correct();
    records[1][2] = "one".to_owned();
    records[1][1] = "changed".to_owned();
    records[3].truncate(12);
    let found = discrepancies(&records);
    assert_eq!(
        found,
        [
            r#"results line 2: column row holds "one", not a row number of the input"#,
            "row 3: has 12 columns on results line 4, the header 13",
            "row 1: missing from the results file",
        ]
    );
}

#[test]
fn findings_carry_where_and_both_values_in_full() {
    let mut records = correct();
    let long = format!("note {}", "y".repeat(100));
    records[2][1] = long.clone();
    records.truncate(4);
    let found = reconcile(&records).discrepancies;
    let cell = found.iter().find(|f| f.kind == "cell" && f.row == Some(2));
    let cell = cell.unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(cell.line, Some(3));
    assert_eq!(cell.column.as_deref(), Some(records[0][1].as_str()));
    assert_eq!(cell.found.as_deref(), Some(long.as_str()));
    assert!(
        cell.message.contains('…'),
        "the sentence shortens: {}",
        cell.message
    );
    let missing = found.iter().find(|f| f.kind == "missing-rows").unwrap();
    assert_eq!((missing.row, missing.last_row), (Some(4), Some(4)));
    let json = serde_json::to_value(cell).unwrap();
    for key in [
        "kind", "row", "last_row", "identity", "line", "column", "expected", "found", "message",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
}

#[test]
fn long_values_are_shortened_and_text_stays_readable() {
    assert_eq!(super::shown("上海"), "\"上海\"");
    assert_eq!(super::shown(""), "\"\"");
    let long = "x".repeat(100);
    assert_eq!(super::shown(&long), format!("\"{}\"…", "x".repeat(60)));
}

#[test]
fn a_truncated_file_reports_the_missing_tail_as_one_range() {
    let mut records = correct();
    records.truncate(3);
    assert_eq!(
        discrepancies(&records),
        ["rows 3 to 4: missing from the results file (2 rows)"]
    );
}
