//! The HTTP client for one issuing API: signs the form, POSTs it to the gateway over a pooled
//! connection, and turns whatever happens (answer, connect failure, timeout, reset) into an
//! [`Outcome`]. It never retries; the runner decides.
//!
//! The distinction that matters: a connect error means the request never left, so it is
//! `Unreachable` (sub-code `connect`) for every API: the gateway is down, not the row. Any
//! failure after the request may have been written (timeout, reset, truncated body) lost the
//! answer, so it is [`Outcome::answer_lost`].

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::api::ApiSpec;
use super::body::{OnWrite, StampedBody};
use super::outcome::TRANSPORT;
use super::outcome::{Outcome, PlatformError};
use super::params::{Credentials, encode_form, form_pairs, timestamp_now};
use super::query::{PageAnswer, QuerySpec, parse_page};
use super::response::{Parsed, parse_response};
use super::scrub::Scrubber;
use super::sign::{SignMethod, Signer, is_sent};
use crate::secret::Secret;

/// Idle connections kept per host: enough for hundreds of requests in flight over HTTP/1.1.
const POOL_PER_HOST: usize = 1024;
/// Idle connections are dropped well before a typical server keep-alive timeout (60 s), so a
/// request is rarely written onto a connection the server is closing, which would lose the
/// answer and make a non-idempotent row uncertain.
const POOL_IDLE: Duration = Duration::from_secs(20);
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

/// Where and as whom to call the gateway.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The gateway, e.g. `https://eco.taobao.com/router/rest`.
    pub url: String,
    pub app_key: String,
    pub secret: Secret,
    /// The user's session key; sent only to APIs that need it.
    pub session: Option<Secret>,
    pub sign_method: SignMethod,
    /// Time allowed to open a connection (the request has not left yet).
    pub connect_timeout: Duration,
    /// Time allowed for the whole call, connect included, until the answer is read.
    pub request_timeout: Duration,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("gateway url {url:?} is not an http(s) URL: {reason}")]
    Url { url: String, reason: String },
    #[error("{method} needs a user session key, but none was given")]
    MissingSession { method: &'static str },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// A client for one API. Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    app_key: String,
    secret: Secret,
    session: Option<Secret>,
    sign_method: SignMethod,
    /// Keyed with `secret` once; each request clones its state.
    signer: Signer,
    /// Cleans every answer of the secret and the session key before anyone keeps it.
    scrubber: Scrubber,
    api: &'static ApiSpec,
}

/// A signed, encoded request, ready to go. It carries the session key (for APIs that need one),
/// so it deliberately has no `Debug`.
pub struct PreparedRequest {
    body: String,
}

/// One page of a read API: its answer and the time it took.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryAttempt {
    pub answer: PageAnswer,
    pub latency: Duration,
}

/// One call: its classified outcome, the platform's `request_id` and the time it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    pub top_request_id: Option<String>,
    pub latency: Duration,
}

