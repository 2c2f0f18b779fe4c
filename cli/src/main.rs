//! kubectl-datamesh: the datamesh kubectl plugin.
//!
//! A thin entry point: each subcommand group lives in its own file under
//! `command/`, so adding one means adding a file and a variant below.
#![forbid(unsafe_code)]

mod command;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Work with a datamesh: its governance policies, catalogue and agreements.
#[derive(Debug, Parser)]
#[command(name = "kubectl-datamesh", bin_name = "kubectl datamesh", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, test, explain and preview governance policies (offline, on files).
    #[command(subcommand)]
    Policy(command::policy::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Policy(cmd) => command::policy::run(cmd),
    };
    exit.into()
}
