//! Issuing: what a valid call does on the simulated platform. Certificates (booked for
//! queries) and right instances, idempotency on the API's key (alsc `request_id`), the data
//! triggers that make business outcomes reproducible, and the per-identity counts behind
//! `issued_by_identity` and `duplicates`.
//!
//! "First call" in a trigger means the identity's first call that reaches the business logic
//! (early faults do not count), so triggers are deterministic under any concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::answer::ErrorAnswer;
use super::call::IssueCall;
use super::faults::{EarlyFault, Faults, timeout_subcode};
use super::ids::Ids;
use super::query::{Certificate, Certificates, Preissued};
use super::saved::{SavedBook, SavedCertificate};

const TMALL: &str = "tmall.nrt.certificate.send";
const ALSC: &str = "alibaba.alsc.right.decisionsend";

/// The status of an alsc answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlscStatus {
    Success,
    Fail { can_retry: bool },
    Sending,
    NoDecisionItem,
}

/// An alsc answer: its status, the serial its ids derive from, and how many rights it grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AlscResult {
    pub status: AlscStatus,
    pub serial: u64,
    pub tickets: u16,
}

/// What the platform answers to one call, before rendering.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// A certificate was issued.
    TmallIssued(Certificate),
    /// The tmall answer with a non-`"0"` `result.code` and no model.
    TmallCode {
        code: &'static str,
        message: &'static str,
    },
    Alsc(AlscResult),
    Error(ErrorAnswer),
    Http502,
    Malformed(usize),
}

/// The outcome of one valid call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Served {
    pub answer: Answer,
    pub issued: bool,
    pub replayed: bool,
    pub withhold: bool,
    /// The answer takes the tail latency.
    pub slow: bool,
}

impl Served {
    fn early(fault: EarlyFault, slow: bool) -> Self {
        let answer = match fault {
            EarlyFault::Http502 => Answer::Http502,
            EarlyFault::Malformed(kind) => Answer::Malformed(kind),
            EarlyFault::Isp(error) => Answer::Error(error),
        };
        Served {
            answer,
            issued: false,
            replayed: false,
            withhold: false,
            slow,
        }
    }

    /// The `calls_by_outcome` bucket.
    pub(crate) fn bucket(&self) -> String {
        match &self.answer {
            Answer::Error(error) => error.bucket(),
            Answer::Http502 => "http-502".to_owned(),
            Answer::Malformed(_) => "malformed".to_owned(),
            _ if self.replayed => "replayed".to_owned(),
            Answer::TmallIssued(_) => "issued".to_owned(),
            Answer::TmallCode { code, .. } => format!("tmall:code:{code}"),
            Answer::Alsc(result) => match result.status {
                AlscStatus::Success => "issued".to_owned(),
                AlscStatus::Fail { can_retry: false } => "alsc:FAIL".to_owned(),
                AlscStatus::Fail { can_retry: true } => "alsc:FAIL:can_retry".to_owned(),
                AlscStatus::Sending => "alsc:SENDING".to_owned(),
                AlscStatus::NoDecisionItem => "alsc:NO_DECISION_ITEM".to_owned(),
            },
        }
    }
}

/// What the business logic decided for one call, before ids are assigned.
enum Verdict {
    Issue { timeout: bool, withhold: bool },
    Refuse(ErrorAnswer),
    TmallCode(&'static str, &'static str),
    AlscStatus { status: AlscStatus, stored: bool },
}

/// `tmall.nrt.certificate.send` triggers, by `open_id` prefix.
fn tmall_verdict(open_id: &str, nth: u32) -> Verdict {
    let first = nth == 1;
    if open_id.starts_with("REFUSE") {
        Verdict::Refuse(ErrorAnswer::remote(
            "isv.user-not-qualified",
            "该用户不符合领取条件",
        ))
    } else if open_id.starts_with("NOSTOCK") {
        Verdict::TmallCode("1", "凭证库存不足")
    } else if open_id.starts_with("FLAKY") && first {
        Verdict::Refuse(ErrorAnswer::remote(
            "isp.top-remote-service-unavailable",
            "服务暂时不可用",
        ))
    } else {
        Verdict::Issue {
            timeout: first && open_id.starts_with("LOST"),
            withhold: first && open_id.starts_with("SLOW"),
        }
    }
}

