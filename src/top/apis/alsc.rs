//! `alibaba.alsc.right.decisionsend`: issues local-life rights to an Alipay user id.
//! Idempotent on `req.request_id`.

use serde_json::Value;

use crate::top::Outcome;
use crate::top::api::{ApiSpec, FieldKind, FieldSpec};

pub static SPEC: ApiSpec = ApiSpec {
    method: "alibaba.alsc.right.decisionsend",
    object_param: "req",
    recipient: "alipay_id",
    fields: &[
        FieldSpec {
            name: "right_act_list",
            kind: FieldKind::JsonList,
            required: false,
        },
        FieldSpec {
            name: "scene_code",
            kind: FieldKind::String,
            required: true,
        },
        FieldSpec {
            name: "act_codes",
            kind: FieldKind::JsonList,
            required: false,
        },
        FieldSpec {
            name: "request_id",
            kind: FieldKind::String,
            required: true,
        },
        FieldSpec {
            name: "biz_code",
            kind: FieldKind::String,
            required: true,
        },
        FieldSpec {
            name: "alipay_id",
            kind: FieldKind::String,
            required: true,
        },
    ],
    idempotency_key: Some("request_id"),
    needs_session: false,
    check_recipient: check_alipay_id,
    read_success,
};

/// An Alipay user id is `2088` followed by 12 digits.
pub fn check_alipay_id(id: &str) -> Result<(), String> {
    crate::top::api::check_plain_id(id)?;
    if id.len() == 16 && id.starts_with("2088") && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("not 2088 followed by 12 digits: {id:?}"))
    }
}

/// `status` (under `result_obj` or inside a ticket) decides: `SUCCESS` issued, `FAIL` with
/// `can_retry` transient else permanent, `SENDING` transient, `NO_DECISION_ITEM` permanent.
fn read_success(body: &Value) -> Outcome {
    todo!("helper A: {body}")
}
