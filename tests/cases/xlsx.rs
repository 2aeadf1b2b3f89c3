//! `.xlsx` in and out end to end: a workbook of recipients (numbers, a 16-digit id stored as a
//! number, a date where an id belongs, empty cells, a formula, a second sheet) through a full
//! run against a simulator process, `.xlsx` results read back, `verify`, and the sample workbook.

use std::path::Path;

use calamine::{Data, Reader, Xlsx};

use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

use super::common::*;

/// A workbook whose first sheet has recipients with every kind of cell a spreadsheet holds.
fn recipients() -> Workbook {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("名单").unwrap();
    for (column, name) in ["alipay_id", "member", "joined", "points", "bonus", "note"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *name).unwrap();
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    // Row 2: a 16-digit id stored as a number, a date, a fraction, a formula with its cached value.
    sheet.write_number(1, 0, 2088123456789012.0).unwrap();
    sheet.write_string(1, 1, "会员一").unwrap();
    let joined = ExcelDateTime::from_ymd(2024, 1, 5).unwrap();
    sheet
        .write_datetime_with_format(1, 2, &joined, &date)
        .unwrap();
    sheet.write_number(1, 3, 7.5).unwrap();
    sheet
        .write_formula(1, 4, Formula::new("=D2*2").set_result("15"))
        .unwrap();
    // Row 3: an id as text, empty cells in between.
    sheet.write_string(2, 0, "2088000000000077").unwrap();
    sheet.write_string(2, 5, "=not a formula").unwrap();
    // Row 4: a date where the id belongs.
    sheet
        .write_datetime_with_format(3, 0, &joined, &date)
        .unwrap();
    sheet.write_string(3, 1, "日期").unwrap();
    // Row 5 is empty (skipped, like a blank CSV line); row 6: a whole number with a fraction
    // format in another column.
    sheet.write_number(5, 0, 2088000000000066.0).unwrap();
    sheet.write_number(5, 3, 100.0).unwrap();

    let other = workbook.add_worksheet();
    other.set_name("second").unwrap();
    other.write_string(0, 0, "alipay_id").unwrap();
    other.write_string(1, 0, "2088000000000055").unwrap();
    workbook
}

/// An alsc campaign on `sim` reading `in.xlsx`, with a top-level `setting` (or none) and
/// `results` as its results file.
fn xlsx_campaign(sim: &Sim, setting: &str, results: &str) -> CampaignFile {
    let file = CampaignFile::alsc(&sim.url)
        .limits("qps = 200")
        .input("in.xlsx")
        .results(results);
    if setting.is_empty() {
        file
    } else {
        file.set(setting)
    }
}

/// A folder with `workbook` as `in.xlsx` and [`xlsx_campaign`] as its campaign file.
fn folder_with(workbook: &mut Workbook, sim: &Sim, setting: &str, results: &str) -> Folder {
    let folder = Folder::new();
    workbook.save(folder.path("in.xlsx")).unwrap();
    folder.write("c.toml", xlsx_campaign(sim, setting, results).to_string());
    folder
}

