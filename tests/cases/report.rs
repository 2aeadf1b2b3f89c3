//! `campaign report` end to end: runs against a simulator process with throttling, retries and
//! `uncertain` rows, or against a tiny in-test gateway whose messages carry markup; then the
//! page is checked for what a reader relies on. The browser test renders it in headless
//! Chromium when one is installed (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common::*;

/// A recipient id that is markup: it must show as text.
const SCRIPT_ID: &str = "LOST<script>alert(1)</script>";

/// Rows that get throttled (qps above the gateway's limit), retried (`FLAKY`), refused
/// (`REFUSE`) and left `uncertain` (`LOST`, answer lost after issuing).
fn input() -> String {
    let mut csv = String::from("open_id,note\n");
    for i in 1..=60 {
        csv.push_str(&format!("P{i:05},plain\n"));
    }
    for id in ["FLAKY-1", "FLAKY-2", "REFUSE-1", "LOST-1", SCRIPT_ID] {
        csv.push_str(&format!("\"{id}\",special\n"));
    }
    csv
}

/// A finished run against a simulator that throttles above 10 calls a second.
/// `top` lines are added to the campaign file.
fn throttled_run(top: &[&str]) -> (Folder, Sim, Output) {
    let sim = Sim::start(&["--limit-qps", "10", "--ban-seconds", "1", "--seed", "3"]);
    let file = CampaignFile::tmall(&sim.url)
        .limits("qps = 40\nconcurrency = 8")
        .no_reconcile();
    let file = top.iter().fold(file, |file, line| file.set(line));
    let folder = Folder::with(file, input());
    let out = command_expect(&folder, "run", &[], 1);
    (folder, sim, out)
}

fn report(folder: &Folder, args: &[&str]) -> String {
    let out = command(folder, "report", args);
    assert_exit(&out, 0);
    let path = folder.path("t.report.html");
    assert_stdout_has(&out, &path.display().to_string());
    folder.read("t.report.html")
}

/// HTML text with its character references decoded (the ones an escaper writes).
fn unescape(html: &str) -> String {
    [
        ("&lt;", "<"),
        ("&#60;", "<"),
        ("&gt;", ">"),
        ("&#62;", ">"),
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&amp;", "&"),
        ("&#38;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |text, (from, to)| text.replace(from, to))
}

/// The text of the element that follows `marker` up to the next `</table>`.
fn section<'a>(page: &'a str, marker: &str) -> &'a str {
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let rest = &page[start..];
    &rest[..rest.find("</table>").unwrap_or(rest.len())]
}

