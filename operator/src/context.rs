//! What every reconciler shares: the client, the watch caches of the kinds it
//! looks things up in, the Event recorder and the metrics.

use crate::cached_agreement::CachedAgreement;
use crate::cached_product::CachedProduct;
use crate::metrics::Metrics;
use crate::policy_store::PolicyStore;
use datamesh_crds::{AgreementApproval, Domain, GovernancePolicy, Licence};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// Watch caches of the kinds reconcilers read.
#[derive(Clone)]
pub struct Stores {
    /// Every Domain.
    pub domains: Store<Domain>,
    /// Every Licence.
    pub licences: Store<Licence>,
    /// Every DataProduct, packed (see [`CachedProduct`]). The one cache of
    /// products: the product controller reconciles from it and is triggered by [`Context::product_changes_from_now`] and a sweep of the cache at start.
    pub products: Store<CachedProduct>,
    /// Every Namespace.
    pub namespaces: Store<Namespace>,
    /// Every DataSharingAgreement. The most numerous kind has one cache
    /// only, filled by the agreement controller's own watch (see
    /// [`Context::take_agreements_writer`]): ready once this replica leads.
    pub agreements: Store<CachedAgreement>,
    /// Which cached agreements name which product, kept by the same watch.
    pub by_product: Arc<crate::by_product::ByProduct>,
    /// Every AgreementApproval.
    pub approvals: Store<AgreementApproval>,
    /// Every GovernancePolicy.
    pub policies: Store<GovernancePolicy>,
}

/// Shared state of the reconcilers.
pub struct Context {
    /// Client to the API server.
    pub client: Client,
    /// Watch caches.
    pub stores: Stores,
    /// Publishes Events.
    pub recorder: crate::event::Publisher,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The policy set in force.
    pub policy: PolicyStore,
    /// The audit trail; appended to before a change takes effect.
    pub audit: Arc<crate::audit::AuditStore>,
    /// Grants and revocations where the data lives.
    pub enforcement: crate::enforcement::Enforcement,
    /// Agreement status writes the agreements cache does not show yet.
    pub own_writes: crate::own_writes::OwnWrites,
    /// Reconciles every agreement again (start, relist, policy change), a
    /// window at a time.
    pub agreement_sweep: Arc<crate::sweep::Sweep>,
    /// The same for products (at start).
    pub product_sweep: Arc<crate::sweep::Sweep>,
    agreements_writer: std::sync::Mutex<Option<reflector::store::Writer<CachedAgreement>>>,
    products_changed: tokio::sync::broadcast::Sender<Change<CachedProduct>>,
    domains_changed: tokio::sync::broadcast::Sender<Change<Domain>>,
    licences_changed: tokio::sync::broadcast::Sender<Change<Licence>>,
    approvals_changed: tokio::sync::broadcast::Sender<Change<AgreementApproval>>,
}

