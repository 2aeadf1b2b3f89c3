//! The issuing APIs as data: one [`ApiSpec`] per TOP method.
//!
//! Everything that differs between APIs lives here (object param name, recipient field, field
//! types, idempotency key, session need, how to read a successful answer), so adding a third
//! issuing API is one more entry in [`APIS`] and one small file under `apis/`.

use serde_json::{Map, Value};

use super::Outcome;
use super::apis;
use super::query::QuerySpec;

/// The JSON type a field of the object param is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A JSON number (Java `Long`); the text must parse as an `i64`.
    Number,
    /// A JSON string.
    String,
    /// A JSON array, passed through as the user wrote it (validated only as an array).
    JsonList,
}

/// One field of an API's object param.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
}

/// Everything the runner, the input validator and the simulator need to know about one API.
#[derive(Debug)]
pub struct ApiSpec {
    /// The TOP `method`, e.g. `tmall.nrt.certificate.send`.
    pub method: &'static str,
    /// The form field that carries the object param's JSON text.
    pub object_param: &'static str,
    /// The field (and input CSV column) naming the recipient.
    pub recipient: &'static str,
    /// Every field of the object param, recipient and idempotency key included.
    pub fields: &'static [FieldSpec],
    /// The field the platform deduplicates on, for idempotent APIs.
    pub idempotency_key: Option<&'static str>,
    /// Whether the call carries the user's `session`.
    pub needs_session: bool,
    /// Checks the recipient's shape; `Err` carries the reason shown to the user.
    pub check_recipient: fn(&str) -> Result<(), String>,
    /// Reads the body of a successful (non-`error_response`) answer, already unwrapped from
    /// `<name>_response` when it was wrapped.
    pub read_success: fn(&Value) -> Outcome,
    /// The read API that lists what this API issued, for a non-idempotent API whose lost
    /// answers can be looked up (`campaign reconcile`); `None`: none is known.
    pub reconcile: Option<&'static QuerySpec>,
}

/// The supported APIs.
pub static APIS: &[&ApiSpec] = &[&apis::tmall::SPEC, &apis::alsc::SPEC];

/// Looks an API up by its TOP method name.
pub fn find_api(method: &str) -> Option<&'static ApiSpec> {
    APIS.iter().copied().find(|api| api.method == method)
}