/// `alibaba.alsc.right.decisionsend` triggers, by the last four digits of `alipay_id`.
fn alsc_verdict(alipay_id: &str, nth: u32) -> Verdict {
    let first = nth == 1;
    let status = |status, stored| Verdict::AlscStatus { status, stored };
    match alipay_id.get(alipay_id.len().saturating_sub(4)..) {
        Some("9901") => status(AlscStatus::NoDecisionItem, true),
        Some("9902") => status(AlscStatus::Fail { can_retry: false }, true),
        Some("9903") if first => status(AlscStatus::Fail { can_retry: true }, false),
        Some("9904") if first => status(AlscStatus::Sending, false),
        Some("9905") => Verdict::Refuse(ErrorAnswer::remote(
            "isv.user-not-qualified",
            "the user is not eligible for this right",
        )),
        Some("9906") if first => Verdict::Issue {
            timeout: true,
            withhold: false,
        },
        Some("9907") if first => Verdict::Issue {
            timeout: false,
            withhold: true,
        },
        _ => Verdict::Issue {
            timeout: false,
            withhold: false,
        },
    }
}

#[derive(Debug, Default)]
struct Counters {
    calls: u32,
    business_calls: u32,
    issued: u32,
}

/// A moment on both clocks: the gateway's wall clock (skewed as configured) and the monotonic one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moment {
    pub wall: DateTime<Utc>,
    pub mono: Instant,
}

/// The simulated platform's books: per-identity counters, stored idempotent answers, the
/// certificates for queries, totals.
#[derive(Debug)]
pub(crate) struct Book {
    ids: Ids,
    identities: HashMap<Arc<str>, Counters>,
    /// Final answers by idempotency key value, replayed to a repeated key.
    stored: HashMap<String, Answer>,
    certificates: Certificates,
    issued: u64,
    duplicates: u64,
    serial: u64,
    /// The `--preissued` certificates took the first serials: they are not saved, since every
    /// start adds them anew.
    preissued: u64,
}

impl Book {
    /// Empty books in the id space `ids`, holding the certificates issued before `started`.
    pub(crate) fn new(ids: Ids, preissued: &[Preissued], started: Moment) -> Self {
        let mut book = Book {
            ids,
            identities: HashMap::new(),
            stored: HashMap::new(),
            certificates: Certificates::default(),
            issued: 0,
            duplicates: 0,
            serial: 0,
            preissued: preissued.len() as u64,
        };
        for p in preissued {
            book.serial += 1;
            let age = chrono::Duration::from_std(p.age).unwrap_or_default();
            let certificate = Certificate {
                code: ids.certificate_code(book.serial),
                open_id: p.open_id.clone(),
                out_id: p.out_id.into(),
                channel: p.channel.into(),
                biz_code: Some(p.biz_code.clone()),
                created: started.wall - age,
            };
            book.certificates.add(certificate, started.mono);
        }
        book
    }

    /// What a later start of the simulator restores (see [`Book::restore`]).
    pub(crate) fn saved(&self) -> SavedBook {
        let preissued: std::collections::HashSet<String> = (1..=self.preissued)
            .map(|serial| self.ids.certificate_code(serial))
            .collect();
        SavedBook {
            certificates: self
                .certificates
                .iter()
                .filter(|c| !preissued.contains(&c.code))
                .map(|c| SavedCertificate {
                    code: c.code.clone(),
                    open_id: c.open_id.clone(),
                    out_id: c.out_id.clone(),
                    channel: c.channel.clone(),
                    biz_code: c.biz_code.clone(),
                    created_ms: c.created.timestamp_millis(),
                })
                .collect(),
            issued_by_identity: self
                .identities
                .iter()
                .filter(|(_, c)| c.issued > 0)
                .map(|(identity, c)| (identity.to_string(), c.issued))
                .collect(),
            issued: self.issued,
            duplicates: self.duplicates,
        }
    }

