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

/// Every parameter of one call but `sign`, in wire order, blank ones included (they are
/// neither sent nor signed; see [`is_sent`]).
pub fn form_pairs<'a>(
    method: &'a str,
    object_param: (&'a str, &'a str),
    credentials: &Credentials<'a>,
    timestamp: &'a str,
) -> [(&'a str, &'a str); 8] {
    [
        ("method", method),
        ("app_key", credentials.app_key),
        ("timestamp", timestamp),
        ("format", "json"),
        ("v", "2.0"),
        ("sign_method", credentials.sign_method.as_str()),
        ("session", credentials.session.unwrap_or("")),
        object_param,
    ]
}

/// The full, signed form of one call: system parameters, the object param (its JSON text as
/// serialised once), and `sign`. Blank values are left out of both the form and the signature.
pub fn signed_form(
    method: &str,
    object_param: (&str, &str),
    credentials: &Credentials<'_>,
    timestamp: &str,
) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = form_pairs(method, object_param, credentials, timestamp)
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

/// The request body of [`form_pairs`] signed with `signature`: the sent pairs then `sign`,
/// `application/x-www-form-urlencoded` into one string, byte for byte what `serde_urlencoded`
/// makes of [`signed_form`].
pub fn encode_form(pairs: &[(&str, &str)], signature: &str) -> String {
    let sent = || pairs.iter().filter(|(k, v)| is_sent(k, v));
    // Worst case: every byte of a value escaped to three.
    let capacity = sent()
        .map(|(k, v)| k.len() + 3 * v.len() + 2)
        .sum::<usize>()
        + "sign=".len()
        + signature.len();
    let mut body = String::with_capacity(capacity);
    for (name, value) in sent().copied().chain([("sign", signature)]) {
        if !body.is_empty() {
            body.push('&');
        }
        push_form_encoded(&mut body, name);
        body.push('=');
        push_form_encoded(&mut body, value);
    }
    body
}

/// Appends `text` encoded as the WHATWG `application/x-www-form-urlencoded` serializer does
/// (as `form_urlencoded` and so `serde_urlencoded` do): `*-._`, ASCII letters and digits as
/// they are, space as `+`, every other byte as `%XX` in upper case.
fn push_form_encoded(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if matches!(byte, b'*' | b'-' | b'.' | b'_' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z') {
            continue;
        }
        if plain_from < i {
            // Both ends are ASCII bytes, so char boundaries.
            out.push_str(&text[plain_from..i]);
        }
        if byte == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
        plain_from = i + 1;
    }
    out.push_str(&text[plain_from..]);
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

    #[test]
    fn encoded_form_is_what_serde_urlencoded_makes_of_the_signed_form() {
        let payloads = [
            r#"{"a":1}"#,
            r#"{"open_id":"AXA b+c&d=e","biz_code":"优惠 券","list":[1,"*-._~!'()%"]}"#,
            "\t\r\n\u{7f}\u{80}\u{10FFFF}",
            "   ",
        ];
        for payload in payloads {
            for (session, method) in [
                (None, SignMethod::Md5),
                (Some("sess ion/1"), SignMethod::Hmac),
                (Some(" "), SignMethod::HmacSha256),
            ] {
                let creds = Credentials {
                    app_key: "k 1",
                    secret: "s",
                    session,
                    sign_method: method,
                };
                let timestamp = "2016-01-01 12:00:00";
                let form = signed_form("m.x", ("req", payload), &creds, timestamp);
                let signature = &form.last().unwrap().1;
                let pairs = form_pairs("m.x", ("req", payload), &creds, timestamp);
                assert_eq!(
                    encode_form(&pairs, signature),
                    serde_urlencoded::to_string(&form).unwrap(),
                    "{payload:?} {session:?}"
                );
            }
        }
    }
}
