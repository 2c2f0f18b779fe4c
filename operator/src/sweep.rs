//! Reconciling every object of a kind again, a window at a time.
//!
//! At start, after a relist and after each change of the policy set, every
//! agreement is reconciled again. Handed to the controller runtime at once,
//! all of them sit in its queue together: at 50,000 agreements its delay
//! queue and two hash maps (entries of ~170 bytes, grown to the next power
//! of two) held ~28 MB, a fifth of the operator's peak heap, and kept that
//! capacity afterwards. A [`Sweep`] hands them over at most `window` at a
//! time instead: each one handed over holds a place until its reconcile
//! starts ([`Sweep::started`]) or it is deleted.

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Objects handed to the controller runtime and not yet started, at most.
/// With the controllers' [`crate::controller::WORKERS`] reconciles at once,
/// enough to keep every worker busy.
pub const WINDOW: usize = 1024;

/// How long a sweep waits for a free place before it assumes the objects
/// holding them are never reconciled (gone between the sweep's snapshot and
/// their turn, without a delete event reaching it) and frees every place: a
/// sweep slows down but never stalls.
const STALL: Duration = Duration::from_secs(30);

type Key = (Option<String>, String);

/// A bounded "reconcile everything" for one controller. See the module docs.
pub struct Sweep {
    places: Arc<Semaphore>,
    held: Mutex<HashMap<Key, OwnedSemaphorePermit>>,
    requests: watch::Sender<u64>,
    stall: Duration,
}

impl Sweep {
    /// A sweep handing over at most `window` objects at a time.
    pub fn new(window: usize) -> Self {
        Self::with_stall(window, STALL)
    }

