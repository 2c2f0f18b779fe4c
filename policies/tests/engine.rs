//! The policy set: errors with their line and column, unique ids, versions,
//! the per-domain index, fail-closed evaluation and batch re-decisions.

use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{Classification, DataProduct, Domain, Licence, ObjectRef, Sector};
use datamesh_policies::testfile::{TestDomain, TestLicence, TestProduct, domain, licence, product};
use datamesh_policies::{
    DecisionInput, Outcome, PolicyEngine, PolicyErrorKind, PolicySetError, PolicySource,
    ReasonKind, redecide, redecide_against, shipped_sources,
};
use jiff::Timestamp;
use std::collections::BTreeMap;

const SHIPPED_IDS: &[&str] = &[
    "data-residency",
    "deprecated-no-new-agreements",
    "draft-never",
    "identifier-fields-purpose",
    "internal-owner-approved",
    "internal-same-sector",
    "open-read",
    "owner-approves",
    "owner-publishes",
    "owner-uses-own",
    "personal-data-accredited",
    "personal-data-dpia",
    "personal-data-purpose",
    "restricted-owner-approved",
    "retired-never",
];

fn refused(sources: Vec<PolicySource>) -> PolicySetError {
    match PolicyEngine::new(sources) {
        Ok(_) => panic!("the set should have been refused"),
        Err(e) => e,
    }
}

fn engine(extra: Vec<PolicySource>) -> PolicyEngine {
    PolicyEngine::with_defaults(extra).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn shipped_policies_are_valid_and_named() {
    let engine = engine(vec![]);
    let ids: Vec<&str> = engine.policies().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, SHIPPED_IDS);
    assert!(
        engine
            .policies()
            .iter()
            .all(|p| !p.reason.is_empty() && p.source.starts_with("shipped/"))
    );
}

#[test]
fn a_parse_error_has_its_line_and_column() {
    let text = "@id(\"a\")\n@reason(\"r\")\npermit (principal, action, resource)\nwhen { resource.classification == };\n";
    let err = refused(vec![PolicySource::central("bad.cedar", text)]);
    let e = &err.errors[0];
    assert_eq!(
        (e.kind, e.source_name.as_str(), e.line, e.column),
        (PolicyErrorKind::Parse, "bad.cedar", 4, 35)
    );
    assert!(e.to_string().starts_with("bad.cedar:4:35: "), "{e}");
}

#[test]
fn an_unknown_attribute_is_a_validation_error_at_its_place() {
    let text = "// x\n@id(\"typo\")\n@reason(\"r\")\npermit (principal, action, resource)\n  when { resource.clasification == \"open\" };\n";
    let err = refused(vec![PolicySource::for_domain(
        "GovernancePolicy/t",
        "transport",
        text,
    )]);
    let e = &err.errors[0];
    assert_eq!(e.kind, PolicyErrorKind::Validation);
    assert_eq!(e.policy_id.as_deref(), Some("typo"));
    assert_eq!((e.line, e.column), (5, 10));
    assert!(e.message.contains("clasification"), "{}", e.message);
    assert_eq!(e.help.as_deref(), Some("did you mean `classification`?"));
    let record = e.to_record();
    assert_eq!((record.line, record.column), (Some(5), Some(10)));
}

#[test]
fn a_type_error_is_refused_in_strict_mode() {
    let text = "@id(\"t\")\n@reason(\"r\")\npermit (principal, action, resource) when { principal.sector == 3 };\n";
    let err = refused(vec![PolicySource::central("types.cedar", text)]);
    assert_eq!(err.errors[0].kind, PolicyErrorKind::Validation);
    assert_eq!(err.errors[0].line, 3);
}

#[test]
fn a_duplicate_id_names_both_sources() {
    let text = "@id(\"open-read\")\n@reason(\"mine\")\npermit (principal, action, resource);\n";
    let mut sources = shipped_sources();
    sources.push(PolicySource::central("GovernancePolicy/mine", text));
    let err = refused(sources);
    let e = &err.errors[0];
    assert_eq!(e.kind, PolicyErrorKind::DuplicateId);
    assert_eq!(e.source_name, "GovernancePolicy/mine");
    assert!(
        e.message.contains("shipped/classification.cedar")
            && e.message.contains("GovernancePolicy/mine")
    );
}

#[test]
fn id_and_reason_are_required_and_templates_refused() {
    let text = "permit (principal, action, resource);\n@id(\"x\")\npermit (principal, action, resource);\n@id(\"t\")\n@reason(\"r\")\npermit (principal == ?principal, action, resource);\n";
    let err = refused(vec![PolicySource::central("p.cedar", text)]);
    let kinds: Vec<(PolicyErrorKind, u32)> = err.errors.iter().map(|e| (e.kind, e.line)).collect();
    assert!(
        kinds.contains(&(PolicyErrorKind::MissingId, 1)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(PolicyErrorKind::MissingReason, 2)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(PolicyErrorKind::Template, 4)), "{kinds:?}");
}

