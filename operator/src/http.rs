//! Health, readiness and metrics endpoints, and the read-only JSON API:
//!
//! | path | what |
//! |---|---|
//! | `GET /api/v1/audit?product=&consumer=&domain=&agreement=&since=&until=&limit=` | audit records, in sequence order |
//! | `GET /api/v1/audit/verify` | checks the hash chain; names the first broken record |
//! | `GET /api/v1/catalog` | published (and deprecated) products, without credentials |
//! | `GET /api/v1/catalog/dcat` | the open catalogue as DCAT-AP JSON-LD |
//!
//! Reachable directly in development and through the API server's service
//! proxy in a cluster (`/api/v1/namespaces/NS/services/SVC:http/proxy/api/v1/...`),
//! where the API server authenticates and authorises the caller. Nothing here
//! writes: any other method is 405, a bad parameter is 400 naming it.

use crate::audit::{AuditStore, Filter};
use crate::context::Stores;
use crate::metrics::Metrics;
use crate::packed::PackError;
use axum::{
    Json, Router,
    extract::{RawQuery, State as AxState},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use datamesh_crds::dcat::{self, CatalogInfo};
use datamesh_crds::product::LifecycleStage;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// What the endpoints report.
#[derive(Clone)]
pub struct State {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    audit: Option<Arc<AuditStore>>,
    catalog: Arc<OnceLock<Stores>>,
}

impl State {
    /// A state that is not ready yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            audit: None,
            catalog: Arc::new(OnceLock::new()),
        }
    }

    /// Serves the audit trail from `store`.
    pub fn with_audit(mut self, store: Arc<AuditStore>) -> Self {
        self.audit = Some(store);
        self
    }

    /// Serves the catalogue from the watch caches once they are synced.
    pub fn set_catalog(&self, stores: Stores) {
        let _ = self.catalog.set(stores);
    }

    /// Marks the operator ready (caches synced) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// The router of the endpoints.
pub fn router(state: State) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/catalog", get(catalog))
        .route("/api/v1/catalog/dcat", get(catalog_dcat))
        .with_state(state)
}

async fn readyz(AxState(state): AxState<State>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(AxState(state): AxState<State>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

fn error(code: StatusCode, message: impl std::fmt::Display) -> Response {
    (code, Json(json!({"error": message.to_string()}))).into_response()
}

async fn audit(AxState(state): AxState<State>, RawQuery(query): RawQuery) -> Response {
    // The same pure parser the audit_query fuzz target exercises.
    let filter = match Filter::from_query(query.as_deref().unwrap_or_default()) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string(), "parameter": e.parameter})),
            )
                .into_response();
        }
    };
    let Some(store) = &state.audit else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no audit store");
    };
    match store.query(&filter).await {
        Ok(records) => Json(json!({"items": records})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "audit query failed");
            error(StatusCode::SERVICE_UNAVAILABLE, e)
        }
    }
}

async fn audit_verify(AxState(state): AxState<State>) -> Response {
    let Some(store) = &state.audit else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no audit store");
    };
    match store.verify().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "audit verification could not read the store");
            error(StatusCode::SERVICE_UNAVAILABLE, e)
        }
    }
}

/// Products in the catalogue: published or deprecated, not being deleted.
fn listed(stores: &Stores) -> Result<Vec<datamesh_crds::DataProduct>, PackError> {
    let mut products = Vec::new();
    for cached in stores.products.state() {
        if cached.meta().deletion_timestamp.is_some() {
            continue;
        }
        let p = cached.expand()?;
        if matches!(
            p.spec.lifecycle.stage,
            LifecycleStage::Published | LifecycleStage::Deprecated
        ) {
            products.push(p);
        }
    }
    products.sort_by_key(|p| (p.namespace(), p.name_any()));
    Ok(products)
}

async fn catalog(AxState(state): AxState<State>) -> Response {
    let Some(stores) = state.catalog.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "caches not synced");
    };
    let listed = match listed(stores) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let items: Vec<_> = listed
        .iter()
        .map(|p| {
            let s = &p.spec;
            json!({
                "namespace": p.namespace(),
                "name": p.name_any(),
                "domain": s.domain,
                "title": s.title,
                "description": s.description,
                "owner": s.owner,
                "classification": s.classification,
                "personalData": s.personal_data,
                "lifecycle": s.lifecycle,
                "updateFrequency": s.update_frequency,
                "temporalCoverage": s.temporal_coverage,
                "licence": s.licence,
                "themes": s.themes,
                "tags": s.tags,
                "format": s.format,
                "schema": s.schema,
                // where the data is served, never which admin Secret grants on it
                "outputPorts": s.output_ports.iter().map(|o| json!({"name": o.name, "type": o.type_})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({"items": items})).into_response()
}

async fn catalog_dcat(AxState(state): AxState<State>) -> Response {
    let Some(stores) = state.catalog.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "caches not synced");
    };
    let products = match listed(stores) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let domains: Vec<_> = stores
        .domains
        .state()
        .iter()
        .map(|d| (**d).clone())
        .collect();
    let licences: Vec<_> = stores
        .licences
        .state()
        .iter()
        .map(|l| (**l).clone())
        .collect();
    let body = dcat::catalog(&CatalogInfo::default(), &products, &domains, &licences);
    ([("content-type", "application/ld+json")], body.to_string()).into_response()
}

/// Serves the endpoints until the task is aborted.
pub async fn serve(addr: SocketAddr, state: State) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving health and metrics");
    axum::serve(listener, router(state)).await?;
    Ok(())
}
