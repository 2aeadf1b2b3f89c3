//! The bytes the simulator answers with: `error_response` bodies, the `<method>_response`
//! wrapper and its `simplify=true` form, wrapped lists, and the non-TOP bodies of faults.

use std::time::Duration;

use serde_json::{Map, Value};

use super::call::Method;

/// The content type the gateway answers JSON with.
pub(crate) const JSON: &str = "application/json;charset=UTF-8";

/// Lists that the non-simplified form wraps in a one-key object: list name → item name.
const WRAPPED_LISTS: &[(&str, &str)] = &[
    ("right_ticket_list", "right_send_ticket_d_t_o"),
    ("data_list", "nrt_certificate_instance_response_dto"),
];

/// One answer, ready for the wire.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// How long to hold the answer before sending it (latency, withheld answers).
    pub delay: Duration,
}

impl Reply {
    pub(crate) fn json(body: String) -> Self {
        Reply {
            status: 200,
            content_type: JSON,
            body,
            delay: Duration::ZERO,
        }
    }
}

/// An `error_response`, before its `request_id` is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ErrorAnswer {
    pub code: u32,
    pub msg: &'static str,
    pub sub_code: Option<&'static str>,
    pub sub_msg: Option<String>,
}

impl ErrorAnswer {
    pub(crate) fn new(code: u32, msg: &'static str) -> Self {
        ErrorAnswer {
            code,
            msg,
            sub_code: None,
            sub_msg: None,
        }
    }

    pub(crate) fn with_sub_code(mut self, sub_code: &'static str) -> Self {
        self.sub_code = Some(sub_code);
        self
    }

    pub(crate) fn with_sub_msg(mut self, sub_msg: impl Into<String>) -> Self {
        self.sub_msg = Some(sub_msg.into());
        self
    }

    /// Code 50 `isv.invalid-parameter`, as both API pages show it.
    pub(crate) fn invalid_parameter(detail: impl std::fmt::Display) -> Self {
        ErrorAnswer::new(50, "Remote service error")
            .with_sub_code("isv.invalid-parameter")
            .with_sub_msg(format!("非法参数 {detail}"))
    }

    /// Code 15, the back end's own error (`isp.*` fault or `isv.*` business refusal).
    pub(crate) fn remote(sub_code: &'static str, sub_msg: &str) -> Self {
        ErrorAnswer::new(15, "Remote service error")
            .with_sub_code(sub_code)
            .with_sub_msg(sub_msg)
    }

    /// Code 7 flow control with the ban the platform announces.
    pub(crate) fn flow_control(sub_code: &'static str, ban_seconds: u64) -> Self {
        ErrorAnswer::new(7, "App Call Limited")
            .with_sub_code(sub_code)
            .with_sub_msg(format!("This ban will last for {ban_seconds} more seconds"))
    }

    /// Whether this answer rejects the request's signature (counted in `rejected_signatures`).
    pub(crate) fn rejects_signature(&self) -> bool {
        matches!(self.code, 24 | 25)
    }

    /// The `calls_by_outcome` bucket: `error:CODE` or `error:CODE:SUB_CODE`.
    pub(crate) fn bucket(&self) -> String {
        match self.sub_code {
            Some(sub) => format!("error:{}:{sub}", self.code),
            None => format!("error:{}", self.code),
        }
    }

    pub(crate) fn render(&self, request_id: &str) -> String {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("msg".into(), self.msg.into());
        if let Some(sub_code) = self.sub_code {
            error.insert("sub_code".into(), sub_code.into());
        }
        if let Some(sub_msg) = &self.sub_msg {
            error.insert("sub_msg".into(), sub_msg.as_str().into());
        }
        error.insert("request_id".into(), request_id.into());
        let mut root = Map::new();
        root.insert("error_response".into(), Value::Object(error));
        Value::Object(root).to_string()
    }
}

