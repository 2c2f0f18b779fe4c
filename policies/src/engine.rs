//! The policy set in force: shipped defaults plus GovernancePolicy sources,
//! validated as a whole and indexed by domain.
//!
//! The stock Cedar authorizer evaluates every policy it is given, so a set
//! with 10,000 domain policies costs 10,000 evaluations per request. Since a
//! domain's policies only ever apply to that domain's products, each domain
//! gets its own Cedar set (central + its own), and a decision only sees the
//! set of the product's domain: its cost does not grow with other domains.

use crate::error::{PolicyError, PolicyErrorKind, PolicySetError};
use crate::index::{Indexed, ScopeIndex};
use cedar_policy::{
    Effect, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Schema, ValidationMode,
    Validator,
};
use datamesh_crds::GovernancePolicy;
use miette::Diagnostic;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

/// The Cedar schema every policy is validated against.
pub const SCHEMA: &str = include_str!("../cedar/datamesh.cedarschema");

/// The shipped central policies, by file name.
pub const SHIPPED_POLICIES: &[(&str, &str)] = &[
    (
        "classification.cedar",
        include_str!("../cedar/classification.cedar"),
    ),
    ("personal.cedar", include_str!("../cedar/personal.cedar")),
    ("lifecycle.cedar", include_str!("../cedar/lifecycle.cedar")),
    ("residency.cedar", include_str!("../cedar/residency.cedar")),
    ("ownership.cedar", include_str!("../cedar/ownership.cedar")),
];

/// Reason id used when no policy permits a request.
pub const DEFAULT_DENY_ID: &str = "default-deny";

/// Named Cedar text: a shipped file, a file on disk, or a GovernancePolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// Shown in errors and reasons, e.g. `shipped/personal.cedar` or `GovernancePolicy/transport-extra`.
    pub name: String,
    /// When set, the policies apply only to this domain's products.
    pub domain: Option<String>,
    /// Cedar policies, each with `@id` and `@reason`.
    pub text: String,
}

impl PolicySource {
    /// Central policies that apply to every decision.
    pub fn central(name: impl Into<String>, text: impl Into<String>) -> Self {
        PolicySource {
            name: name.into(),
            domain: None,
            text: text.into(),
        }
    }

    /// Policies that apply only to `domain`'s products.
    pub fn for_domain(
        name: impl Into<String>,
        domain: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        PolicySource {
            name: name.into(),
            domain: Some(domain.into()),
            text: text.into(),
        }
    }

    /// The source for a GovernancePolicy object, named `GovernancePolicy/<name>`.
    pub fn from_governance_policy(policy: &GovernancePolicy) -> Self {
        let name = policy.metadata.name.as_deref().unwrap_or("<unnamed>");
        PolicySource {
            name: format!("GovernancePolicy/{name}"),
            domain: policy.spec.domain.clone(),
            text: policy.spec.policies.clone(),
        }
    }
}

/// The shipped default policies, named `shipped/<file>`.
pub fn shipped_sources() -> Vec<PolicySource> {
    SHIPPED_POLICIES
        .iter()
        .map(|(file, text)| PolicySource::central(format!("shipped/{file}"), *text))
        .collect()
}

/// Whether a policy lets requests in or keeps them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyEffect {
    /// `permit`
    Permit,
    /// `forbid`
    Forbid,
}

/// What is known about one policy of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    /// The `@id`.
    pub id: String,
    /// The `@reason`, quoted by decisions.
    pub reason: String,
    /// Permit or forbid.
    pub effect: PolicyEffect,
    /// The source it came from.
    pub source: String,
    /// The domain it is scoped to, if any.
    pub domain: Option<String>,
    /// 1-based line of the policy in its source.
    pub line: u32,
}

/// Action names, parsed once per engine (entity types: `prepared::CORE_NAMES`).
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub actions: [EntityUid; 4],
}

/// A validated, indexed policy set; cheap to clone and safe to share between threads.
///
/// Build a new one on every change; if building fails, keep using the old one.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
    /// Decide with Cedar's stock authorizer over the domain's whole set
    /// instead of the scope index: the reference the index is tested and
    /// benchmarked against.
    stock: bool,
}

