//! The one channel for user-facing output: an indicatif progress bar on a terminal (a plain line
//! every few seconds otherwise), messages and log lines on stderr that never tear the bar, and
//! stdout printing that survives `| head`. Nothing else in the crate prints.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use crate::domain::{LiveCounters, RunCounters};

/// How often the bar is refreshed.
const TICK: Duration = Duration::from_millis(200);
/// How often a progress line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The bar currently on screen, if any: log lines are printed around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// How much a command tells the user on stdout and stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Output {
    /// Progress, summaries and notes.
    #[default]
    Normal,
    /// Only errors (`--quiet`).
    Quiet,
}

impl Output {
    /// `--quiet` given or not.
    pub(crate) fn from_quiet(quiet: bool) -> Output {
        if quiet { Output::Quiet } else { Output::Normal }
    }
}
/// A passing condition worth showing beside the counts (e.g. an outage), read at every refresh.
pub(crate) type Note = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// A running progress display; [`Progress::finish`] stops it.
pub(crate) struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

/// The span over which the current rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The rate over the last [`RATE_WINDOW`], from samples of the `sent` counter.
struct RecentRate {
    samples: VecDeque<(Instant, u64)>,
}

impl RecentRate {
    fn new(at: Instant) -> RecentRate {
        RecentRate {
            samples: VecDeque::from([(at, 0)]),
        }
    }

    /// Adds a sample; returns the rate since the oldest one kept.
    fn rate(&mut self, at: Instant, sent: u64) -> f64 {
        while self
            .samples
            .get(1)
            .is_some_and(|(t, _)| at.duration_since(*t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        self.samples.push_back((at, sent));
        let (since, then) = self.samples[0];
        let secs = at.duration_since(since).as_secs_f64();
        if secs < 0.001 {
            0.0
        } else {
            sent.saturating_sub(then) as f64 / secs
        }
    }
}

/// `ETA 1m02s` for `left` rows at `rate` per second, or `ETA ?` when nothing moves.
fn eta(left: u64, rate: f64) -> String {
    if left == 0 {
        return "ETA 0s".to_owned();
    }
    if rate < 0.01 {
        return "ETA ?".to_owned();
    }
    let secs = (left as f64 / rate).min(1e7);
    format!(
        "ETA {}",
        crate::results::summary::human_duration(Duration::from_secs_f64(secs))
    )
}

/// The one-line description of where a run stands: counts, the rate over the last seconds,
/// what limits it now, and the time left at that rate.
pub(crate) fn describe(
    s: &RunCounters,
    retrying: u64,
    total: u64,
    rate: f64,
    note: Option<&str>,
) -> String {
    let note = note.map(|n| format!(" · {n}")).unwrap_or_default();
    format!(
        "{}/{} done · issued {} · failed {} · uncertain {} · retrying {} · {rate:.1}/s{note} · {}",
        s.done(),
        total,
        s.issued,
        s.failed,
        s.uncertain,
        retrying,
        eta(total.saturating_sub(s.done()), rate)
    )
}

impl Progress {
    /// Starts showing progress of `total` rows to send, or nothing when quiet; `note` adds a
    /// passing condition when it has one.
    pub(crate) fn start(
        total: u64,
        stats: Arc<LiveCounters>,
        note: Note,
        output: Output,
    ) -> Progress {
        if output == Output::Quiet || total == 0 {
            return Progress {
                task: None,
                bar: None,
            };
        }
        let started = Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30.green/dim} {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("━╸ "),
            );
            *ACTIVE_BAR
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bar.clone());
            let shown = bar.clone();
            let task = tokio::spawn(async move {
                let mut recent = RecentRate::new(started);
                loop {
                    let s = stats.snapshot();
                    let rate = recent.rate(Instant::now(), s.sent);
                    shown.set_position(s.done());
                    let note = note().map(|n| format!(" · {n}")).unwrap_or_default();
                    shown.set_message(format!(
                        "· issued {} · failed {} · uncertain {} · retrying {} · {rate:.1}/s{note} · {}",
                        s.issued,
                        s.failed,
                        s.uncertain,
                        stats.retrying(),
                        eta(total.saturating_sub(s.done()), rate)
                    ));
                    tokio::time::sleep(TICK).await;
                }
            });
            Progress {
                task: Some(task),
                bar: Some(bar),
            }
        } else {
            let task = tokio::spawn(async move {
                let mut recent = RecentRate::new(started);
                loop {
                    tokio::time::sleep(LINE_EVERY).await;
                    let s = stats.snapshot();
                    let rate = recent.rate(Instant::now(), s.sent);
                    say(&format!(
                        "campaign: {}",
                        describe(&s, stats.retrying(), total, rate, note().as_deref())
                    ));
                }
            });
            Progress {
                task: Some(task),
                bar: None,
            }
        }
    }

    /// Stops the display and clears the bar.
    pub(crate) fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
            *ACTIVE_BAR
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
}

/// Takes the progress bar off the screen for good (before a hard quit), so no frozen bar is
/// left behind on the terminal.
pub(crate) fn clear() {
    if let Some(bar) = ACTIVE_BAR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        bar.finish_and_clear();
    }
}

/// Prints to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Prints a line to stderr without tearing the progress bar; a closed stderr is not an error.
pub(crate) fn say(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    to_stderr(text.as_bytes());
}

/// Writes whole lines to stderr, around the progress bar if one is on screen.
fn to_stderr(bytes: &[u8]) {
    let print = || {
        let _ = std::io::stderr().lock().write_all(bytes);
    };
    let bar = ACTIVE_BAR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// A `tracing` writer to stderr that suspends the progress bar while a line is printed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogWriter;

/// One log event, buffered and printed whole when dropped.
pub(crate) struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        to_stderr(&self.0);
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(Vec::with_capacity(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_over_the_last_seconds_not_since_the_start() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut recent = RecentRate::new(start);
        // 100/s for 10 s, then 10/s.
        for s in 1..=10 {
            recent.rate(at(s), s * 100);
        }
        let mut rate = 0.0;
        for s in 11..=20 {
            rate = recent.rate(at(s), 1000 + (s - 10) * 10);
        }
        assert_eq!(rate, 10.0);
        assert_eq!(eta(600, rate), "ETA 1m00s");
        assert_eq!(eta(5, 0.0), "ETA ?");
    }

    #[test]
    fn the_line_shows_the_limiter_and_the_eta() {
        let counters = RunCounters {
            sent: 40,
            issued: 40,
            ..RunCounters::default()
        };
        assert_eq!(
            describe(&counters, 0, 100, 20.0, Some("in-flight cap 4")),
            "40/100 done · issued 40 · failed 0 · uncertain 0 · retrying 0 · 20.0/s · \
             in-flight cap 4 · ETA 3.0s"
        );
    }
}
