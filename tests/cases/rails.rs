//! The safety rails of a money-issuing run, end to end against a simulator process: the
//! `--limit` canary, the `max_issued` budget, the confirmation prompt, `campaign check` and
//! notifications.

use std::process::{Output, Stdio};

use super::common::{
    Folder, Sim, alsc_campaign, alsc_rows, campaign, count_status, text, tmall_campaign,
    tmall_rows, wait_for_count,
};

fn run(folder: &Folder, extra: &[&str]) -> Output {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(extra)
        .output()
        .expect("run campaign")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_limited_run_sends_that_many_rows_and_the_next_run_continues() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 200"));
    folder.write("in.csv", tmall_rows(30));

    let canary = run(&folder, &["--limit", "10"]);
    assert_eq!(canary.status.code(), Some(0), "{}", text(&canary));
    assert!(
        stdout(&canary).contains(
            "limit reached: --limit 10 rows were sent in this run; 20 rows remain pending"
        ),
        "{}",
        text(&canary)
    );
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "issued"), 10);
    assert_eq!(count_status(&results, "pending"), 20);
    assert_eq!(sim.stats()["issued"], 10);

    let rest = run(&folder, &[]);
    assert_eq!(rest.status.code(), Some(0), "{}", text(&rest));
    assert!(!stdout(&rest).contains("limit reached"), "{}", text(&rest));
    assert_eq!(count_status(&results, "issued"), 30);
    let stats = sim.stats();
    assert_eq!(stats["issued"], 30, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
}

#[test]
fn a_limit_larger_than_the_work_is_a_plain_finished_run() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", alsc_campaign(&sim.url, "qps = 200"));
    folder.write("in.csv", alsc_rows(5));
    let out = run(&folder, &["--limit", "10"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stdout(&out).contains("limit reached"), "{}", text(&out));
    assert_eq!(sim.stats()["issued"], 5);
}

/// Runs until some rows are issued, kills the run (SIGKILL), and resumes it with a budget of
/// 100: the resumed run must stop at the budget, counting rows that were in flight at the kill.
fn budget_survives_a_kill(sim: &Sim, folder: &Folder) -> Output {
    let mut child = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &folder.path("state.db"),
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        40,
    );
    child.kill().unwrap(); // SIGKILL: rows in flight stay marked in flight
    child.wait().unwrap();
    let issued_before = sim.stats()["issued"].as_u64().unwrap();
    assert!(
        issued_before < 100,
        "the kill came too late: {issued_before}"
    );

    let resumed = run(folder, &[]);
    assert_eq!(resumed.status.code(), Some(3), "{}", text(&resumed));
    assert!(
        stderr(&resumed).contains("the budget is reached: 100 rows (limits.max_issued)"),
        "{}",
        text(&resumed)
    );
    assert!(
        stdout(&resumed).contains("budget: 100 of max_issued = 100 used"),
        "{}",
        text(&resumed)
    );
    resumed
}

