//! The Rego side of the benchmark comparison (policies/rego/datamesh.rego):
//! the input document for one decision, built from the same `DecisionInput`
//! that `decide()` takes, and evaluation by regorus. Shared by the parity test
//! (tests/rego_parity.rs) and the bench (benches/decide.rs); not part of the
//! library, which decides with Cedar only.
#![allow(dead_code)] // each user needs a different part

use datamesh_crds::product::FieldClassification;
use datamesh_policies::{AccessAction, DecisionInput, Outcome};
use jiff::Timestamp;
use serde_json::{Value, json};

/// The Rego policy, compiled into the test or bench.
pub const REGO: &str = include_str!("../../rego/datamesh.rego");

/// The rule that holds the decision.
pub const DECISION_RULE: &str = "data.datamesh.decision";

/// The input document for `input`: the same facts the Cedar entities,
/// context and licence-term check see.
pub fn input_document(input: &DecisionInput<'_>) -> Value {
    let consumer = &input.consumer.spec;
    let product = &input.product.spec;
    let licence = &input.licence.spec;
    let request = input.request;
    let classifications: Vec<&str> = if request.fields.is_empty() {
        product
            .schema
            .iter()
            .filter(|f| f.classification != FieldClassification::Identifier)
            .map(|f| f.classification.as_str())
            .collect()
    } else {
        request
            .fields
            .iter()
            .filter_map(|f| product.field(f.as_str()))
            .map(|f| f.classification.as_str())
            .collect()
    };
    let start = request
        .start
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .unwrap_or(input.now);
    let end = request.end.parse::<Timestamp>().unwrap_or(start);
    let days = (end.duration_since(start).as_secs() + 86_399) / 86_400;
    let asked_days = if input.existing_agreement { 0 } else { days };
    json!({
        "action": match input.action {
            AccessAction::Read => "Read",
            AccessAction::Subscribe => "Subscribe",
        },
        "ownerApproved": input.owner_approved,
        "principal": {
            "name": input.consumer.metadata.name.as_deref().unwrap_or(""),
            "sector": consumer.sector.as_str(),
            "jurisdiction": consumer.jurisdiction,
            "country": consumer.jurisdiction.split('-').next().unwrap_or(""),
            "accreditations": consumer.accreditations.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        },
        "resource": {
            "domain": product.domain,
            "domainSector": input.provider.spec.sector.as_str(),
            "classification": product.classification.as_str(),
            "personalData": product.personal_data,
            "licence": product.licence,
            "lifecycle": product.lifecycle.stage.as_str(),
            "region": product.region,
            "tags": product.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        },
        "context": {
            "purpose": request.purpose.as_str(),
            "fieldClassifications": classifications,
            "dpiaReferenceGiven": request.dpia_reference.as_deref().is_some_and(|r| !r.trim().is_empty()),
            "existingAgreement": input.existing_agreement,
        },
        "licence": {
            "name": input.licence.metadata.name.as_deref().unwrap_or(""),
            "version": licence.version,
            "permittedPurposes": licence.permitted_purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "commercialUse": licence.commercial_use,
            "redistribution": licence.redistribution,
            "maxDurationDays": licence.max_duration_days,
            "jurisdictions": licence.jurisdictions.iter().map(|j| j.0.as_str()).collect::<Vec<_>>(),
            "requiresAgreement": licence.requires_agreement,
        },
        "request": {
            "licenceName": request.licence.name,
            "licenceVersion": request.licence.version,
            "commercialUse": request.commercial_use,
            "redistribution": request.redistribution,
            "askedDays": asked_days,
        },
    })
}

/// A regorus engine holding the Rego policy.
pub fn engine() -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    if let Err(e) = engine.add_policy("datamesh.rego".into(), REGO.into()) {
        panic!("datamesh.rego does not compile in regorus: {e}");
    }
    engine
}

/// regorus's outcome and sorted reason ids for one input document.
pub fn decide(engine: &mut regorus::Engine, document: regorus::Value) -> (Outcome, Vec<String>) {
    engine.set_input(document);
    let value = engine
        .eval_rule(DECISION_RULE.into())
        .unwrap_or_else(|e| panic!("evaluating {DECISION_RULE}: {e}"));
    parse_decision(&value.to_json_str().unwrap_or_default())
}

/// Outcome and reason ids from the decision's JSON (regorus or `opa eval`).
pub fn parse_decision(json: &str) -> (Outcome, Vec<String>) {
    let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let outcome = match value["outcome"].as_str() {
        Some("Allow") => Outcome::Allow,
        Some("NeedsApproval") => Outcome::NeedsApproval,
        _ => Outcome::Deny,
    };
    let mut reasons: Vec<String> = value["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    reasons.sort();
    (outcome, reasons)
}
