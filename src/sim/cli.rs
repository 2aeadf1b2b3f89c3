//! `campaign sim`: the command-line flags ([`SimArgs`], bounded so that no value panics, with
//! the defaults of [`SimConfig::default`]), and serving until Ctrl-C or SIGTERM, keeping the
//! book in `--book FILE` if asked.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

use super::config::{DEFAULT_ADDR, DEFAULT_APP_KEY, DEFAULT_SECRET, DEFAULT_SESSION, SimConfig};
use super::faults::{Faults, LatencyTail};
use super::query::Preissued;
use super::server::start;
use crate::exit::Exit;

/// How often `--book` is saved while the simulator serves (when the book changed).
const SAVE_EVERY: Duration = Duration::from_secs(3);
/// The most `--limit-qps` may be.
const MAX_LIMIT_QPS: u32 = 1_000_000;
/// The longest ban, in seconds (a day).
const MAX_BAN_SECONDS: u64 = 86_400;
/// The longest latency, withheld answer or query lag, in milliseconds (an hour).
const MAX_DELAY_MS: u64 = 3_600_000;
/// The largest clock offset either way, in seconds (ten years).
const MAX_CLOCK_OFFSET_S: i64 = 315_360_000;

/// `campaign sim` options. Their defaults are those of [`SimConfig::default`].
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed on the first line of stdout).
    /// A non-loopback address gets a warning: the simulator accepts anyone's calls.
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// The app key to accept (the secret comes from TOP_APP_SECRET, default `sim-secret`).
    #[arg(long, default_value = DEFAULT_APP_KEY)]
    pub app_key: String,
    /// Seed of the fault injection: the same seed gives the same faults for the same requests.
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Per-second call limit (sliding window), 1 to 1000000; past it, code 7 and a ban.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT_QPS)))]
    pub limit_qps: Option<u32>,
    /// Length of the ban announced after the per-second limit is passed, 1 to 86400.
    #[arg(long, value_name = "N", default_value_t = faults().ban_seconds,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BAN_SECONDS))]
    pub ban_seconds: u64,
    /// Calls per day (GMT+8), at least 1; past it, code 7 with a ban until midnight GMT+8.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub daily_quota: Option<u64>,
    /// Share of calls answered with an `isp.*` error (nothing issued).
    #[arg(long, value_name = "F", default_value_t = faults().isp_error_rate, value_parser = rate)]
    pub isp_error_rate: f64,
    /// Share of calls processed, then answered `isp.top-remote-connection-timeout`.
    #[arg(long, value_name = "F", default_value_t = faults().timeout_subcode_rate, value_parser = rate)]
    pub timeout_subcode_rate: f64,
    /// Latency added to every answer, in milliseconds (at most an hour); with --latency-tail,
    /// the median.
    #[arg(long, value_name = "N", default_value_t = millis(faults().latency), value_parser = clap::value_parser!(u64).range(0..=MAX_DELAY_MS))]
    pub latency_ms: u64,
    /// A slow tail: SHARE:DURATION, e.g. `1%:800ms`: that share of answers (seeded) takes that
    /// long instead of --latency-ms.
    #[arg(long, value_name = "SHARE:DURATION")]
    pub latency_tail: Option<LatencyTail>,
    /// Share of calls processed, then answered only after --withhold-ms.
    #[arg(long, value_name = "F", default_value_t = faults().withhold_rate, value_parser = rate)]
    pub withhold_rate: f64,
    /// How long a withheld answer is held, in milliseconds (longer than the client's timeout).
    #[arg(long, value_name = "N", default_value_t = millis(faults().withhold),
          value_parser = clap::value_parser!(u64).range(0..=MAX_DELAY_MS))]
    pub withhold_ms: u64,
    /// Share of calls answered HTTP 502 (nothing issued).
    #[arg(long = "http502-rate", value_name = "F", default_value_t = faults().http502_rate, value_parser = rate)]
    pub http502_rate: f64,
    /// Share of calls answered with a body that is not a TOP answer (nothing issued).
    #[arg(long, value_name = "F", default_value_t = faults().malformed_rate, value_parser = rate)]
    pub malformed_rate: f64,
    /// tmall.nrt.certificate.query does not show a certificate until this many milliseconds
    /// after it was issued.
    #[arg(long, value_name = "N", default_value_t = millis(defaults().query_lag), value_parser = clap::value_parser!(u64).range(0..=MAX_DELAY_MS))]
    pub query_lag_ms: u64,
    /// Refuse tmall.nrt.certificate.query with a permission error (code 11).
    #[arg(long)]
    pub deny_query: bool,
    /// Answer the first N tmall.nrt.certificate.query calls with code 7 and a ban of
    /// --ban-seconds.
    #[arg(long, value_name = "N", default_value_t = defaults().throttle_queries)]
    pub throttle_queries: u64,
    /// A certificate issued before the campaign, seen by queries but not counted as issued:
    /// `open_id=X,biz_code=Y,out_id=N,channel=N[,age_s=SECONDS]` (age default 86400). Repeatable.
    #[arg(long, value_name = "FIELDS")]
    pub preissued: Vec<Preissued>,
    /// Moves the simulator's clock by this many seconds (taobao.time.get, the timestamp check,
    /// the times in answers), up to ten years either way.
    #[arg(long, value_name = "N", default_value_t = defaults().clock_offset_s, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-MAX_CLOCK_OFFSET_S..=MAX_CLOCK_OFFSET_S))]
    pub clock_offset_s: i64,
    /// Keep the book (certificates issued, issue counts per recipient) in FILE: read at start
    /// if it exists, saved (atomically, owner-only) every few seconds when it changed and on
    /// Ctrl-C or SIGTERM, so a simulator started again on FILE remembers what it issued.
    #[arg(long, value_name = "FILE")]
    pub book: Option<std::path::PathBuf>,
}

