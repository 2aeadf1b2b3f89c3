//! `tmall.nrt.certificate.query` ("批量查询电子凭证信息"): lists a recipient's e-certificates, the
//! read side of `tmall.nrt.certificate.send`. Used to reconcile rows whose send answer was lost.
//!
//! The field names come from the published SDK models; the live semantics (how the filters
//! combine, paging limits, how soon a new certificate shows) are unverified, so the reader is
//! strict: an answer it cannot read completely is an error, never an empty list.

use serde_json::{Map, Value};

use crate::top::query::{Certificate, Page, PageAsk, QuerySpec, lenient_number, list_items};
use crate::top::response::{field_text, not_a_top_answer};
use crate::top::{Outcome, PlatformError};

/// `tmall.nrt.certificate.query`.
pub static QUERY: QuerySpec = QuerySpec {
    method: "tmall.nrt.certificate.query",
    object_param: "nrt_certificate_instance_query_d_t_o",
    needs_session: true,
    page_size: 20,
    page_request,
    read_page,
};

/// `{"open_id":..,"biz_code":..,"page_size":N,"current_page":N}`, numbers as JSON numbers.
fn page_request(ask: &PageAsk<'_>) -> String {
    serde_json::json!({
        "open_id": ask.recipient,
        "biz_code": ask.biz_code,
        "page_size": ask.page_size,
        "current_page": ask.page,
    })
    .to_string()
}

/// `result.code` `"0"` (or absent) with a `model` is a page: `data_list` wrapped in
/// `nrt_certificate_instance_response_dto` or bare, `total_item`, `current_page`. A missing
/// `data_list` is an empty page only when `total_item` says 0. Another code is the platform
/// refusing the query (permanent); an answer without `result` or `model` is not one we can read
/// (transient: asking again is safe).
fn read_page(body: &Value) -> Result<Page, Outcome> {
    let unreadable = |why: &str| Err(not_a_top_answer(true, why, body));
    let Some(result) = body.get("result").and_then(Value::as_object) else {
        return unreadable("answer has no `result` object");
    };
    let code = field_text(result, "code");
    if code.as_deref().is_some_and(|c| c != "0") {
        let message = field_text(result, "message")
            .unwrap_or_else(|| Value::Object(result.clone()).to_string());
        return Err(Outcome::Permanent(PlatformError::new(
            code.as_deref(),
            None,
            message,
        )));
    }
    let Some(model) = result.get("model").and_then(Value::as_object) else {
        return unreadable("answer has no `model` object");
    };
    let total = model.get("total_item").and_then(lenient_number);
    let items = match model.get("data_list") {
        None | Some(Value::Null) if total == Some(0) => Vec::new(),
        None | Some(Value::Null) => return unreadable("answer has no `data_list`"),
        Some(list) => match list_items(list) {
            Some(items) => items,
            None => return unreadable("`data_list` is not a list"),
        },
    };
    let mut certificates = Vec::with_capacity(items.len());
    for item in items {
        let Some(fields) = item.as_object() else {
            return unreadable("a `data_list` item is not an object");
        };
        certificates.push(certificate(fields));
    }
    Ok(Page {
        items: certificates,
        total,
        current_page: model.get("current_page").and_then(lenient_number),
    })
}

