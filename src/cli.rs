//! The command line: clap definitions and dispatch to the commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::campaign::{Campaign, Concurrency, Overrides, Qps, bounds};
use crate::exit::Exit;
use crate::progress::{LogWriter, Output};
use crate::runner::{self, Mode, Reopen, RunOptions};

/// Issue vouchers and rights to lists of recipients through the Taobao Open Platform: exactly
/// once, under a rate limit, resumable, audited.
#[derive(Debug, Parser)]
#[command(
    name = "campaign",
    version,
    about,
    propagate_version = true,
    after_help = Exit::help_footer()
)]
pub struct Cli {
    /// More log output (debug); RUST_LOG overrides.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub(crate) verbose: bool,
    /// Only errors: no progress, no summary.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run (or resume) a campaign: send every row not yet done, then write the results CSV.
    Run(RunArgs),
    /// Preflight that issues nothing: the campaign file and input, folders, secrets, a signed
    /// harmless call (and one with the session), clock skew and latency; exit 0 when all is
    /// well, 3 otherwise.
    Check(CheckArgs),
    /// Counts by status, progress, last errors, from the ledger (works during a run).
    Status(StatusArgs),
    /// Write the results CSV (and the per-attempt log) from the ledger.
    Export(ExportArgs),
    /// Audit: the input, the ledger and the results file reconcile; exit 1 on any mismatch.
    Verify(VerifyArgs),
    /// A new ledger from a results file, for a campaign whose state file was lost: issued and
    /// uncertain rows are recorded as such, the rest pending, so the next run sends nothing twice.
    Rebuild(RebuildArgs),
    /// Ask the platform about `uncertain` rows (tmall.nrt.certificate.query): each becomes issued,
    /// pending (sent again by the next run) or stays uncertain with the reason.
    Reconcile(ReconcileArgs),
    /// One self-contained HTML page: counts, rate and latency over time, errors, the verdict.
    Report(ReportArgs),
    /// A local TOP gateway for rehearsals and tests.
    Sim(crate::sim::SimArgs),
    /// Print a shell completion script, e.g. `campaign completions bash > ~/.local/share/bash-completion/completions/campaign`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a folder with --dir.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write campaign.1 and campaign-<command>.1 into this folder instead of printing campaign.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// Paths that override the campaign file's.
#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// The campaign file (TOML).
    pub(crate) campaign: PathBuf,
    /// The recipients CSV (default: `input` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) input: Option<PathBuf>,
    /// The state file (default: `state` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) state: Option<PathBuf>,
    /// Encoding of the input: utf-8, gbk or gb18030 (default: detected).
    #[arg(long, value_name = "E")]
    pub(crate) encoding: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// Where to write the results CSV (default: `results` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) results: Option<PathBuf>,
    /// Requests per second, never exceeded in any one-second window (0.001 to 1000000).
    // A negative number is a value to refuse with its bounds, not an unknown flag.
    #[arg(long, value_name = "N", value_parser = qps_arg, allow_hyphen_values = true)]
    pub(crate) qps: Option<Qps>,
    /// Requests in flight at most, a hard cap (1 to 10000); unset: what the rate needs at the
    /// measured latency, up to `limits.max_concurrency`.
    #[arg(long, value_name = "N", value_parser = concurrency_arg, allow_hyphen_values = true)]
    pub(crate) concurrency: Option<Concurrency>,
    /// Validate everything and print the plan; send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Send failed rows again.
    #[arg(long)]
    pub(crate) retry_failed: bool,
    /// Send uncertain rows again (they may already have been issued: check first).
    #[arg(long)]
    pub(crate) resend_uncertain: bool,
    /// A canary: send at most N rows not yet sent, then end like a finished run; the next run
    /// continues.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) limit: Option<u64>,
    /// Print the summary (or the --dry-run plan) as one JSON object on stdout at the end;
    /// progress and logs stay on stderr.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) bom: BomArgs,
    /// Do not ask before sending through a real gateway (the question is only asked when stdin
    /// and stderr are terminals and the gateway is neither the simulator nor loopback).
    #[arg(short, long)]
    pub(crate) yes: bool,
}

/// The byte-order mark of the results CSV, overriding `bom` in the campaign file.
#[derive(Debug, Args)]
pub(crate) struct BomArgs {
    /// Start the results CSV with a UTF-8 byte-order mark (default: when the input had one or
    /// is GBK/GB18030, so that spreadsheet programs read it right).
    #[arg(long, conflicts_with = "no_bom")]
    pub(crate) bom: bool,
    /// No byte-order mark at the start of the results CSV.
    #[arg(long)]
    pub(crate) no_bom: bool,
}

impl BomArgs {
    /// `Some` when one of the flags was given.
    fn value(&self) -> Option<bool> {
        match (self.bom, self.no_bom) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// Machine-readable JSON instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// Where to write the results CSV (default: `results` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) results: Option<PathBuf>,
    /// Also write the per-attempt log to this CSV.
    #[arg(long, value_name = "F")]
    pub(crate) attempts: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) bom: BomArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RebuildArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// The results file to rebuild the ledger from (the last one the campaign wrote).
    #[arg(long, value_name = "RESULTS")]
    pub(crate) from: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// The results file to rewrite when rows change (default: `results` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) results: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// The results file to check (default: `results` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) results: Option<PathBuf>,
    /// One JSON object on stdout: the verdict, the discrepancies and notes as objects.
    #[arg(long)]
    pub(crate) json: bool,
}

fn qps_arg(text: &str) -> Result<Qps, String> {
    bounds::parse_float_arg(text, &bounds::QPS).and_then(Qps::new)
}

