//! Agreements by the product they name, kept beside the agreements cache.
//!
//! What concerns one product — its deletion waiting until each of its
//! agreements is revoked, a new spec re-deciding them — then costs its own
//! agreements instead of a pass over every cached one. At 10,000 products
//! and 50,000 agreements, deleting a namespace full of products polled the
//! whole cache for each of them twice a second.

use crate::cached_agreement::CachedAgreement;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// `(namespace, name)` of an object.
type Key = (String, String);

/// Which agreements name which product. Fed every event of the agreements
/// watch just before the cache applies it (see [`ByProduct::apply`]).
#[derive(Default)]
pub struct ByProduct {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    agreements: HashMap<Key, HashSet<Key>>,
    /// Filled by a (re)list until it is complete, as the cache's is.
    relist: Option<HashMap<Key, HashSet<Key>>>,
}

fn key_of(a: &CachedAgreement) -> Key {
    (a.namespace().unwrap_or_default(), a.name_any())
}

fn product_of(a: &CachedAgreement) -> Key {
    (a.product.namespace.clone(), a.product.name.clone())
}

impl Inner {
    fn insert(map: &mut HashMap<Key, HashSet<Key>>, product: Key, agreement: Key) {
        map.entry(product).or_default().insert(agreement);
    }

    fn remove(&mut self, product: &Key, agreement: &Key) {
        if let Some(set) = self.agreements.get_mut(product) {
            set.remove(agreement);
            if set.is_empty() {
                self.agreements.remove(product);
            }
        }
    }
}

impl ByProduct {
    /// Applies one watch event. Call it before the cache applies the same
    /// event: `cache` still holds the version the event replaces, whose
    /// product is forgotten if the agreement now names another.
    pub fn apply(&self, event: &Event<CachedAgreement>, cache: &Store<CachedAgreement>) {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Apply(a) => {
                let (key, product) = (key_of(a), product_of(a));
                let at = ObjectRef::new(&key.1).within(&key.0);
                if let Some(before) = cache.get(&at).map(|b| product_of(&b))
                    && before != product
                {
                    inner.remove(&before, &key);
                }
                Inner::insert(&mut inner.agreements, product, key);
            }
            Event::Delete(a) => {
                let key = key_of(a);
                inner.remove(&product_of(a), &key);
                // the cache's version may name another product
                let at = ObjectRef::new(&key.1).within(&key.0);
                if let Some(before) = cache.get(&at) {
                    inner.remove(&product_of(&before), &key);
                }
            }
            Event::Init => inner.relist = Some(HashMap::new()),
            Event::InitApply(a) => {
                let relist = inner.relist.get_or_insert_with(HashMap::new);
                Inner::insert(relist, product_of(a), key_of(a));
            }
            Event::InitDone => {
                if let Some(relist) = inner.relist.take() {
                    inner.agreements = relist;
                }
            }
        }
    }

    /// The agreements that name the product `namespace/name`.
    pub fn agreements(&self, namespace: &str, name: &str) -> Vec<ObjectRef<CachedAgreement>> {
        let inner = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .agreements
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .map(|(ns, n)| ObjectRef::new(n).within(ns))
            .collect()
    }

    /// The cached agreements that name the product `namespace/name`.
    pub fn cached(
        &self,
        cache: &Store<CachedAgreement>,
        namespace: &str,
        name: &str,
    ) -> Vec<Arc<CachedAgreement>> {
        self.agreements(namespace, name)
            .iter()
            .filter_map(|r| cache.get(r))
            .filter(|a| a.product.namespace == namespace && a.product.name == name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    fn agreement(name: &str, product: &str) -> CachedAgreement {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataSharingAgreement",
            "metadata": {"name": name, "namespace": "planning"},
            "spec": {
                "consumer": "planning", "purpose": "service-planning",
                "justification": "Plan bus lanes with punctuality data.",
                "product": {"namespace": "transport", "name": product},
                "fields": ["route"], "licence": {"name": "ogl", "version": "3.0"},
                "end": "2027-06-30T00:00:00Z"
            }
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    /// Applies `events` to the index and then to the cache, as the watch does.
    fn feed(
        index: &ByProduct,
        writer: &mut reflector::store::Writer<CachedAgreement>,
        cache: &Store<CachedAgreement>,
        events: Vec<Event<CachedAgreement>>,
    ) {
        for e in events {
            index.apply(&e, cache);
            writer.apply_watcher_event(&e);
        }
    }

    fn names(index: &ByProduct, product: &str) -> Vec<String> {
        let mut n: Vec<String> = index
            .agreements("transport", product)
            .into_iter()
            .map(|r| r.name)
            .collect();
        n.sort();
        n
    }

    #[test]
    fn follows_applies_moves_and_deletions() {
        let (cache, mut writer) = reflector::store();
        let index = ByProduct::default();
        feed(
            &index,
            &mut writer,
            &cache,
            vec![
                Event::Init,
                Event::InitApply(agreement("a", "bus")),
                Event::InitApply(agreement("b", "bus")),
                Event::InitDone,
                Event::Apply(agreement("c", "rail")),
            ],
        );
        assert_eq!(names(&index, "bus"), ["a", "b"]);
        assert_eq!(names(&index, "rail"), ["c"]);
        // "b" now names another product
        feed(
            &index,
            &mut writer,
            &cache,
            vec![Event::Apply(agreement("b", "rail"))],
        );
        assert_eq!(names(&index, "bus"), ["a"]);
        assert_eq!(names(&index, "rail"), ["b", "c"]);
        assert_eq!(index.cached(&cache, "transport", "rail").len(), 2);
        feed(
            &index,
            &mut writer,
            &cache,
            vec![Event::Delete(agreement("a", "bus"))],
        );
        assert!(names(&index, "bus").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_complete() {
        let (cache, mut writer) = reflector::store();
        let index = ByProduct::default();
        feed(
            &index,
            &mut writer,
            &cache,
            vec![
                Event::Init,
                Event::InitApply(agreement("a", "bus")),
                Event::InitDone,
            ],
        );
        // a watch restart: "a" went while it was down, "b" came
        feed(
            &index,
            &mut writer,
            &cache,
            vec![Event::Init, Event::InitApply(agreement("b", "bus"))],
        );
        assert_eq!(
            names(&index, "bus"),
            ["a"],
            "the old index serves until the relist is done"
        );
        feed(&index, &mut writer, &cache, vec![Event::InitDone]);
        assert_eq!(names(&index, "bus"), ["b"]);
    }
}
