//! The success bodies the simulator answers with, as the API pages show them, written in
//! simplified form (bare lists); [`render_success`] adds `request_id` and the wrappers.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::answer::{Reply, bad_gateway, malformed, render_success};
use super::call::Call;
use super::ids::Ids;
use super::issue::{AlscResult, AlscStatus, Answer};
use super::query::{CERTIFICATE_DAYS, Certificate};
use crate::top::params::format_timestamp;

/// Renders the answer of an issuing call for the wire.
pub(crate) fn render(answer: &Answer, call: &Call, request_id: &str, ids: Ids) -> Reply {
    let fields = match answer {
        Answer::Error(error) => return Reply::json(error.render(request_id)),
        Answer::Http502 => return bad_gateway(),
        Answer::Malformed(kind) => return malformed(*kind),
        Answer::TmallIssued(certificate) => tmall_issued(certificate),
        Answer::TmallCode { code, message } => object(json!({
            "result": { "message": message, "code": code }
        })),
        Answer::Alsc(result) => alsc(result, ids),
    };
    success(call, fields, request_id)
}

/// A success answer to `call` with these fields (in simplified form).
pub(crate) fn success(call: &Call, fields: Map<String, Value>, request_id: &str) -> Reply {
    Reply::json(render_success(
        call.method(),
        call.simplify,
        fields,
        request_id,
    ))
}

/// `taobao.time.get`: the gateway's clock, `yyyy-MM-dd HH:mm:ss` in GMT+8.
pub(crate) fn time_get(now: DateTime<Utc>) -> Map<String, Value> {
    object(json!({ "time": format_timestamp(now) }))
}

/// The seller the simulator's session belongs to.
const SELLER_NICK: &str = "sim-seller";
const SELLER_USER_ID: u64 = 2_200_000_000_001;

/// `taobao.user.seller.get`: the `user` object with the fields asked for that the simulator
/// knows (`nick`, `user_id`, `type`); others are left out.
pub(crate) fn user_seller_get(fields: &[String]) -> Map<String, Value> {
    let mut user = Map::new();
    for field in fields {
        let value: Value = match field.as_str() {
            "nick" => SELLER_NICK.into(),
            "user_id" => SELLER_USER_ID.into(),
            "type" => "B".into(),
            _ => continue,
        };
        user.insert(field.clone(), value);
    }
    let mut out = Map::new();
    out.insert("user".into(), Value::Object(user));
    out
}

fn tmall_issued(certificate: &Certificate) -> Map<String, Value> {
    let start = format_timestamp(certificate.created);
    let end = format_timestamp(certificate.created + Duration::days(CERTIFICATE_DAYS));
    object(json!({
        "result": {
            "model": {
                "status": "0",
                "modified_time": start,
                "create_time": start,
                "start_time": start,
                "end_time": end,
                "certificate_code": certificate.code,
                "out_id": certificate.out_id,
                "channel": certificate.channel,
                "open_id": certificate.open_id,
            },
            "message": "success",
            "code": "0",
        }
    }))
}

fn alsc(result: &AlscResult, ids: Ids) -> Map<String, Value> {
    let (status, can_retry, success, code, message) = match result.status {
        AlscStatus::Success => ("SUCCESS", false, true, "SUCCESS", "发放成功"),
        AlscStatus::Fail { can_retry: false } => {
            ("FAIL", false, false, "RIGHT_SEND_FAIL", "权益发放失败")
        }
        AlscStatus::Fail { can_retry: true } => {
            ("FAIL", true, false, "SYSTEM_BUSY", "系统繁忙，请稍后重试")
        }
        AlscStatus::Sending => ("SENDING", true, true, "SENDING", "权益发放中"),
        AlscStatus::NoDecisionItem => (
            "NO_DECISION_ITEM",
            false,
            false,
            "NO_DECISION_ITEM",
            "没有可发放的权益",
        ),
    };
    let mut result_obj = Map::new();
    if result.status == AlscStatus::Success {
        let tickets: Vec<Value> = (0..u64::from(result.tickets))
            .map(|i| {
                json!({
                    "right_name": format!("模拟电子凭证{}", i + 1),
                    "out_biz_instance_id": ids.out_biz_instance_id(result.serial, i),
                    "right_instance_id": ids.right_instance_id(result.serial, i),
                    "status": status,
                })
            })
            .collect();
        result_obj.insert("right_ticket_list".into(), Value::Array(tickets));
    }
    result_obj.insert("status".into(), status.into());
    object(json!({
        "result": {
            "trace_id": ids.trace_id(result.serial),
            "result_obj": result_obj,
            "can_retry": can_retry,
            "success": success,
            "result_code": code,
            "result_msg": message,
        }
    }))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! object literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::call::{IssueCall, Op};
    use crate::top::find_api;

    fn call(method: &str, object: &str, simplify: bool) -> Call {
        let api = find_api(method).unwrap();
        Call {
            simplify,
            op: Op::Issue(IssueCall::new(api, serde_json::from_str(object).unwrap())),
        }
    }

    fn ids() -> Ids {
        Ids::with_prefix(1_000_000_000)
    }

    #[test]
    fn tmall_issued_has_the_documented_model() {
        let call = call(
            "tmall.nrt.certificate.send",
            r#"{"channel":7,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#,
            false,
        );
        let certificate = Certificate {
            code: ids().certificate_code(5),
            open_id: "AXBZ".into(),
            out_id: 123.into(),
            channel: 7.into(),
            biz_code: Some("23".into()),
            created: Utc::now(),
        };
        let reply = render(&Answer::TmallIssued(certificate), &call, "r", ids());
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        let result = &body["tmall_nrt_certificate_send_response"]["result"];
        assert_eq!(result["code"], "0");
        assert_eq!(result["model"]["certificate_code"], "38100000000000000005");
        assert_eq!(result["model"]["out_id"], 123);
        assert_eq!(
            body["tmall_nrt_certificate_send_response"]["request_id"],
            "r"
        );
    }

    #[test]
    fn seller_get_answers_the_known_fields_asked_for() {
        let fields = user_seller_get(&["nick".into(), "avatar".into()]);
        assert_eq!(
            Value::Object(fields),
            json!({"user": {"nick": SELLER_NICK}})
        );
    }

    #[test]
    fn alsc_lists_one_ticket_per_right_and_none_when_not_issued() {
        let call = call("alibaba.alsc.right.decisionsend", r#"{}"#, true);
        let issued = AlscResult {
            status: AlscStatus::Success,
            serial: 3,
            tickets: 2,
        };
        let body: Value =
            serde_json::from_str(&render(&Answer::Alsc(issued), &call, "r", ids()).body).unwrap();
        let tickets = body["result"]["result_obj"]["right_ticket_list"]
            .as_array()
            .unwrap();
        assert_eq!(tickets.len(), 2);
        assert_ne!(
            tickets[0]["right_instance_id"],
            tickets[1]["right_instance_id"]
        );
        let sending = AlscResult {
            status: AlscStatus::Sending,
            ..issued
        };
        let body: Value =
            serde_json::from_str(&render(&Answer::Alsc(sending), &call, "r", ids()).body).unwrap();
        assert_eq!(body["result"]["result_obj"]["status"], "SENDING");
        assert_eq!(body["result"]["can_retry"], true);
        assert!(
            body["result"]["result_obj"]
                .get("right_ticket_list")
                .is_none()
        );
    }
}
