//! How a terminal ends a run: Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal or SSH session
//! closed) all stop sending and drain, so the run commits, writes its results and exits 130.
//!
//! A second signal quits at once (still resumable: every in-flight mark is on disk), unless it
//! comes so soon after the first that it is the same interruption: closing a terminal sends
//! SIGHUP and then SIGTERM or SIGCONT, and an impatient Ctrl-C often lands twice.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exit::Exit;

/// Signals closer together than this are one interruption.
const SAME_INTERRUPTION: Duration = Duration::from_millis(500);

/// What the run does just before a hard quit: record how long it ran, clear the display.
pub(crate) type OnQuit = Box<dyn FnOnce() + Send>;

/// Watches for the signals that end a run. The first cancels `stop` (the run drains) and the
/// returned token (the run ends as interrupted); a later one, at least [`SAME_INTERRUPTION`]
/// after the first, runs `on_quit` and exits 130 at once.
pub(crate) fn watch(stop: CancellationToken, on_quit: OnQuit) -> CancellationToken {
    let interrupted = CancellationToken::new();
    let flag = interrupted.clone();
    tokio::spawn(async move {
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(e) => {
                tracing::warn!("cannot watch for signals: {e}");
                return;
            }
        };
        let name = signals.next().await;
        let first = Instant::now();
        crate::progress::say(&format!(
            "campaign: {name}: stopping: finishing in-flight requests (interrupt again to quit at once)"
        ));
        flag.cancel();
        stop.cancel();
        loop {
            let name = signals.next().await;
            if first.elapsed() >= SAME_INTERRUPTION {
                on_quit();
                crate::progress::say(&format!(
                    "campaign: {name}: quitting now; run again to resume"
                ));
                std::process::exit(Exit::Interrupted as i32);
            }
            tracing::debug!("{name} right after the first signal: the same interruption");
        }
    });
    interrupted
}

/// The signal streams a run listens to.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next signal; returns its name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = self.term.recv() => "SIGTERM",
                _ = self.hangup.recv() => "SIGHUP (the terminal closed)",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted"
        }
    }
}
