//! Scrubbing text that comes from a gateway answer before anything keeps it.
//!
//! A gateway, a proxy or an error page may echo the request: the form carries the session key
//! and the signature, and a misconfigured server may print anything. Every piece of text taken
//! from an answer (error messages, codes, `detail`, issued ids, request ids) passes through one
//! [`Scrubber`] where answers enter the program (the client), so nothing downstream (the ledger,
//! the results, the attempts log, `status`, logs) ever sees a secret. The text is also capped in
//! length: an answer must not be able to fill the ledger.

use std::borrow::Cow;

use super::client::Attempt;
use super::outcome::{Outcome, PlatformError};

/// What a secret or a masked value is replaced with.
const MASK: &str = "***";
/// Longest error message, code, issued id or request id kept, in characters.
const MAX_TEXT: usize = 500;
/// Longest `detail` (the rest of a success answer, as JSON) kept, in characters.
const MAX_DETAIL: usize = 4000;
/// Form fields whose values are masked wherever `name=` appears in an answer.
const MASKED_FIELDS: &[&str] = &["session", "sign"];
/// Secrets shorter than this are not searched for: masking every `a` of a one-letter test
/// secret would garble messages without protecting anything.
const MIN_SECRET: usize = 4;

/// Removes the app secret, the session key and `session=`/`sign=` values from text, and caps
/// its length.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    /// The secrets, as raw text and as they look percent-encoded in a form or URL.
    needles: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} needles)", self.needles.len())
    }
}

impl Scrubber {
    /// A scrubber for these secret values (empty ones are ignored).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let mut needles: Vec<String> = Vec::new();
        for secret in secrets {
            if secret.chars().count() < MIN_SECRET {
                continue;
            }
            let encoded: String = form_urlencoded_value(secret);
            for needle in [secret.to_owned(), encoded, secret.replace('/', "\\/")] {
                if !needles.contains(&needle) {
                    needles.push(needle);
                }
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber { needles }
    }

    /// `text` without secrets and masked form values, at most [`MAX_TEXT`] characters.
    pub(crate) fn text(&self, text: &str) -> String {
        self.scrub(text, MAX_TEXT)
    }

    fn scrub(&self, text: &str, max: usize) -> String {
        let text = self.without_cut_secret(text);
        let mut out = Cow::Borrowed(text.as_ref());
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), MASK));
            }
        }
        let out = mask_fields(&out);
        cap(out.into_owned(), max)
    }

    /// `text` without a trailing start of a secret: text that was cut short before it got here
    /// (a snippet of a long body, marked by a final `…`) may end in the middle of one, where no
    /// full match finds it.
    fn without_cut_secret<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(body) = text.strip_suffix('…') else {
            return Cow::Borrowed(text);
        };
        for needle in &self.needles {
            for (at, _) in needle.char_indices().skip(1) {
                if body.ends_with(&needle[..at]) {
                    return Cow::Owned(format!("{}{MASK}…", &body[..body.len() - at]));
                }
            }
        }
        Cow::Borrowed(text)
    }

    fn error(&self, error: PlatformError) -> PlatformError {
        PlatformError {
            code: error.code.map(|c| self.text(&c)),
            sub_code: error.sub_code.map(|c| self.text(&c)),
            message: self.text(&error.message),
            detail: error.detail.map(|d| self.scrub(&d, MAX_DETAIL)),
        }
    }

    /// Scrubs every piece of text an outcome carries.
    pub(crate) fn outcome(&self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Issued { issued_id, detail } => Outcome::Issued {
                issued_id: self.text(&issued_id),
                detail: self.scrub(&detail, MAX_DETAIL),
            },
            Outcome::Permanent(e) => Outcome::Permanent(self.error(e)),
            Outcome::Transient(e) => Outcome::Transient(self.error(e)),
            Outcome::Fatal(e) => Outcome::Fatal(self.error(e)),
            Outcome::Unknown(e) => Outcome::Unknown(self.error(e)),
            Outcome::Unreachable(e) => Outcome::Unreachable(self.error(e)),
            Outcome::Throttled { ban, error } => Outcome::Throttled {
                ban,
                error: self.error(error),
            },
        }
    }

    /// Scrubs an attempt's outcome and the platform's request id.
    pub(crate) fn attempt(&self, attempt: Attempt) -> Attempt {
        Attempt {
            outcome: self.outcome(attempt.outcome),
            top_request_id: attempt.top_request_id.map(|id| self.text(&id)),
            latency: attempt.latency,
        }
    }
}

