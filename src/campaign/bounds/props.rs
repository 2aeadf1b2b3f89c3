//! Property tests: random numbers (huge, tiny, negative, NaN, infinite, fractional) for every
//! numeric setting, from the campaign file and from the command line. None may crash the
//! program; each is accepted exactly when it is within its documented bounds, and refused with
//! a message naming the setting and the bounds otherwise.

use std::ops::RangeInclusive;
use std::path::Path;

use clap::Parser;
use proptest::prelude::*;

use super::*;
use crate::campaign::Campaign;
use crate::cli::{Cli, Command};

/// Whether a setting takes whole numbers only or any number.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Whole(&'static RangeInclusive<i64>),
    Any(&'static RangeInclusive<f64>),
}

/// Every numeric key of the campaign file: its table, its name and its bounds.
const KEYS: &[(&str, &str, Kind)] = &[
    ("limits", "qps", Kind::Any(&QPS)),
    ("limits", "concurrency", Kind::Whole(&CONCURRENCY)),
    ("limits", "max_attempts", Kind::Whole(&MAX_ATTEMPTS)),
    ("limits", "max_failure_rate", Kind::Any(&MAX_FAILURE_RATE)),
    (
        "limits",
        "min_rows_for_halt",
        Kind::Whole(&MIN_ROWS_FOR_HALT),
    ),
    ("limits", "max_ban_wait_s", Kind::Any(&MAX_BAN_WAIT_S)),
    ("limits", "max_outage_s", Kind::Any(&MAX_OUTAGE_S)),
    ("limits", "max_issued", Kind::Whole(&MAX_ISSUED)),
    ("gateway", "timeout_ms", Kind::Whole(&TIMEOUT_MS)),
    ("gateway", "connect_timeout_ms", Kind::Whole(&TIMEOUT_MS)),
    ("notify", "every_minutes", Kind::Any(&NOTIFY_EVERY_MINUTES)),
    ("notify", "timeout_ms", Kind::Whole(&TIMEOUT_MS)),
];

/// A number as a TOML value: an integer, or a float (with `nan` and `inf`).
#[derive(Clone, Copy, Debug)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn toml(self) -> String {
        match self {
            Number::Int(n) => n.to_string(),
            Number::Float(f) if f.is_nan() => "nan".to_owned(),
            Number::Float(f) if f.is_infinite() => if f > 0.0 { "inf" } else { "-inf" }.to_owned(),
            // `{:?}` always writes a `.` or an exponent, as TOML wants of a float.
            Number::Float(f) => format!("{f:?}"),
        }
    }

    fn accepted_as(self, kind: Kind) -> bool {
        match (self, kind) {
            (Number::Int(n), Kind::Whole(range)) => range.contains(&n),
            (Number::Float(_), Kind::Whole(_)) => false,
            (Number::Int(n), Kind::Any(range)) => range.contains(&(n as f64)),
            (Number::Float(f), Kind::Any(range)) => range.contains(&f),
        }
    }
}

/// Numbers of every size and kind, with the edges of each bound well represented.
fn number() -> impl Strategy<Value = Number> {
    let edges = KEYS
        .iter()
        .flat_map(|(_, _, kind)| match kind {
            Kind::Whole(r) => vec![
                *r.start() - 1,
                *r.start(),
                *r.end(),
                r.end().saturating_add(1),
            ],
            Kind::Any(r) => vec![*r.start() as i64, *r.end() as i64, *r.end() as i64 + 1],
        })
        .collect::<Vec<_>>();
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        (-100_000i64..100_000).prop_map(Number::Int),
        proptest::sample::select(edges).prop_map(Number::Int),
        any::<f64>().prop_map(Number::Float),
        (-1e7f64..1e7).prop_map(Number::Float),
        proptest::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            0.0009,
            0.001,
            -0.0,
            1e300,
            1_000_000.000_1,
        ])
        .prop_map(Number::Float),
    ]
}

/// A campaign file with `key = value` in `table`.
fn campaign_with(table: &str, key: &str, value: &str) -> String {
    let mut gateway = "url = \"sim\"\n".to_owned();
    let mut limits = String::new();
    let mut notify = "url = \"https://example.com/hook\"\nkind = \"json\"\n".to_owned();
    let line = format!("{key} = {value}\n");
    match table {
        "gateway" => gateway.push_str(&line),
        "limits" => limits.push_str(&line),
        _ => notify.push_str(&line),
    }
    format!(
        "name = \"n\"\napi = \"alibaba.alsc.right.decisionsend\"\ninput = \"in.csv\"\n\n\
         [gateway]\n{gateway}\n[limits]\n{limits}\n[notify]\n{notify}"
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_numeric_key_of_the_campaign_file_is_bounded(
        which in 0..KEYS.len(),
        value in number(),
    ) {
        let (table, key, kind) = KEYS[which];
        let text = campaign_with(table, key, &value.toml());
        let parsed = Campaign::parse(Path::new("c.toml"), &text);
        let want = value.accepted_as(kind);
        match parsed {
            Ok(_) => prop_assert!(want, "{table}.{key} = {} was accepted", value.toml()),
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!want, "{table}.{key} = {} was refused: {e}", value.toml());
                prop_assert!(e.contains(&format!("{table}.{key}: ")), "{e}");
                prop_assert!(
                    e.contains("must be between")
                        || e.contains("is not a number")
                        || e.contains("must be a whole number"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn qps_and_concurrency_on_the_command_line_are_bounded(
        qps in number(),
        concurrency in number(),
    ) {
        let text = |n: Number| match n {
            Number::Int(n) => n.to_string(),
            Number::Float(f) => f.to_string(),
        };
        let (qps_text, concurrency_text) = (text(qps), text(concurrency));
        let parsed = Cli::try_parse_from([
            "campaign",
            "run",
            "c.toml",
            "--qps",
            &qps_text,
            "--concurrency",
            &concurrency_text,
        ]);
        let want = qps.accepted_as(Kind::Any(&QPS))
            && concurrency.accepted_as(Kind::Whole(&CONCURRENCY));
        match parsed {
            Ok(cli) => {
                prop_assert!(want, "--qps {qps_text} --concurrency {concurrency_text} accepted");
                let Command::Run(args) = cli.command else {
                    panic!("not a run");
                };
                let qps_given = args.qps.map(crate::campaign::Qps::get);
                prop_assert!(qps_given.is_some_and(|q| QPS.contains(&q)));
                let concurrency_given = args.concurrency.map(crate::campaign::Concurrency::get);
                prop_assert!(
                    concurrency_given.is_some_and(|c| (1..=10_000).contains(&c))
                );
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!want, "refused: {e}");
                prop_assert!(e.contains("--qps") || e.contains("--concurrency"), "{e}");
            }
        }
    }
}