#[test]
fn the_version_is_a_stable_hash_of_the_content() {
    let a = engine(vec![]);
    let mut reversed = shipped_sources();
    reversed.reverse();
    for s in &mut reversed {
        s.name = format!("renamed/{}", s.name);
    }
    let b = PolicyEngine::new(reversed).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(a.version(), b.version());
    let c = engine(vec![scoped_permit("transport", "extra")]);
    assert_ne!(a.version(), c.version());
    assert_eq!(
        a.version_for_domain("health"),
        c.version_for_domain("health")
    );
    assert_ne!(
        a.version_for_domain("transport"),
        c.version_for_domain("transport")
    );
}

fn scoped_permit(domain: &str, id: &str) -> PolicySource {
    PolicySource::for_domain(
        format!("GovernancePolicy/{id}"),
        domain,
        format!(
            "@id(\"{id}\")\n@reason(\"{domain} shares with acme\")\npermit (principal == DataMesh::Domain::\"acme\", action, resource);\n"
        ),
    )
}

struct World {
    domains: BTreeMap<String, Domain>,
    products: BTreeMap<String, DataProduct>,
    licence: Licence,
}

fn world() -> World {
    let d = |sector, accreditations: &[&str]| TestDomain {
        sector,
        jurisdiction: "GB".into(),
        accreditations: accreditations.iter().map(|s| s.to_string()).collect(),
    };
    let domains = [
        ("transport", d(Sector::Public, &[])),
        ("health", d(Sector::Public, &["dpia-process"])),
        ("acme", d(Sector::Private, &[])),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), domain(n, &t)))
    .collect();
    let p = |dom: &str, classification| TestProduct {
        domain: dom.into(),
        classification,
        personal_data: false,
        licence: "lic".into(),
        lifecycle: datamesh_crds::LifecycleStage::Published,
        sunset_date: None,
        region: None,
        tags: vec![],
        fields: BTreeMap::from([("a".to_string(), FieldClassification::Public)]),
    };
    let products = [
        ("transport/open", p("transport", Classification::Open)),
        (
            "transport/internal",
            p("transport", Classification::Internal),
        ),
        ("health/internal", p("health", Classification::Internal)),
    ]
    .into_iter()
    .map(|(k, t)| {
        let (ns, name) = k.split_once('/').unwrap_or_default();
        (k.to_string(), product(ns, name, &t))
    })
    .collect();
    let licence = licence(
        "lic",
        &TestLicence {
            version: "1".into(),
            permitted_purposes: vec!["any".into()],
            commercial_use: false,
            redistribution: false,
            attribution: Some("Contains City data".into()),
            max_duration_days: Some(365),
            retention_days: Some(7),
            jurisdictions: vec![],
            requires_agreement: false,
        },
    );
    World {
        domains,
        products,
        licence,
    }
}

fn request(consumer: &str, product: &str, fields: &[&str]) -> DataSharingAgreementSpec {
    let (ns, name) = product.split_once('/').unwrap_or_default();
    DataSharingAgreementSpec {
        consumer: consumer.into(),
        product: ObjectRef {
            namespace: ns.into(),
            name: name.into(),
        },
        purpose: Token("research".into()),
        justification: None,
        fields: fields.iter().map(|f| FieldName(f.to_string())).collect(),
        start: None,
        end: "2025-09-01T00:00:00Z".into(),
        licence: AcceptedLicence {
            name: "lic".into(),
            version: "1".into(),
        },
        commercial_use: false,
        redistribution: false,
        dpia_reference: None,
    }
}

fn now() -> Timestamp {
    "2025-06-01T00:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn input<'a>(w: &'a World, req: &'a DataSharingAgreementSpec) -> DecisionInput<'a> {
    let product = &w.products[&format!("{}/{}", req.product.namespace, req.product.name)];
    DecisionInput::new(
        &w.domains[&req.consumer],
        &w.domains[&product.spec.domain],
        product,
        &w.licence,
        req,
        now(),
    )
}

#[test]
fn approval_turns_needs_approval_into_allow_and_carries_the_licence() {
    let w = world();
    let engine = engine(vec![]);
    let req = request("acme", "transport/internal", &["a"]);
    let pending = engine.decide(&input(&w, &req));
    assert_eq!(pending.outcome, Outcome::NeedsApproval);
    let approved = engine.decide(&DecisionInput {
        owner_approved: true,
        ..input(&w, &req)
    });
    assert_eq!(approved.outcome, Outcome::Allow);
    assert_eq!(approved.granted_fields, vec!["a"]);
    let licence = approved.licence.clone().unwrap_or_default();
    assert_eq!(
        (licence.attribution.as_deref(), licence.retention_days),
        (Some("Contains City data"), Some(7))
    );
    let record = approved.to_record();
    assert_eq!(record.outcome, "Allow");
    assert_eq!(record.reasons[0].kind, "policy");
    assert_eq!(record.policy_set_version.as_deref(), Some(engine.version()));
}