    fn with_stall(window: usize, stall: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(window.max(1))),
            held: Mutex::new(HashMap::new()),
            requests: watch::Sender::new(0),
            stall,
        }
    }

    /// Asks for every object to be reconciled again. A sweep under way
    /// starts over from a new snapshot of the cache.
    pub fn request(&self) {
        self.requests.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Frees the place of an object whose reconcile started (or that is
    /// gone). Objects the sweep did not hand over are ignored.
    pub fn started<K: Resource>(&self, obj: &K) {
        let key = (
            obj.meta().namespace.clone(),
            obj.meta().name.clone().unwrap_or_default(),
        );
        self.held().remove(&key);
    }

    /// Objects handed over and not yet started.
    pub fn in_flight(&self) -> usize {
        self.held().len()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Key, OwnedSemaphorePermit>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a free place and gives it to `obj`, before it is handed
    /// to the controller by a stream other than [`Sweep::stream`].
    pub async fn admit_ref<K: kube::runtime::reflector::Lookup>(&self, obj: &ObjectRef<K>) {
        self.admit((obj.namespace.clone(), obj.name.clone())).await
    }

    /// Waits for a free place and gives it to `key`.
    async fn admit(&self, key: Key) {
        let permit = loop {
            match tokio::time::timeout(self.stall, self.places.clone().acquire_owned()).await {
                Ok(Ok(p)) => break p,
                // never closed: the semaphore lives as long as self
                Ok(Err(_)) => return,
                Err(_) => {
                    let mut held = self.held();
                    tracing::warn!(
                        waiting = held.len(),
                        "objects handed to the controller were not reconciled within {:?}; freeing their places",
                        self.stall
                    );
                    held.clear();
                }
            }
        };
        // an object handed over twice keeps one place
        self.held().insert(key, permit);
    }

    /// References of every object in `store`, for each [`Sweep::request`],
    /// handed over as places free up. Subscribes now: requests made before
    /// this call are not seen.
    pub fn stream<K>(
        self: Arc<Self>,
        store: Store<K>,
    ) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: Resource + Clone + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let rx = self.requests.subscribe();
        let snapshot = |store: &Store<K>| -> VecDeque<ObjectRef<K>> {
            store
                .state()
                .iter()
                .map(|o| ObjectRef::from_obj(&**o))
                .collect()
        };
        futures::stream::unfold(
            (self, store, rx, VecDeque::new()),
            move |(sweep, store, mut rx, mut queue)| async move {
                loop {
                    if rx.has_changed().unwrap_or(false) {
                        rx.borrow_and_update();
                        queue = snapshot(&store);
                    }
                    if let Some(r) = queue.pop_front() {
                        sweep.admit((r.namespace.clone(), r.name.clone())).await;
                        return Some((r, (sweep, store, rx, queue)));
                    }
                    rx.changed().await.ok()?;
                    rx.borrow_and_update();
                    queue = snapshot(&store);
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::watcher::Event;

    fn cm(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn store_of(n: usize) -> (Store<ConfigMap>, Vec<ConfigMap>) {
        let mut writer = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
        let objs: Vec<_> = (0..n).map(|i| cm(&format!("c{i}"))).collect();
        writer.apply_watcher_event(&Event::Init);
        for o in &objs {
            writer.apply_watcher_event(&Event::InitApply(o.clone()));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (writer.as_reader(), objs)
    }

    async fn next_within(
        s: &mut (impl futures::Stream<Item = ObjectRef<ConfigMap>> + Unpin),
    ) -> Option<ObjectRef<ConfigMap>> {
        tokio::time::timeout(Duration::from_millis(100), s.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn hands_over_a_window_then_one_per_started_reconcile() -> anyhow::Result<()> {
        let (store, objs) = store_of(10);
        let sweep = Arc::new(Sweep::new(3));
        let mut s = Box::pin(sweep.clone().stream(store));
        assert!(
            next_within(&mut s).await.is_none(),
            "nothing before a request"
        );
        sweep.request();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(
                next_within(&mut s)
                    .await
                    .ok_or(anyhow::anyhow!("within the window"))?,
            );
        }
        assert!(next_within(&mut s).await.is_none(), "the window is full");
        assert_eq!(sweep.in_flight(), 3);
        let first = objs
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(&got[0].name));
        sweep.started(first.ok_or(anyhow::anyhow!("a swept object"))?);
        got.push(
            next_within(&mut s)
                .await
                .ok_or(anyhow::anyhow!("a place was freed"))?,
        );
        assert!(next_within(&mut s).await.is_none());
        // starting everything lets the rest through, each object once
        for o in &objs {
            sweep.started(o);
        }
        while let Some(r) = next_within(&mut s).await {
            got.push(r.clone());
            let o = objs
                .iter()
                .find(|o| o.metadata.name.as_deref() == Some(&r.name));
            sweep.started(o.ok_or(anyhow::anyhow!("a swept object"))?);
        }
        let mut names: Vec<_> = got.iter().map(|r| r.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10, "every object, once: {names:?}");
        assert_eq!(got.len(), 10);
        Ok(())
    }

    #[tokio::test]
    async fn a_new_request_starts_over() -> anyhow::Result<()> {
        let (store, objs) = store_of(4);
        let sweep = Arc::new(Sweep::new(100));
        let mut s = Box::pin(sweep.clone().stream(store));
        sweep.request();
        let a = next_within(&mut s).await.ok_or(anyhow::anyhow!("first"))?;
        let _ = next_within(&mut s).await.ok_or(anyhow::anyhow!("second"))?;
        sweep.request();
        let mut rest = Vec::new();
        while let Some(r) = next_within(&mut s).await {
            rest.push(r.name);
        }
        assert_eq!(rest.len(), 4, "the whole cache again: {rest:?}");
        assert!(rest.contains(&a.name));
        for o in &objs {
            sweep.started(o);
        }
        assert_eq!(sweep.in_flight(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn places_never_freed_are_taken_back_after_the_stall() {
        let (store, _) = store_of(3);
        let sweep = Arc::new(Sweep::with_stall(1, Duration::from_millis(50)));
        let mut s = Box::pin(sweep.clone().stream(store));
        sweep.request();
        // nothing is ever started: each next one waits out the stall
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_secs(2), s.next()).await;
            assert!(matches!(r, Ok(Some(_))), "the sweep went on");
        }
    }
}
