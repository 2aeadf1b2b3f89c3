//! `alibaba.alsc.right.decisionsend`: issues local-life rights to an Alipay user id.
//! Idempotent on `req.request_id`.

use serde_json::{Map, Value};

use crate::top::api::{ApiSpec, FieldKind, FieldSpec};
use crate::top::outcome::join_issued_ids;
use crate::top::response::{field_text, not_a_top_answer};
use crate::top::{Outcome, PlatformError};

/// `alibaba.alsc.right.decisionsend`.
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
    reconcile: None,
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

/// `status` decides: `SUCCESS` issued, `FAIL` with `can_retry` transient else permanent,
/// `SENDING` transient (a resend with the same `request_id` asks for the final state),
/// `NO_DECISION_ITEM` permanent, anything else transient. `status` is read under `result_obj`,
/// else from the tickets (any `SENDING` wins, then any `SUCCESS`, whose tickets alone give the
/// issued ids, then the first ticket's). With no status at all, `success: false` is a failure
/// (transient when `can_retry`); otherwise the answer is not one we understand (transient).
fn read_success(body: &Value) -> Outcome {
    let Some(result) = body.get("result").and_then(Value::as_object) else {
        return not_a_top_answer(SPEC.is_idempotent(), "answer has no `result` object", body);
    };
    let result_obj = result.get("result_obj").and_then(Value::as_object);
    let tickets = ticket_list(result_obj.and_then(|o| o.get("right_ticket_list")));
    let status = result_obj
        .and_then(|o| field_text(o, "status"))
        .map(|s| s.trim().to_ascii_uppercase())
        .or_else(|| status_from_tickets(&tickets));
    let can_retry = flag(result, "can_retry").unwrap_or(false);
    let error = |sub_code: Option<&str>| {
        let code = field_text(result, "result_code");
        let message = field_text(result, "result_msg")
            .unwrap_or_else(|| format!("status {}", sub_code.unwrap_or("absent")));
        PlatformError::new(code.as_deref(), sub_code, message)
    };
    match status.as_deref() {
        Some("SUCCESS") => Outcome::Issued {
            issued_id: join_issued_ids(
                tickets
                    .iter()
                    .filter(|t| ticket_status(t).is_none_or(|s| s == "SUCCESS"))
                    .filter_map(|t| {
                        t.as_object()
                            .and_then(|t| field_text(t, "right_instance_id"))
                    })
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            ),
            detail: detail(result, &tickets),
        },
        Some(status @ "FAIL") if can_retry => Outcome::Transient(error(Some(status))),
        Some(status @ ("FAIL" | "NO_DECISION_ITEM")) => Outcome::Permanent(error(Some(status))),
        Some(status) => Outcome::Transient(error(Some(status))),
        None => match flag(result, "success") {
            Some(false) if can_retry => Outcome::Transient(error(None)),
            Some(false) => Outcome::Permanent(error(None)),
            _ => not_a_top_answer(SPEC.is_idempotent(), "answer has no `status`", body),
        },
    }
}

