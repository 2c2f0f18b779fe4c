//! Runs every YAML policy test under policies/tests/ against the shipped
//! policies, and checks that together they cover every shipped policy and
//! licence term.

use datamesh_policies::testfile::{self, CaseResult};
use datamesh_policies::{Outcome, PolicyEngine, shipped_sources};
use std::collections::BTreeSet;
use std::path::Path;

fn run_all() -> Vec<(String, Vec<CaseResult>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    assert!(!files.is_empty(), "no policy tests in {}", dir.display());
    let base = shipped_sources();
    files
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let loaded = testfile::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
            let results = loaded.run(&base).unwrap_or_else(|e| panic!("{e:?}"));
            (name, results)
        })
        .collect()
}

#[test]
fn every_policy_test_passes() {
    let mut failures = Vec::new();
    for (file, results) in run_all() {
        for r in results.iter().filter(|r| !r.passed) {
            failures.push(format!(
                "{file}:{}: {}\n  expected {:?} {:?}\n  got      {:?} {:?}",
                r.line,
                r.name,
                r.expected.outcome,
                r.expected.reasons,
                r.actual.outcome,
                r.actual.reasons
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_shipped_policy_and_term_is_tested_both_ways() {
    let engine = PolicyEngine::with_defaults([]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut ids: BTreeSet<String> = engine.policies().iter().map(|p| p.id.clone()).collect();
    ids.insert("default-deny".into());
    for term in [
        "name",
        "version",
        "permittedPurposes",
        "commercialUse",
        "redistribution",
        "maxDurationDays",
        "jurisdictions",
        "requiresAgreement",
    ] {
        ids.insert(term.into());
    }
    let all: Vec<CaseResult> = run_all().into_iter().flat_map(|(_, r)| r).collect();
    let mut missing = Vec::new();
    for id in &ids {
        let named: Vec<&CaseResult> = all
            .iter()
            .filter(|r| r.expected.reasons.contains(id))
            .collect();
        let Some(first) = named.first() else {
            missing.push(format!("{id}: no case names it"));
            continue;
        };
        // The other way: some case on the same kind of request decides differently.
        let denies = first.expected.outcome == Outcome::Deny;
        let other = all.iter().any(|r| {
            (r.expected.outcome == Outcome::Deny) != denies && !r.expected.reasons.contains(id)
        });
        if !other {
            missing.push(format!("{id}: no case goes the other way"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn a_typo_in_a_test_file_names_the_line() {
    let text = "domains:\n  a: {sector: public, jurisdiction: GB}\ncases:\n  - name: x\n    request: {consumer: a, product: a/b, purpose: r}\n    expekt: {outcome: Allow, reasons: []}\n";
    let err = testfile::parse("typo.yaml", text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("typo.yaml:"), "{err}");
    assert!(err.contains("expekt"), "{err}");
}

#[test]
fn an_unknown_reference_in_a_test_file_names_the_line() {
    let text = "domains:\n  a: {sector: public, jurisdiction: GB}\ncases:\n  - name: x\n    request: {consumer: b, product: a/b, purpose: r}\n    expect: {outcome: Allow, reasons: []}\n";
    let err = testfile::parse("ref.yaml", text)
        .err()
        .map(|e| (e.line, e.message.clone()));
    assert_eq!(err.as_ref().map(|e| e.0), Some(5), "{err:?}");
    assert!(err.is_some_and(|e| e.1.contains("unknown consumer domain `b`")));
}
