//! Help generated from the command line definition: shell completion scripts (clap_complete) and
//! man pages (clap_mangen), each page ending with the exit code table of [`Exit`].

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

use crate::cli::Cli;
use crate::exit::Exit;

/// The completion script for `shell`.
pub(crate) fn completions(shell: Shell) -> String {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "campaign", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// The man page of `campaign` (roff).
pub(crate) fn man_page() -> String {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut page = Vec::new();
    render(command, &mut page).expect("writing to memory does not fail");
    String::from_utf8_lossy(&page).into_owned()
}

/// Writes `campaign.1` and one `campaign-<command>.1` per command into `dir`; returns the files.
pub(crate) fn man_pages(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = vec![command.clone()];
    pages.extend(command.get_subcommands().cloned());
    let mut written = Vec::new();
    for page in pages {
        let path = dir.join(Man::new(page.clone()).get_filename());
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("{}: cannot create the man page", path.display()))?;
        render(page, &mut file)
            .and_then(|()| file.flush())
            .with_context(|| format!("{}: cannot write the man page", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The usual sections (without clap's EXTRA, which would repeat the footer), then EXIT STATUS.
fn render(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let has_subcommands = command.has_subcommands();
    let man = Man::new(command);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if has_subcommands {
        man.render_subcommands_section(out)?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for exit in Exit::ALL {
        writeln!(out, ".TP\n{}\n{}", exit.code(), exit.meaning())?;
    }
    man.render_version_section(out)
}
