//! The network and the terminal, end to end: wrong endpoints halt, redirects are never followed,
//! echoed secrets are scrubbed, every signal drains, settings are bounded, logs off a terminal
//! carry no colour. The real binary against the simulator or a tiny server started in the test.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::common::*;

/// A wrong endpoint (a typo in the path: HTTP 404; an HTML page such as a captive portal) halts
/// at once with exit 3, naming the URL and the status; no row is failed or uncertain.
#[test]
fn a_wrong_endpoint_halts_at_once_naming_url_and_status() {
    let answers: [(&str, &str, &str, &str); 3] = [
        ("404 Not Found", "text/plain", "no such page", "HTTP 404"),
        ("405 Method Not Allowed", "text/plain", "", "HTTP 405"),
        (
            "200 OK",
            "text/html",
            "<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>",
            "an HTML page",
        ),
    ];
    for (status, kind, body, said) in answers {
        let server = TestServer::start(move |_| {
            Some(response(status, &format!("content-type: {kind}\r\n"), body))
        });
        let folder = Folder::with(
            tmall_campaign(&server.url, "qps = 1000\nconcurrency = 4"),
            tmall_rows(300),
        );
        let out = run_expect(&folder, &[], 3);
        let err = stderr(&out);
        assert!(
            err.contains("wrong endpoint") && err.contains(&server.url) && err.contains(said),
            "{}",
            text(&out)
        );
        let results = folder.path("out.csv");
        assert_eq!(count_status(&results, "uncertain"), 0, "{status}");
        assert_eq!(count_status(&results, "failed"), 0, "{status}");
        assert_eq!(count_status(&results, "pending"), 300, "{status}");
        // Only what was in flight when the first answer came back reached the server.
        assert!(
            server.hits() <= 4 + 4,
            "{} calls for {status}",
            server.hits()
        );
    }
}

/// A redirect is never followed: the signed form (session key included) goes to the configured
/// URL only, and the run halts naming where the redirect pointed.
#[test]
fn a_redirect_is_never_followed() {
    let sim = Sim::start(&[]);
    for status in [
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let target = sim.url.clone();
        let server = TestServer::start(move |_| {
            Some(response(status, &format!("location: {target}\r\n"), ""))
        });
        let folder = Folder::with(
            tmall_campaign(&server.url, "qps = 1000\nconcurrency = 2"),
            tmall_rows(20),
        );
        let out = run_expect(&folder, &[], 3);
        assert_stderr_has(&out, &sim.url);
        assert_eq!(folder.count("issued"), 0);
        assert!(server.hits() >= 1);
    }
    assert_eq!(sim.stats()["calls"], 0, "a redirect was followed");
}

/// A gateway page that echoes the request (form, session key, signature) leaves no secret in
/// the ledger, the results, the attempts log, `status` or the output.
#[test]
fn an_echoing_gateway_leaves_no_secret_anywhere() {
    // Business refusals that quote the whole form back, then a 403 page that does the same.
    let echo_refusal = TestServer::start(|request| {
        let form = String::from_utf8_lossy(&request.body).replace('"', "'");
        let body = format!(
            r#"{{"error_response":{{"code":15,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"bad request {form} from {}","request_id":"{SESSION}"}}}}"#,
            request.head.replace(['\r', '\n'], " ")
        );
        Some(json(&body))
    });
    let echo_page = TestServer::start(|request| {
        let page = format!(
            "<html><body>403 Forbidden {} {SESSION} {SECRET}</body></html>",
            String::from_utf8_lossy(&request.body)
        );
        Some(response(
            "403 Forbidden",
            "content-type: text/html\r\n",
            &page,
        ))
    });
    let folder = Folder::new();
    folder.write("in.csv", tmall_rows(5));
    folder.write("c.toml", tmall_campaign(&echo_refusal.url, "qps = 1000"));
    let refused = run_expect(&folder, &[], 1);
    folder.write("c.toml", tmall_campaign(&echo_page.url, "qps = 1000"));
    let halted = run_expect(&folder, &["--retry-failed"], 3);
    let status = command(&folder, "status", &[]);
    let attempts = folder.path("attempts.csv");
    let export = command(
        &folder,
        "export",
        &["--attempts", attempts.to_str().unwrap()],
    );
    let all = everything(&folder, &[&refused, &halted, &status, &export]);
    assert!(
        all.contains("bad request") && all.contains("403 Forbidden"),
        "nothing was stored"
    );
    assert!(
        all.contains("session=***"),
        "the echoed form is not there, masked"
    );
    assert_no_secret(&all);
}

/// SIGHUP (the terminal or SSH session closed) drains like Ctrl-C: results written, exit 130,
/// nothing left in flight, and the next run finishes without a duplicate.
#[test]
fn sighup_drains_and_the_next_run_finishes() {
    let sim = Sim::start(&["--latency-ms", "20"]);
    let folder = sim.alsc("qps = 100\nconcurrency = 4", alsc_rows(200));
    let child = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 10);
    signal(&child, "HUP");
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130);
    assert_stderr_has(&out, "SIGHUP");
    assert!(folder.count("pending") > 0);
    assert_eq!(
        folder
            .ledger_count("SELECT COUNT(*) FROM entries WHERE status IN ('inflight', 'uncertain')"),
        0
    );
    run_expect(&folder, &[], 0);
    assert_eq!(folder.count("issued"), 200);
    assert_eq!(sim.stats()["duplicates"], 0);
}

