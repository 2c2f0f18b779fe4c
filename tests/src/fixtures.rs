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

/// A DataSharingAgreement by `consumer` (in `namespace`) for `product` (`ns/name`).
pub fn agreement(
    name: &str,
    namespace: &str,
    consumer: &str,
    product: (&str, &str),
    licence: (&str, &str),
    end: &str,
) -> Value {
    json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "consumer": consumer,
            "product": {"namespace": product.0, "name": product.1},
            "purpose": "service-planning",
            "justification": "Plan bus lanes with punctuality data.",
            "fields": ["route", "on_time_pct"],
            "end": end,
            "licence": {"name": licence.0, "version": licence.1}
        }
    })
}

/// An AgreementApproval in the provider's namespace.
pub fn approval(
    name: &str,
    namespace: &str,
    agreement: (&str, &str),
    approver: &str,
    approve: bool,
) -> Value {
    json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "AgreementApproval",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "agreement": {"namespace": agreement.0, "name": agreement.1},
            "decision": if approve { "Approve" } else { "Deny" },
            "approver": approver,
            "reason": "reviewed by the data steward"
        }
    })
}

/// A Domain with a given sector, jurisdiction and accreditations.
pub fn domain_with(
    name: &str,
    namespaces: &[&str],
    sector: &str,
    accreditations: &[&str],
) -> Value {
    let mut d = domain(name, namespaces);
    d["spec"]["sector"] = json!(sector);
    d["spec"]["accreditations"] = json!(accreditations);
    d
}

/// An RFC 3339 time `secs` seconds from now.
pub fn in_secs(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    t.round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}
