//! Reconciling `uncertain` tmall rows with `tmall.nrt.certificate.query`, end to end: the real
//! binary against a simulator process. Exactly once is checked from the simulator's counts.

use std::process::Output;
use std::time::{Duration, Instant};

use super::common::*;

/// Runs the campaign until a run exits 0 (at most `runs` times); returns the last output.
fn run_until_done(folder: &Folder, runs: usize) -> Output {
    let mut last = None;
    for _ in 0..runs {
        let out = command(folder, "run", &[]);
        let done = out.status.code() == Some(0);
        last = Some(out);
        if done {
            break;
        }
    }
    last.expect("at least one run")
}

/// The simulator issued every row exactly once, and `verify` agrees with the results.
fn assert_exactly_once(sim: &Sim, folder: &Folder, rows: u64) {
    sim.assert_issued_once(rows);
    assert_eq!(folder.count("issued") as u64, rows);
    command_expect(folder, "verify", &[], 0);
}

fn verdicts(folder: &Folder, verdict: &str) -> i64 {
    folder.ledger_count(&format!(
        "SELECT COUNT(*) FROM reconcile_checks WHERE verdict = '{verdict}'"
    ))
}

#[test]
fn kill_9_three_times_then_resume_leaves_nothing_uncertain_and_nothing_issued_twice() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = Folder::with(
        tmall_campaign(
            &sim.url,
            "qps = 200\nconcurrency = 6\nreconcile_after_s = 1",
        ),
        tmall_rows(300),
    );
    for issued in [40, 110, 180] {
        kill_9_after(&folder, issued);
    }
    let out = run_until_done(&folder, 3);
    assert_exit(&out, 0);
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "uncertain"), 0);
    assert_exactly_once(&sim, &folder, 300);
    // The rows in flight at the kills were looked up, not sent blindly.
    assert!(verdicts(&folder, "issued") + verdicts(&folder, "resend") > 0);
}

#[test]
fn ambiguous_answers_are_all_resolved_once_reconcile_after_has_passed() {
    // 502s and malformed bodies: not processed; withheld answers and timeout sub-codes:
    // processed. The runner cannot tell them apart; the query can.
    let sim = Sim::start(&[
        "--http502-rate",
        "0.1",
        "--malformed-rate",
        "0.1",
        "--withhold-rate",
        "0.05",
        "--withhold-ms",
        "3000",
        "--timeout-subcode-rate",
        "0.05",
        "--seed",
        "11",
    ]);
    let folder = Folder::with(
        tmall_campaign(
            &sim.url,
            "qps = 100\nconcurrency = 8\nreconcile_after_s = 1",
        ),
        tmall_rows(80),
    );
    let first = command(&folder, "run", &[]);
    assert_stdout_has(&first, "reconcile after sending");
    let out = run_until_done(&folder, 6);
    assert_exit(&out, 0);
    assert_exactly_once(&sim, &folder, 80);
    // Both kinds were met: found on the platform, and found missing and sent again.
    assert!(verdicts(&folder, "issued") > 0);
    assert!(verdicts(&folder, "resend") > 0);
    let details = folder.column("detail");
    assert!(details.iter().any(|d| d.contains("reconciled")));
}

/// A simulator that withholds 30% of its answers for 3 s and shows a certificate to the query
/// `lag_ms` after issuing it, and 30 rows that ask after 1 s.
fn lagging(lag_ms: &str) -> (Sim, Folder) {
    let sim = Sim::start(&[
        "--query-lag-ms",
        lag_ms,
        "--withhold-rate",
        "0.3",
        "--withhold-ms",
        "3000",
        "--seed",
        "4",
    ]);
    let folder = sim.tmall("qps = 100\nreconcile_after_s = 1", tmall_rows(30));
    (sim, folder)
}

#[test]
fn a_query_lag_shorter_than_reconcile_after_finds_every_withheld_certificate() {
    let (sim, folder) = lagging("300");
    command_expect(&folder, "run", &[], 0);
    assert!(verdicts(&folder, "issued") > 0);
    assert_eq!(verdicts(&folder, "resend"), 0);
    assert_exactly_once(&sim, &folder, 30);
}

