//! Query strings of the audit API (`GET /api/v1/audit?...`), as any client
//! could send them: percent-encoded, repeated, unknown, empty or invalid UTF-8.
//! They go through `Filter::from_query`, the function the HTTP handler calls;
//! the module is compiled from the operator's own source file so the fuzzer
//! does not build the whole operator (Kubernetes client, SQL drivers).
//!
//! Asserts: never panics; an accepted filter has a limit within 1..=MAX_LIMIT,
//! names made only of Kubernetes name characters (no SQL LIKE wildcards) and
//! since < until; a refusal names a parameter the query really holds; and
//! re-encoding the decoded pairs parses to the same answer.
#![no_main]

#[path = "../../operator/src/audit/query.rs"]
#[allow(dead_code)]
mod query;

use libfuzzer_sys::fuzz_target;
use query::{Filter, MAX_LIMIT};

fn k8s_name_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '/'))
}

fuzz_target!(|data: &[u8]| {
    // The handler gets the query as &str (the URI is already text).
    let raw = String::from_utf8_lossy(data);
    let parsed = Filter::from_query(&raw);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match &parsed {
        Ok(f) => {
            assert!(
                (1..=MAX_LIMIT).contains(&f.limit),
                "limit {} out of bounds",
                f.limit
            );
            for v in [&f.product, &f.consumer, &f.domain, &f.agreement]
                .into_iter()
                .flatten()
            {
                assert!(k8s_name_chars(v), "accepted name {v:?}");
                assert!(v.matches('/').count() <= 1, "accepted name {v:?}");
            }
            if let (Some(s), Some(u)) = (f.since, f.until) {
                assert!(s < u, "since {s} not before until {u}");
            }
            // Every accepted filter came from known, unrepeated parameters.
            assert!(pairs.len() <= 7, "{} parameters accepted", pairs.len());
        }
        Err(e) => {
            assert!(
                pairs.iter().any(|(k, _)| *k == e.parameter),
                "error names {:?}, not a parameter of {raw:?}",
                e.parameter
            );
            assert!(e.to_string().contains(&e.parameter));
        }
    }
    // What a client library would send for the same pairs parses the same.
    let reencoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    assert_eq!(
        Filter::from_query(&reencoded),
        parsed,
        "{raw:?} vs {reencoded:?}"
    );
});