#[derive(Debug)]
struct Inner {
    schema: Schema,
    names: Names,
    central: PolicySet,
    by_domain: HashMap<String, PolicySet>,
    /// The same sets, indexed by action and principal for `decide()`.
    central_index: ScopeIndex,
    domain_index: HashMap<String, ScopeIndex>,
    info: HashMap<String, PolicyInfo>,
    version: String,
    central_version: String,
    domain_versions: HashMap<String, String>,
}

impl PolicyEngine {
    /// The shipped defaults followed by `extra` (GovernancePolicy objects, files).
    pub fn with_defaults(
        extra: impl IntoIterator<Item = PolicySource>,
    ) -> Result<Self, PolicySetError> {
        let mut sources = shipped_sources();
        sources.extend(extra);
        Self::new(sources)
    }

    /// Exactly these sources (no shipped defaults). Refuses the whole set on any error.
    pub fn new(sources: impl IntoIterator<Item = PolicySource>) -> Result<Self, PolicySetError> {
        let sources: Vec<PolicySource> = sources.into_iter().collect();
        let schema = schema().map_err(|e| PolicySetError { errors: vec![e] })?;
        let names = names().map_err(|e| PolicySetError { errors: vec![e] })?;

        let mut errors = Vec::new();
        let mut info: HashMap<String, PolicyInfo> = HashMap::new();
        // Policies per scope; None = central. Keeps source order.
        let mut scoped: Vec<(Option<String>, Policy)> = Vec::new();
        // Where each policy starts, to point validation errors at the right text.
        let mut origin: HashMap<String, usize> = HashMap::new();

        for (index, source) in sources.iter().enumerate() {
            let set = match PolicySet::from_str(&source.text) {
                Ok(set) => set,
                Err(parse) => {
                    for err in parse.iter() {
                        let (offset, len) = first_label(err);
                        errors.push(PolicyError::new(
                            PolicyErrorKind::Parse,
                            &source.name,
                            &source.text,
                            offset,
                            len,
                            None,
                            err.to_string(),
                        ));
                    }
                    continue;
                }
            };
            if let Some(template) = set.templates().next() {
                let (offset, len) = template_span(template);
                errors.push(
                    PolicyError::new(
                        PolicyErrorKind::Template,
                        &source.name,
                        &source.text,
                        offset,
                        len,
                        template.annotation("id").map(str::to_string),
                        "policy templates (?principal, ?resource) are not supported",
                    )
                    .with_help("write a static policy that names its scope, or use a when clause"),
                );
            }
            // Cedar's own ids (policy0, policy1, ...) follow source order.
            let mut policies: Vec<&Policy> = set.policies().collect();
            policies.sort_by_key(|p| policy_span(p).0);
            for policy in policies {
                let (offset, len) = policy_span(policy);
                let err = |kind, id: Option<String>, msg: String| {
                    PolicyError::new(kind, &source.name, &source.text, offset, len, id, msg)
                };
                let Some(id) = policy.annotation("id").filter(|s| !s.trim().is_empty()) else {
                    errors.push(
                        err(
                            PolicyErrorKind::MissingId,
                            None,
                            "policy has no @id annotation".into(),
                        )
                        .with_help("add @id(\"a-unique-name\") before the policy"),
                    );
                    continue;
                };
                let Some(reason) = policy.annotation("reason").filter(|s| !s.trim().is_empty())
                else {
                    errors.push(
                        err(
                            PolicyErrorKind::MissingReason,
                            Some(id.to_string()),
                            format!("policy `{id}` has no @reason annotation"),
                        )
                        .with_help("add @reason(\"one line that a decision can quote\")"),
                    );
                    continue;
                };
                if let Some(first) = info.get(id) {
                    errors.push(
                        err(
                            PolicyErrorKind::DuplicateId,
                            Some(id.to_string()),
                            format!(
                                "policy id `{id}` is used in {} (line {}) and again in {}",
                                first.source, first.line, source.name
                            ),
                        )
                        .with_help("give every policy a unique @id"),
                    );
                    continue;
                }
                let (line, _) = crate::error::line_column(&source.text, offset);
                info.insert(
                    id.to_string(),
                    PolicyInfo {
                        id: id.to_string(),
                        reason: reason.to_string(),
                        effect: match policy.effect() {
                            Effect::Permit => PolicyEffect::Permit,
                            Effect::Forbid => PolicyEffect::Forbid,
                        },
                        source: source.name.clone(),
                        domain: source.domain.clone(),
                        line,
                    },
                );
                origin.insert(id.to_string(), index);
                scoped.push((source.domain.clone(), policy.new_id(PolicyId::new(id))));
            }
        }

        // Validate everything together; ids are unique by now.
        let mut all = PolicySet::new();
        for (_, policy) in &scoped {
            // Ids were checked above, so adding cannot clash.
            if all.add(policy.clone()).is_err() {
                continue;
            }
        }
        let validation = Validator::new(schema.clone()).validate(&all, ValidationMode::Strict);
        for err in validation.validation_errors() {
            let id = err.policy_id().to_string();
            let Some(source) = origin.get(&id).and_then(|i| sources.get(*i)) else {
                continue;
            };
            let (offset, len) = first_label(err);
            errors.push(PolicyError::new(
                PolicyErrorKind::Validation,
                &source.name,
                &source.text,
                offset,
                len,
                Some(id.clone()),
                err.to_string(),
            ));
            if let Some(last) = errors.last_mut() {
                last.help = err.help().map(|h| h.to_string());
            }
        }

        if !errors.is_empty() {
            errors.sort_by(|a, b| {
                (&a.source_name, a.line, a.column).cmp(&(&b.source_name, b.line, b.column))
            });
            return Err(PolicySetError { errors });
        }

        let mut central = PolicySet::new();
        let mut domain_only: BTreeMap<String, Vec<Policy>> = BTreeMap::new();
        for (domain, policy) in scoped {
            match domain {
                None => {
                    let _ = central.add(policy);
                }
                Some(d) => domain_only.entry(d).or_default().push(policy),
            }
        }
        let mut by_domain = HashMap::with_capacity(domain_only.len());
        for (domain, policies) in domain_only {
            let mut set = central.clone();
            for policy in policies {
                let _ = set.add(policy);
            }
            by_domain.insert(domain, set);
        }

        let central_version = hash_sources(sources.iter().filter(|s| s.domain.is_none()));
        let mut domain_versions = HashMap::new();
        for domain in by_domain.keys() {
            let own = sources
                .iter()
                .filter(|s| s.domain.as_deref() == Some(domain.as_str()));
            domain_versions.insert(domain.clone(), hash_sources(own));
        }
        let version = hash_sources(sources.iter());

        let actions = names.actions.clone().map(|a| a.as_ref().clone());
        let flat = actions_are_flat(&schema);
        // Each policy is prepared once; domains share the central entries.
        let central_entries: HashMap<String, Arc<Indexed>> = central
            .policies()
            .map(|p| (p.id().to_string(), Indexed::new(p.as_ref(), flat)))
            .collect();
        let entries = |set: &PolicySet| -> Vec<Arc<Indexed>> {
            set.policies()
                .map(|p| {
                    central_entries
                        .get(AsRef::<str>::as_ref(p.id()))
                        .cloned()
                        .unwrap_or_else(|| Indexed::new(p.as_ref(), flat))
                })
                .collect()
        };
        let central_index = ScopeIndex::new(entries(&central), &actions, flat);
        let domain_index = by_domain
            .iter()
            .map(|(domain, set)| {
                (
                    domain.clone(),
                    ScopeIndex::new(entries(set), &actions, flat),
                )
            })
            .collect();

        Ok(PolicyEngine {
            inner: Arc::new(Inner {
                schema,
                names,
                central,
                by_domain,
                central_index,
                domain_index,
                info,
                version,
                central_version,
                domain_versions,
            }),
            stock: false,
        })
    }