/// Every row of the first sheet, as cells.
fn sheet(path: &Path) -> Vec<Vec<Data>> {
    let mut workbook: Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = workbook.worksheet_range_at(0).unwrap().unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

fn cell_text(row: &[Data], header: &[Data], name: &str) -> String {
    let at = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    row.get(at).map(|d| d.to_string()).unwrap_or_default()
}

#[test]
fn a_workbook_runs_through_verify_and_its_xlsx_results_read_back() {
    let sim = Sim::start(&[]);
    let folder = folder_with(&mut recipients(), &sim, "", "out.xlsx");
    let out = run(&folder, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one invalid row: {}",
        text(&out)
    );

    // Exactly once, with every digit of the numeric id on the wire.
    let stats = sim.stats();
    assert_eq!(stats["issued"], 3, "{stats}");
    let identities = stats["issued_by_identity"].to_string();
    for id in ["2088123456789012", "2088000000000077", "2088000000000066"] {
        assert!(identities.contains(id), "{id} not issued: {identities}");
    }

    let rows = sheet(&folder.path("out.xlsx"));
    let header = &rows[0];
    let names: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    assert_eq!(
        names[..6],
        ["alipay_id", "member", "joined", "points", "bonus", "note"]
    );
    assert_eq!(names[6..8], ["row", "status"]);
    assert_eq!(rows.len(), 5, "header and four data rows: {rows:?}");
    // Ids are text cells, not numbers.
    assert_eq!(rows[1][0], Data::String("2088123456789012".into()));
    let get = |r: usize, name: &str| cell_text(&rows[r], header, name);
    assert_eq!(get(1, "joined"), "2024-01-05");
    assert_eq!(get(1, "points"), "7.5");
    assert_eq!(get(1, "bonus"), "15", "a formula gives its cached value");
    assert_eq!(get(1, "status"), "issued");
    assert_eq!(get(2, "member"), "", "an empty cell stays empty");
    assert_eq!(get(2, "note"), "=not a formula", "text, never run");
    assert_eq!(get(3, "status"), "invalid");
    assert!(
        get(3, "error_message").contains("alipay_id: the cell is a date (2024-01-05)"),
        "{}",
        get(3, "error_message")
    );
    assert_eq!(get(4, "points"), "100");
    assert_eq!(
        (get(4, "row"), get(4, "status")),
        ("4".into(), "issued".into())
    );

    command_expect(&folder, "verify", &[], 0);

    // Resuming sends nothing again; change detection sees an edited workbook.
    run_expect(&folder, &[], 1);
    sim.assert_issued_once(3);

    // The workbook results rebuild a lost ledger, and nothing is sent twice.
    std::fs::remove_file(folder.path("state.db")).unwrap();
    let out = run(&folder, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a fresh ledger is refused: {}",
        text(&out)
    );
    let from = folder.path("out.xlsx");
    command_expect(&folder, "rebuild", &["--from", from.to_str().unwrap()], 0);
    run_expect(&folder, &[], 1);
    sim.assert_issued_once(3);
}

#[test]
fn a_named_sheet_is_read_and_a_missing_one_is_named() {
    let sim = Sim::start(&[]);
    let folder = folder_with(&mut recipients(), &sim, "sheet = \"second\"", "out.csv");
    run_expect(&folder, &[], 0);
    assert_eq!(sim.stats()["issued"], 1);
    let results = std::fs::read(folder.path("out.csv")).unwrap();
    assert!(
        results.starts_with(b"\xEF\xBB\xBF"),
        "CSV results of a workbook get a BOM by default"
    );
    assert_eq!(folder.column("alipay_id"), ["2088000000000055"]);
    command_expect(&folder, "verify", &[], 0);

    let folder = folder_with(&mut recipients(), &sim, "sheet = \"third\"", "out.csv");
    let out = run_expect(&folder, &[], 2);
    let err = stderr(&out);
    assert!(
        err.contains(r#"no sheet named "third"; sheets found: "名单", "second""#),
        "{err}"
    );
}

#[test]
fn a_workbook_named_csv_and_a_value_without_a_header_are_refused_before_sending() {
    let sim = Sim::start(&[]);
    let folder = folder_with(&mut recipients(), &sim, "", "out.csv");
    std::fs::rename(folder.path("in.xlsx"), folder.path("in.csv")).unwrap();
    let file = xlsx_campaign(&sim, "", "out.csv").input("in.csv");
    folder.write("c.toml", file.to_string());
    let out = run_expect(&folder, &[], 2);
    assert_stderr_has(&out, "format = \"xlsx\"");

    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "alipay_id").unwrap();
    sheet.write_string(1, 0, "2088000000000011").unwrap();
    sheet.write_string(2, 0, "2088000000000022").unwrap();
    sheet.write_string(2, 2, "stray").unwrap();
    let folder = folder_with(&mut workbook, &sim, "", "out.csv");
    let out = run_expect(&folder, &[], 2);
    assert_stderr_has(
        &out,
        "in.xlsx:3: a value in column C, beyond the header's last column A",
    );
    assert_eq!(sim.stats()["calls"], 0, "nothing was sent");
}

#[test]
fn the_sample_campaign_runs_from_its_workbook() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let folder = Folder::new();
    for file in ["xlsx.toml", "recipients.xlsx"] {
        std::fs::copy(samples.join(file), folder.path(file)).unwrap();
    }
    let out = campaign()
        .arg("run")
        .arg(folder.path("xlsx.toml"))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let out = campaign()
        .arg("verify")
        .arg(folder.path("xlsx.toml"))
        .output()
        .unwrap();
    assert_exit(&out, 0);
}

/// Writes `samples/recipients.xlsx`: `cargo test --test cli -- --ignored regenerate`.
#[test]
#[ignore]
fn regenerate_the_sample_workbook() {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("recipients").unwrap();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (column, name) in ["alipay_id", "member", "joined", "points", "note"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *name).unwrap();
    }
    let members = [
        "王芳", "李娜", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄强",
    ];
    for (i, member) in members.iter().enumerate() {
        let row = i as u32 + 1;
        // Ids stored as numbers, as a spreadsheet does when nobody formats the column as text.
        sheet
            .write_number(row, 0, 2088000000001000.0 + row as f64)
            .unwrap();
        sheet.write_string(row, 1, *member).unwrap();
        let joined = ExcelDateTime::from_ymd(2025, 3, row as u8).unwrap();
        sheet
            .write_datetime_with_format(row, 2, &joined, &date)
            .unwrap();
        sheet
            .write_number(row, 3, 100.0 * row as f64 + 0.5)
            .unwrap();
    }
    sheet.write_string(3, 4, "VIP").unwrap();
    let notes = workbook.add_worksheet();
    notes.set_name("about").unwrap();
    notes
        .write_string(0, 0, "The first sheet is the list; this one is not read.")
        .unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/recipients.xlsx");
    workbook.save(path).unwrap();
}
