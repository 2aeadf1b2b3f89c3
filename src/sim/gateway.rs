//! The gateway pipeline: one request in, one [`Reply`] out. Parsing, checks (the signature
//! included) and rendering run outside the lock; the shared state (counters, flow control, the
//! books) is locked once per request and only briefly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::answer::{ErrorAnswer, Reply};
use super::call::{Call, Op};
use super::check;
use super::config::SimConfig;
use super::flow::{FlowControl, api_limit};
use super::ids::Ids;
use super::issue::{Book, Moment};
use super::params::Params;
use super::query;
use super::shapes;
use super::stats::{SimStats, Stats};

/// The simulated gateway: its configuration and its state.
#[derive(Debug)]
pub(crate) struct Sim {
    config: SimConfig,
    ids: Ids,
    state: Mutex<State>,
    next_request: AtomicU64,
}

#[derive(Debug)]
struct State {
    stats: Stats,
    flow: FlowControl,
    book: Book,
    /// Queries refused so far by `throttle_queries`.
    queries_throttled: u64,
    /// The simulator is stopping: its counters and book are final, and calls still arriving
    /// on open connections get an unavailable answer (nothing is issued or counted).
    closed: bool,
}

impl Sim {
    pub(crate) fn new(config: SimConfig) -> Self {
        let ids = Ids::random();
        let started = Moment {
            wall: gateway_clock(&config),
            mono: Instant::now(),
        };
        let book = Book::new(ids, &config.preissued, started);
        Sim {
            state: Mutex::new(State {
                stats: Stats::default(),
                flow: FlowControl::default(),
                book,
                queries_throttled: 0,
                closed: false,
            }),
            config,
            ids,
            next_request: AtomicU64::new(1),
        }
    }

    /// Answers one request to the gateway path that `arrived` then (its bytes reached the
    /// socket; the one-second windows of the counters and flow control count it from then).
    /// `action_allowed` is false for HTTP methods other than GET and POST (code 9).
    pub(crate) fn handle(
        &self,
        arrived: Instant,
        action_allowed: bool,
        query: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let request_id = self.ids.request_id(request);
        let slow = self.config.faults.slow_request(self.config.seed, request);
        let now = gateway_clock(&self.config);
        let params = Params::parse(query, body);
        let checked = if action_allowed {
            check::request(&self.config, &params, now)
        } else {
            Err(ErrorAnswer::new(9, "Http Action Not Allowed"))
        };

        let mut state = self.lock();
        if state.closed {
            drop(state);
            let error = ErrorAnswer::remote(
                "isp.top-remote-service-unavailable",
                "the simulator is stopping",
            );
            return Reply::json(error.render(&request_id));
        }
        state.stats.arrive(arrived, params.get("method"));
        let call = match checked {
            Ok(call) => call,
            Err(error) => {
                if error.rejects_signature() {
                    state.stats.rejected_signature();
                }
                return self.refuse(state, &error, &request_id, slow);
            }
        };
        if let Err(error) = self.admit(&mut state, &call, arrived, now) {
            return self.refuse(state, &error, &request_id, slow);
        }
        let at = Moment {
            wall: now,
            mono: arrived,
        };
        match &call.op {
            Op::Issue(issue) => {
                let faults = &self.config.faults;
                let served =
                    state
                        .book
                        .serve(issue, faults, self.config.seed, at, self.config.query_lag);
                state.stats.answered(&served.bucket());
                if served.replayed {
                    state.stats.replayed();
                }
                if served.withhold {
                    state.stats.withheld();
                }
                drop(state);
                let mut reply = shapes::render(&served.answer, &call, &request_id, self.ids);
                if served.withhold {
                    reply.delay += faults.withhold;
                }
                reply.delay += faults.latency(served.slow);
                reply
            }
            Op::Query(asked) => {
                let page = state.book.certificates().query(asked, arrived);
                state.stats.answered("certificate-query");
                drop(state);
                self.success(&call, query::render(&page), &request_id, slow)
            }
            Op::TimeGet => {
                state.stats.answered("time-get");
                drop(state);
                self.success(&call, shapes::time_get(now), &request_id, slow)
            }
            Op::UserSellerGet { fields } => {
                state.stats.answered("user-seller-get");
                drop(state);
                self.success(&call, shapes::user_seller_get(fields), &request_id, slow)
            }
        }
    }

    /// Permission and flow control for a checked call: `--deny-query`, `--throttle-queries`,
    /// then the app's limits.
    fn admit(
        &self,
        state: &mut State,
        call: &Call,
        arrived: Instant,
        now: DateTime<Utc>,
    ) -> Result<(), ErrorAnswer> {
        if matches!(call.op, Op::Query(_)) {
            if self.config.deny_query {
                return Err(ErrorAnswer::new(11, "Insufficient isv permissions")
                    .with_sub_code("isv.permission-api-package-not-allowed")
                    .with_sub_msg(
                        "this app has no permission to call tmall.nrt.certificate.query",
                    ));
            }
            if state.queries_throttled < self.config.throttle_queries {
                state.queries_throttled += 1;
                state.stats.throttled();
                return Err(api_limit(self.config.faults.ban_seconds));
            }
        }
        state
            .flow
            .admit(&self.config.faults, arrived, now.timestamp())
            .inspect_err(|_| state.stats.throttled())
    }

