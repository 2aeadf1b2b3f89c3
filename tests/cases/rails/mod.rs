//! The safety rails of a money-issuing run, end to end against a simulator process: the
//! `--limit` canary, the `max_issued` budget, the confirmation prompt, `campaign check` and
//! notifications. One module each; the helpers here are shared.

mod budget;
mod check;
mod limit;
mod notify;
mod prompt;

use std::process::{Output, Stdio};

use super::common::{
    Folder, Sim, alsc_campaign, alsc_rows, campaign, count_status, text, tmall_campaign,
    tmall_rows, wait_for_count,
};

fn run(folder: &Folder, extra: &[&str]) -> Output {
    campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(extra)
        .output()
        .expect("run campaign")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