#[test]
fn a_report_shows_counts_charts_outcomes_and_uncertain_rows_escaped_and_without_secrets() {
    let (folder, sim, _) = throttled_run(&[]);
    let stats = sim.stats();
    assert!(stats["throttled"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["duplicates"], 0);
    let results = folder.path("out.csv");
    let page = report(&folder, &[]);

    // Escaped, never markup; no script at all on the page.
    assert!(!page.contains("<script"), "the page has a script element");
    assert!(
        unescape(&page).contains(SCRIPT_ID),
        "the recipient id is not shown as text"
    );
    for secret in [SECRET, SESSION] {
        assert!(!page.contains(secret), "a secret is on the page");
    }
    // Counts equal the results file's.
    let counts = section(&page, "id=\"counts\"");
    for status in ["issued", "failed", "uncertain"] {
        let n = count_status(&results, status);
        assert!(
            counts.contains(&format!("<td>{status}</td><td class=\"n\">{n}</td>")),
            "{status}: {n} not in {counts}"
        );
    }
    assert_eq!(count_status(&results, "uncertain"), 2);
    // Two charts for the one run, drawn, with the qps line and the throttling marked.
    assert_eq!(page.matches("<svg").count(), 2, "two charts expected");
    let rate = &page[page.find("id=\"rate-1\"").expect("rate chart")..];
    let rate = &rate[..rate.find("</figure>").unwrap()];
    assert!(rate.contains("<polyline"), "no line in the rate chart");
    assert!(rate.contains("qps 40"), "no qps line");
    assert!(
        rate.contains("throttled (flow control)"),
        "throttling not marked"
    );
    let latency = &page[page.find("id=\"latency-1\"").expect("latency chart")..];
    assert!(latency[..latency.find("</figure>").unwrap()].contains("p99"));
    // Outcomes by class and code: the throttled answers, the retry, the refusal, the lost ones.
    let outcomes = section(&page, "id=\"outcomes\"");
    for expected in [
        "<td>throttled</td>",
        "isp.top-remote-service-unavailable",
        "isv.user-not-qualified",
        "isp.top-remote-connection-timeout",
    ] {
        assert!(outcomes.contains(expected), "{expected} not in {outcomes}");
    }
    // The uncertain rows, and how to check them.
    let uncertain = section(&page, "id=\"uncertain\"");
    assert!(uncertain.contains("2 rows are uncertain"), "{uncertain}");
    assert!(uncertain.contains("LOST-1"));
    assert!(uncertain.contains("--resend-uncertain"));
    assert!(uncertain.contains("campaign reconcile"), "{uncertain}");
    // The facts and the verdict.
    assert!(page.contains(&sim.addr), "gateway host missing");
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(std::fs::read(&results).unwrap()))
    };
    assert!(page.contains(&md5), "results md5 {md5} missing");
    assert!(page.contains("verify: OK"), "verdict missing");
    assert!(page.len() < 1_000_000, "page of {} bytes", page.len());

    // --out writes elsewhere; an edited results file turns the verdict.
    std::fs::write(&results, "edited\n").unwrap();
    let elsewhere = folder.path("elsewhere.html");
    let out = command(
        &folder,
        "report",
        &["--out", &elsewhere.display().to_string()],
    );
    assert_exit(&out, 0);
    let elsewhere = std::fs::read_to_string(&elsewhere).expect("the page written with --out");
    assert!(!elsewhere.contains("verify: OK"));
    assert!(
        elsewhere.contains("discrepanc"),
        "{}",
        section(&elsewhere, "id=\"verify\"")
    );
}

#[test]
fn report_true_writes_the_page_at_the_end_of_each_run() {
    let (folder, _sim, out) = throttled_run(&["report = true"]);
    let path = folder.path("t.report.html");
    assert_stdout_has(&out, &format!("report: {}", path.display()));
    let page = folder.read("t.report.html");
    assert!(page.contains("verify: OK"), "the run's own report: {page}");
    assert!(!page.contains("a run is going on right now"));
    // A second run (nothing left to send) rewrites it with both runs listed.
    command_expect(&folder, "run", &[], 1);
    let page = folder.read("t.report.html");
    let runs = section(&page, "id=\"runs\"");
    // Both ended with exit 1: rows are uncertain.
    assert_eq!(
        runs.matches(">finished</td><td class=\"n\">1</td>").count(),
        2,
        "{runs}"
    );
}

#[test]
fn a_halted_run_shows_its_reason_and_exit_code() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", input());
    let out = command_env(&folder, "run", &[("TOP_APP_SECRET", "not-the-secret")], &[]);
    assert_exit(&out, 3);
    let page = report(&folder, &[]);
    let runs = section(&page, "id=\"runs\"");
    assert!(runs.contains(">halted: "), "no halt reason in {runs}");
    assert!(
        runs.contains("signature"),
        "the reason does not say what to fix: {runs}"
    );
    assert!(
        runs.contains("<td class=\"n\">3</td>"),
        "exit 3 missing: {runs}"
    );
    assert!(
        page.contains("marks where the run halted: "),
        "the chart does not say why"
    );
    assert!(!page.contains("not-the-secret"));
}

/// A gateway that refuses every call with a message full of markup, and echoes the secret.
fn hostile_gateway() -> TestServer {
    TestServer::start(|_| {
        Some(json(&format!(
            r#"{{"error_response":{{"code":15,"msg":"Remote service error","sub_code":"isv.refused","sub_msg":"<script>alert('x')</script> & <b>bold</b> {SECRET}","request_id":"r1"}}}}"#
        )))
    })
}

#[test]
fn gateway_messages_are_escaped_and_scrubbed_of_secrets() {
    let gateway = hostile_gateway();
    let folder = Folder::with(
        tmall_campaign(&gateway.url, "qps = 100"),
        "open_id\nA1\nA2\n",
    );
    command_expect(&folder, "run", &[], 1);
    let page = report(&folder, &[]);
    assert!(
        !page.contains("<script"),
        "markup from the gateway got through"
    );
    assert!(
        !page.contains("<b>bold"),
        "markup from the gateway got through"
    );
    assert!(
        unescape(&page).contains("<script>alert('x')</script> & <b>bold</b> ***"),
        "the message is not shown as text: {}",
        section(&page, "id=\"outcomes\"")
    );
    assert!(!page.contains(SECRET), "the secret is on the page");
}

