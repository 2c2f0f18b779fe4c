//! Licence terms, checked in the same decision as the policies. Each failing
//! term is a reason of its own, named after the Licence field it comes from,
//! so a consumer sees exactly which term to change.

use crate::decision::{Reason, ReasonKind};
use datamesh_crds::LicenceSpec;
use datamesh_crds::agreement::DataSharingAgreementSpec;

/// Term ids, as they appear in reasons (`kind: licenceTerm`).
pub mod term {
    /// The agreement accepts a different licence than the product's.
    pub const NAME: &str = "name";
    /// The accepted version is not the current one.
    pub const VERSION: &str = "version";
    /// The purpose is not permitted.
    pub const PERMITTED_PURPOSES: &str = "permittedPurposes";
    /// Commercial use under a non-commercial licence.
    pub const COMMERCIAL_USE: &str = "commercialUse";
    /// Redistribution asked where the licence forbids it.
    pub const REDISTRIBUTION: &str = "redistribution";
    /// Requested duration over the maximum.
    pub const MAX_DURATION_DAYS: &str = "maxDurationDays";
    /// Consumer established outside the allowed jurisdictions.
    pub const JURISDICTIONS: &str = "jurisdictions";
    /// The licence needs an agreement signed off by the provider.
    pub const REQUIRES_AGREEMENT: &str = "requiresAgreement";
}

/// What the licence says about one request.
#[derive(Debug, Default)]
pub(crate) struct TermCheck {
    /// Terms the request breaks: each denies.
    pub failed: Vec<Reason>,
    /// Set when the licence needs the provider's sign-off that was not given yet.
    pub needs_approval: Option<Reason>,
}

/// Checks `request` against the licence `name` with `licence` terms.
pub(crate) fn check_terms(
    name: &str,
    licence: &LicenceSpec,
    request: &DataSharingAgreementSpec,
    consumer_jurisdiction: &str,
    duration_days: i64,
    approved: bool,
) -> TermCheck {
    let mut check = TermCheck::default();
    let mut fail = |id: &str, message: String| {
        check.failed.push(Reason {
            kind: ReasonKind::LicenceTerm,
            id: id.to_string(),
            message,
        });
    };

    if request.licence.name != name {
        fail(
            term::NAME,
            format!(
                "the agreement accepts licence `{}`, but the product is shared under `{name}`",
                request.licence.name
            ),
        );
    } else if request.licence.version != licence.version {
        fail(
            term::VERSION,
            format!(
                "the agreement accepts version {} of `{name}`, but the current version is {}; the consumer must accept it again",
                request.licence.version, licence.version
            ),
        );
    }
    let purpose = request.purpose.as_str();
    if !licence.permits_purpose(purpose) {
        let permitted: Vec<&str> = licence
            .permitted_purposes
            .iter()
            .map(|p| p.as_str())
            .collect();
        fail(
            term::PERMITTED_PURPOSES,
            format!(
                "purpose `{purpose}` is not permitted by `{name}` (permitted: {})",
                permitted.join(", ")
            ),
        );
    }
    if request.commercial_use && !licence.commercial_use {
        fail(
            term::COMMERCIAL_USE,
            format!("commercial use is asked for, but `{name}` is non-commercial"),
        );
    }
    if request.redistribution && !licence.redistribution {
        fail(
            term::REDISTRIBUTION,
            format!("redistribution is asked for, but `{name}` forbids passing the data on"),
        );
    }
    if let Some(max) = licence.max_duration_days
        && duration_days > i64::from(max)
    {
        fail(
            term::MAX_DURATION_DAYS,
            format!(
                "{duration_days} days are asked for, but `{name}` allows at most {max} days per agreement"
            ),
        );
    }
    if !jurisdiction_allowed(licence, consumer_jurisdiction) {
        let allowed: Vec<&str> = licence.jurisdictions.iter().map(|j| j.0.as_str()).collect();
        fail(
            term::JURISDICTIONS,
            format!(
                "the consumer is established in {consumer_jurisdiction}, but `{name}` allows only {}",
                allowed.join(", ")
            ),
        );
    }
    if licence.requires_agreement && !approved {
        check.needs_approval = Some(Reason {
            kind: ReasonKind::LicenceTerm,
            id: term::REQUIRES_AGREEMENT.to_string(),
            message: format!("`{name}` requires an agreement signed off by the provider"),
        });
    }
    check
}

/// An empty list allows any; `GB` also allows `GB-SCT` (the country covers its parts).
fn jurisdiction_allowed(licence: &LicenceSpec, consumer: &str) -> bool {
    licence.jurisdictions.is_empty()
        || licence
            .jurisdictions
            .iter()
            .any(|j| j.0 == consumer || j.0 == country(consumer))
}

/// The ISO 3166 country part of a jurisdiction code: `GB` for `GB-SCT`.
pub(crate) fn country(jurisdiction: &str) -> &str {
    jurisdiction.split('-').next().unwrap_or(jurisdiction)
}
