//! `campaign status`, `export` and `verify` end to end: the real binary, campaigns on the
//! built-in simulator (`url = "sim"`) or a simulator process on 127.0.0.1:0.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::*;

/// Rows that reach every status, an extra column and a formula cell.
const MIXED: &str = "open_id,note\n\
P00001,plain\n\
P00002,=SUM(A1:A3)\n\
REFUSE-0001,refused\n\
,empty id\n\
P00001,duplicate of row 1\n\
P00003,\"comma, and \"\"quotes\"\"\"\n\
P00004,上海\n";

/// A finished tmall campaign on the built-in simulator.
fn finished(input: &str, run_args: &[&str]) -> Folder {
    let folder = Folder::with(tmall_campaign("sim", "qps = 500\nconcurrency = 8"), input);
    let out = run(&folder, run_args);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    folder
}

fn status_json(folder: &Folder) -> Value {
    let out = command_expect(folder, "status", &["--json"], 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)))
}

/// Finishes a run of [`MIXED`], edits its results file with `edit`, and verifies; returns what
/// verify printed, asserting exit 1.
fn verify_tampered(edit: impl FnOnce(&mut Vec<Vec<String>>)) -> String {
    let folder = finished(MIXED, &[]);
    let mut rows = records(&folder.results());
    edit(&mut rows);
    write_records(&folder.results(), &rows);
    let out = command_expect(&folder, "verify", &[], 1);
    let printed = stdout(&out);
    assert!(printed.starts_with("verify: "), "{printed}");
    assert!(
        printed.contains("md5 is"),
        "the digest must differ: {printed}"
    );
    printed
}

