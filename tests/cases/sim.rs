//! The simulator driven in-process over HTTP on 127.0.0.1: checks, answer shapes, idempotency,
//! data triggers, flow control, seeded faults and the stats endpoint.

use std::time::Duration;

use campaign::sim::{self, Faults, SimConfig, SimServer, SimStats};
use campaign::top::SignMethod;
use campaign::top::params::{Credentials, format_timestamp, signed_form, timestamp_now};
use campaign::top::sign::sign;
use serde_json::Value;

type Form = Vec<(String, String)>;

const TMALL: &str = "tmall.nrt.certificate.send";
const ALSC: &str = "alibaba.alsc.right.decisionsend";

async fn start(config: SimConfig) -> SimServer {
    sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind 127.0.0.1:0")
}

fn creds(method: SignMethod, session: Option<&'static str>) -> Credentials<'static> {
    Credentials {
        app_key: "10000001",
        secret: "sim-secret",
        session,
        sign_method: method,
    }
}

fn tmall_form(open_id: &str, creds: &Credentials<'_>) -> Form {
    let object = format!(r#"{{"channel":7,"open_id":"{open_id}","out_id":123,"biz_code":"23"}}"#);
    signed_form(
        TMALL,
        ("nrt_certificate_send_d_t_o", &object),
        creds,
        &timestamp_now(),
    )
}

fn tmall(open_id: &str) -> Form {
    tmall_form(open_id, &creds(SignMethod::Md5, Some("sim-session")))
}

fn alsc_form(alipay_id: &str, request_id: &str, method: SignMethod) -> Form {
    let object = format!(
        r#"{{"scene_code":"s","request_id":"{request_id}","biz_code":"ISV-1","alipay_id":"{alipay_id}","act_codes":["a","b"]}}"#
    );
    signed_form(
        ALSC,
        ("req", &object),
        &creds(method, None),
        &timestamp_now(),
    )
}

fn alsc(alipay_id: &str, request_id: &str) -> Form {
    alsc_form(alipay_id, request_id, SignMethod::HmacSha256)
}

/// Sets `name` and signs the form again, as a client that sends it would.
fn resigned(form: &Form, name: &str, value: &str) -> Form {
    let mut form: Form = form
        .iter()
        .filter(|(n, _)| n != name && n != "sign")
        .cloned()
        .collect();
    form.push((name.to_owned(), value.to_owned()));
    let method: SignMethod = form
        .iter()
        .find(|(n, _)| n == "sign_method")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let signature = sign(
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        "sim-secret",
        method,
    );
    form.push(("sign".to_owned(), signature));
    form
}

/// A simulator with `faults`, the rest of its settings default.
async fn start_with(faults: Faults) -> SimServer {
    start(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await
}

/// Posts `form` with a client that gives up after a second, and asserts that it gave up.
async fn post_and_give_up(server: &SimServer, form: &Form, why: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = client
        .post(server.url())
        .form(form)
        .send()
        .await
        .expect_err(why);
    assert!(err.is_timeout(), "{err}");
}

/// Shuts a simulator down, within 10 s: answers it holds back are cut short, not waited for.
async fn shut_down_promptly(server: SimServer) {
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("prompt shutdown");
}

async fn post(server: &SimServer, form: &Form) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(server.url())
        .form(form)
        .send()
        .await
        .expect("simulator answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn post_json(server: &SimServer, form: &Form) -> Value {
    let (status, body) = post(server, form).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Posts each form and asserts the `code` of the `error_response` it gets.
async fn assert_error_codes(
    server: &SimServer,
    cases: impl IntoIterator<Item = (&str, Form, i64)>,
) {
    for (what, form, code) in cases {
        let answer = post_json(server, &form).await;
        assert_eq!(
            error_of(&answer).map(|e| e.0),
            Some(code),
            "{what}: {answer}"
        );
    }
}

/// `(code, sub_code)` of an `error_response`, which must carry a `request_id`.
fn error_of(answer: &Value) -> Option<(i64, String)> {
    let error = answer.get("error_response")?;
    assert!(error["request_id"].is_string(), "{answer}");
    Some((
        error["code"].as_i64().unwrap(),
        error["sub_code"].as_str().unwrap_or_default().to_owned(),
    ))
}

fn result<'a>(answer: &'a Value, method: &str) -> &'a Value {
    let key = format!("{}_response", method.replace('.', "_"));
    assert!(answer[&key]["request_id"].is_string(), "{answer}");
    &answer[&key]["result"]
}

fn alsc_status(answer: &Value) -> &str {
    result(answer, ALSC)["result_obj"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status: {answer}"))
}

/// The number of seconds in `This ban will last for N more seconds`.
fn ban_seconds(answer: &Value) -> u64 {
    let text = answer["error_response"]["sub_msg"].as_str().unwrap();
    let rest = text
        .strip_prefix("This ban will last for ")
        .unwrap_or_else(|| panic!("{text}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn accepts_signed_calls_with_every_method_for_both_apis() {
    let server = start(SimConfig::default()).await;
    for (i, method) in SignMethod::ALL.into_iter().enumerate() {
        let form = tmall_form(&format!("AXBZ{i}"), &creds(method, Some("sim-session")));
        let answer = post_json(&server, &form).await;
        let tmall_result = result(&answer, TMALL);
        assert_eq!(tmall_result["code"], "0", "{answer}");
        assert_eq!(tmall_result["model"]["open_id"], format!("AXBZ{i}"));
        assert!(tmall_result["model"]["certificate_code"].is_string());

        let answer = post_json(
            &server,
            &alsc_form("2088111111111111", &format!("r{i}"), method),
        )
        .await;
        assert_eq!(alsc_status(&answer), "SUCCESS");
        let tickets =
            &result(&answer, ALSC)["result_obj"]["right_ticket_list"]["right_send_ticket_d_t_o"];
        assert_eq!(tickets.as_array().unwrap().len(), 2, "{answer}");
    }
    assert_eq!(server.stats().issued, 6);
    server.shutdown().await;
}

#[tokio::test]
async fn accepts_get_and_answers_simplified_when_asked() {
    let server = start(SimConfig::default()).await;
    let form = resigned(&alsc("2088111111111112", "g1"), "simplify", "true");
    let query = serde_urlencoded::to_string(&form).unwrap();
    let body = reqwest::get(format!("{}?{query}", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["result"]["result_obj"]["status"], "SUCCESS",
        "{answer}"
    );
    assert!(answer["result"]["result_obj"]["right_ticket_list"].is_array());
    assert!(answer["request_id"].is_string());

    let put = reqwest::Client::new()
        .put(server.url())
        .form(&tmall("A"))
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&put.text().await.unwrap()).unwrap();
    assert_eq!(error_of(&answer).unwrap().0, 9);
    server.shutdown().await;
}

#[tokio::test]
async fn rejects_bad_requests_with_the_platform_codes() {
    let server = start(SimConfig::default()).await;
    let good = tmall("AXBZ");
    let mut bad_sign = good.clone();
    bad_sign.last_mut().unwrap().1 = "0123456789ABCDEF0123456789ABCDEF".to_owned();
    let stale = format_timestamp(chrono::Utc::now() - chrono::Duration::minutes(11));
    let wrong_key = resigned(&good, "app_key", "12345678");
    let no_session = tmall_form("AXBZ", &creds(SignMethod::Hmac, None));
    let typed = resigned(
        &good,
        "nrt_certificate_send_d_t_o",
        r#"{"channel":"7","open_id":"AXBZ","out_id":123,"biz_code":"23"}"#,
    );
    let bad_alipay = alsc("2089111111111111", "r1");
    let cases: [(&str, Form, i64, &str); 6] = [
        ("wrong signature", bad_sign, 25, ""),
        (
            "stale timestamp",
            resigned(&good, "timestamp", &stale),
            31,
            "",
        ),
        ("wrong app key", wrong_key, 29, ""),
        ("missing session", no_session, 26, ""),
        ("wrongly typed field", typed, 50, "isv.invalid-parameter"),
        ("bad alipay_id", bad_alipay, 50, "isv.invalid-parameter"),
    ];
    for (what, form, code, sub_code) in cases {
        let answer = post_json(&server, &form).await;
        assert_eq!(
            error_of(&answer),
            Some((code, sub_code.to_owned())),
            "{what}: {answer}"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.rejected_signatures, 1);
    assert_eq!(stats.issued, 0);
    assert_eq!(stats.calls, 6);
    server.shutdown().await;
}

#[tokio::test]
async fn alsc_answers_a_repeated_request_id_from_its_books() {
    let server = start(SimConfig::default()).await;
    let first = post_json(&server, &alsc("2088222222222222", "same")).await;
    let again = post_json(&server, &alsc("2088222222222222", "same")).await;
    assert_eq!(result(&first, ALSC), result(&again, ALSC));
    let other = post_json(&server, &alsc("2088222222222222", "other")).await;
    assert_ne!(result(&first, ALSC), result(&other, ALSC));
    let stats = server.stats();
    assert_eq!((stats.issued, stats.replayed, stats.duplicates), (2, 1, 1));
    server.shutdown().await;
}

#[tokio::test]
async fn data_triggers_give_the_documented_outcomes() {
    let server = start_with(Faults {
        withhold: Duration::ZERO,
        ..Faults::default()
    })
    .await;
    let refused = post_json(&server, &tmall("REFUSE-1")).await;
    assert_eq!(
        error_of(&refused),
        Some((15, "isv.user-not-qualified".into()))
    );
    let no_stock = post_json(&server, &tmall("NOSTOCK-1")).await;
    assert_eq!(result(&no_stock, TMALL)["code"], "1");
    assert!(result(&no_stock, TMALL).get("model").is_none());
    let flaky = post_json(&server, &tmall("FLAKY-1")).await;
    assert_eq!(
        error_of(&flaky).unwrap().1,
        "isp.top-remote-service-unavailable"
    );
    assert_eq!(
        result(&post_json(&server, &tmall("FLAKY-1")).await, TMALL)["code"],
        "0"
    );
    let lost = post_json(&server, &tmall("LOST-1")).await;
    assert_eq!(
        error_of(&lost).unwrap().1,
        "isp.top-remote-connection-timeout"
    );
    let slow = post_json(&server, &tmall("SLOW-1")).await;
    assert_eq!(result(&slow, TMALL)["code"], "0");

    let status = |answer: Value| alsc_status(&answer).to_owned();
    let no_item = post_json(&server, &alsc("2088000000009901", "a1")).await;
    assert_eq!(status(no_item), "NO_DECISION_ITEM");
    let fail = post_json(&server, &alsc("2088000000009902", "a2")).await;
    assert_eq!(status(fail.clone()), "FAIL");
    assert_eq!(result(&fail, ALSC)["can_retry"], false);
    let retry = post_json(&server, &alsc("2088000000009903", "a3")).await;
    assert_eq!(status(retry.clone()), "FAIL");
    assert_eq!(result(&retry, ALSC)["can_retry"], true);
    assert_eq!(
        status(post_json(&server, &alsc("2088000000009903", "a3")).await),
        "SUCCESS"
    );
    assert_eq!(
        status(post_json(&server, &alsc("2088000000009904", "a4")).await),
        "SENDING"
    );
    assert_eq!(
        status(post_json(&server, &alsc("2088000000009904", "a4")).await),
        "SUCCESS"
    );
    let refused = post_json(&server, &alsc("2088000000009905", "a5")).await;
    assert_eq!(
        error_of(&refused),
        Some((15, "isv.user-not-qualified".into()))
    );
    let lost = post_json(&server, &alsc("2088000000009906", "a6")).await;
    assert_eq!(
        error_of(&lost).unwrap().1,
        "isp.top-remote-connection-timeout"
    );
    assert_eq!(
        status(post_json(&server, &alsc("2088000000009906", "a6")).await),
        "SUCCESS"
    );

    let stats = server.stats();
    // FLAKY, LOST and SLOW on tmall; 9903, 9904 and 9906 on alsc: each issued exactly once.
    assert_eq!(stats.issued, 6, "{stats:?}");
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.withheld, 1);
    assert_eq!(stats.replayed, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn per_second_limit_answers_code_7_with_a_parseable_ban() {
    let server = start_with(Faults {
        limit_qps: Some(2),
        ban_seconds: 30,
        ..Faults::default()
    })
    .await;
    let mut limited = None;
    for i in 0..50 {
        let answer = post_json(&server, &tmall(&format!("Q{i}"))).await;
        if error_of(&answer).is_some() {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("the limit was never hit");
    assert_eq!(
        error_of(&limited),
        Some((7, "accesscontrol.limited-by-api-access-count".into()))
    );
    assert_eq!(ban_seconds(&limited), 30);
    let during = post_json(&server, &tmall("Q-during")).await;
    assert!((1..=30).contains(&ban_seconds(&during)));
    let stats = server.stats();
    assert_eq!(stats.throttled, 2);
    assert!(stats.peak_calls_per_second >= 3);
    server.shutdown().await;
}

#[tokio::test]
async fn daily_quota_bans_until_midnight_gmt8() {
    let server = start_with(Faults {
        daily_quota: Some(2),
        ..Faults::default()
    })
    .await;
    for id in ["D1", "D2"] {
        assert!(error_of(&post_json(&server, &tmall(id)).await).is_none());
    }
    let refused = post_json(&server, &tmall("D3")).await;
    assert_eq!(
        error_of(&refused),
        Some((7, "accesscontrol.limited-by-app-access-count".into()))
    );
    assert!((1..=86_400).contains(&ban_seconds(&refused)));
    server.shutdown().await;
}

/// One word per answer: `ok`, `http-NNN`, `malformed` or `error:CODE:SUB_CODE`.
async fn fault_run(seed: u64) -> (Vec<String>, SimStats) {
    let server = start(SimConfig {
        seed,
        faults: Faults {
            isp_error_rate: 0.15,
            timeout_subcode_rate: 0.1,
            http502_rate: 0.1,
            malformed_rate: 0.1,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let mut words = Vec::new();
    for i in 0..60 {
        let (status, body) = post(&server, &tmall(&format!("F{i}"))).await;
        let word = match serde_json::from_str::<Value>(&body) {
            _ if status != 200 => format!("http-{status}"),
            Ok(answer) => match error_of(&answer) {
                Some((code, sub_code)) => format!("error:{code}:{sub_code}"),
                None if answer.get("tmall_nrt_certificate_send_response").is_some() => "ok".into(),
                None => "malformed".into(),
            },
            Err(_) => "malformed".into(),
        };
        words.push(word);
    }
    let stats = server.stats();
    server.shutdown().await;
    (words, stats)
}

#[tokio::test]
async fn faults_repeat_with_a_seed_and_keep_issuance_exact() {
    let (first, stats) = fault_run(42).await;
    let (again, _) = fault_run(42).await;
    let (other, _) = fault_run(43).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    for kind in [
        "ok",
        "http-502",
        "malformed",
        "error:15:isp.top-remote-connection-timeout",
    ] {
        assert!(first.iter().any(|w| w == kind), "no {kind} in {first:?}");
    }
    // Answers lost after processing (timeout sub-code) issued; the early faults did not.
    let count = |kind: &str| first.iter().filter(|w| *w == kind).count() as u64;
    assert_eq!(
        stats.issued,
        count("ok") + count("error:15:isp.top-remote-connection-timeout")
    );
    assert_eq!(stats.calls_by_outcome["http-502"], count("http-502"));
    assert_eq!(stats.duplicates, 0);
}

#[tokio::test]
async fn a_withheld_answer_has_issued_when_the_client_gives_up() {
    let server = start_with(Faults {
        withhold_rate: 1.0,
        withhold: Duration::from_secs(60),
        ..Faults::default()
    })
    .await;
    post_and_give_up(&server, &tmall("W1"), "the answer is withheld").await;
    let stats = server.stats();
    assert_eq!((stats.issued, stats.withheld), (1, 1));
    // Shutdown cuts the 60 s hold short instead of waiting for it.
    shut_down_promptly(server).await;
}

#[tokio::test]
async fn stats_endpoint_reports_the_counters() {
    let server = start(SimConfig::default()).await;
    post_json(&server, &tmall("S1")).await;
    post_json(&server, &tmall("S1")).await;
    post_json(&server, &tmall("S2")).await;
    let mut bad = tmall("S3");
    bad.last_mut().unwrap().1 = "00".to_owned();
    post_json(&server, &bad).await;

    let url = server.url().replace("/router/rest", "/sim/stats");
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    let stats: SimStats = serde_json::from_str(&body).unwrap();
    let raw: Value = serde_json::from_str(&body).unwrap();
    for field in [
        "calls",
        "issued",
        "duplicates",
        "peak_calls_per_second",
        "rejected_signatures",
        "issued_by_identity",
        "calls_by_outcome",
    ] {
        assert!(raw.get(field).is_some(), "no {field} in {body}");
    }
    assert_eq!(stats, server.stats());
    assert_eq!(stats.calls, 4);
    assert_eq!(stats.issued, 3);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.rejected_signatures, 1);
    assert!((1..=4).contains(&stats.peak_calls_per_second));
    let identity =
        r#"tmall.nrt.certificate.send {"biz_code":"23","channel":7,"open_id":"S1","out_id":123}"#;
    assert_eq!(stats.issued_by_identity[identity], 2);
    assert_eq!(stats.calls_by_outcome["issued"], 3);
    assert_eq!(stats.calls_by_outcome["error:25"], 1);
    server.shutdown().await;
}

const QUERY: &str = "tmall.nrt.certificate.query";
const QUERY_PARAM: &str = "nrt_certificate_instance_query_d_t_o";

fn tmall_out(open_id: &str, out_id: u64) -> Form {
    let object =
        format!(r#"{{"channel":7,"open_id":"{open_id}","out_id":{out_id},"biz_code":"23"}}"#);
    signed_form(
        TMALL,
        ("nrt_certificate_send_d_t_o", &object),
        &creds(SignMethod::Md5, Some("sim-session")),
        &timestamp_now(),
    )
}

fn query_form(object: &str, creds: &Credentials<'_>) -> Form {
    signed_form(QUERY, (QUERY_PARAM, object), creds, &timestamp_now())
}

fn query(object: &str) -> Form {
    query_form(object, &creds(SignMethod::HmacSha256, Some("sim-session")))
}

/// The model of a query answer, which must be `code` "0".
fn query_model(answer: &Value) -> &Value {
    let result = result(answer, QUERY);
    assert_eq!(result["code"], "0", "{answer}");
    &result["model"]
}

/// The items of a wrapped `data_list` (absent when empty).
fn query_items(answer: &Value) -> Vec<Value> {
    let model = query_model(answer);
    match model.get("data_list") {
        None => Vec::new(),
        Some(list) => list["nrt_certificate_instance_response_dto"]
            .as_array()
            .unwrap_or_else(|| panic!("not a wrapped list: {answer}"))
            .clone(),
    }
}

#[tokio::test]
async fn certificate_query_pages_through_what_was_issued() {
    let server = start(SimConfig::default()).await;
    let mut issued = Vec::new();
    for out_id in 1..=5 {
        let answer = post_json(&server, &tmall_out("PAGED", out_id)).await;
        issued.push(result(&answer, TMALL)["model"]["certificate_code"].clone());
    }
    post_json(&server, &tmall_out("SOMEONE-ELSE", 1)).await;

    let mut seen = Vec::new();
    for (page, expected) in [(1, 2), (2, 2), (3, 1), (4, 0)] {
        let answer = post_json(
            &server,
            &query(&format!(
                r#"{{"open_id":"PAGED","biz_code":"23","page_size":2,"current_page":{page}}}"#
            )),
        )
        .await;
        let model = query_model(&answer);
        assert_eq!(model["total_item"], "5", "{answer}");
        assert_eq!(model["page_size"], "2");
        assert_eq!(model["current_page"], page.to_string());
        let items = query_items(&answer);
        assert_eq!(items.len(), expected, "page {page}: {answer}");
        for item in items {
            assert_eq!(item["open_id"], "PAGED");
            assert_eq!(item["channel"], 7);
            assert!(item["create_time"].is_string() && item["modified_time"].is_string());
            seen.push((item["out_id"].clone(), item["certificate_code"].clone()));
        }
    }
    let expected: Vec<(Value, Value)> = (1..=5)
        .map(|i| Value::from(i.to_string()))
        .zip(issued)
        .collect();
    assert_eq!(seen, expected, "oldest first, each once");

    // By code, and in the simplified shape (a bare list).
    let code = expected[2].1.as_str().unwrap();
    let form = resigned(
        &query(&format!(r#"{{"codes":"{code}"}}"#)),
        "simplify",
        "true",
    );
    let answer = post_json(&server, &form).await;
    assert_eq!(
        answer["result"]["model"]["data_list"][0]["certificate_code"],
        code
    );
    assert_eq!(answer["result"]["model"]["total_item"], "1");

    // A query issues nothing and is counted by method.
    let stats = server.stats();
    assert_eq!(stats.issued, 6);
    assert_eq!(stats.calls_by_method[QUERY], 5);
    assert_eq!(stats.calls_by_outcome["certificate-query"], 5);
    server.shutdown().await;
}

#[tokio::test]
async fn a_new_certificate_is_hidden_for_the_query_lag() {
    let server = start(SimConfig {
        query_lag: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let answer = post_json(&server, &tmall("LAGGED")).await;
    assert_eq!(result(&answer, TMALL)["code"], "0");
    let answer = post_json(&server, &query(r#"{"open_id":"LAGGED"}"#)).await;
    assert_eq!(query_model(&answer)["total_item"], "0", "{answer}");
    assert!(query_items(&answer).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_before_the_campaign_shows_but_does_not_count() {
    let server = start(SimConfig {
        preissued: vec![
            "open_id=OLD,biz_code=23,out_id=123,channel=7"
                .parse()
                .unwrap(),
        ],
        ..SimConfig::default()
    })
    .await;
    let before = post_json(&server, &query(r#"{"open_id":"OLD","biz_code":"23"}"#)).await;
    let old = query_items(&before);
    assert_eq!(old.len(), 1, "{before}");
    assert_eq!(old[0]["out_id"], "123");
    let created = old[0]["create_time"].as_str().unwrap();
    assert!(
        created < timestamp_now().as_str(),
        "issued a day before: {created}"
    );

    let sent = post_json(&server, &tmall("OLD")).await;
    let code = &result(&sent, TMALL)["model"]["certificate_code"];
    assert_ne!(*code, old[0]["certificate_code"]);
    let after = post_json(&server, &query(r#"{"open_id":"OLD","biz_code":"23"}"#)).await;
    assert_eq!(query_items(&after).len(), 2);
    let stats = server.stats();
    assert_eq!((stats.issued, stats.duplicates), (1, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn a_query_can_be_refused_throttled_and_is_checked_like_the_others() {
    let denied = start(SimConfig {
        deny_query: true,
        ..SimConfig::default()
    })
    .await;
    let answer = post_json(&denied, &query(r#"{"open_id":"A"}"#)).await;
    assert_eq!(
        error_of(&answer),
        Some((11, "isv.permission-api-package-not-allowed".into()))
    );
    denied.shutdown().await;

    let server = start(SimConfig {
        throttle_queries: 2,
        faults: Faults {
            ban_seconds: 5,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    for _ in 0..2 {
        let answer = post_json(&server, &query(r#"{"open_id":"A"}"#)).await;
        assert_eq!(
            error_of(&answer),
            Some((7, "accesscontrol.limited-by-api-access-count".into()))
        );
        assert_eq!(ban_seconds(&answer), 5);
    }
    let answer = post_json(&server, &query(r#"{"open_id":"A"}"#)).await;
    assert_eq!(query_model(&answer)["total_item"], "0");
    let mut bad_sign = query(r#"{"open_id":"A"}"#);
    bad_sign.last_mut().unwrap().1 = "00".to_owned();
    let cases: [(&str, Form, i64); 4] = [
        (
            "no session",
            query_form(r#"{"open_id":"A"}"#, &creds(SignMethod::Md5, None)),
            26,
        ),
        (
            "wrong session",
            query_form(r#"{"open_id":"A"}"#, &creds(SignMethod::Md5, Some("x"))),
            27,
        ),
        ("wrong signature", bad_sign, 25),
        (
            "wrong app key",
            resigned(&query(r#"{"open_id":"A"}"#), "app_key", "1"),
            29,
        ),
    ];
    assert_error_codes(&server, cases).await;
    assert_eq!(server.stats().throttled, 2);
    server.shutdown().await;
}

fn time_get(timestamp: &str, creds: &Credentials<'_>) -> Form {
    signed_form("taobao.time.get", ("", ""), creds, timestamp)
}

fn seller_get(creds: &Credentials<'_>) -> Form {
    signed_form(
        "taobao.user.seller.get",
        ("fields", "nick"),
        creds,
        &timestamp_now(),
    )
}

#[tokio::test]
async fn time_get_tells_the_gateway_clock_and_seller_get_proves_the_session() {
    let server = start(SimConfig {
        clock_offset_s: 300,
        ..SimConfig::default()
    })
    .await;
    let before = chrono::Utc::now();
    let answer = post_json(
        &server,
        &time_get(&timestamp_now(), &creds(SignMethod::Md5, None)),
    )
    .await;
    let time = answer["time_get_response"]["time"].as_str().unwrap();
    let gateway = campaign::top::params::parse_timestamp(time).unwrap();
    let skew = (gateway.with_timezone(&chrono::Utc) - before).num_seconds();
    // Five minutes ahead, give or take the time the call took.
    assert!((240..=360).contains(&skew), "{skew} s: {answer}");

    let answer = post_json(
        &server,
        &seller_get(&creds(SignMethod::Hmac, Some("sim-session"))),
    )
    .await;
    assert_eq!(
        answer["user_seller_get_response"]["user"]["nick"],
        "sim-seller"
    );
    let cases: [(&str, Form, i64); 4] = [
        ("no session", seller_get(&creds(SignMethod::Hmac, None)), 26),
        (
            "wrong session",
            seller_get(&creds(SignMethod::Hmac, Some("x"))),
            27,
        ),
        (
            "wrong secret",
            seller_get(&Credentials {
                secret: "not-it",
                ..creds(SignMethod::Hmac, Some("sim-session"))
            }),
            25,
        ),
        (
            "wrong app key",
            time_get(
                &timestamp_now(),
                &Credentials {
                    app_key: "1",
                    ..creds(SignMethod::Md5, None)
                },
            ),
            29,
        ),
    ];
    assert_error_codes(&server, cases).await;
    assert_eq!(server.stats().issued, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_skewed_gateway_clock_refuses_the_host_timestamp() {
    let server = start(SimConfig {
        clock_offset_s: -3600,
        ..SimConfig::default()
    })
    .await;
    let host = post_json(
        &server,
        &time_get(&timestamp_now(), &creds(SignMethod::Md5, None)),
    )
    .await;
    assert_eq!(error_of(&host), Some((31, String::new())));
    let behind = format_timestamp(chrono::Utc::now() - chrono::Duration::hours(1));
    let answer = post_json(&server, &time_get(&behind, &creds(SignMethod::Md5, None))).await;
    assert!(answer["time_get_response"]["time"].is_string(), "{answer}");
    server.shutdown().await;
}

/// Where a request puts its parameters, as the official SDKs do.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Java, PHP, Python: system parameters in the query string, business ones in the body.
    SystemInQuery,
    /// Go, Node: everything in the form body.
    AllInBody,
    /// Everything in the query string of a GET.
    Get,
}

/// Sends `tmall.nrt.certificate.send` for `open_id` the way an SDK does: the given timestamp
/// and extra system parameters, signed over everything sent, laid out as `layout` says.
async fn sdk_call(
    server: &SimServer,
    open_id: &str,
    timestamp: &str,
    extra: &[(&str, &str)],
    layout: Layout,
) -> Value {
    let object = format!(r#"{{"channel":7,"open_id":"{open_id}","out_id":1,"biz_code":"23"}}"#);
    let mut system: Form = [
        ("method", TMALL),
        ("app_key", "10000001"),
        ("session", "sim-session"),
        ("timestamp", timestamp),
        ("format", "json"),
        ("v", "2.0"),
        ("sign_method", "md5"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let business: Form = vec![("nrt_certificate_send_d_t_o".to_owned(), object)];
    let signature = sign(
        system
            .iter()
            .chain(&business)
            .map(|(k, v)| (k.as_str(), v.as_str())),
        "sim-secret",
        SignMethod::Md5,
    );
    system.push(("sign".to_owned(), signature));
    let client = reqwest::Client::new();
    let url = |query: &Form| {
        format!(
            "{}?{}",
            server.url(),
            serde_urlencoded::to_string(query).unwrap()
        )
    };
    let request = match layout {
        Layout::SystemInQuery => client.post(url(&system)).form(&business),
        Layout::AllInBody => client
            .post(server.url())
            .form(&system.iter().chain(&business).collect::<Vec<_>>()),
        Layout::Get => client.get(url(&system.iter().chain(&business).cloned().collect())),
    };
    let body = request.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn accepts_what_the_official_sdks_send() {
    let server = start(SimConfig::default()).await;
    let millis = chrono::Utc::now().timestamp_millis().to_string();
    let text = timestamp_now();
    let python = [("partner_id", "top-sdk-python-20180409")];
    let java = [
        ("partner_id", "top-sdk-java-20200706"),
        ("target_app_key", "20000002"),
    ];
    type Extra<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, &str, Extra, Layout); 5] = [
        ("python sdk", &millis, &python, Layout::SystemInQuery),
        ("java sdk", &text, &java, Layout::SystemInQuery),
        ("go sdk", &text, &[], Layout::AllInBody),
        ("get", &millis, &java, Layout::Get),
        (
            "simplified",
            &text,
            &[("simplify", "true")],
            Layout::SystemInQuery,
        ),
    ];
    for (i, (what, timestamp, extra, layout)) in cases.into_iter().enumerate() {
        let answer = sdk_call(&server, &format!("SDK{i}"), timestamp, extra, layout).await;
        assert!(error_of(&answer).is_none(), "{what}: {answer}");
        let model = match answer.get("tmall_nrt_certificate_send_response") {
            Some(wrapped) => &wrapped["result"]["model"],
            None => &answer["result"]["model"],
        };
        assert_eq!(model["open_id"], format!("SDK{i}"), "{what}: {answer}");
    }
    assert_eq!(server.stats().issued, 5);

    // The window still holds for epoch milliseconds, and what is signed is what was sent: an
    // extra parameter left out of the signature is refused.
    let stale = (chrono::Utc::now() - chrono::Duration::minutes(11))
        .timestamp_millis()
        .to_string();
    let answer = sdk_call(&server, "SDK-STALE", &stale, &python, Layout::SystemInQuery).await;
    assert_eq!(error_of(&answer).map(|e| e.0), Some(31), "{answer}");
    let mut unsigned = tmall("SDK-UNSIGNED");
    unsigned.push(("partner_id".to_owned(), "added-after-signing".to_owned()));
    let answer = post_json(&server, &unsigned).await;
    assert_eq!(error_of(&answer).map(|e| e.0), Some(25), "{answer}");
    assert_eq!(server.stats().issued, 5);
    server.shutdown().await;
}

#[tokio::test]
async fn two_simulators_never_hand_out_the_same_code() {
    // A campaign on `url = "sim"` starts a fresh simulator every run; a resumed run must not get
    // the codes of the first again, or verify sees double issues that never happened.
    let mut codes = Vec::new();
    for _ in 0..2 {
        let server = start(SimConfig::default()).await;
        let answer = post_json(&server, &tmall("SAME-ROW")).await;
        codes.push(result(&answer, TMALL)["model"]["certificate_code"].clone());
        server.shutdown().await;
    }
    assert_ne!(codes[0], codes[1]);
}

fn campaign_sim(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_campaign"));
    cmd.arg("sim").args(args).env("RUST_LOG", "campaign=info");
    cmd
}

#[test]
fn sim_refuses_numbers_out_of_bounds_with_a_clear_error() {
    for (flag, value) in [
        ("--limit-qps", "0"),
        ("--ban-seconds", "99999999999999999999"),
        ("--latency-ms", "18446744073709551615"),
        ("--clock-offset-s", "-9223372036854775808"),
        ("--http502-rate", "NaN"),
    ] {
        let out = campaign_sim(&["--addr", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && !stderr.contains("panicked"),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn sim_on_a_non_loopback_address_warns() {
    use std::io::{BufRead, BufReader, Read};
    let mut child = campaign_sim(&["--addr", "0.0.0.0:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening on http://0.0.0.0:"), "{first}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[tokio::test]
async fn the_latency_tail_holds_answers_of_calls_already_processed() {
    // Every answer in the tail, and the tail an hour long: the client gives up, the call issued.
    let server = start_with(Faults {
        latency_tail: Some("100%:3600s".parse().unwrap()),
        ..Faults::default()
    })
    .await;
    post_and_give_up(&server, &tmall("TAIL-1"), "the answer is in the slow tail").await;
    assert_eq!(server.stats().issued, 1);
    shut_down_promptly(server).await;
}
