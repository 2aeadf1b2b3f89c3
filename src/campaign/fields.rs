//! The campaign file's keys, their types, defaults and checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::bounds;
use super::doc::{Doc, Entry, Section, integer};
use super::values::{Concurrency, Qps};
use super::{Campaign, CampaignError, Gateway, GatewayUrl, Limits, ReportFile, SIM_APP_KEY};
use crate::input::{Format, parse_encoding};
use crate::top::{APIS, ApiSpec, FieldKind, find_api};

const TOP_KEYS: &[&str] = &[
    "name",
    "api",
    "input",
    "format",
    "sheet",
    "results",
    "state",
    "encoding",
    "bom",
    "report",
    "reconcile",
    "gateway",
    "limits",
    "params",
    "notify",
];
const GATEWAY_KEYS: &[&str] = &[
    "url",
    "app_key",
    "sign_method",
    "timeout_ms",
    "connect_timeout_ms",
    "app_secret_env",
    "session_env",
];
const LIMIT_KEYS: &[&str] = &[
    "qps",
    "concurrency",
    "max_concurrency",
    "max_attempts",
    "max_failure_rate",
    "min_rows_for_halt",
    "max_ban_wait_s",
    "max_issued",
    "max_outage_s",
    "reconcile_after_s",
];

pub(super) fn parse(path: &Path, text: &str) -> Result<Campaign, CampaignError> {
    let doc = Doc { path, text };
    let root = DeTable::parse(text)
        .map_err(|e| doc.syntax(&e))?
        .into_inner();
    doc.reject_secrets(&root, "")?;
    let mut top = Section::new(&doc, "", 0..0, root, TOP_KEYS)?;
    let dir = path.parent().unwrap_or(Path::new(""));

    let name = top.required_string("name", "the campaign's name is part of every request id")?;
    check_name(name.get_ref()).map_err(|m| top.error(&name.span(), "name", m))?;
    let name = name.into_inner();
    let api_name = top.required_string("api", "which TOP method to call")?;
    let api = find_api(api_name.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = APIS.iter().map(|a| a.method).collect();
        top.error(
            &api_name.span(),
            "api",
            format!(
                "unknown API {:?} (supported: {})",
                api_name.get_ref(),
                known.join(", ")
            ),
        )
    })?;
    let input = top.required_string("input", "the CSV of recipients")?;
    let input = file_path(&top, "input", dir, Some(input), "")?;
    let results = top.string("results")?;
    let results = file_path(
        &top,
        "results",
        dir,
        results,
        &format!("{name}.results.csv"),
    )?;
    let state = top.string("state")?;
    let state = file_path(&top, "state", dir, state, &format!("{name}.db"))?;
    let encoding = match top.string("encoding")? {
        None => None,
        Some(label) => Some(
            parse_encoding(label.get_ref()).map_err(|m| top.error(&label.span(), "encoding", m))?,
        ),
    };
    let bom = top.boolean("bom")?;
    let format = match top.string("format")? {
        None => None,
        Some(label) => Some(
            Format::parse(label.get_ref()).map_err(|m| top.error(&label.span(), "format", m))?,
        ),
    };
    let sheet = match top.string("sheet")? {
        Some(sheet) if format.unwrap_or_else(|| Format::of(&input)) != Format::Xlsx => {
            return Err(top.error(
                &sheet.span(),
                "sheet",
                "only a workbook input has sheets (an .xlsx file, or format = \"xlsx\")",
            ));
        }
        Some(sheet) if sheet.get_ref().is_empty() => {
            return Err(top.error(&sheet.span(), "sheet", "must not be empty"));
        }
        sheet => sheet.map(Spanned::into_inner),
    };
    let reconcile = top.boolean("reconcile")?.unwrap_or(true);
    let report = match top.switch_or_string("report")? {
        None => None,
        Some(v) => match v.get_ref() {
            Ok(false) => None,
            Ok(true) => Some(ReportFile::BesideResults),
            Err(path) if path.trim().is_empty() => {
                return Err(top.error(&v.span(), "report", "must be true, false or a path"));
            }
            Err(path) => Some(ReportFile::At(dir.join(path))),
        },
    };
    let gateway = match top.section("gateway", GATEWAY_KEYS)? {
        Some(section) => gateway(section)?,
        None => return Err(top.missing("gateway", "a [gateway] table with at least url")),
    };
    let limits = match top.section("limits", LIMIT_KEYS)? {
        Some(section) => limits(section)?,
        None => Limits::default(),
    };
    let params = match top.section("params", &[])? {
        Some(section) => params(section, api)?,
        None => BTreeMap::new(),
    };
    let notify = match top.section("notify", super::notify::NOTIFY_KEYS)? {
        Some(section) => Some(super::notify::parse(section)?),
        None => None,
    };
    Ok(Campaign {
        path: path.to_owned(),
        name,
        api,
        input,
        results,
        state,
        encoding,
        format,
        sheet,
        bom,
        report,
        gateway,
        limits,
        params,
        notify,
        reconcile,
    })
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        Err("must not be empty")
    } else if name.trim() != name {
        Err("must not have leading or trailing whitespace")
    } else if name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
        || name.starts_with('.')
    {
        Err(
            "must not contain / \\ or control characters, nor start with a dot: it names the default results and state files",
        )
    } else {
        Ok(())
    }
}

