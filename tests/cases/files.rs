//! The files around a run and the rows' identities, end to end: lost or replaced ledgers,
//! clashing paths, look-alike rows, answers that may mean "issued", private files, clean ids.
//! The real binary against a simulator process, or a tiny server where the simulator cannot
//! give the answer under test; exactly-once is checked from the gateway's counts.

use super::common::*;

#[test]
fn a_success_without_a_certificate_code_is_uncertain_and_never_resent_by_retry_failed() {
    const ANSWER: &str = r#"{"tmall_nrt_certificate_send_response":{"result":{"code":"0","message":"success","model":null},"request_id":"rid-7"}}"#;
    let gateway = TestServer::json(ANSWER);
    // This gateway answers every call alike, so it cannot be asked about the rows: no
    // reconciliation (`reconcile = false`).
    let folder = Folder::with(
        CampaignFile::tmall(&gateway.url)
            .limits("qps = 100")
            .no_reconcile(),
        tmall_rows(3),
    );
    run_expect(&folder, &[], 1);
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
    assert_eq!(gateway.hits(), 3);
    run_expect(&folder, &["--retry-failed"], 1);
    assert_eq!(gateway.hits(), 3, "--retry-failed must not resend them");
    run_expect(&folder, &["--resend-uncertain"], 1);
    assert_eq!(
        gateway.hits(),
        6,
        "only --resend-uncertain sends them again"
    );
}

#[test]
fn alsc_instance_ids_that_contain_the_separator_stay_unambiguous() {
    const ANSWER: &str = r#"{"alibaba_alsc_right_decisionsend_response":{"result":{"result_obj":{"right_ticket_list":[{"right_instance_id":"A;1","status":"SUCCESS"},{"right_instance_id":"B\\2","status":"SUCCESS"}],"status":"SUCCESS"},"success":true},"request_id":"r"}}"#;
    let gateway = TestServer::json(ANSWER);
    let folder = Folder::with(
        alsc_campaign(&gateway.url, "qps = 100"),
        "alipay_id\n2088000000000001\n",
    );
    run_expect(&folder, &[], 0);
    assert_eq!(gateway.hits(), 1);
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "issued_id"), [r"A\;1;B\\2"]);
    command_expect(&folder, "verify", &[], 0);

    // A gateway that answers two recipients with the same instance ids: verify reads the cell
    // back id by id, and names `A;1` as one id.
    let two = Folder::with(
        alsc_campaign(&gateway.url, "qps = 100"),
        "alipay_id\n2088000000000001\n2088000000000002\n",
    );
    run_expect(&two, &[], 0);
    let verify = command_expect(&two, "verify", &[], 1);
    let report = stdout(&verify);
    assert!(
        report.contains(r#"issued_id "A;1": recorded for 2 identities"#),
        "{report}"
    );
}

#[test]
fn recipient_ids_with_invisible_or_control_characters_are_invalid_and_never_sent() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", "open_id,note\nAXBZ,clean\nAX\u{0}BZ,nul\n\u{feff}AXBZ,bom\nAX\u{200b}BZ,zero width\nAXBZ\u{2060},word joiner\nCD\u{202e}EF,bidi override\n");
    run_expect(&folder, &[], 1);
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
    let folder = sim.tmall("qps = 100", tmall_rows(2));
    run_expect(&folder, &[], 0);
    // Same name and state file, another API.
    let other = CampaignFile::tmall(&sim.url)
        .limits("qps = 100")
        .api("alibaba.alsc.right.decisionsend")
        .param("channel", None)
        .param("out_id", None)
        .param("scene_code", Some("\"s\""));
    folder.write("c.toml", other.to_string());
    folder.write("in.csv", "alipay_id\n2088000000000001\n");
    let calls_before = sim.count("calls");
    for name in ["run", "status", "verify", "export"] {
        let out = command(&folder, name, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("tmall.nrt.certificate.send")
                && err.contains("alibaba.alsc.right.decisionsend"),
            "{name}: {err}"
        );
    }
    assert_eq!(sim.count("calls"), calls_before);
}

