//! Fault injection: which faults to inject ([`Faults`]), the seeded per-call plan that decides
//! them, and the latency with its slow tail ([`LatencyTail`]).
//!
//! A call's faults are a pure function of (seed, identity, per-identity call number), never of
//! arrival order, so the same seed gives the same faults for the same requests under any
//! concurrency.

use std::time::Duration;

use super::answer::{ErrorAnswer, MALFORMED_KINDS};

/// Which faults the simulator injects, and how often. The default injects none; it is also
/// where the defaults of the `campaign sim` flags come from.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Calls admitted in any sliding one-second window; the next is answered code 7
    /// `accesscontrol.limited-by-api-access-count` and starts a ban of `ban_seconds`.
    pub limit_qps: Option<u32>,
    /// The ban announced after the per-second limit is passed; every call during it is refused.
    pub ban_seconds: u64,
    /// Calls admitted per GMT+8 day; after that, code 7 `accesscontrol.limited-by-app-access-count`
    /// with a ban until midnight GMT+8.
    pub daily_quota: Option<u64>,
    /// Share of valid calls answered with an `isp.*` error; nothing is issued.
    pub isp_error_rate: f64,
    /// Share of valid calls that are processed (issuing if due), then answered
    /// `isp.top-remote-connection-timeout`.
    pub timeout_subcode_rate: f64,
    /// Added before every answer: the median latency.
    pub latency: Duration,
    /// The slow tail: a share of answers that take longer than `latency`.
    pub latency_tail: Option<LatencyTail>,
    /// Share of valid calls that are processed (issuing if due) and whose answer is held for
    /// `withhold`, longer than a client waits.
    pub withhold_rate: f64,
    /// How long a withheld answer is held.
    pub withhold: Duration,
    /// Share of valid calls answered HTTP 502; nothing is issued.
    pub http502_rate: f64,
    /// Share of valid calls answered with HTTP 200 and a body that is not a TOP answer; nothing
    /// is issued.
    pub malformed_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            limit_qps: None,
            ban_seconds: 1,
            daily_quota: None,
            isp_error_rate: 0.0,
            timeout_subcode_rate: 0.0,
            latency: Duration::ZERO,
            latency_tail: None,
            withhold_rate: 0.0,
            withhold: Duration::from_secs(15),
            http502_rate: 0.0,
            malformed_rate: 0.0,
        }
    }
}

/// A share of answers delayed by `latency` instead of the median: `1%:800ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyTail {
    /// Between 0 and 1.
    pub share: f64,
    pub latency: Duration,
}

/// The longest tail latency, in milliseconds (an hour).
const MAX_TAIL_MS: u64 = 3_600_000;

impl std::str::FromStr for LatencyTail {
    type Err = String;

    /// `SHARE:DURATION`: the share as a percentage (`1%`) or a fraction (`0.01`), the
    /// duration in milliseconds (`800ms`, or a bare `800`) or seconds (`2s`), at most an hour.
    fn from_str(text: &str) -> Result<Self, String> {
        let form = || format!("{text:?} is not SHARE:DURATION, e.g. 1%:800ms");
        let (share, latency) = text.split_once(':').ok_or_else(form)?;
        let share = match share.trim().strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => share.trim().parse::<f64>(),
        }
        .ok()
        .filter(|s| (0.0..=1.0).contains(s))
        .ok_or_else(|| format!("{text:?}: the share must be from 0% to 100% (or 0 to 1)"))?;
        let latency = latency.trim();
        let millis = if let Some(ms) = latency.strip_suffix("ms") {
            ms.trim().parse::<u64>().ok()
        } else if let Some(s) = latency.strip_suffix('s') {
            s.trim()
                .parse::<u64>()
                .ok()
                .and_then(|s| s.checked_mul(1000))
        } else {
            latency.parse::<u64>().ok()
        }
        .filter(|ms| *ms <= MAX_TAIL_MS)
        .ok_or_else(|| format!("{text:?}: the duration must be whole ms or s, at most 1 hour"))?;
        Ok(LatencyTail {
            share,
            latency: Duration::from_millis(millis),
        })
    }
}

impl Faults {
    /// The latency of an answer: the tail's when `slow`, else the median.
    pub(crate) fn latency(&self, slow: bool) -> Duration {
        match self.latency_tail {
            Some(tail) if slow => tail.latency,
            _ => self.latency,
        }
    }

    /// Whether an answer that is not an issuing call's (refusals, queries, the harmless calls)
    /// is slow: drawn from the seed and the request's number.
    pub(crate) fn slow_request(&self, seed: u64, request: u64) -> bool {
        self.in_tail(unit(mix(call_hash(seed, "request", 0) ^ mix(request))))
    }

    fn in_tail(&self, draw: f64) -> bool {
        self.latency_tail.is_some_and(|tail| draw < tail.share)
    }
}

/// The `isp.*` errors of the `isp_error_rate` fault: server-side, safe to retry, not timeouts.
const ISP_ERRORS: &[(&str, &str)] = &[
    ("isp.top-remote-service-unavailable", "服务暂时不可用"),
    ("isp.remote-connection-error", "remote connection error"),
    ("isp.top-remote-unknown-error", "未知错误"),
    ("isp.remote-service-error", "remote service error"),
];

