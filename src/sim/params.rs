//! The request's parameters: the query string and the form body read as one set
//! ([`Params`]), and the business params of each method read from it, with the gateway's codes
//! for what is missing or malformed (40, 50 `isv.invalid-parameter`).

use serde_json::{Map, Value};

use super::answer::ErrorAnswer;
use super::call::{CertificateQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, QUERY_PARAM};
use crate::top::ApiSpec;
use crate::top::sign::is_sent;

/// The request parameters: the query string and the form body together. A name given twice
/// keeps its first value (the query string's); blank values count as absent, as in signing.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>, body: &[u8]) -> Self {
        let mut params: Vec<(String, String)> = Vec::with_capacity(12);
        let query = query.unwrap_or_default().as_bytes();
        for part in [query, body] {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(part).unwrap_or_default();
            for (name, value) in pairs {
                if is_sent(&name, &value) && !params.iter().any(|(n, _)| *n == name) {
                    params.push((name, value));
                }
            }
        }
        Params(params)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The named object param as a JSON object, or code 50 naming what is wrong.
fn object_param(name: &str, params: &Params) -> Result<Map<String, Value>, ErrorAnswer> {
    let text = params
        .get(name)
        .ok_or_else(|| ErrorAnswer::invalid_parameter(format!("{name}: required but missing")))?;
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ErrorAnswer::invalid_parameter(format!(
            "{name}: not a JSON object"
        ))),
        Err(e) => Err(ErrorAnswer::invalid_parameter(format!(
            "{name}: not JSON: {e}"
        ))),
    }
}

pub(crate) fn issue_object(
    api: &ApiSpec,
    params: &Params,
) -> Result<Map<String, Value>, ErrorAnswer> {
    let name = api.object_param;
    let object = object_param(name, params)?;
    // Moved into a Value for the check and back out: no copy.
    let value = Value::Object(object);
    api.check_object(&value)
        .map_err(|e| ErrorAnswer::invalid_parameter(format!("{name}.{e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => unreachable!("built from a map"),
    }
}

/// `nrt_certificate_instance_query_d_t_o`: `open_id`, `codes` (comma-separated, or a JSON
/// array), `biz_code` (strings), `page_size` and `current_page` (numbers, or numbers as
/// strings). At least one of `open_id` and `codes` is required.
pub(crate) fn certificate_query(params: &Params) -> Result<CertificateQuery, ErrorAnswer> {
    let object = object_param(QUERY_PARAM, params)?;
    let bad = |field: &str, why: &str| {
        ErrorAnswer::invalid_parameter(format!("{QUERY_PARAM}.{field}: {why}"))
    };
    let text = |field: &str| -> Result<Option<String>, ErrorAnswer> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(field, "must be a string")),
        }
    };
    let number = |field: &str, default: u32, max: u32| -> Result<u32, ErrorAnswer> {
        let n = match object.get(field) {
            None | Some(Value::Null) => return Ok(default),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u32),
            _ => Err(bad(
                field,
                &format!("must be a whole number from 1 to {max}"),
            )),
        }
    };
    let codes = match object.get("codes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("codes", "must be a string or a list of strings"))?,
        Some(_) => return Err(bad("codes", "must be a string or a list of strings")),
    };
    let query = CertificateQuery {
        open_id: text("open_id")?,
        codes,
        biz_code: text("biz_code")?,
        page_size: number("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?,
        current_page: number("current_page", 1, u32::MAX)?,
    };
    if query.open_id.is_none() && query.codes.is_empty() {
        return Err(bad("open_id", "open_id or codes is required"));
    }
    Ok(query)
}

/// `fields` of `taobao.user.seller.get`: required, comma-separated.
pub(crate) fn seller_fields(params: &Params) -> Result<Vec<String>, ErrorAnswer> {
    let fields = params.get("fields").ok_or_else(|| {
        ErrorAnswer::new(40, "Missing Required Arguments")
            .with_sub_code("isv.missing-parameter")
            .with_sub_msg("fields")
    })?;
    Ok(fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_body_are_one_parameter_set() {
        let params = Params::parse(Some("a=1&b=&c=3"), b"a=9&b=2");
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), Some("2"));
        assert_eq!(params.get("c"), Some("3"));
        assert_eq!(params.get("d"), None);
    }
}
