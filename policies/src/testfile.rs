//! Policy tests a governance board can write: a YAML file with a few domains,
//! licences and products in a compact form, extra policies if needed, and
//! cases that each make a request and say which outcome and reason ids to
//! expect. Parsing is strict (unknown keys are errors) so a typo is reported
//! at its line and column instead of silently testing something else.
//!
//! ```yaml
//! domains:
//!   transport: {sector: public, jurisdiction: GB}
//! licences:
//!   ogl: {version: "3.0", permittedPurposes: [any], commercialUse: true}
//! products:
//!   transport/bus-punctuality:
//!     domain: transport
//!     classification: open
//!     licence: ogl
//!     fields: {route: public, delay_minutes: public}
//! cases:
//!   - name: any domain reads open data
//!     request: {consumer: transport, product: transport/bus-punctuality, purpose: research}
//!     expect: {outcome: Allow, reasons: [open-read, owner-uses-own]}
//! ```

use crate::decision::{AccessAction, Decision, DecisionInput, ManageAction, Outcome};
use crate::engine::{PolicyEngine, PolicySource};
use crate::error::PolicySetError;
use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::{NamespaceName, Token};
use datamesh_crds::licence::JurisdictionCode;
use datamesh_crds::product::{
    FieldClassification, Lifecycle, OutputPort, PortType, SchemaField, StreamPort, UpdateFrequency,
};
use datamesh_crds::{
    Classification, Contact, DataProduct, DataProductSpec, Domain, DomainSpec, Licence,
    LicenceSpec, LifecycleStage, ObjectRef, Sector,
};
use jiff::{SignedDuration, Timestamp};
use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default decision time of a case, so tests do not depend on the clock.
pub const DEFAULT_NOW: &str = "2025-06-01T00:00:00Z";

/// A test file that could not be read as one, with where and why.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
#[non_exhaustive]
pub struct TestFileError {
    /// The file's name as given.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl TestFileError {
    fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(text.len());
        let (line, column) = crate::error::line_column(text, offset);
        let len = text
            .get(offset..)
            .and_then(|rest| rest.find('\n'))
            .unwrap_or(0);
        TestFileError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            src: NamedSource::new(file, text.to_string()),
            span: SourceSpan::new(offset.into(), len),
        }
    }

    /// Points at the first place `needle` appears at or after `from`, else at `from`.
    fn near(file: &str, text: &str, from: usize, needle: &str, message: impl Into<String>) -> Self {
        let offset = text
            .get(from..)
            .and_then(|rest| rest.find(needle))
            .map_or(from, |i| from + i);
        Self::at(file, text, offset, message)
    }
}

/// A policy test file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestFile {
    /// What the file tests.
    #[serde(default)]
    pub description: Option<String>,
    /// Domains by name.
    #[serde(default)]
    pub domains: BTreeMap<String, TestDomain>,
    /// Licences by name.
    #[serde(default)]
    pub licences: BTreeMap<String, TestLicence>,
    /// Products by `namespace/name`.
    #[serde(default)]
    pub products: BTreeMap<String, TestProduct>,
    /// Extra policies (e.g. a domain's own), added to the policies under test.
    #[serde(default)]
    pub policies: Vec<TestPolicy>,
    /// The cases.
    pub cases: Vec<TestCase>,
}

/// A domain in compact form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestDomain {
    /// public, private or third.
    pub sector: Sector,
    /// e.g. GB or GB-SCT.
    pub jurisdiction: String,
    /// e.g. dpia-process.
    #[serde(default)]
    pub accreditations: Vec<String>,
}

/// A licence in compact form; fields as in the Licence kind.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestLicence {
    /// Current version.
    pub version: String,
    /// Permitted purposes (`any` for all).
    pub permitted_purposes: Vec<String>,
    /// Commercial use allowed.
    #[serde(default)]
    pub commercial_use: bool,
    /// Redistribution allowed.
    #[serde(default)]
    pub redistribution: bool,
    /// Attribution text.
    #[serde(default)]
    pub attribution: Option<String>,
    /// Longest grant in days.
    #[serde(default)]
    pub max_duration_days: Option<u32>,
    /// Days to delete the data after a grant.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Allowed consumer jurisdictions (empty: any).
    #[serde(default)]
    pub jurisdictions: Vec<String>,
    /// Needs the provider's sign-off.
    #[serde(default)]
    pub requires_agreement: bool,
}