impl Client {
    /// Builds a client for `api`. Fails on a URL that is not http(s) and on a missing session
    /// for an API that needs one.
    pub fn new(config: ClientConfig, api: &'static ApiSpec) -> Result<Client, ClientError> {
        let url_error = |reason: String| ClientError::Url {
            url: config.url.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&config.url).map_err(|e| url_error(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(url_error(
                "expected http://HOST/... or https://HOST/...".to_owned(),
            ));
        }
        let scrubber = Scrubber::new(
            std::iter::once(config.secret.expose())
                .chain(config.session.as_ref().map(Secret::expose)),
        );
        let session = config
            .session
            .filter(|s| !s.expose().trim().is_empty() && api.needs_session);
        if api.needs_session && session.is_none() {
            return Err(ClientError::MissingSession { method: api.method });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(url_error(
                "a user name or password in the URL is never sent; remove it".to_owned(),
            ));
        }
        // The signed form (and the session key) must go to the configured URL and nowhere else.
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if is_loopback(&url) {
            // A local gateway (the simulator) is never reached through an HTTP(S)_PROXY.
            builder = builder.no_proxy();
        } else if url.scheme() == "http" {
            tracing::warn!(
                "gateway.url is plain http:// to {}: the session key and every signed request \
                 travel unencrypted (through any HTTP_PROXY too); use https://",
                url.host_str().unwrap_or("?")
            );
        }
        let http = builder
            // A connect that outlived the whole-call timeout would be reported as a timeout
            // (answer lost) although nothing was sent.
            .connect_timeout(config.connect_timeout.min(config.request_timeout))
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(POOL_PER_HOST)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .gzip(true)
            .user_agent(concat!("campaign/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        let signer = Signer::new(config.secret.expose(), config.sign_method);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                url,
                app_key: config.app_key,
                secret: config.secret,
                signer,
                scrubber,
                session,
                sign_method: config.sign_method,
                api,
            }),
        })
    }

    /// Sends one call with `object_json` (the object param, serialised once by the caller) as
    /// the value of the API's object param, exactly as given.
    pub async fn send(&self, object_json: &str) -> Attempt {
        self.send_prepared(self.prepare(object_json)).await
    }

    /// Signs and encodes a request without sending it, so that the work is done before the
    /// request's rate-limit slot and the send follows the slot closely.
    pub fn prepare(&self, object_json: &str) -> PreparedRequest {
        let api = self.inner.api;
        self.prepare_call(api.method, api.object_param, object_json)
    }

    /// Signs and encodes a call of `method` with one object param, with this client's
    /// credentials (the session goes with it when the client's API needs one).
    fn prepare_call(&self, method: &str, object_param: &str, object_json: &str) -> PreparedRequest {
        let inner = &*self.inner;
        let credentials = Credentials {
            app_key: &inner.app_key,
            secret: inner.secret.expose(),
            session: inner.session.as_ref().map(Secret::expose),
            sign_method: inner.sign_method,
        };
        let timestamp = timestamp_now();
        let pairs = form_pairs(
            method,
            (object_param, object_json),
            &credentials,
            &timestamp,
        );
        let signature = inner.signer.sign(&pairs);
        tracing::debug!(
            method,
            form = %Redacted(&[&pairs[..], &[("sign", signature.as_str())]].concat()),
            "prepared"
        );
        PreparedRequest {
            body: encode_form(&pairs, &signature),
        }
    }

    /// Asks one page of a read API (`spec`, which this client's API names as its
    /// `reconcile`) and reads the answer. A lost answer is transient: a query issues nothing.
    pub async fn query_page(&self, spec: &QuerySpec, object_json: &str) -> QueryAttempt {
        let request = self.prepare_call(spec.method, spec.object_param, object_json);
        let started = Instant::now();
        let answer = match self.post_raw(request.body, None).await {
            Ok((status, _location, bytes)) => parse_page(spec, status, bytes.as_ref()),
            Err(e) => PageAnswer {
                page: Err(transport_failure(&e, true)),
                top_request_id: None,
            },
        };
        let latency = started.elapsed();
        tracing::debug!(
            method = spec.method,
            ok = answer.page.is_ok(),
            top_request_id = answer.top_request_id.as_deref(),
            latency_ms = latency.as_millis() as u64,
            "answered"
        );
        QueryAttempt { answer, latency }
    }

    /// Sends a request made by [`Client::prepare`] and classifies the answer.
    pub async fn send_prepared(&self, request: PreparedRequest) -> Attempt {
        self.send_with(request, None).await
    }

    /// Sends a request made by [`Client::prepare`], running `on_write` at the moment its bytes
    /// are handed to the connection (see [`StampedBody`]), and classifies the answer.
    pub async fn send_stamped(&self, request: PreparedRequest, on_write: OnWrite) -> Attempt {
        self.send_with(request, Some(on_write)).await
    }

    async fn send_with(&self, request: PreparedRequest, on_write: Option<OnWrite>) -> Attempt {
        let api = self.inner.api;
        let started = Instant::now();
        let parsed = self.post(request.body, on_write).await;
        let latency = started.elapsed();
        // Where an answer enters the program: nothing past this line sees it unscrubbed.
        let attempt = self.inner.scrubber.attempt(Attempt {
            outcome: parsed.outcome,
            top_request_id: parsed.top_request_id,
            latency,
        });
        tracing::debug!(
            method = api.method,
            class = attempt.outcome.class().as_str(),
            top_request_id = attempt.top_request_id.as_deref(),
            latency_ms = latency.as_millis() as u64,
            "answered"
        );
        attempt
    }

    /// Whether the gateway answers at all: one bare GET of the gateway URL (no parameters, so it
    /// issues nothing and carries no credentials), for probing during an outage. Any HTTP answer
    /// counts, whatever its status; a failure to connect or to get an answer in time does not.
    pub async fn probe(&self) -> bool {
        let inner = &*self.inner;
        match inner.http.get(inner.url.clone()).send().await {
            Ok(response) => {
                tracing::debug!(status = response.status().as_u16(), "probe answered");
                true
            }
            Err(e) => {
                tracing::debug!("probe failed: {}", describe(&e));
                false
            }
        }
    }

    async fn post(&self, body: String, on_write: Option<OnWrite>) -> Parsed {
        let api = self.inner.api;
        match self.post_raw(body, on_write).await {
            Ok((status, location, bytes)) => {
                let parsed = parse_response(api, status, bytes.as_ref());
                self.name_the_endpoint(parsed, location.as_deref())
            }
            Err(e) => Parsed {
                outcome: transport_failure(&e, api.is_idempotent()),
                top_request_id: None,
            },
        }
    }

    /// POSTs a form; the HTTP status, where a redirect pointed and the whole body, or why the
    /// exchange failed. `on_write` runs when the form is handed to the connection.
    async fn post_raw(
        &self,
        body: String,
        on_write: Option<OnWrite>,
    ) -> Result<(u16, Option<String>, impl AsRef<[u8]> + use<>), reqwest::Error> {
        let inner = &*self.inner;
        let body = match on_write {
            Some(on_write) => reqwest::Body::wrap(StampedBody::new(body, on_write)),
            None => reqwest::Body::from(body),
        };
        let response = inner
            .http
            .post(inner.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE))
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        Ok((status, location, response.bytes().await?))
    }
}