/// A run whose gateway is stopped and restarted on the same port mid-run: the page shades the
/// outage on that run's rate chart and counts it in the caption.
#[test]
fn an_outage_mid_run_is_shaded_on_the_rate_chart() {
    let Restarted { folder, out, .. } = run_across_a_restart(|url| {
        let file = CampaignFile::tmall(url)
            .limits("qps = 40\nconcurrency = 4")
            .no_reconcile();
        Folder::with(file, tmall_rows(120))
    });
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert_eq!(
        folder.ledger_count("SELECT COUNT(*) FROM outages WHERE ending = 'recovered'"),
        1
    );
    let page = unescape(&report(&folder, &[]));
    assert!(
        page.contains("Shaded purple: 1 outage (the gateway could not be reached"),
        "no outage in the caption"
    );
    assert!(
        page.contains("gateway unreachable"),
        "no outage in the legend"
    );
}

#[test]
fn a_campaign_that_never_ran_has_no_report() {
    let folder = Folder::with(tmall_campaign("sim", ""), "open_id\nA1\n");
    let out = command_expect(&folder, "report", &[], 2);
    assert_stderr_has(&out, "nothing has been run");
    assert!(!folder.path("t.report.html").exists());
}

/// Headless Chromium, if installed: `CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `args`; returns stdout and stderr.
fn browse(chromium: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    // At the lowest priority: the other tests of the crate run meanwhile, and some of them
    // measure the pace of a run from the simulator's side.
    let mut command = if Path::new("/usr/bin/nice").is_file() {
        let mut nice = Command::new("/usr/bin/nice");
        nice.args(["-n", "19"]).arg(chromium);
        nice
    } else {
        Command::new(chromium)
    };
    let out = command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", text(&out));
    (stdout(&out), stderr(&out))
}

/// Console messages and failed loads that Chromium logged for a page.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Failed to load resource"))
        .collect()
}

#[test]
fn the_page_renders_in_headless_chromium_with_charts_and_no_console_errors() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("CAMPAIGN_REQUIRE_BROWSER").is_some() {
            panic!("CAMPAIGN_REQUIRE_BROWSER is set but no chromium was found on PATH");
        }
        eprintln!(
            "SKIPPED: the browser test needs chromium (apt-get install chromium, or set CHROMIUM); \
             .ci/run installs it"
        );
        return;
    };
    // The console check sees errors when there are some: a control page with one of each.
    let folder = Folder::new();
    let control = folder.write(
        "control.html",
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body>\
         <img src=\"missing.png\"><script>console.error('control error')</script></body></html>",
    );
    let (_, stderr) = browse(&chromium, &control, &["--dump-dom"]);
    assert!(
        console_errors(&stderr)
            .iter()
            .any(|l| l.contains("control error")),
        "the console check cannot see console errors: {stderr}"
    );

    let (folder, _sim, _) = throttled_run(&[]);
    report(&folder, &[]);
    let page = folder.path("t.report.html");
    let (dom, stderr) = browse(&chromium, &page, &["--dump-dom"]);
    assert!(
        console_errors(&stderr).is_empty(),
        "console errors: {:?}",
        console_errors(&stderr)
    );
    // The rendered DOM has both charts, each with drawn lines of more than one point.
    for chart in ["rate-1", "latency-1"] {
        let at = dom
            .find(&format!("id=\"{chart}\""))
            .unwrap_or_else(|| panic!("{chart} missing"));
        let figure = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        let points = figure
            .split("points=\"")
            .skip(1)
            .map(|p| p[..p.find('"').unwrap()].split_whitespace().count())
            .max()
            .unwrap_or(0);
        assert!(points >= 2, "{chart}: no line of two points or more");
    }
    assert!(!dom.contains("<script"));
    assert!(unescape(&dom).contains(SCRIPT_ID));

    // The screenshot, kept as an artifact.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &chromium,
        &page,
        &[
            "--window-size=1100,2800",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a nearly blank screenshot ({} bytes)",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