/// A product in compact form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestProduct {
    /// Owning domain.
    pub domain: String,
    /// open, internal, restricted or personal.
    pub classification: Classification,
    /// Holds personal data.
    #[serde(default)]
    pub personal_data: bool,
    /// Licence name.
    pub licence: String,
    /// Lifecycle stage (default published).
    #[serde(default = "published")]
    pub lifecycle: LifecycleStage,
    /// Sunset date (RFC 3339).
    #[serde(default)]
    pub sunset_date: Option<String>,
    /// Residency region.
    #[serde(default)]
    pub region: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Field name → classification (public, personal, sensitive, identifier).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldClassification>,
}

fn published() -> LifecycleStage {
    LifecycleStage::Published
}

/// Extra Cedar policies in a test file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestPolicy {
    /// Source name shown in errors.
    pub name: String,
    /// Scope to this domain's products.
    #[serde(default)]
    pub domain: Option<String>,
    /// Cedar text.
    pub text: String,
}

/// One case: a request and what to expect.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestCase {
    /// What the case shows.
    pub name: String,
    /// The request.
    pub request: TestRequest,
    /// The expected decision.
    pub expect: Expectation,
}

/// A request in compact form; defaults make the common case short.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestRequest {
    /// Consumer domain.
    pub consumer: String,
    /// Product `namespace/name`.
    pub product: String,
    /// Purpose.
    pub purpose: String,
    /// Fields asked for; none means every non-identifier field.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Days asked for (default 30), from `now`.
    #[serde(default = "thirty")]
    pub days: u32,
    /// Commercial use intended.
    #[serde(default)]
    pub commercial_use: bool,
    /// Redistribution intended.
    #[serde(default)]
    pub redistribution: bool,
    /// Licence accepted (default the product's).
    #[serde(default)]
    pub licence: Option<String>,
    /// Licence version accepted (default the current one).
    #[serde(default)]
    pub licence_version: Option<String>,
    /// Consumer's DPIA reference.
    #[serde(default)]
    pub dpia_reference: Option<String>,
    /// The provider already approved.
    #[serde(default)]
    pub approved: bool,
    /// Re-deciding an agreement that was granted before.
    #[serde(default)]
    pub existing_agreement: bool,
    /// Read (default), Subscribe, or the management actions Approve and
    /// Publish (decided for the consumer as the acting domain).
    #[serde(default)]
    pub action: TestAction,
    /// Decision time (default 2025-06-01T00:00:00Z).
    #[serde(default)]
    pub now: Option<String>,
}

/// The action of a test request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum TestAction {
    /// Read the data.
    #[default]
    Read,
    /// Subscribe to a stream.
    Subscribe,
    /// Answer a request for the product.
    Approve,
    /// Publish the product.
    Publish,
}

fn thirty() -> u32 {
    30
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expectation {
    /// Allow, NeedsApproval or Deny.
    pub outcome: Outcome,
    /// Exactly these reason ids (order does not matter).
    pub reasons: Vec<String>,
    /// When given, exactly these fields are granted (order does not matter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_fields: Option<Vec<String>>,
    /// When given, access ends at this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<Timestamp>,
}

/// How one case went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// 1-based line of the case in its file.
    pub line: u32,
    /// Whether outcome and reason ids matched.
    pub passed: bool,
    /// What was expected (reasons sorted).
    pub expected: Expectation,
    /// What was decided.
    pub actual: Decision,
}

/// A parsed test file with its objects built, ready to run.
#[derive(Debug, Clone)]
pub struct LoadedTests {
    file: String,
    text: String,
    spec: TestFile,
    domains: BTreeMap<String, Domain>,
    licences: BTreeMap<String, Licence>,
    products: BTreeMap<String, DataProduct>,
}

