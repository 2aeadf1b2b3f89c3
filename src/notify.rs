//! Chat notifications (`[notify]`): one message when a run finishes, halts or is interrupted,
//! and optionally a progress message every few minutes, posted to a DingTalk, WeCom or Feishu
//! group robot or as plain JSON.
//!
//! A notification is a courtesy: one that fails (refused, unreachable, too slow) is a warning in
//! the log and never changes the run or its exit code. Each post has a short timeout and follows
//! no redirect. Messages about a notification name only the webhook's host: its URL carries the
//! robot's access token.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::campaign::NotifyConfig;
use crate::domain::{RunCounters, StatusCounts};
use crate::results::summary::human_duration;
use crate::secret::Secret;

/// Where the message goes, and so its shape and signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotifyKind {
    /// A DingTalk group robot: `{"msgtype":"text",...}`; signed with `timestamp` and `sign` in
    /// the query string.
    DingTalk,
    /// A WeCom (WeChat Work) group robot: `{"msgtype":"text",...}`; not signed.
    WeCom,
    /// A Feishu (Lark) custom bot: `{"msg_type":"text",...}`; signed with `timestamp` and
    /// `sign` in the body.
    Feishu,
    /// A plain JSON object with every field (below), for your own receiver.
    Json,
}

impl FromStr for NotifyKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "dingtalk" => Ok(NotifyKind::DingTalk),
            "wecom" => Ok(NotifyKind::WeCom),
            "feishu" => Ok(NotifyKind::Feishu),
            "json" => Ok(NotifyKind::Json),
            other => Err(format!(
                "unknown kind {other:?} (expected dingtalk, wecom, feishu or json)"
            )),
        }
    }
}

/// What a message reports.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    pub(crate) campaign: String,
    pub(crate) api: String,
    /// `finished`, `halted`, `interrupted` or `progress`.
    pub(crate) event: &'static str,
    /// Rows per status (at the end), or `None` for progress.
    pub(crate) counts: Option<StatusCounts>,
    /// Rows this run has to send, for progress.
    pub(crate) to_send: u64,
    /// What this run did so far.
    pub(crate) counters: RunCounters,
    pub(crate) elapsed: Duration,
    /// Why the run halted, or a note (limit reached).
    pub(crate) reason: Option<String>,
    pub(crate) results: String,
}

impl Event {
    /// Requests per second over the run so far.
    pub(crate) fn rate(&self) -> f64 {
        match self.elapsed.as_secs_f64() {
            secs if secs > 0.0 => (self.counters.sent as f64 / secs * 10.0).round() / 10.0,
            _ => 0.0,
        }
    }

    /// The message as chat text.
    pub(crate) fn text(&self) -> String {
        let c = &self.counters;
        let mut lines = vec![format!(
            "campaign {} ({}): {}",
            self.campaign, self.api, self.event
        )];
        match &self.counts {
            Some(n) => lines.push(format!(
                "issued {}, failed {}, invalid {}, duplicate {}, uncertain {}, pending {}",
                n.issued, n.failed, n.invalid, n.duplicate, n.uncertain, n.pending
            )),
            None => lines.push(format!(
                "{} of {} rows done in this run: issued {}, failed {}, uncertain {}",
                c.done(),
                self.to_send,
                c.issued,
                c.failed,
                c.uncertain
            )),
        }
        lines.push(format!(
            "{} requests in {} ({:.1}/s)",
            c.sent,
            human_duration(self.elapsed),
            self.rate()
        ));
        if let Some(reason) = &self.reason {
            lines.push(reason.clone());
        }
        lines.push(format!("results: {}", self.results));
        lines.join("\n")
    }

    /// The plain JSON body (`kind = "json"`).
    pub(crate) fn json(&self) -> Value {
        json!({
            "campaign": self.campaign,
            "api": self.api,
            "event": self.event,
            "counts": self.counts,
            "to_send": self.to_send,
            "sent": self.counters.sent,
            "issued": self.counters.issued,
            "failed": self.counters.failed,
            "uncertain": self.counters.uncertain,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "rate": self.rate(),
            "reason": self.reason,
            "results": self.results,
            "text": self.text(),
        })
    }
}

