//! The effective request of a row, as a key: what tells two rows that would send the same
//! thing apart from two rows that merely look different.
//!
//! The key is the MD5 of the object param's canonical JSON: object keys sorted at every depth,
//! no whitespace, numbers as parsed. Since the object holds the recipient and every resolved
//! param (the row's cell, else the campaign default; numbers parsed, so `07` is `7`; list params
//! parsed, so whitespace and key order do not count), two rows with the same key send the same
//! request. A generated idempotency key is left out (it is derived from the row's spelling, the
//! very thing that must not count); a key the row supplies in its own column is part of the
//! request.

use md5::{Digest, Md5};
use serde_json::Value;

use crate::top::ApiSpec;

/// The key of the request `object_json` (as built for `api`); `generated_key` says whether its
/// idempotency key was generated rather than supplied by the row.
pub(crate) fn request_key(api: &ApiSpec, object_json: &str, generated_key: bool) -> [u8; 16] {
    let mut md5 = Md5::new();
    match serde_json::from_str::<Value>(object_json) {
        Ok(Value::Object(mut object)) => {
            if generated_key && let Some(key) = api.idempotency_key {
                object.remove(key);
            }
            let mut text = String::with_capacity(object_json.len());
            canonical(&Value::Object(object), &mut text);
            md5.update(text.as_bytes());
        }
        // Never the case for what `build_object` writes; the text itself is still a key.
        _ => md5.update(object_json.as_bytes()),
    }
    md5.finalize().into()
}

/// Compact JSON with object keys sorted at every depth.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::find_api;

    #[test]
    fn spelling_does_not_count_but_content_does() {
        let alsc = find_api("alibaba.alsc.right.decisionsend").unwrap();
        let a = r#"{"right_act_list":[{"b":1,"a":[2, 3]}],"scene_code":"s","request_id":"r1","alipay_id":"2088"}"#;
        let b = r#"{"alipay_id":"2088","scene_code":"s","right_act_list":[{"a":[2,3],"b":1}],"request_id":"r2"}"#;
        assert_eq!(request_key(alsc, a, true), request_key(alsc, b, true));
        assert_ne!(request_key(alsc, a, false), request_key(alsc, b, false));
        let c = r#"{"right_act_list":[{"b":2,"a":[2,3]}],"scene_code":"s","request_id":"r1","alipay_id":"2088"}"#;
        assert_ne!(request_key(alsc, a, true), request_key(alsc, c, true));
        let mut text = String::new();
        canonical(&serde_json::from_str(b).unwrap(), &mut text);
        assert_eq!(
            text,
            r#"{"alipay_id":"2088","request_id":"r2","right_act_list":[{"a":[2,3],"b":1}],"scene_code":"s"}"#
        );
    }
}
