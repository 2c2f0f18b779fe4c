//! Deciding one request: Cedar policies and licence terms together, with
//! every reason that determined the outcome.
//!
//! Owner approval is modelled as a context flag. A request is decided with
//! `ownerApproved = false` first: Allow means allowed outright. Otherwise it
//! is decided again as if approved: Allow then means NeedsApproval (the
//! permits that fired say why), anything else is Deny. Once the provider has
//! approved, the caller decides with [`DecisionInput::owner_approved`] set.

use crate::conjuncts::Facts;
use crate::engine::{DEFAULT_DENY_ID, PolicyEngine};
use crate::index::{Indexed, ScopeIndex};
use crate::licence::check_terms;
use crate::prepared::{
    PreparedDomain, PreparedInput, PreparedObjects, PreparedProduct, domain_uid, product_uid,
};
use crate::request::{self, ContextMap, ContextParts, FieldUse};
use cedar_policy::{Decision as CedarDecision, PolicySet};
use cedar_policy_core::ast;
use cedar_policy_core::entities::Entities;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use datamesh_crds::agreement::{
    DataSharingAgreementSpec, DecisionRecord, LicenceInForce, ReasonRecord,
};
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{DataProduct, Domain, Licence};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::sync::Arc;

/// What a decision allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Outcome {
    /// Granted now.
    Allow,
    /// Granted once the provider's owners approve.
    NeedsApproval,
    /// Refused.
    Deny,
}

impl Outcome {
    /// The name used in agreement status and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "Allow",
            Outcome::NeedsApproval => "NeedsApproval",
            Outcome::Deny => "Deny",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ReasonKind {
    /// A Cedar policy (or `default-deny` when none permits).
    Policy,
    /// A licence term, named after the Licence field.
    LicenceTerm,
    /// The request itself is malformed (unknown field, mismatched names, bad dates).
    Request,
    /// Evaluation failed; the decision fails closed.
    Error,
}

impl ReasonKind {
    /// The name used in agreement status and output.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::Policy => "policy",
            ReasonKind::LicenceTerm => "licenceTerm",
            ReasonKind::Request => "request",
            ReasonKind::Error => "error",
        }
    }
}

/// One thing that determined a decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reason {
    /// Policy, licence term, request or error.
    pub kind: ReasonKind,
    /// Policy `@id`, licence term name, or request field.
    pub id: String,
    /// The policy's `@reason`, or what is wrong with the term or request.
    pub message: String,
}

impl Reason {
    pub(crate) fn request(id: &str, message: impl Into<String>) -> Self {
        Reason {
            kind: ReasonKind::Request,
            id: id.to_string(),
            message: message.into(),
        }
    }
}

/// Using a product's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AccessAction {
    /// A one-off or batch read (the usual agreement).
    #[default]
    Read,
    /// A subscription to a stream.
    Subscribe,
}

/// Managing a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ManageAction {
    /// Answering a request for the product.
    Approve,
    /// Publishing the product in the catalogue.
    Publish,
}

/// Everything one access decision depends on; the caller looks the objects up.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// The consumer (principal).
    pub consumer: &'a Domain,
    /// The domain that owns the product (`product.spec.domain`).
    pub provider: &'a Domain,
    /// The product asked for.
    pub product: &'a DataProduct,
    /// The product's licence (`product.spec.licence`), as it stands now.
    pub licence: &'a Licence,
    /// What is asked for: purpose, fields, period, accepted licence version.
    pub request: &'a DataSharingAgreementSpec,
    /// Read or Subscribe.
    pub action: AccessAction,
    /// The time of the decision; also the start when the request names none.
    pub now: Timestamp,
    /// The provider's owners have approved this request.
    pub owner_approved: bool,
    /// The agreement was already granted (re-deciding, not a new request).
    pub existing_agreement: bool,
}

impl<'a> DecisionInput<'a> {
    /// A new Read request, not yet approved.
    pub fn new(
        consumer: &'a Domain,
        provider: &'a Domain,
        product: &'a DataProduct,
        licence: &'a Licence,
        request: &'a DataSharingAgreementSpec,
        now: Timestamp,
    ) -> Self {
        DecisionInput {
            consumer,
            provider,
            product,
            licence,
            request,
            action: AccessAction::Read,
            now,
            owner_approved: false,
            existing_agreement: false,
        }
    }
}

