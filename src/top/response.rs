//! Reading one gateway answer: `error_response` bodies, both success shapes (wrapped in
//! `<name>_response`, or `simplify=true` where the root object is the answer), HTTP errors and
//! bodies that are not a TOP answer. Turns each into an [`Outcome`] plus the platform's
//! `request_id`; the API's own `read_success` reads the inside of a success answer.

use serde_json::{Map, Value};

use super::api::ApiSpec;
use super::outcome::{Outcome, PlatformError, classify_error};

/// A classified answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub outcome: Outcome,
    /// The platform's `request_id` (for support tickets), when the answer carried one.
    pub top_request_id: Option<String>,
}

/// How much of a body that is not a TOP answer is kept in the error message. The client's
/// scrubber cuts it shorter once secrets are masked (see `scrub`).
const SNIPPET_CHARS: usize = 2000;

/// Classifies one HTTP answer from the gateway for `api`.
///
/// An `error_response` is classified by [`classify_error`] whatever the HTTP status, because it
/// is the platform's own word that the call was refused. An answer that shows the TOP router
/// never took the call (a redirect, HTTP 401/403/404/405 without a TOP error, an HTML page) is
/// [`Outcome::Fatal`]: the configured URL is wrong, and every other row would meet the same.
/// Any other answer counts only with HTTP 200; otherwise (HTTP 5xx, other statuses, bodies that
/// are not JSON or not a TOP answer) the answer is lost: [`Outcome::answer_lost`] with sub-code
/// `http-NNN` or `malformed-body`.
pub fn parse_response(api: &ApiSpec, http_status: u16, body: &[u8]) -> Parsed {
    let json = serde_json::from_slice::<Value>(body).ok();
    match unwrap_answer(
        api.method,
        api.is_idempotent(),
        http_status,
        json.as_ref(),
        body,
    ) {
        Answer::Body(answer) => Parsed {
            outcome: (api.read_success)(answer),
            top_request_id: answer.get("request_id").and_then(scalar_text),
        },
        Answer::Failed(failed) => failed,
    }
}

/// What [`unwrap_answer`] found.
#[derive(Debug)]
pub enum Answer<'a> {
    /// The inside of a success answer.
    Body(&'a Value),
    /// Not a success answer: classified.
    Failed(Parsed),
}

/// The inside of a success answer to `method` (unwrapped from `<name>_response` when wrapped),
/// or the classified failure, as [`parse_response`] describes it. `json` is `body` parsed.
pub fn unwrap_answer<'a>(
    method: &str,
    idempotent: bool,
    http_status: u16,
    json: Option<&'a Value>,
    body: &[u8],
) -> Answer<'a> {
    if let Some(error) = json.and_then(|v| v.get("error_response")) {
        return Answer::Failed(parse_error(error, idempotent));
    }
    if let Some(error) = not_a_top_router(http_status, body) {
        return Answer::Failed(Parsed {
            outcome: Outcome::Fatal(error),
            top_request_id: None,
        });
    }
    if http_status != 200 {
        let error = PlatformError::transport(
            &format!("http-{http_status}"),
            format!("HTTP {http_status}: {}", snippet(body)),
        );
        return Answer::Failed(lost(idempotent, error));
    }
    let Some(root @ Value::Object(root_map)) = json else {
        return Answer::Failed(lost(idempotent, malformed(body)));
    };
    let wrapped = root_map
        .iter()
        .find_map(|(key, value)| is_response_key(method, key).then_some(value));
    match wrapped {
        Some(wrapped @ Value::Object(_)) => Answer::Body(wrapped),
        Some(_) => Answer::Failed(lost(idempotent, malformed(body))),
        None => Answer::Body(root),
    }
}

/// The reason an answer that is not a TOP error shows no TOP router took the call, if it does.
///
/// A 5xx page is not among them: a proxy or load balancer in front of the router answers 502/504
/// after the router may have processed the call, so that answer is lost, not refused.
fn not_a_top_router(http_status: u16, body: &[u8]) -> Option<PlatformError> {
    let sub_code = format!("http-{http_status}");
    let why = match http_status {
        300..=399 => {
            "a redirect, which is never followed (the signed form goes to gateway.url only)"
        }
        401 | 403 => "access refused by the web server, not by the TOP router",
        404 => "no such page: there is no TOP router at this address",
        405 => "method not allowed: there is no TOP router at this address",
        _ if http_status < 500 && looks_like_html(body) => {
            return Some(PlatformError::transport(
                "html-page",
                format!(
                    "HTTP {http_status}: an HTML page, not a TOP answer (a login or captive \
                     portal, a proxy, or the wrong host): {}",
                    snippet(body)
                ),
            ));
        }
        _ => return None,
    };
    Some(PlatformError::transport(
        &sub_code,
        format!("HTTP {http_status}: {why}: {}", snippet(body)),
    ))
}

