//! Policy-test files (YAML) through the parser and runner: a typo is an
//! error naming the line, never a panic.
//!
//! Asserts: a refused file's error names the file and a line within the text;
//! a file that parses runs (or its policies are refused with errors), and
//! running it twice gives the same results.
#![no_main]

use datamesh_policies::testfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match testfile::parse("fuzz.yaml", text) {
        Ok(tests) => {
            let shipped = datamesh_policies::shipped_sources();
            match tests.run(&shipped) {
                Ok(first) => {
                    let again = tests.run(&shipped).map(|r| format!("{r:?}"));
                    assert_eq!(
                        again.ok(),
                        Some(format!("{first:?}")),
                        "ran twice differently"
                    );
                }
                Err(e) => assert!(!e.errors.is_empty(), "refused policies without errors"),
            }
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.yaml");
            let lines = text.lines().count().max(1) as u32;
            assert!(
                (1..=lines + 1).contains(&e.line),
                "error at line {} of a {lines}-line file: {e}",
                e.line
            );
        }
    }
});