/// The answer, with everything a grant needs to honour it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Allow, NeedsApproval or Deny.
    pub outcome: Outcome,
    /// The policies and terms that determined the outcome.
    pub reasons: Vec<Reason>,
    /// Fields to grant (empty when denied).
    pub granted_fields: Vec<String>,
    /// When access starts.
    pub active_from: Option<Timestamp>,
    /// When access ends: the requested end, capped by the licence's maximum
    /// duration and the product's sunset date.
    pub active_until: Option<Timestamp>,
    /// Attribution and retention the consumer must honour (absent when denied).
    pub licence: Option<LicenceInForce>,
    /// Version of the policy set that decided.
    pub policy_set_version: String,
}

impl Decision {
    fn deny(version: &str, reasons: Vec<Reason>) -> Self {
        Decision {
            outcome: Outcome::Deny,
            reasons,
            granted_fields: Vec::new(),
            active_from: None,
            active_until: None,
            licence: None,
            policy_set_version: version.to_string(),
        }
    }

    /// The reason ids, sorted: what policy tests compare.
    pub fn reason_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.reasons.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    /// The decision as recorded in an agreement's status.
    pub fn to_record(&self) -> DecisionRecord {
        DecisionRecord {
            outcome: self.outcome.as_str().to_string(),
            reasons: self
                .reasons
                .iter()
                .map(|r| ReasonRecord {
                    kind: r.kind.as_str().to_string(),
                    id: r.id.clone(),
                    message: r.message.clone(),
                })
                .collect(),
            policy_set_version: Some(self.policy_set_version.clone()),
        }
    }
}

/// What Cedar said about one evaluation.
#[derive(Clone)]
struct Evaluation {
    allowed: bool,
    determining: Vec<String>,
    errors: Vec<Reason>,
}

