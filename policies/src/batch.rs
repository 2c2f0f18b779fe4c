//! Re-deciding many agreements at once, after a policy, licence or product
//! change, and reporting those whose outcome changed.
//!
//! Decisions are independent, so the batch is split across the machine's
//! cores with scoped threads (no runtime needed). When only policies changed,
//! an agreement whose product's domain sees the same policies in both sets
//! cannot change and is not decided again.

use crate::decision::{Decision, DecisionInput, Outcome};
use crate::engine::PolicyEngine;
use serde::Serialize;
use std::collections::HashMap;

/// An agreement whose outcome differs between two decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeChange {
    /// Position of the agreement in the input slice.
    pub index: usize,
    /// The decision before the change.
    pub old: Decision,
    /// The decision after it.
    pub new: Decision,
}

impl PolicyEngine {
    /// Decides every input, in order, on all cores.
    pub fn decide_all(&self, inputs: &[DecisionInput<'_>]) -> Vec<Decision> {
        parallel_map(inputs, |input| self.decide(input))
    }
}

/// Agreements whose outcome differs between the `old` and `new` policy sets.
pub fn redecide(
    old: &PolicyEngine,
    new: &PolicyEngine,
    inputs: &[DecisionInput<'_>],
) -> Vec<OutcomeChange> {
    // Which domains see a different set; computed once per domain, not per agreement.
    let mut changed_domain: HashMap<&str, bool> = HashMap::new();
    for input in inputs {
        let domain = input.product.spec.domain.as_str();
        changed_domain
            .entry(domain)
            .or_insert_with(|| old.version_for_domain(domain) != new.version_for_domain(domain));
    }
    let affected: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, input)| {
            changed_domain
                .get(input.product.spec.domain.as_str())
                .copied()
                .unwrap_or(true)
        })
        .map(|(i, _)| i)
        .collect();
    let results = parallel_map(&affected, |&i| {
        let input = inputs.get(i)?;
        let before = old.decide(input);
        let after = new.decide(input);
        (before.outcome != after.outcome).then_some(OutcomeChange {
            index: i,
            old: before,
            new: after,
        })
    });
    results.into_iter().flatten().collect()
}

/// Agreements whose inputs changed (a licence or product edit) under one policy
/// set: `old_inputs[i]` and `new_inputs[i]` are the same agreement.
pub fn redecide_inputs(
    engine: &PolicyEngine,
    old_inputs: &[DecisionInput<'_>],
    new_inputs: &[DecisionInput<'_>],
) -> Vec<OutcomeChange> {
    let pairs: Vec<(usize, (&DecisionInput<'_>, &DecisionInput<'_>))> = old_inputs
        .iter()
        .zip(new_inputs.iter())
        .enumerate()
        .collect();
    let results = parallel_map(&pairs, |(i, (o, n))| {
        let before = engine.decide(o);
        let after = engine.decide(n);
        (before.outcome != after.outcome).then_some(OutcomeChange {
            index: *i,
            old: before,
            new: after,
        })
    });
    results.into_iter().flatten().collect()
}

/// Agreements whose recorded outcome (e.g. from their status) differs from
/// what `engine` decides now; `previous[i]` belongs to `inputs[i]`.
pub fn redecide_against(
    engine: &PolicyEngine,
    previous: &[Outcome],
    inputs: &[DecisionInput<'_>],
) -> Vec<(usize, Decision)> {
    let indexed: Vec<(usize, &DecisionInput<'_>)> = inputs.iter().enumerate().collect();
    let results = parallel_map(&indexed, |(i, input)| {
        let now = engine.decide(input);
        (previous.get(*i) != Some(&now.outcome)).then_some((*i, now))
    });
    results.into_iter().flatten().collect()
}

fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || items.len() < 256 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        // A panicking worker would be a bug in the core; its results are lost
        // rather than crash the caller. Callers fail closed on missing results.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}
