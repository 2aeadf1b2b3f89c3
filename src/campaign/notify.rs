//! The optional `[notify]` table: where to post a chat message when a run finishes, halts or is
//! interrupted, and the signing secret's environment variable (the secret never lives in the
//! file).

use std::time::Duration;

use super::doc::Section;
use super::{Campaign, CampaignError, EnvSecret};
use crate::notify::NotifyKind;
use crate::secret::Secret;

pub(super) const NOTIFY_KEYS: &[&str] =
    &["url", "kind", "every_minutes", "secret_env", "timeout_ms"];

/// The variable a DingTalk or Feishu signing secret is read from when `secret_env` is not set.
pub(crate) const DEFAULT_NOTIFY_SECRET_ENV: &str = "NOTIFY_SECRET";

/// The `[notify]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotifyConfig {
    /// The webhook, e.g. `https://oapi.dingtalk.com/robot/send?access_token=...`. It is a
    /// credential of sorts: messages about notifications name only its host.
    pub(crate) url: String,
    pub(crate) kind: NotifyKind,
    /// A progress message this often during a run; `None`: only at the end.
    pub(crate) every: Option<Duration>,
    /// The environment variable holding the signing secret (DingTalk, Feishu).
    pub(crate) secret_env: String,
    /// Whether `secret_env` was named in the file: then the variable must be set.
    pub(crate) secret_required: bool,
    /// Time allowed for one post, connect included.
    pub(crate) timeout: Duration,
}

pub(super) fn parse(mut s: Section<'_, '_>) -> Result<NotifyConfig, CampaignError> {
    let url = s.required_string("url", "the webhook to post to")?;
    let lower = url.get_ref().to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://"))
        || url.get_ref().contains(char::is_whitespace)
    {
        return Err(s.error(&url.span(), "url", "must be an http(s) URL"));
    }
    let kind = s.required_string("kind", "dingtalk, wecom, feishu or json")?;
    let kind_value = kind
        .get_ref()
        .parse::<NotifyKind>()
        .map_err(|m| s.error(&kind.span(), "kind", m))?;
    let every = s.number("every_minutes", &super::bounds::NOTIFY_EVERY_MINUTES)?;
    let secret_env = s.string("secret_env")?;
    if let Some(var) = &secret_env {
        if !matches!(kind_value, NotifyKind::DingTalk | NotifyKind::Feishu) {
            return Err(s.error(
                &var.span(),
                "secret_env",
                "only DingTalk and Feishu robots are signed",
            ));
        }
        let name = var.get_ref();
        let valid = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(s.error(
                &var.span(),
                "secret_env",
                "must be an environment variable name (letters, digits, _)",
            ));
        }
    }
    let timeout = s
        .integer::<u64>("timeout_ms", &super::bounds::TIMEOUT_MS)?
        .unwrap_or(5_000);
    Ok(NotifyConfig {
        url: url.into_inner(),
        kind: kind_value,
        every: every.map(|m| Duration::from_secs_f64(m * 60.0)),
        secret_required: secret_env.is_some(),
        secret_env: secret_env.map_or_else(
            || DEFAULT_NOTIFY_SECRET_ENV.to_owned(),
            toml::Spanned::into_inner,
        ),
        timeout: Duration::from_millis(timeout),
    })
}

impl Campaign {
    /// The notification signing secret, for DingTalk and Feishu robots: read from `secret_env`
    /// (default `NOTIFY_SECRET`); `None` when unset, which is an error only when the file named
    /// the variable.
    pub(crate) fn notify_secret(&self) -> Result<Option<Secret>, CampaignError> {
        let Some(notify) = &self.notify else {
            return Ok(None);
        };
        if !matches!(notify.kind, NotifyKind::DingTalk | NotifyKind::Feishu) {
            return Ok(None);
        }
        match self.env_secret(&notify.secret_env)? {
            EnvSecret::Set(secret) => Ok(Some(secret)),
            unset_or_blank if notify.secret_required => Err(self.env_error(
                &notify.secret_env,
                format!(
                    "{}; notify.secret_env names it for the robot's signing secret",
                    unset_or_blank.describe()
                ),
            )),
            EnvSecret::Unset | EnvSecret::Blank => Ok(None),
        }
    }
}