/// Parses `text` (the contents of `file`) and checks every reference in it.
// A test file is parsed once; a large error (it carries the text) costs nothing.
#[allow(clippy::result_large_err)]
pub fn parse(file: &str, text: &str) -> Result<LoadedTests, TestFileError> {
    let spec: TestFile = serde_yaml::from_str(text).map_err(|e| {
        let offset = e.location().map_or(0, |l| l.index());
        TestFileError::at(file, text, offset, e.to_string())
    })?;
    let err =
        |from: usize, needle: &str, msg: String| TestFileError::near(file, text, from, needle, msg);

    let domains: BTreeMap<String, Domain> = spec
        .domains
        .iter()
        .map(|(name, d)| (name.clone(), domain(name, d)))
        .collect();
    let licences: BTreeMap<String, Licence> = spec
        .licences
        .iter()
        .map(|(name, l)| (name.clone(), licence(name, l)))
        .collect();
    let mut products = BTreeMap::new();
    for (key, p) in &spec.products {
        let Some((ns, name)) = key.split_once('/') else {
            return Err(err(
                0,
                key,
                format!("product `{key}` must be named `namespace/name`"),
            ));
        };
        if !domains.contains_key(&p.domain) {
            return Err(err(
                0,
                &format!("domain: {}", p.domain),
                format!("product `{key}` names unknown domain `{}`", p.domain),
            ));
        }
        if !licences.contains_key(&p.licence) {
            return Err(err(
                0,
                &format!("licence: {}", p.licence),
                format!("product `{key}` names unknown licence `{}`", p.licence),
            ));
        }
        products.insert(key.clone(), product(ns, name, p));
    }
    let cases_at = text.find("cases:").unwrap_or(0);
    for case in &spec.cases {
        let at = text
            .get(cases_at..)
            .and_then(|r| r.find(&case.name))
            .map_or(cases_at, |i| cases_at + i);
        let r = &case.request;
        if !domains.contains_key(&r.consumer) {
            return Err(err(
                at,
                &r.consumer,
                format!(
                    "case `{}`: unknown consumer domain `{}`",
                    case.name, r.consumer
                ),
            ));
        }
        if !products.contains_key(&r.product) {
            return Err(err(
                at,
                &r.product,
                format!("case `{}`: unknown product `{}`", case.name, r.product),
            ));
        }
        if let Some(now) = &r.now
            && now.parse::<Timestamp>().is_err()
        {
            return Err(err(
                at,
                now,
                format!(
                    "case `{}`: `now` is not an RFC 3339 time: `{now}`",
                    case.name
                ),
            ));
        }
    }
    Ok(LoadedTests {
        file: file.to_string(),
        text: text.to_string(),
        spec,
        domains,
        licences,
        products,
    })
}

impl LoadedTests {
    /// The file's name as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The parsed file.
    pub fn spec(&self) -> &TestFile {
        &self.spec
    }

    /// Runs every case against `base` plus the file's own policies.
    pub fn run(&self, base: &[PolicySource]) -> Result<Vec<CaseResult>, PolicySetError> {
        let mut sources = base.to_vec();
        sources.extend(self.spec.policies.iter().map(|p| PolicySource {
            name: format!("{}#{}", self.file, p.name),
            domain: p.domain.clone(),
            text: p.text.clone(),
        }));
        let engine = PolicyEngine::new(sources)?;
        Ok(self
            .spec
            .cases
            .iter()
            .filter_map(|case| self.run_case(&engine, case))
            .collect())
    }

