//! A simulator process (`campaign sim`) for a test: started on 127.0.0.1:0 (or on the port of
//! one stopped before, to restart a gateway), read through `GET /sim/stats`, killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use serde_json::Value;

use super::{Folder, alsc_campaign, campaign, tmall_campaign};

/// A simulator process, killed on drop.
pub struct Sim {
    child: Child,
    pub addr: String,
    pub url: String,
}

impl Sim {
    /// Starts a simulator on 127.0.0.1:0 with extra options (faults, seed).
    pub fn start(options: &[&str]) -> Sim {
        Sim::spawn("127.0.0.1:0", options, Stdio::null())
    }

    /// Starts a simulator on `addr` (the address of one stopped before, to restart it), keeping
    /// its stderr for the line [`Sim::stop`] reads.
    pub fn at(addr: &str) -> Sim {
        Sim::spawn(addr, &[], Stdio::piped())
    }

    /// Starts a simulator on 127.0.0.1:0 with extra options, keeping its stderr for the line
    /// [`Sim::stop`] reads.
    pub fn stoppable(options: &[&str]) -> Sim {
        Sim::spawn("127.0.0.1:0", options, Stdio::piped())
    }

    fn spawn(addr: &str, options: &[&str], stderr: Stdio) -> Sim {
        let mut child = campaign()
            .args(["sim", "--addr", addr])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(stderr)
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

    /// A folder with a tmall campaign on this simulator (`limits` in `[limits]`) and `input`.
    pub fn tmall(&self, limits: &str, input: impl AsRef<[u8]>) -> Folder {
        Folder::with(tmall_campaign(&self.url, limits), input)
    }

    /// A folder with an alsc campaign on this simulator (`limits` in `[limits]`) and `input`.
    pub fn alsc(&self, limits: &str, input: impl AsRef<[u8]>) -> Folder {
        Folder::with(alsc_campaign(&self.url, limits), input)
    }

    /// `GET /sim/stats`.
    pub fn stats(&self) -> Value {
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

    /// The simulator's count `name` (`calls`, `issued`, `duplicates` ...).
    pub fn count(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no count {name}: {stats}"))
    }

    /// Asserts that the simulator issued `n` times, to `n` different identities.
    pub fn assert_issued_once(&self, n: u64) {
        let stats = self.stats();
        assert_eq!(stats["issued"], n, "{stats}");
        assert_eq!(stats["duplicates"], 0, "{stats}");
    }

    /// Stops a simulator started with [`Sim::at`] (SIGTERM: it answers what it took, then
    /// exits) and returns how many issuances it made, from the line it prints when it stops.
    pub fn stop(mut self) -> u64 {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .expect("a simulator started with Sim::at or Sim::stoppable")
            .read_to_string(&mut stderr)
            .unwrap();
        let line = stderr
            .lines()
            .find(|l| l.starts_with("simulator stopped: "))
            .unwrap_or_else(|| panic!("no stop line: {stderr}"));
        let issued = line
            .split(", ")
            .find_map(|part| part.strip_suffix(" issued"))
            .unwrap_or_else(|| panic!("no issued count: {line}"));
        issued.parse().unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a run across a gateway restart left: its output, the issuances of the simulator that
/// was stopped, and the stats of the one that took its place.
pub struct Restarted {
    pub folder: Folder,
    pub out: std::process::Output,
    pub issued_before: u64,
    pub after: Value,
}

/// Runs a campaign (the folder `folder_for` makes for a gateway URL) against a simulator that
/// is stopped once 20 rows are issued and started again on the same port once the run has
/// recorded the outage; the run is then left to finish.
pub fn run_across_a_restart(folder_for: impl FnOnce(&str) -> Folder) -> Restarted {
    let first = Sim::at("127.0.0.1:0");
    let addr = first.addr.clone();
    let folder = folder_for(&first.url);
    let run = super::spawn_run(&folder);
    super::wait_for_ledger(&folder, super::ISSUED, 20);
    let issued_before = first.stop();
    // The run notices (a refused connection) and records the outage before the restart.
    super::wait_for_ledger(&folder, "SELECT COUNT(*) FROM outages", 1);
    let second = Sim::at(&addr);
    let out = run.wait_with_output().unwrap();
    let after = second.stats();
    Restarted {
        folder,
        out,
        issued_before,
        after,
    }
}
