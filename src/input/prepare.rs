//! Turning one input row into what is sent: validation, the row's identity, its idempotency key
//! and the object param's JSON.
//!
//! # Identity
//!
//! A row's identity is its recipient followed by its own non-empty per-row param columns, in the
//! API's field order, written `name=value` and joined with `&`, e.g. `open_id=AXBZ` or
//! `alipay_id=2088111111111111&act_codes=["a"]`. In values, `%`, `&` and `=` are written `%25`,
//! `%26` and `%3D`; names are the API's fixed field names, which contain none of them, so two
//! different rows can never share an identity. Number values are written in canonical form (`07`
//! is `7`) and JSON lists compactly (`[ "a" ]` is `["a"]`), so rows that send the same thing are
//! the same row. Campaign defaults are not part of it: changing a default must never make an
//! already issued row look new. A `request_id` column, when supplied, is.
//!
//! The identity keys the ledger; it does not decide alone what is a duplicate. Within one input,
//! rows whose effective request is the same (recipient and every resolved param, defaults
//! included: see [`super::request_key`]) are duplicates too, and a row already sent counts with
//! the request it was sent with (see `ledger::requests`).
//!
//! # Request ids
//!
//! For the idempotent API the key is the row's `request_id` column when non-empty, else
//! [`request_id_for`]: UUID version 3 in the namespace [`REQUEST_ID_NAMESPACE`] of the name
//! `<byte length of the campaign name>:<campaign name><identity>`.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use uuid::Uuid;

use super::Header;
use crate::top::{ApiSpec, FieldKind};

/// The namespace of generated request ids: UUID v3 of `urn:campaign-runner:request-id` in the
/// URL namespace: `6de40c75-97d7-3606-89a6-ccac798a3bee`. Fixed forever: changing it would
/// change every request id and defeat the platform's deduplication on resume.
pub(crate) const REQUEST_ID_NAMESPACE: Uuid =
    Uuid::from_u128(0x6de4_0c75_97d7_3606_89a6_ccac_798a_3bee);

/// A row ready to send, or the reason it cannot be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Prepared {
    Valid {
        /// See the module documentation.
        identity: String,
        /// The idempotency key; `None` for an API without one.
        request_id: Option<String>,
        /// The object param's JSON text, exactly as it goes on the wire.
        object_json: String,
        /// The effective request, as [`super::request_key`] gives it for `object_json`.
        request_key: [u8; 16],
    },
    Invalid {
        /// Names the column at fault, e.g. `alipay_id: not 2088 followed by 12 digits: "123"`.
        reason: String,
    },
}

