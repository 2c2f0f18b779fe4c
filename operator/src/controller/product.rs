//! DataProduct controller: checks that the product's namespace belongs to its
//! Domain, that its Licence and its provenance inputs exist, and records
//! Ready with a reason. A Domain, Licence or input product appearing or
//! changing requeues the products that depend on it.

use super::{dependent_changes, drain, error_policy, instrumented};
use crate::cached_product::CachedProduct;
use crate::context::Context;
use crate::{Result, checks, status};
use datamesh_crds::condition::{self, READY};
use datamesh_crds::{DataProduct, DataProductStatus, Domain, Licence};
use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::sync::Arc;

/// Runs the DataProduct controller.
pub async fn run(ctx: Arc<Context>) {
    // The one products cache (the catalog's too): no watch of its own.
    // Every product is reconciled at start by a sweep, a window at a time
    // (crate::sweep); then each change of a product reconciles it.
    let products = ctx.stores.products.clone();
    let sweep = ctx.product_sweep.clone();
    let changes = ctx.product_changes_from_now().map(move |c| {
        if c.deleted {
            sweep.started(&*c.now);
        }
        c.now
    });
    let controller = Controller::for_shared_stream(changes, products.clone())
        .reconcile_on(ctx.product_sweep.clone().stream(products.clone()));
    // the products cache is complete before any controller starts
    ctx.product_sweep.request();
    let by_domain = products.clone();
    let by_licence = products.clone();
    let by_input = products;
    let stream = controller
        // a domain or licence appearing, going or changing its spec; from
        // the caches the checks read, so a reconcile sees what triggered it
        .watches_shared_stream(
            dependent_changes(ctx.domain_changes_from_now()),
            move |d: Arc<Domain>| dependents(&by_domain, |p| p.domain == d.name_any()),
        )
        .watches_shared_stream(
            dependent_changes(ctx.licence_changes_from_now()),
            move |l: Arc<Licence>| dependents(&by_licence, |p| p.licence == l.name_any()),
        )
        // an input appearing or going; its status writes change nothing here
        .watches_shared_stream(
            dependent_changes(ctx.product_changes_from_now()),
            move |input: Arc<CachedProduct>| {
                let (ns, name) = (input.namespace().unwrap_or_default(), input.name_any());
                dependents(&by_input, |p| {
                    p.inputs.iter().any(|r| r.namespace == ns && r.name == name)
                })
            },
        )
        .with_config(super::controller_config())
        .trigger_backoff(super::TriggerBackoff::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("DataProduct", stream).await;
}

fn dependents(
    store: &Store<CachedProduct>,
    pred: impl Fn(&CachedProduct) -> bool,
) -> Vec<ObjectRef<CachedProduct>> {
    store
        .state()
        .into_iter()
        .filter(|p| pred(p))
        .map(|p| ObjectRef::from_obj(&*p))
        .collect()
}

/// Finalizer that ends every agreement on a product before it goes away.
pub const FINALIZER: &str = "datamesh.dev/revoke-agreements";

#[tracing::instrument(skip_all, fields(kind = "DataProduct", name = %cached.name_any(), namespace = cached.namespace()))]
async fn reconcile(cached: Arc<CachedProduct>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, "DataProduct", async {
        ctx.product_sweep.started(&*cached);
        // checked in full, as the cache last saw it
        let product = Arc::new(cached.expand()?);
        let ns = product
            .namespace()
            .ok_or(crate::Error::MissingField("metadata.namespace"))?;
        let api = Api::<DataProduct>::namespaced(ctx.client.clone(), &ns);
        finalizer(&api, FINALIZER, product, |event| async {
            match event {
                Finalizer::Apply(p) => reconcile_inner(p, &ctx).await,
                Finalizer::Cleanup(p) => cleanup(&p, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => crate::Error::Finalizer(other.to_string()),
        })
    })
    .await
}

/// The product stays until no agreement on it is Active: the agreement
/// controller sees the deletion and revokes each one first.
async fn cleanup(product: &DataProduct, ctx: &Context) -> Result<Action> {
    let (ns, name) = (product.namespace().unwrap_or_default(), product.name_any());
    // a half-filled cache would let the product go before its agreements' revocation
    if !super::cache_ready(&ctx.stores.agreements).await {
        return Err(crate::Error::Waiting("the agreements cache".into()));
    }
    let live = ctx
        .stores
        .by_product
        .cached(&ctx.stores.agreements, &ns, &name)
        .iter()
        .filter(|a| a.phase == Some(datamesh_crds::AgreementPhase::Active))
        .count();
    if live > 0 {
        return Err(crate::Error::Waiting(format!(
            "{live} Active agreement(s) on {ns}/{name} being revoked"
        )));
    }
    Ok(Action::await_change())
}

async fn reconcile_inner(product: Arc<DataProduct>, ctx: &Context) -> Result<Action> {
    let ns = product
        .namespace()
        .ok_or(crate::Error::MissingField("metadata.namespace"))?;
    let name = product.name_any();
    let stores = &ctx.stores;
    let domain = stores.domains.get(&ObjectRef::new(&product.spec.domain));
    let licence = stores.licences.get(&ObjectRef::new(&product.spec.licence));
    let readiness = checks::product(
        &product,
        &ns,
        domain.as_deref(),
        licence.as_deref(),
        |ns, name| {
            stores
                .products
                .get(&ObjectRef::new(name).within(ns))
                .is_some()
        },
    );

    let api = Api::<DataProduct>::namespaced(ctx.client.clone(), &ns);
    let generation = product.metadata.generation;
    let mut next = product.status.clone().unwrap_or_default();
    next.observed_generation = generation;
    let before =
        condition::get(&next.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
    condition::set(
        &mut next.conditions,
        condition::new(
            READY,
            readiness.ready,
            readiness.reason,
            &readiness.message,
            generation,
            jiff::Timestamp::now(),
        ),
    );
    if status::apply_if_changed::<DataProduct, DataProductStatus>(
        &api,
        &name,
        product.status.as_ref(),
        &next,
    )
    .await?
    {
        ctx.metrics.wrote("DataProduct", "status");
        let after =
            condition::get(&next.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
        if before != after {
            super::publish_readiness(ctx, &*product, &readiness).await;
        }
    }
    Ok(Action::await_change())
}