fn certificate(fields: &Map<String, Value>) -> Certificate {
    Certificate {
        code: field_text(fields, "certificate_code"),
        recipient: field_text(fields, "open_id"),
        out_id: field_text(fields, "out_id"),
        channel: field_text(fields, "channel"),
        status: field_text(fields, "status"),
        create_time: field_text(fields, "create_time"),
        fields: fields.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::OutcomeClass;
    use crate::top::query::parse_page;

    /// The answer shape of the SDK model, wrapped as the gateway sends it.
    const WRAPPED: &str = r#"{"tmall_nrt_certificate_query_response":{"result":{"code":"0","message":"ok","model":{"data_list":{"nrt_certificate_instance_response_dto":[{"certificate_code":"C1","open_id":"AXA","out_id":"123","channel":7,"status":1,"create_time":"2026-11-22 10:00:00","start_time":"2026-11-22 10:00:00","end_time":"2026-12-22 10:00:00","modified_time":"2026-11-22 10:00:00"},{"certificate_code":8881234567890123456,"open_id":"AXA","out_id":124,"channel":"7","status":"1","create_time":"2026-11-22 10:00:01"}]},"page_size":"20","current_page":"1","total_item":"2"}},"request_id":"q-rid-1"}}"#;

    fn page(json: &str) -> Result<Page, Outcome> {
        parse_page(&QUERY, 200, json.as_bytes()).page
    }

    #[test]
    fn the_request_names_recipient_template_and_page_with_numbers_as_numbers() {
        let ask = PageAsk {
            recipient: "AXA",
            biz_code: "23",
            page: 3,
            page_size: 20,
        };
        assert_eq!(
            page_request(&ask),
            r#"{"open_id":"AXA","biz_code":"23","page_size":20,"current_page":3}"#
        );
    }

    #[test]
    fn a_wrapped_page_is_read_with_numbers_as_numbers_or_text() {
        let answer = parse_page(&QUERY, 200, WRAPPED.as_bytes());
        assert_eq!(answer.top_request_id.as_deref(), Some("q-rid-1"));
        let page = answer.page.unwrap();
        assert_eq!((page.total, page.current_page), (Some(2), Some(1)));
        let [first, second] = &page.items[..] else {
            panic!("{page:?}")
        };
        assert_eq!(first.code.as_deref(), Some("C1"));
        assert_eq!(first.out_id.as_deref(), Some("123"));
        assert_eq!(first.channel.as_deref(), Some("7"));
        assert_eq!(first.create_time.as_deref(), Some("2026-11-22 10:00:00"));
        assert_eq!(first.fields["end_time"], "2026-12-22 10:00:00");
        assert_eq!(second.code.as_deref(), Some("8881234567890123456"));
        assert_eq!(second.out_id.as_deref(), Some("124"));
        assert_eq!(second.channel.as_deref(), Some("7"));
    }

    #[test]
    fn the_simplified_shape_and_a_bare_list_read_the_same() {
        let root: Value = serde_json::from_str(WRAPPED).unwrap();
        let mut inner = root["tmall_nrt_certificate_query_response"].clone();
        let list =
            inner["result"]["model"]["data_list"]["nrt_certificate_instance_response_dto"].clone();
        inner["result"]["model"]["data_list"] = list;
        assert_eq!(page(&inner.to_string()), page(WRAPPED));
    }

    #[test]
    fn an_empty_page_needs_a_total_of_zero() {
        let empty = r#"{"result":{"code":"0","model":{"total_item":0,"current_page":1}}}"#;
        assert_eq!(page(empty).unwrap().items, Vec::new());
        let wrapper = r#"{"result":{"code":0,"model":{"data_list":{},"total_item":"0"}}}"#;
        assert_eq!(page(wrapper).unwrap().total, Some(0));
        // Without a total, a missing list is not "no certificates".
        let silent = r#"{"result":{"code":"0","model":{"current_page":1}}}"#;
        let outcome = page(silent).unwrap_err();
        assert_eq!(outcome.class(), OutcomeClass::Transient);
    }

    #[test]
    fn refusals_and_unreadable_answers_are_errors_never_empty_pages() {
        let refused = page(r#"{"result":{"code":"E12","message":"no such template"}}"#);
        let Err(Outcome::Permanent(error)) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(error.code.as_deref(), Some("E12"));
        assert_eq!(error.message, "no such template");
        for body in [
            r#"{"result":{"code":"0"}}"#,
            r#"{"other":1}"#,
            r#"{"result":{"model":{"data_list":"x","total_item":1}}}"#,
            r#"{"result":{"model":{"data_list":[1],"total_item":1}}}"#,
        ] {
            let outcome = page(body).unwrap_err();
            assert_eq!(outcome.class(), OutcomeClass::Transient, "{body}");
            assert_eq!(
                outcome.error().unwrap().sub_code.as_deref(),
                Some("malformed-body")
            );
        }
    }

    #[test]
    fn gateway_errors_are_classified_as_for_a_call_that_issues_nothing() {
        let permission = br#"{"error_response":{"code":11,"msg":"Insufficient isv permissions","sub_code":"isv.permission-api-package-empty"}}"#;
        assert_eq!(
            parse_page(&QUERY, 200, permission)
                .page
                .unwrap_err()
                .class(),
            OutcomeClass::Fatal
        );
        let throttled = br#"{"error_response":{"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-api-access-count","sub_msg":"This ban will last for 2 more seconds"}}"#;
        assert_eq!(
            parse_page(&QUERY, 200, throttled).page.unwrap_err().class(),
            OutcomeClass::Throttled
        );
        let timeout =
            br#"{"error_response":{"code":15,"sub_code":"isp.top-remote-connection-timeout"}}"#;
        assert_eq!(
            parse_page(&QUERY, 200, timeout).page.unwrap_err().class(),
            OutcomeClass::Transient
        );
        for (status, body) in [(502, &b"<html>bad gateway</html>"[..]), (200, b"{\"trunc")] {
            let outcome = parse_page(&QUERY, status, body).page.unwrap_err();
            assert_eq!(outcome.class(), OutcomeClass::Transient);
        }
    }
}
