//! Cedar policy text, as a governance board could write it, through
//! validation: any text is either refused with errors or accepted, never a panic.
//!
//! Asserts: a refused set carries at least one error, and each error renders
//! (the record a GovernancePolicy's status shows) with a line inside the text;
//! text that validates alone also loads beside the shipped policies and scoped
//! to one domain, unless its ids clash with the shipped ones.
//!
//! The text is first validated on its own (schema + this text); building the
//! engine with the shipped policies parses them again each time and made every
//! run cost ~0.3 s, so that happens only for text that validated.
#![no_main]

use datamesh_policies::{PolicyEngine, PolicyErrorKind, PolicySetError, PolicySource};
use libfuzzer_sys::fuzz_target;

fn check_refusal(e: &PolicySetError, text: &str) {
    assert!(!e.errors.is_empty(), "a refused policy set without errors");
    let lines = text.lines().count().max(1) as u32;
    for error in &e.errors {
        let _ = error.to_record();
        let _ = error.to_string();
        if error.source_name == "GovernancePolicy/fuzz" {
            assert!(
                error.line <= lines + 1,
                "error line {} past the text ({lines} lines)",
                error.line
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PolicyEngine::new([PolicySource::central("GovernancePolicy/fuzz", text)]) {
        Ok(alone) => {
            let _ = alone.version();
            let _ = alone.policies();
            match PolicyEngine::with_defaults([PolicySource::central(
                "GovernancePolicy/fuzz",
                text,
            )]) {
                Ok(engine) => {
                    let _ = engine.version();
                }
                Err(e) => {
                    check_refusal(&e, text);
                    // Alone it validated, so only a clash with a shipped id can refuse it.
                    assert!(
                        e.errors
                            .iter()
                            .all(|err| err.kind == PolicyErrorKind::DuplicateId),
                        "valid alone, refused beside the shipped policies: {e:?}"
                    );
                }
            }
            let scoped =
                PolicySource::for_domain("GovernancePolicy/fuzz-scoped", "transport", text);
            let _ = PolicyEngine::with_defaults([scoped]);
        }
        Err(e) => check_refusal(&e, text),
    }
});
