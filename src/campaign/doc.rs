//! Walking the parsed campaign file by hand, so that every error carries the file, line, column
//! and dotted field name, in our words rather than serde's.
//!
//! The document is parsed into toml's spanned tree ([`DeTable`]); each table becomes a
//! [`Section`] whose keys are taken one by one with a typed getter. Unknown keys are refused when
//! the section is opened.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::CampaignError;

/// Keys that look like secrets: refused anywhere, with a pointer to the environment.
const SECRET_KEYS: &[&str] = &[
    "app_secret",
    "appsecret",
    "secret",
    "secret_key",
    "session",
    "session_key",
    "sessionkey",
    "access_token",
];

/// The campaign file's path and text, for positions in messages.
pub(super) struct Doc<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Doc<'_> {
    /// An error at `span` about `field`.
    pub(crate) fn error(
        &self,
        span: &Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> CampaignError {
        let (line, column) = self.position(span.start);
        CampaignError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A TOML syntax error.
    pub(crate) fn syntax(&self, e: &toml::de::Error) -> CampaignError {
        let (line, column) = self.position(e.span().map_or(0, |s| s.start));
        CampaignError::Syntax {
            path: self.path.to_owned(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        (line, before[line_start..].chars().count() + 1)
    }

    /// Refuses secret-looking keys anywhere in the document.
    pub(crate) fn reject_secrets(
        &self,
        table: &DeTable<'_>,
        prefix: &str,
    ) -> Result<(), CampaignError> {
        for (key, value) in table {
            let field = format!("{prefix}{}", key.get_ref());
            if SECRET_KEYS.contains(&key.get_ref().to_ascii_lowercase().as_str()) {
                let (var, setting) = if key.get_ref().to_ascii_lowercase().contains("session") {
                    ("TOP_SESSION", "gateway.session_env")
                } else {
                    ("TOP_APP_SECRET", "gateway.app_secret_env")
                };
                return Err(self.error(
                    &key.span(),
                    &field,
                    format!(
                        "secrets never live in the campaign file: remove it and set the \
                         environment variable {var} (or name another one with {setting})"
                    ),
                ));
            }
            if let DeValue::Table(inner) = value.get_ref() {
                self.reject_secrets(inner, &format!("{field}."))?;
            }
        }
        Ok(())
    }
}

/// A key and its value.
pub(super) struct Entry<'i> {
    pub(crate) key: Spanned<String>,
    pub(crate) value: Spanned<DeValue<'i>>,
}

/// One table of the campaign file.
pub(super) struct Section<'d, 'i> {
    doc: &'d Doc<'d>,
    prefix: String,
    /// Where the table is named (its header), for "required" errors; `0..0` for the root.
    pub(crate) span: Range<usize>,
    entries: Vec<Entry<'i>>,
}

impl<'d, 'i> Section<'d, 'i> {
    /// Opens a table; a key not in `known` is an error (`known` empty: any key).
    pub(crate) fn new(
        doc: &'d Doc<'d>,
        prefix: &str,
        span: Range<usize>,
        table: DeTable<'i>,
        known: &[&str],
    ) -> Result<Self, CampaignError> {
        let mut entries: Vec<Entry<'i>> = table
            .into_iter()
            .map(|(key, value)| Entry {
                key: Spanned::new(key.span(), key.into_inner().into_owned()),
                value,
            })
            .collect();
        entries.sort_by_key(|e| e.key.span().start);
        let section = Section {
            doc,
            prefix: prefix.to_owned(),
            span,
            entries,
        };
        if !known.is_empty()
            && let Some(unknown) = section
                .entries
                .iter()
                .find(|e| !known.contains(&e.key.get_ref().as_str()))
        {
            return Err(section.error(
                &unknown.key.span(),
                unknown.key.get_ref(),
                format!("unknown key (expected one of: {})", known.join(", ")),
            ));
        }
        Ok(section)
    }

    /// The dotted name of a key of this table.
    pub(crate) fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// An error at `span` about `key` of this table.
    pub(crate) fn error(
        &self,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> CampaignError {
        self.doc.error(span, &self.field(key), message)
    }

    /// Takes the entries not taken yet, in file order.
    pub(crate) fn take_all(&mut self) -> Vec<Entry<'i>> {
        std::mem::take(&mut self.entries)
    }

    fn take(&mut self, key: &str) -> Option<Spanned<DeValue<'i>>> {
        let at = self.entries.iter().position(|e| e.key.get_ref() == key)?;
        Some(self.entries.remove(at).value)
    }

    fn wrong_type(&self, key: &str, value: &Spanned<DeValue<'_>>, expected: &str) -> CampaignError {
        self.error(
            &value.span(),
            key,
            format!("expected {expected}, found {}", value.get_ref().type_str()),
        )
    }

    /// "required" at the table's header.
    pub(crate) fn missing(&self, key: &str, why: &str) -> CampaignError {
        self.error(&self.span, key, format!("missing: {why}"))
    }

    /// A string value.
    pub(crate) fn string(&mut self, key: &str) -> Result<Option<Spanned<String>>, CampaignError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => Ok(Some(Spanned::new(value.span(), s.to_string()))),
            _ => Err(self.wrong_type(key, &value, "a string")),
        }
    }

    /// `true`, `false` or a string: a switch that may also name a path.
    pub(super) fn switch_or_string(
        &mut self,
        key: &str,
    ) -> Result<Option<Spanned<Result<bool, String>>>, CampaignError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(Some(Spanned::new(value.span(), Ok(*b)))),
            DeValue::String(s) => Ok(Some(Spanned::new(value.span(), Err(s.to_string())))),
            _ => Err(self.wrong_type(key, &value, "true, false or a path")),
        }
    }

    /// A boolean value.
    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, CampaignError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            _ => Err(self.wrong_type(key, &value, "true or false")),
        }
    }

    /// A string value that must be there.
    pub(crate) fn required_string(
        &mut self,
        key: &str,
        why: &str,
    ) -> Result<Spanned<String>, CampaignError> {
        self.string(key)?.ok_or_else(|| self.missing(key, why))
    }

    /// A string or an integer, as text (app keys and codes are often written bare).
    pub(crate) fn text(&mut self, key: &str) -> Result<Option<Spanned<String>>, CampaignError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let text = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(_) => integer(value.get_ref())
                .map_err(|m| self.error(&value.span(), key, m))?
                .to_string(),
            _ => return Err(self.wrong_type(key, &value, "a string or an integer")),
        };
        Ok(Some(Spanned::new(value.span(), text)))
    }

    /// A whole number within `range` (see `bounds`).
    pub(crate) fn integer<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        range: &std::ops::RangeInclusive<i64>,
    ) -> Result<Option<T>, CampaignError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let n = match value.get_ref() {
            DeValue::Integer(_) => integer(value.get_ref()).map_err(|_| {
                self.error(
                    &value.span(),
                    key,
                    super::bounds::check_int(range, i64::MAX).unwrap_err(),
                )
            })?,
            DeValue::Float(_) => {
                return Err(self.error(&value.span(), key, "must be a whole number"));
            }
            _ => return Err(self.wrong_type(key, &value, "a whole number")),
        };
        super::bounds::check_int(range, n).map_err(|m| self.error(&value.span(), key, m))?;
        T::try_from(n)
            .map(Some)
            .map_err(|_| self.error(&value.span(), key, "too large for this machine"))
    }

    /// A number (integer or float) within `range` (see `bounds`).
    pub(crate) fn number(
        &mut self,
        key: &str,
        range: &std::ops::RangeInclusive<f64>,
    ) -> Result<Option<f64>, CampaignError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let n = match value.get_ref() {
            // Digits too many for an i64 are far out of any bound.
            DeValue::Integer(_) => integer(value.get_ref()).map_or(f64::INFINITY, |n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().unwrap_or(f64::NAN),
            _ => return Err(self.wrong_type(key, &value, "a number")),
        };
        super::bounds::check_float(range, n).map_err(|m| self.error(&value.span(), key, m))?;
        Ok(Some(n))
    }

    /// A sub-table, opened as a [`Section`].
    pub(crate) fn section(
        &mut self,
        key: &str,
        known: &[&str],
    ) -> Result<Option<Section<'d, 'i>>, CampaignError> {
        let at = self.entries.iter().position(|e| e.key.get_ref() == key);
        let Some(entry) = at.map(|at| self.entries.remove(at)) else {
            return Ok(None);
        };
        let span = entry.key.span();
        match entry.value.into_inner() {
            DeValue::Table(table) => Section::new(
                self.doc,
                &format!("{}.", self.field(key)),
                span,
                table,
                known,
            )
            .map(Some),
            other => Err(self.error(
                &span,
                key,
                format!("expected a table, found {}", other.type_str()),
            )),
        }
    }
}

/// The value of a TOML integer, which the parser keeps as text.
pub(super) fn integer(value: &DeValue<'_>) -> Result<i64, &'static str> {
    match value {
        DeValue::Integer(i) => {
            i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| "number too large")
        }
        _ => Err("expected an integer"),
    }
}