impl PolicyEngine {
    /// Decides one access request. Never panics and never errs: anything that
    /// goes wrong denies, with a reason saying what.
    ///
    /// Builds the Cedar form of every object first; a caller deciding many
    /// requests over the same objects should keep [`PreparedObjects`] (or
    /// their parts) and call [`Self::decide_prepared`].
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        let objects = PreparedObjects::new(input);
        self.decide_prepared(&objects.input(input))
    }

    /// [`Self::decide`] over prepared objects: the same decision.
    pub fn decide_prepared(&self, input: &PreparedInput<'_>) -> Decision {
        let version = self.version();
        let checked = match check_request(input) {
            Ok(checked) => checked,
            Err(reasons) => return Decision::deny(version, reasons),
        };
        let Checked {
            provider,
            product_key,
            licence_name,
            fields,
            all_fields,
            start,
            end,
            duration_days,
        } = checked;

        let licence = &input.licence.spec;
        // A grant already in force is not refused for its length when the
        // licence's maximum shrinks: it is cut to the new maximum below.
        let asked_days = if input.existing_agreement {
            0
        } else {
            duration_days
        };
        let terms = check_terms(
            licence_name,
            licence,
            input.request,
            &input.consumer.jurisdiction,
            asked_days,
            input.owner_approved,
        );

        let now = match request::datetime(input.now) {
            Ok(now) => now,
            Err(e) => return Decision::deny(version, vec![error_reason("context", e)]),
        };
        let parts = ContextParts {
            purpose: input.request.purpose.as_str(),
            fields: &fields,
            all_fields,
            duration_days,
            commercial_use: input.request.commercial_use,
            redistribution: input.request.redistribution,
            licence: &input.licence.terms,
            accepted_version: &input.request.licence.version,
            dpia_reference_given: input
                .request
                .dpia_reference
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty()),
            existing_agreement: input.existing_agreement,
            now,
        };
        let action_no = match input.action {
            AccessAction::Read => 0,
            AccessAction::Subscribe => 1,
        };
        let names = self.names();
        let cedar = CedarCall {
            set: self.set_for(provider),
            index: self.index_for(provider),
            action_no,
            principal: input.consumer.entity.uid().clone(),
            action: names.actions[action_no].as_ref().clone(),
            resource: product_uid(product_key),
            consumer: input.consumer,
            provider: input.provider,
            product: input.product,
            context: request::context(&parts),
        };
        let (cedar_outcome, cedar_reasons) = match self.cedar_outcome(cedar, input.owner_approved) {
            Ok(r) => r,
            Err(errors) => return Decision::deny(version, errors),
        };

        let (outcome, reasons) = if cedar_outcome == Outcome::Deny || !terms.failed.is_empty() {
            let mut reasons = if cedar_outcome == Outcome::Deny {
                cedar_reasons
            } else {
                Vec::new()
            };
            reasons.extend(terms.failed);
            (Outcome::Deny, reasons)
        } else if cedar_outcome == Outcome::NeedsApproval || terms.needs_approval.is_some() {
            let mut reasons = if cedar_outcome == Outcome::NeedsApproval {
                cedar_reasons
            } else {
                Vec::new()
            };
            reasons.extend(terms.needs_approval);
            (Outcome::NeedsApproval, reasons)
        } else {
            (Outcome::Allow, cedar_reasons)
        };
        if outcome == Outcome::Deny {
            return Decision::deny(version, reasons);
        }

        let mut until = end;
        if let Some(max) = licence.max_duration_days {
            until = until.min(
                start
                    .saturating_add(SignedDuration::from_hours(24 * i64::from(max)))
                    .unwrap_or(end),
            );
        }
        if let Some(sunset) = &input.product.sunset {
            match sunset {
                Ok(sunset) => until = until.min(*sunset),
                Err(reason) => return Decision::deny(version, vec![reason.clone()]),
            }
        }
        if until <= start {
            return Decision::deny(
                version,
                vec![Reason::request(
                    "sunsetDate",
                    "the product's sunset date is before the requested start",
                )],
            );
        }

        Decision {
            outcome,
            reasons,
            granted_fields: fields.iter().map(|f| f.name.to_string()).collect(),
            active_from: Some(start),
            active_until: Some(until),
            licence: Some(LicenceInForce {
                name: licence_name.to_string(),
                version: licence.version.clone(),
                attribution: licence.attribution.clone(),
                retention_days: licence.retention_days,
            }),
            policy_set_version: version.to_string(),
        }
    }

    /// Decides whether `principal` may manage (approve requests for, publish)
    /// `product`, owned by `provider`. Policies only: no licence terms apply.
    pub fn decide_management(
        &self,
        principal: &Domain,
        provider: &Domain,
        product: &DataProduct,
        action: ManageAction,
        now: Timestamp,
    ) -> Decision {
        let version = self.version();
        let names = self.names();
        let (Some(principal_name), Some(provider_name), Some(key)) = (
            principal.metadata.name.as_deref(),
            provider.metadata.name.as_deref(),
            product_key(product),
        ) else {
            return Decision::deny(
                version,
                vec![Reason::request(
                    "metadata",
                    "a Domain or the DataProduct has no name",
                )],
            );
        };
        if provider_name != product.spec.domain {
            return Decision::deny(
                version,
                vec![provider_mismatch(provider_name, &product.spec.domain)],
            );
        }
        let principal = PreparedDomain::new(principal);
        let provider = PreparedDomain::new(provider);
        let product = PreparedProduct::new(product);
        let entities = match request::entities(&principal, &provider, &product) {
            Ok(e) => cedar_policy::Entities::from(e),
            Err(e) => return Decision::deny(version, vec![error_reason("entities", e)]),
        };
        let action = match action {
            ManageAction::Approve => &names.actions[2],
            ManageAction::Publish => &names.actions[3],
        };
        let now = match request::datetime(now) {
            Ok(now) => now,
            Err(e) => return Decision::deny(version, vec![error_reason("context", e)]),
        };
        let context = ContextMap::from([("now".into(), now)]);
        let request = ast::Request::new_unchecked(
            ast::EntityUIDEntry::known(domain_uid(principal_name), None),
            ast::EntityUIDEntry::known(action.as_ref().clone(), None),
            ast::EntityUIDEntry::known(product_uid(&key), None),
            Some(ast::Context::Value(Arc::new(context))),
        );
        let eval = self.run(
            self.set_for(provider_name),
            &cedar_policy::Request::from(request),
            &entities,
        );
        if !eval.errors.is_empty() {
            return Decision::deny(version, eval.errors);
        }
        let outcome = if eval.allowed {
            Outcome::Allow
        } else {
            Outcome::Deny
        };
        let reasons = self.policy_reasons(&eval.determining, outcome == Outcome::Deny);
        Decision {
            outcome,
            reasons,
            granted_fields: Vec::new(),
            active_from: None,
            active_until: None,
            licence: None,
            policy_set_version: version.to_string(),
        }
    }

    /// Allow / NeedsApproval / Deny from Cedar alone, with the policy reasons.
    ///
    /// Decided with `ownerApproved` as given first; when that does not allow
    /// and approval was not given, again as if approved. The second pass
    /// re-evaluates only the candidates that read `context.ownerApproved`:
    /// the others see the same inputs and answer the same.
    fn cedar_outcome(
        &self,
        call: CedarCall<'_>,
        approved: bool,
    ) -> Result<(Outcome, Vec<Reason>), Vec<Reason>> {
        // The entity store, built only if Cedar's evaluator is needed.
        let entities: OnceCell<Result<Entities, Reason>> = OnceCell::new();
        let entities = || {
            entities
                .get_or_init(|| {
                    request::entities(call.consumer, call.provider, call.product)
                        .map_err(|e| error_reason("entities", e))
                })
                .as_ref()
                .map_err(Clone::clone)
        };
        if self.uses_stock_authorizer() {
            return self.stock_outcome(&call, entities().map_err(|e| vec![e])?, approved);
        }
        let candidates: Vec<&Indexed> = call
            .index
            .candidates(call.action_no, &call.principal)
            .collect();
        let needs_second = !approved && candidates.iter().any(|c| c.reads_owner_approved);
        let with_approval = |approved: bool| {
            let mut values = call.context.clone();
            values.insert("ownerApproved".into(), ast::Value::from(approved));
            Arc::new(values)
        };
        let evaluator = |values: &Arc<ContextMap>| -> Result<Evaluator<'_>, Reason> {
            Ok(Evaluator::new(
                ast::Request::new_unchecked(
                    ast::EntityUIDEntry::known(call.principal.clone(), None),
                    ast::EntityUIDEntry::known(call.action.clone(), None),
                    ast::EntityUIDEntry::known(call.resource.clone(), None),
                    Some(ast::Context::Value(Arc::clone(values))),
                ),
                entities()?,
                Extensions::all_available(),
            ))
        };
        let facts = |context| Facts {
            principal: &call.consumer.entity,
            resource: &call.product.entity,
            context,
        };

        let first_context = with_approval(approved);
        let first_eval = OnceCell::new();
        let first_facts = facts(&first_context);
        let first_results: Vec<Result<bool, Reason>> = candidates
            .iter()
            .map(|c| {
                c.evaluate(&first_facts, || {
                    first_eval
                        .get_or_init(|| evaluator(&first_context))
                        .as_ref()
                        .map_err(Clone::clone)
                })
            })
            .collect();
        let first = summarize(&candidates, &first_results)?;
        if first.allowed {
            return Ok((
                Outcome::Allow,
                self.policy_reasons(&first.determining, false),
            ));
        }
        if approved {
            return Ok((Outcome::Deny, self.policy_reasons(&first.determining, true)));
        }
        let second = if needs_second {
            let second_context = with_approval(true);
            let second_eval = OnceCell::new();
            let second_facts = facts(&second_context);
            let results: Vec<Result<bool, Reason>> = candidates
                .iter()
                .zip(first_results)
                .map(|(c, earlier)| {
                    if !c.reads_owner_approved {
                        return earlier;
                    }
                    c.evaluate(&second_facts, || {
                        second_eval
                            .get_or_init(|| evaluator(&second_context))
                            .as_ref()
                            .map_err(Clone::clone)
                    })
                })
                .collect();
            summarize(&candidates, &results)?
        } else {
            first.clone()
        };
        if second.allowed {
            return Ok((
                Outcome::NeedsApproval,
                self.policy_reasons(&second.determining, false),
            ));
        }
        let mut ids = first.determining;
        ids.extend(second.determining);
        ids.sort();
        ids.dedup();
        Ok((Outcome::Deny, self.policy_reasons(&ids, true)))
    }

    /// [`Self::cedar_outcome`] with Cedar's stock authorizer over the
    /// domain's whole set, both passes in full: the reference the index is
    /// tested and benchmarked against.
    fn stock_outcome(
        &self,
        call: &CedarCall<'_>,
        entities: &Entities,
        approved: bool,
    ) -> Result<(Outcome, Vec<Reason>), Vec<Reason>> {
        let entities = cedar_policy::Entities::from(entities.clone());
        let pass = |approved: bool| {
            let mut values = call.context.clone();
            values.insert("ownerApproved".into(), ast::Value::from(approved));
            let request = ast::Request::new_unchecked(
                ast::EntityUIDEntry::known(call.principal.clone(), None),
                ast::EntityUIDEntry::known(call.action.clone(), None),
                ast::EntityUIDEntry::known(call.resource.clone(), None),
                Some(ast::Context::Value(Arc::new(values))),
            );
            let eval = self.run(call.set, &cedar_policy::Request::from(request), &entities);
            if eval.errors.is_empty() {
                Ok(eval)
            } else {
                Err(eval.errors)
            }
        };
        let first = pass(approved)?;
        if first.allowed {
            return Ok((
                Outcome::Allow,
                self.policy_reasons(&first.determining, false),
            ));
        }
        if approved {
            return Ok((Outcome::Deny, self.policy_reasons(&first.determining, true)));
        }
        let second = pass(true)?;
        if second.allowed {
            return Ok((
                Outcome::NeedsApproval,
                self.policy_reasons(&second.determining, false),
            ));
        }
        let mut ids = first.determining;
        ids.extend(second.determining);
        ids.sort();
        ids.dedup();
        Ok((Outcome::Deny, self.policy_reasons(&ids, true)))
    }

    fn run(
        &self,
        set: &PolicySet,
        request: &cedar_policy::Request,
        entities: &cedar_policy::Entities,
    ) -> Evaluation {
        let response = cedar_policy::Authorizer::new().is_authorized(request, set, entities);
        let determining = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        // Fail closed: a policy that errs might have been a forbid.
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                error_reason(
                    e.policy_id().as_ref(),
                    format!("policy `{}` could not be evaluated: {e}", e.policy_id()),
                )
            })
            .collect();
        Evaluation {
            allowed: response.decision() == CedarDecision::Allow,
            determining,
            errors,
        }
    }

    /// Reasons for the given policy ids; on a denial with none, `default-deny`.
    fn policy_reasons(&self, ids: &[String], deny: bool) -> Vec<Reason> {
        if deny && ids.is_empty() {
            return vec![Reason {
                kind: ReasonKind::Policy,
                id: DEFAULT_DENY_ID.to_string(),
                message: "no policy permits this request (deny by default)".to_string(),
            }];
        }
        let mut reasons: Vec<Reason> = ids
            .iter()
            .map(|id| Reason {
                kind: ReasonKind::Policy,
                id: id.clone(),
                message: self
                    .policy(id)
                    .map_or_else(String::new, |p| p.reason.clone()),
            })
            .collect();
        reasons.sort();
        reasons
    }
}

