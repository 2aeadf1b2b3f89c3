//! Request validation, in the gateway's order and with its codes: method (21/22), app key
//! (28/29), timestamp (30/31, either form, 10 minutes of skew), version (32/33/34), format (23),
//! `sign_method` and signature (24/25), session where the method needs one (26/27), then the
//! business params (40 for a missing `fields`, 50 `isv.invalid-parameter` for an object param).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::SimConfig;
use super::answer::ErrorAnswer;
use super::call::{
    Call, CertificateQuery, DEFAULT_PAGE_SIZE, IssueCall, MAX_PAGE_SIZE, Method, Op, QUERY_PARAM,
};
use crate::top::params::parse_timestamp;
use crate::top::sign::{is_sent, sign};
use crate::top::{ApiSpec, SignMethod};

/// The most a request's `timestamp` may differ from the gateway's clock.
const MAX_SKEW_SECS: i64 = 600;

/// The request parameters: the query string and the form body together. A name given twice
/// keeps its first value (the query string's); blank values count as absent, as in signing.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>, body: &[u8]) -> Self {
        let mut params: Vec<(String, String)> = Vec::with_capacity(12);
        let query = query.unwrap_or_default().as_bytes();
        for part in [query, body] {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(part).unwrap_or_default();
            for (name, value) in pairs {
                if is_sent(&name, &value) && !params.iter().any(|(n, _)| *n == name) {
                    params.push((name, value));
                }
            }
        }
        Params(params)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Checks a request as the gateway does; `now` is the gateway's clock.
pub(crate) fn request(
    config: &SimConfig,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<Call, ErrorAnswer> {
    let name = params
        .get("method")
        .ok_or_else(|| ErrorAnswer::new(21, "Missing method"))?;
    let method = Method::find(name).ok_or_else(|| {
        ErrorAnswer::new(22, "Invalid method").with_sub_msg(format!("unknown method {name}"))
    })?;

    match params.get("app_key") {
        None => return Err(ErrorAnswer::new(28, "Missing app key")),
        Some(key) if key != config.app_key => return Err(ErrorAnswer::new(29, "Invalid app Key")),
        Some(_) => {}
    }

    let timestamp = params
        .get("timestamp")
        .ok_or_else(|| ErrorAnswer::new(30, "Missing timestamp"))?;
    let invalid_timestamp = |why: &str| {
        ErrorAnswer::new(31, "Invalid timestamp").with_sub_msg(format!(
            "{why}: expected yyyy-MM-dd HH:mm:ss in GMT+8 or epoch milliseconds, \
             within 10 minutes of the gateway's clock"
        ))
    };
    let at = parse_any_timestamp(timestamp).ok_or_else(|| invalid_timestamp("malformed"))?;
    if (now - at).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(invalid_timestamp("out of the allowed window"));
    }

    match params.get("v") {
        None => return Err(ErrorAnswer::new(32, "Missing version")),
        Some("2.0") => {}
        Some(v) if is_version(v) => return Err(ErrorAnswer::new(34, "Unsupported version")),
        Some(_) => return Err(ErrorAnswer::new(33, "Invalid version")),
    }

    if params.get("format") != Some("json") {
        return Err(ErrorAnswer::new(23, "Invalid format")
            .with_sub_msg("the simulator answers format=json only"));
    }

    // The old gateway defaulted a missing sign_method to md5; an unknown one cannot verify.
    let sign_method: SignMethod =
        params
            .get("sign_method")
            .unwrap_or("md5")
            .parse()
            .map_err(|_: String| {
                ErrorAnswer::new(25, "Invalid signature").with_sub_msg("unsupported sign_method")
            })?;
    let given = params
        .get("sign")
        .ok_or_else(|| ErrorAnswer::new(24, "Missing signature"))?;
    if given != sign(params.pairs(), &config.secret, sign_method) {
        return Err(ErrorAnswer::new(25, "Invalid signature"));
    }

    if method.needs_session() {
        match params.get("session") {
            None => return Err(ErrorAnswer::new(26, "Missing session")),
            Some(session) if session != config.session => {
                return Err(ErrorAnswer::new(27, "Invalid session")
                    .with_sub_code("invalid-sessionkey")
                    .with_sub_msg("SessionKey非法"));
            }
            Some(_) => {}
        }
    }

    let op = match method {
        Method::Issue(api) => Op::Issue(IssueCall::new(api, issue_object(api, params)?)),
        Method::CertificateQuery => Op::Query(certificate_query(params)?),
        Method::TimeGet => Op::TimeGet,
        Method::UserSellerGet => Op::UserSellerGet {
            fields: seller_fields(params)?,
        },
    };
    Ok(Call {
        simplify: params.get("simplify") == Some("true"),
        op,
    })
}

