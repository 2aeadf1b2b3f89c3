//! The confirmation before a real run: when the gateway is neither the simulator nor a loopback
//! address and someone is at a terminal, `run` shows what it is about to do and asks
//! `Proceed? [y/N]`. `--yes` skips it; a run whose stdin or stderr is not a terminal (a script,
//! cron, CI) never waits for an answer.
//!
//! `CAMPAIGN_CONFIRM=always` in the environment asks for a loopback gateway or the simulator
//! too (rehearsing the prompt, and how the tests drive it through a pseudo-terminal); it can
//! only add the question, never skip it.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use crate::campaign::{Campaign, GatewayUrl};
use crate::results::summary::human_duration;

/// The environment variable that makes every interactive run ask, loopback included.
pub(crate) const CONFIRM_ENV: &str = "CAMPAIGN_CONFIRM";

/// What the question shows.
pub(crate) struct Plan<'a> {
    pub(crate) campaign: &'a Campaign,
    /// Rows this run would send (after `--limit` and the budget).
    pub(crate) rows: u64,
    /// `max_issued` and rows already counted against it.
    pub(crate) budget: Option<(u64, u64)>,
}

/// Whether this run must ask before sending.
pub(crate) fn needed(campaign: &Campaign, yes: bool) -> bool {
    if yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    let always = std::env::var_os(CONFIRM_ENV).is_some_and(|v| v == "always");
    always || !is_local(&campaign.gateway.url)
}

/// The simulator, or an http(s) URL whose host is a loopback address.
fn is_local(url: &GatewayUrl) -> bool {
    match url {
        GatewayUrl::Sim => true,
        GatewayUrl::Http(url) => {
            reqwest::Url::parse(url).is_ok_and(|url| crate::top::client::is_loopback(&url))
        }
    }
}

/// The gateway's host (and port), as the question names it.
fn host(url: &GatewayUrl) -> String {
    match url {
        GatewayUrl::Sim => "the built-in simulator".to_owned(),
        GatewayUrl::Http(text) => reqwest::Url::parse(text)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| text.clone()),
    }
}

/// The text of the question, without the prompt line.
pub(crate) fn describe(plan: &Plan<'_>) -> String {
    let c = plan.campaign;
    let budget = match plan.budget {
        Some((max, used)) => format!(
            "max_issued = {max}: {used} used, {} left",
            max.saturating_sub(used)
        ),
        None => "none (no max_issued)".to_owned(),
    };
    let estimate = Duration::from_secs_f64(plan.rows as f64 / c.limits.qps.get());
    format!(
        "campaign: about to send through a real gateway:\n\
         \x20 campaign   {}\n\
         \x20 API        {}\n\
         \x20 gateway    {}\n\
         \x20 app key    {}\n\
         \x20 rows       {} to send in this run\n\
         \x20 budget     {budget}\n\
         \x20 rate       {} qps, about {}\n\
         \x20 results    {}\n",
        c.name,
        c.api.method,
        host(&c.gateway.url),
        c.gateway.app_key,
        plan.rows,
        c.limits.qps,
        human_duration(estimate),
        c.results.display(),
    )
}

/// Asks on stderr and reads one line from stdin; `true` for `y` or `yes` (any case).
pub(crate) async fn ask(plan: &Plan<'_>) -> anyhow::Result<bool> {
    let question = format!("{}Proceed? [y/N] ", describe(plan));
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut err = std::io::stderr().lock();
        err.write_all(question.as_bytes())?;
        err.flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line)
    })
    .await??;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_remote_gateway_is_real() {
        assert!(is_local(&GatewayUrl::Sim));
        for local in [
            "http://127.0.0.1:8080/router/rest",
            "http://localhost/router/rest",
            "http://[::1]:9/router/rest",
        ] {
            assert!(is_local(&GatewayUrl::Http(local.to_owned())), "{local}");
        }
        assert!(!is_local(&GatewayUrl::Http(
            "https://eco.taobao.com/router/rest".to_owned()
        )));
        assert_eq!(
            host(&GatewayUrl::Http(
                "https://eco.taobao.com/router/rest".to_owned()
            )),
            "eco.taobao.com"
        );
    }

    #[test]
    fn the_question_names_everything_a_user_checks() {
        let campaign = Campaign::parse(
            std::path::Path::new("c/spring.toml"),
            "name = \"spring\"\napi = \"tmall.nrt.certificate.send\"\ninput = \"in.csv\"\n\
             [gateway]\nurl = \"https://eco.taobao.com/router/rest\"\napp_key = \"12345678\"\n\
             [limits]\nqps = 50\n",
        )
        .unwrap();
        let text = describe(&Plan {
            campaign: &campaign,
            rows: 3000,
            budget: Some((5000, 1200)),
        });
        for expected in [
            "campaign   spring",
            "API        tmall.nrt.certificate.send",
            "gateway    eco.taobao.com",
            "app key    12345678",
            "rows       3000 to send in this run",
            "budget     max_issued = 5000: 1200 used, 3800 left",
            "rate       50 qps, about 1m00s",
            "results    c/spring.results.csv",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
    }
}
