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

use std::io::{self, Write};

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::top::ApiSpec;

/// The key of the request `object_json` (as built for `api`); `generated_key` says whether its
/// idempotency key was generated rather than supplied by the row.
pub(crate) fn request_key(api: &ApiSpec, object_json: &str, generated_key: bool) -> [u8; 16] {
    match serde_json::from_str::<Value>(object_json) {
        Ok(Value::Object(object)) => request_key_of(api, &object, generated_key),
        // Never the case for what `build_object` writes; the text itself is still a key.
        _ => Md5::digest(object_json.as_bytes()).into(),
    }
}

/// [`request_key`] of the object before it is written out (no second parse at ingest).
pub(crate) fn request_key_of(
    api: &ApiSpec,
    object: &Map<String, Value>,
    generated_key: bool,
) -> [u8; 16] {
    let skip = api.idempotency_key.filter(|_| generated_key);
    let mut md5 = Hashing(Md5::new());
    write_object(object, skip, &mut md5);
    md5.0.finalize().into()
}

/// Feeds what is written to an MD5.
struct Hashing(Md5);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compact JSON with object keys sorted at every depth, leaving out the key `skip` of this
/// object (not of nested ones).
fn write_object(map: &Map<String, Value>, skip: Option<&str>, out: &mut impl Write) {
    let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort();
    let _ = out.write_all(b"{");
    for (n, key) in keys.into_iter().enumerate() {
        if n > 0 {
            let _ = out.write_all(b",");
        }
        // Writing JSON into an MD5 cannot fail.
        let _ = serde_json::to_writer(&mut *out, key);
        let _ = out.write_all(b":");
        write_value(&map[key], out);
    }
    let _ = out.write_all(b"}");
}

fn write_value(value: &Value, out: &mut impl Write) {
    match value {
        Value::Object(map) => write_object(map, None, out),
        Value::Array(items) => {
            let _ = out.write_all(b"[");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    let _ = out.write_all(b",");
                }
                write_value(item, out);
            }
            let _ = out.write_all(b"]");
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
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
        let mut text = Vec::new();
        let Value::Object(object) = serde_json::from_str(b).unwrap() else {
            unreachable!()
        };
        write_object(&object, None, &mut text);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"alipay_id":"2088","request_id":"r2","right_act_list":[{"a":[2,3],"b":1}],"scene_code":"s"}"#
        );
    }
}