    fn run_case(&self, engine: &PolicyEngine, case: &TestCase) -> Option<CaseResult> {
        let r = &case.request;
        let consumer = self.domains.get(&r.consumer)?;
        let product = self.products.get(&r.product)?;
        let provider = self.domains.get(&product.spec.domain)?;
        let licence = self.licences.get(&product.spec.licence)?;
        let now = r
            .now
            .as_deref()
            .unwrap_or(DEFAULT_NOW)
            .parse::<Timestamp>()
            .ok()?;
        let end = now
            .saturating_add(SignedDuration::from_hours(24 * i64::from(r.days)))
            .ok()?;
        let (ns, name) = r.product.split_once('/')?;
        let request = DataSharingAgreementSpec {
            consumer: r.consumer.clone(),
            product: ObjectRef {
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            purpose: Token(r.purpose.clone()),
            justification: None,
            fields: r.fields.iter().map(|f| FieldName(f.clone())).collect(),
            start: None,
            end: end.to_string(),
            licence: AcceptedLicence {
                name: r
                    .licence
                    .clone()
                    .unwrap_or_else(|| product.spec.licence.clone()),
                version: r
                    .licence_version
                    .clone()
                    .unwrap_or_else(|| licence.spec.version.clone()),
            },
            commercial_use: r.commercial_use,
            redistribution: r.redistribution,
            dpia_reference: r.dpia_reference.clone(),
        };
        let action = match r.action {
            TestAction::Read => AccessAction::Read,
            TestAction::Subscribe => AccessAction::Subscribe,
            TestAction::Approve => {
                return Some(self.finish(
                    case,
                    engine.decide_management(
                        consumer,
                        provider,
                        product,
                        ManageAction::Approve,
                        now,
                    ),
                ));
            }
            TestAction::Publish => {
                return Some(self.finish(
                    case,
                    engine.decide_management(
                        consumer,
                        provider,
                        product,
                        ManageAction::Publish,
                        now,
                    ),
                ));
            }
        };
        let input = DecisionInput {
            action,
            owner_approved: r.approved,
            existing_agreement: r.existing_agreement,
            ..DecisionInput::new(consumer, provider, product, licence, &request, now)
        };
        Some(self.finish(case, engine.decide(&input)))
    }

    fn finish(&self, case: &TestCase, actual: Decision) -> CaseResult {
        let mut expected = case.expect.clone();
        expected.reasons.sort();
        if let Some(fields) = expected.granted_fields.as_mut() {
            fields.sort();
        }
        let mut granted = actual.granted_fields.clone();
        granted.sort();
        let passed = actual.outcome == expected.outcome
            && actual.reason_ids() == expected.reasons
            && expected
                .granted_fields
                .as_ref()
                .is_none_or(|f| *f == granted)
            && expected
                .active_until
                .is_none_or(|t| actual.active_until == Some(t));
        let at = self
            .text
            .find(&format!("name: {}", case.name))
            .or_else(|| self.text.find(&case.name))
            .unwrap_or(0);
        let (line, _) = crate::error::line_column(&self.text, at);
        CaseResult {
            name: case.name.clone(),
            line,
            passed,
            expected,
            actual,
        }
    }
}

fn contact(name: &str) -> Contact {
    Contact {
        name: name.to_string(),
        email: format!("{name}@example.invalid"),
    }
}

/// A Domain from its compact form (contacts and namespace filled in).
pub fn domain(name: &str, d: &TestDomain) -> Domain {
    let mut domain = Domain::new(
        name,
        DomainSpec {
            display_name: name.to_string(),
            description: None,
            owners: vec![contact(name)],
            data_steward: contact(name),
            namespaces: vec![NamespaceName(name.to_string())],
            team_group: None,
            sector: d.sector,
            jurisdiction: d.jurisdiction.clone(),
            accreditations: d.accreditations.iter().map(|a| Token(a.clone())).collect(),
        },
    );
    domain.metadata.name = Some(name.to_string());
    domain
}

/// A Licence from its compact form.
pub fn licence(name: &str, l: &TestLicence) -> Licence {
    Licence::new(
        name,
        LicenceSpec {
            title: name.to_string(),
            version: l.version.clone(),
            url: None,
            permitted_purposes: l
                .permitted_purposes
                .iter()
                .map(|p| Token(p.clone()))
                .collect(),
            commercial_use: l.commercial_use,
            redistribution: l.redistribution,
            derivatives: true,
            attribution: l.attribution.clone(),
            max_duration_days: l.max_duration_days,
            retention_days: l.retention_days,
            charge: None,
            jurisdictions: l
                .jurisdictions
                .iter()
                .map(|j| JurisdictionCode(j.clone()))
                .collect(),
            requires_agreement: l.requires_agreement,
        },
    )
}

/// A DataProduct from its compact form (catalogue details filled in).
pub fn product(namespace: &str, name: &str, p: &TestProduct) -> DataProduct {
    let mut product = DataProduct::new(
        name,
        DataProductSpec {
            domain: p.domain.clone(),
            title: name.to_string(),
            description: name.to_string(),
            owner: contact(&p.domain),
            classification: p.classification,
            personal_data: p.personal_data,
            lawful_basis: None,
            dpia_reference: None,
            format: "table".to_string(),
            temporal_coverage: None,
            update_frequency: UpdateFrequency::Daily,
            lifecycle: Lifecycle {
                stage: p.lifecycle,
                sunset_date: p.sunset_date.clone(),
            },
            output_ports: vec![OutputPort {
                name: "main".to_string(),
                type_: PortType::Stream,
                postgres: None,
                object_store: None,
                api: None,
                stream: Some(StreamPort {
                    topic: name.to_string(),
                }),
            }],
            schema: p
                .fields
                .iter()
                .map(|(f, c)| SchemaField {
                    name: f.clone(),
                    type_: "text".to_string(),
                    description: None,
                    classification: *c,
                })
                .collect(),
            quality: None,
            provenance: None,
            standards: Vec::new(),
            licence: p.licence.clone(),
            sla: None,
            region: p.region.clone(),
            tags: p.tags.iter().map(|t| Token(t.clone())).collect(),
            themes: Vec::new(),
        },
    );
    product.metadata.namespace = Some(namespace.to_string());
    product
}
