//! Turns one request into Cedar's inputs: the prepared entities of the
//! consumer, provider and product (see `prepared.rs`) and the context record
//! of the agreement. Values are built directly (no `RestrictedExpression`
//! evaluation, no schema check per request); shapes follow
//! `cedar/datamesh.cedarschema`, which a test checks with the schema.

use crate::prepared::{PreparedDomain, PreparedProduct, string, strings};
use cedar_policy_core::ast::{Name, PartialValue, Value};
use cedar_policy_core::entities::{Entities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use jiff::Timestamp;
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::LazyLock;

/// A field asked for, with its classification in the product's schema.
#[derive(Debug, Clone)]
pub(crate) struct FieldUse<'a> {
    pub name: &'a str,
    pub classification: &'static str,
    /// The prepared `{name, classification}` record.
    pub record: &'a Value,
}

/// Everything the context needs besides the flags that vary per evaluation.
pub(crate) struct ContextParts<'a> {
    pub purpose: &'a str,
    pub fields: &'a [FieldUse<'a>],
    pub all_fields: bool,
    pub duration_days: i64,
    pub commercial_use: bool,
    pub redistribution: bool,
    /// The prepared `context.licence` record.
    pub licence: &'a Value,
    pub accepted_version: &'a str,
    pub dpia_reference_given: bool,
    pub existing_agreement: bool,
    pub now: Value,
}

/// A context record: attribute name to value.
pub(crate) type ContextMap = BTreeMap<SmolStr, Value>;

/// The entities of a decision (two when the consumer is the provider).
pub(crate) fn entities(
    consumer: &PreparedDomain,
    provider: &PreparedDomain,
    product: &PreparedProduct,
) -> Result<Entities, String> {
    let mut list = Vec::with_capacity(3);
    list.push(consumer.entity.clone());
    if provider.name != consumer.name {
        list.push(provider.entity.clone());
    }
    list.push(product.entity.clone());
    // No entity has parents, so the transitive closure is trivially computed.
    Entities::new()
        .add_entities(
            list,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::none(),
        )
        .map_err(|e| e.to_string())
}

#[allow(clippy::expect_used)] // constant names, used in every test run
static DATETIME: LazyLock<Name> =
    LazyLock::new(|| Name::from_str("datetime").expect("a Cedar function name"));

/// Calls the Cedar extension function `name`.
fn call(name: &Name, args: &[Value]) -> Result<Value, String> {
    let f = Extensions::all_available()
        .func(name)
        .map_err(|e| e.to_string())?;
    match f.call(args).map_err(|e| e.to_string())? {
        PartialValue::Value(v) => Ok(v),
        PartialValue::Residual(_) => Err(format!("{name}() gave no value")),
    }
}

/// `t`, to the millisecond, as a Cedar `datetime` value: Cedar's own
/// `datetime("YYYY-MM-DDThh:mm:ss.sssZ")`, so it compares exactly as one
/// written in a policy. (Building it as an offset from the epoch is slower:
/// `duration` parsing backtracks.)
pub(crate) fn datetime(t: Timestamp) -> Result<Value, String> {
    let text = t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    call(&DATETIME, &[Value::from(text)])
}

/// The context record except `ownerApproved`, which each evaluation sets.
pub(crate) fn context(parts: &ContextParts<'_>) -> ContextMap {
    let fields = Value::set(parts.fields.iter().map(|f| f.record.clone()), None);
    // In key order, so building the map needs no sorting.
    let pairs = [
        ("acceptedLicenceVersion", string(parts.accepted_version)),
        ("allFields", Value::from(parts.all_fields)),
        ("commercialUse", Value::from(parts.commercial_use)),
        (
            "dpiaReferenceGiven",
            Value::from(parts.dpia_reference_given),
        ),
        ("durationDays", Value::from(parts.duration_days)),
        ("existingAgreement", Value::from(parts.existing_agreement)),
        (
            "fieldClassifications",
            strings(parts.fields.iter().map(|f| f.classification)),
        ),
        ("fieldNames", strings(parts.fields.iter().map(|f| f.name))),
        ("fields", fields),
        ("licence", parts.licence.clone()),
        ("now", parts.now.clone()),
        ("purpose", string(parts.purpose)),
        ("redistribution", Value::from(parts.redistribution)),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (SmolStr::new_static(k), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PolicyEngine;
    use crate::prepared::{PreparedLicence, PreparedProduct, domain_uid, product_uid};
    use crate::testfile::{TestDomain, TestLicence, TestProduct, domain, licence, product};
    use cedar_policy_core::ast;
    use datamesh_crds::Sector;
    use datamesh_crds::product::FieldClassification;
    use std::sync::Arc;

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
        let consumer = PreparedDomain::new(&domain("c", &d));
        let provider = PreparedDomain::new(&domain("p", &d));
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
        let prod = PreparedProduct::new(&product("ns", "prod", &p));
        let lic = PreparedLicence::new(&licence(
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
        ));
        let schema = Some(engine.schema());
        let built = entities(&consumer, &provider, &prod)?;
        cedar_policy::Entities::from_entities(
            built.iter().map(|e| cedar_policy::Entity::from(e.clone())),
            schema,
        )
        .map_err(|e| e.to_string())?;
        let record = crate::prepared::field_record("f", "identifier");
        let fields = [FieldUse {
            name: "f",
            classification: "identifier",
            record: &record,
        }];
        let parts = ContextParts {
            purpose: "research",
            fields: &fields,
            all_fields: false,
            duration_days: 3,
            licence: &lic.terms,
            commercial_use: false,
            redistribution: false,
            accepted_version: "1",
            dpia_reference_given: true,
            existing_agreement: false,
            now: datetime("2025-06-01T00:00:00Z".parse().map_err(|e| format!("{e}"))?)?,
        };
        let mut values = context(&parts);
        values.insert("ownerApproved".into(), Value::from(true));
        let context = cedar_policy::Context::from(ast::Context::Value(Arc::new(values)));
        for action in &names.actions[..2] {
            cedar_policy::Request::new(
                cedar_policy::EntityUid::from(domain_uid("c")),
                action.clone(),
                cedar_policy::EntityUid::from(product_uid("ns/prod")),
                context.clone(),
                schema,
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// `now` is the value `datetime("...")` gives, to the millisecond.
    #[test]
    fn datetime_equals_cedars_own_to_the_millisecond() -> Result<(), String> {
        for (time, text) in [
            ("2026-11-26T01:51:49.120456789Z", "2026-11-26T01:51:49.120Z"),
            ("2026-11-26T01:51:49Z", "2026-11-26T01:51:49.000Z"),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
            ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z"),
            ("2999-02-28T23:59:59.999Z", "2999-02-28T23:59:59.999Z"),
        ] {
            let t: Timestamp = time.parse().map_err(|e| format!("{e}"))?;
            let expected = cedar_policy::RestrictedExpression::new_datetime(text);
            let context = cedar_policy::Context::from_pairs([("now".to_string(), expected)])
                .map_err(|e| e.to_string())?;
            let ast::Context::Value(map) = context.as_ref() else {
                return Err("not a value".into());
            };
            assert_eq!(map.get("now"), Some(&datetime(t)?), "{time}");
        }
        Ok(())
    }
}
