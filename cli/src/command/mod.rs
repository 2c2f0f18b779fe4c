//! One module per subcommand group; shared exit codes and output formats.

pub mod agreements;
pub mod audit;
pub mod catalog;
pub mod completion;
pub mod explain;
pub mod policy;
pub mod policy_set;
pub mod request;
pub mod status;

use std::process::ExitCode;

/// Exit codes of every command (clap's own usage errors also exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; nothing wrong found.
    Ok = 0,
    /// The command ran and found a problem: invalid policies, failing tests,
    /// changed agreements with `--exit-code`.
    Failed = 1,
    /// The input could not be used: a missing or malformed file, a bad flag value.
    BadInput = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document on stdout for scripts.
    Json,
}
