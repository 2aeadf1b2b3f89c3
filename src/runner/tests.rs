//! The runner's rules, tested without HTTP or SQLite: a scripted [`Gateway`] answers each call
//! with the next outcome of its script, and the test plays the ledger thread (acks in-flight
//! marks, keeps the records). Retries, throttling, halts and the failure-rate rule are checked
//! on what the ledger was told.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::allowance::Allowance;
use super::backoff::Backoff;
use super::ctx::{Ctx, Slot};
use super::{Halt, worker};
use crate::campaign::{Limits, Qps};
use crate::domain::LiveCounters;
use crate::ledger::writer::{Job, Msg, Record, Settle};
use crate::top::{Attempt, Gateway, OnWrite, Outcome, PlatformError};

/// Answers calls from a script, in order; probes from another (answered once it runs out).
struct Scripted {
    script: Mutex<VecDeque<Outcome>>,
    probes: Mutex<VecDeque<bool>>,
}

impl Gateway for Scripted {
    type Request = ();

    fn prepare(&self, _payload: &str) {}

    async fn send(&self, (): (), on_write: OnWrite) -> Attempt {
        on_write();
        let outcome = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .expect("a call beyond the script");
        Attempt {
            outcome,
            top_request_id: Some("top-1".to_owned()),
            latency: Duration::ZERO,
        }
    }

    async fn probe(&self) -> bool {
        self.probes.lock().unwrap().pop_front().unwrap_or(true)
    }
}

fn error(code: &str) -> PlatformError {
    PlatformError::new(Some(code), Some("isp.x"), "no")
}

fn issued() -> Outcome {
    Outcome::Issued {
        issued_id: "X1".to_owned(),
        detail: "{}".to_owned(),
    }
}

/// A run's context around `script`, and the records the ledger was sent.
fn context(script: Vec<Outcome>, limits: Limits) -> (Arc<Ctx<Scripted>>, Arc<Mutex<Vec<Record>>>) {
    let (ctx, records, _outages) = context_probed(script, Vec::new(), limits);
    (ctx, records)
}

/// Outages the ledger was told about: `began`, then how each ended.
type Outages = Arc<Mutex<Vec<&'static str>>>;

/// The records the ledger was sent.
type Records = Arc<Mutex<Vec<Record>>>;

/// [`context`] with a script of probe answers, and the outages recorded.
fn context_probed(
    script: Vec<Outcome>,
    probes: Vec<bool>,
    limits: Limits,
) -> (Arc<Ctx<Scripted>>, Records, Outages) {
    let (tx, mut rx) = mpsc::channel(64);
    let records = Arc::new(Mutex::new(Vec::new()));
    let outages = Outages::default();
    let (kept, told) = (records.clone(), outages.clone());
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::InFlight { ack, .. } => drop(ack.send(())),
                Msg::Record(record) => kept.lock().unwrap().push(*record),
                Msg::NextPending { reply, .. } => drop(reply.send(Vec::new())),
                Msg::OutageBegan { .. } => told.lock().unwrap().push("began"),
                Msg::OutageEnded { ending, .. } => told.lock().unwrap().push(ending),
            }
        }
    });
    let ctx = Ctx::new(
        1,
        Scripted {
            script: Mutex::new(script.into()),
            probes: Mutex::new(probes.into()),
        },
        tx,
        limits,
        Arc::new(LiveCounters::default()),
        Backoff::new(Duration::from_millis(1), Duration::from_millis(1), Some(7)),
        Allowance::new(None, None),
    );
    (Arc::new(ctx), records, outages)
}

/// Limits that never hold a test up: no pacing to speak of, short bans.
fn limits() -> Limits {
    Limits {
        qps: Qps::new(1_000_000.0).unwrap(),
        max_attempts: 3,
        max_ban_wait: Duration::from_secs(1),
        min_rows_for_halt: 1_000,
        ..Limits::default()
    }
}

fn job(entry_id: i64) -> Job {
    Job {
        entry_id,
        row: entry_id,
        payload: "{}".to_owned(),
        request_id: None,
        attempts: 0,
    }
}

/// Sends row `entry_id` as the dispatcher would: one permit taken, the mark assumed durable.
async fn send(ctx: &Arc<Ctx<Scripted>>, entry_id: i64) -> bool {
    ctx.in_flight.acquire().await.unwrap().forget();
    let refused = worker::process(ctx, job(entry_id), Slot::adopt(ctx))
        .await
        .unwrap();
    settled(ctx).await;
    refused
}