/// One access request, ready for both passes.
struct CedarCall<'a> {
    set: &'a PolicySet,
    index: &'a ScopeIndex,
    action_no: usize,
    principal: ast::EntityUID,
    action: ast::EntityUID,
    resource: ast::EntityUID,
    /// The prepared objects the entity store is built from.
    consumer: &'a PreparedDomain,
    provider: &'a PreparedDomain,
    product: &'a PreparedProduct,
    /// Everything but `ownerApproved`.
    context: ContextMap,
}

/// One pass over the candidates: allowed, and the policies that determined it.
/// Fails closed when any candidate erred: a policy that errs might have been a forbid.
fn summarize(
    candidates: &[&Indexed],
    results: &[Result<bool, Reason>],
) -> Result<Evaluation, Vec<Reason>> {
    let errors: Vec<Reason> = results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    for (candidate, result) in candidates.iter().zip(results) {
        match result {
            Ok(true) if candidate.forbid => forbids.push(candidate.id.clone()),
            Ok(true) => permits.push(candidate.id.clone()),
            _ => {}
        }
    }
    let allowed = forbids.is_empty() && !permits.is_empty();
    Ok(Evaluation {
        allowed,
        determining: if allowed { permits } else { forbids },
        errors: Vec::new(),
    })
}

/// The request, resolved against the product: names, fields, period.
struct Checked<'a> {
    provider: &'a str,
    product_key: &'a str,
    licence_name: &'a str,
    fields: Vec<FieldUse<'a>>,
    all_fields: bool,
    start: Timestamp,
    end: Timestamp,
    duration_days: i64,
}

