//! The campaign file (TOML): what to send, to whom, through which gateway and how fast; and the
//! secrets, which come from the environment only.
//!
//! Every error names the file, line, column and field, e.g.
//! `samples/x.toml:12:7: limits.qps: must be greater than 0`. Unknown keys are errors, and a key
//! that looks like a secret gets a message pointing to the environment variable instead.

pub(crate) mod bounds;
mod doc;
mod fields;
mod notify;
mod overrides;
#[cfg(test)]
mod tests;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use encoding_rs::Encoding;
use md5::{Digest, Md5};

pub(crate) use self::notify::NotifyConfig;
use crate::secret::Secret;
use crate::top::{ApiSpec, SignMethod};

pub(crate) use overrides::Overrides;
pub(crate) use values::{Concurrency, Qps};

/// The simulator's default credentials, which a `sim` campaign uses for what it does not name
/// (app key) or its environment does not set (secret, session). Defined with the simulator.
pub(crate) use crate::sim::{
    DEFAULT_APP_KEY as SIM_APP_KEY, DEFAULT_SECRET as SIM_APP_SECRET,
    DEFAULT_SESSION as SIM_SESSION,
};

/// A loaded, validated campaign file. The command line may override `input`, `results`,
/// `state`, `encoding`, `bom`, `qps` and `concurrency` ([`Overrides`]).
#[derive(Clone, Debug)]
pub(crate) struct Campaign {
    /// The campaign file, as given.
    pub(crate) path: PathBuf,
    /// Campaign identity; part of every generated request id.
    pub(crate) name: String,
    pub(crate) api: &'static ApiSpec,
    /// Input CSV, resolved against the campaign file's directory.
    pub(crate) input: PathBuf,
    /// Results CSV (default `<name>.results.csv` next to the campaign file).
    pub(crate) results: PathBuf,
    /// Ledger (default `<name>.db` next to the campaign file).
    pub(crate) state: PathBuf,
    /// The input's encoding; `None`: detect it.
    pub(crate) encoding: Option<&'static Encoding>,
    /// The input's format; `None`: by its extension.
    pub(crate) format: Option<crate::input::Format>,
    /// The sheet of a workbook input; `None`: the first.
    pub(crate) sheet: Option<String>,
    /// Whether the results CSV starts with a UTF-8 byte-order mark; `None`: when the input had
    /// one or is GBK/GB18030 (see [`InputReader::wants_bom`](crate::input::InputReader::wants_bom)).
    pub(crate) bom: Option<bool>,
    /// `report = true` or a path: `campaign run` writes the report page at the end of each run.
    pub(crate) report: Option<ReportFile>,
    pub(crate) gateway: Gateway,
    pub(crate) limits: Limits,
    /// Default object-param values for every row, as text, keyed by field name.
    pub(crate) params: BTreeMap<String, String>,
    /// The `[notify]` table, if any.
    pub(crate) notify: Option<NotifyConfig>,
    /// `run` reconciles uncertain rows by query before and after sending (`reconcile`, default
    /// true; only for an API that has a read API to ask).
    pub(crate) reconcile: bool,
}

/// Where `campaign run` writes the report page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReportFile {
    /// `<name>.report.html` beside the results file (`report = true`).
    BesideResults,
    /// `report = "path"`, resolved against the campaign file's directory.
    At(PathBuf),
}

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GatewayUrl {
    /// The built-in simulator, started in-process.
    Sim,
    /// A real (or external) TOP gateway.
    Http(String),
}

/// The `[gateway]` table.
#[derive(Clone, Debug)]
pub(crate) struct Gateway {
    pub(crate) url: GatewayUrl,
    pub(crate) app_key: String,
    pub(crate) sign_method: SignMethod,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// The environment variable holding the app secret (default `TOP_APP_SECRET`).
    pub(crate) app_secret_env: String,
    /// The environment variable holding the session key (default `TOP_SESSION`).
    pub(crate) session_env: String,
}

/// The `[limits]` table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Limits {
    /// Requests per second, never exceeded in any one-second window.
    pub(crate) qps: Qps,
    /// Requests in flight at most, a hard cap; `None`: as many as the rate needs at the
    /// measured latency, up to `max_concurrency`.
    pub(crate) concurrency: Option<Concurrency>,
    /// The ceiling of the adaptive in-flight count when `concurrency` is not set.
    pub(crate) max_concurrency: Concurrency,
    /// Attempts per row, transient failures only.
    pub(crate) max_attempts: u32,
    /// Halt when permanent failures exceed this share ...
    pub(crate) max_failure_rate: f64,
    /// ... of at least this many finished rows.
    pub(crate) min_rows_for_halt: u64,
    /// A flow-control ban longer than this halts the run.
    pub(crate) max_ban_wait: Duration,
    /// The budget: rows issued or possibly issued (uncertain, in flight) never exceed this,
    /// across all runs. `None`: no budget.
    pub(crate) max_issued: Option<u64>,
    /// An unreachable gateway pauses the run; an outage longer than this halts it.
    pub(crate) max_outage: Duration,
    /// An uncertain row is looked up by query only when its last attempt is older than this
    /// (`reconcile_after_s`): a certificate may take a while to show in the query.
    pub(crate) reconcile_after: Duration,
}