fn file_path(
    section: &Section<'_, '_>,
    key: &str,
    dir: &Path,
    value: Option<Spanned<String>>,
    default: &str,
) -> Result<PathBuf, CampaignError> {
    match value {
        None => Ok(dir.join(default)),
        Some(v) if v.get_ref().trim().is_empty() => {
            Err(section.error(&v.span(), key, "must not be empty"))
        }
        Some(v) => Ok(dir.join(v.get_ref())),
    }
}

fn gateway(mut s: Section<'_, '_>) -> Result<Gateway, CampaignError> {
    let url = s.required_string(
        "url",
        "an http(s) URL, or \"sim\" for the built-in simulator",
    )?;
    let url = parse_url(url.get_ref()).map_err(|m| s.error(&url.span(), "url", m))?;
    let app_key = match (s.text("app_key")?, &url) {
        (Some(key), _)
            if key.get_ref().trim().is_empty() || key.get_ref().trim() != key.get_ref() =>
        {
            return Err(s.error(
                &key.span(),
                "app_key",
                "must not be empty or padded with spaces",
            ));
        }
        (Some(key), _) => key.into_inner(),
        (None, GatewayUrl::Sim) => SIM_APP_KEY.to_owned(),
        (None, GatewayUrl::Http(_)) => {
            return Err(s.missing("app_key", "required for a real gateway"));
        }
    };
    let sign_method = match s.string("sign_method")? {
        None => crate::top::SignMethod::HmacSha256,
        Some(m) => m
            .get_ref()
            .parse()
            .map_err(|e: String| s.error(&m.span(), "sign_method", e))?,
    };
    let timeout = s
        .integer::<u64>("timeout_ms", &bounds::TIMEOUT_MS)?
        .unwrap_or(10_000);
    let connect_timeout = s
        .integer::<u64>("connect_timeout_ms", &bounds::TIMEOUT_MS)?
        .unwrap_or(3_000);
    let mut env_name = |key: &str, default: &str| -> Result<String, CampaignError> {
        let Some(var) = s.string(key)? else {
            return Ok(default.to_owned());
        };
        let valid = var
            .get_ref()
            .chars()
            .next()
            .is_some_and(|c| !c.is_ascii_digit())
            && var
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(s.error(
                &var.span(),
                key,
                "must be an environment variable name (letters, digits, _)",
            ));
        }
        Ok(var.into_inner())
    };
    let app_secret_env = env_name("app_secret_env", "TOP_APP_SECRET")?;
    let session_env = env_name("session_env", "TOP_SESSION")?;
    Ok(Gateway {
        url,
        app_key,
        sign_method,
        timeout: Duration::from_millis(timeout),
        connect_timeout: Duration::from_millis(connect_timeout),
        app_secret_env,
        session_env,
    })
}

fn parse_url(url: &str) -> Result<GatewayUrl, &'static str> {
    const EXPECTED: &str =
        "must be an http(s) URL such as https://eco.taobao.com/router/rest, or \"sim\"";
    if url == "sim" {
        return Ok(GatewayUrl::Sim);
    }
    if url.contains(char::is_whitespace) {
        return Err(EXPECTED);
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| EXPECTED)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(EXPECTED);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // The gateway authenticates by signature; credentials in a URL end up in logs and
        // proxies, and TOP never asks for them.
        return Err(
            "must not carry a user name or password (user:pass@host): TOP authenticates by the \
             signed request, and the app secret comes from the environment",
        );
    }
    Ok(GatewayUrl::Http(url.to_owned()))
}

