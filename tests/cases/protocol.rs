//! The real TOP client against the simulator on 127.0.0.1:0: every outcome class, every sign
//! method, both APIs, end to end over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use campaign::secret::Secret;
use campaign::sim::{self, Faults, SimConfig, SimServer};
use campaign::top::client::{Client, ClientConfig};
use campaign::top::{ApiSpec, Outcome, OutcomeClass, SignMethod, find_api};

fn tmall() -> &'static ApiSpec {
    find_api("tmall.nrt.certificate.send").unwrap()
}

fn alsc() -> &'static ApiSpec {
    find_api("alibaba.alsc.right.decisionsend").unwrap()
}

async fn sim_with(faults: Faults) -> SimServer {
    let config = SimConfig {
        faults,
        ..SimConfig::default()
    };
    sim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

struct Options {
    secret: &'static str,
    session: Option<&'static str>,
    app_key: &'static str,
    sign_method: SignMethod,
    timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secret: sim::DEFAULT_SECRET,
            session: Some(sim::DEFAULT_SESSION),
            app_key: sim::DEFAULT_APP_KEY,
            sign_method: SignMethod::HmacSha256,
            timeout: Duration::from_secs(5),
        }
    }
}

fn client(sim: &SimServer, api: &'static ApiSpec, o: Options) -> Client {
    Client::new(
        ClientConfig {
            url: sim.url(),
            app_key: o.app_key.to_owned(),
            secret: Secret::new(o.secret),
            session: o.session.map(Secret::new),
            sign_method: o.sign_method,
            connect_timeout: Duration::from_secs(2),
            request_timeout: o.timeout,
        },
        api,
    )
    .unwrap()
}

/// An alsc client with the simulator's defaults: alsc sends no session.
fn alsc_client(sim: &SimServer) -> Client {
    client(
        sim,
        alsc(),
        Options {
            session: None,
            ..Options::default()
        },
    )
}

