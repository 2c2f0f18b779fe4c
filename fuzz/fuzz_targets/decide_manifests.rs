//! Manifests of every kind, as a user could write them, through the decision
//! core. The input is a YAML stream (or one JSON object or array, as the API
//! server sends them) of Domain, DataProduct, Licence, DataSharingAgreement,
//! AgreementApproval and GovernancePolicy documents. Each document is
//! deserialised into its kind (a document of no known kind is tried as every
//! kind); the ones given replace those of a valid baseline set (the first
//! Domain is the consumer, the second the provider), so mutating a single
//! manifest still reaches a decision. A GovernancePolicy is validated into the
//! engine; an AgreementApproval answers the agreement as the operator matches it.
//!
//! Asserts: never panics; deciding twice gives the same answer; a denial
//! grants nothing and says why; a grant has a start before its end, no later
//! than the requested end or the licence's maximum, and only fields of the
//! product's schema, identifiers only when named.
#![no_main]

use datamesh_crds::approval::ApprovalDecision;
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{
    AgreementApproval, DataProduct, DataSharingAgreement, Domain, GovernancePolicy, Licence,
};
use datamesh_policies::{
    AccessAction, Decision, DecisionInput, ManageAction, Outcome, PolicyEngine, PolicySource,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use std::sync::OnceLock;

/// One decision's objects; `None` where the input gave none.
#[derive(Clone, Default)]
struct Set {
    consumer: Option<Domain>,
    provider: Option<Domain>,
    product: Option<DataProduct>,
    licence: Option<Licence>,
    agreement: Option<DataSharingAgreement>,
    approval: Option<AgreementApproval>,
    policy: Option<GovernancePolicy>,
}

const BASELINE: &str = include_str!("../seeds/decide_manifests/baseline.yaml");

fn baseline() -> &'static Set {
    static SET: OnceLock<Set> = OnceLock::new();
    SET.get_or_init(|| read(BASELINE))
}

fn engine() -> Option<&'static PolicyEngine> {
    static ENGINE: OnceLock<Option<PolicyEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| PolicyEngine::with_defaults([]).ok())
        .as_ref()
}

fn as_kind<T: DeserializeOwned>(doc: &serde_yaml::Value) -> Option<T> {
    serde_yaml::from_value(doc.clone()).ok()
}

/// Sorts documents into a set by `kind`.
fn read(text: &str) -> Set {
    let docs: Vec<serde_yaml::Value> = if text.trim_start().starts_with(['{', '[']) {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| serde_yaml::to_value(v).ok())
                .collect(),
            Ok(v) => serde_yaml::to_value(v).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    } else {
        serde_yaml::Deserializer::from_str(text)
            .map_while(|d| serde::Deserialize::deserialize(d).ok())
            .take(16)
            .collect()
    };
    let mut set = Set::default();
    for doc in &docs {
        match doc.get("kind").and_then(|k| k.as_str()) {
            Some("Domain") => match as_kind(doc) {
                Some(d) if set.consumer.is_none() => set.consumer = Some(d),
                Some(d) => set.provider = Some(d),
                None => {}
            },
            Some("DataProduct") => set.product = as_kind(doc).or(set.product),
            Some("Licence") => set.licence = as_kind(doc).or(set.licence),
            Some("DataSharingAgreement") => set.agreement = as_kind(doc).or(set.agreement),
            Some("AgreementApproval") => set.approval = as_kind(doc).or(set.approval),
            Some("GovernancePolicy") => set.policy = as_kind(doc).or(set.policy),
            _ => {
                // The deserialisers must refuse, not panic, whatever the kind says.
                let _ = as_kind::<Domain>(doc);
                let _ = as_kind::<DataProduct>(doc);
                let _ = as_kind::<Licence>(doc);
                let _ = as_kind::<DataSharingAgreement>(doc);
                let _ = as_kind::<AgreementApproval>(doc);
                let _ = as_kind::<GovernancePolicy>(doc);
            }
        }
    }
    set
}

/// The given object, else the baseline's.
fn pick<T: Clone>(given: &Option<T>, base: &Option<T>) -> Option<T> {
    given.clone().or_else(|| base.clone())
}

