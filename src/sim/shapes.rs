//! The success bodies of the two APIs, as the API pages show them, written in simplified form
//! (bare lists); [`render_success`] adds `request_id` and the wrappers.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::answer::{Reply, bad_gateway, malformed, render_success};
use super::check::ValidCall;
use super::issue::{AlscResult, AlscStatus, Answer};
use crate::top::params::format_timestamp;

/// How long a simulated certificate is valid.
const CERTIFICATE_DAYS: i64 = 30;

/// Renders an answer for the wire.
pub(crate) fn render(
    answer: &Answer,
    call: &ValidCall,
    request_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    let fields = match answer {
        Answer::Error(error) => return Reply::json(error.render(request_id)),
        Answer::Http502 => return bad_gateway(),
        Answer::Malformed(kind) => return malformed(*kind),
        Answer::TmallIssued { serial } => tmall_issued(call, *serial, now),
        Answer::TmallCode { code, message } => object(json!({
            "result": { "message": message, "code": code }
        })),
        Answer::Alsc(result) => alsc(result),
    };
    Reply::json(render_success(call.api, call.simplify, fields, request_id))
}

/// The certificate code of the `serial`-th result.
pub(crate) fn certificate_code(serial: u64) -> String {
    format!("38{serial:010}")
}

fn tmall_issued(call: &ValidCall, serial: u64, now: DateTime<Utc>) -> Map<String, Value> {
    let start = format_timestamp(now);
    let end = format_timestamp(now + Duration::days(CERTIFICATE_DAYS));
    let field = |name| call.object.get(name).cloned().unwrap_or(Value::Null);
    object(json!({
        "result": {
            "model": {
                "status": "0",
                "modified_time": start,
                "create_time": start,
                "start_time": start,
                "end_time": end,
                "certificate_code": certificate_code(serial),
                "out_id": field("out_id"),
                "channel": field("channel"),
                "open_id": field("open_id"),
            },
            "message": "success",
            "code": "0",
        }
    }))
}

fn alsc(result: &AlscResult) -> Map<String, Value> {
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
                let id = result.serial * 100 + i;
                json!({
                    "right_name": format!("模拟电子凭证{}", i + 1),
                    "out_biz_instance_id": format!("4354{id:012}"),
                    "right_instance_id": format!("7000{id:014}"),
                    "status": status,
                })
            })
            .collect();
        result_obj.insert("right_ticket_list".into(), Value::Array(tickets));
    }
    result_obj.insert("status".into(), status.into());
    object(json!({
        "result": {
            "trace_id": format!("0b{:028x}", result.serial),
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
    use crate::top::find_api;

    fn call(method: &str, object: &str, simplify: bool) -> ValidCall {
        ValidCall {
            api: find_api(method).unwrap(),
            object: serde_json::from_str(object).unwrap(),
            simplify,
            identity: "".into(),
        }
    }

    #[test]
    fn tmall_issued_has_the_documented_model() {
        let call = call(
            "tmall.nrt.certificate.send",
            r#"{"channel":7,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#,
            false,
        );
        let reply = render(&Answer::TmallIssued { serial: 5 }, &call, "r", Utc::now());
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        let result = &body["tmall_nrt_certificate_send_response"]["result"];
        assert_eq!(result["code"], "0");
        assert_eq!(result["model"]["certificate_code"], "380000000005");
        assert_eq!(result["model"]["out_id"], 123);
        assert_eq!(
            body["tmall_nrt_certificate_send_response"]["request_id"],
            "r"
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
            serde_json::from_str(&render(&Answer::Alsc(issued), &call, "r", Utc::now()).body)
                .unwrap();
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
            serde_json::from_str(&render(&Answer::Alsc(sending), &call, "r", Utc::now()).body)
                .unwrap();
        assert_eq!(body["result"]["result_obj"]["status"], "SENDING");
        assert_eq!(body["result"]["can_retry"], true);
        assert!(
            body["result"]["result_obj"]
                .get("right_ticket_list")
                .is_none()
        );
    }
}
