//! DataSharingAgreement controller: decides each agreement with the decision
//! core, carries it through its phases (see [`crate::lifecycle`]), and
//! decides again whenever something it depends on changes: the policy set,
//! the product, its licence, either domain, or the provider's answer.

use super::{drain, error_policy, instrumented};
use crate::cached_agreement::CachedAgreement;
use crate::cached_product::CachedProduct;
use crate::context::Context;
use crate::enforcement::{self, EnforcementError};
use crate::lifecycle::{self, Answer, Blocked, Facts};
use crate::{Error, Result, status};
use datamesh_crds::agreement::{AgreementPhase, ApprovalRecord, DataSharingAgreementStatus};
use datamesh_crds::approval::ApprovalDecision;
use datamesh_crds::{
    AgreementApproval, DataProduct, DataSharingAgreement, Domain, Licence, ObjectRef as Ref,
};
use datamesh_policies::DecisionInput;
use futures::{StreamExt, TryStreamExt};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Finalizer that revokes access before an agreement goes away.
pub const FINALIZER: &str = "datamesh.dev/revoke-access";

/// Runs the DataSharingAgreement controller. Its watch fills the one cache
/// of agreements, [`crate::context::Stores::agreements`].
pub async fn run(ctx: Arc<Context>) {
    let Some(writer) = ctx.take_agreements_writer() else {
        tracing::error!("the agreement controller runs once per process");
        return;
    };
    let agreements = ctx.stores.agreements.clone();
    // the cache's copies are packed as they are read (cached_agreement)
    let api = Api::<CachedAgreement>::all(ctx.client.clone());
    let (index, cached) = (ctx.stores.by_product.clone(), agreements.clone());
    // The watch fills the cache and triggers a reconcile per change. What
    // a (re)list brings is reconciled by a sweep once the list is complete,
    // a window at a time (crate::sweep), as is every agreement after a
    // change of the policy set.
    let (sweep, own) = (ctx.agreement_sweep.clone(), ctx.clone());
    let changes = kube::runtime::watcher(api, crate::controller::watch_config())
        .default_backoff()
        .inspect_ok(move |event| index.apply(event, &cached))
        .reflect(writer)
        .filter_map(move |event| {
            use kube::runtime::watcher::Event as Watch;
            std::future::ready(match event {
                // the copy our own status write produced: decided already
                Ok(Watch::Apply(a))
                    if own.own_writes.arrived(
                        &a.namespace().unwrap_or_default(),
                        &a.name_any(),
                        a.resource_version().as_deref().unwrap_or_default(),
                    ) =>
                {
                    None
                }
                Ok(Watch::Apply(a)) => Some(ObjectRef::from_obj(&a)),
                Ok(Watch::Delete(a)) => {
                    sweep.started(&a);
                    None
                }
                Ok(Watch::InitDone) => {
                    sweep.request();
                    None
                }
                Ok(Watch::Init | Watch::InitApply(_)) => None,
                Err(error) => {
                    // the watch retries after its own backoff
                    tracing::warn!(%error, "agreements watch failed; retrying");
                    None
                }
            })
        });
    // Every change of the policy set in force decides every agreement again.
    let (sweep, versions) = (ctx.agreement_sweep.clone(), ctx.policy.subscribe());
    let policy_changes = tokio::spawn(async move {
        let mut versions = Box::pin(tokio_stream_of(versions));
        while versions.next().await.is_some() {
            sweep.request();
        }
    });
    let controller = Controller::for_stream(futures::stream::empty(), agreements.clone())
        .reconcile_on(changes)
        .reconcile_on(ctx.agreement_sweep.clone().stream(agreements.clone()))
        .reconcile_on(ends(agreements.clone(), ctx.agreement_sweep.clone()));
    let (s2, s3, s4) = (agreements.clone(), agreements.clone(), agreements.clone());
    let products = ctx.stores.products.clone();
    let by_product = ctx.stores.by_product.clone();
    let stream = controller
        // every agreement is decided at start: only later changes matter,
        // and of those only the ones a decision reads
        .watches_shared_stream(
            super::dependent_changes(ctx.product_changes_from_now()),
            move |p: Arc<CachedProduct>| {
                by_product.agreements(&p.namespace().unwrap_or_default(), &p.name_any())
            },
        )
        .watches_shared_stream(
            super::dependent_changes(ctx.licence_changes_from_now()),
            move |l: Arc<Licence>| {
                let name = l.name_any();
                on(&s2, |a| {
                    products
                        .get(&ObjectRef::new(&a.product.name).within(&a.product.namespace))
                        .is_some_and(|p| p.licence == name)
                })
            },
        )
        .watches_shared_stream(
            super::dependent_changes(ctx.domain_changes_from_now()),
            move |d: Arc<Domain>| {
                // consumer or provider: re-decide all that name it (cheap, rare)
                let name = d.name_any();
                on(&s3, |a| {
                    a.consumer == name
                        || d.spec.namespaces.iter().any(|n| n.0 == a.product.namespace)
                })
            },
        )
        .watches_shared_stream(
            super::dependent_changes(ctx.approval_changes_from_now()),
            move |ap: Arc<AgreementApproval>| {
                let r = &ap.spec.agreement;
                on(&s4, |a| {
                    a.namespace().as_deref() == Some(r.namespace.as_str()) && a.name_any() == r.name
                })
            },
        )
        .with_config(super::controller_config())
        .trigger_backoff(super::TriggerBackoff::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone());
    let gauge = tokio::spawn(count_active(ctx));
    drain("DataSharingAgreement", stream).await;
    gauge.abort();
    policy_changes.abort();
}

