//! The rules of reconciliation, without I/O: which certificates are this row's, and when a row
//! with none may be sent again.
//!
//! A certificate is the row's when it has the row's `out_id` and `channel` (and recipient, if the
//! query names one) and was created within the row's window: from the first request's start to
//! the moment the row became uncertain plus the request timeout, widened on both sides by
//! [`CLOCK_SKEW`] (the platform stamps `create_time` with its own clock) and by the one-second
//! resolution of `create_time`. The window keeps out certificates the recipient had before the
//! campaign; certificates of other templates differ in `out_id` or `channel`.
//!
//! "None found" is believed only when the query can be shown to be up to date (see
//! [`Freshness`]); a certificate that is not visible yet must never cause a resend.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta};

use crate::top::Certificate;
use crate::top::params::parse_timestamp;

/// How far the platform's clock may be from ours. The gateway refuses a request whose
/// timestamp is more than ten minutes off, so a request it took was sent by a clock within ten
/// minutes of the gateway's.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(600);
/// `create_time` has whole seconds.
const RESOLUTION: Duration = Duration::from_secs(1);

/// What identifies a row's certificate, read from the object param it was sent with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowKey {
    pub recipient: String,
    pub biz_code: String,
    pub out_id: String,
    pub channel: String,
}

impl RowKey {
    /// Reads the key from a tmall object param (`open_id`, `biz_code`, `out_id`, `channel`).
    pub(crate) fn from_payload(payload: &str) -> Result<RowKey, String> {
        let value: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| format!("the sent params are not JSON: {e}"))?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(crate::top::response::scalar_text)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("the sent params have no `{name}`"))
        };
        Ok(RowKey {
            recipient: field("open_id")?,
            biz_code: field("biz_code")?,
            out_id: field("out_id")?,
            channel: field("channel")?,
        })
    }
}

/// The span of time in which a row's certificate can have been created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub from: DateTime<FixedOffset>,
    pub to: DateTime<FixedOffset>,
}

impl Window {
    /// From `first_sent` to `uncertain_since` plus `timeout`, widened for clock skew and the
    /// resolution of `create_time`.
    pub(crate) fn new(
        first_sent: DateTime<FixedOffset>,
        uncertain_since: DateTime<FixedOffset>,
        timeout: Duration,
    ) -> Window {
        let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        Window {
            from: first_sent - delta(CLOCK_SKEW + RESOLUTION),
            to: uncertain_since + delta(timeout + CLOCK_SKEW + RESOLUTION),
        }
    }

    fn contains(&self, at: DateTime<FixedOffset>) -> bool {
        self.from <= at && at <= self.to
    }
}

/// What the certificates say about one row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Found {
    /// Exactly one certificate is the row's.
    One(Certificate),
    /// No certificate is the row's.
    None,
    /// The row stays uncertain: several match, or one that might match cannot be placed.
    Unclear(String),
}

