//! `campaign run` end to end: the real binary against a simulator process on 127.0.0.1:0.

use std::process::Output;

use super::common::*;

#[test]
fn tmall_happy_path_issues_every_row_once_and_keeps_extra_columns() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200\nconcurrency = 8", tmall_rows(50));
    run_expect(&folder, &[], 0);
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 50);
    assert_eq!(column(&results, "note")[49], "note 50");
    assert_eq!(
        column(&results, "row"),
        (1..=50).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let stats = sim.stats();
    assert_eq!(stats["issued"], 50);
    assert_eq!(stats["duplicates"], 0);
    // Resuming a finished campaign sends nothing more.
    run_expect(&folder, &[], 0);
    assert_eq!(sim.stats()["calls"], stats["calls"]);
}

#[test]
fn alsc_happy_path_sends_deterministic_request_ids() {
    let sim = Sim::start(&[]);
    let folder = sim.alsc("qps = 200", alsc_rows(30));
    run_expect(&folder, &[], 0);
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 30);
    let ids = column(&results, "request_id");
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
        column(&results, "issued_id")
            .iter()
            .all(|id| !id.is_empty())
    );
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn every_status_lands_in_the_results() {
    let sim = Sim::start(&[]);
    // Without reconciliation (`reconcile = false`), an uncertain row stays uncertain.
    let folder = Folder::with(
        CampaignFile::tmall(&sim.url)
            .limits("qps = 200")
            .no_reconcile(),
        "open_id,out_id,note\nOK1,,a\n,,empty\nOK2,x1,bad number\nOK1,,dup\nREFUSE-1,,refused\nLOST-1,,lost\nOK3,456,override\nOK1,456,other certificate\n",
    );
    run_expect(&folder, &[], 1);
    let results = folder.path("out.csv");
    let statuses = column(&results, "status");
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
    let messages = column(&results, "error_message");
    assert!(messages[1].contains("open_id"), "{messages:?}");
    assert!(messages[2].contains("out_id"), "{messages:?}");
    assert!(messages[3].contains("row 1"), "{messages:?}");
    assert_eq!(
        column(&results, "error_sub_code")[4],
        "isv.user-not-qualified"
    );
    // The uncertain row is never sent again without --resend-uncertain.
    let calls = sim.count("calls");
    run_expect(&folder, &[], 1);
    assert_eq!(sim.count("calls"), calls);
    run_expect(&folder, &["--resend-uncertain"], 1);
    assert_eq!(sim.count("calls"), calls + 1);
    assert_eq!(column(&results, "status")[5], "issued");
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
    let folder = sim.tmall("qps = 40\nconcurrency = 8", tmall_rows(60));
    let out = run_expect(&folder, &[], 0);
    assert_eq!(folder.count("issued"), 60);
    sim.assert_issued_once(60);
    assert!(stdout(&out).contains("throttle events"));
    assert!(folder.ledger_count("SELECT COUNT(*) FROM attempts WHERE class = 'throttled'") > 0);
    // Throttled answers are not attempts.
    assert_eq!(
        folder
            .column("attempts")
            .iter()
            .filter(|a| *a != "1")
            .count(),
        0
    );
}

#[test]
fn isp_errors_are_retried_until_every_row_is_final() {
    let sim = Sim::start(&["--isp-error-rate", "0.3", "--seed", "11"]);
    let folder = sim.alsc("qps = 500\nmax_attempts = 10", alsc_rows(80));
    run_expect(&folder, &[], 0);
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 80);
    assert!(
        column(&results, "attempts").iter().any(|a| a != "1"),
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
    // One row in flight and 50 ms per answer: at most 20/s against qps 40, so 120 rows take at
    // least 6 s, past the first progress line (every 5 s off a terminal).
    let sim = Sim::start(&["--latency-ms", "50"]);
    let folder = sim.tmall("qps = 40\nconcurrency = 1", tmall_rows(120));
    let out = run_expect(&folder, &[], 0);
    // The progress names what holds the rate back while it does.
    let progress = stderr(&out);
    assert!(
        progress
            .lines()
            .any(|l| l.contains("in-flight cap 1") && l.contains("/s")),
        "{progress}"
    );
    let out_text = stdout(&out);
    assert!(
        out_text.contains("peak in flight: 1 (concurrency = 1)"),
        "{out_text}"
    );
    let shortfall = out_text
        .lines()
        .find(|l| l.trim_start().starts_with("below qps: "))
        .unwrap_or_else(|| panic!("no shortfall line: {out_text}"));
    assert!(
        shortfall.contains("of qps 40; in-flight cap 1 held for "),
        "{shortfall}"
    );
    assert_eq!(sim.stats()["issued"], 120);
}

#[test]
fn without_a_concurrency_rows_in_flight_follow_the_latency() {
    // 200 ms per answer at qps 50: about ten rows in flight are needed, and no cap is set.
    let sim = Sim::start(&["--latency-ms", "200"]);
    let folder = sim.tmall("qps = 50", tmall_rows(100));
    let out = run_expect(&folder, &["--json"], 0);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let peak = summary["this_run"]["peak_in_flight"].as_u64().unwrap();
    // One at a time would take 20 s; the cap before any answer is 16, the ceiling 256.
    assert!((2..=256).contains(&peak), "{summary}");
    assert_eq!(sim.stats()["issued"], 100);
}