/// How often the cache is scanned for Active agreements whose end has come.
const END_SCAN: Duration = Duration::from_secs(1);

/// Active agreements whose end (`status.activeUntil`) has come, for the
/// controller to end them, found by scanning the cache every [`END_SCAN`].
/// A timer per agreement in the controller runtime's queue (a requeue at
/// its end) would hold ~460 bytes for as long as it is Active: 21 MB at
/// 45,000. The scan costs ~1 ms a second at 50,000 and ends an agreement
/// at most a second late. One still Active on the next scan (its reconcile
/// failed or is queued) is handed over again; the controller's queue holds
/// it once.
fn ends(
    store: Store<CachedAgreement>,
    sweep: Arc<crate::sweep::Sweep>,
) -> impl futures::Stream<Item = ObjectRef<CachedAgreement>> + Send {
    futures::stream::unfold(
        (store, sweep, std::collections::VecDeque::new()),
        |(store, sweep, mut due)| async move {
            loop {
                if let Some(r) = due.pop_front() {
                    sweep.admit_ref(&r).await;
                    return Some((r, (store, sweep, due)));
                }
                tokio::time::sleep(END_SCAN).await;
                let now = jiff::Timestamp::now();
                due = store
                    .state()
                    .iter()
                    .filter(|a| {
                        a.phase == Some(AgreementPhase::Active)
                            && a.active_until.is_some_and(|end| end <= now)
                    })
                    .map(|a| ObjectRef::from_obj(&**a))
                    .collect();
            }
        },
    )
}

/// Yields once per change of the policy set in force.
fn tokio_stream_of(
    rx: tokio::sync::watch::Receiver<String>,
) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    })
}

fn on(
    store: &Store<CachedAgreement>,
    pred: impl Fn(&CachedAgreement) -> bool,
) -> Vec<ObjectRef<CachedAgreement>> {
    store
        .state()
        .into_iter()
        .filter(|a| pred(a))
        .map(|a| ObjectRef::from_obj(&*a))
        .collect()
}

