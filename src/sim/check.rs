//! Request validation, in the gateway's order and with its codes: method (21/22), app key
//! (28/29), timestamp (30/31, 10 minutes of skew in GMT+8), version (32/33/34), format (23),
//! `sign_method` and signature (24/25), session where the API needs one (26/27), then the object
//! param (50 `isv.invalid-parameter`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::SimConfig;
use super::answer::ErrorAnswer;
use super::issue::identity;
use crate::top::params::parse_timestamp;
use crate::top::sign::{is_sent, sign};
use crate::top::{ApiSpec, SignMethod, find_api};

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

/// A call that passed every check.
#[derive(Debug)]
pub(crate) struct ValidCall {
    pub api: &'static ApiSpec,
    /// The object param, parsed and checked.
    pub object: Map<String, Value>,
    pub simplify: bool,
    /// What issuances are counted by (see [`identity`]).
    pub identity: Arc<str>,
}

impl ValidCall {
    /// The recipient field's value (checked to be a string).
    pub(crate) fn recipient(&self) -> &str {
        self.text(self.api.recipient).unwrap_or_default()
    }

    /// The idempotency key's value, for idempotent APIs.
    pub(crate) fn idempotency_key(&self) -> Option<&str> {
        self.api.idempotency_key.and_then(|key| self.text(key))
    }

    fn text(&self, field: &str) -> Option<&str> {
        self.object.get(field).and_then(Value::as_str)
    }
}

/// Checks a request as the gateway does; `now` is the gateway's clock.
pub(crate) fn request(
    config: &SimConfig,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<ValidCall, ErrorAnswer> {
    let method = params
        .get("method")
        .ok_or_else(|| ErrorAnswer::new(21, "Missing method"))?;
    let api = find_api(method).ok_or_else(|| {
        ErrorAnswer::new(22, "Invalid method").with_sub_msg(format!("unknown method {method}"))
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
            "{why}: expected yyyy-MM-dd HH:mm:ss in GMT+8 within 10 minutes of the gateway's clock"
        ))
    };
    let at = parse_timestamp(timestamp).ok_or_else(|| invalid_timestamp("malformed"))?;
    if (now - at.with_timezone(&Utc)).num_seconds().abs() > MAX_SKEW_SECS {
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

    if api.needs_session {
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

    let object = object_param(api, params)?;
    Ok(ValidCall {
        api,
        identity: identity(api, &object).into(),
        object,
        simplify: params.get("simplify") == Some("true"),
    })
}

fn is_version(v: &str) -> bool {
    v.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn object_param(api: &ApiSpec, params: &Params) -> Result<Map<String, Value>, ErrorAnswer> {
    let name = api.object_param;
    let text = params
        .get(name)
        .ok_or_else(|| ErrorAnswer::invalid_parameter(format!("{name}: required but missing")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ErrorAnswer::invalid_parameter(format!("{name}: not JSON: {e}")))?;
    api.check_object(&value)
        .map_err(|e| ErrorAnswer::invalid_parameter(format!("{name}.{e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ErrorAnswer::invalid_parameter(format!(
            "{name}: not a JSON object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::params::{Credentials, format_timestamp, signed_form};

    const TMALL_OBJECT: &str = r#"{"channel":7,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#;

    fn form(method: SignMethod, session: Option<&str>, at: DateTime<Utc>) -> Vec<(String, String)> {
        let creds = Credentials {
            app_key: "10000001",
            secret: "sim-secret",
            session,
            sign_method: method,
        };
        signed_form(
            "tmall.nrt.certificate.send",
            ("nrt_certificate_send_d_t_o", TMALL_OBJECT),
            &creds,
            &format_timestamp(at),
        )
    }

    fn check(form: &[(String, String)], now: DateTime<Utc>) -> Result<ValidCall, ErrorAnswer> {
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

    fn with(form: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
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
            assert_eq!(call.recipient(), "AXBZ");
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
