//! The `max_issued` budget: across a kill -9 and a resume, refusals given back, shown by
//! `status` and `--dry-run`.

use std::process::Output;

use super::super::common::*;

/// Runs until some rows are issued, kills the run (SIGKILL), and resumes it with a budget of
/// 100: the resumed run must stop at the budget, counting rows that were in flight at the kill.
fn budget_survives_a_kill(sim: &Sim, folder: &Folder) -> Output {
    kill_9_after(folder, 40);
    let issued_before = sim.count("issued");
    assert!(
        issued_before < 100,
        "the kill came too late: {issued_before}"
    );

    let resumed = run(folder, &[]);
    assert_exit(&resumed, 3);
    assert_stderr_has(
        &resumed,
        "the budget is reached: 100 rows (limits.max_issued)",
    );
    assert_stdout_has(&resumed, "budget: 100 of max_issued = 100 used");
    resumed
}

#[test]
fn the_budget_holds_across_a_kill_and_a_resume_idempotent_api() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = sim.alsc(
        "qps = 200\nconcurrency = 8\nmax_issued = 100",
        alsc_rows(300),
    );
    budget_survives_a_kill(&sim, &folder);
    let stats = sim.stats();
    // Rows in flight at the kill were sent again with their request_id: issued once each.
    assert_eq!(stats["issued"], 100, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 100);
    assert_eq!(count_status(&results, "pending"), 200);

    // Used up: the next run sends nothing and says so again.
    let calls = sim.stats()["calls"].clone();
    run_expect(&folder, &[], 3);
    assert_eq!(sim.stats()["calls"], calls);

    let status = command(&folder, "status", &[]);
    assert_stdout_has(
        &status,
        "budget    100 of 100 used (issued or possibly issued), 0 left",
    );
    let json = command(&folder, "status", &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        json["budget"],
        serde_json::json!({"max": 100, "used": 100, "left": 0})
    );
}

#[test]
fn the_budget_holds_across_a_kill_and_a_resume_non_idempotent_api() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = sim.tmall(
        "qps = 200\nconcurrency = 8\nmax_issued = 100",
        tmall_rows(300),
    );
    budget_survives_a_kill(&sim, &folder);
    let results = folder.path("out.csv");
    // Rows in flight at the kill are uncertain: they may have been issued, so they count.
    let issued = count_status(&results, "issued");
    let uncertain = count_status(&results, "uncertain");
    assert_eq!(issued + uncertain, 100);
    let stats = sim.stats();
    let at_gateway = stats["issued"].as_u64().unwrap() as usize;
    assert!(
        (issued..=100).contains(&at_gateway),
        "{at_gateway} issued at the gateway, budget 100: {stats}"
    );
    assert_eq!(stats["duplicates"], 0, "{stats}");
}

#[test]
fn rows_the_platform_refused_give_their_share_of_the_budget_back() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 200\nmax_issued = 5\nconcurrency = 2"),
    );
    let mut csv = String::from("open_id\n");
    for i in 1..=3 {
        csv.push_str(&format!("REFUSE{i}\n"));
    }
    for i in 1..=7 {
        csv.push_str(&format!("P{i:05}\n"));
    }
    folder.write("in.csv", csv);
    run_expect(&folder, &[], 3);
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "failed"), 3);
    assert_eq!(count_status(&results, "issued"), 5);
    assert_eq!(count_status(&results, "pending"), 2);
    assert_eq!(sim.stats()["issued"], 5);
}

#[test]
fn dry_run_shows_the_budget_and_the_limit() {
    let folder = Folder::with(
        tmall_campaign("http://127.0.0.1:9/router/rest", "max_issued = 20"),
        tmall_rows(30),
    );
    let out = run_expect(&folder, &["--dry-run", "--limit", "5"], 0);
    let plan = stdout(&out);
    assert!(
        plan.contains("budget                  0 of max_issued = 20 used, 20 left"),
        "{plan}"
    );
    assert!(
        plan.contains("--limit                 5 rows at most in this run"),
        "{plan}"
    );
    assert!(
        plan.contains("this run sends          5 (then stops: the limit)"),
        "{plan}"
    );
}
