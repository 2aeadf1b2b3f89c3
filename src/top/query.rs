//! Read APIs as data: a [`QuerySpec`] describes a TOP method that lists what an issuing API
//! issued, so that a row whose answer was lost can be looked up instead of sent again.
//!
//! A query answer is read into one [`Page`] of [`Certificate`]s; anything else (an
//! `error_response`, an HTTP error, a body that is not a TOP answer, a result code other than
//! success) is a classified [`Outcome`]. A query issues nothing, so a lost answer is always
//! transient: asking again is safe.

use serde_json::Value;

use super::Outcome;
use super::response::{Answer, scalar_text, unwrap_answer};

/// One read API.
#[derive(Debug)]
pub struct QuerySpec {
    /// The TOP `method`, e.g. `tmall.nrt.certificate.query`.
    pub method: &'static str,
    /// The form field that carries the object param's JSON text.
    pub object_param: &'static str,
    /// Whether the call carries the user's `session`.
    pub needs_session: bool,
    /// Certificates asked for per page.
    pub page_size: u64,
    /// The object param asking for one page of one recipient's certificates.
    pub page_request: fn(&PageAsk<'_>) -> String,
    /// Reads the body of a success answer, already unwrapped from `<name>_response`.
    pub read_page: fn(&Value) -> Result<Page, Outcome>,
}

/// What one page request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageAsk<'a> {
    pub recipient: &'a str,
    pub biz_code: &'a str,
    /// 1-based.
    pub page: u64,
    pub page_size: u64,
}

/// One certificate as the query lists it. Text fields keep every digit of numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Certificate {
    pub code: Option<String>,
    pub recipient: Option<String>,
    pub out_id: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    /// As sent: `yyyy-MM-dd HH:mm:ss` in GMT+8.
    pub create_time: Option<String>,
    /// The item as the platform sent it, for the row's detail.
    pub fields: serde_json::Map<String, Value>,
}

/// One page of a query's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Certificate>,
    /// `total_item`: how many certificates match over all pages, when the answer says.
    pub total: Option<u64>,
    /// The page the answer says it is, when it says.
    pub current_page: Option<u64>,
}

/// A classified query answer and the platform's `request_id`.
#[derive(Clone, Debug, PartialEq)]
pub struct PageAnswer {
    pub page: Result<Page, Outcome>,
    pub top_request_id: Option<String>,
}

/// Reads one HTTP answer to a query.
pub fn parse_page(spec: &QuerySpec, http_status: u16, body: &[u8]) -> PageAnswer {
    let json = serde_json::from_slice::<Value>(body).ok();
    match unwrap_answer(spec.method, true, http_status, json.as_ref(), body) {
        Answer::Body(answer) => PageAnswer {
            page: (spec.read_page)(answer),
            top_request_id: answer.get("request_id").and_then(scalar_text),
        },
        Answer::Failed(failed) => PageAnswer {
            page: Err(failed.outcome),
            top_request_id: failed.top_request_id,
        },
    }
}

/// A whole number sent as a JSON number or as text.
pub fn lenient_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The items of a list, whether bare (`[...]`) or wrapped in its item type name
/// (`{"item_type": [...]}`); a wrapper holding one object instead of an array is one item.
pub fn list_items(list: &Value) -> Option<Vec<&Value>> {
    match list {
        Value::Array(items) => Some(items.iter().collect()),
        Value::Object(wrapper) if wrapper.is_empty() => Some(Vec::new()),
        Value::Object(wrapper) if wrapper.len() == 1 => match wrapper.values().next() {
            Some(Value::Array(items)) => Some(items.iter().collect()),
            Some(item @ Value::Object(_)) => Some(vec![item]),
            _ => None,
        },
        _ => None,
    }
}
