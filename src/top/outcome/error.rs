//! What the platform (or our side of the wire) said about one attempt, and whether that leaves
//! open that the platform issued.

/// What the platform (or the transport) said, as recorded in the ledger and the results.
///
/// Errors produced on our side of the wire use code `transport` and a sub-code naming what
/// happened: `connect` (never left), `timeout` (answer lost), `io` (the connection failed after
/// the request may have been written), `http-NNN`, `malformed-body`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformError {
    pub code: Option<String>,
    pub sub_code: Option<String>,
    pub message: String,
    /// The platform's answer, as compact JSON, when the row's `detail` column should keep it
    /// (a refusal or an answer that may mean issued), so the record is not lost.
    pub detail: Option<String>,
}

/// The `code` of errors produced on our side of the wire.
pub const TRANSPORT: &str = "transport";

/// Sub-codes (lower case) of answers that may mean "issued": alsc's `SENDING` (the platform is
/// still issuing) and ours for a success answer without the issued code.
const MAY_HAVE_ISSUED: &[&str] = &["sending", NO_ISSUED_CODE];

/// The sub-code of a success answer that lacks the issued code (tmall `code "0"` without a
/// `certificate_code`, `model: null`): the platform may have issued, so the row is `uncertain`.
pub const NO_ISSUED_CODE: &str = "no-issued-code";

impl PlatformError {
    /// An error with the given code, sub-code and message.
    pub fn new(code: Option<&str>, sub_code: Option<&str>, message: impl Into<String>) -> Self {
        PlatformError {
            code: code.map(str::to_owned),
            sub_code: sub_code.map(str::to_owned),
            message: message.into(),
            detail: None,
        }
    }

    /// The same error, keeping `answer` for the row's `detail` column.
    pub fn with_detail(self, answer: impl Into<String>) -> Self {
        PlatformError {
            detail: Some(answer.into()),
            ..self
        }
    }

    /// Whether this error leaves open that the platform issued: the answer was lost after the
    /// request may have arrived (our `transport` codes other than `connect`), the back end timed
    /// out (`isp.*timeout*`), the platform said it is still issuing (alsc `SENDING`), or a
    /// success answer lacked the issued code. A row whose retries run out on such an error is
    /// `uncertain`, never `failed`: `--retry-failed` must not send it again.
    pub fn may_have_issued(&self) -> bool {
        let sub_code = self
            .sub_code
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match self.code.as_deref() {
            Some(TRANSPORT) => sub_code != "connect",
            _ => {
                (sub_code.starts_with("isp.") && sub_code.contains("timeout"))
                    || MAY_HAVE_ISSUED.contains(&sub_code.as_str())
            }
        }
    }

    /// An error produced on our side of the wire (code `transport`).
    pub fn transport(sub_code: &str, message: impl Into<String>) -> Self {
        PlatformError::new(Some(TRANSPORT), Some(sub_code), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_may_mean_issued() {
        let may = |code: &str, sub: &str| {
            PlatformError::new(Some(code), Some(sub), "m").may_have_issued()
        };
        assert!(may(TRANSPORT, "timeout"));
        assert!(may(TRANSPORT, "http-502"));
        assert!(may(TRANSPORT, "malformed-body"));
        assert!(!may(TRANSPORT, "connect"));
        assert!(may("15", "isp.top-remote-connection-timeout"));
        assert!(may("RC", "SENDING"));
        assert!(!may("15", "isp.top-remote-service-unavailable"));
        assert!(!may("RC", "FAIL"));
        assert!(!may("15", "isv.user-not-qualified"));
    }
}