/// A fault that replaces the call before the platform processes it: nothing is issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EarlyFault {
    Http502,
    /// The malformed body number.
    Malformed(usize),
    Isp(ErrorAnswer),
}

/// The faults decided for one valid call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub early: Option<EarlyFault>,
    /// Process, then answer `isp.top-remote-connection-timeout`.
    pub timeout_subcode: bool,
    /// Process, then hold the answer.
    pub withhold: bool,
    /// The answer takes the tail latency instead of the median.
    pub slow: bool,
}

impl Faults {
    /// The faults for the `call`-th valid call (from 1) of one identity.
    pub(crate) fn plan(&self, seed: u64, identity: &str, call: u32) -> FaultPlan {
        let hash = call_hash(seed, identity, call);
        let draw = |salt: u64| unit(mix(hash ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let pick = |salt: u64, n: usize| (mix(hash ^ salt) % n as u64) as usize;
        let early = if draw(1) < self.http502_rate {
            Some(EarlyFault::Http502)
        } else if draw(2) < self.malformed_rate {
            Some(EarlyFault::Malformed(pick(3, MALFORMED_KINDS)))
        } else if draw(4) < self.isp_error_rate {
            let (sub_code, sub_msg) = ISP_ERRORS[pick(5, ISP_ERRORS.len())];
            Some(EarlyFault::Isp(ErrorAnswer::remote(sub_code, sub_msg)))
        } else {
            None
        };
        FaultPlan {
            early,
            timeout_subcode: draw(6) < self.timeout_subcode_rate,
            withhold: draw(7) < self.withhold_rate,
            slow: self.in_tail(draw(8)),
        }
    }
}

/// The answer for a call that timed out in the back end after it was processed.
pub(crate) fn timeout_subcode() -> ErrorAnswer {
    ErrorAnswer::remote("isp.top-remote-connection-timeout", "远程服务调用超时")
}

/// FNV-1a over the inputs, then a finaliser: stable across platforms and Rust versions.
fn call_hash(seed: u64, identity: &str, call: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(identity.bytes())
        .chain(call.to_le_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix(hash)
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1).
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faulty() -> Faults {
        Faults {
            isp_error_rate: 0.2,
            http502_rate: 0.1,
            malformed_rate: 0.1,
            timeout_subcode_rate: 0.1,
            withhold_rate: 0.1,
            ..Faults::default()
        }
    }

    #[test]
    fn plans_depend_only_on_seed_identity_and_call_number() {
        let faults = faulty();
        let plans = |seed| -> Vec<FaultPlan> {
            (1..=200)
                .map(|n| faults.plan(seed, &format!("id{}", n % 17), n))
                .collect()
        };
        assert_eq!(plans(7), plans(7));
        assert_ne!(plans(7), plans(8));
    }

    #[test]
    fn rates_are_roughly_honoured_and_zero_means_never() {
        let faults = faulty();
        let n = 20_000;
        let early = (0..n)
            .filter(|i| faults.plan(1, "x", *i).early.is_some())
            .count();
        // 1 - 0.9 * 0.9 * 0.8 = 0.352 of calls get an early fault.
        assert!((6_500..7_600).contains(&early), "{early}");
        let none = Faults::default();
        assert!((0..n).all(|i| none.plan(1, "x", i) == FaultPlan::default()));
    }

    #[test]
    fn the_latency_tail_takes_its_share_seeded() {
        let faults = Faults {
            latency: Duration::from_millis(80),
            latency_tail: Some("1%:800ms".parse().unwrap()),
            ..Faults::default()
        };
        let n = 20_000;
        let slow = (0..n).filter(|i| faults.plan(3, "x", *i).slow).count();
        assert!((120..300).contains(&slow), "{slow}");
        let other = (0..n)
            .filter(|i| faults.slow_request(3, u64::from(*i)))
            .count();
        assert!((120..300).contains(&other), "{other}");
        assert_eq!(faults.latency(true), Duration::from_millis(800));
        assert_eq!(faults.latency(false), Duration::from_millis(80));
        let same = |seed| {
            (0..500)
                .map(|i| faults.plan(seed, "x", i).slow)
                .collect::<Vec<_>>()
        };
        assert_eq!(same(3), same(3));
        assert_ne!(same(3), same(4));
        assert!((0..n).all(|i| !Faults::default().plan(3, "x", i).slow));
    }

    #[test]
    fn latency_tails_parse_both_ways_and_refuse_nonsense() {
        let tail = |t: &str| t.parse::<LatencyTail>();
        assert_eq!(
            tail("1%:800ms"),
            Ok(LatencyTail {
                share: 0.01,
                latency: Duration::from_millis(800)
            })
        );
        assert_eq!(tail("0.05:2s").unwrap().latency, Duration::from_secs(2));
        assert_eq!(
            tail("0.05:250").unwrap().latency,
            Duration::from_millis(250)
        );
        for bad in [
            "1%",
            "101%:1ms",
            "NaN:1ms",
            "-0.1:1ms",
            "1%:-5ms",
            "1%:2h",
            "1%:3601s",
            "1%:18446744073709551615s",
        ] {
            assert!(tail(bad).is_err(), "{bad}");
        }
    }
}
