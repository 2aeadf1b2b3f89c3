//! `tmall.nrt.certificate.send`: issues an electronic certificate to a Taobao `open_id`.
//! Not idempotent: the platform has no key to deduplicate a resent request.

use serde_json::{Map, Value};

use crate::top::api::{ApiSpec, FieldKind, FieldSpec, check_plain_id};
use crate::top::outcome::NO_ISSUED_CODE;
use crate::top::response::{field_text, not_a_top_answer};
use crate::top::{Outcome, PlatformError};

/// `tmall.nrt.certificate.send`.
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
    reconcile: Some(&super::tmall_query::QUERY),
};

/// Reads `result`:
///
/// | answer | outcome |
/// |---|---|
/// | `code` `"0"` (string or number) or absent, a `model` with a non-empty `certificate_code` | issued; the detail is the model's other fields and `message` |
/// | `code` present and not `"0"` (and no `success: true`) | refused: permanent, the raw answer in `detail` |
/// | anything else: `code "0"` or `success: true` without a certificate code, `model: null`, an empty code, a `result` with neither | may be issued: unknown outcome (`uncertain`), sub-code `no-issued-code`, the raw answer in `detail` |
/// | no `result` object | not a TOP answer: unknown outcome |
///
/// For an API that cannot be resent safely, calling a real issuance a failure is the worse
/// mistake: only a clear refusal is `failed`.
fn read_success(body: &Value) -> Outcome {
    let Some(result) = body.get("result").and_then(Value::as_object) else {
        return not_a_top_answer(SPEC.is_idempotent(), "answer has no `result` object", body);
    };
    let code = field_text(result, "code");
    let message = field_text(result, "message");
    let model = result.get("model").and_then(Value::as_object);
    let certificate = model.and_then(|m| field_text(m, "certificate_code"));
    let says_success = result.get("success").and_then(Value::as_bool) == Some(true)
        || result.get("success").and_then(Value::as_str) == Some("true");
    match (code.as_deref(), certificate, model) {
        (Some("0") | None, Some(issued_id), Some(model)) => Outcome::Issued {
            issued_id,
            detail: serde_json::to_string(&Detail {
                model,
                message: message.as_deref(),
            })
            .expect("a JSON map serialises"),
        },
        (Some(refused), _, _) if refused != "0" && !says_success => {
            let message = message.unwrap_or_else(|| Value::Object(result.clone()).to_string());
            Outcome::Permanent(
                PlatformError::new(code.as_deref(), None, message).with_detail(body.to_string()),
            )
        }
        _ => Outcome::answer_lost(
            SPEC.is_idempotent(),
            PlatformError::new(
                code.as_deref(),
                Some(NO_ISSUED_CODE),
                format!(
                    "the answer looks like a success but has no certificate code: the platform \
                     may have issued it; check before resending{}",
                    message.map(|m| format!(" ({m})")).unwrap_or_default()
                ),
            )
            .with_detail(body.to_string()),
        ),
    }
}

/// The detail of an issued answer, written without copying the model: its fields but
/// `certificate_code`, in order, then `message` (in the model's own `message` slot if it has one).
struct Detail<'a> {
    model: &'a Map<String, Value>,
    message: Option<&'a str>,
}

impl serde::Serialize for Detail<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        let mut message_written = false;
        for (name, value) in self.model {
            match (name.as_str(), self.message) {
                ("certificate_code", _) => {}
                ("message", Some(message)) => {
                    map.serialize_entry(name, message)?;
                    message_written = true;
                }
                _ => map.serialize_entry(name, value)?,
            }
        }
        if let (Some(message), false) = (self.message, message_written) {
            map.serialize_entry("message", message)?;
        }
        map.end()
    }
}

