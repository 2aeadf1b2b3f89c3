//! Shared harness for the integration tests: the real `campaign` binary, a simulator process on
//! 127.0.0.1:0, and campaign folders in temporary directories.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The secret and session every test uses; tests assert they never leak.
pub const SECRET: &str = "s3cr3t-Do-Not-Leak-7f1d";
pub const SESSION: &str = "sess-Do-Not-Leak-93ab";

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

/// Everything a command printed, for assertion messages.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A simulator process (`campaign sim --addr 127.0.0.1:0`), killed on drop.
pub struct Sim {
    child: Child,
    pub addr: String,
    pub url: String,
}

impl Sim {
    /// Starts a simulator with extra options (faults, seed).
    pub fn start(options: &[&str]) -> Sim {
        let mut child = campaign()
            .args(["sim", "--addr", "127.0.0.1:0"])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_owned();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/router/rest")
            .to_owned();
        Sim { child, addr, url }
    }

    /// `GET /sim/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "GET /sim/stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").expect("an HTTP answer").1;
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {body}"))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
}

/// A tmall campaign file against `url`, with `limits` lines added to `[limits]`.
pub fn tmall_campaign(url: &str, limits: &str) -> String {
    format!(
        r#"name = "t"
api = "tmall.nrt.certificate.send"
input = "in.csv"
results = "out.csv"
state = "state.db"

[gateway]
url = "{url}"
app_key = "10000001"
sign_method = "hmac-sha256"
timeout_ms = 2000

[limits]
{limits}

[params]
channel = 7
out_id = 123
biz_code = "23"
"#
    )
}

/// An alsc campaign file against `url`.
pub fn alsc_campaign(url: &str, limits: &str) -> String {
    format!(
        r#"name = "a"
api = "alibaba.alsc.right.decisionsend"
input = "in.csv"
results = "out.csv"
state = "state.db"

[gateway]
url = "{url}"
app_key = "10000001"
sign_method = "md5"
timeout_ms = 2000

[limits]
{limits}

[params]
scene_code = "scene"
biz_code = "ISV-T"
"#
    )
}

/// `open_id` rows `P0001 ..` with an extra column.
pub fn tmall_rows(n: usize) -> String {
    let mut csv = String::from("open_id,note\n");
    for i in 1..=n {
        csv.push_str(&format!("P{i:05},note {i}\n"));
    }
    csv
}

/// `alipay_id` rows `2088000000100001 ..`.
pub fn alsc_rows(n: usize) -> String {
    let mut csv = String::from("alipay_id,note\n");
    for i in 1..=n {
        csv.push_str(&format!("2088{:012},note {i}\n", 100_000 + i));
    }
    csv
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

/// Polls a ledger (read-only) until `sql` counts at least `n`; fails after a generous bound.
pub fn wait_for_count(state: &Path, sql: &str, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let count = rusqlite::Connection::open_with_flags(
            state,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
        .unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ledger never reached {n} for {sql}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
