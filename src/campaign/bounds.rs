//! The documented bounds of every numeric setting, shared by the campaign file and the command
//! line, so that no value can crash the program or exhaust the machine. The README's table of
//! settings lists the same bounds.

use std::ops::RangeInclusive;

/// `limits.qps` and `--qps`: requests per second.
pub(crate) const QPS: RangeInclusive<f64> = 0.001..=1_000_000.0;
/// `limits.concurrency`, `--concurrency` and `limits.max_concurrency`: requests in flight.
pub(crate) const CONCURRENCY: RangeInclusive<i64> = 1..=10_000;
/// `limits.max_attempts`: attempts per row.
pub(crate) const MAX_ATTEMPTS: RangeInclusive<i64> = 1..=1_000;
/// `limits.max_failure_rate`: a share.
pub(crate) const MAX_FAILURE_RATE: RangeInclusive<f64> = 0.0..=1.0;
/// `limits.min_rows_for_halt`: finished rows.
pub(crate) const MIN_ROWS_FOR_HALT: RangeInclusive<i64> = 0..=1_000_000_000_000;
/// `limits.max_issued`: rows issued across all runs.
pub(crate) const MAX_ISSUED: RangeInclusive<i64> = 1..=1_000_000_000_000;
/// `limits.max_ban_wait_s`: seconds (a week).
pub(crate) const MAX_BAN_WAIT_S: RangeInclusive<f64> = 0.0..=604_800.0;
/// `limits.max_outage_s`: seconds (a week).
pub(crate) const MAX_OUTAGE_S: RangeInclusive<f64> = 0.0..=604_800.0;
/// `limits.reconcile_after_s`: seconds (a week).
pub(crate) const RECONCILE_AFTER_S: RangeInclusive<f64> = 0.0..=604_800.0;
/// `notify.every_minutes`: a progress message at most this often (a week).
pub(crate) const NOTIFY_EVERY_MINUTES: RangeInclusive<f64> = 0.001..=10_080.0;
/// `gateway.timeout_ms`, `gateway.connect_timeout_ms` and `notify.timeout_ms`: ten minutes at
/// most.
pub(crate) const TIMEOUT_MS: RangeInclusive<i64> = 1..=600_000;

/// Checks a number against its bounds; the error says what they are.
pub(crate) fn check_float(range: &RangeInclusive<f64>, n: f64) -> Result<f64, String> {
    if n.is_nan() {
        Err("is not a number".to_owned())
    } else if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        ))
    }
}

/// Checks a whole number against its bounds; the error says what they are.
pub(crate) fn check_int(range: &RangeInclusive<i64>, n: i64) -> Result<i64, String> {
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        ))
    }
}

/// Parses a command-line number within `range` (for clap): `NaN`, `inf` and text that is not a
/// number are refused with a message saying so.
pub(crate) fn parse_float_arg(text: &str, range: &RangeInclusive<f64>) -> Result<f64, String> {
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    check_float(range, n).map_err(|why| format!("{text:?} {why}"))
}

/// Parses a command-line whole number within `range` (for clap).
pub(crate) fn parse_int_arg(text: &str, range: &RangeInclusive<i64>) -> Result<i64, String> {
    let trimmed = text.trim();
    let n: i64 = match trimmed.parse() {
        Ok(n) => n,
        // Digits that do not fit are out of bounds, not "not a number".
        Err(_)
            if !trimmed.is_empty()
                && trimmed
                    .trim_start_matches(['-', '+'])
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
        {
            if trimmed.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            }
        }
        Err(_) => return Err(format!("{text:?} is not a whole number")),
    };
    check_int(range, n).map_err(|why| format!("{text:?} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_outside_their_bounds_say_what_the_bounds_are() {
        assert_eq!(check_float(&QPS, 50.0), Ok(50.0));
        assert_eq!(
            check_float(&QPS, 1e-300).unwrap_err(),
            "must be between 0.001 and 1000000"
        );
        assert_eq!(check_float(&QPS, f64::NAN).unwrap_err(), "is not a number");
        assert!(check_float(&QPS, f64::INFINITY).is_err());
    }

    #[test]
    fn command_line_numbers_are_parsed_and_bounded() {
        assert_eq!(
            parse_float_arg("NaN", &QPS).unwrap_err(),
            "\"NaN\" is not a number"
        );
        assert_eq!(
            parse_float_arg("fast", &QPS).unwrap_err(),
            "\"fast\" is not a number"
        );
        assert_eq!(
            parse_float_arg("inf", &QPS).unwrap_err(),
            "\"inf\" must be between 0.001 and 1000000"
        );
        assert_eq!(parse_float_arg("2.5", &QPS), Ok(2.5));
        assert_eq!(parse_int_arg("16", &CONCURRENCY), Ok(16));
        assert_eq!(
            parse_int_arg("2305843009213693952", &CONCURRENCY).unwrap_err(),
            "\"2305843009213693952\" must be between 1 and 10000"
        );
        assert_eq!(
            parse_int_arg("99999999999999999999999", &CONCURRENCY).unwrap_err(),
            "\"99999999999999999999999\" must be between 1 and 10000"
        );
        assert_eq!(
            parse_int_arg("1.5", &CONCURRENCY).unwrap_err(),
            "\"1.5\" is not a whole number"
        );
        assert!(parse_int_arg("0", &CONCURRENCY).is_err());
    }
}

#[cfg(test)]
mod props;
