//! `[notify]`: a message to an in-test receiver for each kind (signatures checked
//! independently), progress, halts, interruptions, and receivers that fail or hang.

use super::super::common::*;

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
    server: TestServer,
    got: std::sync::mpsc::Receiver<Received>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let (tx, got) = std::sync::mpsc::channel();
        let server = TestServer::start(move |request| {
            let body = serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
            let target = request.target().to_owned();
            let _ = tx.send(Received { target, body });
            match answer {
                Answer::Ok => Some(json(r#"{"errcode":0,"errmsg":"ok"}"#)),
                Answer::Error => Some(response("500 Internal Server Error", "", "oops")),
                Answer::Hang => None,
            }
        });
        Receiver { server, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// The one request received so far (the run that sent it has ended).
    fn only(&self) -> Received {
        let mut got = self.all();
        assert_eq!(got.len(), 1, "{got:?}");
        got.remove(0)
    }

    /// Every request received so far (the run that sent them has ended).
    fn all(&self) -> Vec<Received> {
        self.got.try_iter().collect()
    }
}

/// A campaign of `rows` rows on the built-in simulator, with `limits`, whose `[notify]` table
/// sends to `path` on `receiver` with the further `settings` lines (`kind = ...`).
fn notifying_folder(
    receiver: &Receiver,
    path: &str,
    rows: usize,
    limits: &str,
    settings: &str,
) -> Folder {
    let notify = format!("url = \"{}\"\n{settings}", receiver.url(path));
    let file = CampaignFile::tmall("sim")
        .limits(limits)
        .table("notify", &notify);
    Folder::with(file, tmall_rows(rows))
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
    let folder = notifying_folder(
        &receiver,
        "/robot/send?access_token=tok123",
        5,
        "qps = 100",
        "kind = \"dingtalk\"",
    );
    let out = command_env(
        &folder,
        "run",
        &[("NOTIFY_SECRET", "SECsigning-secret-42")],
        &[],
    );
    assert_exit(&out, 0);
    let got = receiver.only();
    let target = &got.target;
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
    let body = &got.body;
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
    let folder = notifying_folder(
        &receiver,
        "/open-apis/bot/v2/hook/abc",
        3,
        "qps = 100",
        "kind = \"feishu\"\nsecret_env = \"LARK_SECRET\"",
    );
    // The file names the variable: without it the run refuses to start.
    let missing = run_expect(&folder, &[], 2);
    assert_stderr_has(&missing, "LARK_SECRET");
    assert!(receiver.all().is_empty());

    let out = command_env(&folder, "run", &[("LARK_SECRET", "lark-secret-7")], &[]);
    assert_exit(&out, 0);
    let got = receiver.only();
    assert_eq!(got.target, "/open-apis/bot/v2/hook/abc");
    let body = &got.body;
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
    let folder = notifying_folder(
        &receiver,
        "/cgi-bin/webhook/send?key=k1",
        2,
        "qps = 100",
        "kind = \"wecom\"",
    );
    run_expect(&folder, &[], 0);
    let got = receiver.only();
    assert_eq!(got.target, "/cgi-bin/webhook/send?key=k1");
    assert_eq!(got.body["msgtype"], "text");
    let content = got.body["text"]["content"].as_str().unwrap();
    assert!(
        content.contains("finished") && content.contains("issued 2"),
        "{content}"
    );
}

#[test]
fn json_reports_a_halt_with_its_reason_and_counts() {
    let receiver = Receiver::start(Answer::Ok);
    let folder = notifying_folder(
        &receiver,
        "/hook",
        5,
        "qps = 100\nmax_issued = 2",
        "kind = \"json\"",
    );
    run_expect(&folder, &[], 3);
    let got = receiver.only();
    let body = &got.body;
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
        &receiver,
        "/hook",
        40,
        "qps = 20",
        "kind = \"json\"\nevery_minutes = 0.005",
    );
    run_expect(&folder, &[], 0);
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
    let folder = notifying_folder(&receiver, "/hook", 200, "qps = 10", "kind = \"json\"");
    let child = spawn_run(&folder);
    wait_for_ledger(&folder, ISSUED, 3);
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let got = receiver.only();
    assert_eq!(got.body["event"], "interrupted");
    assert!(got.body["counts"]["pending"].as_u64().unwrap() > 0);
}

#[test]
fn a_failing_or_hanging_receiver_never_changes_the_run() {
    for answer in [Answer::Error, Answer::Hang] {
        let receiver = Receiver::start(answer);
        let folder = notifying_folder(
            &receiver,
            "/robot/send?access_token=secret-token",
            3,
            "qps = 100",
            "kind = \"dingtalk\"\ntimeout_ms = 300",
        );
        let out = run_expect(&folder, &[], 0);
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
        assert_eq!(folder.count("issued"), 3);
    }
}
