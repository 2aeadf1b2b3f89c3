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
/// URL namespace (`6ba7b811-9dad-11d1-80b4-00c04fd430c8`). Fixed forever: changing it would
/// change every request id and defeat the platform's deduplication on resume.
pub const REQUEST_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5a8e_3a54_2c3e_3b8e_b0f7_8c1d_9e55_0c1b);

/// A row ready to send, or the reason it cannot be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    Valid {
        /// See the module documentation.
        identity: String,
        /// The idempotency key; `None` for an API without one.
        request_id: Option<String>,
        /// The object param's JSON text, exactly as it goes on the wire.
        object_json: String,
    },
    Invalid {
        /// Names the column at fault, e.g. `alipay_id: not 2088 followed by 12 digits: "123"`.
        reason: String,
    },
}

/// The deterministic request id of a row: UUID v3 of the campaign name and the row identity.
pub fn request_id_for(campaign_name: &str, identity: &str) -> String {
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
pub fn prepare(
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
    let request_id = api.idempotency_key.map(|key| match row_value(key) {
        Some(supplied) => supplied.to_owned(),
        None => request_id_for(campaign_name, &identity),
    });
    for field in api.param_fields() {
        let generated = Some(field.name) == api.idempotency_key;
        if field.required
            && !generated
            && row_value(field.name).is_none()
            && defaults.get(field.name).is_none_or(|d| d.is_empty())
        {
            return invalid(format!(
                "{}: required: empty in this row and no default in [params]",
                field.name
            ));
        }
    }
    let built = api.build_object(|name| {
        if name == api.recipient {
            Some(recipient)
        } else if Some(name) == api.idempotency_key {
            request_id.as_deref()
        } else {
            row_value(name).or_else(|| defaults.get(name).map(String::as_str))
        }
    });
    match built {
        Ok(object_json) => Prepared::Valid {
            identity,
            request_id,
            object_json,
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