/// Whether a body is an HTML page (a TOP answer with `format=json` never is).
fn looks_like_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(1024)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let head = head.trim_start();
    head.starts_with("<!doctype html") || head.contains("<html") || head.contains("<body")
}

/// Whether `key` is [`ApiSpec::response_key`] of `method`, checked without building that key.
fn is_response_key(method: &str, key: &str) -> bool {
    let name = method.strip_prefix("taobao.").unwrap_or(method);
    key.strip_suffix("_response").is_some_and(|stem| {
        stem.len() == name.len()
            && stem
                .bytes()
                .zip(name.bytes())
                .all(|(k, n)| k == if n == b'.' { b'_' } else { n })
    })
}

/// The outcome for a success-shaped answer that lacks what the API always sends: the body is
/// not an answer we can trust, so it counts as lost (sub-code `malformed-body`).
pub fn not_a_top_answer(idempotent: bool, why: &str, answer: &Value) -> Outcome {
    let text = answer.to_string();
    Outcome::answer_lost(
        idempotent,
        PlatformError::transport(
            "malformed-body",
            format!("{why}: {}", snippet(text.as_bytes())),
        ),
    )
}

/// The text of a JSON scalar: strings as they are, numbers with every digit kept, booleans as
/// `true`/`false`. `None` for null, arrays and objects.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field of a JSON object as text, empty strings counting as absent.
pub fn field_text(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .get(name)
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
}

fn parse_error(error: &Value, idempotent: bool) -> Parsed {
    let Some(fields) = error.as_object() else {
        let text = error.to_string();
        return lost(idempotent, malformed(text.as_bytes()));
    };
    let code = field_text(fields, "code");
    let sub_code = field_text(fields, "sub_code");
    let msg = field_text(fields, "msg").unwrap_or_default();
    let sub_msg = field_text(fields, "sub_msg").unwrap_or_default();
    Parsed {
        outcome: classify_error(
            code.as_deref(),
            sub_code.as_deref(),
            &msg,
            &sub_msg,
            idempotent,
        ),
        top_request_id: field_text(fields, "request_id"),
    }
}

fn lost(idempotent: bool, error: PlatformError) -> Parsed {
    Parsed {
        outcome: Outcome::answer_lost(idempotent, error),
        top_request_id: None,
    }
}