#[test]
fn the_budget_holds_across_a_kill_and_a_resume_idempotent_api() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        alsc_campaign(&sim.url, "qps = 200\nconcurrency = 8\nmax_issued = 100"),
    );
    folder.write("in.csv", alsc_rows(300));
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
    let again = run(&folder, &[]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    assert_eq!(sim.stats()["calls"], calls);

    let status = campaign()
        .arg("status")
        .arg(folder.path("c.toml"))
        .output()
        .unwrap();
    assert!(
        stdout(&status).contains("budget    100 of 100 used (issued or possibly issued), 0 left"),
        "{}",
        text(&status)
    );
    let json = campaign()
        .args(["status", "--json"])
        .arg(folder.path("c.toml"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        json["budget"],
        serde_json::json!({"max": 100, "used": 100, "left": 0})
    );
}

#[test]
fn the_budget_holds_across_a_kill_and_a_resume_non_idempotent_api() {
    let sim = Sim::start(&["--latency-ms", "30"]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 200\nconcurrency = 8\nmax_issued = 100"),
    );
    folder.write("in.csv", tmall_rows(300));
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
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(count_status(&results, "failed"), 3);
    assert_eq!(count_status(&results, "issued"), 5);
    assert_eq!(count_status(&results, "pending"), 2);
    assert_eq!(sim.stats()["issued"], 5);
}

#[test]
fn dry_run_shows_the_budget_and_the_limit() {
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign("http://127.0.0.1:9/router/rest", "max_issued = 20"),
    );
    folder.write("in.csv", tmall_rows(30));
    let out = run(&folder, &["--dry-run", "--limit", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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

/// How the in-test webhook receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// HTTP 200 with `{"errcode":0,"errmsg":"ok"}`.
    Ok,
    /// HTTP 500.
    Error,
    /// Reads the request and never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    /// Path and query, e.g. `/robot/send?access_token=t&timestamp=..&sign=..`.
    target: String,
    body: serde_json::Value,
}

/// A webhook receiver on 127.0.0.1:0 that records every request.
struct Receiver {
    addr: std::net::SocketAddr,
    got: std::sync::mpsc::Receiver<Received>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, got) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                // A post given up half-way (a cancelled progress message) is skipped.
                let read = |stream: &std::net::TcpStream| -> std::io::Result<(String, Vec<u8>)> {
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let mut request_line = String::new();
                    reader.read_line(&mut request_line)?;
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line)?;
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body)?;
                    Ok((request_line, body))
                };
                let Ok((request_line, body)) = read(&stream) else {
                    continue;
                };
                let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let _ = tx.send(Received { target, body });
                let (status, reply) = match answer {
                    Answer::Ok => ("200 OK", r#"{"errcode":0,"errmsg":"ok"}"#),
                    Answer::Error => ("500 Internal Server Error", "oops"),
                    Answer::Hang => {
                        held.push(stream);
                        continue;
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Receiver { addr, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far (the run that sent them has ended).
    fn all(&self) -> Vec<Received> {
        self.got.try_iter().collect()
    }
}

/// A campaign on the built-in simulator with `notify` as its `[notify]` table.
fn notifying_folder(rows: usize, limits: &str, notify: &str) -> Folder {
    let folder = Folder::new();
    folder.write(
        "c.toml",
        format!("{}\n[notify]\n{notify}\n", tmall_campaign("sim", limits)),
    );
    folder.write("in.csv", tmall_rows(rows));
    folder
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn query_value(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[test]
fn dingtalk_gets_a_signed_text_message_when_the_run_finishes() {
    let receiver = Receiver::start(Answer::Ok);
    let url = receiver.url("/robot/send?access_token=tok123");
    let folder = notifying_folder(
        5,
        "qps = 100",
        &format!("url = \"{url}\"\nkind = \"dingtalk\""),
    );
    let out = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .env("NOTIFY_SECRET", "SECsigning-secret-42")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = receiver.all();
    assert_eq!(got.len(), 1, "{got:?}");
    let target = &got[0].target;
    assert!(
        target.starts_with("/robot/send?access_token=tok123&"),
        "{target}"
    );
    let timestamp = query_value(target, "timestamp").expect("a timestamp");
    let sign = query_value(target, "sign").expect("a sign");
    assert_eq!(
        sign,
        hmac_base64(
            b"SECsigning-secret-42",
            format!("{timestamp}\nSECsigning-secret-42").as_bytes()
        )
    );
    let body = &got[0].body;
    assert_eq!(body["msgtype"], "text");
    let content = body["text"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("campaign t (tmall.nrt.certificate.send): finished"),
        "{content}"
    );
    assert!(content.contains("issued 5, failed 0"), "{content}");
    assert!(content.contains("results: "), "{content}");
    assert!(
        !format!("{target}{body}").contains("signing-secret"),
        "the secret leaked"
    );
}

#[test]
fn feishu_gets_a_signed_text_message() {
    let receiver = Receiver::start(Answer::Ok);
    let url = receiver.url("/open-apis/bot/v2/hook/abc");
    let folder = notifying_folder(
        3,
        "qps = 100",
        &format!("url = \"{url}\"\nkind = \"feishu\"\nsecret_env = \"LARK_SECRET\""),
    );
    // The file names the variable: without it the run refuses to start.
    let missing = run(&folder, &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        stderr(&missing).contains("LARK_SECRET"),
        "{}",
        text(&missing)
    );
    assert!(receiver.all().is_empty());

    let out = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .env("LARK_SECRET", "lark-secret-7")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = receiver.all();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].target, "/open-apis/bot/v2/hook/abc");
    let body = &got[0].body;
    assert_eq!(body["msg_type"], "text");
    let timestamp = body["timestamp"].as_str().expect("timestamp as a string");
    assert_eq!(
        body["sign"].as_str().unwrap(),
        hmac_base64(format!("{timestamp}\nlark-secret-7").as_bytes(), b"")
    );
    let content = body["content"]["text"].as_str().unwrap();
    assert!(
        content.contains("finished") && content.contains("issued 3"),
        "{content}"
    );
}

#[test]
fn wecom_gets_a_text_message() {
    let receiver = Receiver::start(Answer::Ok);
    let url = receiver.url("/cgi-bin/webhook/send?key=k1");
    let folder = notifying_folder(
        2,
        "qps = 100",
        &format!("url = \"{url}\"\nkind = \"wecom\""),
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = receiver.all();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].target, "/cgi-bin/webhook/send?key=k1");
    assert_eq!(got[0].body["msgtype"], "text");
    let content = got[0].body["text"]["content"].as_str().unwrap();
    assert!(
        content.contains("finished") && content.contains("issued 2"),
        "{content}"
    );
}

#[test]
fn json_reports_a_halt_with_its_reason_and_counts() {
    let receiver = Receiver::start(Answer::Ok);
    let folder = notifying_folder(
        5,
        "qps = 100\nmax_issued = 2",
        &format!("url = \"{}\"\nkind = \"json\"", receiver.url("/hook")),
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let got = receiver.all();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0].body;
    assert_eq!(body["campaign"], "t");
    assert_eq!(body["event"], "halted");
    assert_eq!(body["counts"]["issued"], 2);
    assert_eq!(body["counts"]["pending"], 3);
    assert_eq!(body["sent"], 2);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("the budget is reached"),
        "{body}"
    );
    assert!(
        body["results"].as_str().unwrap().ends_with("out.csv"),
        "{body}"
    );
}

#[test]
fn progress_messages_come_every_so_often_during_a_run() {
    let receiver = Receiver::start(Answer::Ok);
    // 40 rows at 20 per second take at least two seconds; a message every 0.3 s.
    let folder = notifying_folder(
        40,
        "qps = 20",
        &format!(
            "url = \"{}\"\nkind = \"json\"\nevery_minutes = 0.005",
            receiver.url("/hook")
        ),
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events: Vec<String> = receiver
        .all()
        .iter()
        .map(|r| r.body["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(events.len() >= 2, "{events:?}");
    assert_eq!(events.last().unwrap(), "finished", "{events:?}");
    assert!(
        events[..events.len() - 1].iter().all(|e| e == "progress"),
        "{events:?}"
    );
}

#[test]
fn an_interrupted_run_says_so() {
    let receiver = Receiver::start(Answer::Ok);
    let folder = notifying_folder(
        200,
        "qps = 10",
        &format!("url = \"{}\"\nkind = \"json\"", receiver.url("/hook")),
    );
    let child = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &folder.path("state.db"),
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        3,
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let got = receiver.all();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["event"], "interrupted");
    assert!(got[0].body["counts"]["pending"].as_u64().unwrap() > 0);
}

#[test]
fn a_failing_or_hanging_receiver_never_changes_the_run() {
    for answer in [Answer::Error, Answer::Hang] {
        let receiver = Receiver::start(answer);
        let folder = notifying_folder(
            3,
            "qps = 100",
            &format!(
                "url = \"{}\"\nkind = \"dingtalk\"\ntimeout_ms = 300",
                receiver.url("/robot/send?access_token=secret-token")
            ),
        );
        let out = run(&folder, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("notification (finished) to 127.0.0.1 failed"),
            "{}",
            text(&out)
        );
        assert!(
            !err.contains("secret-token"),
            "the webhook's token leaked: {err}"
        );
        assert_eq!(count_status(&folder.path("out.csv"), "issued"), 3);
    }
}

/// What a run on a pseudo-terminal did.
struct OnTerminal {
    code: Option<i32>,
    /// Everything the terminal showed (stderr, and the echo of what was typed).
    screen: String,
    stdout: String,
}

/// Runs `campaign run` with stdin and stderr on a pseudo-terminal (stdout piped), as when
/// someone types the command. When `Proceed? [y/N]` appears it types `answer`, or `n` when no
/// answer was expected (so an unexpected question fails the test instead of hanging it).
fn run_on_terminal(
    folder: &Folder,
    args: &[&str],
    env: &[(&str, &str)],
    answer: Option<&str>,
) -> OnTerminal {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::{Read, Write};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut child = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::from(terminal.try_clone().unwrap()))
        .stderr(Stdio::from(terminal))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(master);
    let mut reader = master.try_clone().unwrap();
    let (tx, chunks) = std::sync::mpsc::channel::<String>();
    // Ends when the last holder of the terminal side (the child) is gone: reads fail then.
    let screen_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut out = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut stdout = String::new();
        out.read_to_string(&mut stdout).ok();
        stdout
    });
    let mut screen = String::new();
    let mut answered = false;
    while let Ok(chunk) = chunks.recv() {
        screen.push_str(&chunk);
        if !answered && screen.contains("Proceed? [y/N]") {
            answered = true;
            master.write_all(answer.unwrap_or("n").as_bytes()).unwrap();
            master.write_all(b"\n").unwrap();
        }
    }
    screen_reader.join().unwrap();
    let code = child.wait().unwrap().code();
    OnTerminal {
        code,
        screen,
        stdout: stdout_reader.join().unwrap(),
    }
}

