//! The files around a run and the rows' identities, end to end: lost or replaced ledgers,
//! clashing paths, look-alike rows, answers that may mean "issued", private files, clean ids.
//! The real binary against a simulator process, or a tiny server where the simulator cannot
//! give the answer under test; exactly-once is checked from the gateway's counts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::common::{
    Folder, Sim, alsc_campaign, campaign, column, count_status, text, tmall_campaign, tmall_rows,
};

fn run(folder: &Folder, extra: &[&str]) -> Output {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(extra)
        .output()
        .expect("run campaign")
}

fn command(folder: &Folder, name: &str, extra: &[&str]) -> Output {
    campaign()
        .arg(name)
        .arg(folder.path("c.toml"))
        .args(extra)
        .output()
        .expect("run campaign")
}

fn calls(sim: &Sim) -> u64 {
    sim.stats()["calls"].as_u64().unwrap()
}

/// A gateway on 127.0.0.1:0 that answers every request with `answer` (HTTP 200) and counts
/// the requests it got. Each answer closes its connection.
struct Tiny {
    url: String,
    requests: Arc<AtomicU64>,
}

impl Tiny {
    fn start(answer: &'static str) -> Tiny {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/router/rest", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Tiny { url, requests }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

#[test]
fn a_success_without_a_certificate_code_is_uncertain_and_never_resent_by_retry_failed() {
    const ANSWER: &str = r#"{"tmall_nrt_certificate_send_response":{"result":{"code":"0","message":"success","model":null},"request_id":"rid-7"}}"#;
    let gateway = Tiny::start(ANSWER);
    let folder = Folder::new();
    // This gateway answers every call alike, so it cannot be asked about the rows: no
    // reconciliation (`reconcile = false`).
    folder.write(
        "c.toml",
        tmall_campaign(&gateway.url, "qps = 100").replacen(
            "[gateway]",
            "reconcile = false\n\n[gateway]",
            1,
        ),
    );
    folder.write("in.csv", tmall_rows(3));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(
        count_status(&results, "uncertain"),
        3,
        "{}",
        folder.read("out.csv")
    );
    assert_eq!(count_status(&results, "failed"), 0);
    for detail in column(&results, "detail") {
        assert!(detail.contains(r#""model":null"#), "{detail}");
        assert!(detail.contains(r#""code":"0""#), "{detail}");
    }
    assert_eq!(gateway.requests(), 3);
    let retried = run(&folder, &["--retry-failed"]);
    assert_eq!(retried.status.code(), Some(1), "{}", text(&retried));
    assert_eq!(gateway.requests(), 3, "--retry-failed must not resend them");
    let resent = run(&folder, &["--resend-uncertain"]);
    assert_eq!(resent.status.code(), Some(1), "{}", text(&resent));
    assert_eq!(
        gateway.requests(),
        6,
        "only --resend-uncertain sends them again"
    );
}

#[test]
fn alsc_instance_ids_that_contain_the_separator_stay_unambiguous() {
    const ANSWER: &str = r#"{"alibaba_alsc_right_decisionsend_response":{"result":{"result_obj":{"right_ticket_list":[{"right_instance_id":"A;1","status":"SUCCESS"},{"right_instance_id":"B\\2","status":"SUCCESS"}],"status":"SUCCESS"},"success":true},"request_id":"r"}}"#;
    let gateway = Tiny::start(ANSWER);
    let folder = Folder::new();
    folder.write("c.toml", alsc_campaign(&gateway.url, "qps = 100"));
    folder.write("in.csv", "alipay_id\n2088000000000001\n");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(gateway.requests(), 1);
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "issued_id"), [r"A\;1;B\\2"]);
    let verify = command(&folder, "verify", &[]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    // A gateway that answers two recipients with the same instance ids: verify reads the cell
    // back id by id, and names `A;1` as one id.
    let two = Folder::new();
    two.write("c.toml", alsc_campaign(&gateway.url, "qps = 100"));
    two.write("in.csv", "alipay_id\n2088000000000001\n2088000000000002\n");
    let out = run(&two, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let verify = command(&two, "verify", &[]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        report.contains(r#"issued_id "A;1": recorded for 2 identities"#),
        "{report}"
    );
}

#[test]
fn recipient_ids_with_invisible_or_control_characters_are_invalid_and_never_sent() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write(
        "in.csv",
        "open_id,note\nAXBZ,clean\nAX\u{0}BZ,nul\n\u{feff}AXBZ,bom\nAX\u{200b}BZ,zero width\nAXBZ\u{2060},word joiner\nCD\u{202e}EF,bidi override\n",
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(
        column(&results, "status"),
        [
            "issued", "invalid", "invalid", "invalid", "invalid", "invalid"
        ]
    );
    for reason in &column(&results, "error_message")[1..] {
        assert!(
            reason.starts_with("open_id: contains an invisible or control character U+"),
            "{reason}"
        );
    }
    let stats = sim.stats();
    assert_eq!(stats["calls"], 1, "{stats}");
    assert_eq!(stats["issued"], 1);
    assert_eq!(stats["duplicates"], 0);
}

#[test]
fn a_ledger_belongs_to_one_api() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(2));
    let first = run(&folder, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // Same name and state file, another API.
    let other = tmall_campaign(&sim.url, "qps = 100")
        .replace(
            "tmall.nrt.certificate.send",
            "alibaba.alsc.right.decisionsend",
        )
        .replace("channel = 7\nout_id = 123\n", "scene_code = \"s\"\n");
    folder.write("c.toml", other);
    folder.write("in.csv", "alipay_id\n2088000000000001\n");
    let calls_before = calls(&sim);
    for name in ["run", "status", "verify", "export"] {
        let out = command(&folder, name, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("tmall.nrt.certificate.send")
                && stderr.contains("alibaba.alsc.right.decisionsend"),
            "{name}: {stderr}"
        );
    }
    assert_eq!(calls(&sim), calls_before);
}

#[test]
fn every_file_written_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(5));
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let export = command(
        &folder,
        "export",
        &["--attempts", folder.path("attempts.csv").to_str().unwrap()],
    );
    assert_eq!(export.status.code(), Some(0), "{}", text(&export));
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(folder.dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == "c.toml" || name == "in.csv" {
            continue;
        }
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        checked.push(name);
    }
    checked.sort();
    for name in ["attempts.csv", "out.csv", "state.db", "state.db.lock"] {
        assert!(
            checked.iter().any(|c| c == name),
            "{name} missing: {checked:?}"
        );
    }
    assert_eq!(sim.stats()["issued"], 5);

    // SQLite's journal and shared memory exist only while a run goes on: look then.
    let slow = Folder::new();
    slow.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 20\nconcurrency = 2"),
    );
    slow.write("in.csv", tmall_rows(60));
    let child = spawn_run(&slow);
    wait_for_ledger(
        &slow,
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        3,
    );
    for name in ["state.db", "state.db-wal", "state.db-shm", "state.db.lock"] {
        let mode = std::fs::metadata(slow.path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o} during the run");
    }
    let out = wait_with_bound(child);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Polls the ledger (read-only) until `sql` counts at least `n`; fails after a generous bound.
fn wait_for_ledger(folder: &Folder, sql: &str, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
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
            std::time::Instant::now() < deadline,
            "the ledger never reached {n} for {sql}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits for a child with a generous bound (a hang fails the test instead of blocking it).
fn wait_with_bound(mut child: std::process::Child) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn spawn_run(folder: &Folder) -> std::process::Child {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Deletes or truncates the state file during a run; the run must notice, stop, write the
/// results from the ledger it still has open and exit 3; the next run must refuse to start a
/// fresh ledger; `rebuild` then a resume must finish without sending anything twice.
fn lose_the_ledger_during_a_run(lose: fn(&std::path::Path), what: &str) {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 40\nconcurrency = 4"),
    );
    folder.write("in.csv", tmall_rows(300));
    let child = spawn_run(&folder);
    wait_for_ledger(
        &folder,
        "SELECT COUNT(*) FROM entries WHERE status = 'issued'",
        10,
    );
    lose(&folder.path("state.db"));
    let out = wait_with_bound(child);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(what), "{stderr}");
    assert!(stderr.contains("nothing more was sent"), "{stderr}");
    assert!(stderr.contains("campaign rebuild"), "{stderr}");
    // The results file written from the open ledger holds every issuance the gateway made.
    let results = folder.path("out.csv");
    let issued = count_status(&results, "issued") as u64;
    let stats = sim.stats();
    assert_eq!(stats["issued"].as_u64().unwrap(), issued, "{stats}");
    assert!(
        issued < 300,
        "the run went on after the state file was lost"
    );
    let sent = calls(&sim);

    // No state file, but the results and the lock file show the campaign ran: refused.
    let _ = std::fs::remove_file(folder.path("state.db"));
    let refused = run(&folder, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("campaign rebuild"), "{stderr}");
    assert_eq!(calls(&sim), sent);

    let rebuilt = command(&folder, "rebuild", &["--from", results.to_str().unwrap()]);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    let resumed = run(&folder, &[]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let stats = sim.stats();
    assert_eq!(stats["issued"], 300, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert_eq!(count_status(&results, "issued"), 300);
    let verify = command(&folder, "verify", &[]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_deleted_state_file_halts_the_run_and_rebuild_resumes_without_duplicates() {
    lose_the_ledger_during_a_run(|path| std::fs::remove_file(path).unwrap(), "was deleted");
}

#[test]
fn a_truncated_state_file_halts_the_run_and_rebuild_resumes_without_duplicates() {
    lose_the_ledger_during_a_run(
        |path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(0)
                .unwrap();
        },
        "was truncated",
    );
}

#[test]
fn a_lock_file_without_its_state_file_refuses_a_fresh_start() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(2));
    folder.write("state.db.lock", "");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("state.db.lock") && stderr.contains("rebuild"),
        "{stderr}"
    );
    assert_eq!(calls(&sim), 0);
    assert!(!folder.path("state.db").exists());
}

#[test]
fn no_output_may_be_the_state_file_or_the_input() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(3));
    let input = folder.read("in.csv");
    // Before the first run: `results` names the input, or the state file to be.
    for results in ["in.csv", "state.db", "./state.db-wal"] {
        let out = run(
            &folder,
            &["--results", folder.path(results).to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(2), "{results}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("would overwrite"), "{stderr}");
    }
    assert_eq!(calls(&sim), 0);
    assert_eq!(folder.read("in.csv"), input);

    let first = run(&folder, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let ledger = std::fs::read(folder.path("state.db")).unwrap();
    std::os::unix::fs::symlink(folder.path("state.db"), folder.path("link.csv")).unwrap();
    let cases: &[&[&str]] = &[
        &["--results", "state.db"],
        &["--results", "link.csv"],
        &["--results", "state.db.lock"],
        &["--attempts", "state.db"],
        &["--attempts", "in.csv"],
        &["--results", "x.csv", "--attempts", "x.csv"],
    ];
    for case in cases {
        let args: Vec<String> = case
            .iter()
            .map(|a| {
                if a.starts_with("--") {
                    (*a).to_owned()
                } else {
                    folder.path(a).to_str().unwrap().to_owned()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = command(&folder, "export", &args);
        assert_eq!(out.status.code(), Some(2), "{case:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("would overwrite"), "{case:?}: {stderr}");
    }
    assert_eq!(std::fs::read(folder.path("state.db")).unwrap(), ledger);
    assert_eq!(folder.read("in.csv"), input);
    let status = command(&folder, "status", &[]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_eq!(calls(&sim), 3);
}

#[test]
fn paths_are_checked_before_the_first_send() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(3));
    std::fs::create_dir(folder.path("results-dir")).unwrap();
    let refused = |args: &[&str], says: &str| {
        let out = run(&folder, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    let dir = folder.path("results-dir");
    refused(&["--results", dir.to_str().unwrap()], "is a folder");
    refused(
        &["--results", "/proc/campaign-results.csv"],
        "cannot write the results file",
    );
    refused(
        &["--state", "/proc/campaign-state.db"],
        "cannot write the state file",
    );
    refused(&["--input", "/dev/stdin"], "not a regular file");
    let fifo = folder.path("fifo.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Not opened, so nothing waits for a writer.
    let child = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(["--input", fifo.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_bound(child);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    assert_eq!(calls(&sim), 0);
    assert!(!folder.path("state.db").exists());
}

#[test]
fn a_write_failure_after_sending_halts_with_3_and_the_next_run_sends_nothing_twice() {
    use std::os::unix::process::CommandExt;
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    // Without reconciliation: the rows in flight at the failure are to stay `uncertain`.
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 2000\nconcurrency = 8").replacen(
            "[gateway]",
            "reconcile = false\n\n[gateway]",
            1,
        ),
    );
    folder.write("in.csv", tmall_rows(2000));
    // A canary run creates the ledger; then no file may grow past 192 KiB, as on a full disk:
    // the journal fills up after some commits, the results cannot be written either.
    let canary = run(&folder, &["--limit", "5"]);
    assert_eq!(canary.status.code(), Some(0), "{}", text(&canary));
    let mut full = campaign();
    full.arg("run").arg(folder.path("c.toml"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        full.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 192 * 1024,
                rlim_max: 192 * 1024,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = full.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("progress is saved"), "{stderr}");
    assert!(stderr.contains("free space"), "{stderr}");
    let issued_then = sim.stats()["issued"].as_u64().unwrap();
    assert!(issued_then > 5 && issued_then < 2000, "{issued_then}");

    let resumed = run(&folder, &[]);
    assert!(
        matches!(resumed.status.code(), Some(0 | 1)),
        "{}",
        text(&resumed)
    );
    let results = folder.path("out.csv");
    let issued = count_status(&results, "issued");
    let uncertain = count_status(&results, "uncertain");
    assert_eq!(issued + uncertain, 2000, "{}", text(&resumed));
    // Rows in flight when the ledger failed are `uncertain`: sent or not, never sent twice.
    let stats = sim.stats();
    assert_eq!(stats["duplicates"], 0);
    let at_gateway = stats["issued"].as_u64().unwrap() as usize;
    assert!(
        (issued..=issued + uncertain).contains(&at_gateway),
        "gateway {at_gateway}, issued {issued}, uncertain {uncertain}"
    );
}

#[test]
fn a_temporary_results_file_left_by_a_kill_is_removed() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(2));
    folder.write(".out.csv4f2Xa9.tmp", "row,status\n1,issued\n");
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!folder.path(".out.csv4f2Xa9.tmp").exists());
    folder.write(".out.csvZZ81kq.tmp", "partial");
    folder.write(".attempts.csvQ1.tmp", "partial");
    let export = command(
        &folder,
        "export",
        &["--attempts", folder.path("attempts.csv").to_str().unwrap()],
    );
    assert_eq!(export.status.code(), Some(0), "{}", text(&export));
    assert!(!folder.path(".out.csvZZ81kq.tmp").exists());
    assert!(!folder.path(".attempts.csvQ1.tmp").exists());
    assert_eq!(sim.stats()["issued"], 2);
}

#[test]
fn an_edit_that_keeps_size_and_modification_time_is_still_read() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    let input = folder.write("in.csv", tmall_rows(3));
    let first = run(&folder, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let edit = |from: &str, to: &str| {
        let modified = std::fs::metadata(&input).unwrap().modified().unwrap();
        let text = std::fs::read_to_string(&input).unwrap().replace(from, to);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap();
        file.set_len(0).unwrap();
        std::io::Write::write_all(&mut &file, text.as_bytes()).unwrap();
        file.set_modified(modified).unwrap();
        assert_eq!(
            std::fs::metadata(&input).unwrap().modified().unwrap(),
            modified
        );
    };
    // Same size, same modification time, same inode: a new recipient in row 2.
    edit("P00002", "Q00002");
    // `export` refuses the changed input and says to run again; that remedy works.
    let export = command(&folder, "export", &[]);
    assert_ne!(export.status.code(), Some(0), "{}", text(&export));
    assert!(String::from_utf8_lossy(&export.stderr).contains("campaign run"));
    let second = run(&folder, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "open_id"), ["P00001", "Q00002", "P00003"]);
    assert_eq!(column(&results, "status"), ["issued", "issued", "issued"]);
    let stats = sim.stats();
    assert_eq!(
        stats["issued"], 4,
        "Q00002 is issued once, nothing else again"
    );
    assert_eq!(stats["duplicates"], 0);
    let verify = command(&folder, "verify", &[]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("P00002"),
        "the issued row no longer in the input is reported: {}",
        text(&verify)
    );
}

#[test]
fn rows_that_send_the_same_request_are_duplicates_however_spelled() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    // Defaults: channel 7, out_id 123. Rows 1-4 send the same request; row 5 another one.
    folder.write(
        "in.csv",
        "open_id,channel,out_id\nA,,\nA,7,123\nA,07,0123\nA,,00123\nA,8,\n",
    );
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let results = folder.path("out.csv");
    assert_eq!(
        column(&results, "status"),
        ["issued", "duplicate", "duplicate", "duplicate", "issued"]
    );
    for reason in &column(&results, "error_message")[1..4] {
        assert!(reason.contains("row 1"), "{reason}");
    }
    let stats = sim.stats();
    assert_eq!(stats["issued"], 2, "{stats}");
    assert_eq!(stats["calls"], 2, "{stats}");

    // alsc: list params that differ only in whitespace and key order are the same request.
    let alsc = Folder::new();
    alsc.write("c.toml", alsc_campaign(&sim.url, "qps = 100"));
    alsc.write(
        "in.csv",
        "alipay_id,right_act_list,scene_code\n\
         2088000000000001,\"[{\"\"a\"\":1,\"\"b\"\":[2,3]}]\",\n\
         2088000000000001,\"[ { \"\"b\"\": [2, 3], \"\"a\"\": 1 } ]\",scene\n\
         2088000000000001,\"[{\"\"a\"\":1,\"\"b\"\":[3,2]}]\",\n",
    );
    let calls_before = calls(&sim);
    let out = run(&alsc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        column(&alsc.path("out.csv"), "status"),
        ["issued", "duplicate", "issued"]
    );
    assert_eq!(calls(&sim), calls_before + 2);
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn a_changed_default_never_resends_and_a_row_spelling_a_sent_request_is_a_duplicate() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", "open_id,channel\nA,\n");
    let first = run(&folder, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // The default channel changes from 7 to 8; a row spelling out what A was sent with (7)
    // comes first, and a new recipient B follows.
    folder.write(
        "c.toml",
        tmall_campaign(&sim.url, "qps = 100").replace("channel = 7", "channel = 8"),
    );
    folder.write("in.csv", "open_id,channel\nA,7\nA,\nB,\n");
    let second = run(&folder, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let results = folder.path("out.csv");
    assert_eq!(
        column(&results, "status"),
        ["duplicate", "issued", "issued"]
    );
    assert!(column(&results, "error_message")[0].contains("row 2"));
    let stats = sim.stats();
    assert_eq!(
        stats["calls"], 2,
        "A once (channel 7), B once (channel 8): {stats}"
    );
    let verify = command(&folder, "verify", &[]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_state_file_put_back_from_an_older_backup_is_refused() {
    let sim = Sim::start(&[]);
    let folder = Folder::new();
    folder.write("c.toml", tmall_campaign(&sim.url, "qps = 100"));
    folder.write("in.csv", tmall_rows(10));
    let canary = run(&folder, &["--limit", "3"]);
    assert_eq!(canary.status.code(), Some(0), "{}", text(&canary));
    std::fs::copy(folder.path("state.db"), folder.path("backup.db")).unwrap();
    let rest = run(&folder, &[]);
    assert_eq!(rest.status.code(), Some(0), "{}", text(&rest));
    assert_eq!(sim.stats()["issued"], 10);
    // The older ledger comes back: rows 4-10 are pending there, issued in the results.
    std::fs::copy(folder.path("backup.db"), folder.path("state.db")).unwrap();
    let out = run(&folder, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("older than the results file"), "{stderr}");
    assert!(stderr.contains("campaign rebuild"), "{stderr}");
    let stats = sim.stats();
    assert_eq!(stats["calls"], 10, "{stats}");
    assert_eq!(stats["duplicates"], 0);
}