fn malformed(body: &[u8]) -> PlatformError {
    PlatformError::transport(
        "malformed-body",
        format!("not a TOP answer: {}", snippet(body)),
    )
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(SNIPPET_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::apis::{alsc, tmall};
    use crate::top::outcome::OutcomeClass::*;

    const ERROR_NUMBER: &str = r#"{"error_response":{"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"非法参数","request_id":"rid-50"}}"#;

    fn sub_code(parsed: &Parsed) -> Option<&str> {
        parsed.outcome.error().and_then(|e| e.sub_code.as_deref())
    }

    #[test]
    fn error_response_with_numeric_code_keeps_request_id() {
        let parsed = parse_response(&tmall::SPEC, 200, ERROR_NUMBER.as_bytes());
        assert_eq!(
            parsed.outcome,
            Outcome::Permanent(PlatformError::new(
                Some("50"),
                Some("isv.invalid-parameter"),
                "非法参数"
            ))
        );
        assert_eq!(parsed.top_request_id.as_deref(), Some("rid-50"));
    }

    #[test]
    fn error_response_with_string_code_and_no_sub_code() {
        let body = br#"{"error_response":{"code":"25","msg":"Invalid signature"}}"#;
        let parsed = parse_response(&alsc::SPEC, 200, body);
        assert_eq!(
            parsed.outcome,
            Outcome::Fatal(PlatformError::new(Some("25"), None, "Invalid signature"))
        );
        assert_eq!(parsed.top_request_id, None);
    }

    #[test]
    fn error_response_counts_whatever_the_http_status() {
        let body = br#"{"error_response":{"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-api-access-count","sub_msg":"This ban will last for 3 more seconds"}}"#;
        let parsed = parse_response(&tmall::SPEC, 400, body);
        assert!(matches!(
            parsed.outcome,
            Outcome::Throttled { ban: Some(b), .. } if b.as_secs() == 3
        ));
    }

    #[test]
    fn both_success_shapes_for_both_apis() {
        for (api, seed, issued) in [
            (&tmall::SPEC, tmall::SEED_SUCCESS, "3839772921"),
            (&alsc::SPEC, alsc::SEED_SUCCESS, "7000246010032578xx"),
        ] {
            let wrapped = parse_response(api, 200, seed.as_bytes());
            assert!(
                matches!(&wrapped.outcome, Outcome::Issued { issued_id, .. } if issued_id == issued),
                "{}: {wrapped:?}",
                api.method
            );
            assert!(wrapped.top_request_id.is_some(), "{}", api.method);

            let root: Value = serde_json::from_str(seed).unwrap();
            let simplified = root[api.response_key()].to_string();
            let parsed = parse_response(api, 200, simplified.as_bytes());
            assert_eq!(parsed.outcome, wrapped.outcome, "{}", api.method);
            assert_eq!(parsed.top_request_id, wrapped.top_request_id);
        }
    }

    #[test]
    fn response_key_is_recognised_without_building_it() {
        for api in [&tmall::SPEC, &alsc::SPEC] {
            assert!(is_response_key(api.method, &api.response_key()));
            assert!(!is_response_key(api.method, api.method));
            assert!(!is_response_key(api.method, "error_response"));
        }
        assert!(is_response_key("taobao.item.get", "item_get_response"));
        assert!(!is_response_key("taobao.item.get", "item_gets_response"));
        assert!(!is_response_key("item.get", "item.get_response"));
    }

    #[test]
    fn http_errors_are_lost_answers_per_idempotency() {
        let html = b"<html><body>502 Bad Gateway</body></html>";
        let tmall = parse_response(&tmall::SPEC, 502, html);
        assert_eq!(tmall.outcome.class(), Unknown);
        assert_eq!(sub_code(&tmall), Some("http-502"));
        assert!(
            tmall
                .outcome
                .error()
                .unwrap()
                .message
                .contains("Bad Gateway")
        );
        let alsc = parse_response(&alsc::SPEC, 503, b"");
        assert_eq!(alsc.outcome.class(), Transient);
        assert_eq!(sub_code(&alsc), Some("http-503"));
        // A success-shaped body is not trusted off HTTP 200.
        let odd = parse_response(&tmall::SPEC, 500, tmall::SEED_SUCCESS.as_bytes());
        assert_eq!(odd.outcome.class(), Unknown);
        let odd = parse_response(&alsc::SPEC, 201, alsc::SEED_SUCCESS.as_bytes());
        assert_eq!(odd.outcome.class(), Transient);
    }

    #[test]
    fn bodies_that_are_not_a_top_answer_are_lost_answers_per_idempotency() {
        let long_garbage = "x".repeat(5000);
        let bodies: [&[u8]; 6] = [
            b"not json",
            b"",
            b"[1,2]",
            b"{}",
            br#"{"tmall_nrt_certificate_send_response":"oops","alibaba_alsc_right_decisionsend_response":7}"#,
            long_garbage.as_bytes(),
        ];
        for body in bodies {
            for (api, want) in [(&tmall::SPEC, Unknown), (&alsc::SPEC, Transient)] {
                let parsed = parse_response(api, 200, body);
                assert_eq!(
                    parsed.outcome.class(),
                    want,
                    "{}",
                    String::from_utf8_lossy(body)
                );
                assert_eq!(sub_code(&parsed), Some("malformed-body"));
                assert!(parsed.outcome.error().unwrap().message.len() < SNIPPET_CHARS + 100);
            }
        }
    }

    #[test]
    fn answers_from_no_top_router_are_fatal_for_both_apis() {
        let cases: [(u16, &[u8], &str); 9] = [
            (404, b"Not Found", "http-404"),
            (405, b"", "http-405"),
            (401, b"Unauthorized", "http-401"),
            (403, b"<html><body>Forbidden</body></html>", "http-403"),
            (301, b"", "http-301"),
            (302, tmall::SEED_SUCCESS.as_bytes(), "http-302"),
            (307, b"", "http-307"),
            (
                200,
                b"<!DOCTYPE html><title>Wi-Fi login</title>",
                "html-page",
            ),
            (200, b"\n  <HTML><BODY>portal</BODY></HTML>", "html-page"),
        ];
        for (status, body, want) in cases {
            for api in [&tmall::SPEC, &alsc::SPEC] {
                let parsed = parse_response(api, status, body);
                assert_eq!(parsed.outcome.class(), Fatal, "{status} {want}");
                assert_eq!(sub_code(&parsed), Some(want));
                let message = &parsed.outcome.error().unwrap().message;
                assert!(
                    message.starts_with(&format!("HTTP {status}: ")),
                    "{message}"
                );
            }
        }
        // A TOP error with those statuses is still the platform's word.
        let top_403 = br#"{"error_response":{"code":11,"msg":"Insufficient isv permissions"}}"#;
        let parsed = parse_response(&tmall::SPEC, 403, top_403);
        assert_eq!(parsed.outcome.error().unwrap().code.as_deref(), Some("11"));
        // An HTML 502 from a proxy may come after the router processed the call.
        let proxy = parse_response(&tmall::SPEC, 502, b"<html><body>Bad Gateway</body></html>");
        assert_eq!(proxy.outcome.class(), Unknown);
    }
}
