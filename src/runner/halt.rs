//! Why a run halted, and what the user should do about it.

use std::fmt;
use std::time::Duration;

use crate::top::PlatformError;

/// A reason to stop sending and exit 3, leaving the remaining rows pending.
#[derive(Clone, Debug)]
pub(crate) enum Halt {
    /// The platform refused the configuration (signature, app key, session, permission, ...).
    Fatal(PlatformError),
    /// A flow-control ban longer than `max_ban_wait_s`: typically the daily quota is used up.
    LongBan { ban: Duration, error: PlatformError },
    /// Permanent failures passed `max_failure_rate`.
    FailureRate {
        failed: u64,
        finished: u64,
        limit: f64,
    },
    /// The ledger could not be written: nothing more may be sent.
    Ledger,
    /// The ledger could not be written, with the error (a full disk, an I/O error).
    LedgerWrite(String),
    /// The state file was deleted, replaced or truncated during the run: what was found.
    LedgerLost(String),
    /// `limits.max_issued` rows are issued or possibly issued; rows remain to send.
    Budget { max: u64 },
    /// The gateway could not be reached for longer than `max_outage_s`.
    Outage {
        since: chrono::DateTime<chrono::Local>,
        limit: Duration,
    },
    /// Uncertain rows passed `max_failure_rate` of the finished rows.
    UncertainRate {
        uncertain: u64,
        finished: u64,
        limit: f64,
    },
    /// So many answers in a row were not TOP answers (HTTP errors, bodies that are not TOP
    /// JSON) that whatever answers is not a working TOP router; the last one.
    NotTop { streak: u32, last: PlatformError },
}

impl Halt {
    /// A rate halt with the figures of the end of the run: rows in flight when it tripped
    /// finished after it, and the message must agree with the summary printed beside it.
    pub(crate) fn with_final_figures(self, stats: &crate::domain::LiveCounters) -> Halt {
        match self {
            Halt::FailureRate { limit, .. } => {
                let (failed, finished) = stats.failure_tally();
                Halt::FailureRate {
                    failed,
                    finished,
                    limit,
                }
            }
            Halt::UncertainRate { limit, .. } => {
                let run = stats.snapshot();
                Halt::UncertainRate {
                    uncertain: run.uncertain,
                    finished: run.done(),
                    limit,
                }
            }
            other => other,
        }
    }
}

/// What to fix for a fatal platform error code.
pub(crate) fn remedy(code: Option<&str>) -> &'static str {
    match code.unwrap_or("") {
        crate::top::outcome::TRANSPORT => {
            "check gateway.url: it must lead straight to a TOP router such as \
             https://eco.taobao.com/router/rest (redirects are never followed)"
        }
        "24" | "25" => {
            "the signature was rejected: check the app secret in the environment and gateway.sign_method"
        }
        "26" | "27" => {
            "the session key is missing, invalid or expired: have the shop re-authorise and set the session variable"
        }
        "28" | "29" => "the app key was rejected: check gateway.app_key",
        "30" | "31" => {
            "the timestamp was rejected: check this machine's clock (TOP allows 10 minutes of skew)"
        }
        "11" | "12" | "13" => {
            "the app lacks permission for this API (or this IP is not whitelisted): fix it in the TOP console"
        }
        "21" | "22" => "the API method was rejected: check `api` in the campaign file",
        _ => "fix the configuration the platform complained about",
    }
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Fatal(e) if e.code.as_deref() == Some(crate::top::outcome::TRANSPORT) => write!(
                f,
                "wrong endpoint: no TOP router took the call ({}); {}",
                e.message,
                remedy(e.code.as_deref())
            ),
            Halt::Fatal(e) => write!(
                f,
                "the platform refused the request (code {}{}: {}); {}",
                e.code.as_deref().unwrap_or("?"),
                e.sub_code
                    .as_deref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default(),
                e.message,
                remedy(e.code.as_deref())
            ),
            Halt::LongBan { ban, error } => {
                let ends =
                    chrono::Local::now() + chrono::Duration::from_std(*ban).unwrap_or_default();
                write!(
                    f,
                    "flow control banned calls for {} s ({}: {}), longer than max_ban_wait_s; \
                     the ban ends around {}: run again after that",
                    ban.as_secs(),
                    error.sub_code.as_deref().unwrap_or("throttled"),
                    error.message,
                    ends.format("%Y-%m-%d %H:%M:%S %:z")
                )
            }
            Halt::FailureRate {
                failed,
                finished,
                limit,
            } => write!(
                f,
                "{failed} of {finished} finished rows failed, more than max_failure_rate = {limit}; \
                 look at the failures (campaign status) before running again"
            ),
            Halt::Outage { since, limit } => write!(
                f,
                "the gateway has been unreachable since {} (nothing could connect), longer than \
                 max_outage_s = {} s; rows not sent stay pending: run again once the gateway answers",
                since.format("%H:%M:%S (%Y-%m-%d %:z)"),
                limit.as_secs()
            ),
            Halt::UncertainRate {
                uncertain,
                finished,
                limit,
            } => write!(
                f,
                "{uncertain} of {finished} finished rows are uncertain (the answer was lost), more \
                 than max_failure_rate = {limit}; the gateway is not answering reliably: check it, \
                 and check the uncertain rows (campaign status) before running again"
            ),
            Halt::NotTop { streak, last } => write!(
                f,
                "{streak} answers in a row were not TOP answers (last: {}); whatever answers at \
                 gateway.url is not a working TOP router: check the URL and the gateway",
                last.message
            ),
            Halt::Ledger => f.write_str("the state file could not be written"),
            Halt::LedgerWrite(error) => write!(
                f,
                "the state file could not be written ({error}); nothing more was sent"
            ),
            Halt::LedgerLost(finding) => write!(
                f,
                "{finding} while the run was using it; nothing more was sent"
            ),
            Halt::Budget { max } => write!(
                f,
                "the budget is reached: {max} rows (limits.max_issued) are issued or may be \
                 (uncertain, or in flight when a run stopped); the rest stay pending. Raise \
                 max_issued in the campaign file to send them"
            ),
        }
    }
}
