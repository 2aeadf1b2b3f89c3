//! Validated values that the campaign file and the command line share: each is checked against
//! its documented bounds ([`super::bounds`]) once, wherever it was written.

use std::fmt;

use super::bounds;

/// Requests per second, within [`bounds::QPS`].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(crate) struct Qps(pub(super) f64);

impl Qps {
    /// Checks `value`; the error says what the bounds are.
    pub(crate) fn new(value: f64) -> Result<Qps, String> {
        bounds::check_float(&bounds::QPS, value).map(Qps)
    }

    /// Requests per second.
    pub(crate) fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Qps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Requests in flight at most, within [`bounds::CONCURRENCY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Concurrency(pub(super) usize);

impl Concurrency {
    /// Checks `value`; the error says what the bounds are.
    pub(crate) fn new(value: i64) -> Result<Concurrency, String> {
        let n = bounds::check_int(&bounds::CONCURRENCY, value)?;
        usize::try_from(n)
            .map(Concurrency)
            .map_err(|_| "too large for this machine".to_owned())
    }

    /// Requests in flight at most.
    pub(crate) fn get(self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qps_is_bounded() {
        assert_eq!(Qps::new(2.5).map(Qps::get), Ok(2.5));
        assert!(Qps::new(0.0).is_err());
        assert!(Qps::new(f64::NAN).is_err());
        assert!(Qps::new(f64::INFINITY).is_err());
    }

    #[test]
    fn concurrency_is_bounded() {
        assert_eq!(Concurrency::new(16).map(Concurrency::get), Ok(16));
        assert_eq!(
            Concurrency::new(0).unwrap_err(),
            "must be between 1 and 10000"
        );
    }
}
