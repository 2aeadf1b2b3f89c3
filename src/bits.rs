//! A set of row or entry numbers, one bit each: what `verify` uses to remember which rows or
//! identities it has met, an eighth of a byte per row however many there are.

/// Numbers from 0 up to a bound given at the start; others are never in it.
pub(crate) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// A set for the numbers 0 to `max` (and a few above, to the next multiple of 64).
    pub(crate) fn up_to(max: usize) -> Bits {
        Bits {
            words: vec![0; max / 64 + 1],
        }
    }

    /// Where `n` is kept: its word and its bit, if within the bound.
    fn place(&self, n: i64) -> Option<(usize, u64)> {
        let n = usize::try_from(n).ok()?;
        (n / 64 < self.words.len()).then_some((n / 64, 1 << (n % 64)))
    }

    pub(crate) fn contains(&self, n: i64) -> bool {
        self.place(n)
            .is_some_and(|(word, bit)| self.words[word] & bit != 0)
    }

    /// Adds `n`; returns whether it was there already, or `None` when `n` is beyond the bound
    /// (or negative) and cannot be kept.
    pub(crate) fn insert(&mut self, n: i64) -> Option<bool> {
        let (word, bit) = self.place(n)?;
        let was = self.words[word] & bit != 0;
        self.words[word] |= bit;
        Some(was)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_within_the_bound_are_kept_and_others_refused() {
        let mut bits = Bits::up_to(100);
        assert_eq!(bits.insert(0), Some(false));
        assert_eq!(bits.insert(0), Some(true));
        assert_eq!(bits.insert(100), Some(false));
        assert!(bits.contains(100) && bits.contains(0) && !bits.contains(64));
        assert_eq!(bits.insert(-1), None);
        assert_eq!(bits.insert(10_000), None);
        assert!(!bits.contains(-1) && !bits.contains(10_000));
    }
}
