//! Decision inputs built once per object version and reused.
//!
//! Most of what `decide()` used to spend per request was turning the same
//! Domain, DataProduct and Licence into Cedar values again and again. These
//! types hold that work: a Cedar entity (or, for the licence, the context
//! record of its terms) plus the few facts the request checks need. They are
//! pure values, independent of the policy set, so a caller can keep them
//! keyed by object uid and resourceVersion and pass them to
//! [`PolicyEngine::decide_prepared`](crate::PolicyEngine::decide_prepared)
//! across policy-set changes. [`PolicyEngine::decide`](crate::PolicyEngine::decide)
//! builds them on the fly, so both paths decide identically.

use crate::decision::{AccessAction, DecisionInput, Reason};
use crate::licence::country;
use cedar_policy_core::ast::{Eid, Entity, EntityType, EntityUID, Name, PartialValue, Value};
use datamesh_crds::agreement::DataSharingAgreementSpec;
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{DataProduct, Domain, Licence, LicenceSpec};
use jiff::Timestamp;
use smol_str::SmolStr;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

/// The entity types of the schema, as the evaluator compares them.
pub(crate) struct CoreNames {
    pub domain: EntityType,
    pub product: EntityType,
}

#[allow(clippy::expect_used)] // constant names, parsed in every test run
pub(crate) static CORE_NAMES: LazyLock<CoreNames> = LazyLock::new(|| {
    let ty = |s: &str| EntityType::from(Name::from_str(s).expect("a valid Cedar type name"));
    CoreNames {
        domain: ty("DataMesh::Domain"),
        product: ty("DataMesh::DataProduct"),
    }
});

pub(crate) fn domain_uid(name: &str) -> EntityUID {
    EntityUID::from_components(CORE_NAMES.domain.clone(), Eid::new(name), None)
}

pub(crate) fn product_uid(key: &str) -> EntityUID {
    EntityUID::from_components(CORE_NAMES.product.clone(), Eid::new(key), None)
}

pub(crate) fn string(s: &str) -> Value {
    Value::from(s)
}

pub(crate) fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::set(items.into_iter().map(Value::from), None)
}

pub(crate) fn record(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::record_arc(
        Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (SmolStr::new(k), v))
                .collect(),
        ),
        None,
    )
}

/// One element of `context.fields`.
pub(crate) fn field_record(name: &str, classification: &str) -> Value {
    record([
        ("name", string(name)),
        ("classification", string(classification)),
    ])
}

