//! The clock: the one way the ledger and the results write a moment.

/// The current time as RFC 3339 with the local offset and milliseconds, as the ledger and the
/// results store it (e.g. `2026-01-01T08:00:00.000+08:00`).
pub(crate) fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn moments_parse_back_as_rfc3339_with_milliseconds() {
        let now = super::now_rfc3339();
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        let fraction = now.split('.').nth(1).expect("a fraction");
        assert!(fraction[..3].bytes().all(|b| b.is_ascii_digit()), "{now}");
    }
}
