//! The gateway pipeline: one request in, one [`Reply`] out. Parsing, checks (the signature
//! included) and rendering run outside the lock; the shared state (counters, flow control, the
//! books) is locked once per request and only briefly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::Utc;

use super::SimConfig;
use super::answer::{ErrorAnswer, Reply};
use super::check::{self, Params};
use super::faults::FlowControl;
use super::issue::Book;
use super::shapes;
use super::stats::{SimStats, Stats};

/// The simulated gateway: its configuration and its state.
#[derive(Debug)]
pub(crate) struct Sim {
    config: SimConfig,
    state: Mutex<State>,
    next_request: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    stats: Stats,
    flow: FlowControl,
    book: Book,
}

impl Sim {
    pub(crate) fn new(config: SimConfig) -> Self {
        Sim {
            config,
            state: Mutex::default(),
            next_request: AtomicU64::new(1),
        }
    }

    /// Answers one request to the gateway path. `action_allowed` is false for HTTP methods
    /// other than GET and POST (code 9).
    pub(crate) fn handle(&self, action_allowed: bool, query: Option<&str>, body: &[u8]) -> Reply {
        let arrived = Instant::now();
        let request_id = format!(
            "sim{:09}",
            self.next_request.fetch_add(1, Ordering::Relaxed)
        );
        let now = Utc::now();
        let faults = &self.config.faults;
        let checked = if action_allowed {
            check::request(&self.config, &Params::parse(query, body), now)
        } else {
            Err(ErrorAnswer::new(9, "Http Action Not Allowed"))
        };

        let mut state = self.lock();
        state.stats.arrive(arrived);
        let call = match checked {
            Ok(call) => call,
            Err(error) => {
                if error.rejects_signature() {
                    state.stats.rejected_signature();
                }
                state.stats.answered(&error.bucket());
                drop(state);
                return self.delayed(Reply::json(error.render(&request_id)));
            }
        };
        if let Err(error) = state.flow.admit(faults, arrived, now.timestamp()) {
            state.stats.throttled();
            state.stats.answered(&error.bucket());
            drop(state);
            return self.delayed(Reply::json(error.render(&request_id)));
        }
        let served = state.book.serve(&call, faults, self.config.seed);
        state.stats.answered(&served.bucket());
        if served.replayed {
            state.stats.replayed();
        }
        if served.withhold {
            state.stats.withheld();
        }
        drop(state);

        let mut reply = shapes::render(&served.answer, &call, &request_id, now);
        if served.withhold {
            reply.delay += faults.withhold;
        }
        self.delayed(reply)
    }

    fn delayed(&self, mut reply: Reply) -> Reply {
        reply.delay += self.config.faults.latency;
        reply
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
    fn counts_issuances_duplicates_and_outcomes() {
        let sim = Sim::new(SimConfig::default());
        for open_id in ["A", "B", "A", "REFUSE1"] {
            let reply = sim.handle(true, None, tmall(open_id).as_bytes());
            assert_eq!(reply.status, 200);
        }
        assert!(sim.handle(false, None, b"").body.contains(r#""code":9"#));
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
                let v: Value =
                    serde_json::from_str(&sim.handle(true, None, tmall(id).as_bytes()).body)
                        .unwrap();
                let inner = v.as_object().unwrap().values().next().unwrap();
                inner["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
    }
}
