//! Manifests of every kind, as a user could write them, through the decision
//! core: whatever they hold, deciding never panics and a malformed one denies.
#![no_main]

use datamesh_crds::{DataProduct, DataSharingAgreement, Domain, Licence};
use datamesh_policies::{DecisionInput, PolicyEngine};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn engine() -> Option<&'static PolicyEngine> {
    static ENGINE: OnceLock<Option<PolicyEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| PolicyEngine::with_defaults([]).ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Five YAML documents: consumer, provider, product, licence, agreement.
    let docs: Vec<&str> = text.split("\n---\n").collect();
    let [consumer, provider, product, licence, agreement] = docs.as_slice() else { return };
    let (Ok(consumer), Ok(provider), Ok(product), Ok(licence), Ok(agreement)) = (
        serde_yaml::from_str::<Domain>(consumer),
        serde_yaml::from_str::<Domain>(provider),
        serde_yaml::from_str::<DataProduct>(product),
        serde_yaml::from_str::<Licence>(licence),
        serde_yaml::from_str::<DataSharingAgreement>(agreement),
    ) else {
        return;
    };
    let Some(engine) = engine() else { return };
    let now = jiff::Timestamp::from_second(1_790_000_000).unwrap_or_default();
    let mut input = DecisionInput::new(&consumer, &provider, &product, &licence, &agreement.spec, now);
    let _ = engine.decide(&input);
    input.owner_approved = true;
    input.existing_agreement = true;
    let _ = engine.decide(&input);
});
