//! The simulator's configuration, [`SimConfig`], and its defaults: the one place they are
//! defined (the `campaign sim` flags and a `url = "sim"` campaign both start from them).

use std::fmt;
use std::time::Duration;

use super::faults::Faults;
use super::query::Preissued;

/// The app key the simulator accepts unless told otherwise.
pub const DEFAULT_APP_KEY: &str = "10000001";
/// The app secret used when `TOP_APP_SECRET` is unset.
pub const DEFAULT_SECRET: &str = "sim-secret";
/// The session key used when `TOP_SESSION` is unset.
pub const DEFAULT_SESSION: &str = "sim-session";
/// Where `campaign sim` listens unless `--addr` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// What the simulator accepts, which faults it injects and how it answers queries.
#[derive(Clone, PartialEq)]
pub struct SimConfig {
    pub app_key: String,
    pub secret: String,
    pub session: String,
    /// Seed of the fault injection.
    pub seed: u64,
    pub faults: Faults,
    /// How long after issuing a certificate shows in `tmall.nrt.certificate.query`.
    pub query_lag: Duration,
    /// Refuse `tmall.nrt.certificate.query` with code 11 (no permission).
    pub deny_query: bool,
    /// Answer the first this many `tmall.nrt.certificate.query` calls with code 7.
    pub throttle_queries: u64,
    /// Certificates issued before the simulator started.
    pub preissued: Vec<Preissued>,
    /// Seconds added to the host's clock to make the gateway's.
    pub clock_offset_s: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            app_key: DEFAULT_APP_KEY.to_owned(),
            secret: DEFAULT_SECRET.to_owned(),
            session: DEFAULT_SESSION.to_owned(),
            seed: 0,
            faults: Faults::default(),
            query_lag: Duration::ZERO,
            deny_query: false,
            throttle_queries: 0,
            preissued: Vec::new(),
            clock_offset_s: 0,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("app_key", &self.app_key)
            .field("secret", &"***")
            .field("session", &"***")
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .field("query_lag", &self.query_lag)
            .field("deny_query", &self.deny_query)
            .field("throttle_queries", &self.throttle_queries)
            .field("preissued", &self.preissued)
            .field("clock_offset_s", &self.clock_offset_s)
            .finish()
    }
}
