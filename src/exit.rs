//! The process exit codes, as documented in the README and the SPEC.

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Finished; no row failed or is uncertain.
    Ok = 0,
    /// Finished; some rows failed, are invalid or uncertain (see the results).
    RowsFailed = 1,
    /// Usage, campaign file or input error; nothing was sent.
    Usage = 2,
    /// Halted: fatal platform error, failure rate over the limit, a long ban or the budget
    /// reached; resumable.
    Halted = 3,
    /// Interrupted by Ctrl-C or SIGTERM; resumable.
    Interrupted = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}