/// Two signals at once (closing a terminal sends SIGHUP then SIGTERM; Ctrl-C pressed twice)
/// are one interruption: the run still drains and writes its results.
#[test]
fn two_signals_at_once_are_one_interruption() {
    let sim = Sim::start(&["--latency-ms", "20"]);
    let folder = sim.tmall("qps = 100\nconcurrency = 4", tmall_rows(300));
    let child = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 10);
    let pid = child.id().to_string();
    let sent = std::process::Command::new("sh")
        .args(["-c", &format!("kill -HUP {pid}; kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130);
    assert!(!stderr(&out).contains("quitting now"), "{}", text(&out));
    let results = folder.path("out.csv");
    assert!(results.exists(), "no results: the run did not drain");
    assert_eq!(count_status(&results, "uncertain"), 0, "{}", text(&out));
    assert_eq!(sim.stats()["duplicates"], 0);
}

/// A hard quit (a second signal, well after the first) exits 130 at once, and `status` shows
/// the run as interrupted with its real duration, not the time of its last attempt.
#[test]
fn status_after_a_hard_quit_shows_the_real_duration() {
    // Every answer is withheld for a minute, so the drain after the first signal hangs.
    let sim = Sim::start(&["--withhold-rate", "1", "--withhold-ms", "60000"]);
    let folder = Folder::with(
        CampaignFile::alsc(&sim.url)
            .limits("qps = 100\nconcurrency = 2")
            .timeout_ms(120_000),
        alsc_rows(10),
    );
    let started = Instant::now();
    let child = spawn_run(&folder);
    wait_for_ledger(
        &folder,
        "SELECT COUNT(*) FROM entries WHERE status = 'inflight'",
        2,
    );
    signal(&child, "INT");
    // A second signal counts as "quit now" only once the first is old enough to be a
    // separate one: this wait is the behaviour under test, not a synchronisation.
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let lived = started.elapsed();
    assert_exit(&out, 130);
    assert_stderr_has(&out, "quitting now");
    let status = command(&folder, "status", &["--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", text(&status)));
    let last = &report["last_run"];
    assert_eq!(last["ending"], "interrupted", "{report}");
    let elapsed = last["elapsed_ms"].as_u64().unwrap();
    // At least the 700 ms between the two signals; at most the life of the process.
    assert!(
        elapsed >= 700 && elapsed <= lived.as_millis() as u64,
        "{elapsed} ms of {lived:?}"
    );
}

/// Gateway URLs with user info are refused before anything is sent; blank secrets say so.
#[test]
fn gateway_settings_are_checked_before_sending() {
    let folder = Folder::new();
    folder.write("in.csv", tmall_rows(3));
    folder.write(
        "c.toml",
        tmall_campaign("https://user:hunter2@gw.example/router/rest", ""),
    );
    let out = run_expect(&folder, &[], 2);
    let err = stderr(&out);
    assert!(
        err.contains("gateway.url: must not carry a user name or password"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    folder.write(
        "c.toml",
        tmall_campaign("https://gw.example/router/rest", ""),
    );
    let out = command_env(&folder, "run", &[("TOP_APP_SECRET", "  ")], &[]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "TOP_APP_SECRET: is empty");
}

/// Numbers out of bounds get a clear error from the command line and the campaign file, and
/// `NaN` is called what it is.
#[test]
fn out_of_bounds_numbers_are_refused_with_their_bounds() {
    let folder = Folder::new();
    folder.write("in.csv", tmall_rows(1));
    folder.write("c.toml", tmall_campaign("sim", ""));
    for (flag, value, said) in [
        ("--qps", "NaN", "is not a number"),
        ("--qps", "1e-300", "must be between 0.001 and 1000000"),
        ("--concurrency", "10000000", "must be between 1 and 10000"),
        (
            "--concurrency",
            "2305843009213693952",
            "must be between 1 and 10000",
        ),
    ] {
        let out = run_expect(&folder, &[flag, value], 2);
        assert_stderr_has(&out, said);
    }
    folder.write(
        "c.toml",
        tmall_campaign("sim", "concurrency = 2305843009213693952"),
    );
    let out = run_expect(&folder, &[], 2);
    assert_stderr_has(&out, "limits.concurrency: must be between 1 and 10000");
}

/// Logs written to a file or a pipe carry no colour codes.
#[test]
fn logs_off_a_terminal_carry_no_colour() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 1000", tmall_rows(3));
    assert_eq!(run(&folder, &[]).status.code(), Some(0));
    // An edited input makes the next run warn.
    folder.write("in.csv", tmall_rows(4));
    let out = run_expect(&folder, &[], 0);
    let err = stderr(&out);
    assert!(err.contains("WARN"), "no warning to look at: {err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
}

/// A gateway restarted for a few seconds mid-run: the run pauses while nothing can connect and
/// resumes by itself; no row fails, none is issued twice (counted across both simulator
/// processes, since a simulator keeps nothing), on both APIs; the outage is in the ledger.
#[test]
fn a_gateway_restart_mid_run_pauses_and_resumes_without_loss_or_duplicates() {
    for api in ["tmall", "alsc"] {
        let limits = "qps = 40\nconcurrency = 4";
        let Restarted {
            folder,
            out,
            issued_before,
            after: second_stats,
        } = run_across_a_restart(|url| match api {
            "tmall" => Folder::with(tmall_campaign(url, limits), tmall_rows(120)),
            _ => Folder::with(alsc_campaign(url, limits), alsc_rows(120)),
        });
        let results = folder.path("out.csv");
        // Exit 1 only for uncertain rows (see below), never for failed ones.
        let want = if count_status(&results, "uncertain") > 0 {
            1
        } else {
            0
        };
        assert_eq!(out.status.code(), Some(want), "{api}: {}", text(&out));
        assert_eq!(count_status(&results, "failed"), 0, "{api}");
        assert_eq!(count_status(&results, "pending"), 0, "{api}");
        // A request written onto a connection the stopping simulator closed at that instant
        // may lose its answer: at most what was in flight.
        let uncertain = count_status(&results, "uncertain");
        assert!(uncertain <= 4, "{api}: {uncertain} uncertain");
        assert_eq!(second_stats["duplicates"], 0, "{api}");
        let issued_after = second_stats["issued"].as_u64().unwrap();
        assert_eq!(
            (issued_before + issued_after) as usize,
            count_status(&results, "issued") + uncertain,
            "{api}: issuances across both simulators"
        );
        assert!(
            issued_after > 0,
            "{api}: nothing was sent after the restart"
        );
        assert_eq!(
            folder.ledger_count(
                "SELECT COUNT(*) FROM outages WHERE ending = 'recovered' AND ended_at IS NOT NULL"
            ),
            1,
            "{api}"
        );
        let unreachable =
            folder.ledger_count("SELECT COUNT(*) FROM attempts WHERE class = 'unreachable'");
        assert!(unreachable > 0, "{api}: no attempt met the outage");
    }
}

/// A gateway that never comes back halts the run after `max_outage_s` (exit 3), rows pending,
/// saying when the outage began; no attempt was counted against any row.
#[test]
fn an_outage_longer_than_max_outage_halts_with_rows_pending() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/router/rest", closed.local_addr().unwrap());
    drop(closed);
    let folder = Folder::with(
        alsc_campaign(&url, "qps = 100\nmax_outage_s = 1"),
        alsc_rows(30),
    );
    let out = run_expect(&folder, &[], 3);
    let err = stderr(&out);
    assert!(
        err.contains("the gateway has been unreachable since ")
            && err.contains("max_outage_s = 1 s"),
        "{err}"
    );
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "pending"), 30);
    assert_eq!(folder.ledger_count("SELECT SUM(attempts) FROM entries"), 0);
    assert_eq!(
        folder.ledger_count("SELECT COUNT(*) FROM outages WHERE ending = 'halted'"),
        1
    );
}

/// A gateway whose every answer is an HTTP error is not a TOP router: the run halts after a
/// short streak instead of turning the campaign uncertain.
#[test]
fn a_streak_of_answers_that_are_not_top_answers_halts() {
    let sim = Sim::start(&["--http502-rate", "1"]);
    let folder = sim.tmall("qps = 1000\nconcurrency = 4", tmall_rows(300));
    let out = run_expect(&folder, &[], 3);
    assert_stderr_has(&out, "answers in a row were not TOP answers");
    let uncertain = folder.count("uncertain");
    assert!(uncertain <= 20 + 4, "{uncertain} uncertain rows");
    assert!(folder.count("pending") >= 300 - 24);
}

/// Uncertain rows past `max_failure_rate` halt the run like failures do.
#[test]
fn uncertain_rows_past_the_failure_rate_halt() {
    let sim = Sim::start(&["--timeout-subcode-rate", "0.9", "--seed", "3"]);
    let folder = Folder::with(
        tmall_campaign(
            &sim.url,
            "qps = 1000\nconcurrency = 2\nmin_rows_for_halt = 20",
        ),
        tmall_rows(300),
    );
    let out = run_expect(&folder, &[], 3);
    let err = stderr(&out);
    assert!(err.contains("finished rows are uncertain"), "{err}");
    let results = folder.path("out.csv");
    let uncertain = count_status(&results, "uncertain");
    let issued = count_status(&results, "issued");
    // The halt message's figures are the final ones, as in the summary.
    assert!(
        err.contains(&format!(
            "{uncertain} of {} finished rows",
            uncertain + issued
        )),
        "{err}"
    );
    assert!(count_status(&results, "pending") > 200);
}
