//! What the dispatcher and the workers of one run share ([`Ctx`]): the gateway, the ledger's
//! channel, the pace, the in-flight permits, the stop token, the live counters, the limits and
//! the halting rules.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Halt;
use super::allowance::Allowance;
use super::backoff::Backoff;
use super::inflight::InFlight;
use super::outage::Outage;
use super::pace::Pacer;
use crate::campaign::Limits;
use crate::domain::LiveCounters;
use crate::ledger::guard::StateGuard;
use crate::ledger::writer::{Msg, Record};
use crate::top::outcome::TRANSPORT;
use crate::top::{Gateway, Outcome};

/// How often the state file is checked during a run (it is also checked before rows are
/// marked in flight, and before the final write).
const GUARD_EVERY: Duration = Duration::from_millis(500);

/// Answers in a row that are not TOP answers before the run halts: a gateway that keeps
/// answering HTTP errors or pages that are not TOP JSON is not a TOP router, and for the
/// non-idempotent API each such answer leaves a row uncertain.
const NOT_TOP_STREAK: u32 = 20;

/// The ledger thread is gone: nothing more can be recorded, so nothing more may be sent.
#[derive(Debug)]
pub(crate) struct LedgerGone;

/// Everything the workers share.
pub(crate) struct Ctx<G> {
    pub(super) gateway: G,
    ledger: mpsc::Sender<Msg>,
    pub(super) pacer: Arc<Pacer>,
    pub(super) in_flight: InFlight,
    pub(super) stop: CancellationToken,
    pub(super) stats: Arc<LiveCounters>,
    pub(super) limits: Limits,
    pub(super) backoff: Backoff,
    halt: Mutex<Option<Halt>>,
    /// What `--limit` and the budget still allow this run to send.
    pub(super) allowance: Allowance,
    /// Whether the gateway can be reached; while not, the run pauses.
    pub(super) outage: Arc<Outage>,
    /// Answers in a row that were not TOP answers (HTTP errors, bodies that are not TOP JSON).
    not_top_streak: AtomicU32,
    /// Cancelled once every row was handed out (or the run stopped).
    pub(super) fed: CancellationToken,
}

impl<G: Gateway> Ctx<G> {
    /// A run's shared state: rows go to `gateway`, outcomes to the ledger behind `ledger`
    /// (outages are recorded under run `run_id`).
    pub(super) fn new(
        run_id: i64,
        gateway: G,
        ledger: mpsc::Sender<Msg>,
        limits: Limits,
        stats: Arc<LiveCounters>,
        backoff: Backoff,
        allowance: Allowance,
    ) -> Ctx<G> {
        Ctx {
            gateway,
            ledger,
            pacer: Arc::new(Pacer::new(limits.qps.get(), limits.max_ban_wait)),
            in_flight: InFlight::new(
                limits.concurrency.map(crate::campaign::Concurrency::get),
                limits.max_concurrency.get(),
            ),
            stop: CancellationToken::new(),
            stats,
            limits,
            backoff,
            halt: Mutex::new(None),
            allowance,
            outage: Arc::new(Outage::new(run_id)),
            not_top_streak: AtomicU32::new(0),
            fed: CancellationToken::new(),
        }
    }

    /// The same, pacing with `pacer` and stopping with `stop`, which the run shares with its
    /// reconciliation queries.
    pub(super) fn sharing(mut self, pacer: Arc<Pacer>, stop: CancellationToken) -> Ctx<G> {
        self.pacer = pacer;
        self.stop = stop;
        self
    }

    pub(super) async fn send(&self, msg: Msg) -> Result<(), LedgerGone> {
        self.ledger.send(msg).await.map_err(|_| LedgerGone)
    }

    /// Records an attempt and the row's new state (made by the named constructors of
    /// [`Record`]).
    pub(super) async fn record(&self, record: Record) -> Result<(), LedgerGone> {
        self.send(Msg::Record(Box::new(record))).await
    }

    /// Stops the run for `reason` (the first reason wins).
    pub(super) fn halt(&self, reason: Halt) {
        let mut halt = self
            .halt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if halt.is_none() {
            tracing::debug!("halting: {reason}");
            *halt = Some(reason);
        }
        self.stop.cancel();
    }

    /// The reason the run halted, if it did (taken: asked once, at the end).
    pub(super) fn take_halt(&self) -> Option<Halt> {
        self.halt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Halts when permanent failures passed `max_failure_rate` of the finished rows (over this
    /// and earlier runs), or uncertain rows passed it among this run's finished rows, once at
    /// least `min_rows_for_halt` rows finished.
    pub(super) fn check_failure_rate(&self) {
        let (failed, finished) = self.stats.failure_tally();
        let limit = self.limits.max_failure_rate;
        if finished >= self.limits.min_rows_for_halt
            && finished > 0
            && failed as f64 > limit * finished as f64
        {
            self.halt(Halt::FailureRate {
                failed,
                finished,
                limit,
            });
        }
        let run = self.stats.snapshot();
        let finished = run.done();
        if finished >= self.limits.min_rows_for_halt
            && finished > 0
            && run.uncertain as f64 > limit * finished as f64
        {
            self.halt(Halt::UncertainRate {
                uncertain: run.uncertain,
                finished,
                limit,
            });
        }
    }

    /// Waits until rows may be marked in flight: the gateway is reachable and no flow-control
    /// pause is on.
    pub(super) async fn wait_open(&self) {
        self.outage.wait_up().await;
        self.pacer.wait_pause().await;
    }

    /// Keeps the count of answers in a row that were not TOP answers, and halts on
    /// [`NOT_TOP_STREAK`] of them. Failures to connect or to get an answer are not answers and
    /// leave the count alone.
    pub(super) fn watch_answer(&self, outcome: &Outcome) {
        let Some(error) = outcome.error() else {
            self.not_top_streak.store(0, Ordering::Relaxed);
            return;
        };
        let sub_code = error.sub_code.as_deref().unwrap_or_default();
        let ours = error.code.as_deref() == Some(TRANSPORT);
        let not_top = ours
            && (sub_code.starts_with("http-")
                || sub_code == "malformed-body"
                || sub_code == "html-page");
        if not_top {
            let streak = self.not_top_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if streak >= NOT_TOP_STREAK {
                self.halt(Halt::NotTop {
                    streak,
                    last: error.clone(),
                });
            }
        } else if !ours {
            self.not_top_streak.store(0, Ordering::Relaxed);
        }
    }
}

/// One permit of `ctx.in_flight`, taken out of the semaphore (`forget`) so that it can travel
/// with its row from the dispatcher to a worker; it goes back on drop.
pub(crate) struct Slot<G: Gateway> {
    ctx: Arc<Ctx<G>>,
}

impl<G: Gateway> Slot<G> {
    /// Takes charge of one permit the caller has already forgotten.
    pub(crate) fn adopt(ctx: &Arc<Ctx<G>>) -> Slot<G> {
        ctx.in_flight.taken();
        Slot { ctx: ctx.clone() }
    }
}

impl<G: Gateway> Drop for Slot<G> {
    fn drop(&mut self) {
        self.ctx.in_flight.release();
    }
}

/// Checks every half second that the state file is still the one the run has open; halts the
/// run at the first sign that it was deleted, replaced or truncated.
pub(super) async fn watch_state_file<G: Gateway>(ctx: Arc<Ctx<G>>, guard: Arc<StateGuard>) {
    let mut tick = tokio::time::interval(GUARD_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.stop.cancelled() => return,
        }
        if let Err(finding) = guard.check() {
            ctx.halt(Halt::LedgerLost(finding.to_owned()));
            return;
        }
    }
}
