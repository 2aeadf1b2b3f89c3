//! Common (system) parameters: the GMT+8 timestamp, `v`, `format`, `sign_method`, `session`,
//! and the signed form that goes on the wire.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

use super::sign::{SignMethod, is_sent, sign};

/// TOP's clock: GMT+8, whatever the host's time zone.
pub fn gmt8() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Formats an instant as TOP's `timestamp` (`yyyy-MM-dd HH:mm:ss` in GMT+8).
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.with_timezone(&gmt8())
        .format(TIMESTAMP_FORMAT)
        .to_string()
}

/// The `timestamp` for a request sent now.
pub fn timestamp_now() -> String {
    format_timestamp(Utc::now())
}

/// Parses a TOP `timestamp` (read as GMT+8).
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    let naive = NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT).ok()?;
    gmt8().from_local_datetime(&naive).single()
}

/// What identifies the caller on every request.
#[derive(Clone, Copy, Debug)]
pub struct Credentials<'a> {
    pub app_key: &'a str,
    pub secret: &'a str,
    /// Sent only when the API needs it.
    pub session: Option<&'a str>,
    pub sign_method: SignMethod,
}

/// The full, signed form of one call: system parameters, the object param (its JSON text as
/// serialised once), and `sign`. Blank values are left out of both the form and the signature.
pub fn signed_form(
    method: &str,
    object_param: (&str, &str),
    credentials: &Credentials<'_>,
    timestamp: &str,
) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = [
        ("method", method),
        ("app_key", credentials.app_key),
        ("timestamp", timestamp),
        ("format", "json"),
        ("v", "2.0"),
        ("sign_method", credentials.sign_method.as_str()),
        ("session", credentials.session.unwrap_or("")),
        object_param,
    ]
    .into_iter()
    .filter(|(k, v)| is_sent(k, v))
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let signature = sign(
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        credentials.secret,
        credentials.sign_method,
    );
    form.push(("sign".to_owned(), signature));
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_gmt8_regardless_of_host_zone() {
        // chrono's Utc -> FixedOffset conversion never consults TZ; prove it with TZ set anyway.
        // SAFETY: single-threaded use in this test; no other test reads TZ.
        unsafe { std::env::set_var("TZ", "America/Los_Angeles") };
        let at = Utc.with_ymd_and_hms(2016, 1, 1, 4, 0, 0).unwrap();
        assert_eq!(format_timestamp(at), "2016-01-01 12:00:00");
        let back = parse_timestamp("2016-01-01 12:00:00").unwrap();
        assert_eq!(back.with_timezone(&Utc), at);
    }

    #[test]
    fn form_drops_blank_session_and_signs_what_it_sends() {
        let creds = Credentials {
            app_key: "k",
            secret: "s",
            session: None,
            sign_method: SignMethod::Md5,
        };
        let form = signed_form("m.x", ("req", r#"{"a":1}"#), &creds, "2016-01-01 12:00:00");
        assert!(form.iter().all(|(k, _)| k != "session"));
        let sent: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sign_value = sent.iter().find(|(k, _)| *k == "sign").unwrap().1;
        assert_eq!(sign(sent.iter().copied(), "s", SignMethod::Md5), sign_value);
        assert!(sent.contains(&("req", r#"{"a":1}"#)));
        assert!(sent.contains(&("v", "2.0")));
        assert!(sent.contains(&("format", "json")));
    }
}
