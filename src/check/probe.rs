//! The harmless signed calls `campaign check` makes: `taobao.time.get` (no session; proves the
//! app key, the secret and the sign method, and gives the gateway's clock) and
//! `taobao.user.seller.get` (needs the session; proves it). Neither issues anything.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::campaign::{Campaign, Secrets};
use crate::secret::Secret;
use crate::top::params::{Credentials, parse_timestamp, signed_form, timestamp_now};
use crate::top::scrub::Scrubber;

/// The platform's (or the network's) refusal of a probe, scrubbed of the secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProbeError {
    /// Nothing answered: refused, unreachable, DNS, TLS, timeout.
    Unreachable(String),
    /// An `error_response`: code, sub-code and message.
    Refused {
        code: String,
        sub_code: Option<String>,
        message: String,
    },
    /// An answer that is not what the method returns (not JSON, an HTML page, a redirect).
    Unexpected(String),
}

/// One successful probe.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) body: Value,
    pub(crate) latency: Duration,
    /// Halfway between sending and the answer, on this machine's clock.
    pub(crate) midpoint: DateTime<Utc>,
}

/// Calls the gateway as the campaign would: same URL, app key, secret, sign method, timeouts.
pub(crate) struct Prober {
    http: reqwest::Client,
    url: String,
    app_key: String,
    secret: Secret,
    session: Option<Secret>,
    sign_method: crate::top::SignMethod,
    scrubber: Scrubber,
}

impl Prober {
    pub(crate) fn new(campaign: &Campaign, secrets: &Secrets, url: String) -> anyhow::Result<Self> {
        let timeout = campaign.gateway.timeout;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(campaign.gateway.connect_timeout.min(timeout))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("campaign/", env!("CARGO_PKG_VERSION")));
        if reqwest::Url::parse(&url).is_ok_and(|u| crate::top::client::is_loopback(&u)) {
            builder = builder.no_proxy();
        }
        let secret_texts = [Some(&secrets.app_secret), secrets.session.as_ref()];
        Ok(Prober {
            http: builder.build()?,
            url,
            app_key: campaign.gateway.app_key.clone(),
            secret: secrets.app_secret.clone(),
            session: secrets.session.clone(),
            sign_method: campaign.gateway.sign_method,
            scrubber: Scrubber::new(secret_texts.into_iter().flatten().map(Secret::expose)),
        })
    }

    /// `taobao.time.get`: the gateway's clock.
    pub(crate) async fn time(&self) -> Result<(DateTime<Utc>, Answer), ProbeError> {
        let answer = self.call("taobao.time.get", ("", ""), false).await?;
        let time = answer
            .body
            .pointer("/time_get_response/time")
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
            .ok_or_else(|| {
                ProbeError::Unexpected(format!(
                    "no time in the answer: {}",
                    self.scrubber.text(&answer.body.to_string())
                ))
            })?;
        Ok((time.with_timezone(&Utc), answer))
    }

    /// `taobao.user.seller.get` with the session: the seller's nick.
    pub(crate) async fn seller(&self) -> Result<String, ProbeError> {
        let answer = self
            .call("taobao.user.seller.get", ("fields", "nick"), true)
            .await?;
        let nick = answer
            .body
            .pointer("/user_seller_get_response/user/nick")
            .and_then(Value::as_str)
            .unwrap_or("?");
        Ok(self.scrubber.text(nick))
    }

    async fn call(
        &self,
        method: &str,
        param: (&str, &str),
        with_session: bool,
    ) -> Result<Answer, ProbeError> {
        let credentials = Credentials {
            app_key: &self.app_key,
            secret: self.secret.expose(),
            session: self
                .session
                .as_ref()
                .filter(|_| with_session)
                .map(Secret::expose),
            sign_method: self.sign_method,
        };
        let form = signed_form(method, param, &credentials, &timestamp_now());
        let body = serde_urlencoded::to_string(&form).expect("text pairs encode");
        let sent_at = Utc::now();
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        let latency = started.elapsed();
        let midpoint = sent_at + chrono::Duration::from_std(latency / 2).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
            ProbeError::Unexpected(format!(
                "HTTP {status} with a body that is not a TOP answer: {}",
                self.scrubber.text(&String::from_utf8_lossy(&bytes))
            ))
        })?;
        if let Some(error) = body.get("error_response") {
            let text = |k: &str| {
                error.get(k).and_then(|v| match v {
                    Value::String(s) => Some(self.scrubber.text(s)),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
            };
            return Err(ProbeError::Refused {
                code: text("code").unwrap_or_default(),
                sub_code: text("sub_code"),
                message: text("sub_msg").or_else(|| text("msg")).unwrap_or_default(),
            });
        }
        if !status.is_success() {
            return Err(ProbeError::Unexpected(format!("HTTP {status}")));
        }
        Ok(Answer {
            body,
            latency,
            midpoint,
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> ProbeError {
        // The error's own text names the URL; the causes say what went wrong.
        let mut text = if error.is_connect() {
            "cannot connect".to_owned()
        } else if error.is_timeout() {
            "no answer in time".to_owned()
        } else {
            "the exchange failed".to_owned()
        };
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        ProbeError::Unreachable(self.scrubber.text(&text))
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Unreachable(why) => write!(f, "no answer from the gateway: {why}"),
            ProbeError::Refused {
                code,
                sub_code,
                message,
            } => write!(
                f,
                "refused: code {code}{}: {message}",
                sub_code
                    .as_deref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default()
            ),
            ProbeError::Unexpected(what) => write!(f, "unexpected answer: {what}"),
        }
    }
}