/// The tickets, whether the list is a bare array or wrapped as `{"right_send_ticket_d_t_o": [...]}`
/// (a wrapper holding one object instead of an array is one ticket).
fn ticket_list(list: Option<&Value>) -> Vec<&Value> {
    match list {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(fields)) if fields.contains_key("right_instance_id") => {
            vec![single]
        }
        Some(Value::Object(wrapper)) => match wrapper.values().next() {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn ticket_status(ticket: &Value) -> Option<String> {
    ticket
        .as_object()
        .and_then(|t| field_text(t, "status"))
        .map(|s| s.trim().to_ascii_uppercase())
}

fn status_from_tickets(tickets: &[&Value]) -> Option<String> {
    let statuses: Vec<String> = tickets.iter().filter_map(|t| ticket_status(t)).collect();
    ["SENDING", "SUCCESS"]
        .into_iter()
        .find(|wanted| statuses.iter().any(|s| s == wanted))
        .map(str::to_owned)
        .or_else(|| statuses.into_iter().next())
}

/// A boolean field, also when sent as the string `"true"`/`"false"`.
fn flag(object: &Map<String, Value>, name: &str) -> Option<bool> {
    match object.get(name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The answer without the issued ids, the list unwrapped to a bare array, as compact JSON.
fn detail(result: &Map<String, Value>, tickets: &[&Value]) -> String {
    let mut rest = result.clone();
    if let Some(Value::Object(obj)) = rest.get_mut("result_obj") {
        let list = tickets
            .iter()
            .map(|ticket| match ticket {
                Value::Object(fields) => Value::Object(
                    fields
                        .iter()
                        .filter(|(name, _)| *name != "right_instance_id")
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect(),
                ),
                other => (*other).clone(),
            })
            .collect();
        obj.insert("right_ticket_list".to_owned(), Value::Array(list));
    }
    Value::Object(rest).to_string()
}

/// The seed document's success example (`seeds/`), as the JSON the gateway sends, with `status`
/// set to one value (the seed lists every possible value in that field).
#[cfg(test)]
pub(crate) const SEED_SUCCESS: &str = r#"{"alibaba_alsc_right_decisionsend_response":{"result":{"trace_id":"0bba816316284896650043363e24dc","result_obj":{"right_ticket_list":{"right_send_ticket_d_t_o":[{"right_name":"xx电子凭证","out_biz_instance_id":"43545234673489","right_instance_id":"7000246010032578xx"}]},"status":"SUCCESS"},"can_retry":true,"success":true,"result_code":"无","result_msg":"无"},"request_id":"alsc-rid-1"}}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::OutcomeClass;

    fn read(json: &str) -> Outcome {
        read_success(&serde_json::from_str(json).unwrap())
    }

    /// A `result` with the given `result_obj` and flags.
    fn answer(result_obj: &str, can_retry: &str) -> Outcome {
        read(&format!(
            r#"{{"result":{{"trace_id":"t1","result_obj":{result_obj},"can_retry":{can_retry},"success":false,"result_code":"RC","result_msg":"why"}}}}"#
        ))
    }

    #[test]
    fn seed_example_is_issued_with_the_rest_as_detail() {
        let seed: Value = serde_json::from_str(SEED_SUCCESS).unwrap();
        let outcome = read_success(&seed["alibaba_alsc_right_decisionsend_response"]);
        let Outcome::Issued { issued_id, detail } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(issued_id, "7000246010032578xx");
        assert_eq!(
            detail,
            r#"{"trace_id":"0bba816316284896650043363e24dc","result_obj":{"right_ticket_list":[{"right_name":"xx电子凭证","out_biz_instance_id":"43545234673489"}],"status":"SUCCESS"},"can_retry":true,"success":true,"result_code":"无","result_msg":"无"}"#
        );
    }

    #[test]
    fn bare_list_with_status_in_the_tickets_and_numeric_ids() {
        let outcome = answer(
            r#"{"right_ticket_list":[{"right_instance_id":7000246010032578901,"status":"SUCCESS"},{"right_instance_id":"B2","status":"SUCCESS"}]}"#,
            "false",
        );
        let Outcome::Issued { issued_id, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(issued_id, "7000246010032578901;B2");
    }

    #[test]
    fn mixed_ticket_statuses_issue_only_the_successful_ids() {
        let list = r#"{"right_ticket_list":{"right_send_ticket_d_t_o":[{"right_instance_id":"A","status":"FAIL"},{"right_instance_id":"B","status":"SUCCESS"}]}}"#;
        assert!(
            matches!(answer(list, "false"), Outcome::Issued { issued_id, .. } if issued_id == "B")
        );
        let sending = r#"{"right_ticket_list":[{"right_instance_id":"A","status":"SUCCESS"},{"status":"SENDING"}]}"#;
        assert_eq!(answer(sending, "false").class(), OutcomeClass::Transient);
    }

    #[test]
    fn statuses_map_to_their_classes_in_either_place() {
        let cases = [
            ("FAIL", "true", OutcomeClass::Transient),
            ("FAIL", "\"true\"", OutcomeClass::Transient),
            ("FAIL", "false", OutcomeClass::Permanent),
            ("SENDING", "false", OutcomeClass::Transient),
            ("NO_DECISION_ITEM", "true", OutcomeClass::Permanent),
            ("SOMETHING_NEW", "false", OutcomeClass::Transient),
        ];
        for (status, can_retry, want) in cases {
            let under_obj = format!(r#"{{"right_ticket_list":[],"status":"{status}"}}"#);
            let in_ticket = format!(r#"{{"right_ticket_list":[{{"status":"{status}"}}]}}"#);
            for obj in [under_obj, in_ticket] {
                let outcome = answer(&obj, can_retry);
                assert_eq!(outcome.class(), want, "{obj} can_retry={can_retry}");
                let error = outcome.error().unwrap();
                assert_eq!(error.sub_code.as_deref(), Some(status));
                assert_eq!(error.code.as_deref(), Some("RC"));
                assert_eq!(error.message, "why");
            }
        }
    }

    #[test]
    fn no_status_falls_back_to_success_and_can_retry() {
        let failed = read(r#"{"result":{"success":false,"can_retry":false,"result_code":"E1"}}"#);
        assert_eq!(failed.class(), OutcomeClass::Permanent);
        assert_eq!(failed.error().unwrap().code.as_deref(), Some("E1"));
        let retry = read(r#"{"result":{"success":false,"can_retry":true}}"#);
        assert_eq!(retry.class(), OutcomeClass::Transient);
        let unclear = read(r#"{"result":{"success":true}}"#);
        assert_eq!(
            unclear.error().unwrap().sub_code.as_deref(),
            Some("malformed-body")
        );
        assert_eq!(unclear.class(), OutcomeClass::Transient);
        assert_eq!(read(r#"{"other":1}"#).class(), OutcomeClass::Transient);
    }
}
