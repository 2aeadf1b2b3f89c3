//! Retry delays: exponential backoff with full jitter, from a seedable generator so that tests
//! can pin the exact delays.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Delay before retry `n` (1-based): uniform in `0..=min(max, base * 2^(n-1))`.
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    rng: Mutex<StdRng>,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration, seed: Option<u64>) -> Backoff {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Backoff {
            base,
            max,
            rng: Mutex::new(rng),
        }
    }

    /// The upper bound of the delay before retry `n`.
    pub(crate) fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A jittered delay before retry `n`.
    pub(crate) fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n).as_millis() as u64;
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Duration::from_millis(rng.random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Some(1));
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling_and_seeded() {
        let a = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), Some(7));
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), Some(7));
        let da: Vec<Duration> = (1..=8).map(|n| a.delay(n)).collect();
        let db: Vec<Duration> = (1..=8).map(|n| b.delay(n)).collect();
        assert_eq!(da, db);
        for (n, d) in (1..=8).zip(&da) {
            assert!(*d <= a.ceiling(n));
        }
        assert!(da.windows(2).any(|w| w[0] != w[1]), "no jitter: {da:?}");
    }
}