async fn count_active(ctx: Arc<Context>) {
    loop {
        let n = ctx
            .stores
            .agreements
            .state()
            .iter()
            .filter(|a| a.phase == Some(AgreementPhase::Active))
            .count();
        ctx.metrics.active_agreements.set(n as i64);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[tracing::instrument(skip_all, fields(kind = "DataSharingAgreement", name = %cached.name_any(), namespace = cached.namespace()))]
async fn reconcile(cached: Arc<CachedAgreement>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, "DataSharingAgreement", async {
        ctx.agreement_sweep.started(&*cached);
        // decided on in full, as the cache last saw it
        let dsa = Arc::new(cached.expand()?);
        let ns = dsa
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let api = Api::<DataSharingAgreement>::namespaced(ctx.client.clone(), &ns);
        finalizer(&api, FINALIZER, dsa, |event| async {
            match event {
                Finalizer::Apply(dsa) => apply(&dsa, &ctx).await,
                Finalizer::Cleanup(dsa) => cleanup(&dsa, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        })
    })
    .await
}

/// The objects a decision needs, or what is missing.
struct Inputs {
    consumer: Arc<Domain>,
    provider: Arc<Domain>,
    /// Packed: unpacked by the decision that reads it.
    product: Arc<CachedProduct>,
    licence: Arc<Licence>,
}

fn gather(
    dsa: &DataSharingAgreement,
    ns: &str,
    ctx: &Context,
) -> std::result::Result<Inputs, Blocked> {
    let stores = &ctx.stores;
    let spec = &dsa.spec;
    let consumer = stores
        .domains
        .get(&ObjectRef::new(&spec.consumer))
        .ok_or_else(|| Blocked {
            reason: "ConsumerNotFound",
            message: format!("Domain {} does not exist", spec.consumer),
        })?;
    if !consumer.spec.namespaces.iter().any(|n| n.0 == ns) {
        return Err(Blocked {
            reason: "NamespaceNotOwned",
            message: format!(
                "namespace {ns} is not one of consumer Domain {}'s namespaces",
                spec.consumer
            ),
        });
    }
    let product = cached_product(dsa, ctx).ok_or_else(|| Blocked {
        reason: "ProductNotFound",
        message: format!("DataProduct {} does not exist", spec.product),
    })?;
    if product.meta().deletion_timestamp.is_some() {
        return Err(Blocked {
            reason: "ProductDeleted",
            message: format!("DataProduct {} is being deleted", spec.product),
        });
    }
    let provider = stores
        .domains
        .get(&ObjectRef::new(&product.domain))
        .ok_or_else(|| Blocked {
            reason: "ProviderNotFound",
            message: format!("the product's Domain {} does not exist", product.domain),
        })?;
    if !provider
        .spec
        .namespaces
        .iter()
        .any(|n| n.0 == spec.product.namespace)
    {
        return Err(Blocked {
            reason: "ProductNotOwned",
            message: format!(
                "DataProduct {} is not in a namespace of Domain {}",
                spec.product, product.domain
            ),
        });
    }
    let licence = stores
        .licences
        .get(&ObjectRef::new(&product.licence))
        .ok_or_else(|| Blocked {
            reason: "LicenceNotFound",
            message: format!("Licence {} does not exist", product.licence),
        })?;
    Ok(Inputs {
        consumer,
        provider,
        product,
        licence,
    })
}

/// The provider's latest answer to this agreement, from an AgreementApproval
/// in the product's namespace (where only the provider team may create one).
fn answer(dsa: &DataSharingAgreement, ns: &str, ctx: &Context) -> Option<Answer> {
    let name = dsa.name_any();
    let created = dsa.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ctx.stores
        .approvals
        .state()
        .into_iter()
        .filter(|ap| {
            ap.namespace().as_deref() == Some(dsa.spec.product.namespace.as_str())
                && ap.spec.agreement.namespace == ns
                && ap.spec.agreement.name == name
                // an answer older than the agreement was for an earlier one of the same name
                && ap.metadata.creation_timestamp.as_ref().map(|t| t.0) >= created
        })
        .max_by_key(|ap| ap.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .map(|ap| Answer {
            approved: ap.spec.decision == ApprovalDecision::Approve,
            record: ApprovalRecord {
                decision: match ap.spec.decision {
                    ApprovalDecision::Approve => "Approved".into(),
                    ApprovalDecision::Deny => "Denied".into(),
                },
                by: ap.spec.approver.clone(),
                at: ap
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                approval: Ref {
                    namespace: ap.namespace().unwrap_or_default(),
                    name: ap.name_any(),
                },
                reason: ap.spec.reason.clone(),
            },
        })
}

async fn apply(dsa: &DataSharingAgreement, ctx: &Context) -> Result<Action> {
    let ns = dsa
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = dsa.name_any();
    let decided_on = dsa.metadata.resource_version.clone().unwrap_or_default();
    if ctx.own_writes.is_stale(&ns, &name, &decided_on) {
        // acting again on this copy could repeat a grant (a new password)
        return Err(Error::Waiting(format!(
            "the cache to show the last status written for {ns}/{name}"
        )));
    }
    let now = jiff::Timestamp::now();
    let current = dsa.status.as_ref();
    let phase = current
        .and_then(|s| s.phase)
        .unwrap_or(AgreementPhase::Pending);
    let answer = answer(dsa, &ns, ctx);

    let engine = ctx.policy.engine();
    // the product as decided on, unpacked once: a grant reads it too
    let mut decided_product = None;
    let decision = match gather(dsa, &ns, ctx) {
        Ok(inputs) => {
            let product = decided_product.insert(inputs.product.expand()?);
            let mut request = dsa.spec.clone();
            if phase == AgreementPhase::Active {
                // measure the grant from when it really started
                request.start = current.and_then(|s| s.active_from.clone());
            }
            let mut input = DecisionInput::new(
                &inputs.consumer,
                &inputs.provider,
                product,
                &inputs.licence,
                &request,
                now,
            );
            input.owner_approved = answer.as_ref().is_some_and(|a| a.approved);
            input.existing_agreement = phase == AgreementPhase::Active;
            let started = Instant::now();
            let d = engine.decide(&input);
            ctx.metrics
                .decision_duration
                .observe(started.elapsed().as_secs_f64());
            ctx.metrics
                .decisions
                .get_or_create(&crate::metrics::OutcomeLabels {
                    outcome: d.outcome.as_str(),
                })
                .inc();
            Ok(d)
        }
        Err(blocked) => Err(blocked),
    };
    let transition = lifecycle::next(Facts {
        generation: dsa.metadata.generation,
        current,
        decision: decision.as_ref().map_err(Clone::clone),
        answer: answer.as_ref(),
        now,
    });

    let api = Api::<DataSharingAgreement>::namespaced(ctx.client.clone(), &ns);
    // AUDIT: recorded and committed before the change takes effect (grant,
    // revocation, status); if the store cannot be written, nothing happens.
    let records = crate::audit::events::agreement_records(
        dsa,
        provider_domain(dsa, ctx).as_deref(),
        current,
        &transition.status,
        answer.as_ref(),
    );
    ctx.audit.append_all(&records).await?;
    let mut transition = transition;
    let becomes_active = transition.status.phase == Some(AgreementPhase::Active);
    // Held from the grant or revocation until the status says so, so that
    // convergence never judges a role by a status about to change.
    let mut _enforcing = None;
    if becomes_active && phase != AgreementPhase::Active {
        // Fail closed: Active is written only after the grant holds.
        _enforcing = Some(ctx.enforcement.lock().await);
        let s = &transition.status;
        // as decided on, if the cache still holds it
        let product = decided_product.filter(|_| cached_product(dsa, ctx).is_some());
        let granted = match product {
            // ENFORCEMENT: grant
            Some(product) => {
                ctx.enforcement
                    .grant(dsa, &product, &s.granted_fields, s.active_until.as_deref())
                    .await
            }
            None => Err(EnforcementError::MissingField("its product")),
        };
        match granted {
            Ok(g) => {
                transition.status.credentials_secret = Some(g.secret);
                enforcement::set_granted(&mut transition.status, true, "Granted", g.summary, now);
            }
            Err(e) => {
                let held = enforcement::grant_failed(current, dsa.metadata.generation, &e, now);
                tracing::warn!(reason = e.reason(), error = %e, "grant failed; agreement stays {}", phase.as_str());
                if let Some(written) = status::apply_if_unchanged_since(
                    &api,
                    &name,
                    dsa.metadata.resource_version.as_deref(),
                    current,
                    &held,
                )
                .await?
                {
                    ctx.own_writes.wrote(&ns, &name, &decided_on, &written);
                    ctx.metrics.wrote("DataSharingAgreement", "status");
                    publish(ctx, dsa, true, e.reason(), &format!("not granted: {e}")).await;
                }
                return Ok(Action::requeue(GRANT_RETRY));
            }
        }
    } else if phase == AgreementPhase::Active && !becomes_active {
        // Revoke first, then write the status that says it ended.
        _enforcing = Some(ctx.enforcement.lock().await);
        // ENFORCEMENT: revoke
        revoke(dsa, ctx, true).await?;
        enforcement::set_granted(
            &mut transition.status,
            false,
            "Revoked",
            "role dropped, its sessions ended, credentials Secret deleted".into(),
            now,
        );
    }
    if let Some(written) =
        status::apply_if_unchanged_since::<DataSharingAgreement, DataSharingAgreementStatus>(
            &api,
            &name,
            dsa.metadata.resource_version.as_deref(),
            current,
            &transition.status,
        )
        .await?
    {
        ctx.own_writes.wrote(&ns, &name, &decided_on, &written);
        ctx.metrics.wrote("DataSharingAgreement", "status");
        if let Some(note) = &transition.note {
            tracing::info!(phase = ?transition.status.phase, reason = note.reason, "{}", note.message);
            publish(ctx, dsa, note.warning, note.reason, &note.message).await;
        }
    }
    // An Active agreement's end (transition.wake_at, its activeUntil) is
    // found by the scan of the cache (`ends`), not a timer per agreement.
    Ok(Action::await_change())
}

async fn cleanup(dsa: &DataSharingAgreement, ctx: &Context) -> Result<Action> {
    ctx.own_writes
        .forget(&dsa.namespace().unwrap_or_default(), &dsa.name_any());
    let phase = dsa.status.as_ref().and_then(|s| s.phase);
    if phase == Some(AgreementPhase::Active) {
        // AUDIT: the revocation is on record before access goes.
        let record =
            crate::audit::events::deletion_record(dsa, provider_domain(dsa, ctx).as_deref());
        ctx.audit.append_all(&[record]).await?;
    }
    {
        let _enforcing = ctx.enforcement.lock().await;
        // ENFORCEMENT: revoke (agreement deleted). Only an Active grant must be
        // revoked before the agreement goes; any other phase is best effort
        // (convergence drops what a crash left).
        revoke(dsa, ctx, phase == Some(AgreementPhase::Active)).await?;
    }
    if phase == Some(AgreementPhase::Active) {
        publish(
            ctx,
            dsa,
            false,
            "Revoked",
            "agreement deleted: access revoked",
        )
        .await;
    }
    Ok(Action::await_change())
}

/// How long to wait before retrying a failed grant.
const GRANT_RETRY: Duration = Duration::from_secs(10);

/// The agreement's product as the cache holds it (also while it is being
/// deleted).
fn cached_product(dsa: &DataSharingAgreement, ctx: &Context) -> Option<Arc<CachedProduct>> {
    ctx.stores
        .products
        .get(&ObjectRef::new(&dsa.spec.product.name).within(&dsa.spec.product.namespace))
}

/// The same, unpacked.
fn product_of(dsa: &DataSharingAgreement, ctx: &Context) -> Result<Option<DataProduct>> {
    Ok(cached_product(dsa, ctx).map(|p| p.expand()).transpose()?)
}

/// Revokes the agreement's grant. With `must`, a failure is returned (and the
/// reconcile retried) unless the store cannot be reached at all (product or
/// admin Secret gone), which is logged and announced: then the role still
/// expires at its VALID UNTIL and convergence drops it once reachable.
async fn revoke(dsa: &DataSharingAgreement, ctx: &Context, must: bool) -> Result<()> {
    let product = product_of(dsa, ctx)?;
    match ctx.enforcement.revoke(dsa, product.as_ref()).await {
        Ok(()) => Ok(()),
        Err(e) if must && !e.is_unreachable() => {
            publish(ctx, dsa, true, "RevokeFailed", &format!("will retry: {e}")).await;
            Err(e.into())
        }
        Err(e) => {
            tracing::warn!(reason = e.reason(), error = %e, "cannot reach the store to revoke");
            if must {
                publish(ctx, dsa, true, "RevokeUnverified", &format!("cannot reach the store to revoke; the role expires at its end and convergence drops it: {e}")).await;
            }
            Ok(())
        }
    }
}

/// The provider domain of the agreement's product, from the cache.
fn provider_domain(dsa: &DataSharingAgreement, ctx: &Context) -> Option<String> {
    cached_product(dsa, ctx).map(|p| p.domain.clone())
}

async fn publish(
    ctx: &Context,
    dsa: &DataSharingAgreement,
    warning: bool,
    reason: &str,
    message: &str,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(message.chars().take(1000).collect()),
        action: "Decide".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &dsa.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}
