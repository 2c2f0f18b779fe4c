//! Which policies can apply to a request, found without evaluating them.
//!
//! Cedar's authorizer evaluates every policy of the set it is given, and for
//! each one first rebuilds its condition (scope and `when` clauses together)
//! as a fresh expression. A domain's set holds the central policies plus its
//! own, most of which name one principal and one action
//! (`permit (principal == Domain::"x", action == Action::"Read", ...)`): for
//! any other principal or action they are false by their scope alone. This
//! index files each policy under the actions its scope admits and, when the
//! scope names one principal, under that principal, so a decision evaluates
//! only the policies whose scope can match. Evaluation itself is Cedar's own
//! (`Evaluator::interpret` on the condition `Evaluator::evaluate` would
//! build, built here once instead of per request), so an evaluated policy
//! answers exactly as it does in the authorizer; a policy left out could only
//! have been false.

use crate::conjuncts::{self, Conjunct, Facts};
use crate::decision::{Reason, ReasonKind};
use cedar_policy_core::ast::{
    ActionConstraint, Effect, EntityReference, EntityUID, Expr, ExprKind, Literal, Policy,
    PrincipalOrResourceConstraint, ValueKind, Var,
};
use cedar_policy_core::evaluator::Evaluator;
use std::collections::HashMap;
use std::sync::Arc;

/// The policies of one scope (central, or central plus one domain's), by action.
#[derive(Debug, Default)]
pub(crate) struct ScopeIndex {
    by_action: [ActionPolicies; 4],
}

#[derive(Debug, Default)]
struct ActionPolicies {
    /// Policies whose principal scope is not a single entity.
    general: Vec<Arc<Indexed>>,
    /// Policies whose scope is `principal == <uid>`, by that uid.
    by_principal: HashMap<EntityUID, Vec<Arc<Indexed>>>,
}

/// A policy with what a decision needs from it without looking it up.
#[derive(Debug, Clone)]
pub(crate) struct Indexed {
    pub policy: Policy,
    /// The policy's condition less the scope constraints that are true for
    /// every request it is a candidate for (see [`residual_condition`]),
    /// split into its `&&` chain.
    conjuncts: Vec<Conjunct>,
    pub id: String,
    pub forbid: bool,
    /// The condition may read `context.ownerApproved` (conservatively: any
    /// use of `context` other than reading or testing another attribute).
    pub reads_owner_approved: bool,
}

impl Indexed {
    /// Everything a decision needs from `policy`, computed once. With
    /// `actions_flat` (see [`ScopeIndex::new`]) the action scope is proven by
    /// where the index files the policy.
    pub(crate) fn new(policy: &Policy, actions_flat: bool) -> Arc<Self> {
        let condition = residual_condition(policy, actions_flat);
        Arc::new(Indexed {
            policy: policy.clone(),
            reads_owner_approved: reads_owner_approved(&condition),
            conjuncts: conjuncts::split(&condition),
            id: policy.id().to_string(),
            forbid: policy.effect() == Effect::Forbid,
        })
    }