#[test]
fn verify_passes_after_a_clean_run() {
    let folder = finished(MIXED, &[]);
    let out = command_expect(&folder, "verify", &[], 0);
    assert!(
        stdout(&out).starts_with("verify: OK — 7 rows reconcile"),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_names_an_edited_cell() {
    let printed = verify_tampered(|rows| {
        rows[7][1] = "北京".to_owned();
    });
    assert!(
        printed
            .contains(r#"row 7, column note: the input has "上海", the results file has "北京""#),
        "{printed}"
    );
}

#[test]
fn verify_json_is_one_object_with_findings_as_objects() {
    let folder = finished(MIXED, &[]);
    let parse = |out: &Output| -> Value {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
    };
    let out = command_expect(&folder, "verify", &["--json"], 0);
    let clean = parse(&out);
    assert_eq!(clean["ok"], true);
    assert_eq!(clean["discrepancy_count"], 0);
    assert_eq!(clean["rows_compared"], 7);
    assert_eq!(clean["discrepancies"], serde_json::json!([]));

    let mut rows = records(&folder.path("out.csv"));
    rows[7][1] = "北京".to_owned();
    rows.remove(2);
    write_records(&folder.results(), &rows);
    let out = command_expect(&folder, "verify", &["--json"], 1);
    let report = parse(&out);
    assert_eq!(report["ok"], false);
    let found = report["discrepancies"].as_array().unwrap();
    assert_eq!(report["discrepancy_count"], found.len());
    let kinds: Vec<&str> = found.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["results-digest", "cell", "missing-rows"],
        "{report}"
    );
    let cell = &found[1];
    assert_eq!(cell["row"], 7);
    assert_eq!(cell["column"], "note");
    assert_eq!(cell["expected"], "上海");
    assert_eq!(cell["found"], "北京");
    assert_eq!(cell["line"], 7);
    assert_eq!(
        (&found[2]["row"], &found[2]["last_row"]),
        (&2.into(), &2.into())
    );
}

#[test]
fn verify_names_a_deleted_row() {
    let printed = verify_tampered(|rows| {
        rows.remove(4);
    });
    assert!(
        printed.contains("row 4: missing from the results file"),
        "{printed}"
    );
    assert!(
        printed.starts_with("verify: 2 discrepancies"),
        "only the digest and the row: {printed}"
    );
}

#[test]
fn verify_names_two_swapped_rows() {
    let printed = verify_tampered(|rows| {
        rows.swap(2, 3);
    });
    assert!(
        printed.contains("row 2: out of order: it is on results line 4 after row 3"),
        "{printed}"
    );
}

#[test]
fn verify_names_a_changed_status() {
    let printed = verify_tampered(|rows| {
        let status = rows[0].iter().rposition(|c| c == "status").unwrap();
        assert_eq!(rows[3][status], "failed");
        rows[3][status] = "issued".to_owned();
    });
    assert!(
        printed.contains(
            r#"row 3, column status: the ledger has "failed", the results file has "issued""#
        ),
        "{printed}"
    );
}

#[test]
fn verify_rejects_a_results_file_from_another_campaign() {
    let folder = finished(MIXED, &[]);
    let other = Folder::with(
        CampaignFile::tmall("sim").limits("qps = 500").name("other"),
        tmall_rows(7),
    );
    assert!(matches!(command(&other, "run", &[]).status.code(), Some(0)));
    std::fs::copy(other.path("out.csv"), folder.path("out.csv")).unwrap();
    let out = command_expect(&folder, "verify", &[], 1);
    let printed = stdout(&out);
    assert!(
        printed.contains("md5 is") && printed.contains("edited or replaced"),
        "{printed}"
    );
    assert!(
        printed.contains(
            r#"row 1, column note: the input has "plain", the results file has "note 1""#
        ),
        "names the cells that differ: {printed}"
    );
}

#[test]
fn verify_fails_when_the_input_changed_after_the_run() {
    let folder = finished(MIXED, &[]);
    folder.write("in.csv", MIXED.replace("plain", "edited"));
    let out = command_expect(&folder, "verify", &[], 1);
    let printed = stdout(&out);
    assert!(
        printed.contains("changed since the ledger last read it"),
        "{printed}"
    );
    assert!(
        printed.contains(
            r#"row 1, column note: the input has "edited", the results file has "plain""#
        ),
        "{printed}"
    );
}

#[test]
fn verify_lists_an_issued_identity_no_longer_in_the_input() {
    let folder = finished(&tmall_rows(5), &[]);
    let fewer: String = tmall_rows(5)
        .lines()
        .filter(|l| !l.starts_with("P00003"))
        .map(|l| format!("{l}\n"))
        .collect();
    folder.write("in.csv", fewer);
    command_expect(&folder, "run", &[], 0);
    let out = command_expect(&folder, "verify", &[], 1);
    assert_stdout_has(&out, "identity open_id=P00003 (was row 3): issued");
    assert_eq!(status_json(&folder)["orphaned"], 1);
}

#[test]
fn status_json_counts_match_the_results_file() {
    let folder = finished(MIXED, &[]);
    let status = status_json(&folder);
    let results = folder.path("out.csv");
    for name in [
        "issued",
        "failed",
        "invalid",
        "duplicate",
        "uncertain",
        "pending",
    ] {
        assert_eq!(
            status["counts"][name].as_u64().unwrap() as usize,
            count_status(&results, name),
            "{name}: {status}"
        );
    }
    assert_eq!(status["rows"], 7);
    assert_eq!(status["progress"], 1.0);
    assert_eq!(status["running"], false);
    assert_eq!(status["campaign"], "t");
    assert_eq!(status["last_run"]["ending"], "finished");
    assert_eq!(status["last_run"]["issued"], 4);
    let refused = status["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["sub_code"] == "isv.user-not-qualified")
        .unwrap_or_else(|| panic!("errors grouped by sub-code: {status}"));
    assert_eq!(
        (refused["class"].as_str(), refused["count"].as_u64()),
        (Some("permanent"), Some(1))
    );
    assert!(
        refused["example"].as_str().is_some_and(|m| !m.is_empty()),
        "{status}"
    );

    let table = stdout(&command(&folder, "status", &[]));
    assert!(table.contains("7 of 7 rows done (100.0%)"), "{table}");
    assert!(table.contains("isv.user-not-qualified"), "{table}");
}

#[test]
fn export_reproduces_the_results_byte_for_byte_and_writes_the_attempts_log() {
    let folder = finished(MIXED, &[]);
    let written = std::fs::read(folder.path("out.csv")).unwrap();
    std::fs::remove_file(folder.path("state.db.lock")).unwrap();
    std::fs::remove_file(folder.path("out.csv")).unwrap();
    let attempts = folder.path("attempts.csv");
    let out = command(
        &folder,
        "export",
        &["--attempts", attempts.to_str().unwrap()],
    );
    assert_exit(&out, 0);
    assert!(
        std::fs::read(folder.path("out.csv")).unwrap() == written,
        "export differs from the run's results"
    );

    let log = records(&attempts);
    assert_eq!(
        log[0],
        [
            "row",
            "attempt",
            "started_at",
            "latency_ms",
            "class",
            "code",
            "sub_code",
            "message",
            "top_request_id",
            "request_id"
        ]
    );
    // One attempt per sent row: 1, 2, 3 (refused), 6, 7.
    let mut rows: Vec<&str> = log[1..].iter().map(|r| r[0].as_str()).collect();
    rows.sort();
    assert_eq!(rows, ["1", "2", "3", "6", "7"]);
    let refused = log.iter().find(|r| r[0] == "3").unwrap();
    assert_eq!(
        (refused[4].as_str(), refused[6].as_str()),
        ("permanent", "isv.user-not-qualified")
    );
    assert!(
        log[1..].iter().all(|r| r[8].starts_with("sim")),
        "top_request_id kept: {log:?}"
    );
}

#[test]
fn export_with_bom_matches_a_bom_run_and_records_its_digest() {
    let folder = finished(MIXED, &["--bom"]);
    let written = std::fs::read(folder.path("out.csv")).unwrap();
    assert!(written.starts_with(b"\xEF\xBB\xBF"));
    let out = command_expect(&folder, "export", &[], 0);
    assert!(
        stdout(&out).contains("--bom"),
        "says the mark was dropped: {}",
        text(&out)
    );
    assert_eq!(
        command(&folder, "verify", &[]).status.code(),
        Some(0),
        "the new digest is recorded"
    );
    command_expect(&folder, "export", &["--bom"], 0);
    assert!(std::fs::read(folder.path("out.csv")).unwrap() == written);
    command_expect(&folder, "verify", &[], 0);
}

#[test]
fn a_missing_state_file_is_named() {
    let folder = Folder::with(tmall_campaign("sim", ""), tmall_rows(2));
    for name in ["status", "export", "verify"] {
        let out = command(&folder, name, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(
            stderr(&out).contains("state.db: no state file: nothing has been run"),
            "{name}: {}",
            text(&out)
        );
    }
}

/// Polls `campaign status --json` until `done` says so; fails after a generous bound.
fn wait_for_status(folder: &Folder, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = command(folder, "status", &["--json"]);
        if out.status.success() {
            let status: Value = serde_json::from_slice(&out.stdout).unwrap();
            if done(&status) {
                return status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "status never got there: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_works_during_a_run_and_verify_passes_after_a_crash_and_resume() {
    let sim = Sim::start(&["--latency-ms", "100"]);
    let folder = sim.alsc("qps = 100\nconcurrency = 2", alsc_rows(40));
    let mut child = spawn_run(&folder);
    let during = wait_for_status(&folder, |s| s["counts"]["issued"].as_u64() >= Some(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run must still be going"
    );
    assert_eq!(during["running"], true, "{during}");
    assert_eq!(during["last_run"]["ending"], "running", "{during}");
    assert!(during["counts"]["pending"].as_u64() > Some(0), "{during}");

    let out = command(&folder, "export", &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "export refuses during a run: {}",
        text(&out)
    );
    assert_stderr_has(&out, "another `campaign run`");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after = status_json(&folder);
    assert_eq!(
        (
            after["running"].as_bool(),
            after["last_run"]["ending"].as_str()
        ),
        (Some(false), Some("aborted")),
        "{after}"
    );

    command_expect(&folder, "run", &[], 0);
    let out = command_expect(&folder, "verify", &[], 0);
    assert!(
        stdout(&out).starts_with("verify: OK — 40 rows reconcile"),
        "{}",
        text(&out)
    );
    assert_eq!(folder.count("issued"), 40);
    assert_eq!(sim.stats()["duplicates"], 0);
    let end = status_json(&folder);
    assert_eq!(
        (end["runs"].as_u64(), end["last_run"]["ending"].as_str()),
        (Some(2), Some("finished")),
        "{end}"
    );
}

#[test]
fn export_refuses_an_input_that_changed_since_the_run() {
    let folder = finished(MIXED, &[]);
    let written = std::fs::read(folder.path("out.csv")).unwrap();
    folder.write("in.csv", MIXED.replace("P00004", "P00009"));
    let out = command_expect(&folder, "export", &[], 2);
    assert_stderr_has(&out, "in.csv: the input file changed");
    assert!(
        std::fs::read(folder.path("out.csv")).unwrap() == written,
        "left untouched"
    );
}

/// The in-process simulator keeps its book in `state.db.sim.json`: the next run's simulator
/// knows the certificates issued before and counts a resend to the same recipient as a duplicate.
#[test]
fn the_in_process_simulator_keeps_its_book_across_runs() {
    let folder = finished(&tmall_rows(5), &[]);
    let book_path = folder.path("state.db.sim.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&book_path)
            .expect("book file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the book is owner-only");
    }
    let book: Value = serde_json::from_slice(&std::fs::read(&book_path).expect("book")).unwrap();
    assert_eq!(book["certificates"].as_array().map(Vec::len), Some(5));
    assert_eq!(book["issued"], 5);
    assert_eq!(book["duplicates"], 0);

    // A lost ledger and results: everything is sent again, and the same simulator book sees
    // every resend as a second certificate for its recipient.
    std::fs::remove_file(folder.path("state.db")).unwrap();
    std::fs::remove_file(folder.path("state.db.lock")).unwrap();
    std::fs::remove_file(folder.path("out.csv")).unwrap();
    let out = command(&folder, "run", &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let book: Value = serde_json::from_slice(&std::fs::read(&book_path).expect("book")).unwrap();
    assert_eq!(book["certificates"].as_array().map(Vec::len), Some(10));
    assert_eq!(book["duplicates"], 5);
}
