//! Cedar policy text, as a governance board could write it, through
//! validation: any text is either refused with errors or accepted, never a panic.
#![no_main]

use datamesh_policies::{PolicyEngine, PolicySource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match PolicyEngine::with_defaults([PolicySource::central("GovernancePolicy/fuzz", text)]) {
        Ok(engine) => {
            let _ = engine.version();
        }
        Err(e) => {
            for error in &e.errors {
                let _ = error.to_record();
            }
        }
    }
    let _ = PolicyEngine::with_defaults([PolicySource::for_domain("GovernancePolicy/fuzz-scoped", "transport", text)]);
});
