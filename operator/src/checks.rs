//! Pure checks that decide whether a Domain or a DataProduct is Ready. They
//! take plain objects (looked up by the caller from the watch caches) and
//! return the condition to set, so they are tested without an API server.

use datamesh_crds::{DataProduct, Domain, Licence};
use std::collections::BTreeSet;

/// Outcome of a readiness check: Ready or not, with a reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the object is Ready.
    pub ready: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl Readiness {
    fn ok(message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: "Ready",
            message: message.into(),
        }
    }
    fn not(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// A Domain is Ready when every namespace it names exists and no other
/// Domain already claims it.
///
/// `existing` are the namespaces that exist; `claimed_by_others` maps a
/// namespace to the other Domain that claims it first.
pub fn domain(
    domain: &Domain,
    existing: &BTreeSet<String>,
    claimed_by_others: &[(String, String)],
) -> Readiness {
    if let Some((ns, other)) = claimed_by_others.first() {
        return Readiness::not(
            "NamespaceClaimed",
            format!("namespace {ns} is already claimed by Domain {other}"),
        );
    }
    let missing: Vec<&str> = domain
        .spec
        .namespaces
        .iter()
        .map(|n| n.0.as_str())
        .filter(|n| !existing.contains(*n))
        .collect();
    if missing.is_empty() {
        Readiness::ok(format!(
            "owns {} namespace(s)",
            domain.spec.namespaces.len()
        ))
    } else {
        Readiness::not(
            "NamespaceNotFound",
            format!("namespace(s) not found: {}", missing.join(", ")),
        )
    }
}

/// A DataProduct is Ready when its namespace belongs to the Domain it names,
/// its Licence exists, and every input named in its provenance exists.
///
/// `product_exists` answers whether a product `namespace/name` exists.
pub fn product(
    product: &DataProduct,
    namespace: &str,
    domain: Option<&Domain>,
    licence: Option<&Licence>,
    product_exists: impl Fn(&str, &str) -> bool,
) -> Readiness {
    let spec = &product.spec;
    let Some(domain) = domain else {
        return Readiness::not(
            "DomainNotFound",
            format!("Domain {} does not exist", spec.domain),
        );
    };
    if !domain.spec.namespaces.iter().any(|n| n.0 == namespace) {
        return Readiness::not(
            "NamespaceNotOwned",
            format!(
                "namespace {namespace} is not one of Domain {}'s namespaces",
                spec.domain
            ),
        );
    }
    if licence.is_none() {
        return Readiness::not(
            "LicenceNotFound",
            format!("Licence {} does not exist", spec.licence),
        );
    }
    let missing: Vec<String> = spec
        .provenance
        .iter()
        .flat_map(|p| p.inputs.iter())
        .filter(|r| !product_exists(&r.namespace, &r.name))
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        return Readiness::not(
            "InputNotFound",
            format!("input data product(s) not found: {}", missing.join(", ")),
        );
    }
    Readiness::ok(format!(
        "published by Domain {} under Licence {}",
        spec.domain, spec.licence
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn domain_obj(name: &str, namespaces: &[&str]) -> Domain {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "Domain",
            "metadata": {"name": name},
            "spec": {
                "displayName": name, "owners": [{"name": "o", "email": "o@city.example"}],
                "dataSteward": {"name": "s", "email": "s@city.example"},
                "namespaces": namespaces, "sector": "public", "jurisdiction": "GB"
            }
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn product_obj(domain: &str, licence: &str, inputs: serde_json::Value) -> DataProduct {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "p", "namespace": "transport"},
            "spec": {
                "domain": domain, "title": "t", "description": "d",
                "owner": {"name": "o", "email": "o@city.example"},
                "classification": "open", "format": "table", "updateFrequency": "daily",
                "lifecycle": {"stage": "published"},
                "outputPorts": [{"name": "db", "type": "api", "api": {"url": "https://x.example"}}],
                "licence": licence, "provenance": {"inputs": inputs}
            }
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn licence_obj() -> Licence {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "Licence", "metadata": {"name": "ogl"},
            "spec": {"title": "OGL", "version": "3.0", "permittedPurposes": ["any"]}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    #[test]
    fn domain_names_missing_namespaces() {
        let d = domain_obj("transport", &["transport", "transport-archive"]);
        let existing: BTreeSet<String> = ["transport".to_string()].into();
        let r = domain(&d, &existing, &[]);
        assert!(!r.ready);
        assert_eq!(r.reason, "NamespaceNotFound");
        assert!(r.message.contains("transport-archive"));
        let existing: BTreeSet<String> = ["transport".into(), "transport-archive".into()].into();
        assert!(domain(&d, &existing, &[]).ready);
        let r = domain(&d, &existing, &[("transport".into(), "finance".into())]);
        assert_eq!(r.reason, "NamespaceClaimed");
    }

    #[test]
    fn product_readiness_names_what_is_missing() {
        let d = domain_obj("transport", &["transport"]);
        let l = licence_obj();
        let p = product_obj("transport", "ogl", json!([]));
        assert!(product(&p, "transport", Some(&d), Some(&l), |_, _| true).ready);

        let r = product(&p, "transport", Some(&d), None, |_, _| true);
        assert_eq!((r.ready, r.reason), (false, "LicenceNotFound"));
        assert!(r.message.contains("ogl"));

        let r = product(&p, "finance", Some(&d), Some(&l), |_, _| true);
        assert_eq!(r.reason, "NamespaceNotOwned");

        let r = product(&p, "transport", None, Some(&l), |_, _| true);
        assert_eq!(r.reason, "DomainNotFound");

        let p = product_obj(
            "transport",
            "ogl",
            json!([{"namespace": "env", "name": "air"}]),
        );
        let r = product(&p, "transport", Some(&d), Some(&l), |_, _| false);
        assert_eq!(r.reason, "InputNotFound");
        assert!(r.message.contains("env/air"));
    }
}
