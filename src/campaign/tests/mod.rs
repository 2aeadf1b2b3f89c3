//! Tests of the campaign file: the documented example, defaults, every kind of error with its
//! position, relative paths and secrets from the environment. One module per theme; the example
//! file and the parsing helpers here are shared.

mod checks;
mod file;
mod secrets;

use super::*;

pub(super) const SPEC_EXAMPLE: &str = r#"name = "spring-gift-2026"            # campaign identity; part of every idempotency key
api  = "tmall.nrt.certificate.send"
input   = "recipients.csv"           # paths are relative to this file
results = "spring-gift-2026.results.csv"   # default: <name>.results.csv
state   = "spring-gift-2026.db"            # default: <name>.db

[gateway]
url = "https://eco.taobao.com/router/rest"   # or "sim": start the built-in simulator in-process
app_key = "12345678"
sign_method = "hmac-sha256"          # md5 | hmac | hmac-sha256
timeout_ms = 10000
# secrets never live in this file: TOP_APP_SECRET and TOP_SESSION are read from the
# environment (names can be changed with app_secret_env / session_env)

[limits]
qps = 50                 # never exceeded in any one-second window
concurrency = 16         # requests in flight at most
max_attempts = 5         # per row, transient failures only
max_failure_rate = 0.5   # halt when permanent failures exceed this share ...
min_rows_for_halt = 200  # ... of at least this many finished rows
max_ban_wait_s = 300     # a flow-control ban longer than this (daily quota used up) halts the run

[params]                 # defaults for every row of this API; a CSV column of the same name overrides per row
channel = 7
out_id = 123
biz_code = "23"
"#;

pub(super) const MINIMAL_SIM: &str = "name = \"n\"\napi = \"alibaba.alsc.right.decisionsend\"\ninput = \"in.csv\"\n\n[gateway]\nurl = \"sim\"\n";

pub(super) fn parse(text: &str) -> Result<Campaign, CampaignError> {
    Campaign::parse(Path::new("samples/x.toml"), text)
}

pub(super) fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}
