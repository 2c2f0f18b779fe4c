//! The datamesh operator: watches Domains, Licences, DataProducts (and, in
//! later parts, agreements and policies) and reconciles them.
//!
//! The checks that decide an object's state are pure functions in
//! [`checks`]; the [`controller`] modules only gather their inputs from the
//! watch caches, write status when it changed, and emit Events.
#![forbid(unsafe_code)]

pub mod audit;
pub mod by_product;
pub mod cached_agreement;
pub mod cached_product;
pub mod checks;
pub mod context;
pub mod controller;
pub mod enforcement;
pub mod error;
pub mod event;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod own_writes;
pub mod packed;
pub mod policy_store;
pub mod status;
pub mod sweep;
pub mod telemetry;

use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use error::{Error, Result};

/// The field manager the operator writes with (server-side apply).
pub const MANAGER: &str = "datamesh-operator";

/// Command-line arguments of `datamesh-operator`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "datamesh-operator",
    version,
    about = "The datamesh Kubernetes operator"
)]
pub struct Args {
    /// Address of the health, readiness and metrics endpoints.
    #[arg(long, env = "DATAMESH_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Name this replica reports in Events and leases (the pod name in a cluster).
    #[arg(long, env = "DATAMESH_INSTANCE", default_value_t = default_instance())]
    pub instance: String,
    /// Elect a leader with a Lease so that only one replica reconciles.
    #[arg(long, env = "DATAMESH_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "DATAMESH_LEASE_NAME", default_value = "datamesh-operator")]
    pub lease_name: String,
    /// Seconds a leader's lease lasts without renewal; a crashed leader is
    /// replaced after at most this long.
    #[arg(long, env = "DATAMESH_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// Seconds between convergence passes, which drop database grants no
    /// Active agreement backs and restore missing ones (one also runs at start).
    #[arg(long, env = "DATAMESH_CONVERGENCE_SECONDS", default_value_t = 60)]
    pub convergence_seconds: u64,
    /// Audit store URL: a SQLite file (`sqlite://PATH?mode=rwc`, created if
    /// missing; put it on a persistent volume) or PostgreSQL
    /// (`postgres://USER:PASSWORD@HOST:PORT/DB`, for HA: every replica shares
    /// it, only the leader writes). Schema migrations run at start; if the
    /// store cannot be opened the operator exits, and if an append fails the
    /// change it records does not happen (fail closed).
    #[arg(long, env = "DATAMESH_AUDIT_URL", default_value = audit::DEFAULT_URL, hide_env_values = true)]
    pub audit_url: String,
    /// Start every watch as a streaming list (`sendInitialEvents`, the
    /// WatchList feature of the API server, beta in Kubernetes 1.34): lowers
    /// the memory peak at start (no LIST body of every object). Off by
    /// default: in the fault tests a streaming watch once did not recover
    /// within 120 s after the API server was killed and restarted.
    #[arg(long, env = "DATAMESH_STREAMING_LISTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub streaming_lists: bool,
    /// PEM certificate of the CA that signs consumers' client certificates,
    /// for PostgreSQL ports with `consumerAuth: certificate` (their servers
    /// trust it as `ssl_ca_file`). Without it, such grants fail closed.
    #[arg(long, env = "DATAMESH_CLIENT_CA_CERT", requires = "client_ca_key")]
    pub client_ca_cert: Option<std::path::PathBuf>,
    /// PEM (PKCS#8) private key of that CA.
    #[arg(long, env = "DATAMESH_CLIENT_CA_KEY", requires = "client_ca_cert")]
    pub client_ca_key: Option<std::path::PathBuf>,
    /// Logging and tracing settings.
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryArgs,
}

fn default_instance() -> String {
    std::env::var("HOSTNAME")
        .unwrap_or_else(|_| format!("datamesh-operator-{}", std::process::id()))
}

