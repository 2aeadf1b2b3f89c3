//! Shared harness for the integration tests: the real `campaign` binary in a clean environment,
//! campaign folders in temporary directories with their results and ledger, a simulator process
//! on 127.0.0.1:0 (`sim`), campaign files (`file`) and a tiny test server (`server`).

mod file;
mod server;
mod sim;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use file::{CampaignFile, alsc_campaign, alsc_rows, tmall_campaign, tmall_rows};
pub use server::{TestServer, json, response};
pub use sim::{Restarted, Sim, run_across_a_restart};

/// The secret and session every test uses; tests assert they never leak.
pub const SECRET: &str = "s3cr3t-Do-Not-Leak-7f1d";
pub const SESSION: &str = "sess-Do-Not-Leak-93ab";

/// The ledger query the tests wait on most: rows issued so far.
pub const ISSUED: &str = "SELECT COUNT(*) FROM entries WHERE status = 'issued'";

/// The built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_campaign"))
}

/// A `campaign` command with a clean environment: only the test secret and session.
pub fn campaign() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TOP_APP_SECRET", SECRET)
        .env("TOP_SESSION", SESSION)
        .env("RUST_LOG", "campaign=info");
    cmd
}

/// `campaign <name> <folder>/c.toml <extra>`, run to its end.
pub fn command(folder: &Folder, name: &str, extra: &[&str]) -> Output {
    command_env(folder, name, &[], extra)
}

/// [`command`] with `env` set over the clean environment (another secret, a log level).
pub fn command_env(folder: &Folder, name: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
    campaign()
        .arg(name)
        .arg(folder.path("c.toml"))
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .expect("run campaign")
}

/// `campaign run <folder>/c.toml <extra>`, run to its end.
pub fn run(folder: &Folder, extra: &[&str]) -> Output {
    command(folder, "run", extra)
}

/// [`run`], asserting its exit code.
#[track_caller]
pub fn run_expect(folder: &Folder, extra: &[&str], code: i32) -> Output {
    command_expect(folder, "run", extra, code)
}

/// [`command`], asserting its exit code.
#[track_caller]
pub fn command_expect(folder: &Folder, name: &str, extra: &[&str], code: i32) -> Output {
    let out = command(folder, name, extra);
    assert_exit(&out, code);
    out
}

/// `campaign run <folder>/c.toml` in the background, its output piped.
pub fn spawn_run(folder: &Folder) -> Child {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `campaign run` in the background, waits until `issued` rows are issued, and kills it
/// with SIGKILL: rows in flight stay marked in flight.
pub fn kill_9_after(folder: &Folder, issued: i64) {
    let mut child = spawn_run(folder);
    wait_for_ledger(folder, ISSUED, issued);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Sends signal `name` (`INT`, `HUP`, `TERM`) to a child.
pub fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Everything a command printed, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a command's exit code, showing all it printed otherwise.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
}

/// Every byte a run left behind, as text: the commands' output, the ledger, the results and
/// the attempts log.
pub fn everything(folder: &Folder, outputs: &[&Output]) -> String {
    let mut all = Vec::new();
    for out in outputs {
        all.extend_from_slice(&out.stdout);
        all.extend_from_slice(&out.stderr);
    }
    for file in ["state.db", "state.db-wal", "out.csv", "attempts.csv"] {
        all.extend(std::fs::read(folder.path(file)).unwrap_or_default());
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Asserts that neither the test secret nor the test session is in `text`.
#[track_caller]
pub fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "the app secret leaked");
    assert!(!text.contains(SESSION), "the session key leaked");
}

/// Asserts that a command's stdout contains `needle`, showing all it printed otherwise.
#[track_caller]
pub fn assert_stdout_has(output: &Output, needle: &str) {
    assert!(stdout(output).contains(needle), "{}", text(output));
}

/// Asserts that a command's stderr contains `needle`, showing all it printed otherwise.
#[track_caller]
pub fn assert_stderr_has(output: &Output, needle: &str) {
    assert!(stderr(output).contains(needle), "{}", text(output));
}

/// A campaign folder: a campaign file and an input CSV in a temporary directory.
pub struct Folder {
    pub dir: tempfile::TempDir,
}

impl Folder {
    pub fn new() -> Folder {
        Folder {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A folder with `campaign` as `c.toml` and `input` as `in.csv`.
    pub fn with(campaign: impl std::fmt::Display, input: impl AsRef<[u8]>) -> Folder {
        let folder = Folder::new();
        folder.write("c.toml", campaign.to_string());
        folder.write("in.csv", input);
        folder
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The results file, `out.csv`.
    pub fn results(&self) -> PathBuf {
        self.path("out.csv")
    }

    /// How many rows of the results file have `status`.
    pub fn count(&self, status: &str) -> usize {
        count_status(&self.results(), status)
    }

    /// The value of `name` in every row of the results file.
    pub fn column(&self, name: &str) -> Vec<String> {
        column(&self.results(), name)
    }

    /// What `sql` (a `COUNT` or `SUM`) gives on the ledger, opened read-only.
    pub fn ledger_count(&self, sql: &str) -> i64 {
        rusqlite::Connection::open_with_flags(
            self.path("state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// The results CSV as records (header first).
pub fn records(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// Writes `rows` as a CSV file at `path` (a results file edited by hand).
pub fn write_records(path: &Path, rows: &[Vec<String>]) {
    let mut writer = csv::Writer::from_path(path).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.flush().unwrap();
}

/// The value of `column` in every data row of a results file.
pub fn column(path: &Path, column: &str) -> Vec<String> {
    let all = records(path);
    let index = all[0]
        .iter()
        .rposition(|c| c == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    all[1..].iter().map(|r| r[index].clone()).collect()
}

/// How many data rows have each status.
pub fn count_status(path: &Path, status: &str) -> usize {
    column(path, "status")
        .iter()
        .filter(|s| *s == status)
        .count()
}

/// Polls a folder's ledger (read-only) until `sql` counts at least `n`; fails after a generous
/// bound. A ledger not there yet counts 0.
pub fn wait_for_ledger(folder: &Folder, sql: &str, n: i64) {
    let state = folder.path("state.db");
    let count = || {
        rusqlite::Connection::open_with_flags(&state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    wait_until(
        || count() >= n,
        || format!("the ledger never reached {n} for {sql}"),
    );
}

/// Polls `done` until it holds; fails with `what` after a generous bound (a hang fails the
/// test instead of blocking it).
pub fn wait_until(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child with a generous bound (a hang fails the test instead of blocking it).
pub fn wait_with_bound(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
