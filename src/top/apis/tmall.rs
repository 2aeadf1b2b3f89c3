//! `tmall.nrt.certificate.send`: issues an electronic certificate to a Taobao `open_id`.
//! Not idempotent: the platform has no key to deduplicate a resent request.

use serde_json::Value;

use crate::top::api::{ApiSpec, FieldKind, FieldSpec, check_plain_id};
use crate::top::{Outcome, PlatformError};

pub static SPEC: ApiSpec = ApiSpec {
    method: "tmall.nrt.certificate.send",
    object_param: "nrt_certificate_send_d_t_o",
    recipient: "open_id",
    fields: &[
        FieldSpec {
            name: "channel",
            kind: FieldKind::Number,
            required: true,
        },
        FieldSpec {
            name: "open_id",
            kind: FieldKind::String,
            required: true,
        },
        FieldSpec {
            name: "out_id",
            kind: FieldKind::Number,
            required: true,
        },
        FieldSpec {
            name: "biz_code",
            kind: FieldKind::String,
            required: true,
        },
    ],
    idempotency_key: None,
    needs_session: true,
    check_recipient: check_plain_id,
    read_success,
};

/// `result.code == "0"` with a `model.certificate_code` is issued; anything else is a permanent
/// failure that keeps the platform's code and message.
fn read_success(body: &Value) -> Outcome {
    todo!("helper A: {body}")
}

#[allow(dead_code)]
fn _unused(_: PlatformError) {}
