//! What every reconciler shares: the client, the watch caches of the kinds it
//! looks things up in, the Event recorder and the metrics.

use crate::metrics::Metrics;
use crate::policy_store::PolicyStore;
use datamesh_crds::{
    AgreementApproval, DataProduct, DataSharingAgreement, Domain, GovernancePolicy, Licence,
};
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
    /// Every DataProduct. The one cache of products: the product controller
    /// reconciles from it and is triggered by [`Context::product_changes`].
    pub products: Store<DataProduct>,
    /// Every Namespace.
    pub namespaces: Store<Namespace>,
    /// Every DataSharingAgreement. The most numerous kind has one cache
    /// only, filled by the agreement controller's own watch (see
    /// [`Context::take_agreements_writer`]): ready once this replica leads.
    pub agreements: Store<DataSharingAgreement>,
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
    agreements_writer: std::sync::Mutex<Option<reflector::store::Writer<DataSharingAgreement>>>,
    products_changed: tokio::sync::broadcast::Sender<Arc<DataProduct>>,
}

impl Context {
    /// Starts the watch caches and waits until each has its first full list,
    /// so no reconcile sees a half-filled cache and writes a wrong status.
    pub async fn start(
        client: Client,
        metrics: Arc<Metrics>,
        instance: &str,
        audit: Arc<crate::audit::AuditStore>,
    ) -> anyhow::Result<Arc<Self>> {
        let (agreements, agreements_writer) = reflector::store();
        let (products_changed, _) = tokio::sync::broadcast::channel(PRODUCT_CHANGES);
        let stores = Stores {
            agreements,
            domains: cache(Api::<Domain>::all(client.clone())),
            licences: cache(Api::<Licence>::all(client.clone())),
            products: cache_announcing(
                Api::<DataProduct>::all(client.clone()),
                products_changed.clone(),
            ),
            namespaces: cache(Api::<Namespace>::all(client.clone())),
            approvals: cache(Api::<AgreementApproval>::all(client.clone())),
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
        let enforcement = crate::enforcement::Enforcement::new(client.clone(), metrics.clone());
        Ok(Arc::new(Self {
            client,
            stores,
            recorder,
            metrics,
            policy,
            audit,
            enforcement,
            agreements_writer: std::sync::Mutex::new(Some(agreements_writer)),
            products_changed,
        }))
    }

    /// Every product in the cache, then each product the cache sees change
    /// (applied or deleted), as the cache holds it. A consumer that falls
    /// more than [`PRODUCT_CHANGES`] behind gets every product again instead
    /// of the changes it missed, so nothing is lost, only repeated.
    pub fn product_changes(&self) -> impl futures::Stream<Item = Arc<DataProduct>> + Send + use<> {
        let rx = self.products_changed.subscribe();
        let store = self.stores.products.clone();
        let now = store.state();
        futures::stream::iter(now).chain(changes(rx, store))
    }

    /// Like [`Self::product_changes`] without the products already cached:
    /// for controllers that decide every object at start anyway.
    pub fn product_changes_from_now(
        &self,
    ) -> impl futures::Stream<Item = Arc<DataProduct>> + Send + use<> {
        changes(
            self.products_changed.subscribe(),
            self.stores.products.clone(),
        )
    }

    /// The writer of [`Stores::agreements`], for the agreement controller's
    /// watch; None once taken.
    pub fn take_agreements_writer(&self) -> Option<reflector::store::Writer<DataSharingAgreement>> {
        self.agreements_writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Changes the products cache announces that a slow consumer may miss
/// before it is handed every product again.
pub const PRODUCT_CHANGES: usize = 4096;

/// The products announced on `rx`; after a lag, every cached product.
fn changes(
    rx: tokio::sync::broadcast::Receiver<Arc<DataProduct>>,
    store: Store<DataProduct>,
) -> impl futures::Stream<Item = Arc<DataProduct>> + Send {
    use tokio::sync::broadcast::error::RecvError;
    futures::stream::unfold(rx, move |mut rx| {
        let store = store.clone();
        async move {
            match rx.recv().await {
                Ok(p) => Some((vec![p], rx)),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "product changes lagged; every product again");
                    Some((store.state(), rx))
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

/// Like [`cache`], and announces each object it applies or deletes on `tx`
/// (the cached `Arc`, no copy) once the store holds the change, so a
/// controller reconciling from the store sees it. Nobody listening (a
/// standby replica) costs nothing.
fn cache_announcing<K>(api: Api<K>, tx: tokio::sync::broadcast::Sender<Arc<K>>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    cache_with(api, Some(tx))
}

fn cache_with<K>(api: Api<K>, tx: Option<tokio::sync::broadcast::Sender<Arc<K>>>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let store = reader.clone();
    let stream = reflector::reflector(
        writer,
        watcher(api, crate::controller::watch_config()).modify(crate::controller::strip),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match (item, &tx) {
                (Ok(obj), Some(tx)) => {
                    let cached = store
                        .get(&reflector::ObjectRef::from_obj(&obj))
                        .unwrap_or_else(|| Arc::new(obj));
                    // Err only when nobody listens
                    let _ = tx.send(cached);
                }
                (Ok(_), None) => {}
                (Err(e), _) => tracing::warn!(error = %e, "watch error; retrying"),
            }
        }
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn names(ps: &[Arc<DataProduct>]) -> Vec<String> {
        let mut n: Vec<String> = ps.iter().map(|p| p.name_any()).collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn a_consumer_gets_each_announced_change_in_order() {
        let (reader, mut writer) = reflector::store::<DataProduct>();
        let (tx, rx) = tokio::sync::broadcast::channel(8);
        let stream = changes(rx, reader);
        for n in ["a", "b", "c"] {
            writer.apply_watcher_event(&Event::Apply(product(n)));
            let _ = tx.send(Arc::new(product(n)));
        }
        drop(tx);
        let got: Vec<Arc<DataProduct>> = stream.collect().await;
        let order: Vec<String> = got.iter().map(|p| p.name_any()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_consumer_that_lags_gets_every_cached_product_again() {
        let (reader, mut writer) = reflector::store::<DataProduct>();
        // room for 2 changes; 5 are announced before the consumer reads
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        let stream = changes(rx, reader);
        for n in ["a", "b", "c", "d", "e"] {
            writer.apply_watcher_event(&Event::Apply(product(n)));
            let _ = tx.send(Arc::new(product(n)));
        }
        drop(tx);
        let got: Vec<Arc<DataProduct>> = stream.collect().await;
        assert_eq!(got.len(), 7, "{:?}", names(&got));
        // the three lost changes ("a".."c") come back with the whole cache,
        // followed by the two the channel still held
        let first: Vec<Arc<DataProduct>> = got[..5].to_vec();
        assert_eq!(names(&first), ["a", "b", "c", "d", "e"]);
        let rest: Vec<String> = got[5..].iter().map(|p| p.name_any()).collect();
        assert_eq!(rest, ["d", "e"]);
    }
}
