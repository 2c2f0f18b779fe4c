//! The Rego version of the default rules (policies/rego/datamesh.rego), used
//! for the OPA / regorus benchmark comparison, must decide like `decide()`:
//! same outcome and same reason ids on every Read/Subscribe case of the YAML
//! policy tests that uses only the shipped policies. Otherwise the comparison
//! would time different work.

#[path = "support/rego.rs"]
mod rego;

use datamesh_crds::ObjectRef;
use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_policies::testfile::{self, TestAction, domain, licence, product};
use datamesh_policies::{AccessAction, DecisionInput, PolicyEngine};
use jiff::{SignedDuration, Timestamp};
use std::path::Path;

#[test]
fn rego_decides_like_cedar_on_the_shipped_policy_tests() {
    let engine = PolicyEngine::with_defaults([]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut regorus = rego::engine();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();

    let mut compared = 0;
    let mut outcomes = std::collections::BTreeSet::new();
    let mut mismatches = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let loaded =
            testfile::parse(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
        let spec = loaded.spec();
        // Domain-scoped extra rules exist only in Cedar.
        if !spec.policies.is_empty() {
            continue;
        }
        for case in &spec.cases {
            let r = &case.request;
            let action = match r.action {
                TestAction::Read => AccessAction::Read,
                TestAction::Subscribe => AccessAction::Subscribe,
                TestAction::Approve | TestAction::Publish => continue,
            };
            let Some((ns, name)) = r.product.split_once('/') else {
                continue;
            };
            let (Some(p), Some(c)) = (spec.products.get(&r.product), spec.domains.get(&r.consumer))
            else {
                continue;
            };
            let (Some(pd), Some(l)) = (spec.domains.get(&p.domain), spec.licences.get(&p.licence))
            else {
                continue;
            };
            // Malformed requests are refused before any rule runs; Rego does not model that.
            if r.fields.iter().any(|f| !p.fields.contains_key(f)) {
                continue;
            }
            let consumer = domain(&r.consumer, c);
            let provider = domain(&p.domain, pd);
            let prod = product(ns, name, p);
            let lic = licence(&p.licence, l);
            let now: Timestamp = r
                .now
                .as_deref()
                .unwrap_or("2025-06-01T00:00:00Z")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            let end = now
                .saturating_add(SignedDuration::from_hours(24 * i64::from(r.days)))
                .unwrap_or(now);
            let request = DataSharingAgreementSpec {
                consumer: r.consumer.clone(),
                product: ObjectRef {
                    namespace: ns.into(),
                    name: name.into(),
                },
                purpose: Token(r.purpose.clone()),
                justification: None,
                fields: r.fields.iter().map(|f| FieldName(f.clone())).collect(),
                start: None,
                end: end.to_string(),
                licence: AcceptedLicence {
                    name: r.licence.clone().unwrap_or_else(|| p.licence.clone()),
                    version: r
                        .licence_version
                        .clone()
                        .unwrap_or_else(|| l.version.clone()),
                },
                commercial_use: r.commercial_use,
                redistribution: r.redistribution,
                dpia_reference: r.dpia_reference.clone(),
            };
            let input = DecisionInput {
                action,
                owner_approved: r.approved,
                existing_agreement: r.existing_agreement,
                ..DecisionInput::new(&consumer, &provider, &prod, &lic, &request, now)
            };
            let cedar = engine.decide(&input);
            // Sunset and period errors are outside the rules; compare rule outcomes only.
            if cedar
                .reasons
                .iter()
                .any(|r| r.kind == datamesh_policies::ReasonKind::Request)
            {
                continue;
            }
            let cedar_ids: Vec<String> = cedar.reason_ids().into_iter().map(String::from).collect();
            let rego = rego::decide(&mut regorus, rego::input_document(&input).into());
            compared += 1;
            outcomes.insert(cedar.outcome);
            if (cedar.outcome, cedar_ids.clone()) != rego {
                mismatches.push(format!(
                    "{}: {}\n  cedar {:?} {:?}\n  rego  {:?} {:?}",
                    path.display(),
                    case.name,
                    cedar.outcome,
                    cedar_ids,
                    rego.0,
                    rego.1
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared >= 20, "only {compared} cases compared");
    assert_eq!(
        outcomes.len(),
        3,
        "all three outcomes compared: {outcomes:?}"
    );
}