#[test]
fn a_query_lag_longer_than_reconcile_after_never_causes_a_resend() {
    // Certificates show 8 s after issuing; the run asks after 1 s. Neither the rows' own
    // certificates nor the control's show yet, so nothing may be sent again.
    let (sim, folder) = lagging("8000");
    let out = command_expect(&folder, "run", &[], 1);
    let results = folder.path("out.csv");
    let uncertain = count_status(&results, "uncertain");
    assert!(uncertain > 0, "{}", text(&out));
    assert_eq!(verdicts(&folder, "resend"), 0);
    let details = column(&results, "detail");
    assert!(details.iter().any(|d| d.contains("lags")), "{details:?}");
    // Once the lag has passed, `campaign reconcile` finds them all.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = command(&folder, "reconcile", &[]);
        if out.status.code() == Some(0) {
            break;
        }
        assert_exit(&out, 1);
        assert!(Instant::now() < deadline, "{}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(verdicts(&folder, "resend"), 0);
    assert_exactly_once(&sim, &folder, 30);
}

#[test]
fn a_certificate_from_before_the_campaign_is_not_taken_for_the_rows() {
    // Every send is lost with a 502 (nothing issued), and two recipients already hold a
    // certificate of the same template: a day old and 700 s old (beyond the clock allowance).
    let preissued = [
        "--preissued",
        "open_id=P00001,biz_code=23,out_id=123,channel=7",
        "--preissued",
        "open_id=P00002,biz_code=23,out_id=123,channel=7,age_s=700",
    ];
    let lossy = Sim::start(&[&["--http502-rate", "1"][..], &preissued[..]].concat());
    let folder = Folder::new();
    let limits = "qps = 100\nreconcile_after_s = 1\nmax_failure_rate = 1";
    folder.write("c.toml", tmall_campaign(&lossy.url, limits));
    folder.write("in.csv", tmall_rows(3));
    let out = command_expect(&folder, "run", &[], 1);
    let results = folder.path("out.csv");
    // Found missing, not issued with the old certificates: pending, sent by the next run.
    assert_eq!(
        column(&results, "status"),
        ["pending", "pending", "pending"],
        "{}",
        text(&out)
    );
    assert_eq!(column(&results, "issued_id"), ["", "", ""]);
    assert_eq!(lossy.stats()["issued"], 0);

    let healthy = Sim::start(&preissued);
    folder.write("c.toml", tmall_campaign(&healthy.url, limits));
    command_expect(&folder, "run", &[], 0);
    assert_exactly_once(&healthy, &folder, 3);
}

#[test]
fn more_than_one_matching_certificate_leaves_the_row_uncertain() {
    // Every call is processed, then answered with a timeout sub-code. Sent twice (the second
    // time by hand), the row has two certificates: which one is its own is unknown.
    let sim = Sim::start(&["--timeout-subcode-rate", "1"]);
    let folder = Folder::with(
        CampaignFile::tmall(&sim.url)
            .limits("qps = 100")
            .no_reconcile(),
        tmall_rows(1),
    );
    assert_eq!(command(&folder, "run", &[]).status.code(), Some(1));
    command_expect(&folder, "run", &["--resend-uncertain"], 1);
    assert_eq!(sim.stats()["duplicates"], 1);

    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 100\nreconcile_after_s = 0"),
    );
    let out = command_expect(&folder, "reconcile", &[], 1);
    let out_text = stdout(&out);
    assert!(
        out_text.contains("row 1: still uncertain: 2 certificates match"),
        "{}",
        text(&out)
    );
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "status"), ["uncertain"]);
    assert_eq!(sim.stats()["issued"], 2, "nothing more was sent");
}

#[test]
fn a_query_refused_for_permission_leaves_rows_uncertain_and_never_fails_the_run() {
    let sim = Sim::start(&["--deny-query", "--timeout-subcode-rate", "1"]);
    let folder = sim.tmall("qps = 100\nreconcile_after_s = 0", tmall_rows(3));
    let out = command_expect(&folder, "run", &[], 1);
    let all = text(&out);
    assert!(all.contains("permission"), "{all}");
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "uncertain"), 3);

    let out = command_expect(&folder, "reconcile", &[], 1);
    assert!(text(&out).contains("permission"), "{}", text(&out));
    let status = command(&folder, "status", &[]);
    assert_stdout_has(&status, "(reconcile): refused");
    assert_eq!(count_status(&results, "uncertain"), 3);
    assert_eq!(sim.stats()["issued"], 3, "nothing was sent again");
}

#[test]
fn a_throttled_query_waits_out_the_ban_and_goes_on() {
    let sim = Sim::start(&[
        "--throttle-queries",
        "2",
        "--ban-seconds",
        "1",
        "--timeout-subcode-rate",
        "1",
    ]);
    let folder = sim.tmall("qps = 100\nreconcile_after_s = 0", tmall_rows(3));
    let out = command_expect(&folder, "run", &[], 0);
    assert_stdout_has(&out, "throttled");
    assert_eq!(
        folder.ledger_count("SELECT SUM(throttle_events) FROM reconcile_passes"),
        2
    );
    assert_exactly_once(&sim, &folder, 3);
}

