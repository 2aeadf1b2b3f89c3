//! `campaign check` against the simulator: a good setup and each problem it names.

use super::super::common::*;

/// `campaign check` with `env` set, asserting its exit code; returns what it printed.
#[track_caller]
fn check(folder: &Folder, env: &[(&str, &str)], code: i32) -> String {
    let out = command_env(folder, "check", env, &[]);
    assert_exit(&out, code);
    stdout(&out)
}

/// A tmall campaign (it needs the session) against `url`.
fn check_folder(url: &str, limits: &str) -> Folder {
    Folder::with(tmall_campaign(url, limits), tmall_rows(10))
}

/// The calls the simulator got, by method; and that nothing was issued.
fn methods_called(sim: &Sim) -> serde_json::Value {
    let stats = sim.stats();
    assert_eq!(stats["issued"], 0, "check issued something: {stats}");
    stats["calls_by_method"].clone()
}

#[test]
fn check_passes_a_good_setup_and_issues_nothing() {
    let sim = Sim::start(&[]);
    let folder = check_folder(&sim.url, "qps = 50\nconcurrency = 8");
    let report = check(&folder, &[], 0);
    for expected in [
        "ok       campaign file",
        "ok       input          ",
        "10 rows, 0 invalid, 0 duplicate",
        "ok       folders",
        "ok       secrets        TOP_APP_SECRET and TOP_SESSION are set",
        "ok       signed call    taobao.time.get answered in",
        "ok       session        taobao.user.seller.get accepted the session (seller sim-seller)",
        "ok       clock",
        "ok       latency",
        "check: all well",
    ] {
        assert!(report.contains(expected), "{expected:?} in\n{report}");
    }
    let methods = methods_called(&sim);
    assert!(
        methods["taobao.time.get"].as_u64().unwrap() >= 1,
        "{methods}"
    );
    assert_eq!(methods["taobao.user.seller.get"], 1, "{methods}");
    assert!(
        methods
            .get("tmall.nrt.certificate.send")
            .is_none_or(|n| n == 0),
        "{methods}"
    );
}

#[test]
fn check_names_a_wrong_secret_and_what_to_fix() {
    let sim = Sim::start(&[]);
    let folder = check_folder(&sim.url, "");
    let report = check(&folder, &[("TOP_APP_SECRET", "not-the-secret-5d2")], 3);
    assert!(
        report.contains("PROBLEM  signed call    taobao.time.get: refused: code 25"),
        "{report}"
    );
    assert!(
        report.contains("fix: the signature was rejected"),
        "{report}"
    );
    assert!(
        !report.contains("not-the-secret-5d2"),
        "the secret leaked: {report}"
    );
    methods_called(&sim);
}

#[test]
fn check_names_a_wrong_session() {
    let sim = Sim::start(&[]);
    let folder = check_folder(&sim.url, "");
    let report = check(&folder, &[("TOP_SESSION", "expired-session-8e1")], 3);
    assert!(report.contains("ok       signed call"), "{report}");
    assert!(
        report.contains("PROBLEM  session        taobao.user.seller.get: refused: code 27"),
        "{report}"
    );
    assert!(
        report.contains("fix: the session key is missing, invalid or expired"),
        "{report}"
    );
    assert!(
        !report.contains("expired-session-8e1"),
        "the session leaked: {report}"
    );
    methods_called(&sim);
}

#[test]
fn check_measures_the_clock_skew_to_the_gateway() {
    // Five minutes ahead: accepted by the platform, but said.
    let sim = Sim::start(&["--clock-offset-s", "300"]);
    let folder = check_folder(&sim.url, "");
    let report = check(&folder, &[], 0);
    let line = report.lines().find(|l| l.contains(" clock ")).unwrap();
    let behind: i64 = line
        .split("clock is ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no skew in {line:?}"));
    assert!((299..=300).contains(&behind), "{line}");
    assert!(
        line.starts_with("  note") && line.contains("s behind the gateway's"),
        "{line}"
    );

    // Fifteen minutes: the gateway refuses the timestamp; the fix is the clock.
    let skewed = Sim::start(&["--clock-offset-s", "900"]);
    let folder = check_folder(&skewed.url, "");
    let report = check(&folder, &[], 3);
    assert!(report.contains("refused: code 31"), "{report}");
    assert!(
        report.contains("fix: the timestamp was rejected: check this machine's clock"),
        "{report}"
    );
}

#[test]
fn check_says_which_concurrency_the_qps_needs() {
    let sim = Sim::start(&["--latency-ms", "200"]);
    let folder = check_folder(&sim.url, "qps = 100\nconcurrency = 4");
    let report = check(&folder, &[], 3);
    assert!(report.contains("PROBLEM  latency"), "{report}");
    assert!(
        report.contains("fix: raise limits.concurrency to at least"),
        "{report}"
    );
}

#[test]
fn check_reports_an_unreachable_gateway_and_bad_files() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let folder = check_folder(&format!("http://127.0.0.1:{port}/router/rest"), "");
    folder.write("in.csv", "open_id,note\n\"unbalanced,1\n");
    let report = check(&folder, &[], 3);
    assert!(report.contains("PROBLEM  input"), "{report}");
    assert!(
        report.contains(
            "PROBLEM  signed call    taobao.time.get: no answer from the gateway: cannot connect"
        ),
        "{report}"
    );
    assert!(report.contains("fix: check gateway.url"), "{report}");
    assert!(report.contains("check: 2 problems"), "{report}");

    // Secrets missing: said, and no call is made without them.
    let out = campaign()
        .arg("check")
        .arg(folder.path("c.toml"))
        .env_remove("TOP_SESSION")
        .output()
        .unwrap();
    assert_exit(&out, 3);
    assert_stdout_has(&out, "PROBLEM  secrets");

    // A campaign file that does not load is a problem too.
    folder.write("c.toml", "name = \"t\"\n");
    let out = command_expect(&folder, "check", &[], 3);
    assert_stdout_has(&out, "PROBLEM  campaign file");
}