/// Renders a success answer from its fields written in simplified form (bare lists):
/// adds `request_id`, and unless `simplify`, wraps lists and the whole in `<method>_response`.
pub(crate) fn render_success(
    method: Method,
    simplify: bool,
    mut fields: Map<String, Value>,
    request_id: &str,
) -> String {
    fields.insert("request_id".into(), request_id.into());
    let mut body = Value::Object(fields);
    if simplify {
        return body.to_string();
    }
    wrap_lists(&mut body);
    let mut root = Map::new();
    root.insert(method.response_key(), body);
    Value::Object(root).to_string()
}

fn wrap_lists(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if let Some((_, item_name)) = WRAPPED_LISTS.iter().find(|(list, _)| list == key)
                    && item.is_array()
                {
                    let list = item.take();
                    let mut wrapper = Map::new();
                    wrapper.insert((*item_name).to_owned(), list);
                    *item = Value::Object(wrapper);
                } else {
                    wrap_lists(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_lists),
        _ => {}
    }
}

/// The HTTP 502 a gateway's front end answers when its back end is gone.
pub(crate) fn bad_gateway() -> Reply {
    Reply {
        status: 502,
        content_type: "text/html;charset=UTF-8",
        body: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>".to_owned(),
        delay: Duration::ZERO,
    }
}

/// Bodies with HTTP 200 that are not a TOP answer: truncated JSON, an HTML page, nothing, text.
const MALFORMED: &[(&str, &str)] = &[
    (JSON, r#"{"result":{"model":{"status":"0","certificate_co"#),
    (
        "text/html;charset=UTF-8",
        "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
    ),
    (JSON, ""),
    (
        "text/plain;charset=UTF-8",
        "upstream connect error or disconnect/reset before headers",
    ),
];

/// How many distinct malformed bodies there are.
pub(crate) const MALFORMED_KINDS: usize = MALFORMED.len();

/// The malformed body number `kind` (modulo the number of kinds).
pub(crate) fn malformed(kind: usize) -> Reply {
    let (content_type, body) = MALFORMED[kind % MALFORMED.len()];
    Reply {
        status: 200,
        content_type,
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::find_api;

    #[test]
    fn error_body_has_request_id_and_optional_sub_fields() {
        let plain = ErrorAnswer::new(25, "Invalid signature").render("r1");
        assert_eq!(
            plain,
            r#"{"error_response":{"code":25,"msg":"Invalid signature","request_id":"r1"}}"#
        );
        let flow = ErrorAnswer::flow_control("accesscontrol.limited-by-api-access-count", 2);
        assert_eq!(
            flow.bucket(),
            "error:7:accesscontrol.limited-by-api-access-count"
        );
        assert!(
            flow.render("r2")
                .contains(r#""sub_msg":"This ban will last for 2 more seconds""#)
        );
    }

    #[test]
    fn success_wraps_lists_unless_simplified() {
        let api = Method::Issue(find_api("alibaba.alsc.right.decisionsend").unwrap());
        let fields: Map<String, Value> = serde_json::from_str(
            r#"{"result":{"result_obj":{"right_ticket_list":[{"right_instance_id":"1"}]}}}"#,
        )
        .unwrap();
        let wrapped: Value =
            serde_json::from_str(&render_success(api, false, fields.clone(), "r")).unwrap();
        assert_eq!(
            wrapped["alibaba_alsc_right_decisionsend_response"]["result"]["result_obj"]["right_ticket_list"]
                ["right_send_ticket_d_t_o"][0]["right_instance_id"],
            "1"
        );
        assert_eq!(
            wrapped["alibaba_alsc_right_decisionsend_response"]["request_id"],
            "r"
        );
        let simple: Value = serde_json::from_str(&render_success(api, true, fields, "r")).unwrap();
        assert_eq!(
            simple["result"]["result_obj"]["right_ticket_list"][0]["right_instance_id"],
            "1"
        );
        assert_eq!(simple["request_id"], "r");
    }

    #[test]
    fn malformed_bodies_are_not_top_answers() {
        for kind in 0..MALFORMED_KINDS {
            let reply = malformed(kind);
            let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
            assert!(parsed.is_none_or(|v| v.get("error_response").is_none()));
        }
    }
}