fn entity(uid: EntityUID, attrs: Vec<(&'static str, Value)>) -> Arc<Entity> {
    Arc::new(Entity::new_with_attr_partial_value(
        uid,
        attrs
            .into_iter()
            .map(|(k, v)| (SmolStr::new(k), PartialValue::Value(v))),
        HashSet::new(),
        HashSet::new(),
        [],
    ))
}

/// A Domain as a principal or provider: its Cedar entity and jurisdiction.
#[derive(Debug, Clone)]
pub struct PreparedDomain {
    pub(crate) name: String,
    pub(crate) jurisdiction: String,
    pub(crate) entity: Arc<Entity>,
}

impl PreparedDomain {
    /// Builds the entity of `domain` (shapes follow `cedar/datamesh.cedarschema`).
    pub fn new(domain: &Domain) -> Self {
        let name = domain.metadata.name.clone().unwrap_or_default();
        let spec = &domain.spec;
        let attrs = vec![
            ("sector", string(spec.sector.as_str())),
            ("jurisdiction", string(&spec.jurisdiction)),
            ("country", string(country(&spec.jurisdiction))),
            (
                "accreditations",
                strings(spec.accreditations.iter().map(|a| a.as_str())),
            ),
        ];
        PreparedDomain {
            entity: entity(domain_uid(&name), attrs),
            jurisdiction: spec.jurisdiction.clone(),
            name,
        }
    }

    /// The Domain's name (empty when it has none).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One field of a product's schema.
#[derive(Debug, Clone)]
pub(crate) struct PreparedField {
    pub name: String,
    pub classification: FieldClassification,
    /// `{name, classification}`, the element of `context.fields`.
    pub record: Value,
}

/// A DataProduct as a resource: its Cedar entity and what the request checks need.
#[derive(Debug, Clone)]
pub struct PreparedProduct {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// `namespace/name`, empty when either is missing.
    pub(crate) key: String,
    pub(crate) domain: String,
    pub(crate) licence: String,
    pub(crate) fields: Vec<PreparedField>,
    pub(crate) sunset: Option<Result<Timestamp, Reason>>,
    pub(crate) entity: Arc<Entity>,
}

impl PreparedProduct {
    /// Builds the entity of `product` (shapes follow `cedar/datamesh.cedarschema`).
    pub fn new(product: &DataProduct) -> Self {
        let namespace = product.metadata.namespace.clone().unwrap_or_default();
        let name = product.metadata.name.clone().unwrap_or_default();
        let key = if namespace.is_empty() || name.is_empty() {
            String::new()
        } else {
            format!("{namespace}/{name}")
        };
        let spec = &product.spec;
        let mut attrs = vec![
            ("domain", Value::from(domain_uid(&spec.domain))),
            ("classification", string(spec.classification.as_str())),
            ("personalData", Value::from(spec.personal_data)),
            ("licence", string(&spec.licence)),
            ("lifecycle", string(spec.lifecycle.stage.as_str())),
            ("tags", strings(spec.tags.iter().map(|t| t.as_str()))),
            ("themes", strings(spec.themes.iter().map(|t| t.as_str()))),
        ];
        if let Some(region) = &spec.region {
            attrs.push(("region", string(region)));
        }
        let sunset = spec.lifecycle.sunset_date.as_deref().map(|s| {
            s.parse::<Timestamp>().map_err(|e| {
                Reason::request(
                    "sunsetDate",
                    format!("the product's sunset date `{s}` is not an RFC 3339 time: {e}"),
                )
            })
        });
        PreparedProduct {
            entity: entity(product_uid(&key), attrs),
            namespace,
            name,
            key,
            domain: spec.domain.clone(),
            licence: spec.licence.clone(),
            fields: spec
                .schema
                .iter()
                .map(|f| PreparedField {
                    name: f.name.clone(),
                    classification: f.classification,
                    record: field_record(&f.name, f.classification.as_str()),
                })
                .collect(),
            sunset,
        }
    }

    /// `namespace/name` (empty when either is missing).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn field(&self, name: &str) -> Option<&PreparedField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A Licence: its terms, and the `context.licence` record policies read.
#[derive(Debug, Clone)]
pub struct PreparedLicence {
    pub(crate) name: String,
    pub(crate) spec: LicenceSpec,
    pub(crate) terms: Value,
}

impl PreparedLicence {
    /// Builds the terms record of `licence`.
    pub fn new(licence: &Licence) -> Self {
        let name = licence.metadata.name.clone().unwrap_or_default();
        let spec = &licence.spec;
        let mut fields = vec![
            ("name", string(&name)),
            ("version", string(&spec.version)),
            (
                "permittedPurposes",
                strings(spec.permitted_purposes.iter().map(|p| p.as_str())),
            ),
            ("commercialUse", Value::from(spec.commercial_use)),
            ("redistribution", Value::from(spec.redistribution)),
            ("derivatives", Value::from(spec.derivatives)),
            (
                "jurisdictions",
                strings(spec.jurisdictions.iter().map(|j| j.0.as_str())),
            ),
            ("requiresAgreement", Value::from(spec.requires_agreement)),
        ];
        if let Some(days) = spec.max_duration_days {
            fields.push(("maxDurationDays", Value::from(i64::from(days))));
        }
        if let Some(days) = spec.retention_days {
            fields.push(("retentionDays", Value::from(i64::from(days))));
        }
        PreparedLicence {
            terms: record(fields),
            spec: spec.clone(),
            name,
        }
    }

    /// The Licence's name (empty when it has none).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One access request over prepared objects: [`DecisionInput`] with the
/// Domains, product and licence already turned into Cedar values.
#[derive(Debug, Clone, Copy)]
pub struct PreparedInput<'a> {
    /// The consumer (principal).
    pub consumer: &'a PreparedDomain,
    /// The domain that owns the product.
    pub provider: &'a PreparedDomain,
    /// The product asked for.
    pub product: &'a PreparedProduct,
    /// The product's licence, as it stands now.
    pub licence: &'a PreparedLicence,
    /// What is asked for: purpose, fields, period, accepted licence version.
    pub request: &'a DataSharingAgreementSpec,
    /// Read or Subscribe.
    pub action: AccessAction,
    /// The time of the decision; also the start when the request names none.
    pub now: Timestamp,
    /// The provider's owners have approved this request.
    pub owner_approved: bool,
    /// The agreement was already granted (re-deciding, not a new request).
    pub existing_agreement: bool,
}

impl<'a> PreparedInput<'a> {
    /// A new Read request, not yet approved.
    pub fn new(
        consumer: &'a PreparedDomain,
        provider: &'a PreparedDomain,
        product: &'a PreparedProduct,
        licence: &'a PreparedLicence,
        request: &'a DataSharingAgreementSpec,
        now: Timestamp,
    ) -> Self {
        PreparedInput {
            consumer,
            provider,
            product,
            licence,
            request,
            action: AccessAction::Read,
            now,
            owner_approved: false,
            existing_agreement: false,
        }
    }
}

/// The prepared objects of one [`DecisionInput`], owned.
#[derive(Debug, Clone)]
pub struct PreparedObjects {
    /// The consumer.
    pub consumer: PreparedDomain,
    /// The provider.
    pub provider: PreparedDomain,
    /// The product.
    pub product: PreparedProduct,
    /// The licence.
    pub licence: PreparedLicence,
}

impl PreparedObjects {
    /// Prepares every object `input` names.
    pub fn new(input: &DecisionInput<'_>) -> Self {
        PreparedObjects {
            consumer: PreparedDomain::new(input.consumer),
            provider: PreparedDomain::new(input.provider),
            product: PreparedProduct::new(input.product),
            licence: PreparedLicence::new(input.licence),
        }
    }

    /// The request of `input` over these objects.
    pub fn input<'a>(&'a self, input: &DecisionInput<'a>) -> PreparedInput<'a> {
        PreparedInput {
            consumer: &self.consumer,
            provider: &self.provider,
            product: &self.product,
            licence: &self.licence,
            request: input.request,
            action: input.action,
            now: input.now,
            owner_approved: input.owner_approved,
            existing_agreement: input.existing_agreement,
        }
    }
}
