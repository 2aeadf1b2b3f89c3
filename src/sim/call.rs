//! What the simulator answers: the methods it knows ([`Method`]), a call that passed every
//! check ([`Call`] and its [`Op`]), and the recipient identity issuances are counted by.
//!
//! Checking (`check`) produces these types and issuing (`issue`), querying (`query`) and
//! rendering (`shapes`) consume them, so none of those modules imports another's internals.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::top::{ApiSpec, find_api};

/// The read-back API for issued certificates.
pub(crate) const CERTIFICATE_QUERY: &str = "tmall.nrt.certificate.query";
/// Its object param.
pub(crate) const QUERY_PARAM: &str = "nrt_certificate_instance_query_d_t_o";
/// The gateway's clock; needs no session.
pub(crate) const TIME_GET: &str = "taobao.time.get";
/// The seller behind the session: a harmless call that proves the session key.
pub(crate) const USER_SELLER_GET: &str = "taobao.user.seller.get";

/// A TOP method the simulator answers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    /// One of the issuing APIs.
    Issue(&'static ApiSpec),
    /// `tmall.nrt.certificate.query`.
    CertificateQuery,
    /// `taobao.time.get`.
    TimeGet,
    /// `taobao.user.seller.get`.
    UserSellerGet,
}

impl Method {
    /// Looks a method up by its TOP name.
    pub(crate) fn find(name: &str) -> Option<Self> {
        match name {
            CERTIFICATE_QUERY => Some(Method::CertificateQuery),
            TIME_GET => Some(Method::TimeGet),
            USER_SELLER_GET => Some(Method::UserSellerGet),
            _ => find_api(name).map(Method::Issue),
        }
    }

    /// The TOP method name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Issue(api) => api.method,
            Method::CertificateQuery => CERTIFICATE_QUERY,
            Method::TimeGet => TIME_GET,
            Method::UserSellerGet => USER_SELLER_GET,
        }
    }

    /// Whether the call must carry the user's `session` (codes 26/27 otherwise).
    pub(crate) fn needs_session(self) -> bool {
        match self {
            Method::Issue(api) => api.needs_session,
            Method::CertificateQuery | Method::UserSellerGet => true,
            Method::TimeGet => false,
        }
    }

    /// The root key of a non-simplified success answer: the name without a leading `taobao.`,
    /// dots replaced by underscores, then `_response`.
    pub(crate) fn response_key(self) -> String {
        let name = self.name();
        let name = name.strip_prefix("taobao.").unwrap_or(name);
        format!("{}_response", name.replace('.', "_"))
    }
}

/// A call that passed every check.
#[derive(Debug)]
pub(crate) struct Call {
    /// `simplify=true`: answer without the wrapper and with bare lists.
    pub simplify: bool,
    pub op: Op,
}

impl Call {
    /// The method called.
    pub(crate) fn method(&self) -> Method {
        match &self.op {
            Op::Issue(issue) => Method::Issue(issue.api),
            Op::Query(_) => Method::CertificateQuery,
            Op::TimeGet => Method::TimeGet,
            Op::UserSellerGet { .. } => Method::UserSellerGet,
        }
    }
}

/// What a valid call asks for, with its business parameters checked.
#[derive(Debug)]
pub(crate) enum Op {
    Issue(IssueCall),
    Query(CertificateQuery),
    TimeGet,
    /// The user fields asked for (`fields`, comma-separated).
    UserSellerGet {
        fields: Vec<String>,
    },
}

/// A call to an issuing API.
#[derive(Debug)]
pub(crate) struct IssueCall {
    pub api: &'static ApiSpec,
    /// The object param, parsed and checked.
    pub object: Map<String, Value>,
    /// What issuances are counted by (see [`identity`]).
    pub identity: Arc<str>,
}

impl IssueCall {
    /// A checked call to `api` with this object param.
    pub(crate) fn new(api: &'static ApiSpec, object: Map<String, Value>) -> Self {
        IssueCall {
            api,
            identity: identity(api, &object).into(),
            object,
        }
    }

    /// The recipient field's value (checked to be a string).
    pub(crate) fn recipient(&self) -> &str {
        self.text(self.api.recipient).unwrap_or_default()
    }

    /// The idempotency key's value, for idempotent APIs.
    pub(crate) fn idempotency_key(&self) -> Option<&str> {
        self.api.idempotency_key.and_then(|key| self.text(key))
    }

    /// A string field of the object param.
    pub(crate) fn text(&self, field: &str) -> Option<&str> {
        self.object.get(field).and_then(Value::as_str)
    }
}

/// A `tmall.nrt.certificate.query`: filters (all given ones must hold) and the page asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CertificateQuery {
    pub open_id: Option<String>,
    /// Certificate codes (the `codes` field, comma-separated).
    pub codes: Vec<String>,
    pub biz_code: Option<String>,
    /// 1..=[`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// From 1.
    pub current_page: u32,
}

/// The page size of a query that names none.
pub(crate) const DEFAULT_PAGE_SIZE: u32 = 20;
/// The largest page the simulator serves.
pub(crate) const MAX_PAGE_SIZE: u32 = 100;

/// The identity issuances are counted by: the method, a space, then the object param without
/// the idempotency key as compact JSON with keys sorted at every level.
pub(crate) fn identity(api: &ApiSpec, object: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(api.method);
    out.push(' ');
    write_object(&mut out, object, api.idempotency_key);
    out
}

fn write_object(out: &mut String, object: &Map<String, Value>, skip: Option<&str>) {
    let mut keys: Vec<&String> = object.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort_unstable();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_canonical(out, &Value::String(key.clone()));
        out.push(':');
        write_canonical(out, &object[key.as_str()]);
    }
    out.push('}');
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => write_object(out, map, None),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sorts_keys_and_drops_request_id() {
        let alsc = find_api("alibaba.alsc.right.decisionsend").unwrap();
        let a: Map<String, Value> = serde_json::from_str(
            r#"{"scene_code":"s","request_id":"r1","alipay_id":"2088000000000001","right_act_list":[{"rightId":1,"actCode":"x"}]}"#,
        )
        .unwrap();
        let b: Map<String, Value> = serde_json::from_str(
            r#"{"right_act_list":[{"actCode":"x","rightId":1}],"alipay_id":"2088000000000001","request_id":"r2","scene_code":"s"}"#,
        )
        .unwrap();
        assert_eq!(identity(alsc, &a), identity(alsc, &b));
        assert_eq!(
            identity(alsc, &a),
            r#"alibaba.alsc.right.decisionsend {"alipay_id":"2088000000000001","right_act_list":[{"actCode":"x","rightId":1}],"scene_code":"s"}"#
        );
    }

    #[test]
    fn methods_know_their_session_need_and_response_key() {
        let time = Method::find(TIME_GET).unwrap();
        assert!(!time.needs_session());
        assert_eq!(time.response_key(), "time_get_response");
        let seller = Method::find(USER_SELLER_GET).unwrap();
        assert!(seller.needs_session());
        assert_eq!(seller.response_key(), "user_seller_get_response");
        let query = Method::find(CERTIFICATE_QUERY).unwrap();
        assert!(query.needs_session());
        assert_eq!(query.response_key(), "tmall_nrt_certificate_query_response");
        let send = Method::find("tmall.nrt.certificate.send").unwrap();
        assert_eq!(send.response_key(), "tmall_nrt_certificate_send_response");
        assert!(Method::find("taobao.item.get").is_none());
    }
}
