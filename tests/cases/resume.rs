//! Resuming a finished or killed campaign: a run that changes nothing leaves the results file as
//! it was, any change writes it again, and `status` tells a killed run's numbers.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::common::*;

/// What identifies the file on disk: inode, size, modification and change times (ns).
fn identity(path: &Path) -> (u64, u64, i64, i64, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

const UP_TO_DATE: &str = "already up to date, left as it was";

#[test]
fn a_run_with_nothing_to_send_leaves_an_up_to_date_results_file_alone() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200", tmall_rows(6));
    let results = folder.path("out.csv");

    // A canary, then the rest: the second run changed rows, so it writes the file.
    run_expect(&folder, &["--limit", "2"], 0);
    let canary = std::fs::read(&results).unwrap();
    let out = run_expect(&folder, &[], 0);
    assert!(!stdout(&out).contains(UP_TO_DATE), "{}", text(&out));
    let full = std::fs::read(&results).unwrap();
    assert_ne!(canary, full, "the rows issued by the second run are in it");
    assert_eq!(count_status(&results, "issued"), 6);

    // Nothing to send, nothing changed: the same file, not a copy of it.
    let before = identity(&results);
    let out = run_expect(&folder, &[], 0);
    assert_stdout_has(&out, UP_TO_DATE);
    assert_eq!(identity(&results), before);
    assert_eq!(std::fs::read(&results).unwrap(), full);
    // The summary still gives the file's MD5, the one the ledger recorded.
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&full));
    assert_stdout_has(&out, &md5);

    // `--json` says so too.
    let out = run(&folder, &["--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["results"]["rewritten"], false, "{summary}");
    assert_eq!(summary["results"]["md5"], md5.as_str(), "{summary}");
    assert_eq!(identity(&results), before);
    assert_eq!(sim.stats()["calls"], 6);
}

#[test]
fn a_results_file_edited_replaced_or_removed_is_written_again() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200", tmall_rows(4));
    let results = folder.path("out.csv");
    run_expect(&folder, &[], 0);
    let good = std::fs::read(&results).unwrap();

    // Edited in place, same size (a status changed by hand).
    let edited = String::from_utf8(good.clone())
        .unwrap()
        .replacen("issued", "failed", 1);
    assert_eq!(edited.len(), good.len());
    std::fs::write(&results, &edited).unwrap();
    let out = run_expect(&folder, &[], 0);
    assert!(!stdout(&out).contains(UP_TO_DATE), "{}", text(&out));
    assert_eq!(std::fs::read(&results).unwrap(), good);

    // Replaced by a copy with the same bytes (another inode): written again, to be sure.
    std::fs::copy(&results, folder.path("copy.csv")).unwrap();
    std::fs::rename(folder.path("copy.csv"), &results).unwrap();
    let out = run(&folder, &[]);
    assert!(!stdout(&out).contains(UP_TO_DATE), "{}", text(&out));
    assert_eq!(std::fs::read(&results).unwrap(), good);

    // Removed.
    std::fs::remove_file(&results).unwrap();
    run_expect(&folder, &[], 0);
    assert_eq!(std::fs::read(&results).unwrap(), good);

    // A wanted byte-order mark that the file lacks.
    let with_bom = CampaignFile::tmall(&sim.url)
        .limits("qps = 200")
        .set("bom = true");
    folder.write("c.toml", with_bom.to_string());
    let out = run_expect(&folder, &[], 0);
    let written = std::fs::read(&results).unwrap();
    assert!(written.starts_with(b"\xEF\xBB\xBF"), "{}", text(&out));
    assert_eq!(&written[3..], &good[..]);
    assert_eq!(sim.stats()["calls"], 4);
}

#[test]
fn any_change_to_a_row_in_the_ledger_writes_the_results_again() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200", tmall_rows(3));
    let results = folder.path("out.csv");
    run_expect(&folder, &[], 0);
    let before = identity(&results);

    // A change no run made (as any tool that writes the ledger would): the ledger's own
    // trigger forgets that the file was up to date.
    let conn = rusqlite::Connection::open(folder.path("state.db")).unwrap();
    conn.execute(
        "UPDATE entries SET detail = 'changed by hand' WHERE row = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let out = run_expect(&folder, &[], 0);
    assert!(!stdout(&out).contains(UP_TO_DATE), "{}", text(&out));
    assert_ne!(identity(&results), before);
    assert_eq!(column(&results, "detail")[1], "changed by hand");
}

#[test]
fn status_of_a_killed_run_counts_what_it_recorded() {
    let sim = Sim::start(&["--latency-ms", "20"]);
    let folder = sim.tmall("qps = 200\nconcurrency = 4", tmall_rows(400));
    let mut child = spawn_run(&folder);
    let attempts = "SELECT COUNT(*) FROM attempts";
    wait_for_ledger(&folder, attempts, 20);
    child.kill().unwrap(); // SIGKILL: the run records no end
    child.wait().unwrap();

    let out = command_expect(&folder, "status", &["--json"], 0);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = &status["last_run"];
    assert_eq!(last["ending"], "aborted", "{status}");
    // Every attempt recorded is counted (the counters are kept with the attempts, in the same
    // transaction), and the issued ones match the ledger's issued rows.
    assert_eq!(
        last["sent"].as_u64(),
        Some(folder.ledger_count(attempts) as u64),
        "{status}"
    );
    assert_eq!(last["issued"], status["counts"]["issued"], "{status}");
    assert!(last["elapsed_ms"].as_u64() > Some(0), "{status}");
}