#[test]
fn reconcile_refuses_an_idempotent_api_and_a_campaign_that_never_ran() {
    let folder = Folder::new();
    folder.write(
        "c.toml",
        alsc_campaign("http://127.0.0.1:9/router/rest", ""),
    );
    let out = command_expect(&folder, "reconcile", &[], 2);
    assert!(text(&out).contains("idempotent"), "{}", text(&out));
    folder.write(
        "c.toml",
        tmall_campaign("http://127.0.0.1:9/router/rest", ""),
    );
    let out = command_expect(&folder, "reconcile", &[], 2);
    assert!(text(&out).contains("no state file"), "{}", text(&out));
}

/// Marks every issued row of `folder`'s ledger `uncertain`, as if their answers had been lost on
/// the way back: only the gateway's book can tell they were issued.
fn forget_answers(folder: &Folder) -> i64 {
    let conn = rusqlite::Connection::open(folder.path("state.db")).unwrap();
    let n = conn
        .execute(
            "UPDATE entries SET status = 'uncertain', issued_id = NULL WHERE status = 'issued'",
            [],
        )
        .unwrap();
    i64::try_from(n).unwrap()
}

fn book(folder: &Folder) -> serde_json::Value {
    let path = folder.path("state.db.sim.json");
    serde_json::from_slice(&std::fs::read(&path).expect("the simulator's book")).unwrap()
}

/// A run on the in-process simulator that ends early (SIGTERM mid-run) still leaves the
/// simulator's book, and the next run's reconcile finds that run's certificates through it:
/// nothing is sent twice.
#[test]
fn a_run_ended_by_sigterm_leaves_the_book_the_next_run_reconciles_with() {
    let folder = Folder::with(
        tmall_campaign("sim", "qps = 20\nconcurrency = 2\nreconcile_after_s = 0"),
        tmall_rows(200),
    );
    let child = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 5);
    signal(&child, "TERM");
    let out = wait_with_bound(child);
    assert_exit(&out, 130);
    let first = book(&folder);
    let issued = first["issued"].as_u64().unwrap();
    assert!(issued < 200, "the run was not stopped mid-way: {first}");
    assert_eq!(
        first["certificates"].as_array().map(Vec::len),
        Some(issued as usize)
    );
    assert_eq!(folder.ledger_count(ISSUED), issued as i64);

    assert_eq!(forget_answers(&folder), issued as i64);
    let out = run_expect(&folder, &[], 0);
    assert_eq!(verdicts(&folder, "issued"), issued as i64, "{}", text(&out));
    assert_eq!(verdicts(&folder, "resend"), 0, "{}", text(&out));
    // One attempt per row: no row of the first run was sent again.
    assert_eq!(folder.ledger_count("SELECT COUNT(*) FROM attempts"), 200);
    let last = book(&folder);
    assert_eq!(last["issued"], 200, "{last}");
    assert_eq!(last["duplicates"], 0, "{last}");
    assert_eq!(folder.count("issued"), 200);
}

/// `campaign sim --book FILE` stopped and started again on the same file remembers what it
/// issued: a query finds the certificates, and issuing to the same recipients again counts as
/// duplicates.
#[test]
fn a_simulator_restarted_on_its_book_remembers_what_it_issued() {
    let books = Folder::new();
    let path = books.path("book.json");
    let path = path.to_str().unwrap();
    let sim = Sim::stoppable(&["--book", path]);
    let folder = sim.tmall("qps = 100\nreconcile_after_s = 0", tmall_rows(6));
    run_expect(&folder, &[], 0);
    assert_eq!(sim.stop(), 6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the book is owner-only");
    }

    let sim = Sim::stoppable(&["--book", path]);
    assert_eq!(sim.count("issued"), 6);
    // The ledger lost the answers; the campaign now points at the restarted simulator.
    assert_eq!(forget_answers(&folder), 6);
    let toml = folder.read("c.toml");
    let old_url = toml
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .expect("a url line")
        .trim_matches('"')
        .to_owned();
    folder.write("c.toml", toml.replace(&old_url, &sim.url));
    let out = command_expect(&folder, "reconcile", &[], 0);
    assert_eq!(verdicts(&folder, "issued"), 6, "{}", text(&out));
    assert_eq!(verdicts(&folder, "resend"), 0, "{}", text(&out));
    sim.assert_issued_once(6);

    // A campaign that issues to the same recipients again: each is a duplicate.
    let again = sim.tmall("qps = 100", tmall_rows(6));
    run_expect(&again, &[], 0);
    assert_eq!(sim.count("issued"), 12);
    assert_eq!(sim.count("duplicates"), 6);
    assert_eq!(sim.stop(), 12);
}
