//! Small valid objects for tests, as JSON values a test can tweak.

use serde_json::{Value, json};

/// A Domain owning `namespaces`.
pub fn domain(name: &str, namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "Domain",
        "metadata": {"name": name},
        "spec": {
            "displayName": format!("{name} department"),
            "owners": [{"name": "Owner", "email": "owner@city.example"}],
            "dataSteward": {"name": "Steward", "email": "steward@city.example"},
            "namespaces": namespaces, "sector": "public", "jurisdiction": "GB",
            "accreditations": ["dpia-process"]
        }
    })
}

/// An open Licence.
pub fn licence(name: &str) -> Value {
    json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "Licence",
        "metadata": {"name": name},
        "spec": {
            "title": "Open Government Licence", "version": "3.0",
            "permittedPurposes": ["any"], "commercialUse": true, "redistribution": true,
            "attribution": "Contains public sector information licensed under the Open Government Licence v3.0."
        }
    })
}

/// An open, published DataProduct of `domain` in `namespace` under `licence`.
pub fn product(name: &str, namespace: &str, domain: &str, licence: &str) -> Value {
    json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "domain": domain, "title": "Bus punctuality by route",
            "description": "Share of buses departing on time, per route and day.",
            "owner": {"name": "Transport data team", "email": "data@transport.city.example"},
            "classification": "open", "format": "table", "updateFrequency": "daily",
            "lifecycle": {"stage": "published"},
            "outputPorts": [{"name": "warehouse", "type": "postgres",
                "postgres": {"schema": "public", "table": "bus_punctuality", "adminSecretRef": {"name": "transport-db"}}}],
            "schema": [
                {"name": "route", "type": "text"},
                {"name": "day", "type": "date"},
                {"name": "on_time_pct", "type": "numeric"}
            ],
            "licence": licence, "themes": ["transport"]
        }
    })
}