/// Why a row's values do not make a valid object param.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl ApiSpec {
    /// Whether a retried request is deduplicated by the platform.
    pub fn is_idempotent(&self) -> bool {
        self.idempotency_key.is_some()
    }

    /// The root key of a non-simplified success answer: the method without a leading `taobao.`,
    /// dots replaced by underscores, then `_response`.
    pub fn response_key(&self) -> String {
        let name = self.method.strip_prefix("taobao.").unwrap_or(self.method);
        format!("{}_response", name.replace('.', "_"))
    }

    /// Looks up a field of the object param.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields a user may set per row or as a campaign default: all but the recipient.
    pub fn param_fields(&self) -> impl Iterator<Item = &'static FieldSpec> + '_ {
        self.fields.iter().filter(|f| f.name != self.recipient)
    }

    /// Builds the object param from raw text values (recipient, per-row columns, campaign
    /// defaults and the idempotency key, already merged by the caller) and serialises it once.
    ///
    /// Empty values count as absent. Fields are written in the spec's order.
    pub fn build_object<'a>(
        &self,
        value_of: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<String, FieldError> {
        self.build_map(value_of)
            .map(|object| Value::Object(object).to_string())
    }

    /// [`ApiSpec::build_object`] before it is written out: the fields in the API's order.
    pub fn build_map<'a>(
        &self,
        value_of: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Map<String, Value>, FieldError> {
        let mut object = Map::new();
        for field in self.fields {
            let Some(raw) = value_of(field.name).filter(|v| !v.is_empty()) else {
                if field.required {
                    return Err(FieldError {
                        field: field.name.to_owned(),
                        reason: "required but missing".to_owned(),
                    });
                }
                continue;
            };
            if field.name == self.recipient {
                (self.check_recipient)(raw).map_err(|reason| FieldError {
                    field: field.name.to_owned(),
                    reason,
                })?;
            }
            object.insert(field.name.to_owned(), parse_field(field, raw)?);
        }
        Ok(object)
    }

    /// Checks a received object param the way the platform does: required fields present and of
    /// the right JSON type, the recipient well formed. Used by the simulator.
    pub fn check_object(&self, object: &Value) -> Result<(), FieldError> {
        let Some(map) = object.as_object() else {
            return Err(FieldError {
                field: self.object_param.to_owned(),
                reason: "not a JSON object".to_owned(),
            });
        };
        for field in self.fields {
            let err = |reason: &str| FieldError {
                field: field.name.to_owned(),
                reason: reason.to_owned(),
            };
            match map.get(field.name) {
                None | Some(Value::Null) if field.required => {
                    return Err(err("required but missing"));
                }
                None | Some(Value::Null) => {}
                Some(value) => {
                    let fits = match field.kind {
                        FieldKind::Number => value.is_i64() || value.is_u64(),
                        FieldKind::String => value.is_string(),
                        FieldKind::JsonList => value.is_array(),
                    };
                    if !fits {
                        return Err(err(match field.kind {
                            FieldKind::Number => "must be a number",
                            FieldKind::String => "must be a string",
                            FieldKind::JsonList => "must be a JSON array",
                        }));
                    }
                    if field.name == self.recipient {
                        let text = value.as_str().unwrap_or_default();
                        (self.check_recipient)(text).map_err(|reason| err(&reason))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_field(field: &FieldSpec, raw: &str) -> Result<Value, FieldError> {
    let err = |reason: String| FieldError {
        field: field.name.to_owned(),
        reason,
    };
    match field.kind {
        FieldKind::String => Ok(Value::String(raw.to_owned())),
        FieldKind::Number => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| err(format!("not a whole number: {raw:?}"))),
        FieldKind::JsonList => match serde_json::from_str::<Value>(raw) {
            Ok(list @ Value::Array(_)) => Ok(list),
            Ok(_) => Err(err("must be a JSON array".to_owned())),
            Err(e) => Err(err(format!("malformed JSON: {e}"))),
        },
    }
}

/// Recipient check shared by APIs whose recipient is free text: non-empty, no surrounding space,
/// and no character a person cannot see or type: control characters (NUL, tab, line breaks),
/// format characters (byte-order mark, zero-width space and joiners, direction marks) and the
/// other default-ignorable code points (variation selectors, Hangul fillers). Such an id is
/// at best a typo and at worst an invisible copy of another recipient, issued a second time.
pub fn check_plain_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        Err("empty".to_owned())
    } else if id.trim() != id {
        Err(format!("has leading or trailing whitespace: {id:?}"))
    } else if let Some((at, c)) = id.char_indices().find(|&(_, c)| is_invisible(c)) {
        Err(format!(
            "contains an invisible or control character U+{:04X} at byte {at}: {}",
            u32::from(c),
            id.escape_debug()
        ))
    } else {
        Ok(())
    }
}

/// Control, format and default-ignorable characters, and line or paragraph separators.
fn is_invisible(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    if c.is_ascii_graphic() {
        return false;
    }
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    matches!(
        category,
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_invisible_characters_are_refused() {
        for id in [
            "AX\u{0}BZ",
            "\u{feff}AXBZ",
            "AX\u{200b}BZ",
            "AX\u{200d}BZ",
            "AX\u{2060}BZ",
            "AX\u{202e}BZ",
            "AX\u{3164}BZ",
            "AX\u{fe0f}BZ",
            "AX\u{7f}BZ",
            "AX\u{2028}BZ",
        ] {
            let reason = check_plain_id(id).unwrap_err();
            assert!(
                reason.contains("invisible or control character U+"),
                "{reason}"
            );
        }
        for id in ["AXBZ", "A-x_z.9+/=", "张三", "AX BZ"] {
            assert_eq!(check_plain_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn response_keys_keep_both_prefixes() {
        assert_eq!(
            find_api("tmall.nrt.certificate.send")
                .unwrap()
                .response_key(),
            "tmall_nrt_certificate_send_response"
        );
        assert_eq!(
            find_api("alibaba.alsc.right.decisionsend")
                .unwrap()
                .response_key(),
            "alibaba_alsc_right_decisionsend_response"
        );
        assert!(find_api("taobao.item.get").is_none());
    }

    #[test]
    fn builds_typed_object_once() {
        let api = find_api("tmall.nrt.certificate.send").unwrap();
        let values = [
            ("channel", "7"),
            ("open_id", "AXBZ"),
            ("out_id", "123"),
            ("biz_code", "23"),
        ];
        let json = api
            .build_object(|name| values.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
            .unwrap();
        assert_eq!(
            json,
            r#"{"channel":7,"open_id":"AXBZ","out_id":123,"biz_code":"23"}"#
        );
        api.check_object(&serde_json::from_str(&json).unwrap())
            .unwrap();
    }

    #[test]
    fn rejects_bad_numbers_lists_and_recipients() {
        let tmall = find_api("tmall.nrt.certificate.send").unwrap();
        let err = tmall
            .build_object(|name| match name {
                "channel" => Some("seven"),
                _ => Some("1"),
            })
            .unwrap_err();
        assert_eq!(err.field, "channel");

        let alsc = find_api("alibaba.alsc.right.decisionsend").unwrap();
        let base = |over: (&'static str, &'static str)| {
            move |name: &str| {
                if name == over.0 {
                    return Some(over.1);
                }
                match name {
                    "alipay_id" => Some("2088111111111111"),
                    "act_codes" | "right_act_list" => Some(r#"["a"]"#),
                    _ => Some("x"),
                }
            }
        };
        assert!(alsc.build_object(base(("scene_code", "s"))).is_ok());
        assert_eq!(
            alsc.build_object(base(("alipay_id", "2087111111111111")))
                .unwrap_err()
                .field,
            "alipay_id"
        );
        assert_eq!(
            alsc.build_object(base(("alipay_id", "208811111111111")))
                .unwrap_err()
                .field,
            "alipay_id"
        );
        assert_eq!(
            alsc.build_object(base(("act_codes", "[\"a\"")))
                .unwrap_err()
                .field,
            "act_codes"
        );
        assert_eq!(
            alsc.build_object(base(("act_codes", "{}")))
                .unwrap_err()
                .field,
            "act_codes"
        );
        assert_eq!(
            tmall
                .build_object(|n| if n == "open_id" {
                    Some(" A")
                } else {
                    Some("1")
                })
                .unwrap_err()
                .field,
            "open_id"
        );
    }

    #[test]
    fn check_object_wants_types_and_required_fields() {
        let api = find_api("tmall.nrt.certificate.send").unwrap();
        let bad: Value =
            serde_json::from_str(r#"{"channel":"7","open_id":"A","out_id":1,"biz_code":"2"}"#)
                .unwrap();
        assert_eq!(api.check_object(&bad).unwrap_err().field, "channel");
        let missing: Value =
            serde_json::from_str(r#"{"channel":7,"open_id":"A","out_id":1}"#).unwrap();
        assert_eq!(api.check_object(&missing).unwrap_err().field, "biz_code");
    }
}
