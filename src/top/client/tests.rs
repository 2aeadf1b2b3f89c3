//! Tests of the client against a tiny HTTP server on 127.0.0.1:0, started inside each test.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::top::OutcomeClass::{self, *};
use crate::top::apis::{alsc, tmall};
use crate::top::params::signed_form;
use crate::top::sign::sign;

const OBJECT: &str = r#"{"channel":7,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#;

/// What the test server saw: the connection it arrived on, the head and the body.
struct Seen {
    connection: usize,
    head: String,
    body: Vec<u8>,
}

/// What the test server does once a request has been read.
enum Reply {
    Bytes(Vec<u8>),
    Silent,
    Close,
}

fn http(status: &str, extra_headers: &str, body: &[u8]) -> Reply {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json;charset=UTF-8\r\n{extra_headers}content-length: {}\r\n\r\n",
        body.len()
    );
    Reply::Bytes([head.as_bytes(), body].concat())
}

/// Serves on 127.0.0.1:0, keeping connections alive; every request read is reported.
async fn serve(reply: fn(&Seen) -> Reply) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/router/rest", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for connection in 0.. {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_connection(stream, connection, reply, tx.clone()));
        }
    });
    (url, rx)
}

async fn serve_connection(
    mut stream: TcpStream,
    connection: usize,
    reply: fn(&Seen) -> Reply,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed mid-request");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let request = Seen {
            connection,
            head,
            body,
        };
        let answer = reply(&request);
        let _ = seen.send(request);
        match answer {
            Reply::Bytes(bytes) if stream.write_all(&bytes).await.is_err() => return,
            Reply::Bytes(_) => {}
            Reply::Silent => std::future::pending::<()>().await,
            Reply::Close => return,
        }
    }
}

fn client(url: &str, api: &'static ApiSpec, request_timeout: Duration) -> Client {
    let config = ClientConfig {
        url: url.to_owned(),
        app_key: "10000001".to_owned(),
        secret: Secret::new("sim-secret"),
        session: Some(Secret::new("sim-session")),
        sign_method: SignMethod::HmacSha256,
        connect_timeout: Duration::from_secs(2),
        request_timeout,
    };
    Client::new(config, api).unwrap()
}

fn sub_code(attempt: &Attempt) -> Option<&str> {
    attempt.outcome.error().and_then(|e| e.sub_code.as_deref())
}

#[tokio::test]
async fn connection_refused_is_unreachable_for_both_apis_and_probes_say_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/router/rest", listener.local_addr().unwrap());
    drop(listener);
    for api in [&tmall::SPEC, &alsc::SPEC] {
        let client = client(&url, api, Duration::from_secs(5));
        assert!(!client.probe().await, "a closed port answered a probe");
        let attempt = client.send(OBJECT).await;
        assert_eq!(attempt.outcome.class(), Unreachable, "{}", api.method);
        assert_eq!(sub_code(&attempt), Some("connect"));
        assert_eq!(
            attempt.outcome.error().unwrap().code.as_deref(),
            Some("transport")
        );
    }
}

#[tokio::test]
async fn lost_answers_are_unknown_for_tmall_and_transient_for_alsc() {
    let (silent, mut silent_seen) = serve(|_| Reply::Silent).await;
    let (closing, mut closing_seen) = serve(|_| Reply::Close).await;
    let cases: [(&str, &str, &'static ApiSpec, OutcomeClass); 4] = [
        (&silent, "timeout", &tmall::SPEC, Unknown),
        (&silent, "timeout", &alsc::SPEC, Transient),
        (&closing, "io", &tmall::SPEC, Unknown),
        (&closing, "io", &alsc::SPEC, Transient),
    ];
    for (url, why, api, want) in cases {
        let attempt = client(url, api, Duration::from_millis(300))
            .send(OBJECT)
            .await;
        assert_eq!(attempt.outcome.class(), want, "{why} {}", api.method);
        assert_eq!(sub_code(&attempt), Some(why), "{:?}", attempt.outcome);
    }
    // The requests did arrive: the answers, not the requests, were lost.
    for _ in 0..2 {
        assert!(silent_seen.recv().await.is_some());
        assert!(closing_seen.recv().await.is_some());
    }
}

#[tokio::test]
async fn seed_answer_is_issued_from_a_signed_form_on_a_reused_connection() {
    let (url, mut seen) = serve(|_| http("200 OK", "", tmall::SEED_SUCCESS.as_bytes())).await;
    let client = client(&url, &tmall::SPEC, Duration::from_secs(5));
    for _ in 0..2 {
        let attempt = client.send(OBJECT).await;
        assert!(
            matches!(&attempt.outcome, Outcome::Issued { issued_id, .. } if issued_id == "3839772921")
        );
        assert_eq!(attempt.top_request_id.as_deref(), Some("tmall-rid-1"));
        assert!(attempt.latency > Duration::ZERO);
    }
    let first = seen.recv().await.unwrap();
    assert!(first.head.starts_with("POST /router/rest HTTP/1.1\r\n"));
    assert!(
        first
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded;charset=utf-8\r\n")
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&first.body).unwrap();
    let value = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("nrt_certificate_send_d_t_o"), Some(OBJECT));
    assert_eq!(value("session"), Some("sim-session"));
    assert_eq!(value("method"), Some("tmall.nrt.certificate.send"));
    let pairs = form.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    assert_eq!(
        Some(sign(pairs, "sim-secret", SignMethod::HmacSha256).as_str()),
        value("sign")
    );
    assert_eq!(seen.recv().await.unwrap().connection, first.connection);
}

