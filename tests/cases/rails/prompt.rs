//! The confirmation before a real run, driven through a pseudo-terminal.

use std::process::Stdio;

use super::super::common::*;

/// What a run on a pseudo-terminal did.
struct OnTerminal {
    code: Option<i32>,
    /// Everything the terminal showed (stderr, and the echo of what was typed).
    screen: String,
    stdout: String,
}

/// Runs `campaign run` with stdin and stderr on a pseudo-terminal (stdout piped), as when
/// someone types the command. When `Proceed? [y/N]` appears it types `answer`, or `n` when no
/// answer was expected (so an unexpected question fails the test instead of hanging it).
fn run_on_terminal(
    folder: &Folder,
    args: &[&str],
    env: &[(&str, &str)],
    answer: Option<&str>,
) -> OnTerminal {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::{Read, Write};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut child = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::from(terminal.try_clone().unwrap()))
        .stderr(Stdio::from(terminal))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(master);
    let mut reader = master.try_clone().unwrap();
    let (tx, chunks) = std::sync::mpsc::channel::<String>();
    // Ends when the last holder of the terminal side (the child) is gone: reads fail then.
    let screen_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut out = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut stdout = String::new();
        out.read_to_string(&mut stdout).ok();
        stdout
    });
    let mut screen = String::new();
    let mut answered = false;
    while let Ok(chunk) = chunks.recv() {
        screen.push_str(&chunk);
        if !answered && screen.contains("Proceed? [y/N]") {
            answered = true;
            master.write_all(answer.unwrap_or("n").as_bytes()).unwrap();
            master.write_all(b"\n").unwrap();
        }
    }
    screen_reader.join().unwrap();
    let code = child.wait().unwrap().code();
    OnTerminal {
        code,
        screen,
        stdout: stdout_reader.join().unwrap(),
    }
}

/// A loopback simulator that the prompt treats as a real gateway (`CAMPAIGN_CONFIRM=always`):
/// the question is the same, and the simulator's counts show whether anything was sent.
const ASK_ALWAYS: &[(&str, &str)] = &[("CAMPAIGN_CONFIRM", "always")];

fn prompt_folder(sim: &Sim) -> Folder {
    sim.tmall("qps = 100\nmax_issued = 50", tmall_rows(5))
}

/// A run on a terminal with `args` and `env` that sends everything without asking.
fn runs_without_asking(args: &[&str], env: &[(&str, &str)]) {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    let run = run_on_terminal(&folder, args, env, None);
    assert_eq!(run.code, Some(0), "{}", run.screen);
    assert!(!run.screen.contains("Proceed?"), "{}", run.screen);
    assert_eq!(sim.stats()["issued"], 5);
}

#[test]
fn the_prompt_shows_the_plan_and_a_yes_sends() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    let run = run_on_terminal(&folder, &["--limit", "4"], ASK_ALWAYS, Some("y"));
    assert_eq!(run.code, Some(0), "{}\n{}", run.screen, run.stdout);
    let port = sim.addr.rsplit(':').next().unwrap();
    for expected in [
        "campaign   t",
        "API        tmall.nrt.certificate.send",
        &format!("gateway    127.0.0.1:{port}"),
        "app key    10000001",
        "rows       4 to send in this run",
        "budget     max_issued = 50: 0 used, 50 left",
        "rate       100 qps, about 0.0s",
        "results    ",
        "Proceed? [y/N]",
    ] {
        assert!(
            run.screen.contains(expected),
            "{expected:?} on\n{}",
            run.screen
        );
    }
    assert_eq!(sim.stats()["issued"], 4);
}

#[test]
fn the_prompt_answered_no_sends_nothing() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    for answer in ["n", "", "maybe"] {
        let run = run_on_terminal(&folder, &[], ASK_ALWAYS, Some(answer));
        assert_eq!(run.code, Some(2), "{answer:?}: {}", run.screen);
        assert!(run.screen.contains("Proceed? [y/N]"), "{}", run.screen);
        assert!(
            run.screen.contains("not confirmed; nothing was sent"),
            "{}",
            run.screen
        );
    }
    assert_eq!(sim.stats()["calls"], 0);
}

#[test]
fn yes_skips_the_prompt() {
    runs_without_asking(&["--yes"], ASK_ALWAYS);
}

#[test]
fn a_loopback_gateway_is_not_asked_about() {
    runs_without_asking(&[], &[]);
}

#[test]
fn a_run_that_is_not_interactive_never_waits_for_an_answer() {
    let sim = Sim::start(&[]);
    let folder = prompt_folder(&sim);
    // stdin is not a terminal (stderr is piped too): no question, the run goes ahead.
    let out = campaign()
        .arg("run")
        .arg(folder.path("c.toml"))
        .env("CAMPAIGN_CONFIRM", "always")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("Proceed?"), "{}", text(&out));
    assert_eq!(sim.stats()["issued"], 5);
}