#[test]
fn an_unknown_field_is_denied_by_name() {
    let w = world();
    let req = request("acme", "transport/open", &["a", "nope"]);
    let d = engine(vec![]).decide(&input(&w, &req));
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.reasons.len(), 1);
    assert_eq!(
        (d.reasons[0].kind, d.reasons[0].id.as_str()),
        (ReasonKind::Request, "fields")
    );
    assert!(d.reasons[0].message.contains("`nope`"));
}

#[test]
fn mismatched_objects_are_denied() {
    let w = world();
    let req = request("acme", "transport/open", &["a"]);
    let wrong_provider = DecisionInput {
        provider: &w.domains["health"],
        ..input(&w, &req)
    };
    let d = engine(vec![]).decide(&wrong_provider);
    assert_eq!(
        (d.outcome, d.reason_ids()),
        (Outcome::Deny, vec!["provider"])
    );
}

#[test]
fn an_evaluation_error_fails_closed() {
    let w = world();
    let overflow = PolicySource::central(
        "overflow.cedar",
        "@id(\"overflow\")\n@reason(\"r\")\nforbid (principal, action == DataMesh::Action::\"Read\", resource)\n  when { context.durationDays * 9223372036854775807 > 0 };\n",
    );
    let req = request("acme", "transport/open", &["a"]);
    let d = engine(vec![overflow]).decide(&input(&w, &req));
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.reasons[0].kind, ReasonKind::Error);
    assert_eq!(d.reasons[0].id, "overflow");
}

#[test]
fn a_domain_policy_applies_only_to_that_domains_products() {
    let w = world();
    let engine = engine(vec![scoped_permit("transport", "transport-acme")]);
    let own = request("acme", "transport/internal", &["a"]);
    let other = request("acme", "health/internal", &["a"]);
    assert_eq!(
        engine.decide(&input(&w, &own)).reason_ids(),
        vec!["transport-acme"]
    );
    assert_eq!(
        engine.decide(&input(&w, &other)).outcome,
        Outcome::NeedsApproval
    );
}

#[test]
fn redecide_reports_only_changed_outcomes_with_both_reasons() {
    let w = world();
    let old = engine(vec![]);
    let forbid_private = PolicySource::central(
        "GovernancePolicy/no-private",
        "@id(\"no-private\")\n@reason(\"no private sector\")\nforbid (principal, action, resource) when { principal.sector == \"private\" };\n",
    );
    let new = engine(vec![forbid_private]);
    let reqs: Vec<DataSharingAgreementSpec> = (0..600)
        .map(|i| match i % 3 {
            0 => request("acme", "transport/open", &["a"]),
            1 => request("health", "transport/open", &["a"]),
            _ => request("acme", "health/internal", &["a"]),
        })
        .collect();
    let inputs: Vec<DecisionInput<'_>> = reqs.iter().map(|r| input(&w, r)).collect();
    let changes = redecide(&old, &new, &inputs);
    assert_eq!(changes.len(), 400);
    let c = &changes[0];
    assert_eq!(
        (c.index, c.old.outcome, c.new.outcome),
        (0, Outcome::Allow, Outcome::Deny)
    );
    assert_eq!(c.new.reason_ids(), vec!["no-private"]);
    assert_eq!(c.old.reason_ids(), vec!["open-read"]);

    let previous: Vec<Outcome> = old.decide_all(&inputs).iter().map(|d| d.outcome).collect();
    assert_eq!(redecide_against(&new, &previous, &inputs).len(), 400);

    // A change to health's own policies leaves transport's agreements alone.
    let health_only = engine(vec![scoped_permit("health", "health-acme")]);
    let changes = redecide(&old, &health_only, &inputs);
    assert_eq!(changes.len(), 200);
    assert!(
        changes
            .iter()
            .all(|c| c.index % 3 == 2 && c.new.outcome == Outcome::Allow)
    );
}

#[test]
fn a_clock_time_with_nanoseconds_decides() {
    let w = world();
    let req = request("acme", "transport/open", &["a"]);
    let t: Timestamp = "2025-06-01T10:11:12.123456789Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let d = engine(vec![]).decide(&DecisionInput {
        now: t,
        ..input(&w, &req)
    });
    assert_eq!(
        (d.outcome, d.reason_ids()),
        (Outcome::Allow, vec!["open-read"])
    );
}