/// A `timestamp` in either form the SDKs send: `yyyy-MM-dd HH:mm:ss` in GMT+8 (the documented
/// one, and the Java SDK's) or epoch milliseconds (the official Python SDK's).
pub(crate) fn parse_any_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return DateTime::from_timestamp_millis(text.parse().ok()?);
    }
    parse_timestamp(text).map(|at| at.with_timezone(&Utc))
}

fn is_version(v: &str) -> bool {
    v.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The named object param as a JSON object, or code 50 naming what is wrong.
fn object_param(name: &str, params: &Params) -> Result<Map<String, Value>, ErrorAnswer> {
    let text = params
        .get(name)
        .ok_or_else(|| ErrorAnswer::invalid_parameter(format!("{name}: required but missing")))?;
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ErrorAnswer::invalid_parameter(format!(
            "{name}: not a JSON object"
        ))),
        Err(e) => Err(ErrorAnswer::invalid_parameter(format!(
            "{name}: not JSON: {e}"
        ))),
    }
}

fn issue_object(api: &ApiSpec, params: &Params) -> Result<Map<String, Value>, ErrorAnswer> {
    let name = api.object_param;
    let object = object_param(name, params)?;
    // Moved into a Value for the check and back out: no copy.
    let value = Value::Object(object);
    api.check_object(&value)
        .map_err(|e| ErrorAnswer::invalid_parameter(format!("{name}.{e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => unreachable!("built from a map"),
    }
}

/// `nrt_certificate_instance_query_d_t_o`: `open_id`, `codes` (comma-separated, or a JSON
/// array), `biz_code` (strings), `page_size` and `current_page` (numbers, or numbers as
/// strings). At least one of `open_id` and `codes` is required.
fn certificate_query(params: &Params) -> Result<CertificateQuery, ErrorAnswer> {
    let object = object_param(QUERY_PARAM, params)?;
    let bad = |field: &str, why: &str| {
        ErrorAnswer::invalid_parameter(format!("{QUERY_PARAM}.{field}: {why}"))
    };
    let text = |field: &str| -> Result<Option<String>, ErrorAnswer> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(field, "must be a string")),
        }
    };
    let number = |field: &str, default: u32, max: u32| -> Result<u32, ErrorAnswer> {
        let n = match object.get(field) {
            None | Some(Value::Null) => return Ok(default),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u32),
            _ => Err(bad(
                field,
                &format!("must be a whole number from 1 to {max}"),
            )),
        }
    };
    let codes = match object.get("codes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("codes", "must be a string or a list of strings"))?,
        Some(_) => return Err(bad("codes", "must be a string or a list of strings")),
    };
    let query = CertificateQuery {
        open_id: text("open_id")?,
        codes,
        biz_code: text("biz_code")?,
        page_size: number("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?,
        current_page: number("current_page", 1, u32::MAX)?,
    };
    if query.open_id.is_none() && query.codes.is_empty() {
        return Err(bad("open_id", "open_id or codes is required"));
    }
    Ok(query)
}