/// The seed document's success example (`seeds/`), as the JSON the gateway sends.
#[cfg(test)]
pub(crate) const SEED_SUCCESS: &str = r#"{"tmall_nrt_certificate_send_response":{"result":{"model":{"status":"0","modified_time":"12","create_time":"12","start_time":"12","end_time":"12","certificate_code":"3839772921","out_id":282399,"channel":7,"open_id":"AXA"},"message":"xxx","code":"0"},"request_id":"tmall-rid-1"}}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::OutcomeClass;

    fn read(json: &str) -> Outcome {
        read_success(&serde_json::from_str(json).unwrap())
    }

    fn seed_answer() -> Value {
        let seed: Value = serde_json::from_str(SEED_SUCCESS).unwrap();
        seed["tmall_nrt_certificate_send_response"].clone()
    }

    #[test]
    fn seed_example_is_issued_with_the_rest_as_detail() {
        let Outcome::Issued { issued_id, detail } = read_success(&seed_answer()) else {
            panic!("not issued")
        };
        assert_eq!(issued_id, "3839772921");
        assert_eq!(
            detail,
            r#"{"status":"0","modified_time":"12","create_time":"12","start_time":"12","end_time":"12","out_id":282399,"channel":7,"open_id":"AXA","message":"xxx"}"#
        );
    }

    #[test]
    fn numeric_code_and_large_numeric_certificate_keep_their_digits() {
        let outcome =
            read(r#"{"result":{"code":0,"model":{"certificate_code":18446744073709551615}}}"#);
        assert_eq!(
            outcome,
            Outcome::Issued {
                issued_id: "18446744073709551615".to_owned(),
                detail: "{}".to_owned()
            }
        );
    }

    #[test]
    fn non_zero_code_is_permanent_with_the_platforms_code_and_message() {
        let outcome = read(r#"{"result":{"code":"1001","message":"template offline"}}"#);
        let Outcome::Permanent(error) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(error.code.as_deref(), Some("1001"));
        assert_eq!(error.message, "template offline");
        let with_model =
            read(r#"{"result":{"code":2,"message":"m","model":{"certificate_code":"C"}}}"#);
        assert_eq!(with_model.class(), OutcomeClass::Permanent);
    }

    #[test]
    fn success_without_a_certificate_code_is_uncertain_and_keeps_the_raw_answer() {
        for answer in [
            r#"{"result":{"code":"0","model":{"status":"1"}}}"#,
            r#"{"result":{"code":"0","message":"success"}}"#,
            r#"{"result":{"code":0,"model":null}}"#,
            r#"{"result":{"code":"0","model":{"certificate_code":""}}}"#,
            r#"{"result":{"code":"","model":{"certificate_code":""}}}"#,
            r#"{"result":{"success":true,"code":"E1"}}"#,
            r#"{"result":{}}"#,
        ] {
            let outcome = read(answer);
            let Outcome::Unknown(error) = &outcome else {
                panic!("{answer}: {outcome:?}")
            };
            assert_eq!(error.sub_code.as_deref(), Some(NO_ISSUED_CODE), "{answer}");
            assert_eq!(error.detail.as_deref(), Some(answer), "{answer}");
            assert!(error.may_have_issued(), "{answer}");
        }
    }

    #[test]
    fn a_refusal_keeps_the_raw_answer_in_detail() {
        let answer = r#"{"result":{"code":"1001","message":"template offline"},"request_id":"r"}"#;
        let Outcome::Permanent(error) = read(answer) else {
            panic!()
        };
        assert_eq!(error.detail.as_deref(), Some(answer));
        assert!(!error.may_have_issued());
    }

    #[test]
    fn detail_keeps_the_models_order_and_its_own_message_slot() {
        let outcome = read(
            r#"{"result":{"code":"0","message":"outer","model":{"b":1,"message":"inner","certificate_code":"C","a":{"x":[1,"y"]}}}}"#,
        );
        let Outcome::Issued { issued_id, detail } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(issued_id, "C");
        assert_eq!(detail, r#"{"b":1,"message":"outer","a":{"x":[1,"y"]}}"#);
        let no_message = read(r#"{"result":{"model":{"certificate_code":"C","message":"m"}}}"#);
        assert!(
            matches!(&no_message, Outcome::Issued { detail, .. } if detail == r#"{"message":"m"}"#),
            "{no_message:?}"
        );
    }

    #[test]
    fn answer_without_result_is_an_unknown_outcome() {
        let outcome = read(r#"{"something":"else"}"#);
        assert_eq!(outcome.class(), OutcomeClass::Unknown);
        assert_eq!(
            outcome.error().unwrap().sub_code.as_deref(),
            Some("malformed-body")
        );
    }
}