fn concurrency_arg(text: &str) -> Result<Concurrency, String> {
    bounds::parse_int_arg(text, &bounds::CONCURRENCY).and_then(Concurrency::new)
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) files: FileArgs,
    /// The results file the report describes (default: `results` in the campaign file).
    #[arg(long, value_name = "F")]
    pub(crate) results: Option<PathBuf>,
    /// Where to write the page (default: <name>.report.html beside the results).
    #[arg(long, value_name = "F")]
    pub(crate) out: Option<PathBuf>,
}

impl FileArgs {
    /// Loads the campaign file with these paths and `more` overrides applied.
    pub(crate) fn load(&self, more: Overrides) -> anyhow::Result<Campaign> {
        let overrides = Overrides {
            input: self.input.clone(),
            state: self.state.clone(),
            encoding: self.encoding.clone(),
            ..more
        };
        Ok(Campaign::load_with(&self.campaign, &overrides)?)
    }
}

fn init_logging(cli: &Cli) {
    let default = if cli.verbose {
        "campaign=debug"
    } else if cli.quiet {
        "campaign=error"
    } else {
        "campaign=info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(LogWriter)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Whether log lines may carry colour codes: only on a terminal, and never with `NO_COLOR` set
/// (to anything but the empty string). The writer is our own, so the logging library cannot tell
/// a terminal from a file or a pipe by itself.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    colour_logs_for(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn colour_logs_for(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// Runs a parsed command line; returns the exit code. Errors are printed here.
pub fn run(cli: Cli) -> Exit {
    init_logging(&cli);
    crate::paths::owner_only_from_now_on();
    match execute(&cli) {
        Ok(exit) => exit,
        Err(e) => {
            crate::progress::say(&format!("campaign: error: {}", describe(&e)));
            Exit::Usage
        }
    }
}

/// The error and its causes on one line, skipping a cause its parent already quotes (our typed
/// errors name their source in their own message).
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn execute(cli: &Cli) -> anyhow::Result<Exit> {
    match &cli.command {
        Command::Run(args) => {
            let campaign = args.files.load(Overrides {
                results: args.results.clone(),
                bom: args.bom.value(),
                qps: args.qps,
                concurrency: args.concurrency,
                ..Overrides::default()
            })?;
            let options = RunOptions {
                mode: if args.dry_run {
                    Mode::DryRun
                } else {
                    Mode::Send
                },
                reopen: Reopen {
                    failed: args.retry_failed,
                    uncertain: args.resend_uncertain,
                },
                output: Output::from_quiet(cli.quiet),
                limit: args.limit,
                json: args.json,
                yes: args.yes,
            };
            runtime()?.block_on(runner::run(campaign, options))
        }
        Command::Check(args) => match args.files.load(Overrides::default()) {
            Ok(campaign) => runtime()?.block_on(crate::check::run(&campaign)),
            Err(e) => Ok(crate::check::unloadable(
                &args.files.campaign,
                &describe(&e),
            )),
        },
        Command::Status(args) => {
            crate::audit::status(&args.files.load(Overrides::default())?, args.json)
        }
        Command::Export(args) => {
            let campaign = args.files.load(Overrides {
                results: args.results.clone(),
                bom: args.bom.value(),
                ..Overrides::default()
            })?;
            crate::audit::export(
                &campaign,
                args.attempts.as_deref(),
                Output::from_quiet(cli.quiet),
            )
        }
        Command::Verify(args) => {
            let campaign = args.files.load(Overrides {
                results: args.results.clone(),
                ..Overrides::default()
            })?;
            crate::audit::verify(&campaign, args.json)
        }
        Command::Rebuild(args) => crate::audit::rebuild(
            &args.files.load(Overrides::default())?,
            &args.from,
            Output::from_quiet(cli.quiet),
        ),
        Command::Reconcile(args) => {
            let campaign = args.files.load(Overrides {
                results: args.results.clone(),
                ..Overrides::default()
            })?;
            runtime()?.block_on(crate::reconcile::command(
                campaign,
                Output::from_quiet(cli.quiet),
            ))
        }
        Command::Report(args) => {
            let campaign = args.files.load(Overrides {
                results: args.results.clone(),
                ..Overrides::default()
            })?;
            crate::report::run(&campaign, args.out.as_deref(), cli.quiet)
        }
        Command::Sim(args) => crate::sim::run_cli(args.clone()),
        Command::Completions { shell } => {
            crate::progress::print(&crate::help::completions(*shell))
                .context("cannot write to stdout")?;
            Ok(Exit::Ok)
        }
        Command::Man(args) => {
            match &args.dir {
                Some(dir) => {
                    for page in crate::help::man_pages(dir)? {
                        if !cli.quiet {
                            crate::progress::print(&format!("{}\n", page.display()))
                                .context("cannot write to stdout")?;
                        }
                    }
                }
                None => crate::progress::print(&crate::help::man_page())
                    .context("cannot write to stdout")?,
            }
            Ok(Exit::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        use std::ffi::OsStr;
        assert!(colour_logs_for(true, None));
        assert!(colour_logs_for(true, Some(OsStr::new(""))));
        assert!(!colour_logs_for(true, Some(OsStr::new("1"))));
        assert!(!colour_logs_for(false, None));
    }

    #[test]
    fn error_lines_quote_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let typed = anyhow::Error::new(crate::ledger::LedgerError::Lock {
            path: "s.db.lock".into(),
            source: io,
        });
        assert_eq!(
            describe(&typed),
            "s.db.lock: cannot open the lock file: No such file"
        );
        let wrapped = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(describe(&wrapped), "outer: inner cause");
    }
}