#[test]
fn kill_9_then_resume_never_issues_twice_alsc() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = sim.alsc("qps = 200\nconcurrency = 8", alsc_rows(300));
    kill_9_after(&folder, 40);
    run_expect(&folder, &[], 0);
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 300);
    let stats = sim.stats();
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert_eq!(stats["issued"], 300);
}

#[test]
fn kill_9_leaves_at_most_concurrency_uncertain_rows_tmall() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    // Without reconciliation, so that the uncertain rows stay to be counted.
    let folder = Folder::with(
        CampaignFile::tmall(&sim.url)
            .limits("qps = 200\nconcurrency = 6")
            .no_reconcile(),
        tmall_rows(300),
    );
    kill_9_after(&folder, 40);
    run_expect(&folder, &[], 1); // uncertain rows remain
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
    let folder = sim.alsc("qps = 100\nconcurrency = 4", alsc_rows(200));
    let child = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 20);
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130);
    // The interrupted run still wrote its results, with the rest pending.
    let results = folder.path("out.csv");
    assert!(count_status(&results, "pending") > 0);
    assert_eq!(
        folder.ledger_count("SELECT COUNT(*) FROM entries WHERE status = 'inflight'"),
        0
    );
    run_expect(&folder, &[], 0);
    assert_eq!(count_status(&results, "issued"), 200);
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn wrong_secret_halts_with_3_and_nothing_issued_then_the_fix_completes() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", tmall_rows(20));
    let out = command_env(&folder, "run", &[("TOP_APP_SECRET", "not-the-secret")], &[]);
    assert_exit(&out, 3);
    assert_stderr_has(&out, "secret");
    assert_eq!(sim.stats()["issued"], 0);
    assert_eq!(folder.count("pending"), 20);
    run_expect(&folder, &[], 0);
    assert_eq!(sim.stats()["issued"], 20);
}

#[test]
fn a_used_up_daily_quota_halts_and_says_when_it_ends() {
    let sim = Sim::start(&["--daily-quota", "5"]);
    let folder = sim.tmall(
        "qps = 100\nconcurrency = 1\nmax_ban_wait_s = 60",
        tmall_rows(20),
    );
    let out = run_expect(&folder, &[], 3);
    let err = stderr(&out);
    assert!(err.contains("ends around"), "{}", text(&out));
    assert_eq!(folder.count("issued"), 5);
    assert_eq!(folder.count("pending"), 15);
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
    let out = run_expect(&folder, &[], 3);
    assert_stderr_has(&out, "max_failure_rate");
    assert!(folder.count("pending") > 50);
}

#[test]
fn a_second_run_on_the_same_state_is_refused() {
    let sim = Sim::start(&["--latency-ms", "50"]);
    let folder = sim.tmall("qps = 20\nconcurrency = 2", tmall_rows(100));
    let mut first = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 1);
    let second = run_expect(&folder, &[], 2);
    assert_stderr_has(&second, "another `campaign run`");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn gbk_input_keeps_its_extra_columns_intact() {
    let (bytes, _, _) =
        encoding_rs::GBK.encode("open_id,姓名,备注\r\nG1,张伟,会员，“引号”\r\nG2,王芳,普通\r\n");
    let file = CampaignFile::tmall("sim")
        .limits("qps = 200")
        .sign_method("hmac");
    let folder = Folder::with(file, bytes);
    run_expect(&folder, &[], 0);
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "姓名"), ["张伟", "王芳"]);
    assert_eq!(column(&results, "备注"), ["会员，“引号”", "普通"]);
}

#[test]
fn results_of_a_gbk_input_get_a_bom_unless_the_campaign_says_bom_false() {
    let file = CampaignFile::tmall("sim").limits("qps = 200");
    let (bytes, _, _) = encoding_rs::GBK.encode("open_id,姓名\r\nG1,张伟\r\nG2,王芳\r\n");
    let folder = Folder::with(&file, bytes);
    let has_bom = || starts_with_bom(&folder);
    let verify = || {
        command_expect(&folder, "verify", &[], 0);
    };
    run_expect(&folder, &[], 0);
    assert!(has_bom(), "GBK input: results with a BOM by default");
    assert_eq!(folder.column("姓名"), ["张伟", "王芳"]);
    verify();

    let with_setting = |bom: &str| file.clone().set(&format!("bom = {bom}")).to_string();
    folder.write("c.toml", with_setting("false"));
    run_expect(&folder, &[], 0);
    assert!(!has_bom(), "bom = false is obeyed");
    verify();
    run_expect(&folder, &["--bom"], 0);
    assert!(has_bom(), "--bom overrides the campaign file");
    verify();

    // A UTF-8 input without a BOM gets none, unless the campaign says bom = true.
    let folder = Folder::with(&file, "open_id,姓名\nU1,张伟\n");
    assert_eq!(run(&folder, &[]).status.code(), Some(0));
    assert!(!starts_with_bom(&folder));
    folder.write("c.toml", with_setting("true"));
    assert_eq!(run(&folder, &[]).status.code(), Some(0));
    assert!(starts_with_bom(&folder));
    run_expect(&folder, &["--no-bom"], 0);
    assert!(!starts_with_bom(&folder));
}