/// `fields` of `taobao.user.seller.get`: required, comma-separated.
fn seller_fields(params: &Params) -> Result<Vec<String>, ErrorAnswer> {
    let fields = params.get("fields").ok_or_else(|| {
        ErrorAnswer::new(40, "Missing Required Arguments")
            .with_sub_code("isv.missing-parameter")
            .with_sub_msg("fields")
    })?;
    Ok(fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::call::{CERTIFICATE_QUERY, TIME_GET, USER_SELLER_GET};
    use super::*;
    use crate::top::params::{Credentials, format_timestamp, signed_form};

    const TMALL_OBJECT: &str = r#"{"channel":7,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#;

    type Form = Vec<(String, String)>;

    fn signed(
        method: &str,
        object: (&str, &str),
        sign_method: SignMethod,
        session: Option<&str>,
        timestamp: &str,
    ) -> Form {
        let creds = Credentials {
            app_key: "10000001",
            secret: "sim-secret",
            session,
            sign_method,
        };
        signed_form(method, object, &creds, timestamp)
    }

    fn form(method: SignMethod, session: Option<&str>, at: DateTime<Utc>) -> Form {
        signed(
            "tmall.nrt.certificate.send",
            ("nrt_certificate_send_d_t_o", TMALL_OBJECT),
            method,
            session,
            &format_timestamp(at),
        )
    }

    fn query_form(object: &str) -> Form {
        signed(
            CERTIFICATE_QUERY,
            (QUERY_PARAM, object),
            SignMethod::Md5,
            Some("sim-session"),
            &format_timestamp(Utc::now()),
        )
    }

    fn check(form: &[(String, String)], now: DateTime<Utc>) -> Result<Call, ErrorAnswer> {
        let body = serde_urlencoded::to_string(form).unwrap();
        request(
            &SimConfig::default(),
            &Params::parse(None, body.as_bytes()),
            now,
        )
    }

    fn code(form: &[(String, String)], now: DateTime<Utc>) -> u32 {
        check(form, now).unwrap_err().code
    }

    fn with(form: &[(String, String)], name: &str, value: &str) -> Form {
        let mut form = form.to_vec();
        form.retain(|(n, _)| n != name);
        form.push((name.to_owned(), value.to_owned()));
        form
    }

    #[test]
    fn accepts_every_sign_method() {
        let now = Utc::now();
        for method in SignMethod::ALL {
            let call = check(&form(method, Some("sim-session"), now), now).unwrap();
            let Op::Issue(issue) = &call.op else {
                panic!("{call:?}")
            };
            assert_eq!(issue.recipient(), "AXBZ");
            assert!(!call.simplify);
        }
    }

    #[test]
    fn codes_follow_the_gateway_order() {
        let now = Utc::now();
        let good = form(SignMethod::Md5, Some("sim-session"), now);
        assert_eq!(code(&with(&good, "method", "x.y"), now), 22);
        assert_eq!(code(&with(&good, "app_key", "1"), now), 29);
        assert_eq!(code(&with(&good, "timestamp", "2016-01-01"), now), 31);
        let later = now + chrono::Duration::minutes(11);
        assert_eq!(code(&good, later), 31);
        assert_eq!(code(&with(&good, "v", "3.0"), now), 34);
        assert_eq!(code(&with(&good, "v", "two"), now), 33);
        assert_eq!(code(&with(&good, "format", "xml"), now), 23);
        assert_eq!(code(&with(&good, "sign_method", "sha1"), now), 25);
        assert_eq!(code(&with(&good, "sign", "00"), now), 25);
        let without_sign: Vec<_> = good.iter().filter(|(n, _)| n != "sign").cloned().collect();
        assert_eq!(code(&without_sign, now), 24);
        assert_eq!(code(&form(SignMethod::Md5, None, now), now), 26);
        let wrong = check(&form(SignMethod::Md5, Some("other"), now), now).unwrap_err();
        assert_eq!(
            (wrong.code, wrong.sub_code),
            (27, Some("invalid-sessionkey"))
        );
    }

    #[test]
    fn timestamps_in_epoch_milliseconds_are_accepted_within_the_window() {
        let now = Utc::now();
        let millis = |at: DateTime<Utc>| at.timestamp_millis().to_string();
        let at_now = signed(
            "tmall.nrt.certificate.send",
            ("nrt_certificate_send_d_t_o", TMALL_OBJECT),
            SignMethod::Md5,
            Some("sim-session"),
            &millis(now),
        );
        assert!(check(&at_now, now).is_ok());
        assert_eq!(code(&at_now, now + chrono::Duration::minutes(11)), 31);
        assert_eq!(
            parse_any_timestamp("1451620800000"),
            parse_any_timestamp("2016-01-01 12:00:00")
        );
        assert!(parse_any_timestamp("99999999999999999999999").is_none());
        assert!(parse_any_timestamp("").is_none());
    }

    #[test]
    fn query_params_are_read_leniently_and_checked() {
        let now = Utc::now();
        let query = |object: &str| match check(&query_form(object), now).map(|c| c.op) {
            Ok(Op::Query(query)) => Ok(query),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let q = query(r#"{"open_id":"A","biz_code":"23"}"#).unwrap();
        assert_eq!(q.open_id.as_deref(), Some("A"));
        assert_eq!((q.page_size, q.current_page), (DEFAULT_PAGE_SIZE, 1));
        let q = query(r#"{"codes":"c1, c2","page_size":"50","current_page":3}"#).unwrap();
        assert_eq!(q.codes, ["c1", "c2"]);
        assert_eq!((q.page_size, q.current_page), (50, 3));
        for bad in [
            r#"{"biz_code":"23"}"#,
            r#"{"open_id":"A","page_size":0}"#,
            r#"{"open_id":"A","page_size":101}"#,
            r#"{"open_id":"A","current_page":-1}"#,
            r#"{"open_id":7}"#,
            r#"[1]"#,
        ] {
            let e = query(bad).unwrap_err();
            assert_eq!((e.code, e.sub_code), (50, Some("isv.invalid-parameter")));
        }
        let no_session = signed(
            CERTIFICATE_QUERY,
            (QUERY_PARAM, r#"{"open_id":"A"}"#),
            SignMethod::Md5,
            None,
            &format_timestamp(now),
        );
        assert_eq!(code(&no_session, now), 26);
    }

    #[test]
    fn time_get_needs_no_session_and_seller_get_needs_fields() {
        let now = Utc::now();
        let time = signed(
            TIME_GET,
            ("", ""),
            SignMethod::HmacSha256,
            None,
            &format_timestamp(now),
        );
        assert!(matches!(check(&time, now).unwrap().op, Op::TimeGet));
        let seller = signed(
            USER_SELLER_GET,
            ("fields", "nick,user_id"),
            SignMethod::Hmac,
            Some("sim-session"),
            &format_timestamp(now),
        );
        let Op::UserSellerGet { fields } = check(&seller, now).unwrap().op else {
            panic!()
        };
        assert_eq!(fields, ["nick", "user_id"]);
        let bare = signed(
            USER_SELLER_GET,
            ("", ""),
            SignMethod::Hmac,
            Some("sim-session"),
            &format_timestamp(now),
        );
        assert_eq!(code(&bare, now), 40);
        let wrong = signed(
            USER_SELLER_GET,
            ("fields", "nick"),
            SignMethod::Hmac,
            Some("other"),
            &format_timestamp(now),
        );
        assert_eq!(code(&wrong, now), 27);
    }

    #[test]
    fn query_and_body_are_one_parameter_set() {
        let params = Params::parse(Some("a=1&b=&c=3"), b"a=9&b=2");
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), Some("2"));
        assert_eq!(params.get("c"), Some("3"));
        assert_eq!(params.get("d"), None);
    }

    #[test]
    fn versions_are_told_apart() {
        assert!(is_version("1.0"));
        assert!(!is_version("2"));
        assert!(!is_version("2.x"));
    }
}
