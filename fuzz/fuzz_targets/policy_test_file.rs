//! Policy-test files (YAML) through the parser and runner: a typo is an
//! error naming the line, never a panic.
#![no_main]

use datamesh_policies::testfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(tests) = testfile::parse("fuzz.yaml", text) {
        let _ = tests.run(&datamesh_policies::shipped_sources());
    }
});