    /// The same engine deciding with Cedar's stock authorizer (every policy of
    /// the domain's set evaluated). Same answers, slower; for tests and benchmarks.
    #[doc(hidden)]
    pub fn with_stock_authorizer(&self) -> Self {
        PolicyEngine {
            inner: Arc::clone(&self.inner),
            stock: true,
        }
    }

    pub(crate) fn uses_stock_authorizer(&self) -> bool {
        self.stock
    }

    /// Stable hash of all sources' scope and text (order and names do not matter): the policy-set version.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// Hash of what applies to `domain`'s products: equal in two engines means
    /// no decision on that domain's products can differ between them.
    pub fn version_for_domain(&self, domain: &str) -> String {
        let own = self
            .inner
            .domain_versions
            .get(domain)
            .map_or("", String::as_str);
        format!("{}+{own}", self.inner.central_version)
    }

    /// Every policy in the set, sorted by id.
    pub fn policies(&self) -> Vec<&PolicyInfo> {
        let mut all: Vec<&PolicyInfo> = self.inner.info.values().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// One policy by id.
    pub fn policy(&self, id: &str) -> Option<&PolicyInfo> {
        self.inner.info.get(id)
    }

    /// The ids of the policies from one source (for a GovernancePolicy's status).
    pub fn policy_ids_from(&self, source_name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .info
            .values()
            .filter(|p| p.source == source_name)
            .map(|p| p.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub(crate) fn set_for(&self, domain: &str) -> &PolicySet {
        self.inner
            .by_domain
            .get(domain)
            .unwrap_or(&self.inner.central)
    }

    /// The indexed form of [`Self::set_for`].
    pub(crate) fn index_for(&self, domain: &str) -> &ScopeIndex {
        self.inner
            .domain_index
            .get(domain)
            .unwrap_or(&self.inner.central_index)
    }

    /// The Cedar schema the set was validated against.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    pub(crate) fn names(&self) -> &Names {
        &self.inner.names
    }
}

// Errors here are rare and built once per policy set, so their size does not matter.
#[allow(clippy::result_large_err)]
fn schema() -> Result<Schema, PolicyError> {
    Schema::from_str(SCHEMA).map_err(|e| {
        let (offset, len) = first_label(&e);
        PolicyError::new(
            PolicyErrorKind::Schema,
            "datamesh.cedarschema",
            SCHEMA,
            offset,
            len,
            None,
            e.to_string(),
        )
    })
}

#[allow(clippy::result_large_err)]
fn names() -> Result<Names, PolicyError> {
    let parse = |s: &str| {
        EntityTypeName::from_str(s).map_err(|e| {
            PolicyError::new(
                PolicyErrorKind::Schema,
                "datamesh.cedarschema",
                SCHEMA,
                0,
                0,
                None,
                e.to_string(),
            )
        })
    };
    let action = parse("DataMesh::Action")?;
    let act = |id: &str| {
        EntityUid::from_type_name_and_id(action.clone(), cedar_policy::EntityId::new(id))
    };
    Ok(Names {
        actions: [
            act("Read"),
            act("Subscribe"),
            act("Approve"),
            act("Publish"),
        ],
    })
}

/// Whether no action of the schema is a member of another (no action groups),
/// so that `action in [A, B]` can only match A or B. If the schema cannot
/// tell, assume groups: the index then files every policy under every action.
fn actions_are_flat(schema: &Schema) -> bool {
    schema.action_entities().is_ok_and(|entities| {
        entities.iter().all(|e| {
            AsRef::<cedar_policy_core::ast::Entity>::as_ref(e)
                .ancestors()
                .next()
                .is_none()
        })
    })
}

/// Offset and length of the first labelled span of a Cedar diagnostic.
fn first_label(d: &dyn Diagnostic) -> (usize, usize) {
    d.labels()
        .and_then(|mut labels| labels.next())
        .map_or((0, 0), |l| (l.offset(), l.len()))
}

fn policy_span(policy: &Policy) -> (usize, usize) {
    let ast: &cedar_policy_core::ast::Policy = policy.as_ref();
    ast.loc()
        .map_or((0, 0), |loc| (loc.span.offset(), loc.span.len()))
}

fn template_span(template: &cedar_policy::Template) -> (usize, usize) {
    let ast: &cedar_policy_core::ast::Template = template.as_ref();
    ast.loc()
        .map_or((0, 0), |loc| (loc.span.offset(), loc.span.len()))
}

fn hash_sources<'a>(sources: impl Iterator<Item = &'a PolicySource>) -> String {
    let mut sorted: Vec<&PolicySource> = sources.collect();
    // Content only (scope and text, not names): the CLI reading files and the
    // operator reading GovernancePolicies report the same version for the same rules.
    sorted.sort_by(|a, b| (&a.domain, &a.text).cmp(&(&b.domain, &b.text)));
    let mut hasher = Sha256::new();
    for s in sorted {
        for part in [s.domain.as_deref().unwrap_or(""), s.text.as_str()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let digest = hasher.finalize();
    format!("sha256:{}", hex::encode(digest.get(..8).unwrap_or(&[])))
}