/// Waits until the ledger has taken every message sent so far: it answers in order, so the
/// reply to a query comes after every record before it.
async fn settled(ctx: &Ctx<Scripted>) {
    let (reply, answered) = tokio::sync::oneshot::channel();
    let query = Msg::NextPending {
        generation: 0,
        after_row: 0,
        limit: 1,
        reply,
    };
    ctx.send(query).await.unwrap();
    answered.await.unwrap();
}

/// `(attempt number, counted, settled as)` of each record.
fn summary(records: &Mutex<Vec<Record>>) -> Vec<(u32, bool, &'static str)> {
    records
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let state = match &r.settle {
                Settle::Pending(_) => "pending",
                Settle::Issued { .. } => "issued",
                Settle::Failed(_) => "failed",
                Settle::Uncertain(_) => "uncertain",
            };
            (
                r.attempt.as_ref().map_or(0, |a| a.attempt),
                r.counted,
                state,
            )
        })
        .collect()
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_row_is_issued() {
    let script = vec![
        Outcome::Transient(error("15")),
        Outcome::Transient(error("15")),
        issued(),
    ];
    let (ctx, records) = context(script, limits());
    assert!(!send(&ctx, 1).await);
    assert_eq!(
        summary(&records),
        [
            (1, true, "pending"),
            (2, true, "pending"),
            (3, true, "issued")
        ]
    );
    let counters = ctx.stats.snapshot();
    assert_eq!(
        (counters.sent, counters.retries, counters.issued),
        (3, 2, 1)
    );
    assert!(records.lock().unwrap()[2].finished_at.is_some());
    assert!(ctx.take_halt().is_none());
}