impl Client {
    /// An answer that shows no TOP router took the call says which URL was called (and where a
    /// redirect pointed), so the halt message tells the user what to fix.
    fn name_the_endpoint(&self, mut parsed: Parsed, location: Option<&str>) -> Parsed {
        if let Outcome::Fatal(error) = &mut parsed.outcome
            && error.code.as_deref() == Some(TRANSPORT)
        {
            let url = self.inner.url.as_str();
            error.message = match location {
                Some(to) => format!("{url} answered {}; it points to {to}", error.message),
                None => format!("{url} answered {}", error.message),
            };
        }
        parsed
    }
}

/// Whether the URL's host is `localhost` or a loopback address.
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Classifies a failure of the HTTP exchange itself.
fn transport_failure(error: &reqwest::Error, idempotent: bool) -> Outcome {
    let message = describe(error);
    if error.is_connect() {
        Outcome::Unreachable(PlatformError::transport("connect", message))
    } else if error.is_timeout() {
        Outcome::answer_lost(idempotent, PlatformError::transport("timeout", message))
    } else {
        Outcome::answer_lost(idempotent, PlatformError::transport("io", message))
    }
}

/// The error and its causes on one line, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_timeout() {
        "no answer in time".to_owned()
    } else {
        "connection failed".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A form for logs: the sent pairs, with `session` and `sign` masked. The secret itself is
/// never in the form.
struct Redacted<'a, K, V>(&'a [(K, V)]);

impl<K: AsRef<str>, V: AsRef<str>> fmt::Display for Redacted<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = self
            .0
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .filter(|(k, v)| is_sent(k, v));
        for (i, (name, value)) in sent.enumerate() {
            let shown = match name {
                "session" | "sign" => "***",
                _ => value,
            };
            write!(f, "{}{name}={shown}", if i == 0 { "" } else { "&" })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