#[tokio::test]
async fn gzip_answers_are_inflated_and_alsc_sends_no_session() {
    let (url, mut seen) = serve(|_| {
        http(
            "200 OK",
            "content-encoding: gzip\r\n",
            &gzip_stored(alsc::SEED_SUCCESS.as_bytes()),
        )
    })
    .await;
    let attempt = client(&url, &alsc::SPEC, Duration::from_secs(5))
        .send(r#"{"a":1}"#)
        .await;
    assert!(
        matches!(&attempt.outcome, Outcome::Issued { issued_id, .. } if issued_id == "7000246010032578xx")
    );
    let request = seen.recv().await.unwrap();
    assert!(
        request
            .head
            .to_ascii_lowercase()
            .contains("accept-encoding: gzip")
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
    assert!(form.iter().all(|(k, _)| k != "session"));
    assert!(form.contains(&("req".to_owned(), r#"{"a":1}"#.to_owned())));
}

#[tokio::test]
async fn http_502_is_unknown_for_tmall() {
    let (url, _seen) = serve(|_| http("502 Bad Gateway", "", b"<html>bad gateway</html>")).await;
    let attempt = client(&url, &tmall::SPEC, Duration::from_secs(5))
        .send(OBJECT)
        .await;
    assert_eq!(attempt.outcome.class(), Unknown);
    assert_eq!(sub_code(&attempt), Some("http-502"));
}

/// Where the redirecting server points: a second server that must never be reached.
static REDIRECT_TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[tokio::test]
async fn redirects_are_never_followed_and_halt_naming_both_urls() {
    let (target, mut target_seen) =
        serve(|_| http("200 OK", "", tmall::SEED_SUCCESS.as_bytes())).await;
    REDIRECT_TARGET.set(target.clone()).unwrap();
    let (url, mut seen) = serve(|_| {
        let to = REDIRECT_TARGET.get().unwrap();
        http(
            "307 Temporary Redirect",
            &format!("location: {to}\r\n"),
            b"",
        )
    })
    .await;
    for api in [&tmall::SPEC, &alsc::SPEC] {
        let attempt = client(&url, api, Duration::from_secs(5)).send(OBJECT).await;
        assert_eq!(attempt.outcome.class(), Fatal, "{attempt:?}");
        assert_eq!(sub_code(&attempt), Some("http-307"));
        let message = &attempt.outcome.error().unwrap().message;
        assert!(
            message.starts_with(&url) && message.ends_with(&target),
            "{message}"
        );
        assert!(seen.recv().await.is_some());
    }
    assert!(target_seen.try_recv().is_err(), "the redirect was followed");
}

#[tokio::test]
async fn an_echoing_error_page_never_yields_the_session_or_signature() {
    // A 403 page (and a 200 one) that prints the request it got, form and all.
    let (url, _seen) = serve(|seen| {
        let page = format!(
            "<html><body>Forbidden: {} {}</body></html>",
            String::from_utf8_lossy(&seen.body),
            seen.head
        );
        http("403 Forbidden", "", page.as_bytes())
    })
    .await;
    let attempt = client(&url, &tmall::SPEC, Duration::from_secs(5))
        .send(OBJECT)
        .await;
    let message = &attempt.outcome.error().unwrap().message;
    assert!(
        message.contains("Forbidden") && message.contains("session=***"),
        "{message}"
    );
    assert!(
        !message.contains("sim-session") && !message.contains("sim-secret"),
        "{message}"
    );
    let sign = signature_in(message);
    assert!(
        sign.is_none(),
        "a signature survived: {sign:?} in {message}"
    );
    assert!(message.chars().count() <= 501, "{}", message.len());

    let (url, _seen) = serve(|seen| {
        let body = format!(
            r#"{{"error_response":{{"code":15,"sub_code":"isv.x","sub_msg":"bad form: {}"}}}}"#,
            String::from_utf8_lossy(&seen.body).replace('"', "'")
        );
        http("200 OK", "", body.as_bytes())
    })
    .await;
    let attempt = client(&url, &tmall::SPEC, Duration::from_secs(5))
        .send(OBJECT)
        .await;
    let message = &attempt.outcome.error().unwrap().message;
    assert!(
        message.contains("bad form") && !message.contains("sim-session"),
        "{message}"
    );
    assert!(signature_in(message).is_none(), "{message}");
}

/// An upper-case hex signature (32 or 64 characters) in text, if any.
fn signature_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| (w.len() == 32 || w.len() == 64) && w.chars().any(|c| c.is_ascii_uppercase()))
        .map(str::to_owned)
}

#[tokio::test]
async fn any_http_answer_makes_a_probe_succeed_and_a_probe_sends_no_credentials() {
    let (url, mut seen) = serve(|_| http("404 Not Found", "", b"")).await;
    let client = client(&url, &tmall::SPEC, Duration::from_secs(5));
    assert!(client.probe().await);
    let probe = seen.recv().await.unwrap();
    assert!(
        probe.head.starts_with("GET /router/rest HTTP/1.1"),
        "{}",
        probe.head
    );
    assert!(probe.body.is_empty());
    assert!(!probe.head.contains("sim-session"));
}

#[tokio::test]
async fn a_wrong_path_is_fatal_and_names_the_url() {
    let (url, _seen) = serve(|_| http("404 Not Found", "", b"no such page")).await;
    for api in [&tmall::SPEC, &alsc::SPEC] {
        let attempt = client(&url, api, Duration::from_secs(5)).send(OBJECT).await;
        assert_eq!(attempt.outcome.class(), Fatal);
        let message = &attempt.outcome.error().unwrap().message;
        assert!(
            message.starts_with(&format!("{url} answered HTTP 404")),
            "{message}"
        );
    }
}

#[test]
fn config_errors_and_redaction() {
    let config = |url: &str, session: Option<&str>| ClientConfig {
        url: url.to_owned(),
        app_key: "k".to_owned(),
        secret: Secret::new("the-secret"),
        session: session.map(Secret::new),
        sign_method: SignMethod::Md5,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
    };
    let missing = Client::new(config("http://127.0.0.1:1/router/rest", None), &tmall::SPEC);
    assert!(matches!(missing, Err(ClientError::MissingSession { .. })));
    assert!(Client::new(config("sim", Some("s")), &tmall::SPEC).is_err());
    assert!(Client::new(config("ftp://h/x", Some("s")), &tmall::SPEC).is_err());
    let with_user = Client::new(config("https://u:pw@h/x", Some("s")), &tmall::SPEC);
    assert!(matches!(with_user, Err(ClientError::Url { .. })));
    let ok = Client::new(
        config("http://127.0.0.1:1/r", Some("the-session")),
        &tmall::SPEC,
    )
    .unwrap();
    assert!(!format!("{ok:?}").contains("the-s"));

    for (url, loopback) in [
        ("http://127.0.0.1:9/r", true),
        ("http://[::1]:9/r", true),
        ("http://LOCALHOST/r", true),
        ("https://eco.taobao.com/router/rest", false),
    ] {
        assert_eq!(
            is_loopback(&reqwest::Url::parse(url).unwrap()),
            loopback,
            "{url}"
        );
    }

    let credentials = Credentials {
        app_key: "k",
        secret: "the-secret",
        session: Some("the-session"),
        sign_method: SignMethod::Md5,
    };
    let form = signed_form("m", ("req", "{}"), &credentials, "2016-01-01 12:00:00");
    let logged = Redacted(&form).to_string();
    assert!(
        logged.contains("session=***") && logged.contains("sign=***"),
        "{logged}"
    );
    assert!(
        !logged.contains("the-s") && logged.contains("req={}"),
        "{logged}"
    );
}

/// A gzip member holding `data` in one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| {
        (0..8).fold(crc ^ u32::from(byte), |c, _| {
            (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg())
        })
    })
}