impl Context {
    /// Starts the watch caches and waits until each has its first full list,
    /// so no reconcile sees a half-filled cache and writes a wrong status.
    pub async fn start(
        client: Client,
        metrics: Arc<Metrics>,
        instance: &str,
        audit: Arc<crate::audit::AuditStore>,
        client_ca: Option<Arc<crate::enforcement::certificate::ClientCa>>,
    ) -> anyhow::Result<Arc<Self>> {
        let (agreements, agreements_writer) = reflector::store();
        let (products_changed, _) = tokio::sync::broadcast::channel(PRODUCT_CHANGES);
        let (domains_changed, _) = tokio::sync::broadcast::channel(RELATED_CHANGES);
        let (licences_changed, _) = tokio::sync::broadcast::channel(RELATED_CHANGES);
        let (approvals_changed, _) = tokio::sync::broadcast::channel(RELATED_CHANGES);
        let stores = Stores {
            agreements,
            by_product: Arc::default(),
            domains: cache_announcing(Api::<Domain>::all(client.clone()), domains_changed.clone()),
            licences: cache_announcing(
                Api::<Licence>::all(client.clone()),
                licences_changed.clone(),
            ),
            products: cache_announcing(
                Api::<CachedProduct>::all(client.clone()),
                products_changed.clone(),
            ),
            namespaces: cache(Api::<Namespace>::all(client.clone())),
            approvals: cache_announcing(
                Api::<AgreementApproval>::all(client.clone()),
                approvals_changed.clone(),
            ),
            policies: cache(Api::<GovernancePolicy>::all(client.clone())),
        };
        stores.domains.wait_until_ready().await?;
        stores.licences.wait_until_ready().await?;
        stores.products.wait_until_ready().await?;
        stores.namespaces.wait_until_ready().await?;
        stores.approvals.wait_until_ready().await?;
        stores.policies.wait_until_ready().await?;
        // The board's policies are in force before any agreement is decided:
        // start from each GovernancePolicy's last valid text.
        let seed = stores
            .policies
            .state()
            .iter()
            .filter(|gp| gp.metadata.deletion_timestamp.is_none())
            .filter_map(|gp| {
                let mut gp = (**gp).clone();
                gp.spec.policies = gp.status.as_ref()?.in_force.clone()?;
                Some((
                    gp.name_any(),
                    datamesh_policies::PolicySource::from_governance_policy(&gp),
                ))
            })
            .collect::<Vec<_>>();
        let policy = PolicyStore::new(seed)?;
        let reporter = Reporter {
            controller: crate::MANAGER.into(),
            instance: Some(instance.to_string()),
        };
        let recorder = crate::event::Publisher::new(client.clone(), reporter, metrics.clone());
        let enforcement =
            crate::enforcement::Enforcement::new(client.clone(), metrics.clone(), client_ca);
        Ok(Arc::new(Self {
            client,
            stores,
            recorder,
            metrics,
            policy,
            audit,
            enforcement,
            own_writes: Default::default(),
            agreement_sweep: Arc::new(crate::sweep::Sweep::new(crate::sweep::WINDOW)),
            product_sweep: Arc::new(crate::sweep::Sweep::new(crate::sweep::WINDOW)),
            agreements_writer: std::sync::Mutex::new(Some(agreements_writer)),
            products_changed,
            domains_changed,
            licences_changed,
            approvals_changed,
        }))
    }

    /// Each change the products cache sees from now on, with the product as
    /// it was before, for controllers that decide every object at start
    /// anyway and only care about some changes (see [`Change::reaches_dependents`]).
    pub fn product_changes_from_now(
        &self,
    ) -> impl futures::Stream<Item = Change<CachedProduct>> + Send + use<> {
        changes(
            self.products_changed.subscribe(),
            self.stores.products.clone(),
        )
    }

    /// Each change the domains cache sees from now on (see [`Change`]).
    pub fn domain_changes_from_now(
        &self,
    ) -> impl futures::Stream<Item = Change<Domain>> + Send + use<> {
        changes(
            self.domains_changed.subscribe(),
            self.stores.domains.clone(),
        )
    }

    /// Each change the licences cache sees from now on (see [`Change`]).
    pub fn licence_changes_from_now(
        &self,
    ) -> impl futures::Stream<Item = Change<Licence>> + Send + use<> {
        changes(
            self.licences_changed.subscribe(),
            self.stores.licences.clone(),
        )
    }

    /// Each change the approvals cache sees from now on (see [`Change`]).
    pub fn approval_changes_from_now(
        &self,
    ) -> impl futures::Stream<Item = Change<AgreementApproval>> + Send + use<> {
        changes(
            self.approvals_changed.subscribe(),
            self.stores.approvals.clone(),
        )
    }

