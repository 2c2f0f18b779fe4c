//! kubectl-datamesh: the datamesh kubectl plugin.
//!
//! A thin entry point: each subcommand group lives in its own file under
//! `command/`, so adding one means adding a file and a variant below.
//! `cluster` holds the kubeconfig plumbing, `output` the table/JSON/YAML printing.
#![forbid(unsafe_code)]

mod cluster;
mod command;
mod output;

use clap::{CommandFactory, Parser, Subcommand};
use cluster::{CliError, ClusterArgs};
use command::Exit;
use datamesh_crds::approval::ApprovalDecision;
use std::process::ExitCode;

/// Work with a datamesh: find data, ask for it, answer requests, explain
/// decisions, and test the governance policies.
///
/// Exit codes: 0 done, 1 a problem was found (denied, unhealthy, refused by
/// the cluster), 2 the input could not be used (bad flag, unknown object).
#[derive(Debug, Parser)]
#[command(name = "kubectl-datamesh", bin_name = "kubectl datamesh", version)]
struct Cli {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List and search the published data products of every domain.
    Catalog(command::catalog::CatalogArgs),
    /// Ask for a data product: accepts its licence and creates an agreement
    /// in your namespace (`--dry-run` only decides).
    Request(Box<command::request::RequestArgs>),
    /// List agreements with their phase and first reason.
    Agreements(command::agreements::ListArgs),
    /// Approve an agreement on one of your products (as its provider).
    Approve(command::agreements::AnswerArgs),
    /// Deny an agreement on one of your products (as its provider).
    Deny(command::agreements::AnswerArgs),
    /// End an Active agreement: as the provider (a Deny answer), or as the
    /// consumer with --withdraw (deletes your agreement).
    Revoke(command::agreements::RevokeArgs),
    /// Explain an agreement's decision: every policy and licence term behind
    /// it, and what would change the outcome.
    Explain(command::explain::ExplainArgs),
    /// Operator health and leader, policy-set version, agreements by phase.
    Status(command::status::StatusArgs),
    /// Read the audit trail (who got which data, when, why) and verify its
    /// hash chain: through the operator's API, or `verify --db` on a store.
    Audit(command::audit::AuditArgs),
    /// Validate, test, explain and preview governance policies (offline, on files).
    #[command(subcommand)]
    Policy(command::policy::PolicyCommand),
    /// Print a shell completion script: bash, zsh or fish.
    Completion(command::completion::CompletionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Policy(command::policy::PolicyCommand::Diff(args)) if args.is_live() => {
            with_cluster(&cli.cluster, |c| async move {
                let documents = command::policy_set::live_documents(&c).await?;
                Ok(command::policy::diff_live(&args, documents))
            })
        }
        Command::Policy(cmd) => command::policy::run(cmd),
        Command::Audit(args) => {
            let cluster = cli.cluster.clone();
            block_on(async move { command::audit::run(&cluster, &args).await })
        }
        Command::Completion(args) => command::completion::run(&args, Cli::command()),
        Command::Request(args) if !args_offline(&args) => {
            with_cluster(&cli.cluster, |c| async move {
                command::request::run(Some(&c), None, &args).await
            })
        }
        Command::Request(args) => {
            let namespace = cli.cluster.namespace.clone();
            block_on(async move { command::request::run(None, namespace.as_deref(), &args).await })
        }
        Command::Catalog(args) => with_cluster(&cli.cluster, |c| async move {
            command::catalog::run(&c, &args).await
        }),
        Command::Agreements(args) => with_cluster(&cli.cluster, |c| async move {
            command::agreements::list(&c, &args).await
        }),
        Command::Approve(args) => with_cluster(&cli.cluster, |c| async move {
            command::agreements::answer(&c, &args, ApprovalDecision::Approve).await
        }),
        Command::Deny(args) => with_cluster(&cli.cluster, |c| async move {
            command::agreements::answer(&c, &args, ApprovalDecision::Deny).await
        }),
        Command::Revoke(args) => with_cluster(&cli.cluster, |c| async move {
            command::agreements::revoke(&c, &args).await
        }),
        Command::Explain(args) => with_cluster(&cli.cluster, |c| async move {
            command::explain::run(&c, &args).await
        }),
        Command::Status(args) => with_cluster(&cli.cluster, |c| async move {
            command::status::run(&c, &args).await
        }),
    };
    exit.into()
}

fn args_offline(args: &command::request::RequestArgs) -> bool {
    args.offline()
}

/// Runs a future on a small runtime and turns an error into its message and exit code.
fn block_on(fut: impl std::future::Future<Output = Result<Exit, CliError>>) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failed;
        }
    };
    match runtime.block_on(fut) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    }
}

/// Connects with the kubectl flags, then runs the command.
fn with_cluster<F, Fut>(args: &ClusterArgs, f: F) -> Exit
where
    F: FnOnce(cluster::Cluster) -> Fut,
    Fut: std::future::Future<Output = Result<Exit, CliError>>,
{
    let args = args.clone();
    block_on(async move {
        let c = cluster::connect(&args).await?;
        f(c).await
    })
}