#[test]
fn every_file_written_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", tmall_rows(5));
    run_expect(&folder, &[], 0);
    let export = command(
        &folder,
        "export",
        &["--attempts", folder.path("attempts.csv").to_str().unwrap()],
    );
    assert_exit(&export, 0);
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
    let slow = sim.tmall("qps = 20\nconcurrency = 2", tmall_rows(60));
    let child = spawn_run(&slow);
    wait_for_ledger(&slow, ISSUED, 3);
    for name in ["state.db", "state.db-wal", "state.db-shm", "state.db.lock"] {
        let mode = std::fs::metadata(slow.path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o} during the run");
    }
    let out = wait_with_bound(child);
    assert_exit(&out, 0);
}

/// Deletes or truncates the state file during a run; the run must notice, stop, write the
/// results from the ledger it still has open and exit 3; the next run must refuse to start a
/// fresh ledger; `rebuild` then a resume must finish without sending anything twice.
fn lose_the_ledger_during_a_run(lose: fn(&std::path::Path), what: &str) {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 40\nconcurrency = 4", tmall_rows(300));
    let child = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 10);
    lose(&folder.path("state.db"));
    let out = wait_with_bound(child);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(what), "{err}");
    assert!(err.contains("nothing more was sent"), "{err}");
    assert!(err.contains("campaign rebuild"), "{err}");
    // The results file written from the open ledger holds every issuance the gateway made.
    let results = folder.path("out.csv");
    let issued = count_status(&results, "issued") as u64;
    let stats = sim.stats();
    assert_eq!(stats["issued"].as_u64().unwrap(), issued, "{stats}");
    assert!(
        issued < 300,
        "the run went on after the state file was lost"
    );
    let sent = sim.count("calls");

    // No state file, but the results and the lock file show the campaign ran: refused.
    let _ = std::fs::remove_file(folder.path("state.db"));
    let refused = run_expect(&folder, &[], 2);
    let err = stderr(&refused);
    assert!(err.contains("campaign rebuild"), "{err}");
    assert_eq!(sim.count("calls"), sent);

    command_expect(
        &folder,
        "rebuild",
        &["--from", results.to_str().unwrap()],
        0,
    );
    run_expect(&folder, &[], 0);
    sim.assert_issued_once(300);
    assert_eq!(count_status(&results, "issued"), 300);
    command_expect(&folder, "verify", &[], 0);
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
    let folder = sim.tmall("qps = 100", tmall_rows(2));
    folder.write("state.db.lock", "");
    let out = run_expect(&folder, &[], 2);
    let err = stderr(&out);
    assert!(
        err.contains("state.db.lock") && err.contains("rebuild"),
        "{err}"
    );
    assert_eq!(sim.count("calls"), 0);
    assert!(!folder.path("state.db").exists());
}

#[test]
fn no_output_may_be_the_state_file_or_the_input() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", tmall_rows(3));
    let input = folder.read("in.csv");
    // Before the first run: `results` names the input, or the state file to be.
    for results in ["in.csv", "state.db", "./state.db-wal"] {
        let out = run(
            &folder,
            &["--results", folder.path(results).to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(2), "{results}: {}", text(&out));
        let err = stderr(&out);
        assert!(err.contains("would overwrite"), "{err}");
    }
    assert_eq!(sim.count("calls"), 0);
    assert_eq!(folder.read("in.csv"), input);

    run_expect(&folder, &[], 0);
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
        let err = stderr(&out);
        assert!(err.contains("would overwrite"), "{case:?}: {err}");
    }
    assert_eq!(std::fs::read(folder.path("state.db")).unwrap(), ledger);
    assert_eq!(folder.read("in.csv"), input);
    command_expect(&folder, "status", &[], 0);
    assert_eq!(sim.count("calls"), 3);
}

#[test]
fn paths_are_checked_before_the_first_send() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", tmall_rows(3));
    std::fs::create_dir(folder.path("results-dir")).unwrap();
    let refused = |args: &[&str], says: &str| {
        let out = run(&folder, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
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
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("not a regular file"));
    assert_eq!(sim.count("calls"), 0);
    assert!(!folder.path("state.db").exists());
}