/// The defaults, for the flags: [`SimConfig::default`] is where they are defined.
fn defaults() -> SimConfig {
    SimConfig::default()
}

fn faults() -> Faults {
    Faults::default()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
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
                latency_tail: self.latency_tail,
                withhold_rate: self.withhold_rate,
                withhold: Duration::from_millis(self.withhold_ms),
                http502_rate: self.http502_rate,
                malformed_rate: self.malformed_rate,
            },
            query_lag: Duration::from_millis(self.query_lag_ms),
            deny_query: self.deny_query,
            throttle_queries: self.throttle_queries,
            preissued: self.preissued,
            clock_offset_s: self.clock_offset_s,
        }
    }
}

/// `campaign sim`: serves until Ctrl-C or SIGTERM. The first line of stdout is
/// `listening on http://ADDR/router/rest`.
pub fn run_cli(args: SimArgs) -> anyhow::Result<Exit> {
    let secret = env_or("TOP_APP_SECRET", DEFAULT_SECRET);
    let session = env_or("TOP_SESSION", DEFAULT_SESSION);
    let addr = args.addr;
    let book_path = args.book.clone();
    if let Some(warning) = exposure_warning(addr) {
        tracing::warn!("{warning}");
    }
    let config = args.into_config(secret, session);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut server = start(config, addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let saver = match &book_path {
            Some(path) => Some(save_every(server.keep_book(path)?)),
            None => None,
        };
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", server.url()).context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
        }
        stop_signal().await?;
        if let Some(saver) = saver {
            saver.abort();
            let _ = saver.await;
        }
        // Saves the book, once no call is being handled any more.
        let stats = server.shutdown().await;
        eprintln!(
            "simulator stopped: {} calls, {} issued, {} duplicates, peak {} calls/s",
            stats.calls, stats.issued, stats.duplicates, stats.peak_calls_per_second
        );
        Ok(Exit::Ok)
    })
}

/// Saves the book every [`SAVE_EVERY`] when it changed, until aborted.
fn save_every(book: std::sync::Arc<super::server::BookFile>) -> tokio::task::JoinHandle<()> {
    tracing::info!("keeping the book in {}", book.path().display());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let book = std::sync::Arc::clone(&book);
            let _ = tokio::task::spawn_blocking(move || book.save()).await;
        }
    })
}

/// The warning for an address other machines can reach: the simulator takes anyone's calls
/// with the default credentials, and its stats show every recipient.
fn exposure_warning(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "listening on {addr}, which is not a loopback address: any machine that can reach \
             it can call the simulator and read /sim/stats; use 127.0.0.1 unless that is meant"
        )
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
        assert_eq!(parsed.addr, DEFAULT_ADDR.parse().unwrap());
        assert_eq!(
            parsed.into_config(DEFAULT_SECRET.to_owned(), DEFAULT_SESSION.to_owned()),
            SimConfig::default()
        );
    }

    #[test]
    fn query_and_clock_options_reach_the_config() {
        let args = Cli::parse_from([
            "sim",
            "--query-lag-ms",
            "1500",
            "--deny-query",
            "--throttle-queries",
            "3",
            "--preissued",
            "open_id=A,biz_code=23,out_id=1,channel=7",
            "--preissued",
            "open_id=B,biz_code=23,out_id=2,channel=7,age_s=0",
            "--clock-offset-s",
            "-900",
        ])
        .args;
        let config = args.into_config("s".into(), "t".into());
        assert_eq!(config.query_lag, Duration::from_millis(1500));
        assert!(config.deny_query);
        assert_eq!(config.throttle_queries, 3);
        assert_eq!(config.preissued.len(), 2);
        assert_eq!(config.preissued[1].age, Duration::ZERO);
        assert_eq!(config.clock_offset_s, -900);
    }

    #[test]
    fn numeric_options_out_of_bounds_are_refused_not_panics() {
        for (flag, value) in [
            ("--limit-qps", "0"),
            ("--limit-qps", "4294967296"),
            ("--ban-seconds", "0"),
            ("--ban-seconds", "18446744073709551615"),
            ("--daily-quota", "0"),
            ("--latency-ms", "18446744073709551615"),
            ("--withhold-ms", "3600001"),
            ("--query-lag-ms", "-1"),
            ("--clock-offset-s", "-9223372036854775808"),
            ("--isp-error-rate", "NaN"),
            ("--seed", "-1"),
            ("--preissued", "open_id=A"),
            ("--latency-tail", "200%:1ms"),
        ] {
            assert!(
                Cli::try_parse_from(["sim", flag, value]).is_err(),
                "{flag} {value}"
            );
        }
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
    fn only_non_loopback_addresses_are_warned_about() {
        for addr in ["127.0.0.1:0", "[::1]:8080", "127.1.2.3:80"] {
            assert!(exposure_warning(addr.parse().unwrap()).is_none(), "{addr}");
        }
        for addr in ["0.0.0.0:8080", "[::]:0", "192.168.1.5:8080"] {
            let warning = exposure_warning(addr.parse().unwrap()).unwrap();
            assert!(warning.contains("not a loopback address"), "{warning}");
        }
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
