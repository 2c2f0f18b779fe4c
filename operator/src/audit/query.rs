//! Filters of the read API, parsed from query parameters. A bad parameter is
//! refused with a message naming it, so a typo never silently widens a query.
//!
//! Pure (no I/O, no crate-internal imports): the HTTP handler calls
//! [`Filter::from_query`] on the raw query string, and `fuzz/fuzz_targets/audit_query.rs`
//! compiles this very file to fuzz it.

use jiff::Timestamp;

/// Default number of records returned.
pub const DEFAULT_LIMIT: u32 = 1000;
/// Most records one query returns.
pub const MAX_LIMIT: u32 = 10_000;

/// Which records to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Product `namespace/name`, or a name in any namespace.
    pub product: Option<String>,
    /// Consumer domain.
    pub consumer: Option<String>,
    /// Consumer or provider domain.
    pub domain: Option<String>,
    /// Agreement `namespace/name` or uid.
    pub agreement: Option<String>,
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Recorded before.
    pub until: Option<Timestamp>,
    /// At most this many records.
    pub limit: u32,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            product: None,
            consumer: None,
            domain: None,
            agreement: None,
            since: None,
            until: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// A query parameter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {parameter}: {message}")]
pub struct BadParameter {
    /// The parameter's name.
    pub parameter: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(parameter: &str, message: impl Into<String>) -> BadParameter {
    BadParameter {
        parameter: parameter.into(),
        message: message.into(),
    }
}

/// A Kubernetes name (DNS label or subdomain); keeps SQL LIKE wildcards out.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

fn name_or_ref(parameter: &str, value: &str) -> Result<String, BadParameter> {
    let ok = match value.split_once('/') {
        Some((ns, name)) => is_name(ns) && is_name(name),
        None => is_name(value),
    };
    if ok {
        Ok(value.to_string())
    } else {
        Err(bad(
            parameter,
            format!("{value:?} is not a name or namespace/name"),
        ))
    }
}

fn time(parameter: &str, value: &str) -> Result<Timestamp, BadParameter> {
    value.parse().map_err(|e| {
        bad(
            parameter,
            format!("{value:?} is not an RFC 3339 time such as 2026-01-31T12:00:00Z: {e}"),
        )
    })
}

impl Filter {
    /// Parses a raw URL query string (`product=transport%2Fbus&limit=5`) as the
    /// HTTP API receives it: percent-decoded, `+` as space, invalid UTF-8 replaced.
    pub fn from_query(query: &str) -> Result<Self, BadParameter> {
        let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
        Self::from_params(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }

    /// Parses query parameters; unknown or repeated parameters are refused.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, BadParameter> {
        let mut f = Filter::default();
        let mut seen = std::collections::BTreeSet::new();
        for (key, value) in params {
            if !seen.insert(key) {
                return Err(bad(key, "given more than once"));
            }
            match key {
                "product" => f.product = Some(name_or_ref(key, value)?),
                "consumer" => f.consumer = Some(name_or_ref(key, value)?),
                "domain" => f.domain = Some(name_or_ref(key, value)?),
                "agreement" => f.agreement = Some(name_or_ref(key, value)?),
                "since" => f.since = Some(time(key, value)?),
                "until" => f.until = Some(time(key, value)?),
                "limit" => {
                    f.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad(
                                key,
                                format!("{value:?} is not a number from 1 to {MAX_LIMIT}"),
                            )
                        })?
                }
                other => {
                    return Err(bad(
                        other,
                        "unknown; use product, consumer, domain, agreement, since, until or limit",
                    ));
                }
            }
        }
        if let (Some(s), Some(u)) = (f.since, f.until)
            && s >= u
        {
            return Err(bad("until", "must be after since"));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_filter() {
        let f = Filter::from_params([
            ("product", "transport/bus"),
            ("consumer", "planning"),
            ("since", "2026-01-01T00:00:00Z"),
            ("limit", "5"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.product.as_deref(), Some("transport/bus"));
        assert_eq!(f.consumer.as_deref(), Some("planning"));
        assert_eq!(f.limit, 5);
        assert!(f.since.is_some());
    }

    #[test]
    fn names_the_bad_parameter() {
        let cases = [
            ("since", "yesterday"),
            ("limit", "0"),
            ("limit", "many"),
            ("product", "bus%"),
            ("consumer", "Planning"),
            ("colour", "red"),
        ];
        for (k, v) in cases {
            let e = Filter::from_params([(k, v)]).err();
            assert_eq!(e.map(|e| e.parameter), Some(k.to_string()), "{k}={v}");
        }
        let e = Filter::from_params([
            ("since", "2026-02-01T00:00:00Z"),
            ("until", "2026-01-01T00:00:00Z"),
        ])
        .err();
        assert_eq!(e.map(|e| e.parameter), Some("until".to_string()));
    }

    #[test]
    fn decodes_the_raw_query_string() {
        let f =
            Filter::from_query("product=transport%2Fbus&since=2026-01-01T00%3A00%3A00Z&limit=7")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.product.as_deref(), Some("transport/bus"));
        assert_eq!(f.limit, 7);
        assert!(f.since.is_some());
        assert_eq!(Filter::from_query(""), Ok(Filter::default()));
    }

    #[test]
    fn raw_query_refusals_name_the_parameter() {
        let cases = [
            ("limit=1&limit=2", "limit"),
            ("limit", "limit"),
            ("limit=10001", "limit"),
            ("=5", ""),
            ("product=bus%25", "product"),
            ("product=bus_%2A", "product"),
            ("consumer=a+b", "consumer"),
            ("%FF=1", "\u{fffd}"),
            ("li%6Dit=0", "limit"),
            ("domain=%2F", "domain"),
        ];
        for (query, parameter) in cases {
            let e = Filter::from_query(query).err();
            assert_eq!(
                e.map(|e| e.parameter),
                Some(parameter.to_string()),
                "{query}"
            );
        }
    }
}