/// Whether the folder's results file starts with a UTF-8 byte-order mark.
fn starts_with_bom(folder: &Folder) -> bool {
    std::fs::read(folder.results())
        .unwrap()
        .starts_with(b"\xEF\xBB\xBF")
}

#[test]
fn a_gbk_file_behind_a_utf8_bom_is_read_with_the_encoding_the_error_names() {
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign("sim", "qps = 200"));
    let (gbk, _, _) = encoding_rs::GBK.encode("open_id,姓名\r\nG1,张伟\r\n");
    folder.write("in.csv", [b"\xEF\xBB\xBF".as_slice(), &gbk].concat());
    let out = run_expect(&folder, &[], 2);
    let err = stderr(&out);
    assert!(
        err.contains("run again with `--encoding gbk`"),
        "{}",
        text(&out)
    );
    run_expect(&folder, &["--encoding", "gbk"], 0);
    assert_eq!(folder.column("姓名"), ["张伟"]);
}

#[test]
fn run_json_prints_one_summary_object_and_nothing_else_on_stdout() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200", "open_id\nJ1\nREFUSE-1\nJ2\n \n");
    let parse = |out: &Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
    };
    let out = run_expect(&folder, &["--json", "--dry-run"], 0);
    let plan = parse(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        (plan["to_send"].as_u64(), plan["invalid"].as_u64()),
        (Some(3), Some(1))
    );

    let out = run_expect(&folder, &["--json"], 1);
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
    // The lost answer is reconciled by query after 1 s: that request is traced too.
    let folder = sim.tmall(
        "qps = 200\nreconcile_after_s = 1",
        "open_id\nA1\nREFUSE-1\nLOST-1\n",
    );
    let out = command_env(&folder, "run", &[("RUST_LOG", "campaign=trace")], &[]);
    let wrong = command_env(
        &folder,
        "run",
        &[("TOP_APP_SECRET", "x")],
        &["--retry-failed"],
    );
    let haystack = everything(&folder, &[&out, &wrong]);
    assert!(haystack.contains("issued"), "the run did not happen");
    assert!(
        haystack.contains("tmall.nrt.certificate.query"),
        "the lost answer was not reconciled"
    );
    assert_no_secret(&haystack);
}

#[test]
fn dry_run_plans_and_sends_nothing() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 10", "open_id\nA1\nA2\n\nA1\n");
    let out = run_expect(&folder, &["--dry-run"], 0);
    let out_text = stdout(&out);
    assert!(
        out_text.contains("to send") && out_text.contains("duplicates"),
        "{out_text}"
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
    let folder = sim.tmall("qps = 10", "open_id,note\nA1,ok\nA2,\"unclosed\nA3,x\n");
    let out = run_expect(&folder, &[], 2);
    let err = stderr(&out);
    assert!(err.contains("in.csv") && err.contains('3'), "{err}");
    assert_eq!(sim.stats()["calls"], 0);
    let wrong_column = folder.write("in.csv", "alipay_id\n2088000000000001\n");
    let out = run_expect(&folder, &[], 2);
    assert_stderr_has(&out, "open_id");
    drop(wrong_column);
}

#[test]
fn a_required_param_with_no_default_and_no_column_stops_before_sending() {
    let folder = Folder::with(
        CampaignFile::tmall("sim")
            .limits("qps = 10")
            .param("biz_code", None),
        "open_id\nA1\n",
    );
    let out = run_expect(&folder, &[], 2);
    assert_stderr_has(&out, "biz_code");
    // With the column in the input instead, it runs.
    folder.write("in.csv", "open_id,biz_code\nA1,23\n");
    run_expect(&folder, &[], 0);
}

#[test]
fn an_edited_input_is_reread_and_nothing_is_sent_twice() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200", tmall_rows(5));
    run_expect(&folder, &[], 0);
    // Touched but unchanged: no warning, nothing sent.
    let unchanged = std::fs::read(folder.path("in.csv")).unwrap();
    folder.write("in.csv", &unchanged);
    let out = run(&folder, &[]);
    assert!(!stderr(&out).contains("changed"), "{}", text(&out));
    assert_eq!(sim.stats()["calls"], 5);
    // Rows moved, two new ones: the run says so, sends only the new ones, results follow the file.
    folder.write(
        "in.csv",
        "open_id,note\nNEW1,x\nP00003,moved\nP00001,moved\nNEW2,y\n",
    );
    let out = run_expect(&folder, &[], 0);
    assert_stderr_has(&out, "input file changed");
    let stats = sim.stats();
    assert_eq!(stats["calls"], 7);
    assert_eq!(stats["duplicates"], 0);
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "note"), ["x", "moved", "moved", "y"]);
    assert_eq!(column(&results, "status"), ["issued"; 4]);
}