/// The deterministic request id of a row: UUID v3 of the campaign name and the row identity.
pub(crate) fn request_id_for(campaign_name: &str, identity: &str) -> String {
    // Same as Uuid::new_v3 on the concatenated name, without building it.
    let mut md5 = Md5::new();
    md5.update(REQUEST_ID_NAMESPACE.as_bytes());
    md5.update(campaign_name.len().to_string().as_bytes());
    md5.update(b":");
    md5.update(campaign_name.as_bytes());
    md5.update(identity.as_bytes());
    let digest: [u8; 16] = md5.finalize().into();
    uuid::Builder::from_md5_bytes(digest)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Validates one record and builds what is sent for it. A bad row is [`Prepared::Invalid`]; it
/// never stops the other rows.
///
/// Values: the row's column when non-empty, else the campaign default; the recipient from its
/// column; the idempotency key as the module documentation says.
pub(crate) fn prepare(
    campaign_name: &str,
    api: &'static ApiSpec,
    header: &Header,
    defaults: &BTreeMap<String, String>,
    record: &csv::StringRecord,
) -> Prepared {
    let invalid = |reason: String| Prepared::Invalid { reason };
    let cell = |column: usize| record.get(column).unwrap_or_default();
    let recipient = cell(header.recipient);
    if let Err(reason) = (api.check_recipient)(recipient) {
        return invalid(format!("{}: {reason}", api.recipient));
    }

    let mut identity = String::with_capacity(recipient.len() + 32);
    push_pair(&mut identity, api.recipient, recipient);
    for &(name, column) in &header.params {
        let value = cell(column);
        if value.is_empty() {
            continue;
        }
        let Some(field) = api.field(name) else {
            continue;
        };
        if field.kind == FieldKind::String && value.trim().is_empty() {
            return invalid(format!("{name}: blank"));
        }
        if Some(name) == api.idempotency_key
            && let Err(reason) = crate::top::api::check_plain_id(value)
        {
            return invalid(format!("{name}: {reason}"));
        }
        identity.push('&');
        push_pair(&mut identity, name, &canonical(field.kind, value));
    }

    let row_value = |name: &str| {
        header
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, column)| cell(column))
            .filter(|v| !v.is_empty())
    };
    let supplied = api.idempotency_key.and_then(row_value);
    let request_id = api.idempotency_key.map(|_| match supplied {
        Some(supplied) => supplied.to_owned(),
        None => request_id_for(campaign_name, &identity),
    });
    // A key equal to the one derived from the row is the row's spelling, whoever wrote it: it
    // does not tell requests apart (see `request_key`).
    let generated_key = request_id.is_some()
        && supplied.is_none_or(|rid| rid == request_id_for(campaign_name, &identity));
    for field in api.param_fields() {
        let generated = Some(field.name) == api.idempotency_key;
        if field.required
            && !generated
            && row_value(field.name).is_none()
            && defaults
                .get(field.name)
                .is_none_or(std::string::String::is_empty)
        {
            return invalid(format!(
                "{}: required: empty in this row and no default in [params]",
                field.name
            ));
        }
    }
    let built = api.build_map(|name| {
        if name == api.recipient {
            Some(recipient)
        } else if Some(name) == api.idempotency_key {
            request_id.as_deref()
        } else {
            row_value(name).or_else(|| defaults.get(name).map(String::as_str))
        }
    });
    match built {
        Ok(object) => Prepared::Valid {
            identity,
            request_id,
            request_key: super::request_key::request_key_of(api, &object, generated_key),
            object_json: serde_json::Value::Object(object).to_string(),
        },
        Err(e) => invalid(e.to_string()),
    }
}

/// The value as the identity writes it; a value that does not parse is kept as written (the row
/// is then invalid anyway).
fn canonical(kind: FieldKind, value: &str) -> std::borrow::Cow<'_, str> {
    match kind {
        FieldKind::String => value.into(),
        FieldKind::Number => value
            .parse::<i64>()
            .map_or(value.into(), |n| n.to_string().into()),
        FieldKind::JsonList => serde_json::from_str::<serde_json::Value>(value)
            .map_or(value.into(), |v| v.to_string().into()),
    }
}

