//! The datamesh operator: watches Domains, Licences, DataProducts (and, in
//! later parts, agreements and policies) and reconciles them.
//!
//! The checks that decide an object's state are pure functions in
//! [`checks`]; the [`controller`] modules only gather their inputs from the
//! watch caches, write status when it changed, and emit Events.
#![forbid(unsafe_code)]

pub mod checks;
pub mod context;
pub mod controller;
pub mod error;
pub mod http;
pub mod metrics;
pub mod status;
pub mod telemetry;

use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;

pub use error::{Error, Result};

/// The field manager the operator writes with (server-side apply).
pub const MANAGER: &str = "datamesh-operator";

/// Command-line arguments of `datamesh-operator`.
#[derive(Parser, Debug, Clone)]
#[command(name = "datamesh-operator", version, about = "The datamesh Kubernetes operator")]
pub struct Args {
    /// Address of the health, readiness and metrics endpoints.
    #[arg(long, env = "DATAMESH_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Name this replica reports in Events and leases (the pod name in a cluster).
    #[arg(long, env = "DATAMESH_INSTANCE", default_value_t = default_instance())]
    pub instance: String,
    /// Logging and tracing settings.
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryArgs,
}

fn default_instance() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| format!("datamesh-operator-{}", std::process::id()))
}

/// Runs the operator until SIGTERM or Ctrl+C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let state = http::State::new(metrics.clone());
    let http = tokio::spawn(http::serve(args.http_addr, state.clone()));
    let ctx = context::Context::start(client, metrics, &args.instance).await?;
    state.set_ready(true);
    tracing::info!(instance = %args.instance, "caches synced; reconciling");
    let result = controller::run_all(ctx).await;
    state.set_ready(false);
    http.abort();
    result
}