fn product_key(product: &DataProduct) -> Option<String> {
    let ns = product.metadata.namespace.as_deref()?;
    let name = product.metadata.name.as_deref()?;
    Some(format!("{ns}/{name}"))
}

fn provider_mismatch(provider: &str, product_domain: &str) -> Reason {
    Reason::request(
        "provider",
        format!(
            "the provider Domain given is `{provider}`, but the product belongs to `{product_domain}`"
        ),
    )
}

fn error_reason(id: &str, message: impl Into<String>) -> Reason {
    Reason {
        kind: ReasonKind::Error,
        id: id.to_string(),
        message: message.into(),
    }
}

fn check_request<'a>(input: &PreparedInput<'a>) -> Result<Checked<'a>, Vec<Reason>> {
    let mut reasons = Vec::new();
    let consumer = input.consumer.name.as_str();
    let provider = input.provider.name.as_str();
    let licence_name = input.licence.name.as_str();
    let product = input.product;
    let request = input.request;
    let product_key = product.key.as_str();

    if consumer.is_empty()
        || provider.is_empty()
        || licence_name.is_empty()
        || product_key.is_empty()
    {
        reasons.push(Reason::request(
            "metadata",
            "a Domain, the DataProduct or the Licence has no name (or namespace)",
        ));
    }
    if request.consumer != consumer {
        reasons.push(Reason::request(
            "consumer",
            format!(
                "the request is made by `{}`, but the consumer Domain given is `{consumer}`",
                request.consumer
            ),
        ));
    }
    if provider != product.domain {
        reasons.push(provider_mismatch(provider, &product.domain));
    }
    // The same as comparing `namespace/name` keys: Kubernetes names hold no `/`.
    if product_key.is_empty()
        || request.product.namespace != product.namespace
        || request.product.name != product.name
    {
        let asked = format!("{}/{}", request.product.namespace, request.product.name);
        reasons.push(Reason::request(
            "product",
            format!("the request asks for `{asked}`, but the product given is `{product_key}`"),
        ));
    }
    if licence_name != product.licence {
        reasons.push(Reason::request(
            "licence",
            format!(
                "the Licence given is `{licence_name}`, but the product is shared under `{}`",
                product.licence
            ),
        ));
    }

    let all_fields = request.fields.is_empty();
    let mut fields = Vec::new();
    if all_fields {
        // Identifiers only ever go to a request that names them.
        fields.extend(
            product
                .fields
                .iter()
                .filter(|f| f.classification != FieldClassification::Identifier)
                .map(|f| FieldUse {
                    name: f.name.as_str(),
                    classification: f.classification.as_str(),
                    record: &f.record,
                }),
        );
    }
    for field in &request.fields {
        match product.field(field.as_str()) {
            Some(f) => fields.push(FieldUse {
                name: f.name.as_str(),
                classification: f.classification.as_str(),
                record: &f.record,
            }),
            None => reasons.push(Reason::request(
                "fields",
                format!(
                    "field `{}` is not in the schema of product `{product_key}`",
                    field.as_str()
                ),
            )),
        }
    }

    let start = match &request.start {
        None => Ok(input.now),
        Some(s) => s
            .parse::<Timestamp>()
            .map_err(|e| format!("start `{s}` is not an RFC 3339 time: {e}")),
    };
    let end = request
        .end
        .parse::<Timestamp>()
        .map_err(|e| format!("end `{}` is not an RFC 3339 time: {e}", request.end));
    let (start, end) = match (start, end) {
        (Ok(s), Ok(e)) if e > s => (s, e),
        (Ok(_), Ok(_)) => {
            reasons.push(Reason::request(
                "end",
                "the requested end is not after the start",
            ));
            (input.now, input.now)
        }
        (s, e) => {
            for msg in [s.err(), e.err()].into_iter().flatten() {
                reasons.push(Reason::request(
                    if msg.starts_with("start") {
                        "start"
                    } else {
                        "end"
                    },
                    msg,
                ));
            }
            (input.now, input.now)
        }
    };
    if !reasons.is_empty() {
        return Err(reasons);
    }
    let seconds = end.duration_since(start).as_secs();
    let duration_days = (seconds + 86_399) / 86_400;
    Ok(Checked {
        provider,
        product_key,
        licence_name,
        fields,
        all_fields,
        start,
        end,
        duration_days,
    })
}