    /// The writer of [`Stores::agreements`], for the agreement controller's
    /// watch; None once taken.
    pub fn take_agreements_writer(&self) -> Option<reflector::store::Writer<CachedAgreement>> {
        self.agreements_writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Changes the products cache announces that a slow consumer may miss
/// before it is handed every product again.
pub const PRODUCT_CHANGES: usize = 4096;

/// The same for the domains, licences and approvals caches (fewer objects).
pub const RELATED_CHANGES: usize = 1024;

/// A change a watch cache announced: what the object was before, and the
/// object as the cache holds it now.
#[derive(Clone, Debug)]
pub struct Change<K> {
    /// The cached version before the change; None when the object is new to
    /// the cache, or unknown (a consumer that lagged is handed every object).
    pub before: Option<Before>,
    /// The cached version now; for a deletion, the last one.
    pub now: Arc<K>,
    /// Whether the object is gone from the cache.
    pub deleted: bool,
}

/// What a change is judged by, from the version the cache held before: not
/// that version itself, which the announcement channel would keep in memory
/// as long as the change is among its last [`PRODUCT_CHANGES`] (at start, a
/// few thousand superseded products).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Before {
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// Whether `metadata.deletionTimestamp` was set.
    pub deleting: bool,
}

impl Before {
    fn of<K: Resource>(o: &K) -> Self {
        let m = o.meta();
        Self {
            uid: m.uid.clone(),
            generation: m.generation,
            resource_version: m.resource_version.clone(),
            deleting: m.deletion_timestamp.is_some(),
        }
    }
}

impl<K: Resource> Change<K> {
    /// Whether what other objects are decided from can differ: the object
    /// appeared, went, was recreated under its name, got a new spec (its
    /// generation) or started being deleted. A status, label or finalizer
    /// change cannot, and at scale those are most changes: a start with
    /// 10,000 products writes 10,000 product statuses, each of which would
    /// otherwise send every dependent controller through its whole cache.
    pub fn reaches_dependents(&self) -> bool {
        let Some(before) = &self.before else {
            return true;
        };
        let n = self.now.meta();
        self.deleted
            || before.uid != n.uid
            || before.generation != n.generation
            || before.deleting != n.deletion_timestamp.is_some()
    }
}

/// The changes announced on `rx`; after a lag, every cached object (as new).
fn changes<K>(
    rx: tokio::sync::broadcast::Receiver<Change<K>>,
    store: Store<K>,
) -> impl futures::Stream<Item = Change<K>> + Send + use<K>
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    use tokio::sync::broadcast::error::RecvError;
    futures::stream::unfold(rx, move |mut rx| {
        let store = store.clone();
        async move {
            match rx.recv().await {
                Ok(c) => Some((vec![c], rx)),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "cache changes lagged; every object again");
                    let all = store.state().into_iter().map(|now| Change {
                        before: None,
                        now,
                        deleted: false,
                    });
                    Some((all.collect(), rx))
                }
                Err(RecvError::Closed) => None,
            }
        }
    })
    .flat_map(futures::stream::iter)
}

/// Runs a reflector for `api` in the background and returns its store.
fn cache<K>(api: Api<K>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    cache_with(api, None)
}

/// Like [`cache`], and announces each change on `tx` once the store holds
/// it (so a controller reconciling from the store sees it), with the cached
/// `Arc`s, no copies. Nobody listening (a standby replica) costs nothing.
fn cache_announcing<K>(api: Api<K>, tx: tokio::sync::broadcast::Sender<Change<K>>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    cache_with(api, Some(tx))
}

fn cache_with<K>(api: Api<K>, tx: Option<tokio::sync::broadcast::Sender<Change<K>>>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, mut writer) = reflector::store();
    let store = reader.clone();
    let stream = watcher(api, crate::controller::watch_config())
        .modify(crate::controller::strip)
        .default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut listed = false;
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "watch error; retrying");
                    continue;
                }
            };
            let Some(tx) = &tx else {
                writer.apply_watcher_event(&event);
                continue;
            };
            for change in apply_and_diff(&mut writer, &store, event, &mut listed) {
                // Err only when nobody listens
                let _ = tx.send(change);
            }
        }
    });
    reader
}

