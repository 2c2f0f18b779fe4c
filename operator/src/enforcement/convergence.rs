//! Convergence: what is granted in each database is made to match what the
//! agreements say, on start and then periodically. It catches what a crash
//! or an outage left behind: a role created just before a crash, an
//! agreement deleted while the operator was down, a role dropped by hand
//! under an Active agreement.
//!
//! Each correction goes through [`record`], the one place to hook an audit
//! record of it.

use super::{Grantor, postgres};
use crate::context::Context;
use datamesh_crds::{AgreementPhase, DataProduct, DataSharingAgreement};
use kube::api::ListParams;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a correction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Dropped a role no Active agreement backs.
    Dropped,
    /// Granted again an Active agreement whose role or Secret was missing.
    Regranted,
}

impl Action {
    /// Lower-case name, for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Dropped => "dropped",
            Action::Regranted => "regranted",
        }
    }
}

/// Labels of the corrections counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CorrectionLabels {
    /// `dropped` or `regranted`.
    pub action: &'static str,
}

/// One correction convergence made.
#[derive(Debug, Clone)]
pub struct Correction {
    /// What it did.
    pub action: Action,
    /// The database role.
    pub role: String,
    /// `host:port/database`.
    pub target: String,
    /// The agreement concerned, if it still exists (`namespace/name`).
    pub agreement: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// Runs a convergence pass now and then every `every`, until dropped.
pub async fn run(ctx: Arc<Context>, every: Duration) {
    loop {
        match converge_once(&ctx).await {
            Ok(n) if n > 0 => tracing::info!(corrections = n, "convergence pass done"),
            Ok(_) => tracing::debug!("convergence pass: nothing to correct"),
            Err(e) => tracing::warn!(error = %e, "convergence pass failed; next one retries"),
        }
        tokio::time::sleep(every.max(Duration::from_secs(1))).await;
    }
}

/// One pass over every PostgreSQL reachable through a product's admin
/// Secret. Returns how many corrections it made.
pub async fn converge_once(ctx: &Context) -> Result<usize, kube::Error> {
    let enf = &ctx.enforcement;
    let _guard = enf.lock().await;
    // fresh from the API server, not the cache: a status written a moment ago counts
    let agreements = Api::<DataSharingAgreement>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let by_role: BTreeMap<String, &DataSharingAgreement> = agreements
        .iter()
        .filter_map(|a| Some((postgres::role_name(&a.uid()?), a)))
        .collect();

    // every database, once, with a product that reaches it (for Events)
    let mut targets: BTreeMap<String, (postgres::Admin, Arc<DataProduct>)> = BTreeMap::new();
    for product in ctx.stores.products.state() {
        let Ok(Grantor::Postgres { namespace, port }) = Grantor::for_product(&product) else {
            continue;
        };
        match enf.admin(&namespace, &port).await {
            Ok(admin) => {
                targets.entry(admin.target()).or_insert((admin, product));
            }
            Err(e) => {
                tracing::debug!(product = %product.name_any(), error = %e, "convergence skips a product")
            }
        }
    }

    let mut corrections = 0;
    let now = jiff::Timestamp::now();
    for (target, (admin, product)) in &targets {
        let roles = match postgres::marked_roles(admin).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%target, error = %e, "convergence cannot list roles");
                continue;
            }
        };
        for marked in roles {
            let agreement = by_role.get(&marked.role).copied();
            let backed = agreement.is_some_and(|a| phase(a) == Some(AgreementPhase::Active));
            if backed {
                continue;
            }
            let reason = match agreement {
                None => format!("no agreement backs it (was {})", marked.label),
                Some(a) => format!(
                    "agreement {}/{} is {}",
                    a.namespace().unwrap_or_default(),
                    a.name_any(),
                    phase(a).unwrap_or(AgreementPhase::Pending).as_str()
                ),
            };
            match postgres::revoke(admin, &marked.role).await {
                Ok(true) => {
                    corrections += 1;
                    let c = Correction {
                        action: Action::Dropped,
                        role: marked.role.clone(),
                        target: target.clone(),
                        agreement: agreement.map(name_of),
                        reason,
                    };
                    record(ctx, &c, agreement, product).await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(role = %marked.role, error = %e, "convergence cannot drop role")
                }
            }
        }
    }

    // Active agreements whose role or Secret is missing get them again.
    for a in agreements.iter().filter(|a| {
        phase(a) == Some(AgreementPhase::Active) && a.metadata.deletion_timestamp.is_none()
    }) {
        let status = a.status.as_ref();
        if status
            .and_then(|s| s.active_until.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t <= now)
        {
            continue; // ending now; the reconciler revokes it
        }
        let Some(uid) = a.uid() else { continue };
        let Some(product) = ctx.stores.products.get(
            &kube::runtime::reflector::ObjectRef::new(&a.spec.product.name)
                .within(&a.spec.product.namespace),
        ) else {
            continue;
        };
        let Ok(Grantor::Postgres { namespace, port }) = Grantor::for_product(&product) else {
            continue;
        };
        let Ok(admin) = enf.admin(&namespace, &port).await else {
            continue;
        };
        let role = postgres::role_name(&uid);
        let has_role = match postgres::has_role(&admin, &role).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(%role, error = %e, "convergence cannot check role");
                continue;
            }
        };
        let secret = status
            .and_then(|s| s.credentials_secret.clone())
            .unwrap_or_else(|| super::secret_name(&a.name_any()));
        let has_secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
            ctx.client.clone(),
            &a.namespace().unwrap_or_default(),
        )
        .get_opt(&secret)
        .await?
        .is_some();
        if has_role && has_secret {
            continue;
        }
        let fields = status.map(|s| s.granted_fields.clone()).unwrap_or_default();
        let until = status.and_then(|s| s.active_until.clone());
        // ENFORCEMENT: grant (convergence re-grant)
        match enf.grant(a, &product, &fields, until.as_deref()).await {
            Ok(_) => {
                corrections += 1;
                let missing = match (has_role, has_secret) {
                    (false, false) => "role and credentials Secret",
                    (false, true) => "role",
                    _ => "credentials Secret",
                };
                let c = Correction {
                    action: Action::Regranted,
                    role,
                    target: admin.target(),
                    agreement: Some(name_of(a)),
                    reason: format!("Active agreement's {missing} was missing"),
                };
                record(ctx, &c, Some(a), &product).await;
            }
            Err(e) => {
                tracing::warn!(agreement = %name_of(a), error = %e, "convergence cannot re-grant")
            }
        }
    }
    Ok(corrections)
}