/// `value` percent-encoded as in an `application/x-www-form-urlencoded` body.
fn form_urlencoded_value(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Masks the value after `session=` or `sign=` (any case, not part of a longer name, e.g.
/// `sign_method=` is left alone) up to the next separator.
fn mask_fields(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for field in MASKED_FIELDS {
        let pattern = format!("{field}=");
        for (at, _) in lower.match_indices(&pattern) {
            let starts_name = at == 0 || !is_name_byte(lower.as_bytes()[at - 1]);
            if !starts_name {
                continue;
            }
            let from = at + pattern.len();
            let len = text[from..]
                .find(|c: char| c.is_whitespace() || "&\"'<>;,\\".contains(c))
                .unwrap_or(text.len() - from);
            if len > 0 && text[from..from + len] != *MASK {
                cuts.push((from, from + len));
            }
        }
    }
    if cuts.is_empty() {
        return Cow::Borrowed(text);
    }
    cuts.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (from, to) in cuts {
        if from < done {
            continue;
        }
        out.push_str(&text[done..from]);
        out.push_str(MASK);
        done = to;
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// At most `max` characters, with `…` marking a cut.
fn cap(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t/Do+Not Leak";
    const SESSION: &str = "sess-Do-Not-Leak-93ab";

    fn scrubber() -> Scrubber {
        Scrubber::new([SECRET, SESSION])
    }

    #[test]
    fn secrets_are_masked_raw_encoded_and_json_escaped() {
        let s = scrubber();
        let echoed = format!(
            "secret {SECRET} form {} json {} session {SESSION}",
            form_urlencoded_value(SECRET),
            SECRET.replace('/', "\\/")
        );
        let out = s.text(&echoed);
        assert!(
            !out.contains("Do+Not") && !out.contains("Do%2BNot"),
            "{out}"
        );
        assert!(!out.contains("Not Leak") && !out.contains(SESSION), "{out}");
        assert_eq!(out.matches(MASK).count(), 4, "{out}");
    }

    #[test]
    fn session_and_sign_values_are_masked_whatever_they_hold() {
        let s = Scrubber::new([]);
        let out = s.text(
            "POST app_key=1&SESSION=other-key&sign=ABC123&sign_method=md5&x_sign=keep <p>session=zz</p>",
        );
        assert_eq!(
            out,
            "POST app_key=1&SESSION=***&sign=***&sign_method=md5&x_sign=keep <p>session=***</p>"
        );
        assert_eq!(s.text("no form here"), "no form here");
        assert_eq!(s.text("sign="), "sign=");
    }

    #[test]
    fn text_is_capped() {
        let s = Scrubber::new([]);
        let long = "é".repeat(MAX_TEXT * 3);
        let out = s.text(&long);
        assert_eq!(out.chars().count(), MAX_TEXT + 1);
        assert!(out.ends_with('…'));
        let issued = s.outcome(Outcome::Issued {
            issued_id: "1".into(),
            detail: "x".repeat(MAX_DETAIL + 10),
        });
        let Outcome::Issued { detail, .. } = issued else {
            panic!()
        };
        assert_eq!(detail.chars().count(), MAX_DETAIL + 1);
    }

    #[test]
    fn every_field_of_an_outcome_is_scrubbed() {
        let s = scrubber();
        let dirty = PlatformError::new(Some(SESSION), Some(SESSION), format!("echo {SESSION}"));
        for outcome in [
            Outcome::Permanent(dirty.clone()),
            Outcome::Transient(dirty.clone()),
            Outcome::Fatal(dirty.clone()),
            Outcome::Unknown(dirty.clone()),
            Outcome::Unreachable(dirty.clone()),
            Outcome::Throttled {
                ban: None,
                error: dirty.clone(),
            },
            Outcome::Issued {
                issued_id: SESSION.into(),
                detail: format!("{{\"echo\":\"{SESSION}\"}}"),
            },
        ] {
            let shown = format!("{:?}", s.outcome(outcome));
            assert!(!shown.contains(SESSION), "{shown}");
        }
        let attempt = s.attempt(Attempt {
            outcome: Outcome::Fatal(dirty),
            top_request_id: Some(SESSION.into()),
            latency: std::time::Duration::ZERO,
        });
        assert!(!format!("{attempt:?}").contains(SESSION));
    }

    #[test]
    fn a_secret_cut_short_by_an_earlier_snippet_is_masked() {
        let s = scrubber();
        let cut = format!("page: {}…", &SESSION[..9]);
        assert_eq!(s.text(&cut), "page: ***…");
        // Only text marked as cut loses a tail that merely looks like a secret's start.
        assert_eq!(s.text("page: sess"), "page: sess");
    }

    #[test]
    fn short_secrets_are_not_searched_for() {
        let s = Scrubber::new(["ab", ""]);
        assert_eq!(s.text("abc"), "abc");
    }
}