/// Runs the operator until SIGTERM or Ctrl+C.
///
/// Every replica keeps its watch caches warm and answers readiness; only the
/// holder of the Lease reconciles. A leader that loses its lease exits, so
/// two replicas never write at once.
pub async fn run(args: Args) -> anyhow::Result<()> {
    controller::set_streaming_lists(args.streaming_lists);
    // read before connecting anywhere: a bad file stops the start at once
    let client_ca = match (&args.client_ca_cert, &args.client_ca_key) {
        (Some(cert), Some(key)) => {
            let ca = enforcement::certificate::ClientCa::load(cert, key)?;
            tracing::info!(cert = %cert.display(), "client CA loaded");
            Some(Arc::new(ca))
        }
        _ => None,
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let client = counted_client(metrics.clone()).await?;
    let audit = Arc::new(
        audit::AuditStore::open(&args.audit_url)
            .await
            .map_err(|e| anyhow::anyhow!("opening the audit store: {e}"))?,
    );
    tracing::info!(url = %audit::store::redact(&args.audit_url), "audit store open");
    let state = http::State::new(metrics.clone()).with_audit(audit.clone());
    let http = tokio::spawn(http::serve(args.http_addr, state.clone()));
    let ctx = context::Context::start(
        client.clone(),
        metrics.clone(),
        &args.instance,
        audit,
        client_ca,
    )
    .await?;
    state.set_catalog(ctx.stores.clone());
    state.set_ready(true);
    tracing::info!(instance = %args.instance, "caches synced");

    let result = if args.leader_elect {
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &args.lease_name)
            .with_namespace(&args.lease_namespace)
            .with_identity(&args.instance)
            .with_duration(args.lease_seconds.max(2))
            .with_grace((args.lease_seconds / 3).max(1))
            .build()
            .await?;
        let (mut leader, task) = manager.watch().await;
        tracing::info!(lease = %args.lease_name, "waiting for leadership");
        let elected = tokio::select! {
            r = wait_until(&mut leader, true) => r,
            _ = shutdown_signal() => false,
        };
        let result = if elected {
            metrics.leader.set(1);
            tracing::info!("leading; reconciling");
            tokio::select! {
                r = reconcile(ctx, Duration::from_secs(args.convergence_seconds)) => r,
                _ = wait_until(&mut leader, false) => Err(anyhow::anyhow!("lost leadership; exiting so a new leader takes over")),
            }
        } else {
            Ok(())
        };
        metrics.leader.set(0);
        drop(leader); // releases the lease for the next replica
        let _ = task.await;
        result
    } else {
        tracing::info!("reconciling (no leader election)");
        reconcile(ctx, Duration::from_secs(args.convergence_seconds)).await
    };
    state.set_ready(false);
    http.abort();
    result
}

/// How long a graceful stop waits for queued Normal Events to be sent.
const EVENTS_DRAIN: Duration = Duration::from_secs(1);

/// Runs every controller until a shutdown signal, then gives the queued
/// Events up to [`EVENTS_DRAIN`] to reach the API server (still leading: a
/// replica that loses its lease meanwhile stops at once).
async fn reconcile(ctx: Arc<context::Context>, converge: Duration) -> anyhow::Result<()> {
    controller::run_all(ctx.clone(), converge).await?;
    ctx.recorder.drain(EVENTS_DRAIN).await;
    Ok(())
}

/// A client like `Client::try_default()` that counts every request it sends
/// (`datamesh_api_requests_total`), so API cost per reconcile is measurable.
async fn counted_client(metrics: Arc<metrics::Metrics>) -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await?;
    let count =
        tower::util::MapRequestLayer::new(move |req: ::http::Request<kube::client::Body>| {
            metrics
                .api_requests
                .get_or_create(&metrics::RequestLabels {
                    method: req.method().as_str().to_string(),
                })
                .inc();
            req
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

/// Waits until the leadership flag equals `want`; false if the lease manager stopped.
async fn wait_until(rx: &mut tokio::sync::watch::Receiver<bool>, want: bool) -> bool {
    loop {
        if *rx.borrow_and_update() == want {
            return true;
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
