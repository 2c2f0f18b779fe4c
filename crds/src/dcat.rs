//! The open catalogue as DCAT-AP (JSON-LD), for open-data portals to harvest.
//!
//! A pure function of the published products, their Domains and Licences:
//! one `dcat:Catalog` with a `dcat:Dataset` per product. Only products that
//! are `open` and published (or deprecated, still served) are exported;
//! internal, restricted and personal products never appear in it, whatever
//! their lifecycle. Distributions describe where the data is served without
//! any credential: the admin Secret of a Postgres port is never named.

use crate::product::{LifecycleStage, OutputPort, PortType, UpdateFrequency};
use crate::{Classification, DataProduct, Domain, Licence};
use kube::ResourceExt;
use serde_json::{Value, json};

/// What the catalogue says about itself.
#[derive(Debug, Clone)]
pub struct CatalogInfo {
    /// Catalogue title, e.g. "City of Exampleton data catalogue".
    pub title: String,
    /// Catalogue description.
    pub description: String,
    /// Base IRI the dataset identifiers are built on (no trailing slash).
    pub base_iri: String,
}

impl Default for CatalogInfo {
    fn default() -> Self {
        Self {
            title: "datamesh open data catalogue".into(),
            description: "Open data products published in the datamesh.".into(),
            base_iri: "urn:datamesh".into(),
        }
    }
}

/// Whether a product belongs in the open catalogue.
pub fn is_open_catalogue_entry(p: &DataProduct) -> bool {
    p.spec.classification == Classification::Open
        && !p.spec.personal_data
        && matches!(
            p.spec.lifecycle.stage,
            LifecycleStage::Published | LifecycleStage::Deprecated
        )
        && p.metadata.deletion_timestamp.is_none()
}

/// The EU frequency vocabulary IRI for an update frequency.
fn accrual_periodicity(f: UpdateFrequency) -> String {
    let code = match f {
        UpdateFrequency::Continuous => "CONT",
        UpdateFrequency::Hourly => "HOURLY",
        UpdateFrequency::Daily => "DAILY",
        UpdateFrequency::Weekly => "WEEKLY",
        UpdateFrequency::Monthly => "MONTHLY",
        UpdateFrequency::Quarterly => "QUARTERLY",
        UpdateFrequency::Annual => "ANNUAL",
        UpdateFrequency::Irregular => "IRREG",
        UpdateFrequency::Never => "NEVER",
    };
    format!("http://publications.europa.eu/resource/authority/frequency/{code}")
}

/// A distribution for one output port: its kind and public location only.
fn distribution(base: &str, id: &str, port: &OutputPort, format: &str) -> Value {
    let mut d = json!({
        "@id": format!("{base}/{id}/distribution/{}", port.name),
        "@type": "dcat:Distribution",
        "dct:title": port.name,
        "dct:format": format,
    });
    let (media, access): (&str, Option<String>) = match port.type_ {
        PortType::Postgres => (
            "application/sql",
            port.postgres
                .as_ref()
                .map(|p| format!("postgres table {}.{}", p.schema, p.table)),
        ),
        PortType::ObjectStore => (
            "application/octet-stream",
            port.object_store.as_ref().map(|o| {
                let prefix = o.prefix.as_deref().unwrap_or("");
                match &o.endpoint {
                    Some(e) => format!("{}/{}/{prefix}", e.trim_end_matches('/'), o.bucket),
                    None => format!("s3://{}/{prefix}", o.bucket),
                }
            }),
        ),
        PortType::Api => ("application/json", port.api.as_ref().map(|a| a.url.clone())),
        PortType::Stream => (
            "application/octet-stream",
            port.stream.as_ref().map(|s| format!("topic {}", s.topic)),
        ),
    };
    d["dcat:mediaType"] = json!(media);
    if let Some(access) = access {
        if access.starts_with("http://") || access.starts_with("https://") {
            d["dcat:accessURL"] = json!({"@id": access});
        } else {
            d["dct:description"] = json!(access);
        }
    }
    d
}

/// One dataset entry.
fn dataset(info: &CatalogInfo, p: &DataProduct, domains: &[Domain], licences: &[Licence]) -> Value {
    let ns = p.namespace().unwrap_or_default();
    let id = format!("{ns}/{}", p.name_any());
    let base = &info.base_iri;
    let mut d = json!({
        "@id": format!("{base}/dataset/{id}"),
        "@type": "dcat:Dataset",
        "dct:identifier": id,
        "dct:title": p.spec.title,
        "dct:description": p.spec.description,
        "dcat:theme": p.spec.themes.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "dcat:keyword": p.spec.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "dct:accrualPeriodicity": {"@id": accrual_periodicity(p.spec.update_frequency)},
        "dcat:contactPoint": {
            "@type": "vcard:Kind",
            "vcard:fn": p.spec.owner.name,
            "vcard:hasEmail": format!("mailto:{}", p.spec.owner.email),
        },
        "dcat:distribution": p.spec.output_ports.iter()
            .map(|port| distribution(base, &format!("dataset/{id}"), port, &p.spec.format))
            .collect::<Vec<_>>(),
    });
    if let Some(domain) = domains.iter().find(|d| d.name_any() == p.spec.domain) {
        d["dct:publisher"] = json!({
            "@type": "foaf:Agent",
            "foaf:name": domain.spec.display_name,
            "dct:identifier": p.spec.domain,
        });
    } else {
        d["dct:publisher"] = json!({"@type": "foaf:Agent", "foaf:name": p.spec.domain});
    }
    if let Some(licence) = licences.iter().find(|l| l.name_any() == p.spec.licence) {
        let mut l = json!({
            "@type": "dct:LicenseDocument",
            "dct:title": format!("{} {}", licence.spec.title, licence.spec.version),
        });
        if let Some(url) = &licence.spec.url {
            l["@id"] = json!(url);
        }
        d["dct:license"] = l;
    }
    if let Some(t) = &p.spec.temporal_coverage {
        let mut period = json!({"@type": "dct:PeriodOfTime", "dcat:startDate": t.from});
        if let Some(to) = &t.to {
            period["dcat:endDate"] = json!(to);
        }
        d["dct:temporal"] = period;
    }
    d
}