/// Numbers compare by value whether sent as `7`, `"7"` or `" 07"`; other text as it is.
fn same_number(a: &str, b: &str) -> bool {
    match (a.trim().parse::<i128>(), b.trim().parse::<i128>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

/// Looks for the row's certificate among `certificates` (one recipient's, all pages).
pub(crate) fn find(key: &RowKey, window: &Window, certificates: &[Certificate]) -> Found {
    let mut matching: Vec<&Certificate> = Vec::new();
    let mut unplaced = 0;
    for certificate in certificates {
        let same = |field: &Option<String>, want: &str| {
            field.as_deref().is_some_and(|v| same_number(v, want))
        };
        let other_recipient = certificate
            .recipient
            .as_deref()
            .is_some_and(|r| r != key.recipient);
        if other_recipient || !same(&certificate.out_id, &key.out_id) {
            continue;
        }
        if !same(&certificate.channel, &key.channel) {
            continue;
        }
        match certificate.create_time.as_deref().and_then(parse_timestamp) {
            Some(at) if window.contains(at) => {
                let seen = certificate.code.is_some()
                    && matching.iter().any(|m| m.code == certificate.code);
                if !seen {
                    matching.push(certificate);
                }
            }
            Some(_) => {}
            None => unplaced += 1,
        }
    }
    if unplaced > 0 {
        return Found::Unclear(format!(
            "{unplaced} certificate(s) with this out_id and channel have no readable create_time, \
             so they cannot be placed in time"
        ));
    }
    match &matching[..] {
        [] => Found::None,
        [one] if one.code.is_some() => Found::One((*one).clone()),
        [_] => Found::Unclear("the matching certificate has no certificate_code".to_owned()),
        several => {
            let codes: Vec<&str> = several
                .iter()
                .map(|c| c.code.as_deref().unwrap_or("?"))
                .collect();
            Found::Unclear(format!(
                "{} certificates match (out_id, channel, created between {} and {}): {}; which \
                 one is this row's is unknown",
                several.len(),
                window.from.format("%Y-%m-%d %H:%M:%S %:z"),
                window.to.format("%Y-%m-%d %H:%M:%S %:z"),
                codes.join(", ")
            ))
        }
    }
}

/// The row's detail once reconciled: the certificate's fields but its code, plus where the
/// answer came from.
pub(crate) fn issued_detail(certificate: &Certificate, method: &str, checked_at: &str) -> String {
    let mut detail = serde_json::Map::new();
    detail.insert(
        "reconciled".to_owned(),
        format!("found by {method} at {checked_at}").into(),
    );
    for (name, value) in &certificate.fields {
        if name != "certificate_code" {
            detail.insert(name.clone(), value.clone());
        }
    }
    serde_json::Value::Object(detail).to_string()
}

/// Whether the query can be trusted to show a certificate that exists, judged from a
/// certificate this campaign is known to have issued (the control).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// The query shows the control's certificate.
    Shown { row: i64, code: String },
    /// It does not: it lags (or misses certificates), so "none found" proves nothing.
    Missing { row: i64, code: String },
    /// The control could not be asked.
    Unknown(String),
    /// No certificate of this campaign is old enough to serve: only `reconcile_after_s` says
    /// the query is up to date.
    NoControl,
}

/// The verdict for a row with no certificate whose last attempt is old enough.
pub(crate) fn none_found(freshness: &Freshness, window: &Window) -> Result<String, String> {
    let searched = format!(
        "no certificate with this out_id and channel created between {} and {}",
        window.from.format("%Y-%m-%d %H:%M:%S %:z"),
        window.to.format("%Y-%m-%d %H:%M:%S %:z")
    );
    match freshness {
        Freshness::Shown { row, code } => Ok(format!(
            "{searched}, and the query shows row {row}'s certificate {code}: not issued, sent again"
        )),
        Freshness::NoControl => Ok(format!(
            "{searched} after reconcile_after_s: not issued, sent again"
        )),
        Freshness::Missing { row, code } => Err(format!(
            "{searched}, but the query does not show row {row}'s certificate {code} either: it \
             lags or misses certificates, so this proves nothing yet; reconcile again later"
        )),
        Freshness::Unknown(why) => Err(format!(
            "{searched}, but whether the query is up to date could not be checked ({why})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = r#"{"channel":7,"open_id":"AXA","out_id":123,"biz_code":"23"}"#;

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    /// Sent 10:00:00 UTC (18:00:00 GMT+8), uncertain 10:00:05, timeout 10 s.
    fn window() -> Window {
        Window::new(
            at("2026-11-22T10:00:00+00:00"),
            at("2026-11-22T10:00:05+00:00"),
            Duration::from_secs(10),
        )
    }

    /// A certificate as the query lists it; `create_time` in GMT+8.
    fn cert(code: &str, out_id: &str, channel: &str, create_time: &str) -> Certificate {
        Certificate {
            code: Some(code.to_owned()),
            recipient: Some("AXA".to_owned()),
            out_id: Some(out_id.to_owned()),
            channel: Some(channel.to_owned()),
            create_time: Some(create_time.to_owned()),
            ..Certificate::default()
        }
    }

    fn key() -> RowKey {
        RowKey::from_payload(PAYLOAD).unwrap()
    }

    #[test]
    fn the_key_comes_from_the_sent_params() {
        assert_eq!(
            key(),
            RowKey {
                recipient: "AXA".into(),
                biz_code: "23".into(),
                out_id: "123".into(),
                channel: "7".into()
            }
        );
        assert!(RowKey::from_payload(r#"{"open_id":"A"}"#).is_err());
        assert!(RowKey::from_payload("not json").is_err());
    }

    #[test]
    fn the_window_allows_for_skew_resolution_and_the_timeout() {
        let w = window();
        assert_eq!(w.from, at("2026-11-22T09:49:59+00:00"));
        assert_eq!(w.to, at("2026-11-22T10:10:16+00:00"));
    }

    #[test]
    fn one_certificate_of_the_template_in_the_window_is_the_rows() {
        let certificates = [
            cert("C1", "123", "7", "2026-11-22 18:00:01"),
            cert("OTHER-TEMPLATE", "999", "7", "2026-11-22 18:00:01"),
            cert("OTHER-CHANNEL", "123", "8", "2026-11-22 18:00:01"),
        ];
        let Found::One(found) = find(&key(), &window(), &certificates) else {
            panic!()
        };
        assert_eq!(found.code.as_deref(), Some("C1"));
    }

    #[test]
    fn numbers_match_whether_sent_as_numbers_or_text() {
        let certificates = [cert("C1", " 0123", "07", "2026-11-22 18:00:01")];
        assert!(matches!(
            find(&key(), &window(), &certificates),
            Found::One(_)
        ));
    }

    #[test]
    fn a_certificate_from_before_the_campaign_is_not_the_rows() {
        // The same template to the same recipient, a day before and eleven minutes before.
        let certificates = [
            cert("OLD-DAY", "123", "7", "2026-11-21 18:00:00"),
            cert("OLD-11MIN", "123", "7", "2026-11-22 17:49:00"),
        ];
        assert_eq!(find(&key(), &window(), &certificates), Found::None);
        // With ours beside it, ours is the one.
        let mut with_ours = certificates.to_vec();
        with_ours.push(cert("OURS", "123", "7", "2026-11-22 18:00:03"));
        let Found::One(found) = find(&key(), &window(), &with_ours) else {
            panic!()
        };
        assert_eq!(found.code.as_deref(), Some("OURS"));
    }

    #[test]
    fn a_platform_clock_minutes_off_still_finds_the_certificate() {
        for create_time in ["2026-11-22 18:05:00", "2026-11-22 17:55:00"] {
            let certificates = [cert("C1", "123", "7", create_time)];
            assert!(
                matches!(find(&key(), &window(), &certificates), Found::One(_)),
                "{create_time}"
            );
        }
    }

    #[test]
    fn several_matches_or_an_unplaceable_one_leave_the_row_unclear() {
        let two = [
            cert("C1", "123", "7", "2026-11-22 18:00:01"),
            cert("C2", "123", "7", "2026-11-22 18:00:02"),
        ];
        let Found::Unclear(why) = find(&key(), &window(), &two) else {
            panic!()
        };
        assert!(
            why.contains("2 certificates match") && why.contains("C1, C2"),
            "{why}"
        );
        // The same certificate listed twice (pages that overlapped) is one.
        let twice = [two[0].clone(), two[0].clone()];
        assert!(matches!(find(&key(), &window(), &twice), Found::One(_)));
        let mut no_time = two[0].clone();
        no_time.create_time = Some("yesterday".to_owned());
        assert!(matches!(
            find(&key(), &window(), &[no_time]),
            Found::Unclear(_)
        ));
        let mut no_code = two[0].clone();
        no_code.code = None;
        assert!(matches!(
            find(&key(), &window(), &[no_code]),
            Found::Unclear(_)
        ));
    }

    #[test]
    fn another_recipients_certificate_is_never_the_rows() {
        let mut theirs = cert("C1", "123", "7", "2026-11-22 18:00:01");
        theirs.recipient = Some("SOMEONE-ELSE".to_owned());
        assert_eq!(find(&key(), &window(), &[theirs]), Found::None);
    }

    #[test]
    fn none_found_is_believed_only_when_the_query_is_shown_up_to_date() {
        let w = window();
        let shown = Freshness::Shown {
            row: 9,
            code: "K".into(),
        };
        assert!(none_found(&shown, &w).unwrap().contains("row 9"));
        assert!(none_found(&Freshness::NoControl, &w).is_ok());
        let missing = Freshness::Missing {
            row: 9,
            code: "K".into(),
        };
        assert!(none_found(&missing, &w).unwrap_err().contains("lags"));
        assert!(none_found(&Freshness::Unknown("HTTP 502".into()), &w).is_err());
    }

    #[test]
    fn the_issued_detail_says_reconciled_and_keeps_the_certificate_fields() {
        let mut c = cert("C1", "123", "7", "2026-11-22 18:00:01");
        c.fields = serde_json::from_str(
            r#"{"certificate_code":"C1","status":1,"create_time":"2026-11-22 18:00:01"}"#,
        )
        .unwrap();
        assert_eq!(
            issued_detail(&c, "tmall.nrt.certificate.query", "T"),
            r#"{"reconciled":"found by tmall.nrt.certificate.query at T","status":1,"create_time":"2026-11-22 18:00:01"}"#
        );
    }
}
