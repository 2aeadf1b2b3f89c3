//! `campaign run` end to end: the real binary against a simulator process on 127.0.0.1:0.

use super::common::text;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::{
    Folder, SECRET, SESSION, Sim, alsc_campaign, alsc_rows, campaign, count_status, tmall_campaign,
    tmall_rows,
};

fn run(folder: &Folder, extra: &[&str]) -> Output {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(extra)
        .output()
        .expect("run campaign")
}

fn spawn_run(folder: &Folder) -> Child {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls the ledger (read-only) until `sql` counts at least `n`; fails after a generous bound.
fn wait_for_ledger(folder: &Folder, sql: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = rusqlite::Connection::open_with_flags(
            folder.path("state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
        .unwrap_or(0);
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the ledger never reached {n} for {sql}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ledger_count(folder: &Folder, sql: &str) -> i64 {
    rusqlite::Connection::open(folder.path("state.db"))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn tmall_happy_path_issues_every_row_once_and_keeps_extra_columns() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 200\nconcurrency = 8"),
    );
    folder.write("in.csv", tmall_rows(50));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 50);
    assert_eq!(super::common::column(&results, "note")[49], "note 50");
    assert_eq!(
        super::common::column(&results, "row"),
        (1..=50).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let stats = sim.stats();
    assert_eq!(stats["issued"], 50);
    assert_eq!(stats["duplicates"], 0);
    // Resuming a finished campaign sends nothing more.
    let again = run(&folder, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(sim.stats()["calls"], stats["calls"]);
}

#[test]
fn alsc_happy_path_sends_deterministic_request_ids() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", alsc_campaign(&sim.url, "qps = 200"));
    folder.write("in.csv", alsc_rows(30));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 30);
    let ids = super::common::column(&results, "request_id");
    assert!(
        ids.iter()
            .all(|id| uuid::Uuid::parse_str(id).map(|u| u.get_version_num()) == Ok(3)),
        "{ids:?}"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 30);
    assert!(
        super::common::column(&results, "issued_id")
            .iter()
            .all(|id| !id.is_empty())
    );
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn every_status_lands_in_the_results() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    // Without reconciliation (`reconcile = false`), an uncertain row stays uncertain.
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 200").replacen(
            "[gateway]",
            "reconcile = false\n\n[gateway]",
            1,
        ),
    );
    folder.write(
        "in.csv",
        "open_id,out_id,note\nOK1,,a\n,,empty\nOK2,x1,bad number\nOK1,,dup\nREFUSE-1,,refused\nLOST-1,,lost\nOK3,456,override\nOK1,456,other certificate\n",
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = folder.path("out.csv");
    let statuses = super::common::column(&results, "status");
    assert_eq!(
        statuses,
        [
            "issued",
            "invalid",
            "invalid",
            "duplicate",
            "failed",
            "uncertain",
            "issued",
            "issued"
        ]
    );
    let messages = super::common::column(&results, "error_message");
    assert!(messages[1].contains("open_id"), "{messages:?}");
    assert!(messages[2].contains("out_id"), "{messages:?}");
    assert!(messages[3].contains("row 1"), "{messages:?}");
    assert_eq!(
        super::common::column(&results, "error_sub_code")[4],
        "isv.user-not-qualified"
    );
    // The uncertain row is never sent again without --resend-uncertain.
    let calls = sim.stats()["calls"].as_u64().unwrap();
    let again = run(&folder, &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_eq!(sim.stats()["calls"].as_u64().unwrap(), calls);
    let resent = run(&folder, &["--resend-uncertain"]);
    assert_eq!(resent.status.code(), Some(1), "{}", text(&resent));
    assert_eq!(sim.stats()["calls"].as_u64().unwrap(), calls + 1);
    assert_eq!(super::common::column(&results, "status")[5], "issued");
    assert!(
        sim.stats()["calls_by_method"]
            .get("tmall.nrt.certificate.query")
            .is_none(),
        "reconcile = false asks nothing: {}",
        sim.stats()
    );
}

#[test]
fn throttling_slows_down_and_finishes_without_duplicates() {
    let sim = Sim::start(&["--limit-qps", "10", "--ban-seconds", "1"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 40\nconcurrency = 8"),
    );
    folder.write("in.csv", tmall_rows(60));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(count_status(&folder.path("out.csv"), "issued"), 60);
    let stats = sim.stats();
    assert_eq!(stats["issued"], 60);
    assert_eq!(stats["duplicates"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("throttle events"));
    assert!(
        ledger_count(
            &folder,
            "SELECT COUNT(*) FROM attempts WHERE class = 'throttled'"
        ) > 0
    );
    // Throttled answers are not attempts.
    assert_eq!(
        super::common::column(&folder.path("out.csv"), "attempts")
            .iter()
            .filter(|a| *a != "1")
            .count(),
        0
    );
}

#[test]
fn isp_errors_are_retried_until_every_row_is_final() {
    let sim = Sim::start(&["--isp-error-rate", "0.3", "--seed", "11"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        alsc_campaign(&sim.url, "qps = 500\nmax_attempts = 10"),
    );
    folder.write("in.csv", alsc_rows(80));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 80);
    assert!(
        super::common::column(&results, "attempts")
            .iter()
            .any(|a| a != "1"),
        "no retry happened"
    );
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn no_one_second_window_exceeds_qps() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 25\nconcurrency = 16"),
    );
    folder.write("in.csv", tmall_rows(100));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = sim.stats();
    assert_eq!(stats["issued"], 100);
    let peak = stats["peak_calls_per_second"].as_u64().unwrap();
    assert!(peak <= 25, "peak {peak} calls in one second with qps 25");
}

#[test]
fn a_run_held_back_by_its_in_flight_cap_says_so() {
    // One row in flight and 50 ms per answer: at most 20/s against qps 40.
    let sim = Sim::start(&["--latency-ms", "50"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 40\nconcurrency = 1"),
    );
    folder.write("in.csv", tmall_rows(60));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("peak in flight: 1 (concurrency = 1)"),
        "{stdout}"
    );
    let shortfall = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("below qps: "))
        .unwrap_or_else(|| panic!("no shortfall line: {stdout}"));
    assert!(
        shortfall.contains("of qps 40; in-flight cap 1 held for "),
        "{shortfall}"
    );
    assert_eq!(sim.stats()["issued"], 60);
}

#[test]
fn without_a_concurrency_rows_in_flight_follow_the_latency() {
    // 200 ms per answer at qps 50: about ten rows in flight are needed, and no cap is set.
    let sim = Sim::start(&["--latency-ms", "200"]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 50"));
    folder.write("in.csv", tmall_rows(100));
    let out = run(&folder, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let peak = summary["this_run"]["peak_in_flight"].as_u64().unwrap();
    // One at a time would take 20 s; the cap before any answer is 16, the ceiling 256.
    assert!((2..=256).contains(&peak), "{summary}");
    assert_eq!(sim.stats()["issued"], 100);
}

#[test]
fn kill_9_then_resume_never_issues_twice_alsc() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        alsc_campaign(&sim.url, "qps = 200\nconcurrency = 8"),
    );
    folder.write("in.csv", alsc_rows(300));
    let mut child = spawn_run(&folder);
    wait_for_ledger(
        &folder,
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        40,
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 300);
    let stats = sim.stats();
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert_eq!(stats["issued"], 300);
}

#[test]
fn kill_9_leaves_at_most_concurrency_uncertain_rows_tmall() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = Folder::new();
    // Without reconciliation, so that the uncertain rows stay to be counted.
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 200\nconcurrency = 6").replacen(
            "[gateway]",
            "reconcile = false\n\n[gateway]",
            1,
        ),
    );
    folder.write("in.csv", tmall_rows(300));
    let mut child = spawn_run(&folder);
    wait_for_ledger(
        &folder,
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        40,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out)); // uncertain rows remain
    let results = folder.path("out.csv");
    let uncertain = count_status(&results, "uncertain");
    assert!(
        uncertain <= 6,
        "{uncertain} uncertain rows with concurrency 6"
    );
    assert_eq!(count_status(&results, "issued") + uncertain, 300);
    let stats = sim.stats();
    assert_eq!(stats["duplicates"], 0, "{stats}");
}