fn tmall_object(open_id: &str) -> String {
    format!(r#"{{"channel":7,"open_id":"{open_id}","out_id":123,"biz_code":"23"}}"#)
}

fn alsc_object(alipay_id: &str, request_id: &str) -> String {
    format!(
        r#"{{"scene_code":"s","request_id":"{request_id}","biz_code":"b","alipay_id":"{alipay_id}"}}"#
    )
}

fn code(outcome: &Outcome) -> Option<String> {
    outcome.error().and_then(|e| e.code.clone())
}

#[tokio::test]
async fn every_sign_method_is_accepted_for_both_apis() {
    let sim = sim_with(Faults::default()).await;
    for (i, method) in SignMethod::ALL.into_iter().enumerate() {
        let t = client(
            &sim,
            tmall(),
            Options {
                sign_method: method,
                ..Options::default()
            },
        );
        let attempt = t.send(&tmall_object(&format!("OPEN{i}"))).await;
        assert!(
            matches!(attempt.outcome, Outcome::Issued { .. }),
            "{method}: {:?}",
            attempt.outcome
        );
        assert!(attempt.top_request_id.is_some());
        let a = client(
            &sim,
            alsc(),
            Options {
                sign_method: method,
                session: None,
                ..Options::default()
            },
        );
        let attempt = a
            .send(&alsc_object(
                &format!("208800000000000{i}"),
                &format!("req-{i}"),
            ))
            .await;
        assert!(
            matches!(attempt.outcome, Outcome::Issued { .. }),
            "{method}: {:?}",
            attempt.outcome
        );
    }
    let stats = sim.stats();
    assert_eq!(stats.issued, 6);
    assert_eq!(stats.rejected_signatures, 0);
}

#[tokio::test]
async fn configuration_errors_are_fatal_with_the_platform_codes() {
    let sim = sim_with(Faults::default()).await;
    let cases = [
        (
            Options {
                secret: "wrong",
                ..Options::default()
            },
            "25",
        ),
        (
            Options {
                app_key: "999",
                ..Options::default()
            },
            "29",
        ),
        (
            Options {
                session: Some("expired"),
                ..Options::default()
            },
            "27",
        ),
    ];
    for (options, expected) in cases {
        let attempt = client(&sim, tmall(), options)
            .send(&tmall_object("A"))
            .await;
        assert_eq!(
            attempt.outcome.class(),
            OutcomeClass::Fatal,
            "{:?}",
            attempt.outcome
        );
        assert_eq!(code(&attempt.outcome).as_deref(), Some(expected));
    }
    assert_eq!(sim.stats().issued, 0);
    assert_eq!(sim.stats().rejected_signatures, 1);
}

#[tokio::test]
async fn business_outcomes_map_to_their_classes() {
    let sim = sim_with(Faults::default()).await;
    let t = client(&sim, tmall(), Options::default());
    assert_eq!(
        t.send(&tmall_object("REFUSE-1")).await.outcome.class(),
        OutcomeClass::Permanent
    );
    assert_eq!(
        t.send(&tmall_object("FLAKY-1")).await.outcome.class(),
        OutcomeClass::Transient
    );
    assert_eq!(
        t.send(&tmall_object("FLAKY-1")).await.outcome.class(),
        OutcomeClass::Issued
    );
    // Issued on the platform, answer replaced by a timeout sub-code: unknown for tmall.
    assert_eq!(
        t.send(&tmall_object("LOST-1")).await.outcome.class(),
        OutcomeClass::Unknown
    );

    let a = alsc_client(&sim);
    let send = |id: &'static str, req: &'static str| {
        let a = a.clone();
        async move { a.send(&alsc_object(id, req)).await.outcome }
    };
    // Calls in order: the second call for 9903 and 9904 finds the first one's outcome.
    let expected = [
        ("2088000000009901", "r1", OutcomeClass::Permanent),
        ("2088000000009902", "r2", OutcomeClass::Permanent),
        ("2088000000009903", "r3", OutcomeClass::Transient),
        ("2088000000009903", "r3", OutcomeClass::Issued),
        ("2088000000009904", "r4", OutcomeClass::Transient),
        ("2088000000009904", "r4", OutcomeClass::Issued),
    ];
    for (alipay_id, request_id, class) in expected {
        assert_eq!(
            send(alipay_id, request_id).await.class(),
            class,
            "{alipay_id}"
        );
    }
    // The timeout sub-code on the idempotent API is transient: resending the same request_id
    // gets the stored answer and issues nothing more.
    assert_eq!(
        send("2088000000009906", "r6").await.class(),
        OutcomeClass::Transient
    );
    let replay = send("2088000000009906", "r6").await;
    assert_eq!(replay.class(), OutcomeClass::Issued);
    let stats = sim.stats();
    assert_eq!(stats.duplicates, 0, "a replayed request_id issued again");
    // FLAKY, LOST, 9903, 9904 and 9906 each issued exactly once.
    assert_eq!(stats.issued, 5);
}

#[tokio::test]
async fn flow_control_is_throttled_with_the_announced_ban() {
    let sim = sim_with(Faults {
        limit_qps: Some(2),
        ban_seconds: 3,
        ..Faults::default()
    })
    .await;
    let t = client(&sim, tmall(), Options::default());
    let mut throttled = None;
    for i in 0..5 {
        let outcome = t.send(&tmall_object(&format!("T{i}"))).await.outcome;
        if let Outcome::Throttled { ban, .. } = outcome {
            throttled = Some(ban);
            break;
        }
    }
    assert_eq!(throttled, Some(Some(Duration::from_secs(3))));
}

#[tokio::test]
async fn lost_answers_are_unknown_for_tmall_and_transient_for_alsc() {
    let sim = sim_with(Faults {
        withhold_rate: 1.0,
        withhold: Duration::from_secs(3),
        ..Faults::default()
    })
    .await;
    let short = || Options {
        timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let t = client(&sim, tmall(), short());
    let outcome = t.send(&tmall_object("W1")).await.outcome;
    assert_eq!(outcome.class(), OutcomeClass::Unknown, "{outcome:?}");
    assert_eq!(
        outcome.error().unwrap().sub_code.as_deref(),
        Some("timeout")
    );
    let a = client(
        &sim,
        alsc(),
        Options {
            session: None,
            ..short()
        },
    );
    let outcome = a.send(&alsc_object("2088000000000001", "w1")).await.outcome;
    assert_eq!(outcome.class(), OutcomeClass::Transient, "{outcome:?}");
}

#[tokio::test]
async fn bad_gateways_and_bodies_depend_on_idempotency() {
    for faults in [
        Faults {
            http502_rate: 1.0,
            ..Faults::default()
        },
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
    ] {
        let sim = sim_with(faults).await;
        let t = client(&sim, tmall(), Options::default());
        assert_eq!(
            t.send(&tmall_object("B1")).await.outcome.class(),
            OutcomeClass::Unknown
        );
        let a = alsc_client(&sim);
        assert_eq!(
            a.send(&alsc_object("2088000000000001", "b1"))
                .await
                .outcome
                .class(),
            OutcomeClass::Transient
        );
        assert_eq!(sim.stats().issued, 0);
    }
}

#[tokio::test]
async fn a_refused_connection_never_left_and_is_unreachable_for_both() {
    let sim = sim_with(Faults::default()).await;
    let url_of_closed_port = sim.url();
    sim.shutdown().await;
    for api in [tmall(), alsc()] {
        let c = Client::new(
            ClientConfig {
                url: url_of_closed_port.clone(),
                app_key: "k".into(),
                secret: Secret::new("s"),
                session: Some(Secret::new("x")),
                sign_method: SignMethod::Md5,
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
            },
            api,
        )
        .unwrap();
        let outcome = c.send(&tmall_object("C")).await.outcome;
        assert_eq!(outcome.class(), OutcomeClass::Unreachable, "{outcome:?}");
        assert_eq!(
            outcome.error().unwrap().sub_code.as_deref(),
            Some("connect")
        );
    }
}
