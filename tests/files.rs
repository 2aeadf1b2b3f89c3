//! The files around a run and the rows' identities, end to end: lost or replaced ledgers,
//! clashing paths, look-alike rows, answers that may mean "issued", private files, clean ids.
//! The real binary against a simulator process, or a tiny server where the simulator cannot
//! give the answer under test; exactly-once is checked from the gateway's counts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{
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
    folder.write("c.toml", tmall_campaign(&gateway.url, "qps = 100"));
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
}
