//! datamesh-operator: reconciles datamesh resources against the API server.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = datamesh_operator::Args::parse();
    let _guard = datamesh_operator::telemetry::init(&args.telemetry)?;
    datamesh_operator::run(args).await
}