/// The DCAT-AP catalogue of the open, published products, ordered by namespace and name.
pub fn catalog(
    info: &CatalogInfo,
    products: &[DataProduct],
    domains: &[Domain],
    licences: &[Licence],
) -> Value {
    let mut open: Vec<&DataProduct> = products
        .iter()
        .filter(|p| is_open_catalogue_entry(p))
        .collect();
    open.sort_by_key(|p| (p.namespace(), p.name_any()));
    json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "vcard": "http://www.w3.org/2006/vcard/ns#",
        },
        "@id": format!("{}/catalog", info.base_iri),
        "@type": "dcat:Catalog",
        "dct:title": info.title,
        "dct:description": info.description,
        "dcat:dataset": open.into_iter()
            .map(|p| dataset(info, p, domains, licences))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str, classification: &str, stage: &str) -> DataProduct {
        let mut v = json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": name, "namespace": "transport"},
            "spec": {
                "domain": "transport", "title": format!("Title of {name}"),
                "description": "Share of buses on time.",
                "owner": {"name": "Transport data team", "email": "data@transport.example"},
                "classification": classification, "format": "table", "updateFrequency": "daily",
                "lifecycle": {"stage": stage, "sunsetDate": "2030-01-01T00:00:00Z"},
                "temporalCoverage": {"from": "2020-01-01T00:00:00Z"},
                "outputPorts": [
                    {"name": "warehouse", "type": "postgres",
                     "postgres": {"schema": "public", "table": "bus", "adminSecretRef": {"name": "transport-db-admin", "key": "url"}}},
                    {"name": "api", "type": "api", "api": {"url": "https://api.transport.example/bus"}}
                ],
                "licence": "ogl-3", "themes": ["transport"], "tags": ["buses", "punctuality"]
            }
        });
        if classification == "personal" {
            v["spec"]["personalData"] = json!(true);
            v["spec"]["lawfulBasis"] = json!("publicTask");
            v["spec"]["dpiaReference"] = json!("DPIA-1");
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn domain() -> Domain {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "Domain",
            "metadata": {"name": "transport"},
            "spec": {"displayName": "Transport department",
                "owners": [{"name": "O", "email": "o@x.example"}],
                "dataSteward": {"name": "S", "email": "s@x.example"},
                "namespaces": ["transport"], "sector": "public", "jurisdiction": "GB"}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn licence() -> Licence {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "Licence",
            "metadata": {"name": "ogl-3"},
            "spec": {"title": "Open Government Licence", "version": "3.0",
                "url": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
                "permittedPurposes": ["any"], "commercialUse": true, "redistribution": true}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn ids(c: &Value) -> Vec<String> {
        c["dcat:dataset"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d["dct:identifier"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn only_open_published_or_deprecated_products_are_exported() {
        let products = [
            product("open-published", "open", "published"),
            product("open-deprecated", "open", "deprecated"),
            product("open-draft", "open", "draft"),
            product("open-retired", "open", "retired"),
            product("internal", "internal", "published"),
            product("restricted", "restricted", "published"),
            product("personal", "personal", "published"),
        ];
        let c = catalog(
            &CatalogInfo::default(),
            &products,
            &[domain()],
            &[licence()],
        );
        assert_eq!(
            ids(&c),
            ["transport/open-deprecated", "transport/open-published"]
        );
    }

    #[test]
    fn dataset_carries_dcat_ap_fields() {
        let c = catalog(
            &CatalogInfo::default(),
            &[product("bus", "open", "published")],
            &[domain()],
            &[licence()],
        );
        assert_eq!(c["@type"], "dcat:Catalog");
        let d = &c["dcat:dataset"][0];
        assert_eq!(d["@type"], "dcat:Dataset");
        assert_eq!(d["dct:title"], "Title of bus");
        assert_eq!(d["dct:description"], "Share of buses on time.");
        assert_eq!(d["dct:publisher"]["foaf:name"], "Transport department");
        assert_eq!(d["dcat:theme"], json!(["transport"]));
        assert_eq!(d["dcat:keyword"], json!(["buses", "punctuality"]));
        assert_eq!(
            d["dct:license"]["@id"],
            "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
        );
        assert_eq!(
            d["dct:accrualPeriodicity"]["@id"],
            "http://publications.europa.eu/resource/authority/frequency/DAILY"
        );
        assert_eq!(d["dct:temporal"]["dcat:startDate"], "2020-01-01T00:00:00Z");
        assert_eq!(
            d["dcat:contactPoint"]["vcard:hasEmail"],
            "mailto:data@transport.example"
        );
        assert_eq!(d["dcat:distribution"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            d["dcat:distribution"][1]["dcat:accessURL"]["@id"],
            "https://api.transport.example/bus"
        );
    }

    #[test]
    fn no_credentials_in_distributions() {
        let c = catalog(
            &CatalogInfo::default(),
            &[product("bus", "open", "published")],
            &[domain()],
            &[licence()],
        );
        let text = c.to_string();
        assert!(!text.contains("transport-db-admin"), "{text}");
        assert!(!text.contains("adminSecretRef"), "{text}");
    }
}
