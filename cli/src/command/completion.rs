//! `kubectl datamesh completion bash|zsh|fish`: shell completion scripts.

use super::Exit;
use clap::Args;
use clap_complete::Shell;

/// Arguments of `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for, e.g. `source <(kubectl datamesh completion bash)`.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    shell: String,
}

/// Prints the completion script for `command` (the whole CLI) to stdout.
pub fn run(args: &CompletionArgs, mut command: clap::Command) -> Exit {
    let shell = match args.shell.as_str() {
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        _ => Shell::Bash,
    };
    clap_complete::generate(
        shell,
        &mut command,
        "kubectl-datamesh",
        &mut std::io::stdout(),
    );
    Exit::Ok
}