    fn refuse(
        &self,
        mut state: MutexGuard<'_, State>,
        error: &ErrorAnswer,
        id: &str,
        slow: bool,
    ) -> Reply {
        state.stats.answered(&error.bucket());
        drop(state);
        self.delayed(Reply::json(error.render(id)), slow)
    }

    fn success(
        &self,
        call: &Call,
        fields: serde_json::Map<String, serde_json::Value>,
        id: &str,
        slow: bool,
    ) -> Reply {
        self.delayed(shapes::success(call, fields, id), slow)
    }

    /// Adds the answer's latency: the median, or the tail's when `slow`.
    fn delayed(&self, mut reply: Reply, slow: bool) -> Reply {
        reply.delay += self.config.faults.latency(slow);
        reply
    }

    /// Stops issuing: from now on the counters and the book stay as they are, whatever
    /// connections are still open (a stopped gateway issues nothing more).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// The book to save for the next start.
    pub(crate) fn saved_book(&self) -> super::saved::SavedBook {
        self.lock().book.saved()
    }

    /// How many times the book changed (an issue, a duplicate), for saving only a changed one.
    pub(crate) fn book_changes(&self) -> u64 {
        self.lock().book.issued()
    }

    /// Takes back a book saved by an earlier start.
    pub(crate) fn restore_book(&self, saved: super::saved::SavedBook) {
        self.lock().book.restore(saved, Instant::now());
    }

    /// The counters as `/sim/stats` shows them.
    pub(crate) fn stats(&self) -> SimStats {
        let state = self.lock();
        let mut stats = SimStats {
            issued: state.book.issued(),
            duplicates: state.book.duplicates(),
            ..state.stats.snapshot()
        };
        let by_identity = state.book.issued_by_identity();
        drop(state);
        // Built after unlocking: with millions of identities this takes a while.
        stats.issued_by_identity = by_identity
            .into_iter()
            .map(|(identity, n)| (identity.to_string(), u64::from(n)))
            .collect();
        stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panicked holder leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The gateway's wall clock: the host's, moved by the configured offset.
fn gateway_clock(config: &SimConfig) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(config.clock_offset_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::SignMethod;
    use crate::top::params::{Credentials, signed_form, timestamp_now};
    use serde_json::Value;

    fn body(method: &str, object: (&str, &str)) -> String {
        let creds = Credentials {
            app_key: "10000001",
            secret: "sim-secret",
            session: Some("sim-session"),
            sign_method: SignMethod::HmacSha256,
        };
        serde_urlencoded::to_string(signed_form(method, object, &creds, &timestamp_now())).unwrap()
    }

    fn tmall(open_id: &str) -> String {
        body(
            "tmall.nrt.certificate.send",
            (
                "nrt_certificate_send_d_t_o",
                &format!(r#"{{"channel":7,"open_id":"{open_id}","out_id":1,"biz_code":"23"}}"#),
            ),
        )
    }

    #[test]
    fn a_closed_simulator_issues_and_counts_nothing_more() {
        let sim = Sim::new(SimConfig::default());
        sim.handle(Instant::now(), true, None, tmall("A").as_bytes());
        sim.close();
        let reply = sim.handle(Instant::now(), true, None, tmall("B").as_bytes());
        assert!(
            reply
                .body
                .contains(r#""sub_code":"isp.top-remote-service-unavailable""#),
            "{}",
            reply.body
        );
        let stats = sim.stats();
        assert_eq!((stats.calls, stats.issued), (1, 1));
        assert_eq!(sim.saved_book().issued, 1);
    }

    #[test]
    fn counts_issuances_duplicates_and_outcomes() {
        let sim = Sim::new(SimConfig::default());
        for open_id in ["A", "B", "A", "REFUSE1"] {
            let reply = sim.handle(Instant::now(), true, None, tmall(open_id).as_bytes());
            assert_eq!(reply.status, 200);
        }
        assert!(
            sim.handle(Instant::now(), false, None, b"")
                .body
                .contains(r#""code":9"#)
        );
        let stats = sim.stats();
        assert_eq!(stats.calls, 5);
        assert_eq!(stats.issued, 3);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.issued_by_identity.len(), 2);
        assert_eq!(stats.calls_by_outcome["issued"], 3);
        assert_eq!(stats.calls_by_outcome["error:15:isv.user-not-qualified"], 1);
        assert_eq!(stats.calls_by_outcome.values().sum::<u64>(), stats.calls);
    }

    #[test]
    fn every_answer_carries_a_distinct_request_id() {
        let sim = Sim::new(SimConfig::default());
        let ids: Vec<String> = ["A", "REFUSE"]
            .iter()
            .map(|id| {
                let v: Value = serde_json::from_str(
                    &sim.handle(Instant::now(), true, None, tmall(id).as_bytes())
                        .body,
                )
                .unwrap();
                let inner = v.as_object().unwrap().values().next().unwrap();
                inner["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
    }
}