fn check(d: &Decision, input: &DecisionInput<'_>) {
    if d.outcome == Outcome::Deny {
        assert!(!d.reasons.is_empty(), "a denial without a reason: {d:?}");
        assert!(d.granted_fields.is_empty() && d.licence.is_none(), "{d:?}");
        assert!(d.active_from.is_none() && d.active_until.is_none(), "{d:?}");
        return;
    }
    let (Some(from), Some(until)) = (d.active_from, d.active_until) else {
        panic!("a grant without a period: {d:?}");
    };
    assert!(from < until, "grant ends before it starts: {d:?}");
    if let Ok(end) = input.request.end.parse::<jiff::Timestamp>() {
        assert!(until <= end, "grant runs past the requested end: {d:?}");
    }
    if let Some(max) = input.licence.spec.max_duration_days {
        let longest = jiff::SignedDuration::from_hours(24 * i64::from(max));
        assert!(
            until.duration_since(from) <= longest,
            "grant longer than the licence: {d:?}"
        );
    }
    for name in &d.granted_fields {
        let field = input.product.spec.field(name);
        assert!(
            field.is_some(),
            "granted {name} is not in the schema: {d:?}"
        );
        if field.is_some_and(|f| f.classification == FieldClassification::Identifier) {
            assert!(
                input.request.fields.iter().any(|f| f.as_str() == name),
                "identifier {name} granted without being named: {d:?}"
            );
        }
    }
    assert_eq!(
        input.request.consumer.as_str(),
        input.consumer.metadata.name.as_deref().unwrap_or_default(),
        "granted to a consumer other than the one asking"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let given = read(text);
    let base = baseline();
    let set = Set {
        consumer: pick(&given.consumer, &base.consumer),
        provider: pick(&given.provider, &base.provider),
        product: pick(&given.product, &base.product),
        licence: pick(&given.licence, &base.licence),
        agreement: pick(&given.agreement, &base.agreement),
        approval: given.approval.clone(),
        policy: given.policy.clone(),
    };
    let (Some(consumer), Some(provider), Some(product), Some(licence), Some(agreement)) = (
        &set.consumer,
        &set.provider,
        &set.product,
        &set.licence,
        &set.agreement,
    ) else {
        return;
    };
    let Some(shipped) = engine() else { return };
    // A GovernancePolicy is validated; only one that validates takes part.
    let custom = set.policy.as_ref().and_then(|p| {
        match PolicyEngine::with_defaults([PolicySource::from_governance_policy(p)]) {
            Ok(e) => Some(e),
            Err(e) => {
                assert!(!e.errors.is_empty(), "a refused policy set without errors");
                None
            }
        }
    });
    let engine = custom.as_ref().unwrap_or(shipped);
    // Matched as the operator does: the product's namespace, the agreement's name and namespace.
    let approved = set.approval.as_ref().is_some_and(|ap| {
        ap.metadata.namespace.as_deref() == Some(agreement.spec.product.namespace.as_str())
            && Some(ap.spec.agreement.namespace.as_str()) == agreement.metadata.namespace.as_deref()
            && Some(ap.spec.agreement.name.as_str()) == agreement.metadata.name.as_deref()
            && ap.spec.decision == ApprovalDecision::Approve
    });
    let now = jiff::Timestamp::from_second(1_790_000_000).unwrap_or_default();
    let mut input = DecisionInput::new(consumer, provider, product, licence, &agreement.spec, now);
    // A new request, the same answered by the approval, the grant re-decided,
    // and a subscription: each decision costs about a millisecond here, so few.
    let cases = [
        (AccessAction::Read, false, false),
        (AccessAction::Read, approved, false),
        (AccessAction::Read, approved, true),
        (AccessAction::Subscribe, approved, false),
    ];
    for (i, (action, owner_approved, existing)) in cases.into_iter().enumerate() {
        input.action = action;
        input.owner_approved = owner_approved;
        input.existing_agreement = existing;
        let d = engine.decide(&input);
        check(&d, &input);
        if i == 0 {
            assert_eq!(
                d,
                engine.decide(&input),
                "the same input decided twice differently"
            );
        }
        let _ = d.to_record();
    }
    for action in [ManageAction::Approve, ManageAction::Publish] {
        let _ = engine.decide_management(consumer, provider, product, action, now);
    }
});
