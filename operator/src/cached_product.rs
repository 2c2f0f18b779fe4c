//! The products cache's copy of a product.
//!
//! At 10,000 products a typed product takes ~2.1 KB in the cache (its spec
//! holds a slot for every optional field and each string in its own
//! allocation), ~21 MB in all, and the announcements of recent changes keep
//! up to [`crate::context::PRODUCT_CHANGES`] superseded versions besides. The
//! cached copy keeps typed only what the whole cache is searched by — the
//! metadata, the domain, the licence and the provenance inputs — and packs
//! the spec and status ([`crate::packed`]). A reconcile, a decision or the
//! catalogue unpacks the products it reads ([`CachedProduct::expand`], a few
//! µs).

use crate::packed::{Dictionary, PackError, Packed, SpecAndStatus, cached_resource};
use datamesh_crds::product::{DataProductSpec, DataProductStatus};
use datamesh_crds::{DataProduct, ObjectRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// A cached product: [`DataProduct`] with its spec and status packed.
/// Deserialises from a product, so a watch of this type reads the API
/// server's objects directly.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "DataProduct")]
pub struct CachedProduct {
    metadata: ObjectMeta,
    /// `spec.domain`.
    pub domain: String,
    /// `spec.licence`.
    pub licence: String,
    /// `spec.provenance.inputs`.
    pub inputs: Vec<ObjectRef>,
    packed: Packed,
}

/// Products share one dictionary: the first product this process packs.
static DICTIONARY: Dictionary = Dictionary::new();

const KIND: &str = "DataProduct";

type Body = SpecAndStatus<DataProductSpec, DataProductStatus>;

impl TryFrom<DataProduct> for CachedProduct {
    type Error = PackError;

    fn try_from(mut product: DataProduct) -> Result<Self, PackError> {
        crate::controller::strip(&mut product);
        let DataProduct {
            metadata,
            spec,
            status,
        } = product;
        let packed = Packed::spec_and_status(&spec, &status, &DICTIONARY, KIND, &metadata)?;
        Ok(Self {
            domain: spec.domain,
            licence: spec.licence,
            inputs: spec.provenance.map(|p| p.inputs).unwrap_or_default(),
            packed,
            metadata,
        })
    }
}

impl CachedProduct {
    /// The product as the API server sent it (less `managedFields` and
    /// kubectl's last-applied annotation).
    pub fn expand(&self) -> Result<DataProduct, PackError> {
        let body: Body = self.packed.unpack(KIND, &self.metadata)?;
        Ok(DataProduct {
            metadata: self.metadata.clone(),
            spec: body.spec,
            status: body.status,
        })
    }
}

cached_resource!(CachedProduct, DataProduct);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    fn product(name: &str, status: serde_json::Value) -> anyhow::Result<DataProduct> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {
                "name": name, "namespace": "transport", "uid": format!("uid-{name}"),
                "resourceVersion": "7", "generation": 2,
                "finalizers": ["datamesh.dev/revoke-agreements"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "buses"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "domain": "transport", "title": "Bus punctuality",
                "description": "On-time performance of every bus route, by day.",
                "owner": {"name": "Transport data team", "email": "data@transport.city.example"},
                "classification": "internal", "format": "table", "updateFrequency": "daily",
                "lifecycle": {"stage": "published"},
                "outputPorts": [{"name": "db", "type": "postgres", "postgres": {
                    "schema": "transport", "table": "bus_punctuality",
                    "adminSecretRef": {"name": "pg-admin", "key": "url"}}}],
                "schema": [{"name": "route", "type": "string", "classification": "public"},
                           {"name": "on_time_pct", "type": "number", "classification": "public"}],
                "provenance": {"sources": ["AVL feed"], "inputs": [{"namespace": "transport", "name": "bus-positions"}]},
                "licence": "ogl"
            },
            "status": status
        }))?)
    }

    fn ready() -> serde_json::Value {
        json!({"observedGeneration": 2, "activeAgreements": 3, "conditions": [{
            "type": "Ready", "status": "True", "reason": "Ready", "observedGeneration": 2,
            "message": "domain, licence and inputs exist", "lastTransitionTime": "2026-11-26T13:39:23Z"}]})
    }

    #[test]
    fn expands_to_the_product_it_was_made_from() -> anyhow::Result<()> {
        for p in [
            product("bus-punctuality", serde_json::Value::Null)?,
            product("bus-punctuality", ready())?,
            product("bus-positions", ready())?,
        ] {
            let back = CachedProduct::try_from(p.clone())?.expand()?;
            let mut want = p;
            crate::controller::strip(&mut want);
            assert_eq!(back.metadata, want.metadata);
            assert_eq!(back.spec, want.spec);
            assert_eq!(back.status, want.status);
        }
        Ok(())
    }

    #[test]
    fn keeps_typed_what_the_cache_is_searched_by() -> anyhow::Result<()> {
        let cached = CachedProduct::try_from(product("bus-punctuality", ready())?)?;
        assert_eq!(cached.domain, "transport");
        assert_eq!(cached.licence, "ogl");
        assert_eq!(
            cached.inputs,
            vec![ObjectRef {
                namespace: "transport".into(),
                name: "bus-positions".into()
            }]
        );
        assert!(cached.meta().managed_fields.is_none());
        Ok(())
    }

    #[test]
    fn a_watch_of_the_cached_type_reads_products() -> anyhow::Result<()> {
        let value = serde_json::to_value(product("bus-punctuality", ready())?)?;
        let cached: CachedProduct = serde_json::from_value(value)?;
        assert_eq!(cached.meta().name.as_deref(), Some("bus-punctuality"));
        assert_eq!(
            CachedProduct::url_path(&(), Some("transport")),
            DataProduct::url_path(&(), Some("transport"))
        );
        Ok(())
    }
}