/// A loopback simulator that the prompt treats as a real gateway (`CAMPAIGN_CONFIRM=always`):
/// the question is the same, and the simulator's counts show whether anything was sent.
const ASK_ALWAYS: &[(&str, &str)] = &[("CAMPAIGN_CONFIRM", "always")];

fn prompt_folder(sim: &Sim) -> Folder {
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 100\nmax_issued = 50"),
    );
    folder.write("in.csv", tmall_rows(5));
    folder
}

#[test]
fn the_prompt_shows_the_plan_and_a_yes_sends() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    let run = run_on_terminal(&folder, &["--limit", "4"], ASK_ALWAYS, Some("y"));
    assert_eq!(run.code, Some(0), "{}\n{}", run.screen, run.stdout);
    let port = sim.addr.rsplit(':').next().unwrap();
    for expected in [
        "campaign   t",
        "API        tmall.nrt.certificate.send",
        &format!("gateway    127.0.0.1:{port}"),
        "app key    10000001",
        "rows       4 to send in this run",
        "budget     max_issued = 50: 0 used, 50 left",
        "rate       100 qps, about 0.0s",
        "results    ",
        "Proceed? [y/N]",
    ] {
        assert!(
            run.screen.contains(expected),
            "{expected:?} on\n{}",
            run.screen
        );
    }
    assert_eq!(sim.stats()["issued"], 4);
}