#[tokio::test]
async fn retries_run_out_after_max_attempts_and_the_row_fails() {
    let script = vec![Outcome::Transient(error("15")); 3];
    let (ctx, records) = context(script, limits());
    assert!(send(&ctx, 1).await, "a failed row is reported as refused");
    assert_eq!(
        summary(&records),
        [
            (1, true, "pending"),
            (2, true, "pending"),
            (3, true, "failed")
        ]
    );
    let last = &records.lock().unwrap()[2];
    let Settle::Failed(e) = &last.settle else {
        panic!("{:?}", last.settle)
    };
    assert!(
        e.message.starts_with("retries exhausted after 3 attempts"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_throttle_slows_the_run_and_does_not_count_as_an_attempt() {
    let script = vec![
        Outcome::Throttled {
            ban: Some(Duration::from_millis(1)),
            error: error("7"),
        },
        issued(),
    ];
    let (ctx, records) = context(script, limits());
    assert!(!send(&ctx, 1).await);
    assert_eq!(
        summary(&records),
        [(1, false, "pending"), (1, true, "issued")]
    );
    assert!(ctx.pacer.rate() < 1_000_000.0, "the pace was not halved");
    assert_eq!(ctx.stats.snapshot().throttle_events, 1);
    assert!(ctx.take_halt().is_none());
}

#[tokio::test]
async fn a_ban_longer_than_max_ban_wait_halts_with_the_row_pending() {
    let script = vec![Outcome::Throttled {
        ban: Some(Duration::from_secs(3_600)),
        error: error("7"),
    }];
    let (ctx, records) = context(script, limits());
    assert!(!send(&ctx, 1).await);
    assert_eq!(summary(&records), [(1, false, "pending")]);
    assert!(matches!(ctx.take_halt(), Some(Halt::LongBan { .. })));
    assert!(ctx.stop.is_cancelled());
}

#[tokio::test]
async fn a_fatal_answer_halts_the_run_and_leaves_the_row_pending() {
    let (ctx, records) = context(vec![Outcome::Fatal(error("25"))], limits());
    assert!(!send(&ctx, 1).await);
    assert_eq!(summary(&records), [(1, false, "pending")]);
    assert!(matches!(ctx.take_halt(), Some(Halt::Fatal(_))));
}

#[tokio::test]
async fn permanent_failures_over_the_rate_halt_once_enough_rows_finished() {
    let limits = Limits {
        max_failure_rate: 0.5,
        min_rows_for_halt: 3,
        ..limits()
    };
    let script = vec![
        issued(),
        Outcome::Permanent(error("15")),
        Outcome::Permanent(error("15")),
    ];
    let (ctx, _records) = context(script, limits);
    assert!(!send(&ctx, 1).await);
    assert!(send(&ctx, 2).await);
    // Two rows finished, one failed: under the minimum, no halt yet.
    assert!(!ctx.stop.is_cancelled());
    assert!(send(&ctx, 3).await);
    match ctx.take_halt() {
        Some(Halt::FailureRate {
            failed, finished, ..
        }) => assert_eq!((failed, finished), (2, 3)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_row_handed_out_after_a_stop_goes_back_unsent() {
    let (ctx, records) = context(Vec::new(), limits());
    ctx.stop.cancel();
    assert!(!send(&ctx, 1).await);
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 1);
    assert!(records[0].attempt.is_none());
    assert!(matches!(records[0].settle, Settle::Pending(None)));
    assert_eq!(ctx.stats.snapshot().sent, 0);
}

fn unreachable() -> Outcome {
    Outcome::Unreachable(PlatformError::transport("connect", "cannot connect"))
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_gateway_pauses_the_row_at_no_cost_until_a_probe_answers() {
    let (ctx, records, outages) = context_probed(
        vec![unreachable(), issued()],
        vec![false, false, true],
        limits(),
    );
    assert!(!send(&ctx, 1).await);
    assert_eq!(
        summary(&records),
        [(1, false, "pending"), (1, true, "issued")]
    );
    assert!(ctx.take_halt().is_none());
    assert_eq!(*outages.lock().unwrap(), ["began", "recovered"]);
    assert!(ctx.outage.note().is_none(), "the outage is over");
    assert_eq!(ctx.stats.snapshot().failed, 0);
}

#[tokio::test(start_paused = true)]
async fn an_outage_longer_than_max_outage_halts_with_the_row_pending() {
    let limits = Limits {
        max_outage: Duration::from_secs(45),
        ..limits()
    };
    let (ctx, records, outages) = context_probed(vec![unreachable()], vec![false; 100], limits);
    let started = tokio::time::Instant::now();
    assert!(!send(&ctx, 1).await);
    // Probes at about 1, 3, 7, 15, 31 s, then the last one at the 45 s limit.
    assert_eq!(started.elapsed().as_secs(), 45);
    assert_eq!(summary(&records), [(1, false, "pending")]);
    assert!(matches!(ctx.take_halt(), Some(Halt::Outage { .. })));
    assert_eq!(*outages.lock().unwrap(), ["began", "halted"]);
}

#[tokio::test]
async fn uncertain_rows_over_the_rate_halt_once_enough_rows_finished() {
    let limits = Limits {
        max_failure_rate: 0.5,
        min_rows_for_halt: 2,
        ..limits()
    };
    let lost = || Outcome::Unknown(PlatformError::transport("timeout", "no answer in time"));
    let (ctx, _records) = context(vec![issued(), lost(), lost()], limits);
    assert!(!send(&ctx, 1).await);
    assert!(!send(&ctx, 2).await);
    assert!(!ctx.stop.is_cancelled(), "one of two is not more than half");
    assert!(!send(&ctx, 3).await);
    match ctx.take_halt().map(|h| h.with_final_figures(&ctx.stats)) {
        Some(Halt::UncertainRate {
            uncertain,
            finished,
            ..
        }) => assert_eq!((uncertain, finished), (2, 3)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_streak_of_answers_that_are_not_top_answers_halts_and_a_top_answer_resets_it() {
    let not_top = || Outcome::Transient(PlatformError::transport("http-502", "HTTP 502"));
    let mut script = vec![not_top(); 19];
    script.push(issued());
    script.extend(vec![not_top(); 20]);
    let limits = Limits {
        max_attempts: 1,
        ..limits()
    };
    let (ctx, _records) = context(script, limits);
    for row in 1..=20 {
        send(&ctx, row).await;
    }
    assert!(ctx.take_halt().is_none(), "19 in a row, then a TOP answer");
    for row in 21..=40 {
        send(&ctx, row).await;
    }
    assert!(matches!(
        ctx.take_halt(),
        Some(Halt::NotTop { streak: 20, .. })
    ));
}