    /// Takes back what an earlier run saved: its certificates (visible to queries at once) and
    /// its issue counts.
    pub(crate) fn restore(&mut self, saved: SavedBook, now: Instant) {
        for c in saved.certificates {
            let certificate = Certificate {
                code: c.code,
                open_id: c.open_id,
                out_id: c.out_id,
                channel: c.channel,
                biz_code: c.biz_code,
                created: DateTime::from_timestamp_millis(c.created_ms).unwrap_or_default(),
            };
            self.certificates.add(certificate, now);
        }
        for (identity, issued) in saved.issued_by_identity {
            self.identities.entry(identity.into()).or_default().issued += issued;
        }
        self.issued += saved.issued;
        self.duplicates += saved.duplicates;
    }

    /// The certificates, for queries.
    pub(crate) fn certificates(&self) -> &Certificates {
        &self.certificates
    }

    /// Processes one valid call at `at`: faults, idempotent replay, triggers, issuance. A
    /// certificate issued now shows in queries after `query_lag`.
    pub(crate) fn serve(
        &mut self,
        call: &IssueCall,
        faults: &Faults,
        seed: u64,
        at: Moment,
        query_lag: Duration,
    ) -> Served {
        let counters = self
            .identities
            .entry(Arc::clone(&call.identity))
            .or_default();
        counters.calls += 1;
        let plan = faults.plan(seed, &call.identity, counters.calls);
        if let Some(fault) = plan.early {
            return Served::early(fault, plan.slow);
        }
        counters.business_calls += 1;
        let nth = counters.business_calls;
        let key = call.idempotency_key();

        let mut served = Served {
            answer: Answer::Http502,
            issued: false,
            replayed: false,
            withhold: plan.withhold,
            slow: plan.slow,
        };
        let mut timeout = plan.timeout_subcode;
        if let Some(stored) = key.and_then(|k| self.stored.get(k)) {
            served.answer = stored.clone();
            served.replayed = true;
        } else {
            let verdict = match call.api.method {
                TMALL => tmall_verdict(call.recipient(), nth),
                ALSC => alsc_verdict(call.recipient(), nth),
                _ => Verdict::Refuse(
                    ErrorAnswer::new(22, "Invalid method")
                        .with_sub_msg("the simulator has no business logic for this API"),
                ),
            };
            self.serial += 1;
            let serial = self.serial;
            let (answer, store) = match verdict {
                Verdict::Issue {
                    timeout: forced_timeout,
                    withhold,
                } => {
                    timeout |= forced_timeout;
                    served.withhold |= withhold;
                    served.issued = true;
                    counters.issued += 1;
                    if counters.issued == 2 {
                        self.duplicates += 1;
                    }
                    self.issued += 1;
                    let answer = if call.api.method == TMALL {
                        let certificate = Certificate {
                            code: self.ids.certificate_code(serial),
                            open_id: call.recipient().to_owned(),
                            out_id: call.object.get("out_id").cloned().unwrap_or_default(),
                            channel: call.object.get("channel").cloned().unwrap_or_default(),
                            biz_code: call.text("biz_code").map(str::to_owned),
                            created: at.wall,
                        };
                        self.certificates
                            .add(certificate.clone(), at.mono + query_lag);
                        Answer::TmallIssued(certificate)
                    } else {
                        Answer::Alsc(AlscResult {
                            status: AlscStatus::Success,
                            serial,
                            tickets: ticket_count(&call.object),
                        })
                    };
                    (answer, true)
                }
                Verdict::Refuse(error) => (Answer::Error(error), false),
                Verdict::TmallCode(code, message) => (Answer::TmallCode { code, message }, false),
                Verdict::AlscStatus { status, stored } => (
                    Answer::Alsc(AlscResult {
                        status,
                        serial,
                        tickets: 0,
                    }),
                    stored,
                ),
            };
            if let Some(key) = key.filter(|_| store) {
                self.stored.insert(key.to_owned(), answer.clone());
            }
            served.answer = answer;
        }
        if timeout {
            served.answer = Answer::Error(timeout_subcode());
        }
        served
    }

