//! The process exit codes: one enum, whose table `campaign --help`, the man page and the README
//! show (a test keeps the README's table equal to [`Exit::meaning`]).

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Finished; no row failed or is uncertain.
    Ok = 0,
    /// Finished; some rows failed, are invalid or uncertain (see the results).
    RowsFailed = 1,
    /// Usage, campaign file or input error, or the confirmation was declined; nothing was sent.
    Usage = 2,
    /// Halted: fatal platform error, wrong endpoint, failure or uncertain rate over the limit, a
    /// long ban or outage, or the budget reached; resumable.
    Halted = 3,
    /// Interrupted by Ctrl-C, SIGTERM or SIGHUP; resumable.
    Interrupted = 130,
}

impl Exit {
    /// Every exit code, in numeric order.
    pub const ALL: [Exit; 5] = [
        Exit::Ok,
        Exit::RowsFailed,
        Exit::Usage,
        Exit::Halted,
        Exit::Interrupted,
    ];

    /// The process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means to a user, as the help and the README say it.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "finished; no row failed or uncertain",
            Exit::RowsFailed => {
                "finished; some rows failed, invalid or uncertain, or were found not issued by \
                 reconciliation and wait for the next run (see results); for verify, a \
                 discrepancy; for reconcile, rows still uncertain"
            }
            Exit::Usage => {
                "usage, campaign file or input error, a path that clashes with the state file or \
                 the input, the state file is in use, of another campaign or API, or missing \
                 while the campaign evidently ran, or the confirmation was not given; nothing \
                 was sent"
            }
            Exit::Halted => {
                "halted: fatal platform error, wrong endpoint, failure or uncertain rate over the \
                 limit, gateway unreachable longer than max_outage_s, answers that are not TOP \
                 answers, a ban too long to wait, the max_issued budget reached, the state file \
                 lost during the run, or a write failure after sending; resumable"
            }
            Exit::Interrupted => "interrupted; resumable",
        }
    }

    /// The exit code table as the footer of `campaign --help`.
    pub fn help_footer() -> String {
        let mut footer = String::from("Exit codes:\n");
        for exit in Exit::ALL {
            footer.push_str(&format!("  {:<5}{}\n", exit.code(), exit.meaning()));
        }
        footer
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_this_enum() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("## Exit codes")
            .nth(1)
            .expect("README has an exit code section");
        let rows: Vec<&str> = section
            .lines()
            .skip_while(|line| !line.starts_with("|---"))
            .skip(1)
            .take_while(|line| line.starts_with('|'))
            .collect();
        let expected: Vec<String> = Exit::ALL
            .iter()
            .map(|exit| format!("| {} | {} |", exit.code(), exit.meaning()))
            .collect();
        assert_eq!(rows, expected);
    }
}
