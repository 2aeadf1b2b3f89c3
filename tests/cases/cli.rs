//! The command line as a tool: help footer, shell completions and man pages.

use super::common::{campaign, text};

fn stdout_of(args: &[&str]) -> String {
    let output = campaign().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn help_ends_with_the_exit_codes() {
    let help = stdout_of(&["--help"]);
    let footer = help.split("Exit codes:").nth(1).expect(&help);
    for code in ["0", "1", "2", "3", "130"] {
        assert!(
            footer
                .lines()
                .any(|line| line.trim_start().starts_with(code)),
            "exit code {code} missing from\n{help}"
        );
    }
    assert!(footer.contains("interrupted; resumable"), "{help}");
}

#[test]
fn bash_completions_are_a_valid_script_that_knows_the_commands() {
    let script = stdout_of(&["completions", "bash"]);
    for word in [
        "run",
        "status",
        "export",
        "verify",
        "--dry-run",
        "--resend-uncertain",
    ] {
        assert!(script.contains(word), "{word} missing from the script");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campaign.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn completions_generate_for_every_shell() {
    for (shell, marker) in [
        ("zsh", "#compdef campaign"),
        ("fish", "complete -c campaign"),
        ("elvish", "edit:completion:arg-completer[campaign]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains(marker), "{shell}:\n{script}");
    }
    let output = campaign().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[test]
fn the_man_page_documents_commands_and_exit_status() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH campaign 1"), "{page}");
    for command in ["run", "status", "export", "verify", "sim"] {
        assert!(
            page.contains(&format!("campaign\\-{command}(1)")),
            "{command}\n{page}"
        );
    }
    let exit_status = page.split(".SH \"EXIT STATUS\"").nth(1).expect(&page);
    assert!(
        exit_status.contains(".TP\n130\ninterrupted; resumable"),
        "{page}"
    );
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let listed = stdout_of(&["man", "--dir", dir.path().to_str().unwrap()]);
    for name in [
        "campaign.1",
        "campaign-run.1",
        "campaign-verify.1",
        "campaign-sim.1",
    ] {
        let path = dir.path().join(name);
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(".SH \"EXIT STATUS\""), "{name}");
        assert!(listed.contains(path.to_str().unwrap()), "{listed}");
    }
    let run = std::fs::read_to_string(dir.path().join("campaign-run.1")).unwrap();
    assert!(run.contains("\\-\\-dry\\-run"), "{run}");
}