#[test]
fn ctrl_c_exits_130_and_the_next_run_finishes() {
    let sim = Sim::start(&["--latency-ms", "20"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        alsc_campaign(&sim.url, "qps = 100\nconcurrency = 4"),
    );
    folder.write("in.csv", alsc_rows(200));
    let child = spawn_run(&folder);
    wait_for_ledger(
        &folder,
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        20,
    );
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    // The interrupted run still wrote its results, with the rest pending.
    let results = folder.path("out.csv");
    assert!(count_status(&results, "pending") > 0);
    assert_eq!(
        ledger_count(
            &folder,
            "SELECT COUNT(*) FROM entries WHERE status = 'inflight'"
        ),
        0
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(count_status(&results, "issued"), 200);
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn wrong_secret_halts_with_3_and_nothing_issued_then_the_fix_completes() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(20));
    let out = campaign()
        .env("TOP_APP_SECRET", "not-the-secret")
        .arg("run")
        .arg(folder.path("c.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secret"),
        "{}",
        text(&out)
    );
    assert_eq!(sim.stats()["issued"], 0);
    assert_eq!(count_status(&folder.path("out.csv"), "pending"), 20);
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sim.stats()["issued"], 20);
}

#[test]
fn a_used_up_daily_quota_halts_and_says_when_it_ends() {
    let sim = Sim::start(&["--daily-quota", "5"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 100\nconcurrency = 1\nmax_ban_wait_s = 60"),
    );
    folder.write("in.csv", tmall_rows(20));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ends around"), "{}", text(&out));
    assert_eq!(count_status(&folder.path("out.csv"), "issued"), 5);
    assert_eq!(count_status(&folder.path("out.csv"), "pending"), 15);
}

#[test]
fn permanent_failures_over_the_limit_halt_the_run() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(
            &sim.url,
            "qps = 500\nconcurrency = 1\nmax_failure_rate = 0.2\nmin_rows_for_halt = 10",
        ),
    );
    let mut csv = String::from("open_id\n");
    for i in 0..100 {
        csv.push_str(&format!("REFUSE-{i}\n"));
    }
    folder.write("in.csv", csv);
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_failure_rate"),
        "{}",
        text(&out)
    );
    assert!(count_status(&folder.path("out.csv"), "pending") > 50);
}

