//! Convergence: what is granted in each database is made to match what the
//! agreements say, on start and then periodically. It catches what a crash
//! or an outage left behind: a role created just before a crash, an
//! agreement deleted while the operator was down, a role dropped by hand
//! under an Active agreement.
//!
//! Each correction goes through [`record`], the one place to hook an audit
//! record of it.

use super::{Grantor, postgres};
use crate::cached_agreement::CachedAgreement;
use crate::context::Context;
use datamesh_crds::product::PostgresPort;
use datamesh_crds::{AgreementPhase, DataProduct, DataSharingAgreement};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use std::collections::{BTreeMap, BTreeSet};
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
    // Judging roles against a half-filled cache would drop live grants.
    if !crate::controller::cache_ready(&ctx.stores.agreements).await {
        tracing::error!("the agreements cache stopped; no convergence");
        return;
    }
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
///
/// It looks without the grant lock and takes it only to correct, judging
/// again from the agreement as the API server has it then, so a grant whose
/// status is being written is never mistaken for an orphan.
pub async fn converge_once(ctx: &Context) -> Result<usize, kube::Error> {
    let enf = &ctx.enforcement;
    // From the watch cache (ready: see [`run`]); every correction is judged
    // again from a fresh read first, so a stale entry costs at most a GET.
    let agreements = ctx.stores.agreements.state();
    let by_role: BTreeMap<String, &CachedAgreement> = agreements
        .iter()
        .filter_map(|a| Some((postgres::role_name(&a.uid()?), &**a)))
        .collect();

    // every database, once, with a product that reaches it (for Events);
    // and each product's grantor, unpacked once a pass
    let products = ctx.stores.products.state();
    let mut grantors: BTreeMap<(&str, &str), (String, PostgresPort)> = BTreeMap::new();
    let mut targets: BTreeMap<String, (postgres::Admin, DataProduct)> = BTreeMap::new();
    for cached in &products {
        let product = match cached.expand() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "convergence skips a product");
                continue;
            }
        };
        let Ok(Grantor::Postgres { namespace, port }) = Grantor::for_product(&product) else {
            continue;
        };
        let (Some(ns), Some(name)) = (
            cached.meta().namespace.as_deref(),
            cached.meta().name.as_deref(),
        ) else {
            continue;
        };
        grantors.insert((ns, name), (namespace.clone(), port.clone()));
        match enf.admin(&namespace, &port).await {
            Ok(admin) => {
                targets
                    .entry(admin.target())
                    .or_insert_with(|| (admin, product));
            }
            Err(e) => {
                tracing::debug!(product = %name, error = %e, "convergence skips a product")
            }
        }
    }

    let mut corrections = 0;
    let mut present: BTreeSet<(String, String)> = BTreeSet::new();
    for (target, (admin, product)) in &targets {
        let roles = match postgres::marked_roles(admin).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%target, error = %e, "convergence cannot list roles");
                continue;
            }
        };
        for marked in roles {
            present.insert((target.clone(), marked.role.clone()));
            if by_role
                .get(&marked.role)
                .is_some_and(|a| a.phase == Some(AgreementPhase::Active))
            {
                continue;
            }
            let _guard = enf.exclusive().await;
            let agreement = fresh(ctx, &marked.label, &marked.role).await?;
            if agreement.as_ref().and_then(phase) == Some(AgreementPhase::Active) {
                continue; // granted since the list was taken
            }
            let reason = match &agreement {
                None => format!("no agreement backs it (was {})", marked.label),
                Some(a) => format!(
                    "agreement {} is {}",
                    name_of(a),
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
                        agreement: agreement.as_ref().map(name_of),
                        reason,
                    };
                    record(ctx, &c, agreement.as_ref(), product).await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(role = %marked.role, error = %e, "convergence cannot drop role")
                }
            }
        }
    }

    // Groups whose agreements all ended.
    for (target, (admin, _)) in &targets {
        let _guard = enf.exclusive().await;
        match postgres::drop_empty_groups(admin).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(%target, groups = dropped.len(), "dropped groups no agreement uses")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%target, error = %e, "convergence cannot drop empty groups"),
        }
    }

    // Active agreements whose role or Secret is missing get them again.
    let now = jiff::Timestamp::now();
    let mut admins: BTreeMap<(String, String), Option<postgres::Admin>> = BTreeMap::new();
    let mut live: Vec<&CachedAgreement> = agreements
        .iter()
        .map(|a| &**a)
        .filter(|a| {
            is_live(
                a.phase,
                a.meta().deletion_timestamp.is_some(),
                a.active_until,
                now,
            )
        })
        .collect();
    live.sort_by_key(|a| a.uid());
    // Roles are checked for all (one query per database); Secrets for a
    // rotating window, so a pass costs at most SECRET_CHECKS_PER_PASS GETs
    // (the operator may not list Secrets).
    let window = secret_window(live.len(), enf.next_secret_window(SECRET_CHECKS_PER_PASS));
    for (i, a) in live.into_iter().enumerate() {
        let Some(uid) = a.uid() else { continue };
        let Some((namespace, port)) =
            grantors.get(&(a.product.namespace.as_str(), a.product.name.as_str()))
        else {
            continue;
        };
        let key = (namespace.clone(), port.admin_secret_ref.name.clone());
        if !admins.contains_key(&key) {
            let admin = enf.admin(namespace, port).await.ok();
            admins.insert(key.clone(), admin);
        }
        let Some(Some(admin)) = admins.get(&key) else {
            continue;
        };
        let role = postgres::role_name(&uid);
        if !targets.contains_key(&admin.target()) {
            continue; // its roles could not be listed this pass
        }
        let has_role = present.contains(&(admin.target(), role.clone()));
        let has_secret = if window(i) {
            let secret = a
                .status()
                .ok()
                .flatten()
                .and_then(|s| s.credentials_secret)
                .unwrap_or_else(|| super::secret_name(&a.name_any()));
            let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
                ctx.client.clone(),
                &a.namespace().unwrap_or_default(),
            );
            secrets.get_opt(&secret).await?.is_some()
        } else {
            true
        };
        if has_role && has_secret {
            continue;
        }
        let _guard = enf.exclusive().await;
        let Some(a) = fresh(ctx, &super::role_label(a), &role)
            .await?
            .filter(|a| live_active(a, now))
        else {
            continue; // ended since the list was taken
        };
        let product = ctx
            .stores
            .products
            .get(&ObjectRef::new(&a.spec.product.name).within(&a.spec.product.namespace))
            .map(|p| p.expand());
        let Some(Ok(product)) = product else {
            continue; // gone since the pass began (or unreadable: logged above)
        };
        let status = a.status.clone().unwrap_or_default();
        // ENFORCEMENT: grant (convergence re-grant)
        match enf
            .grant(
                &a,
                &product,
                &status.granted_fields,
                status.active_until.as_deref(),
            )
            .await
        {
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
                    agreement: Some(name_of(&a)),
                    reason: format!("Active agreement's {missing} was missing"),
                };
                record(ctx, &c, Some(&a), &product).await;
            }
            Err(e) => {
                tracing::warn!(agreement = %name_of(&a), error = %e, "convergence cannot re-grant")
            }
        }
    }
    Ok(corrections)
}