fn push_pair(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push('=');
    if !value.contains(['%', '&', '=']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '&' => out.push_str("%26"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::find_api;

    fn tmall() -> &'static ApiSpec {
        find_api("tmall.nrt.certificate.send").unwrap()
    }

    fn alsc() -> &'static ApiSpec {
        find_api("alibaba.alsc.right.decisionsend").unwrap()
    }

    fn header(api: &'static ApiSpec, columns: &[&str]) -> Header {
        let recipient = columns.iter().position(|c| *c == api.recipient).unwrap();
        let params = api
            .param_fields()
            .filter_map(|f| {
                columns
                    .iter()
                    .position(|c| *c == f.name)
                    .map(|i| (f.name, i))
            })
            .collect();
        Header {
            columns: columns
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            line: 1,
            recipient,
            params,
        }
    }

    fn defaults(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(
        api: &'static ApiSpec,
        columns: &[&str],
        defaults_: &[(&str, &str)],
        row: &[&str],
    ) -> Prepared {
        let record = csv::StringRecord::from(row.to_vec());
        prepare(
            "spring",
            api,
            &header(api, columns),
            &defaults(defaults_),
            &record,
        )
    }

    fn reason(p: Prepared) -> String {
        match p {
            Prepared::Invalid { reason } => reason,
            valid => panic!("expected invalid, got {valid:?}"),
        }
    }

    const TMALL_DEFAULTS: &[(&str, &str)] =
        &[("channel", "7"), ("out_id", "123"), ("biz_code", "23")];
    const ALSC_DEFAULTS: &[(&str, &str)] = &[("scene_code", "s"), ("biz_code", "b")];

    #[test]
    fn namespace_is_what_the_docs_say() {
        assert_eq!(
            REQUEST_ID_NAMESPACE,
            Uuid::new_v3(&Uuid::NAMESPACE_URL, b"urn:campaign-runner:request-id")
        );
    }

    #[test]
    fn request_id_is_uuid_v3_of_campaign_and_identity() {
        let id = request_id_for("campaign", "open_id=A");
        assert_eq!(id, "bda2a153-eff0-3afc-ba89-5c6adb4f2a9c");
        assert_eq!(
            id,
            Uuid::new_v3(&REQUEST_ID_NAMESPACE, b"8:campaignopen_id=A").to_string()
        );
        assert_eq!(id, request_id_for("campaign", "open_id=A"));
        assert_ne!(id, request_id_for("campaign2", "open_id=A"));
        assert_ne!(request_id_for("ab", "c"), request_id_for("a", "bc"));
    }

    #[test]
    fn valid_row_uses_row_values_over_defaults() {
        const JSON: &str = r#"{"channel":9,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#;
        let p = run(
            tmall(),
            &["open_id", "channel", "note"],
            TMALL_DEFAULTS,
            &["AXBZ", "9", "张三"],
        );
        assert_eq!(
            p,
            Prepared::Valid {
                identity: "open_id=AXBZ&channel=9".into(),
                request_id: None,
                object_json: JSON.into(),
                // The key of the object as built is the key of its text, parsed again.
                request_key: super::super::request_key(tmall(), JSON, false),
            }
        );
        let p = run(
            tmall(),
            &["open_id", "channel"],
            TMALL_DEFAULTS,
            &["AXBZ", ""],
        );
        let Prepared::Valid {
            identity,
            object_json,
            ..
        } = p
        else {
            panic!()
        };
        assert_eq!(identity, "open_id=AXBZ");
        assert!(object_json.starts_with(r#"{"channel":7,"#));
    }

    #[test]
    fn identity_leaves_defaults_out() {
        let identity = |d: &[(&str, &str)]| match run(tmall(), &["open_id"], d, &["A"]) {
            Prepared::Valid { identity, .. } => identity,
            other => panic!("{other:?}"),
        };
        let other_defaults = [("channel", "8"), ("out_id", "1"), ("biz_code", "x")];
        assert_eq!(identity(TMALL_DEFAULTS), "open_id=A");
        assert_eq!(identity(TMALL_DEFAULTS), identity(&other_defaults));
    }

    #[test]
    fn identity_escapes_so_rows_never_collide() {
        let cols = ["alipay_id", "scene_code", "biz_code"];
        let identity = |row: &[&str]| match run(alsc(), &cols, &[], row) {
            Prepared::Valid { identity, .. } => identity,
            other => panic!("{other:?}"),
        };
        let a = identity(&["2088111111111111", "x&biz_code=y", "z"]);
        let b = identity(&["2088111111111111", "x", "y&biz_code=z"]);
        assert_eq!(
            a,
            "alipay_id=2088111111111111&scene_code=x%26biz_code%3Dy&biz_code=z"
        );
        assert_ne!(a, b);
        assert_ne!(
            identity(&["2088111111111111", "%26", "z"]),
            identity(&["2088111111111111", "&", "z"])
        );
    }

    #[test]
    fn identity_is_canonical_for_numbers_and_lists() {
        let id = |row: &[&str]| match run(alsc(), &["alipay_id", "act_codes"], ALSC_DEFAULTS, row) {
            Prepared::Valid { identity, .. } => identity,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            id(&["2088111111111111", "[ \"a\" ]"]),
            "alipay_id=2088111111111111&act_codes=[\"a\"]"
        );
        let tmall_id = |channel: &str| match run(
            tmall(),
            &["open_id", "channel"],
            TMALL_DEFAULTS,
            &["A", channel],
        ) {
            Prepared::Valid { identity, .. } => identity,
            other => panic!("{other:?}"),
        };
        assert_eq!(tmall_id("07"), tmall_id("7"));
    }

    #[test]
    fn request_ids_generated_or_supplied() {
        let cols = ["alipay_id", "request_id"];
        let Prepared::Valid {
            identity,
            request_id,
            object_json,
            request_key,
        } = run(alsc(), &cols, ALSC_DEFAULTS, &["2088111111111111", ""])
        else {
            panic!()
        };
        assert_eq!(identity, "alipay_id=2088111111111111");
        let generated = request_id_for("spring", &identity);
        assert_eq!(request_id.as_deref(), Some(generated.as_str()));
        assert!(object_json.contains(&format!(r#""request_id":"{generated}""#)));
        // A generated key is left out of the request key; a supplied one is part of it.
        let key = |generated| super::super::request_key(alsc(), &object_json, generated);
        assert_eq!(request_key, key(true));
        assert_ne!(request_key, key(false));

        let Prepared::Valid {
            identity,
            request_id,
            object_json,
            request_key,
        } = run(
            alsc(),
            &cols,
            ALSC_DEFAULTS,
            &["2088111111111111", "mine-1"],
        )
        else {
            panic!()
        };
        assert_eq!(identity, "alipay_id=2088111111111111&request_id=mine-1");
        assert_eq!(request_id.as_deref(), Some("mine-1"));
        assert!(object_json.contains(r#""request_id":"mine-1""#));
        assert_eq!(
            request_key,
            super::super::request_key(alsc(), &object_json, false)
        );
        assert!(
            reason(run(
                alsc(),
                &cols,
                ALSC_DEFAULTS,
                &["2088111111111111", " r"]
            ))
            .starts_with("request_id: has leading")
        );
    }

    #[test]
    fn each_invalid_reason_names_its_column() {
        let t = |row: &[&str]| reason(run(tmall(), &["open_id", "channel"], TMALL_DEFAULTS, row));
        assert_eq!(t(&["", "7"]), "open_id: empty");
        assert_eq!(t(&["   ", "7"]), "open_id: empty");
        assert_eq!(
            t(&[" A", "7"]),
            "open_id: has leading or trailing whitespace: \" A\""
        );
        assert_eq!(t(&["A", "7.5"]), "channel: not a whole number: \"7.5\"");
        assert_eq!(t(&["A", "seven"]), "channel: not a whole number: \"seven\"");

        let a = |row: &[&str]| {
            reason(run(
                alsc(),
                &["alipay_id", "act_codes", "scene_code"],
                ALSC_DEFAULTS,
                row,
            ))
        };
        assert_eq!(
            a(&["2088123", "", ""]),
            "alipay_id: not 2088 followed by 12 digits: \"2088123\""
        );
        assert_eq!(
            a(&["2089111111111111", "", ""]),
            "alipay_id: not 2088 followed by 12 digits: \"2089111111111111\""
        );
        assert!(a(&["2088111111111111", "[\"a\"", ""]).starts_with("act_codes: malformed JSON"));
        assert_eq!(
            a(&["2088111111111111", "{}", ""]),
            "act_codes: must be a JSON array"
        );
        assert_eq!(a(&["2088111111111111", "", "  "]), "scene_code: blank");

        let missing = reason(run(
            alsc(),
            &["alipay_id"],
            &[("biz_code", "b")],
            &["2088111111111111"],
        ));
        assert_eq!(
            missing,
            "scene_code: required: empty in this row and no default in [params]"
        );
    }
}