    pub(crate) fn issued(&self) -> u64 {
        self.issued
    }

    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Issuances per identity, cheap to take under a lock (the identities are shared).
    pub(crate) fn issued_by_identity(&self) -> Vec<(Arc<str>, u32)> {
        self.identities
            .iter()
            .filter(|(_, c)| c.issued > 0)
            .map(|(identity, c)| (Arc::clone(identity), c.issued))
            .collect()
    }
}

/// One right per entry of `right_act_list`, else of `act_codes`, else one; at most 20.
fn ticket_count(object: &Map<String, Value>) -> u16 {
    let len = |name| object.get(name).and_then(Value::as_array).map(Vec::len);
    let n = len("right_act_list")
        .filter(|n| *n > 0)
        .or(len("act_codes"))
        .unwrap_or(1);
    n.clamp(1, 20) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_change_after_the_first_business_call() {
        assert!(matches!(
            tmall_verdict("FLAKY1", 1),
            Verdict::Refuse(ErrorAnswer {
                sub_code: Some("isp.top-remote-service-unavailable"),
                ..
            })
        ));
        assert!(matches!(
            tmall_verdict("FLAKY1", 2),
            Verdict::Issue {
                timeout: false,
                withhold: false
            }
        ));
        assert!(matches!(
            alsc_verdict("2088000000009904", 1),
            Verdict::AlscStatus {
                status: AlscStatus::Sending,
                stored: false
            }
        ));
        assert!(matches!(
            alsc_verdict("2088000000009904", 2),
            Verdict::Issue { .. }
        ));
        assert!(matches!(
            alsc_verdict("2088000000009901", 5),
            Verdict::AlscStatus {
                status: AlscStatus::NoDecisionItem,
                stored: true
            }
        ));
    }

    #[test]
    fn tickets_follow_the_lists() {
        let obj = |json| serde_json::from_str::<Map<String, Value>>(json).unwrap();
        assert_eq!(ticket_count(&obj(r#"{}"#)), 1);
        assert_eq!(ticket_count(&obj(r#"{"act_codes":["a","b"]}"#)), 2);
        assert_eq!(
            ticket_count(&obj(r#"{"right_act_list":[1,2,3],"act_codes":["a"]}"#)),
            3
        );
        assert_eq!(ticket_count(&obj(r#"{"act_codes":[]}"#)), 1);
    }

    #[test]
    fn preissued_certificates_are_not_saved_and_restored_ones_are_kept() {
        let preissued: Preissued = "open_id=A,biz_code=23,out_id=1,channel=7".parse().unwrap();
        let started = Moment {
            wall: Utc::now(),
            mono: Instant::now(),
        };
        let mut earlier = Book::new(Ids::random(), &[], started);
        earlier.certificates.add(
            Certificate {
                code: "earlier".into(),
                open_id: "B".into(),
                out_id: 1.into(),
                channel: 7.into(),
                biz_code: Some("23".into()),
                created: started.wall,
            },
            started.mono,
        );
        let mut book = Book::new(Ids::random(), &[preissued], started);
        book.restore(earlier.saved(), started.mono);
        assert_eq!(book.certificates.iter().count(), 2);
        let codes: Vec<String> = book
            .saved()
            .certificates
            .into_iter()
            .map(|c| c.code)
            .collect();
        assert_eq!(codes, ["earlier"]);
    }
}