impl Limits {
    /// Calls in flight for work that does not measure its latency (reconciliation queries):
    /// `concurrency` when set, else 16 within `max_concurrency`.
    pub(crate) fn fixed_concurrency(&self) -> usize {
        self.concurrency
            .map_or(16.min(self.max_concurrency.get()), Concurrency::get)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            qps: Qps::new(50.0).expect("a valid default"),
            concurrency: None,
            max_concurrency: Concurrency::new(256).expect("a valid default"),
            max_attempts: 5,
            max_failure_rate: 0.5,
            min_rows_for_halt: 200,
            max_ban_wait: Duration::from_secs(300),
            max_issued: None,
            max_outage: Duration::from_secs(600),
            reconcile_after: Duration::from_secs(60),
        }
    }
}

/// The secrets of a run, read from the environment.
#[derive(Clone, Debug)]
pub(crate) struct Secrets {
    pub(crate) app_secret: Secret,
    /// `None` when the API does not need a session and none is set.
    pub(crate) session: Option<Secret>,
}

/// What a secret's environment variable holds.
enum EnvSecret {
    Unset,
    /// Set, but empty or only whitespace.
    Blank,
    Set(Secret),
}

impl EnvSecret {
    /// Why the variable cannot be used, for an error message.
    fn describe(&self) -> &'static str {
        match self {
            EnvSecret::Unset => "not set",
            EnvSecret::Blank => "is empty",
            EnvSecret::Set(_) => "is set",
        }
    }
}

/// Why a campaign file (or its environment) is not usable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CampaignError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}:{column}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        /// Dotted name, e.g. `limits.qps`.
        field: String,
        message: String,
    },
    /// A command-line value that overrides the campaign file's is not valid.
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    /// A secret's environment variable is unset or unreadable; never carries its value.
    #[error("{}: environment variable {var}: {message}", path.display())]
    Environment {
        path: PathBuf,
        var: String,
        message: String,
    },
}

impl Campaign {
    /// Reads and validates a campaign file. Relative paths in it are resolved against its
    /// directory.
    pub(crate) fn load(path: &Path) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
            path: path.to_owned(),
            source,
        })?;
        Campaign::parse(path, &text)
    }

    /// Validates campaign-file text as if read from `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Campaign, CampaignError> {
        fields::parse(path, text.strip_prefix('\u{feff}').unwrap_or(text))
    }

    /// The app secret and session key from the environment variables the gateway names.
    ///
    /// For `url = "sim"`, unset variables fall back to the simulator's defaults. For a real
    /// gateway, a missing app secret (or session, when the API needs one) is an error naming the
    /// variable.
    pub(crate) fn secrets(&self) -> Result<Secrets, CampaignError> {
        let sim = self.gateway.url == GatewayUrl::Sim;
        let app_secret = match self.env_secret(&self.gateway.app_secret_env)? {
            EnvSecret::Set(secret) => secret,
            EnvSecret::Unset | EnvSecret::Blank if sim => Secret::new(SIM_APP_SECRET),
            unset_or_blank => {
                return Err(self.env_error(
                    &self.gateway.app_secret_env,
                    format!(
                        "{}; it must hold the app secret (name another variable with \
                         gateway.app_secret_env)",
                        unset_or_blank.describe()
                    ),
                ));
            }
        };
        let session = match self.env_secret(&self.gateway.session_env)? {
            EnvSecret::Set(secret) => Some(secret),
            EnvSecret::Unset | EnvSecret::Blank if sim => Some(Secret::new(SIM_SESSION)),
            unset_or_blank if self.api.needs_session => {
                return Err(self.env_error(
                    &self.gateway.session_env,
                    format!(
                        "{}; {} needs the user's session key (name another variable with \
                         gateway.session_env)",
                        unset_or_blank.describe(),
                        self.api.method
                    ),
                ));
            }
            EnvSecret::Unset | EnvSecret::Blank => None,
        };
        Ok(Secrets {
            app_secret,
            session,
        })
    }

    /// Opens the input as the campaign says (format, sheet, encoding) and reads its header.
    pub(crate) fn open_input(&self) -> Result<crate::input::InputReader, crate::input::InputError> {
        crate::input::InputReader::open_as(
            &self.input,
            self.encoding,
            self.format,
            self.sheet.as_deref(),
            self.api,
        )
    }

    /// A stable digest (MD5, lower-case hex) of the API and the sorted `[params]`: a change
    /// means "campaign params changed since the last run".
    pub(crate) fn params_fingerprint(&self) -> String {
        let mut md5 = Md5::new();
        md5.update(self.api.method.as_bytes());
        md5.update(b"\n");
        // Length-prefixed values: no two different maps digest the same text.
        for (name, value) in &self.params {
            md5.update(format!("{name}={}:", value.len()).as_bytes());
            md5.update(value.as_bytes());
            md5.update(b"\n");
        }
        hex::encode(md5.finalize())
    }

    fn env_secret(&self, var: &str) -> Result<EnvSecret, CampaignError> {
        match std::env::var_os(var) {
            None => Ok(EnvSecret::Unset),
            Some(value) => match value.into_string() {
                Ok(v) if v.trim().is_empty() => Ok(EnvSecret::Blank),
                Ok(v) => Ok(EnvSecret::Set(Secret::new(v))),
                Err(_) => Err(self.env_error(var, "not valid UTF-8".to_owned())),
            },
        }
    }

    fn env_error(&self, var: &str, message: String) -> CampaignError {
        CampaignError::Environment {
            path: self.path.clone(),
            var: var.to_owned(),
            message,
        }
    }
}