#[test]
fn a_write_failure_after_sending_halts_with_3_and_the_next_run_sends_nothing_twice() {
    use std::os::unix::process::CommandExt;
    let sim = Sim::start(&[]);
    // Without reconciliation: the rows in flight at the failure are to stay `uncertain`.
    let folder = Folder::with(
        CampaignFile::tmall(&sim.url)
            .limits("qps = 2000\nconcurrency = 8")
            .no_reconcile(),
        tmall_rows(2000),
    );
    // A canary run creates the ledger; then no file may grow past 192 KiB, as on a full disk:
    // the journal fills up after some commits, the results cannot be written either.
    run_expect(&folder, &["--limit", "5"], 0);
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
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("progress is saved"), "{err}");
    assert!(err.contains("free space"), "{err}");
    let issued_then = sim.count("issued");
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
    let folder = sim.tmall("qps = 100", tmall_rows(2));
    folder.write(".out.csv4f2Xa9.tmp", "row,status\n1,issued\n");
    run_expect(&folder, &[], 0);
    assert!(!folder.path(".out.csv4f2Xa9.tmp").exists());
    folder.write(".out.csvZZ81kq.tmp", "partial");
    folder.write(".attempts.csvQ1.tmp", "partial");
    let export = command(
        &folder,
        "export",
        &["--attempts", folder.path("attempts.csv").to_str().unwrap()],
    );
    assert_exit(&export, 0);
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
    run_expect(&folder, &[], 0);
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
    assert!(stderr(&export).contains("campaign run"));
    run_expect(&folder, &[], 0);
    let results = folder.path("out.csv");
    assert_eq!(column(&results, "open_id"), ["P00001", "Q00002", "P00003"]);
    assert_eq!(column(&results, "status"), ["issued", "issued", "issued"]);
    let stats = sim.stats();
    assert_eq!(
        stats["issued"], 4,
        "Q00002 is issued once, nothing else again"
    );
    assert_eq!(stats["duplicates"], 0);
    let verify = command_expect(&folder, "verify", &[], 1);
    assert!(
        stdout(&verify).contains("P00002"),
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
    run_expect(&folder, &[], 0);
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
    let alsc = sim.alsc(
        "qps = 100",
        "alipay_id,right_act_list,scene_code\n\
         2088000000000001,\"[{\"\"a\"\":1,\"\"b\"\":[2,3]}]\",\n\
         2088000000000001,\"[ { \"\"b\"\": [2, 3], \"\"a\"\": 1 } ]\",scene\n\
         2088000000000001,\"[{\"\"a\"\":1,\"\"b\"\":[3,2]}]\",\n",
    );
    let calls_before = sim.count("calls");
    run_expect(&alsc, &[], 0);
    assert_eq!(alsc.column("status"), ["issued", "duplicate", "issued"]);
    assert_eq!(sim.count("calls"), calls_before + 2);
    assert_eq!(sim.stats()["duplicates"], 0);
}

#[test]
fn a_changed_default_never_resends_and_a_row_spelling_a_sent_request_is_a_duplicate() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", "open_id,channel\nA,\n");
    run_expect(&folder, &[], 0);
    // The default channel changes from 7 to 8; a row spelling out what A was sent with (7)
    // comes first, and a new recipient B follows.
    folder.write(
        "c.toml",
        CampaignFile::tmall(&sim.url)
            .limits("qps = 100")
            .param("channel", Some("8"))
            .to_string(),
    );
    folder.write("in.csv", "open_id,channel\nA,7\nA,\nB,\n");
    run_expect(&folder, &[], 0);
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
    command_expect(&folder, "verify", &[], 0);
}

#[test]
fn a_state_file_put_back_from_an_older_backup_is_refused() {
    let sim = Sim::start(&[]);
    let folder = sim.tmall("qps = 100", tmall_rows(10));
    run_expect(&folder, &["--limit", "3"], 0);
    std::fs::copy(folder.path("state.db"), folder.path("backup.db")).unwrap();
    run_expect(&folder, &[], 0);
    assert_eq!(sim.stats()["issued"], 10);
    // The older ledger comes back: rows 4-10 are pending there, issued in the results.
    std::fs::copy(folder.path("backup.db"), folder.path("state.db")).unwrap();
    let out = run_expect(&folder, &[], 2);
    let err = stderr(&out);
    assert!(err.contains("older than the results file"), "{err}");
    assert!(err.contains("campaign rebuild"), "{err}");
    let stats = sim.stats();
    assert_eq!(stats["calls"], 10, "{stats}");
    assert_eq!(stats["duplicates"], 0);
}