fn phase(a: &DataSharingAgreement) -> Option<AgreementPhase> {
    a.status.as_ref().and_then(|s| s.phase)
}

fn name_of(a: &DataSharingAgreement) -> String {
    format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any())
}

/// Records a correction: a log line, the corrections counter and an Event on
/// the agreement (or, when it is gone, on the product whose database it was).
/// The audit store hooks here.
pub async fn record(
    ctx: &Context,
    c: &Correction,
    agreement: Option<&DataSharingAgreement>,
    product: &DataProduct,
) {
    tracing::info!(
        action = c.action.as_str(),
        role = %c.role,
        target = %c.target,
        agreement = c.agreement.as_deref().unwrap_or("-"),
        reason = %c.reason,
        "convergence corrected a grant"
    );
    // AUDIT: every correction is on record (after the fact: it restores what
    // the agreements already say, so there is nothing to hold back).
    let audit = crate::audit::events::correction_record(
        c.action.as_str(),
        &c.role,
        &c.target,
        agreement,
        product,
        &c.reason,
        jiff::Timestamp::now(),
    );
    if let Err(e) = ctx.audit.append(&audit).await {
        tracing::error!(error = %e, role = %c.role, "cannot record a correction in the audit store");
    }
    ctx.metrics
        .corrections
        .get_or_create(&CorrectionLabels {
            action: c.action.as_str(),
        })
        .inc();
    let regarding = match agreement {
        Some(a) => a.object_ref(&()),
        None => product.object_ref(&()),
    };
    let event = Event {
        type_: EventType::Warning,
        reason: match c.action {
            Action::Dropped => "OrphanedGrantDropped".into(),
            Action::Regranted => "GrantRestored".into(),
        },
        note: Some(
            format!("role {} at {}: {}", c.role, c.target, c.reason)
                .chars()
                .take(1000)
                .collect(),
        ),
        action: "Converge".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &regarding).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}