#[test]
fn the_prompt_answered_no_sends_nothing() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    for answer in ["n", "", "maybe"] {
        let run = run_on_terminal(&folder, &[], ASK_ALWAYS, Some(answer));
        assert_eq!(run.code, Some(2), "{answer:?}: {}", run.screen);
        assert!(run.screen.contains("Proceed? [y/N]"), "{}", run.screen);
        assert!(
            run.screen.contains("not confirmed; nothing was sent"),
            "{}",
            run.screen
        );
    }
    assert_eq!(sim.stats()["calls"], 0);
}

#[test]
fn yes_skips_the_prompt() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    let run = run_on_terminal(&folder, &["--yes"], ASK_ALWAYS, None);
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert!(!run.screen.contains("Proceed?"), "{}", run.screen);
    assert_eq!(sim.stats()["issued"], 5);
}

#[test]
fn a_loopback_gateway_is_not_asked_about() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    let run = run_on_terminal(&folder, &[], &[], None);
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert!(!run.screen.contains("Proceed?"), "{}", run.screen);
    assert_eq!(sim.stats()["issued"], 5);
}

#[test]
fn a_run_that_is_not_interactive_never_waits_for_an_answer() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    // stdin is not a terminal (stderr is piped too): no question, the run goes ahead.
    let out = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .env("CAMPAIGN_CONFIRM", "always")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stderr(&out).contains("Proceed?"), "{}", text(&out));
    assert_eq!(sim.stats()["issued"], 5);
}

fn check(folder: &Folder, env: &[(&str, &str)]) -> Output {
    campaign()
        .arg("check")
        .arg(folder.path("c.toml"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A tmall campaign (it needs the session) against `url`.
fn check_folder(url: &str, limits: &str) -> Folder {
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(url, limits));
    folder.write("in.csv", tmall_rows(10));
    folder
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
    let out = check(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = stdout(&out);
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
    let out = check(&folder, &[("TOP_APP_SECRET", "not-the-secret-5d2")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = stdout(&out);
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
    let out = check(&folder, &[("TOP_SESSION", "expired-session-8e1")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = stdout(&out);
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
    let out = check(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = stdout(&out);
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
    let out = check(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = stdout(&out);
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
    let out = check(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = stdout(&out);
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
    let out = check(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = stdout(&out);
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
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stdout(&out).contains("PROBLEM  secrets"), "{}", text(&out));

    // A campaign file that does not load is a problem too.
    folder.write("c.toml", "name = \"t\"\n");
    let out = check(&folder, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stdout(&out).contains("PROBLEM  campaign file"),
        "{}",
        text(&out)
    );
}