#[test]
fn a_second_run_on_the_same_state_is_refused() {
    let sim = Sim::start(&["--latency-ms", "50"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 20\nconcurrency = 2"),
    );
    folder.write("in.csv", tmall_rows(100));
    let mut first = spawn_run(&folder);
    wait_for_ledger(
        &folder,
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        1,
    );
    let second = run(&folder, &[]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another `campaign run`"),
        "{}",
        text(&second)
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn gbk_input_keeps_its_extra_columns_intact() {
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign("sim", "qps = 200").replace("hmac-sha256", "hmac"),
    );
    let (bytes, _, _) =
        encoding_rs::GBK.encode("open_id,姓名,备注\r\nG1,张伟,会员，“引号”\r\nG2,王芳,普通\r\n");
    folder.write("in.csv", bytes);
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(super::common::column(&results, "姓名"), ["张伟", "王芳"]);
    assert_eq!(
        super::common::column(&results, "备注"),
        ["会员，“引号”", "普通"]
    );
}

#[test]
fn results_of_a_gbk_input_get_a_bom_unless_the_campaign_says_bom_false() {
    let folder = Folder::new();
    let toml = tmall_campaign("sim", "qps = 200");
    folder.write("c.toml", &toml);
    let (bytes, _, _) = encoding_rs::GBK.encode("open_id,姓名\r\nG1,张伟\r\nG2,王芳\r\n");
    folder.write("in.csv", bytes);
    let starts_with_bom = || {
        std::fs::read(folder.path("out.csv"))
            .unwrap()
            .starts_with(b"\xEF\xBB\xBF")
    };
    let verify = || {
        let out = campaign()
            .arg("verify")
            .arg(folder.path("c.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    };
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        starts_with_bom(),
        "GBK input: results with a BOM by default"
    );
    assert_eq!(
        super::common::column(&folder.path("out.csv"), "姓名"),
        ["张伟", "王芳"]
    );
    verify();

    let with_setting = |bom: &str| {
        toml.replace(
            "state = \"state.db\"\n",
            &format!("state = \"state.db\"\nbom = {bom}\n"),
        )
    };
    folder.write("c.toml", with_setting("false"));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!starts_with_bom(), "bom = false is obeyed");
    verify();
    let out = run(&folder, &["--bom"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(starts_with_bom(), "--bom overrides the campaign file");
    verify();

    // A UTF-8 input without a BOM gets none, unless the campaign says bom = true.
    let folder = Folder::new();
    folder.write("c.toml", &toml);
    folder.write("in.csv", "open_id,姓名\nU1,张伟\n");
    assert_eq!(run(&folder, &[]).status.code(), Some(0));
    assert!(
        !std::fs::read(folder.path("out.csv"))
            .unwrap()
            .starts_with(b"\xEF\xBB\xBF")
    );
    folder.write("c.toml", with_setting("true"));
    assert_eq!(run(&folder, &[]).status.code(), Some(0));
    assert!(
        std::fs::read(folder.path("out.csv"))
            .unwrap()
            .starts_with(b"\xEF\xBB\xBF")
    );
    let out = run(&folder, &["--no-bom"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !std::fs::read(folder.path("out.csv"))
            .unwrap()
            .starts_with(b"\xEF\xBB\xBF")
    );
}

#[test]
fn a_gbk_file_behind_a_utf8_bom_is_read_with_the_encoding_the_error_names() {
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign("sim", "qps = 200"));
    let (gbk, _, _) = encoding_rs::GBK.encode("open_id,姓名\r\nG1,张伟\r\n");
    folder.write("in.csv", [b"\xEF\xBB\xBF".as_slice(), &gbk].concat());
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("run again with `--encoding gbk`"),
        "{}",
        text(&out)
    );
    let out = run(&folder, &["--encoding", "gbk"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        super::common::column(&folder.path("out.csv"), "姓名"),
        ["张伟"]
    );
}

#[test]
fn run_json_prints_one_summary_object_and_nothing_else_on_stdout() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 200"));
    folder.write("in.csv", "open_id\nJ1\nREFUSE-1\nJ2\n \n");
    let parse = |out: &Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
    };
    let out = run(&folder, &["--json", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = parse(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        (plan["to_send"].as_u64(), plan["invalid"].as_u64()),
        (Some(3), Some(1))
    );

    let out = run(&folder, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summary = parse(&out);
    assert_eq!(summary["ending"], "finished");
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["rows"], 4);
    let counts = &summary["counts"];
    assert_eq!(
        [&counts["issued"], &counts["failed"], &counts["invalid"]],
        [2, 1, 1]
    );
    assert_eq!(summary["this_run"]["sent"], 3);
    assert_eq!(sim.stats()["issued"], 2, "the simulator agrees");
    let md5 = summary["results"]["md5"].as_str().unwrap();
    let bytes = std::fs::read(folder.path("out.csv")).unwrap();
    assert_eq!(md5, hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes)));
    assert_eq!(summary["results"]["bom"], false);
}

#[test]
fn secrets_never_reach_output_ledger_or_results() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    // The lost answer is reconciled by query after 1 s: that request is traced too.
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 200\nreconcile_after_s = 1"),
    );
    folder.write("in.csv", "open_id\nA1\nREFUSE-1\nLOST-1\n");
    let out = campaign()
        .env("RUST_LOG", "campaign=trace")
        .arg("run")
        .arg(folder.path("c.toml"))
        .output()
        .unwrap();
    let wrong = campaign()
        .env("TOP_APP_SECRET", "x")
        .arg("run")
        .arg(folder.path("c.toml"))
        .arg("--retry-failed")
        .output()
        .unwrap();
    let mut everything = [out.stdout, out.stderr, wrong.stdout, wrong.stderr].concat();
    for file in ["state.db", "state.db-wal", "out.csv"] {
        everything.extend(std::fs::read(folder.path(file)).unwrap_or_default());
    }
    let haystack = String::from_utf8_lossy(&everything);
    assert!(haystack.contains("issued"), "the run did not happen");
    assert!(
        haystack.contains("tmall.nrt.certificate.query"),
        "the lost answer was not reconciled"
    );
    assert!(!haystack.contains(SECRET), "the app secret leaked");
    assert!(!haystack.contains(SESSION), "the session leaked");
}

#[test]
fn dry_run_plans_and_sends_nothing() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 10"));
    folder.write("in.csv", "open_id\nA1\nA2\n\nA1\n");
    let out = run(&folder, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("to send") && stdout.contains("duplicates"),
        "{stdout}"
    );
    assert_eq!(sim.stats()["calls"], 0);
    assert!(
        !folder.path("state.db").exists(),
        "a dry run created the state file"
    );
}

