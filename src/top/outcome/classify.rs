//! The table of the platform's error codes and the class each one gets, and the reading of an
//! `error_response` (including the flow-control ban it announces) into an [`Outcome`].

use std::time::Duration;

use super::{Outcome, PlatformError};

/// How one kind of platform error is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Flow control; the announced ban, if any, is parsed from the message.
    Throttle,
    /// The back end timed out: the operation may have happened (see [`Outcome::answer_lost`]).
    Timeout,
    Transient,
    Permanent,
    Fatal,
}

/// Which `code` values a rule applies to.
enum CodeIs {
    Any,
    In(&'static [u32]),
    Between(u32, u32),
}

/// Which `sub_code` values a rule applies to (compared in lower case).
enum SubIs {
    Any,
    Exact(&'static str),
    Prefix(&'static str),
    Containing(&'static str),
    PrefixContaining(&'static str, &'static str),
}

struct Rule(CodeIs, SubIs, Class);

/// The platform's error codes and the retry class each one gets. The first rule that matches
/// wins, so specific rules come before the `isp.`/`isv.` families.
#[rustfmt::skip]
static RULES: &[Rule] = &[
    // Code 7 (all three `accesscontrol.*` quotas) and the legacy call-limit codes.
    Rule(CodeIs::In(&[4, 5, 6, 7, 8]), SubIs::Any, Class::Throttle),
    Rule(CodeIs::Any, SubIs::Prefix("accesscontrol."), Class::Throttle),
    // Older naming of the same quotas, seen as constants in third-party code.
    Rule(CodeIs::Any, SubIs::Prefix("isv.access-limited-by-"), Class::Throttle),
    Rule(CodeIs::Any, SubIs::Exact("isp.call-limited"), Class::Throttle),
    Rule(CodeIs::Any, SubIs::Exact("isp.system-busy"), Class::Throttle),
    // Taobaoke's account-level limit arrives as code 15 with a numeric sub-code.
    Rule(CodeIs::In(&[15]), SubIs::Exact("9100"), Class::Throttle),
    // Platform checks: method, permissions, signature, session, app key, timestamp, version.
    Rule(CodeIs::In(&[3, 9, 11, 12, 13, 42]), SubIs::Any, Class::Fatal),
    Rule(CodeIs::Between(21, 34), SubIs::Any, Class::Fatal),
    // Session and permission problems stay configuration problems whatever code carries them.
    Rule(CodeIs::Any, SubIs::Containing("sessionkey"), Class::Fatal),
    Rule(CodeIs::Any, SubIs::Containing("session-expired"), Class::Fatal),
    Rule(CodeIs::Any, SubIs::Prefix("isv.permission-"), Class::Fatal),
    // `isp.top-remote-connection-timeout`, its `-tmall` variant, `isp.remote-service-timeout`...
    Rule(CodeIs::Any, SubIs::PrefixContaining("isp.", "timeout"), Class::Timeout),
    Rule(CodeIs::Any, SubIs::Prefix("isp."), Class::Transient),
    Rule(CodeIs::Any, SubIs::Prefix("isv."), Class::Permanent),
    Rule(CodeIs::In(&[10]), SubIs::Any, Class::Transient),
    // Remote service errors (15, 50) and argument errors (40, 41, 43) without a known sub-code.
    Rule(CodeIs::In(&[15, 40, 41, 43, 50]), SubIs::Any, Class::Permanent),
];

impl Rule {
    fn matches(&self, code: Option<u32>, sub_code: &str) -> bool {
        let code_ok = match self.0 {
            CodeIs::Any => true,
            CodeIs::In(codes) => code.is_some_and(|c| codes.contains(&c)),
            CodeIs::Between(lo, hi) => code.is_some_and(|c| (lo..=hi).contains(&c)),
        };
        code_ok
            && match self.1 {
                SubIs::Any => true,
                SubIs::Exact(s) => sub_code == s,
                SubIs::Prefix(p) => sub_code.starts_with(p),
                SubIs::Containing(s) => sub_code.contains(s),
                SubIs::PrefixContaining(p, s) => sub_code.starts_with(p) && sub_code.contains(s),
            }
    }
}

/// Classifies an `error_response` from the platform.
///
/// The message kept is the most useful text: `sub_msg` when present, else `msg`. Throttles carry
/// the ban announced as `ban will last for N more second(s)` in `sub_msg` or `msg`, if any.
///
/// Codes and sub-codes the table does not know fall to this default: an `isp.*` sub-code is a
/// server-side fault (transient; a timeout among them is [`Outcome::answer_lost`]), an `isv.*`
/// sub-code is the caller's error for this row (permanent); otherwise a numeric code below 100 is
/// a platform check we do not know, so a configuration problem (fatal: halt rather than fail every
/// row), and any other code, or none, is permanent for the row.
pub fn classify_error(
    code: Option<&str>,
    sub_code: Option<&str>,
    msg: &str,
    sub_msg: &str,
    idempotent: bool,
) -> Outcome {
    let numeric = code.and_then(|c| c.trim().parse::<u32>().ok());
    let sub_lower = sub_code.unwrap_or("").trim().to_ascii_lowercase();
    let class = RULES
        .iter()
        .find(|rule| rule.matches(numeric, &sub_lower))
        .map_or(
            match numeric {
                Some(c) if c < 100 => Class::Fatal,
                _ => Class::Permanent,
            },
            |rule| rule.2,
        );
    let message = if sub_msg.trim().is_empty() {
        msg
    } else {
        sub_msg
    };
    let error = PlatformError::new(code, sub_code, message);
    match class {
        Class::Throttle => Outcome::Throttled {
            ban: parse_ban(sub_msg).or_else(|| parse_ban(msg)),
            error,
        },
        Class::Timeout => Outcome::answer_lost(idempotent, error),
        Class::Transient => Outcome::Transient(error),
        Class::Permanent => Outcome::Permanent(error),
        Class::Fatal => Outcome::Fatal(error),
    }
}

/// Reads a flow-control ban from text like `This ban will last for 31062 more seconds`
/// (case-insensitive). A number too large to hold saturates, so it still reads as "very long".
pub fn parse_ban(text: &str) -> Option<Duration> {
    const LEAD: &str = "ban will last for ";
    let lower = text.to_ascii_lowercase();
    lower.match_indices(LEAD).find_map(|(at, _)| {
        let rest = &lower[at + LEAD.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(" more second") {
            return None;
        }
        let seconds = rest[..digits].parse::<u64>().unwrap_or(u64::MAX);
        Some(Duration::from_secs(seconds))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::outcome::OutcomeClass::{self, *};

    fn class(code: &str, sub_code: Option<&str>, idempotent: bool) -> OutcomeClass {
        classify_error(Some(code), sub_code, "msg", "", idempotent).class()
    }

    /// Every row of the error table ([`RULES`]), for the non-idempotent API; the
    /// idempotent API differs only on timeouts (tested below).
    #[test]
    fn every_row_of_the_error_table() {
        let rows: &[(&str, Option<&str>, OutcomeClass)] = &[
            (
                "7",
                Some("accesscontrol.limited-by-app-access-count"),
                Throttled,
            ),
            (
                "7",
                Some("accesscontrol.limited-by-api-access-count"),
                Throttled,
            ),
            (
                "7",
                Some("accesscontrol.limited-by-app-api-access-count"),
                Throttled,
            ),
            ("10", None, Transient),
            ("11", Some("isv.permission-api-package-empty"), Fatal),
            ("11", Some("isv.permission-api-package-not-allowed"), Fatal),
            ("11", Some("isv.permission-api-package-limit"), Fatal),
            ("11", Some("isv.permission-ip-whitelist-limit"), Fatal),
            ("11", Some("isv.permission-api-widget-only-limit"), Fatal),
            ("15", Some("isp.remote-service-error"), Transient),
            ("15", Some("isv.business-rule"), Permanent),
            ("15", Some("something-else"), Permanent),
            ("15", None, Permanent),
            ("15", Some("9100"), Throttled),
            ("50", Some("isv.invalid-parameter"), Permanent),
            ("50", Some("isp.unknown-error"), Transient),
            ("27", Some("invalid-sessionkey"), Fatal),
            ("27", Some("session-expired"), Fatal),
            ("27", Some("sessionkey-not-generated-by-server"), Fatal),
            ("40", Some("isv.missing-parameter"), Permanent),
            ("40", None, Permanent),
            ("41", Some("isv.invalid-parameter"), Permanent),
            ("41", Some("isp.remote-service-error"), Transient),
            ("43", None, Permanent),
            ("15", Some("isp.top-remote-connection-timeout"), Unknown),
            (
                "15",
                Some("isp.top-remote-connection-timeout-tmall"),
                Unknown,
            ),
            ("50", Some("isp.remote-service-timeout"), Unknown),
            ("15", Some("isp.top-remote-service-unavailable"), Transient),
            (
                "15",
                Some("isp.top-remote-connection-control-error"),
                Transient,
            ),
            ("15", Some("isp.top-remote-unknown-error"), Transient),
            ("15", Some("isp.remote-connection-error"), Transient),
            ("15", Some("isp.unknown-error"), Transient),
            ("15", Some("isp.system-busy"), Throttled),
            ("15", Some("isp.call-limited"), Throttled),
            (
                "15",
                Some("isv.access-limited-by-app-access-count"),
                Throttled,
            ),
        ];
        for &(code, sub_code, want) in rows {
            assert_eq!(class(code, sub_code, false), want, "{code} {sub_code:?}");
        }
        for code in ["4", "5", "6", "8"] {
            assert_eq!(class(code, None, false), Throttled, "{code}");
        }
        for code in [
            "3", "9", "12", "13", "21", "22", "23", "24", "25", "26", "28", "29", "30", "31", "32",
            "33", "34", "42",
        ] {
            assert_eq!(class(code, None, true), Fatal, "{code}");
        }
    }

    #[test]
    fn timeouts_are_unknown_only_for_the_non_idempotent_api() {
        for sub in [
            "isp.top-remote-connection-timeout",
            "isp.top-remote-connection-timeout-tmall",
            "isp.remote-service-timeout",
            "ISP.Some-Read-Timeout",
        ] {
            assert_eq!(class("15", Some(sub), false), Unknown, "{sub}");
            assert_eq!(class("15", Some(sub), true), Transient, "{sub}");
        }
        assert_eq!(
            class("15", Some("isp.remote-service-error"), true),
            Transient
        );
    }

    #[test]
    fn unknown_codes_fall_to_the_documented_default() {
        assert_eq!(class("99", None, false), Fatal);
        assert_eq!(class("60", Some("whatever"), false), Fatal);
        assert_eq!(class("120", None, false), Permanent);
        assert_eq!(class("xyz", None, false), Permanent);
        assert_eq!(class("777", Some("isp.new-fault"), false), Transient);
        assert_eq!(class("777", Some("isp.new-timeout"), false), Unknown);
        assert_eq!(class("99", Some("isv.new-rule"), false), Permanent);
        assert_eq!(
            classify_error(None, None, "m", "", false).class(),
            Permanent
        );
    }

    #[test]
    fn throttles_carry_the_announced_ban() {
        let in_sub_msg = classify_error(
            Some("7"),
            Some("accesscontrol.limited-by-app-api-access-count"),
            "App Call Limited",
            "This ban will last for 2 more seconds",
            false,
        );
        let Outcome::Throttled { ban, error } = in_sub_msg else {
            panic!("{in_sub_msg:?}")
        };
        assert_eq!(ban, Some(Duration::from_secs(2)));
        assert_eq!(error.message, "This ban will last for 2 more seconds");
        assert_eq!(error.code.as_deref(), Some("7"));

        let daily = classify_error(
            Some("7"),
            Some("accesscontrol.limited-by-app-access-count"),
            "App Call Limited",
            "this BAN will last for 31062 more seconds",
            true,
        );
        assert!(matches!(daily, Outcome::Throttled { ban: Some(b), .. } if b.as_secs() == 31062));

        let in_msg = classify_error(
            Some("4"),
            None,
            "Ban will last for 1 more second",
            "",
            false,
        );
        assert!(matches!(in_msg, Outcome::Throttled { ban: Some(b), .. } if b.as_secs() == 1));

        let none = classify_error(Some("7"), None, "App Call Limited", "", false);
        assert!(matches!(none, Outcome::Throttled { ban: None, .. }));
        let busy = classify_error(Some("15"), Some("isp.system-busy"), "busy", "", true);
        assert!(matches!(busy, Outcome::Throttled { ban: None, .. }));
    }

    #[test]
    fn ban_parsing_is_strict_about_the_phrase() {
        assert_eq!(parse_ban("ban will last for  more seconds"), None);
        assert_eq!(parse_ban("ban will last for 5 seconds"), None);
        assert_eq!(parse_ban("no ban here"), None);
        assert_eq!(
            parse_ban("x; ban will last for 9 more seconds"),
            Some(Duration::from_secs(9))
        );
        assert_eq!(
            parse_ban("ban will last for 99999999999999999999999 more seconds"),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn keeps_the_most_useful_message() {
        let with_sub = classify_error(
            Some("50"),
            Some("isv.invalid-parameter"),
            "Remote service error",
            "非法参数",
            false,
        );
        assert_eq!(with_sub.error().unwrap().message, "非法参数");
        assert_eq!(
            with_sub.error().unwrap().sub_code.as_deref(),
            Some("isv.invalid-parameter")
        );
        let without = classify_error(Some("25"), None, "Invalid signature", "  ", false);
        assert_eq!(without.error().unwrap().message, "Invalid signature");
    }
}
