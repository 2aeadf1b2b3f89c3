//! `--limit N`: a canary run that ends like a finished one, and the run after it continues.

use super::super::common::*;

#[test]
fn a_limited_run_sends_that_many_rows_and_the_next_run_continues() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 200", tmall_rows(30));

    let canary = run_expect(&folder, &["--limit", "10"], 0);
    assert_stdout_has(
        &canary,
        "limit reached: --limit 10 rows were sent in this run; 20 rows remain pending",
    );
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 10);
    assert_eq!(count_status(&results, "pending"), 20);
    assert_eq!(sim.stats()["issued"], 10);

    let rest = run_expect(&folder, &[], 0);
    assert!(!stdout(&rest).contains("limit reached"), "{}", text(&rest));
    assert_eq!(count_status(&results, "issued"), 30);
    let stats = sim.stats();
    assert_eq!(stats["issued"], 30, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
}

#[test]
fn a_limit_larger_than_the_work_is_a_plain_finished_run() {
    let sim = Sim::start(&[]);
    let folder = sim.alsc("qps = 200", alsc_rows(5));
    let out = run_expect(&folder, &["--limit", "10"], 0);
    assert!(!stdout(&out).contains("limit reached"), "{}", text(&out));
    assert_eq!(sim.stats()["issued"], 5);
}
