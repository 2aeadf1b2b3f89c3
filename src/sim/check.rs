//! Request validation, in the gateway's order and with its codes: method (21/22), app key
//! (28/29), timestamp (30/31, either form, 10 minutes of skew), version (32/33/34), format (23),
//! `sign_method` and signature (24/25), session where the method needs one (26/27), then the
//! business params as `params` reads them (40 for a missing `fields`, 50
//! `isv.invalid-parameter` for an object param).

use chrono::{DateTime, Utc};

use super::answer::ErrorAnswer;
use super::call::{Call, IssueCall, Method, Op};
use super::config::SimConfig;
use super::params::{Params, certificate_query, issue_object, seller_fields};
use crate::top::SignMethod;
use crate::top::params::parse_timestamp;
use crate::top::sign::sign;

/// The most a request's `timestamp` may differ from the gateway's clock.
const MAX_SKEW_SECS: i64 = 600;

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

#[cfg(test)]
mod tests {
    use super::super::call::{
        CERTIFICATE_QUERY, DEFAULT_PAGE_SIZE, QUERY_PARAM, TIME_GET, USER_SELLER_GET,
    };
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
    fn versions_are_told_apart() {
        assert!(is_version("1.0"));
        assert!(!is_version("2"));
        assert!(!is_version("2.x"));
    }
}
