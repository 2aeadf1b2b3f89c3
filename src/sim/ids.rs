//! The ids the simulator hands out: certificate codes, right instances, trace and request ids.
//!
//! Each simulator draws a random ten-digit prefix when it starts and puts it in every id, so
//! ids stay unique across simulator processes and across the runs of a campaign that each
//! start their own in-process simulator: a resumed campaign never sees the code of an earlier
//! run again, and `verify` reports no false double issues. (Two simulators collide only if
//! they draw the same prefix, one chance in nine billion.)

use rand::Rng as _;

/// The id space of one simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ids {
    /// Ten digits, no leading zero.
    prefix: u64,
}

impl Ids {
    /// A fresh, random id space.
    pub(crate) fn random() -> Self {
        Ids::with_prefix(rand::rng().random_range(1_000_000_000..10_000_000_000))
    }

    /// An id space with a known prefix (ten digits), for tests.
    pub(crate) fn with_prefix(prefix: u64) -> Self {
        Ids { prefix }
    }

    /// The certificate code of the `serial`-th business result: `38`, the prefix, the serial.
    pub(crate) fn certificate_code(self, serial: u64) -> String {
        format!("38{}{serial:08}", self.prefix)
    }

    /// The `right_instance_id` of ticket `ticket` of the `serial`-th result.
    pub(crate) fn right_instance_id(self, serial: u64, ticket: u64) -> String {
        format!("70{}{serial:08}{ticket:02}", self.prefix)
    }

    /// The `out_biz_instance_id` of ticket `ticket` of the `serial`-th result.
    pub(crate) fn out_biz_instance_id(self, serial: u64, ticket: u64) -> String {
        format!("43{}{serial:08}{ticket:02}", self.prefix)
    }

    /// The `trace_id` of the `serial`-th alsc result.
    pub(crate) fn trace_id(self, serial: u64) -> String {
        format!("0b{:x}{serial:016x}", self.prefix)
    }

    /// The `request_id` of the `n`-th request.
    pub(crate) fn request_id(self, n: u64) -> String {
        format!("sim{}{n:09}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_two_simulators_differ_and_serials_stay_distinct() {
        let (a, b) = (Ids::random(), Ids::random());
        assert_ne!(a, b);
        assert_ne!(a.certificate_code(1), b.certificate_code(1));
        assert_ne!(a.request_id(1), b.request_id(1));
        let ids = Ids::with_prefix(1_234_567_890);
        assert_eq!(ids.certificate_code(5), "38123456789000000005");
        // A serial past eight digits is longer, so it cannot equal a shorter one.
        assert_ne!(
            ids.certificate_code(100_000_000),
            ids.certificate_code(10_000_000)
        );
        assert_ne!(ids.right_instance_id(1, 10), ids.right_instance_id(11, 0));
    }
}
