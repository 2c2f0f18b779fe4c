//! Turns datamesh objects into a Cedar request: the consumer and provider
//! Domains and the DataProduct become entities, the agreement becomes the
//! context. Shapes follow `cedar/datamesh.cedarschema`; a test checks that.

use crate::engine::Names;
use crate::licence::country;
use cedar_policy::{Entities, Entity, EntityId, EntityUid, RestrictedExpression, Schema};
use datamesh_crds::{DataProduct, Domain, LicenceSpec};
use std::collections::{HashMap, HashSet};

/// A field asked for, with its classification in the product's schema.
#[derive(Debug, Clone)]
pub(crate) struct FieldUse<'a> {
    pub name: &'a str,
    pub classification: &'static str,
}

/// Everything the context needs besides the flags that vary per evaluation.
pub(crate) struct ContextParts<'a> {
    pub purpose: &'a str,
    pub fields: &'a [FieldUse<'a>],
    pub all_fields: bool,
    pub duration_days: i64,
    pub commercial_use: bool,
    pub redistribution: bool,
    pub licence_name: &'a str,
    pub licence: &'a LicenceSpec,
    pub accepted_version: &'a str,
    pub dpia_reference_given: bool,
    pub existing_agreement: bool,
    pub now: String,
}

pub(crate) fn domain_uid(names: &Names, name: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(names.domain.clone(), EntityId::new(name))
}

pub(crate) fn product_uid(names: &Names, key: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(names.product.clone(), EntityId::new(key))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .into_iter()
            .map(|s| RestrictedExpression::new_string(s.to_string())),
    )
}

fn domain_entity(names: &Names, name: &str, domain: &Domain) -> Result<Entity, String> {
    let spec = &domain.spec;
    let attrs = HashMap::from([
        (
            "sector".to_string(),
            RestrictedExpression::new_string(spec.sector.as_str().to_string()),
        ),
        (
            "jurisdiction".to_string(),
            RestrictedExpression::new_string(spec.jurisdiction.clone()),
        ),
        (
            "country".to_string(),
            RestrictedExpression::new_string(country(&spec.jurisdiction).to_string()),
        ),
        (
            "accreditations".to_string(),
            strings(spec.accreditations.iter().map(|a| a.as_str())),
        ),
    ]);
    Entity::new(domain_uid(names, name), attrs, HashSet::new()).map_err(|e| e.to_string())
}

fn product_entity(
    names: &Names,
    key: &str,
    provider: &str,
    product: &DataProduct,
) -> Result<Entity, String> {
    let spec = &product.spec;
    let mut attrs = HashMap::from([
        (
            "domain".to_string(),
            RestrictedExpression::new_entity_uid(domain_uid(names, provider)),
        ),
        (
            "classification".to_string(),
            RestrictedExpression::new_string(spec.classification.as_str().to_string()),
        ),
        (
            "personalData".to_string(),
            RestrictedExpression::new_bool(spec.personal_data),
        ),
        (
            "licence".to_string(),
            RestrictedExpression::new_string(spec.licence.clone()),
        ),
        (
            "lifecycle".to_string(),
            RestrictedExpression::new_string(spec.lifecycle.stage.as_str().to_string()),
        ),
        (
            "tags".to_string(),
            strings(spec.tags.iter().map(|t| t.as_str())),
        ),
        (
            "themes".to_string(),
            strings(spec.themes.iter().map(|t| t.as_str())),
        ),
    ]);
    if let Some(region) = &spec.region {
        attrs.insert(
            "region".to_string(),
            RestrictedExpression::new_string(region.clone()),
        );
    }
    Entity::new(product_uid(names, key), attrs, HashSet::new()).map_err(|e| e.to_string())
}

/// The three entities of a decision (two when the consumer is the provider).
pub(crate) fn entities(
    names: &Names,
    consumer: (&str, &Domain),
    provider: (&str, &Domain),
    product: (&str, &DataProduct),
    schema: Option<&Schema>,
) -> Result<Entities, String> {
    let mut list = vec![domain_entity(names, consumer.0, consumer.1)?];
    if provider.0 != consumer.0 {
        list.push(domain_entity(names, provider.0, provider.1)?);
    }
    list.push(product_entity(names, product.0, provider.0, product.1)?);
    Entities::from_entities(list, schema).map_err(|e| e.to_string())
}

fn licence_terms(name: &str, licence: &LicenceSpec) -> RestrictedExpression {
    let mut fields = vec![
        (
            "name".to_string(),
            RestrictedExpression::new_string(name.to_string()),
        ),
        (
            "version".to_string(),
            RestrictedExpression::new_string(licence.version.clone()),
        ),
        (
            "permittedPurposes".to_string(),
            strings(licence.permitted_purposes.iter().map(|p| p.as_str())),
        ),
        (
            "commercialUse".to_string(),
            RestrictedExpression::new_bool(licence.commercial_use),
        ),
        (
            "redistribution".to_string(),
            RestrictedExpression::new_bool(licence.redistribution),
        ),
        (
            "derivatives".to_string(),
            RestrictedExpression::new_bool(licence.derivatives),
        ),
        (
            "jurisdictions".to_string(),
            strings(licence.jurisdictions.iter().map(|j| j.0.as_str())),
        ),
        (
            "requiresAgreement".to_string(),
            RestrictedExpression::new_bool(licence.requires_agreement),
        ),
    ];
    if let Some(days) = licence.max_duration_days {
        fields.push((
            "maxDurationDays".to_string(),
            RestrictedExpression::new_long(i64::from(days)),
        ));
    }
    if let Some(days) = licence.retention_days {
        fields.push((
            "retentionDays".to_string(),
            RestrictedExpression::new_long(i64::from(days)),
        ));
    }
    // Keys are distinct literals, so building the record cannot fail; an empty
    // record would only make every policy that reads it fail (and so deny).
    RestrictedExpression::new_record(fields)
        .unwrap_or_else(|_| RestrictedExpression::new_bool(false))
}