/// Credentials Secrets looked up per convergence pass at most.
pub const SECRET_CHECKS_PER_PASS: usize = 1000;

/// Whether the `i`-th of `n` live agreements has its Secret checked this
/// pass: `per_pass` of them from `start` on, wrapping around.
fn secret_window(n: usize, (start, per_pass): (usize, usize)) -> impl Fn(usize) -> bool {
    move |i| {
        if n <= per_pass {
            return true;
        }
        let start = start % n;
        (i + n - start) % n < per_pass
    }
}

/// Active, not being deleted, and not past its end (the reconciler is about
/// to revoke those).
fn live_active(a: &DataSharingAgreement, now: jiff::Timestamp) -> bool {
    is_live(
        phase(a),
        a.metadata.deletion_timestamp.is_some(),
        a.status
            .as_ref()
            .and_then(|s| s.active_until.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok()),
        now,
    )
}

fn is_live(
    phase: Option<AgreementPhase>,
    deleting: bool,
    until: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> bool {
    phase == Some(AgreementPhase::Active) && !deleting && until.is_none_or(|t| t > now)
}

/// The agreement a role was made for, as the API server has it now: the one
/// named in the role's label (`namespace/name uid`), if its uid still gives
/// that role (a re-created agreement of the same name is another one).
async fn fresh(
    ctx: &Context,
    label: &str,
    role: &str,
) -> Result<Option<DataSharingAgreement>, kube::Error> {
    let Some((ns, name)) = label
        .split_whitespace()
        .next()
        .and_then(|n| n.split_once('/'))
    else {
        return Ok(None);
    };
    if ns.is_empty() || name.is_empty() {
        return Ok(None);
    }
    let a = Api::<DataSharingAgreement>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(a.filter(|a| a.uid().is_some_and(|u| postgres::role_name(&u) == role)))
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

#[cfg(test)]
mod tests {
    use super::secret_window;

    #[test]
    fn secret_checks_rotate_over_every_agreement() {
        // few agreements: all checked every pass
        let all = secret_window(3, (7, 5));
        assert!((0..3).all(&all));
        // many: exactly per_pass checked, continuing where the last pass ended
        let mut seen = vec![0; 10];
        for pass in 0..5 {
            let w = secret_window(10, (pass * 4, 4));
            let checked: Vec<usize> = (0..10).filter(|i| w(*i)).collect();
            assert_eq!(checked.len(), 4);
            for i in checked {
                seen[i] += 1;
            }
        }
        // 5 passes of 4 over 10 cover each twice
        assert!(seen.iter().all(|n| *n == 2), "{seen:?}");
    }
}