/// Applies a watch event to the store and returns the changes it made.
/// A relist (after a watch restart) reaches the store all at once when it
/// is complete; only the objects it changed or removed are returned then,
/// and nothing for the first list (nobody can have subscribed before it).
fn apply_and_diff<K>(
    writer: &mut reflector::store::Writer<K>,
    store: &Store<K>,
    event: watcher::Event<K>,
    listed: &mut bool,
) -> Vec<Change<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    use watcher::Event;
    let at = |o: &K| reflector::ObjectRef::from_obj(o);
    match &event {
        Event::Apply(o) => {
            let key = at(o);
            let before = store.get(&key).map(|b| Before::of(&*b));
            writer.apply_watcher_event(&event);
            let now = store.get(&key).unwrap_or_else(|| Arc::new(o.clone()));
            vec![Change {
                before,
                now,
                deleted: false,
            }]
        }
        Event::Delete(o) => {
            let before = store.get(&at(o)).map(|b| Before::of(&*b));
            writer.apply_watcher_event(&event);
            vec![Change {
                before,
                now: Arc::new(o.clone()),
                deleted: true,
            }]
        }
        Event::InitDone => {
            let mut old: std::collections::HashMap<reflector::ObjectRef<K>, Arc<K>> =
                store.state().into_iter().map(|o| (at(&o), o)).collect();
            writer.apply_watcher_event(&event);
            let first = !std::mem::replace(listed, true);
            let mut changes = Vec::new();
            for now in store.state() {
                let before = old.remove(&at(&now));
                let same = before
                    .as_ref()
                    .is_some_and(|b| b.meta().resource_version == now.meta().resource_version);
                if !first && !same {
                    changes.push(Change {
                        before: before.map(|b| Before::of(&*b)),
                        now,
                        deleted: false,
                    });
                }
            }
            changes.extend(old.into_values().map(|gone| Change {
                before: Some(Before::of(&*gone)),
                now: gone,
                deleted: true,
            }));
            changes
        }
        _ => {
            writer.apply_watcher_event(&event);
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datamesh_crds::DataProduct;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn product(name: &str) -> DataProduct {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": name, "namespace": "transport"},
            "spec": {
                "domain": "transport", "title": "t", "description": "d",
                "owner": {"name": "o", "email": "o@city.example"},
                "classification": "open", "format": "table", "updateFrequency": "daily",
                "lifecycle": {"stage": "published"},
                "outputPorts": [{"name": "db", "type": "api", "api": {"url": "https://x.example"}}],
                "licence": "ogl"
            }
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    /// `product(name)` at a resource version, generation and uid.
    fn version(name: &str, rv: &str, generation: i64, uid: &str) -> DataProduct {
        let mut p = product(name);
        p.metadata.resource_version = Some(rv.into());
        p.metadata.generation = Some(generation);
        p.metadata.uid = Some(uid.into());
        p
    }

    fn names(ps: &[Arc<DataProduct>]) -> Vec<String> {
        let mut n: Vec<String> = ps.iter().map(|p| p.name_any()).collect();
        n.sort();
        n
    }

    /// Applies `events` as the products cache does and returns what it announces.
    fn announced(
        writer: &mut reflector::store::Writer<DataProduct>,
        store: &Store<DataProduct>,
        listed: &mut bool,
        events: Vec<Event<DataProduct>>,
    ) -> Vec<Change<DataProduct>> {
        events
            .into_iter()
            .flat_map(|e| apply_and_diff(writer, store, e, listed))
            .collect()
    }

    #[tokio::test]
    async fn a_consumer_gets_each_announced_change_in_order() {
        let (reader, mut writer) = reflector::store::<DataProduct>();
        let (tx, rx) = tokio::sync::broadcast::channel(8);
        let stream = changes(rx, reader.clone());
        let mut listed = true;
        for n in ["a", "b", "c"] {
            let events = vec![Event::Apply(product(n))];
            for c in announced(&mut writer, &reader, &mut listed, events) {
                let _ = tx.send(c);
            }
        }
        drop(tx);
        let got: Vec<Change<DataProduct>> = stream.collect().await;
        let order: Vec<String> = got.iter().map(|c| c.now.name_any()).collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert!(got.iter().all(|c| c.before.is_none() && !c.deleted));
    }

    #[tokio::test]
    async fn a_consumer_that_lags_gets_every_cached_product_again() {
        let (reader, mut writer) = reflector::store::<DataProduct>();
        // room for 2 changes; 5 are announced before the consumer reads
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        let stream = changes(rx, reader.clone());
        let mut listed = true;
        for n in ["a", "b", "c", "d", "e"] {
            let events = vec![Event::Apply(product(n))];
            for c in announced(&mut writer, &reader, &mut listed, events) {
                let _ = tx.send(c);
            }
        }
        drop(tx);
        let got: Vec<Arc<DataProduct>> = stream.map(|c| c.now).collect().await;
        assert_eq!(got.len(), 7, "{:?}", names(&got));
        // the three lost changes ("a".."c") come back with the whole cache,
        // followed by the two the channel still held
        let first: Vec<Arc<DataProduct>> = got[..5].to_vec();
        assert_eq!(names(&first), ["a", "b", "c", "d", "e"]);
        let rest: Vec<String> = got[5..].iter().map(|p| p.name_any()).collect();
        assert_eq!(rest, ["d", "e"]);
    }

    #[test]
    fn only_new_specs_identities_and_deletions_reach_dependents() {
        let (reader, mut writer) = reflector::store::<DataProduct>();
        let mut listed = true;
        let mut step = |e: Event<DataProduct>| {
            let mut c = announced(&mut writer, &reader, &mut listed, vec![e]);
            assert_eq!(c.len(), 1);
            c.remove(0)
        };
        let created = step(Event::Apply(version("a", "1", 1, "u1")));
        assert!(created.reaches_dependents(), "a new product");
        let status = step(Event::Apply(version("a", "2", 1, "u1")));
        assert_eq!(
            status.before.as_ref().map(|b| b.resource_version.clone()),
            Some(Some("1".into()))
        );
        assert!(!status.reaches_dependents(), "its own status write");
        assert!(
            step(Event::Apply(version("a", "3", 2, "u1"))).reaches_dependents(),
            "a new spec"
        );
        let mut deleting = version("a", "4", 2, "u1");
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(
            step(Event::Apply(deleting.clone())).reaches_dependents(),
            "deletion started"
        );
        let gone = step(Event::Delete(deleting));
        assert!(gone.deleted && gone.reaches_dependents(), "removed");
        assert!(
            step(Event::Apply(version("a", "6", 1, "u2"))).reaches_dependents(),
            "recreated"
        );
        assert!(
            step(Event::Apply(version("a", "7", 1, "u3"))).reaches_dependents(),
            "recreated, same generation"
        );
    }

    #[test]
    fn a_relist_announces_only_what_it_changed_and_the_first_list_nothing() {
        let (reader, mut writer) = reflector::store::<DataProduct>();
        let mut listed = false;
        let first = announced(
            &mut writer,
            &reader,
            &mut listed,
            vec![
                Event::Init,
                Event::InitApply(version("a", "1", 1, "ua")),
                Event::InitApply(version("b", "1", 1, "ub")),
                Event::InitApply(version("c", "1", 1, "uc")),
                Event::InitDone,
            ],
        );
        assert!(first.is_empty(), "{first:?}");
        assert_eq!(names(&reader.state()), ["a", "b", "c"]);
        // the watch restarts: "a" unchanged, "b" changed, "c" gone, "d" new
        let relist = announced(
            &mut writer,
            &reader,
            &mut listed,
            vec![
                Event::Init,
                Event::InitApply(version("a", "1", 1, "ua")),
                Event::InitApply(version("b", "5", 2, "ub")),
                Event::InitApply(version("d", "6", 1, "ud")),
                Event::InitDone,
            ],
        );
        let mut got: Vec<(String, bool, bool)> = relist
            .iter()
            .map(|c| (c.now.name_any(), c.before.is_some(), c.deleted))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("b".to_string(), true, false),
                ("c".to_string(), true, true),
                ("d".to_string(), false, false),
            ]
        );
        assert!(relist.iter().all(Change::reaches_dependents));
        // the store held the relist before it was announced
        assert_eq!(names(&reader.state()), ["a", "b", "d"]);
    }
}