fn limits(mut s: Section<'_, '_>) -> Result<Limits, CampaignError> {
    let defaults = Limits::default();
    let qps = s.number("qps", &bounds::QPS)?.map(Qps);
    let concurrency = s
        .integer::<usize>("concurrency", &bounds::CONCURRENCY)?
        .map(Concurrency);
    let max_concurrency = s
        .integer::<usize>("max_concurrency", &bounds::CONCURRENCY)?
        .map(Concurrency);
    let max_attempts = s.integer::<u32>("max_attempts", &bounds::MAX_ATTEMPTS)?;
    let max_failure_rate = s.number("max_failure_rate", &bounds::MAX_FAILURE_RATE)?;
    let min_rows_for_halt = s.integer::<u64>("min_rows_for_halt", &bounds::MIN_ROWS_FOR_HALT)?;
    let max_ban_wait = s.number("max_ban_wait_s", &bounds::MAX_BAN_WAIT_S)?;
    let max_outage = s.number("max_outage_s", &bounds::MAX_OUTAGE_S)?;
    let max_issued = s.integer::<u64>("max_issued", &bounds::MAX_ISSUED)?;
    let reconcile_after = s.number("reconcile_after_s", &bounds::RECONCILE_AFTER_S)?;
    Ok(Limits {
        qps: qps.unwrap_or(defaults.qps),
        concurrency,
        max_concurrency: max_concurrency.unwrap_or(defaults.max_concurrency),
        max_attempts: max_attempts.unwrap_or(defaults.max_attempts),
        max_failure_rate: max_failure_rate.unwrap_or(defaults.max_failure_rate),
        min_rows_for_halt: min_rows_for_halt.unwrap_or(defaults.min_rows_for_halt),
        max_ban_wait: max_ban_wait.map_or(defaults.max_ban_wait, Duration::from_secs_f64),
        max_issued,
        max_outage: max_outage.map_or(defaults.max_outage, Duration::from_secs_f64),
        reconcile_after: reconcile_after.map_or(defaults.reconcile_after, Duration::from_secs_f64),
    })
}

fn params(
    mut section: Section<'_, '_>,
    api: &'static ApiSpec,
) -> Result<BTreeMap<String, String>, CampaignError> {
    let mut params = BTreeMap::new();
    let known: Vec<&str> = api
        .param_fields()
        .filter(|f| Some(f.name) != api.idempotency_key)
        .map(|f| f.name)
        .collect();
    for Entry { key, value } in section.take_all() {
        let name = key.get_ref().as_str();
        let err = |span: &std::ops::Range<usize>, m: String| section.error(span, name, m);
        let spec = match api.field(name) {
            _ if Some(name) == api.idempotency_key => {
                return Err(err(
                    &key.span(),
                    format!(
                        "cannot be a campaign default: it is generated per row (UUID v3 of the campaign name \
                     and row identity) or taken from the input's {name} column"
                    ),
                ));
            }
            _ if name == api.recipient => {
                return Err(err(
                    &key.span(),
                    format!("is the recipient: it comes from the input's {name} column"),
                ));
            }
            Some(spec) => spec,
            None => {
                return Err(err(
                    &key.span(),
                    format!(
                        "not a param of {} (expected one of: {})",
                        api.method,
                        known.join(", ")
                    ),
                ));
            }
        };
        let text = match (value.get_ref(), spec.kind) {
            (DeValue::String(s), _) => s.to_string(),
            (DeValue::Integer(_), _) => integer(value.get_ref())
                .map_err(|m| err(&value.span(), m.to_owned()))?
                .to_string(),
            (DeValue::Array(_), FieldKind::JsonList) => to_json(value.get_ref())
                .map_err(|m| err(&value.span(), m.to_owned()))?
                .to_string(),
            (other, kind) => {
                let expected = if kind == FieldKind::JsonList {
                    "a string, an integer or an array"
                } else {
                    "a string or an integer"
                };
                return Err(err(
                    &value.span(),
                    format!("expected {expected}, found {}", other.type_str()),
                ));
            }
        };
        check_param(spec.kind, &text).map_err(|m| err(&value.span(), m))?;
        params.insert(name.to_owned(), text);
    }
    Ok(params)
}

/// A default must be sendable as it is: the same checks a row's value gets.
fn check_param(kind: FieldKind, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty (leave the key out for no default)".to_owned());
    }
    match kind {
        FieldKind::String => Ok(()),
        FieldKind::Number => text
            .parse::<i64>()
            .map(drop)
            .map_err(|_| format!("must be a whole number, not {text:?}")),
        FieldKind::JsonList => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(_)) => Ok(()),
            Ok(_) => Err("must be a JSON array".to_owned()),
            Err(e) => Err(format!("malformed JSON: {e}")),
        },
    }
}

/// A TOML array written in the campaign file, as the JSON list it stands for.
fn to_json(value: &DeValue<'_>) -> Result<Value, &'static str> {
    Ok(match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(_) => Value::from(integer(value)?),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or("a float that JSON cannot hold")?,
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(_) => {
            return Err("dates cannot be sent in a JSON list; write them as strings");
        }
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| to_json(i.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), to_json(v.get_ref())?)))
                .collect::<Result<_, &'static str>>()?,
        ),
    })
}
