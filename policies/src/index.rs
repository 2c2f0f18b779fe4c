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
//! (`Evaluator::evaluate`), so an evaluated policy answers exactly as it does
//! in the authorizer; a policy left out could only have been false.

use cedar_policy_core::ast::{
    ActionConstraint, Effect, EntityReference, EntityUID, Policy, PrincipalOrResourceConstraint,
};
use std::collections::HashMap;

/// The policies of one scope (central, or central plus one domain's), by action.
#[derive(Debug, Default)]
pub(crate) struct ScopeIndex {
    by_action: [ActionPolicies; 4],
}

#[derive(Debug, Default)]
struct ActionPolicies {
    /// Policies whose principal scope is not a single entity.
    general: Vec<Indexed>,
    /// Policies whose scope is `principal == <uid>`, by that uid.
    by_principal: HashMap<EntityUID, Vec<Indexed>>,
}

/// A policy with what a decision needs from it without looking it up.
#[derive(Debug, Clone)]
pub(crate) struct Indexed {
    pub policy: Policy,
    pub id: String,
    pub forbid: bool,
}

impl ScopeIndex {
    /// Files `policies` under `actions` (the four action uids, in the engine's
    /// order). With `actions_flat` false (the schema has action groups, so
    /// `action in [...]` may match other actions) every policy is filed under
    /// every action.
    pub(crate) fn new<'a>(
        policies: impl IntoIterator<Item = &'a Policy>,
        actions: &[EntityUID; 4],
        actions_flat: bool,
    ) -> Self {
        let mut index = ScopeIndex::default();
        for policy in policies {
            let indexed = Indexed {
                policy: policy.clone(),
                id: policy.id().to_string(),
                forbid: policy.effect() == Effect::Forbid,
            };
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
                        .push(indexed.clone()),
                    None => slot.general.push(indexed.clone()),
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
        general.iter().chain(own)
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