/// The context pairs except `ownerApproved`, which each evaluation sets.
pub(crate) fn context_pairs(parts: &ContextParts<'_>) -> Vec<(String, RestrictedExpression)> {
    let fields = parts.fields.iter().map(|f| {
        RestrictedExpression::new_record([
            (
                "name".to_string(),
                RestrictedExpression::new_string(f.name.to_string()),
            ),
            (
                "classification".to_string(),
                RestrictedExpression::new_string(f.classification.to_string()),
            ),
        ])
        .unwrap_or_else(|_| RestrictedExpression::new_bool(false))
    });
    let classifications: HashSet<&str> = parts.fields.iter().map(|f| f.classification).collect();
    vec![
        (
            "purpose".to_string(),
            RestrictedExpression::new_string(parts.purpose.to_string()),
        ),
        ("fields".to_string(), RestrictedExpression::new_set(fields)),
        (
            "fieldNames".to_string(),
            strings(parts.fields.iter().map(|f| f.name)),
        ),
        ("fieldClassifications".to_string(), strings(classifications)),
        (
            "allFields".to_string(),
            RestrictedExpression::new_bool(parts.all_fields),
        ),
        (
            "durationDays".to_string(),
            RestrictedExpression::new_long(parts.duration_days),
        ),
        (
            "commercialUse".to_string(),
            RestrictedExpression::new_bool(parts.commercial_use),
        ),
        (
            "redistribution".to_string(),
            RestrictedExpression::new_bool(parts.redistribution),
        ),
        (
            "licence".to_string(),
            licence_terms(parts.licence_name, parts.licence),
        ),
        (
            "acceptedLicenceVersion".to_string(),
            RestrictedExpression::new_string(parts.accepted_version.to_string()),
        ),
        (
            "dpiaReferenceGiven".to_string(),
            RestrictedExpression::new_bool(parts.dpia_reference_given),
        ),
        (
            "existingAgreement".to_string(),
            RestrictedExpression::new_bool(parts.existing_agreement),
        ),
        (
            "now".to_string(),
            RestrictedExpression::new_datetime(&parts.now),
        ),
    ]
}

/// A request with `ownerApproved` set; `schema` validates it (tests pass one,
/// the hot path does not: the shapes above are fixed and tested).
#[cfg(test)]
pub(crate) fn request(
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    pairs: &[(String, RestrictedExpression)],
    owner_approved: bool,
    schema: Option<&Schema>,
) -> Result<cedar_policy::Request, String> {
    let mut pairs = pairs.to_vec();
    pairs.push((
        "ownerApproved".to_string(),
        RestrictedExpression::new_bool(owner_approved),
    ));
    let context = cedar_policy::Context::from_pairs(pairs).map_err(|e| e.to_string())?;
    cedar_policy::Request::new(principal, action, resource, context, schema)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PolicyEngine;
    use crate::testfile::{TestDomain, TestLicence, TestProduct, domain, licence, product};
    use datamesh_crds::Sector;
    use datamesh_crds::product::FieldClassification;

    /// The hot path skips schema checks, so the shapes built here must match
    /// the schema exactly: checked once, with the schema, for both actions.
    #[test]
    fn built_entities_and_context_conform_to_the_schema() -> Result<(), String> {
        let engine = PolicyEngine::with_defaults([]).map_err(|e| format!("{e:?}"))?;
        let names = engine.names();
        let d = TestDomain {
            sector: Sector::Public,
            jurisdiction: "GB-SCT".into(),
            accreditations: vec!["x".into()],
        };
        let consumer = domain("c", &d);
        let provider = domain("p", &d);
        let p = TestProduct {
            domain: "p".into(),
            classification: datamesh_crds::Classification::Personal,
            personal_data: true,
            licence: "l".into(),
            lifecycle: datamesh_crds::LifecycleStage::Published,
            sunset_date: None,
            region: Some("GB".into()),
            tags: vec!["t".into()],
            fields: [("f".to_string(), FieldClassification::Identifier)].into(),
        };
        let prod = product("ns", "prod", &p);
        let lic = licence(
            "l",
            &TestLicence {
                version: "1".into(),
                permitted_purposes: vec!["research".into()],
                commercial_use: false,
                redistribution: false,
                attribution: None,
                max_duration_days: Some(10),
                retention_days: Some(1),
                jurisdictions: vec!["GB".into()],
                requires_agreement: true,
            },
        );
        let schema = Some(engine.schema());
        entities(
            names,
            ("c", &consumer),
            ("p", &provider),
            ("ns/prod", &prod),
            schema,
        )?;
        let fields = [FieldUse {
            name: "f",
            classification: "identifier",
        }];
        let parts = ContextParts {
            purpose: "research",
            fields: &fields,
            all_fields: false,
            duration_days: 3,
            commercial_use: false,
            redistribution: false,
            licence_name: "l",
            licence: &lic.spec,
            accepted_version: "1",
            dpia_reference_given: true,
            existing_agreement: false,
            now: "2025-06-01T00:00:00Z".into(),
        };
        let pairs = context_pairs(&parts);
        for action in &names.actions[..2] {
            request(
                domain_uid(names, "c"),
                action.clone(),
                product_uid(names, "ns/prod"),
                &pairs,
                true,
                schema,
            )?;
        }
        Ok(())
    }
}