#[test]
fn a_malformed_file_stops_before_sending_with_its_line() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 10"));
    folder.write("in.csv", "open_id,note\nA1,ok\nA2,\"unclosed\nA3,x\n");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in.csv") && stderr.contains('3'),
        "{stderr}"
    );
    assert_eq!(sim.stats()["calls"], 0);
    let wrong_column = folder.write("in.csv", "alipay_id\n2088000000000001\n");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("open_id"),
        "{}",
        text(&out)
    );
    drop(wrong_column);
}

#[test]
fn a_required_param_with_no_default_and_no_column_stops_before_sending() {
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign("sim", "qps = 10").replace("biz_code = \"23\"\n", ""),
    );
    folder.write("in.csv", "open_id\nA1\n");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("biz_code"),
        "{}",
        text(&out)
    );
    // With the column in the input instead, it runs.
    folder.write("in.csv", "open_id,biz_code\nA1,23\n");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_edited_input_is_reread_and_nothing_is_sent_twice() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 200"));
    folder.write("in.csv", tmall_rows(5));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Touched but unchanged: no warning, nothing sent.
    let unchanged = std::fs::read(folder.path("in.csv")).unwrap();
    folder.write("in.csv", &unchanged);
    let out = run(&folder, &[]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("changed"),
        "{}",
        text(&out)
    );
    assert_eq!(sim.stats()["calls"], 5);
    // Rows moved, two new ones: the run says so, sends only the new ones, results follow the file.
    folder.write(
        "in.csv",
        "open_id,note\nNEW1,x\nP00003,moved\nP00001,moved\nNEW2,y\n",
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("input file changed"),
        "{}",
        text(&out)
    );
    let stats = sim.stats();
    assert_eq!(stats["calls"], 7);
    assert_eq!(stats["duplicates"], 0);
    let results = folder.path("out.csv");
    assert_eq!(
        super::common::column(&results, "note"),
        ["x", "moved", "moved", "y"]
    );
    assert_eq!(super::common::column(&results, "status"), ["issued"; 4]);
}
