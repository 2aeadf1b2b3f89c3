//! The built-in TOP gateway simulator (`campaign sim`, `url = "sim"`): a local gateway for the
//! two issuing APIs that checks requests like the platform, answers with its shapes and codes,
//! counts issuances per recipient identity, and injects seeded faults. See `docs/simulator.md`.
//!
//! Layout: `check` validates a request, `issue` decides and books what it does, `faults`
//! plans injected faults and flow control, `shapes` and `answer` render the answer,
//! `gateway` ties them together under one briefly held lock, `server` is the HTTP side and
//! `stats` the counters.

mod answer;
mod check;
mod faults;
mod gateway;
mod issue;
mod server;
mod shapes;
mod stats;

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

pub use faults::Faults;
pub use server::{SimServer, start};
pub use stats::SimStats;

use crate::exit::Exit;

/// The app key the simulator accepts unless told otherwise.
pub const DEFAULT_APP_KEY: &str = "10000001";
/// The app secret used when `TOP_APP_SECRET` is unset.
pub const DEFAULT_SECRET: &str = "sim-secret";
/// The session key used when `TOP_SESSION` is unset.
pub const DEFAULT_SESSION: &str = "sim-session";
/// Where `campaign sim` listens unless `--addr` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// `campaign sim` options.
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed on the first line of stdout).
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// The app key to accept (the secret comes from TOP_APP_SECRET, default `sim-secret`).
    #[arg(long, default_value = DEFAULT_APP_KEY)]
    pub app_key: String,
    /// Seed of the fault injection: the same seed gives the same faults for the same requests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Per-second call limit (sliding window); past it, code 7 and a ban.
    #[arg(long, value_name = "N")]
    pub limit_qps: Option<u32>,
    /// Length of the ban announced after the per-second limit is passed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub ban_seconds: u64,
    /// Calls per day (GMT+8); past it, code 7 with a ban until midnight GMT+8.
    #[arg(long, value_name = "N")]
    pub daily_quota: Option<u64>,
    /// Share of calls answered with an `isp.*` error (nothing issued).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = rate)]
    pub isp_error_rate: f64,
    /// Share of calls processed, then answered `isp.top-remote-connection-timeout`.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = rate)]
    pub timeout_subcode_rate: f64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of calls processed, then answered only after --withhold-ms.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = rate)]
    pub withhold_rate: f64,
    /// How long a withheld answer is held, in milliseconds (longer than the client's timeout).
    #[arg(long, value_name = "N", default_value_t = 15_000)]
    pub withhold_ms: u64,
    /// Share of calls answered HTTP 502 (nothing issued).
    #[arg(long = "http502-rate", value_name = "F", default_value_t = 0.0, value_parser = rate)]
    pub http502_rate: f64,
    /// Share of calls answered with a body that is not a TOP answer (nothing issued).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = rate)]
    pub malformed_rate: f64,
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
    }
}

impl Default for SimArgs {
    fn default() -> Self {
        let faults = Faults::default();
        SimArgs {
            addr: DEFAULT_ADDR.parse().expect("valid default address"),
            app_key: DEFAULT_APP_KEY.to_owned(),
            seed: 0,
            limit_qps: faults.limit_qps,
            ban_seconds: faults.ban_seconds,
            daily_quota: faults.daily_quota,
            isp_error_rate: faults.isp_error_rate,
            timeout_subcode_rate: faults.timeout_subcode_rate,
            latency_ms: faults.latency.as_millis() as u64,
            withhold_rate: faults.withhold_rate,
            withhold_ms: faults.withhold.as_millis() as u64,
            http502_rate: faults.http502_rate,
            malformed_rate: faults.malformed_rate,
        }
    }
}

impl SimArgs {
    /// The simulator's configuration, with the secret and session read by the caller.
    pub fn into_config(self, secret: String, session: String) -> SimConfig {
        SimConfig {
            app_key: self.app_key,
            secret,
            session,
            seed: self.seed,
            faults: Faults {
                limit_qps: self.limit_qps,
                ban_seconds: self.ban_seconds,
                daily_quota: self.daily_quota,
                isp_error_rate: self.isp_error_rate,
                timeout_subcode_rate: self.timeout_subcode_rate,
                latency: Duration::from_millis(self.latency_ms),
                withhold_rate: self.withhold_rate,
                withhold: Duration::from_millis(self.withhold_ms),
                http502_rate: self.http502_rate,
                malformed_rate: self.malformed_rate,
            },
        }
    }
}

/// What the simulator accepts and which faults it injects.
#[derive(Clone, PartialEq)]
pub struct SimConfig {
    pub app_key: String,
    pub secret: String,
    pub session: String,
    /// Seed of the fault injection.
    pub seed: u64,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            app_key: DEFAULT_APP_KEY.to_owned(),
            secret: DEFAULT_SECRET.to_owned(),
            session: DEFAULT_SESSION.to_owned(),
            seed: 0,
            faults: Faults::default(),
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
            .finish()
    }
}

/// `campaign sim`: serves until Ctrl-C or SIGTERM. The first line of stdout is
/// `listening on http://ADDR/router/rest`.
pub fn run_cli(args: SimArgs) -> anyhow::Result<Exit> {
    let secret = env_or("TOP_APP_SECRET", DEFAULT_SECRET);
    let session = env_or("TOP_SESSION", DEFAULT_SESSION);
    let addr = args.addr;
    let config = args.into_config(secret, session);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = start(config, addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", server.url()).context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
        }
        stop_signal().await?;
        let stats = server.stats();
        server.shutdown().await;
        eprintln!(
            "simulator stopped: {} calls, {} issued, {} duplicates, peak {} calls/s",
            stats.calls, stats.issued, stats.duplicates, stats.peak_calls_per_second
        );
        Ok(Exit::Ok)
    })
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimArgs,
    }

    #[test]
    fn clap_defaults_match_the_default_config() {
        let parsed = Cli::parse_from(["sim"]).args;
        assert_eq!(parsed.addr, SimArgs::default().addr);
        let secret = || DEFAULT_SECRET.to_owned();
        let session = || DEFAULT_SESSION.to_owned();
        assert_eq!(
            parsed.into_config(secret(), session()),
            SimConfig::default()
        );
        assert_eq!(
            SimArgs::default().into_config(secret(), session()),
            SimConfig::default()
        );
    }

    #[test]
    fn options_reach_the_faults_and_rates_are_checked() {
        let args = Cli::parse_from([
            "sim",
            "--addr",
            "127.0.0.1:0",
            "--limit-qps",
            "5",
            "--http502-rate",
            "0.5",
            "--withhold-ms",
            "20",
        ])
        .args;
        let config = args.into_config("s".into(), "t".into());
        assert_eq!(config.faults.limit_qps, Some(5));
        assert_eq!(config.faults.http502_rate, 0.5);
        assert_eq!(config.faults.withhold, Duration::from_millis(20));
        assert!(Cli::try_parse_from(["sim", "--isp-error-rate", "1.5"]).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret_or_session() {
        let config = SimConfig {
            secret: "hunter2".into(),
            session: "sess-77".into(),
            ..SimConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("sess-77"));
    }
}