/// DingTalk's signature: base64 of HMAC-SHA256 keyed with the secret over
/// `"{timestamp_ms}\n{secret}"`.
pub(crate) fn dingtalk_sign(secret: &str, timestamp_ms: u128) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu's signature: base64 of HMAC-SHA256 keyed with `"{timestamp_s}\n{secret}"` over
/// nothing.
pub(crate) fn feishu_sign(secret: &str, timestamp_s: u64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Why a notification was not delivered; logged as a warning, never fatal.
#[derive(Debug, thiserror::Error)]
enum NotifyError {
    #[error("{0}")]
    Http(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("refused the message: {0}")]
    Refused(String),
}

/// Posts events to the configured webhook.
#[derive(Clone, Debug)]
pub(crate) struct Notifier {
    http: reqwest::Client,
    url: reqwest::Url,
    kind: NotifyKind,
    secret: Option<Secret>,
}

impl Notifier {
    /// Builds the HTTP client; fails on a URL it cannot parse.
    pub(crate) fn new(config: &NotifyConfig, secret: Option<Secret>) -> anyhow::Result<Notifier> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| anyhow::anyhow!("notify.url is not a URL: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("campaign/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier {
            http,
            url,
            kind: config.kind,
            secret,
        })
    }

    /// Posts `event`; a failure is logged as a warning and otherwise ignored.
    pub(crate) async fn post(&self, event: &Event) {
        let host = self.url.host_str().unwrap_or("?").to_owned();
        match self.try_post(event).await {
            Ok(()) => tracing::debug!("notification ({}) posted to {host}", event.event),
            Err(e) => tracing::warn!(
                "notification ({}) to {host} failed: {e}; the run is not affected",
                event.event
            ),
        }
    }

    async fn try_post(&self, event: &Event) -> Result<(), NotifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut url = self.url.clone();
        let text = event.text();
        let body = match self.kind {
            NotifyKind::DingTalk => {
                if let Some(secret) = &self.secret {
                    let ms = now.as_millis();
                    url.query_pairs_mut()
                        .append_pair("timestamp", &ms.to_string())
                        .append_pair("sign", &dingtalk_sign(secret.expose(), ms));
                }
                json!({"msgtype": "text", "text": {"content": text}})
            }
            NotifyKind::WeCom => json!({"msgtype": "text", "text": {"content": text}}),
            NotifyKind::Feishu => {
                let mut body = json!({"msg_type": "text", "content": {"text": text}});
                if let Some(secret) = &self.secret {
                    let secs = now.as_secs();
                    body["timestamp"] = json!(secs.to_string());
                    body["sign"] = json!(feishu_sign(secret.expose(), secs));
                }
                body
            }
            NotifyKind::Json => event.json(),
        };
        let http_error = |e: reqwest::Error| NotifyError::Http(e.without_url().to_string());
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status();
        let answer = response.bytes().await.map_err(http_error)?;
        if !status.is_success() {
            return Err(NotifyError::Status(status.as_u16()));
        }
        refusal(&answer).map_or(Ok(()), |why| Err(NotifyError::Refused(why)))
    }
}

/// The robots answer HTTP 200 with an error code in the body (`errcode` for DingTalk and WeCom,
/// `code` or `StatusCode` for Feishu); a non-zero one is a refusal (bad signature, keyword,
/// rate limit).
fn refusal(answer: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(answer).ok()?;
    let code = ["errcode", "code", "StatusCode"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_i64))?;
    (code != 0).then(|| {
        let message = ["errmsg", "msg", "StatusMessage"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str))
            .unwrap_or("");
        format!("code {code} {message}").trim_end().to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_robots_schemes() {
        // Computed independently: python3 -c 'import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()))'
        assert_eq!(
            dingtalk_sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
        // python3 -c 'import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b"1700000000\nabc", b"", hashlib.sha256).digest()))'
        assert_eq!(
            feishu_sign("abc", 1_700_000_000),
            "VIS10b0EBvzzSdFnuk4tznEmK5wHaruvf/WnViv2yR4="
        );
    }

    #[test]
    fn an_error_code_in_the_answer_is_a_refusal() {
        assert_eq!(refusal(br#"{"errcode":0,"errmsg":"ok"}"#), None);
        assert_eq!(refusal(br#"{"code":0,"msg":"success"}"#), None);
        assert_eq!(
            refusal(br#"{"errcode":310000,"errmsg":"sign not match"}"#).as_deref(),
            Some("code 310000 sign not match")
        );
        assert_eq!(
            refusal(br#"{"code":19021,"msg":"sign match fail"}"#).as_deref(),
            Some("code 19021 sign match fail")
        );
        assert_eq!(refusal(b"ok"), None);
    }

    #[test]
    fn kinds_are_spelled_as_in_the_campaign_file() {
        assert_eq!("feishu".parse::<NotifyKind>(), Ok(NotifyKind::Feishu));
        assert!("slack".parse::<NotifyKind>().is_err());
    }
}
