//! `decide()` evaluates only the policies whose scope (action, principal) can
//! match the request. It must answer exactly like Cedar's stock authorizer
//! over the domain's whole set: same outcome, same reasons, same grant, for
//! every mix of scopes a domain can write.

use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{Classification, LifecycleStage, ObjectRef, Sector};
use datamesh_policies::testfile::{TestDomain, TestLicence, TestProduct, domain, licence, product};
use datamesh_policies::{AccessAction, DecisionInput, Outcome, PolicyEngine, PolicySource};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

const SCOPED: &str = r#"
@id("p-eq-read")
@reason("one consumer may read")
permit (principal == DataMesh::Domain::"c1", action == DataMesh::Action::"Read", resource is DataMesh::DataProduct)
when { resource.tags.contains("shared") };

@id("p-eq-subscribe")
@reason("one consumer may subscribe")
permit (principal == DataMesh::Domain::"c2", action == DataMesh::Action::"Subscribe", resource);

@id("f-eq-any-action")
@reason("one consumer is kept out")
forbid (principal == DataMesh::Domain::"c3", action, resource)
when { resource.classification != "open" };

@id("p-in-list")
@reason("any domain, listed actions, once approved")
permit (principal, action in [DataMesh::Action::"Read", DataMesh::Action::"Subscribe"], resource)
when { context.ownerApproved && resource.tags.contains("loose") };

@id("f-is-subscribe")
@reason("no subscriptions to restricted data")
forbid (principal is DataMesh::Domain, action == DataMesh::Action::"Subscribe", resource is DataMesh::DataProduct)
when { resource.classification == "restricted" };

@id("f-guard-literal-first")
@reason("c4 gets no restricted data, even once approved")
forbid (principal == DataMesh::Domain::"c4", action in [DataMesh::Action::"Read", DataMesh::Action::"Subscribe"], resource)
when { "restricted" == resource.classification && context.ownerApproved };

@id("p-guard-either")
@reason("private-sector consumers, or personal data, when shared")
permit (principal, action == DataMesh::Action::"Read", resource)
when { (principal.sector == "private" || resource.personalData) && resource.tags.contains("shared") };

@id("p-approve-only")
@reason("managing is not using")
permit (principal == DataMesh::Domain::"c1", action == DataMesh::Action::"Approve", resource);
"#;

#[test]
fn indexed_decisions_equal_the_stock_authorizer() {
    let engine = PolicyEngine::with_defaults([PolicySource::for_domain(
        "GovernancePolicy/scoped",
        "prov",
        SCOPED,
    )])
    .unwrap_or_else(|e| panic!("{e:?}"));
    let stock = engine.with_stock_authorizer();

    let sectors = [
        Sector::Public,
        Sector::Private,
        Sector::Public,
        Sector::Public,
    ];
    let consumers: Vec<_> = ["c1", "c2", "c3", "c4"]
        .iter()
        .zip(sectors)
        .map(|(name, sector)| {
            let spec = TestDomain {
                sector,
                jurisdiction: "GB".into(),
                accreditations: vec!["dpia-process".into()],
            };
            domain(name, &spec)
        })
        .collect();
    let provider = domain(
        "prov",
        &TestDomain {
            sector: Sector::Public,
            jurisdiction: "GB".into(),
            accreditations: vec![],
        },
    );
    let lic = licence(
        "lic",
        &TestLicence {
            version: "1".into(),
            permitted_purposes: vec!["research".into()],
            commercial_use: false,
            redistribution: false,
            attribution: None,
            max_duration_days: Some(365),
            retention_days: None,
            jurisdictions: vec![],
            requires_agreement: false,
        },
    );
    let mut products = Vec::new();
    for (i, classification) in [
        Classification::Open,
        Classification::Internal,
        Classification::Restricted,
        Classification::Personal,
    ]
    .into_iter()
    .enumerate()
    {
        for (j, tags) in [vec![], vec!["shared"], vec!["loose"]]
            .into_iter()
            .enumerate()
        {
            let spec = TestProduct {
                domain: "prov".into(),
                classification,
                personal_data: classification == Classification::Personal,
                licence: "lic".into(),
                lifecycle: LifecycleStage::Published,
                sunset_date: None,
                region: Some("GB".into()),
                tags: tags.into_iter().map(String::from).collect(),
                fields: BTreeMap::from([("a".to_string(), FieldClassification::Public)]),
            };
            products.push(product("prov", &format!("p{i}{j}"), &spec));
        }
    }
    let now: Timestamp = "2025-06-01T00:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));

    let mut compared = 0;
    let mut outcomes = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    for consumer in &consumers {
        for prod in &products {
            let request = DataSharingAgreementSpec {
                consumer: consumer.metadata.name.clone().unwrap_or_default(),
                product: ObjectRef {
                    namespace: "prov".into(),
                    name: prod.metadata.name.clone().unwrap_or_default(),
                },
                purpose: Token("research".into()),
                justification: None,
                fields: vec![FieldName("a".into())],
                start: None,
                end: "2025-07-01T00:00:00Z".into(),
                licence: AcceptedLicence {
                    name: "lic".into(),
                    version: "1".into(),
                },
                commercial_use: false,
                redistribution: false,
                dpia_reference: Some("DPIA-1".into()),
            };
            for action in [AccessAction::Read, AccessAction::Subscribe] {
                for owner_approved in [false, true] {
                    let input = DecisionInput {
                        action,
                        owner_approved,
                        ..DecisionInput::new(consumer, &provider, prod, &lic, &request, now)
                    };
                    let indexed = engine.decide(&input);
                    assert_eq!(
                        indexed,
                        stock.decide(&input),
                        "{:?} {action:?} approved={owner_approved} on {:?}",
                        consumer.metadata.name,
                        prod.metadata.name
                    );
                    compared += 1;
                    outcomes.insert(indexed.outcome);
                    reasons.extend(indexed.reasons.iter().map(|r| r.id.clone()));
                }
            }
        }
    }
    assert_eq!(compared, 4 * 12 * 2 * 2);
    assert_eq!(
        outcomes,
        BTreeSet::from([Outcome::Allow, Outcome::NeedsApproval, Outcome::Deny])
    );
    // Every scoped rule that can apply to Read/Subscribe decided something.
    for id in [
        "p-eq-read",
        "p-eq-subscribe",
        "f-eq-any-action",
        "p-in-list",
        "f-is-subscribe",
        "f-guard-literal-first",
        "p-guard-either",
    ] {
        assert!(
            reasons.contains(id),
            "{id} never determined a decision: {reasons:?}"
        );
    }
    assert!(!reasons.contains("p-approve-only"));
}