    /// Whether the policy applies; what `Evaluator::evaluate` answers.
    /// Conjuncts are decided on `facts` while they can be (see
    /// `conjuncts.rs`); from the first that cannot, the rest goes to Cedar's
    /// evaluator, which `evaluator` gives (built only when first needed).
    pub fn evaluate<'e>(
        &self,
        facts: &Facts<'_>,
        evaluator: impl FnOnce() -> Result<&'e Evaluator<'e>, Reason>,
    ) -> Result<bool, Reason> {
        for conjunct in &self.conjuncts {
            match conjunct.test.as_ref().and_then(|t| t.eval(facts)) {
                Some(false) => return Ok(false),
                Some(true) => continue,
                None => return self.interpret(evaluator()?, &conjunct.rest),
            }
        }
        Ok(true)
    }

    fn interpret(&self, evaluator: &Evaluator<'_>, expr: &Expr) -> Result<bool, Reason> {
        let value = match evaluator.interpret(expr, self.policy.env()) {
            Ok(v) => v,
            Err(e) => return Err(self.error(e)),
        };
        match value.value_kind() {
            ValueKind::Lit(Literal::Bool(b)) => Ok(*b),
            // Strict validation makes every condition boolean; were one not,
            // Cedar's own path gives the error it would give.
            _ => evaluator.evaluate(&self.policy).map_err(|e| self.error(e)),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> Reason {
        Reason {
            kind: ReasonKind::Error,
            id: self.id.clone(),
            message: format!("policy `{}` could not be evaluated: {e}", self.id),
        }
    }
}

/// `Policy::condition` (scope and `when` clauses joined by `&&`) without the
/// conjuncts that cannot be false for a candidate of this index: a principal
/// scope `== uid` (filed under that uid), `is Domain` (decisions always have
/// a Domain principal), an exact action scope when actions are flat (filed
/// under the actions it admits), `is DataProduct` for the resource, and
/// `any`. Each dropped conjunct evaluates to `true` without error, so the
/// rest evaluates exactly as the whole condition does, while Cedar would
/// rebuild the full condition and test every scope on each evaluation.
fn residual_condition(policy: &Policy, actions_flat: bool) -> Expr {
    let names = &crate::prepared::CORE_NAMES;
    let mut conjuncts = Vec::new();
    let principal = policy.principal_constraint();
    match principal.as_inner() {
        PrincipalOrResourceConstraint::Any
        | PrincipalOrResourceConstraint::Eq(EntityReference::EUID(_)) => {}
        PrincipalOrResourceConstraint::Is(ty) if **ty == names.domain => {}
        _ => conjuncts.push(principal.as_expr()),
    }
    let action = policy.action_constraint();
    let exact = matches!(
        action,
        ActionConstraint::Any | ActionConstraint::Eq(_) | ActionConstraint::In(_)
    );
    if !(actions_flat && exact) {
        conjuncts.push(action.as_expr());
    }
    let resource = policy.resource_constraint();
    match resource.as_inner() {
        PrincipalOrResourceConstraint::Any => {}
        PrincipalOrResourceConstraint::Is(ty) if **ty == names.product => {}
        _ => conjuncts.push(resource.as_expr()),
    }
    let loc = policy.loc().cloned();
    let body = policy
        .non_scope_constraints()
        .cloned()
        .unwrap_or_else(|| Expr::val(true));
    conjuncts.into_iter().rev().fold(body, |rest, c| {
        Expr::and(c, rest).with_maybe_source_loc(loc.clone())
    })
}

/// See [`Indexed::reads_owner_approved`].
fn reads_owner_approved(condition: &Expr) -> bool {
    let is_context = |e: &Expr| matches!(e.expr_kind(), ExprKind::Var(Var::Context));
    let mut uses = 0usize;
    let mut other_attribute = 0usize;
    for e in condition.subexpressions() {
        match e.expr_kind() {
            ExprKind::Var(Var::Context) => uses += 1,
            ExprKind::GetAttr { expr, attr } | ExprKind::HasAttr { expr, attr }
                if is_context(expr) && attr != "ownerApproved" =>
            {
                other_attribute += 1;
            }
            ExprKind::ExtHasAttr { expr, attrs }
                if is_context(expr) && attrs.first() != "ownerApproved" =>
            {
                other_attribute += 1;
            }
            _ => {}
        }
    }
    uses > other_attribute
}

impl ScopeIndex {
    /// Files `policies` under `actions` (the four action uids, in the engine's
    /// order). With `actions_flat` false (the schema has action groups, so
    /// `action in [...]` may match other actions) every policy is filed under
    /// every action. Entries are shared: every domain's index points at the
    /// same central entries, so their conditions stay hot in the cache.
    pub(crate) fn new(
        policies: impl IntoIterator<Item = Arc<Indexed>>,
        actions: &[EntityUID; 4],
        actions_flat: bool,
    ) -> Self {
        let mut index = ScopeIndex::default();
        for indexed in policies {
            let policy = &indexed.policy;
            let principal = match policy.principal_constraint().as_inner() {
                PrincipalOrResourceConstraint::Eq(EntityReference::EUID(uid)) => {
                    Some(uid.as_ref().clone())
                }
                _ => None,
            };
            for (slot, action) in index.by_action.iter_mut().zip(actions) {
                if !admits(policy.action_constraint(), action, actions_flat) {
                    continue;
                }
                match &principal {
                    Some(uid) => slot
                        .by_principal
                        .entry(uid.clone())
                        .or_default()
                        .push(Arc::clone(&indexed)),
                    None => slot.general.push(Arc::clone(&indexed)),
                }
            }
        }
        index
    }

    /// The policies that may apply to `principal` doing action number `action`.
    pub(crate) fn candidates<'s>(
        &'s self,
        action: usize,
        principal: &EntityUID,
    ) -> impl Iterator<Item = &'s Indexed> {
        let slot = self.by_action.get(action);
        let general = slot.map(|s| s.general.as_slice()).unwrap_or_default();
        let own = slot
            .and_then(|s| s.by_principal.get(principal))
            .map(Vec::as_slice)
            .unwrap_or_default();
        general.iter().chain(own).map(AsRef::as_ref)
    }
}

/// Whether an action scope can match `action`. Without action groups,
/// `action in [A, B]` is `action == A || action == B`.
fn admits(constraint: &ActionConstraint, action: &EntityUID, flat: bool) -> bool {
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => uid.as_ref() == action,
        ActionConstraint::In(uids) => !flat || uids.iter().any(|u| u.as_ref() == action),
        #[allow(unreachable_patterns)]
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cedar_policy_core::ast::PolicyID;
    use cedar_policy_core::parser::parse_policy;

    fn reads(text: &str) -> bool {
        match parse_policy(Some(PolicyID::from_string("p")), text) {
            Ok(p) => reads_owner_approved(&Policy::from(p).condition()),
            Err(e) => panic!("{e}"),
        }
    }

    /// A policy left out of the second pass must not be able to see the flag.
    #[test]
    fn finds_every_way_to_read_owner_approved() {
        assert!(!reads(
            "permit (principal, action, resource) when { context.purpose == \"x\" };"
        ));
        assert!(!reads(
            "permit (principal, action, resource) when { context has purpose };"
        ));
        assert!(reads(
            "permit (principal, action, resource) when { context.ownerApproved };"
        ));
        assert!(reads(
            "permit (principal, action, resource) when { context has ownerApproved };"
        ));
        assert!(reads(
            "permit (principal, action, resource) when { context == {} };"
        ));
        assert!(reads(
            "permit (principal, action, resource) when { [context].contains(context) };"
        ));
    }
}
