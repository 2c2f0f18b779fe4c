//! Evaluating simple parts of a condition straight on the prepared values.
//!
//! A condition is a chain of `&&`; Cedar evaluates it left to right and stops
//! at the first `false`. Most conjuncts of datamesh policies compare an
//! attribute of the principal, the resource or the context with a literal
//! (`resource.classification == "open"`, `resource.personalData`,
//! `context.ownerApproved`, `resource has region`, `resource.domain ==
//! principal`). For those, this module computes Cedar's answer directly from
//! the entities' attribute maps and the context record, with Cedar's own
//! value equality and set membership. Whenever it cannot be sure (an
//! attribute is missing, a value has an unexpected type, the expression has
//! another shape) it answers `None`, and the rest of the condition, from
//! that conjunct on, is evaluated by Cedar's evaluator as usual. So an answer
//! given here is always the one Cedar gives, and errors are always Cedar's.

use crate::request::ContextMap;
use cedar_policy_core::ast::{
    BinaryOp, Entity, Expr, ExprKind, Literal, PartialValue, UnaryOp, Value, ValueKind, Var,
};
use smol_str::SmolStr;
use std::sync::Arc;

/// What a decision knows without Cedar's evaluator.
pub(crate) struct Facts<'a> {
    pub principal: &'a Entity,
    pub resource: &'a Entity,
    pub context: &'a ContextMap,
}

/// One conjunct of a condition.
#[derive(Debug, Clone)]
pub(crate) struct Conjunct {
    /// The conjunct as a direct test, when it has a shape this module knows.
    pub test: Option<Test>,
    /// This conjunct `&&` all that follow it, for Cedar's evaluator.
    pub rest: Arc<Expr>,
}

/// Splits `condition` into its `&&` chain, in evaluation order.
pub(crate) fn split(condition: &Expr) -> Vec<Conjunct> {
    let mut parts = Vec::new();
    flatten(condition, &mut parts);
    let mut conjuncts: Vec<Conjunct> = Vec::with_capacity(parts.len());
    let mut rest: Option<Expr> = None;
    for part in parts.into_iter().rev() {
        let whole = match rest {
            None => part.clone(),
            Some(r) => Expr::and(part.clone(), r).with_maybe_source_loc(part.source_loc().cloned()),
        };
        conjuncts.push(Conjunct {
            test: Test::of(part),
            rest: Arc::new(whole.clone()),
        });
        rest = Some(whole);
    }
    conjuncts.reverse();
    conjuncts
}

fn flatten<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e.expr_kind() {
        ExprKind::And { left, right } => {
            flatten(left, out);
            flatten(right, out);
        }
        _ => out.push(e),
    }
}

/// A value a test reads.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    /// `principal.a`, `resource.a` or `context.a`.
    Attr(Var, SmolStr),
    /// `principal` or `resource` itself.
    Entity(Var),
    /// A literal, or a set of literals.
    Const(Value),
}

/// A boolean expression over [`Operand`]s.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    Const(bool),
    Truthy(Operand),
    Equals(Operand, Operand),
    Contains(Operand, Operand),
    Has(Var, SmolStr),
    Not(Box<Test>),
    And(Box<Test>, Box<Test>),
    Or(Box<Test>, Box<Test>),
}

impl Operand {
    fn of(e: &Expr) -> Option<Operand> {
        match e.expr_kind() {
            ExprKind::GetAttr { expr, attr } => match expr.expr_kind() {
                ExprKind::Var(v @ (Var::Principal | Var::Resource | Var::Context)) => {
                    Some(Operand::Attr(*v, attr.clone()))
                }
                _ => None,
            },
            ExprKind::Var(v @ (Var::Principal | Var::Resource)) => Some(Operand::Entity(*v)),
            ExprKind::Lit(l) => Some(Operand::Const(Value::from(l.clone()))),
            ExprKind::Set(items) => {
                let lits: Option<Vec<Value>> = items
                    .iter()
                    .map(|i| match i.expr_kind() {
                        ExprKind::Lit(l) => Some(Value::from(l.clone())),
                        _ => None,
                    })
                    .collect();
                Some(Operand::Const(Value::set(lits?, None)))
            }
            _ => None,
        }
    }

    fn value(&self, facts: &Facts<'_>) -> Option<Value> {
        let entity = |v: &Var| match v {
            Var::Principal => Some(facts.principal),
            Var::Resource => Some(facts.resource),
            _ => None,
        };
        match self {
            Operand::Attr(Var::Context, attr) => facts.context.get(attr).cloned(),
            Operand::Attr(v, attr) => match entity(v)?.get(attr)? {
                PartialValue::Value(value) => Some(value.clone()),
                PartialValue::Residual(_) => None,
            },
            Operand::Entity(v) => Some(Value::from(entity(v)?.uid().clone())),
            Operand::Const(value) => Some(value.clone()),
        }
    }
}

impl Test {
    /// The test for `e`, if every part of it has a known shape.
    pub(crate) fn of(e: &Expr) -> Option<Test> {
        let both = |a: &Expr, b: &Expr| Some((Box::new(Test::of(a)?), Box::new(Test::of(b)?)));
        match e.expr_kind() {
            ExprKind::Lit(Literal::Bool(b)) => Some(Test::Const(*b)),
            ExprKind::GetAttr { .. } => Operand::of(e).map(Test::Truthy),
            ExprKind::BinaryApp {
                op: BinaryOp::Eq,
                arg1,
                arg2,
            } => Some(Test::Equals(Operand::of(arg1)?, Operand::of(arg2)?)),
            ExprKind::BinaryApp {
                op: BinaryOp::Contains,
                arg1,
                arg2,
            } => Some(Test::Contains(Operand::of(arg1)?, Operand::of(arg2)?)),
            ExprKind::HasAttr { expr, attr } => match expr.expr_kind() {
                ExprKind::Var(v @ (Var::Principal | Var::Resource | Var::Context)) => {
                    Some(Test::Has(*v, attr.clone()))
                }
                _ => None,
            },
            ExprKind::UnaryApp {
                op: UnaryOp::Not,
                arg,
            } => Some(Test::Not(Box::new(Test::of(arg)?))),
            ExprKind::And { left, right } => both(left, right).map(|(l, r)| Test::And(l, r)),
            ExprKind::Or { left, right } => both(left, right).map(|(l, r)| Test::Or(l, r)),
            _ => None,
        }
    }

    /// Cedar's answer, or `None` when this module cannot be sure of it.
    pub(crate) fn eval(&self, facts: &Facts<'_>) -> Option<bool> {
        match self {
            Test::Const(b) => Some(*b),
            Test::Truthy(a) => match a.value(facts)?.value_kind() {
                ValueKind::Lit(Literal::Bool(b)) => Some(*b),
                _ => None,
            },
            Test::Equals(a, b) => Some(a.value(facts)? == b.value(facts)?),
            Test::Contains(set, item) => match set.value(facts)?.value_kind() {
                ValueKind::Set(s) => Some(s.contains(&item.value(facts)?)),
                _ => None,
            },
            Test::Has(Var::Context, attr) => Some(facts.context.contains_key(attr)),
            Test::Has(Var::Principal, attr) => Some(facts.principal.get(attr).is_some()),
            Test::Has(Var::Resource, attr) => Some(facts.resource.get(attr).is_some()),
            Test::Has(..) => None,
            Test::Not(t) => t.eval(facts).map(|b| !b),
            // Left first; the right side only when the left does not decide.
            Test::And(l, r) => match l.eval(facts)? {
                false => Some(false),
                true => r.eval(facts),
            },
            Test::Or(l, r) => match l.eval(facts)? {
                true => Some(true),
                false => r.eval(facts),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepared::{domain_uid, product_uid, record, string, strings};
    use cedar_policy_core::ast::{PolicyID, Request, StaticPolicy};
    use cedar_policy_core::entities::{Entities, NoEntitiesSchema, TCComputation};
    use cedar_policy_core::evaluator::Evaluator;
    use cedar_policy_core::extensions::Extensions;
    use std::collections::{HashMap, HashSet};

    fn entity(uid: cedar_policy_core::ast::EntityUID, attrs: Vec<(&str, Value)>) -> Entity {
        Entity::new_with_attr_partial_value(
            uid,
            attrs
                .into_iter()
                .map(|(k, v)| (SmolStr::new(k), PartialValue::Value(v))),
            HashSet::new(),
            HashSet::new(),
            [],
        )
    }

    /// Every answer given directly is the one Cedar's evaluator gives, over
    /// every shape this module reads, both outcomes, and the cases where it
    /// must defer (missing attributes, wrong types, other shapes).
    #[test]
    fn direct_answers_equal_cedars() {
        let principal = entity(
            domain_uid("c"),
            vec![
                ("sector", string("public")),
                ("jurisdiction", string("GB-SCT")),
                ("accreditations", strings(["dpia-process"])),
            ],
        );
        let resource = entity(
            product_uid("ns/p"),
            vec![
                ("domain", Value::from(domain_uid("c"))),
                ("classification", string("restricted")),
                ("personalData", Value::from(false)),
                ("region", string("GB")),
                ("tags", strings(["a", "b"])),
            ],
        );
        let context: ContextMap = [
            ("purpose", string("research")),
            ("ownerApproved", Value::from(true)),
            ("durationDays", Value::from(30_i64)),
            ("fieldClassifications", strings(["public"])),
            ("licence", record([("name", string("l"))])),
        ]
        .into_iter()
        .map(|(k, v)| (SmolStr::new(k), v))
        .collect();
        let store = Entities::new()
            .add_entities(
                [Arc::new(principal.clone()), Arc::new(resource.clone())],
                None::<&NoEntitiesSchema>,
                TCComputation::AssumeAlreadyComputed,
                Extensions::none(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let request = Request::new_unchecked(
            cedar_policy_core::ast::EntityUIDEntry::known(domain_uid("c"), None),
            cedar_policy_core::ast::EntityUIDEntry::known(domain_uid("act"), None),
            cedar_policy_core::ast::EntityUIDEntry::known(product_uid("ns/p"), None),
            Some(cedar_policy_core::ast::Context::Value(Arc::new(
                context.clone(),
            ))),
        );
        let evaluator = Evaluator::new(request, &store, Extensions::all_available());
        let facts = Facts {
            principal: &principal,
            resource: &resource,
            context: &context,
        };
        let conditions = [
            r#"resource.classification == "restricted""#,
            r#""open" == resource.classification"#,
            r#"resource.personalData"#,
            r#"!resource.personalData"#,
            r#"resource.classification"#,
            r#"resource.missing == "x""#,
            r#"resource has region"#,
            r#"resource has missing"#,
            r#"principal has sector"#,
            r#"context has purpose"#,
            r#"context has nothing"#,
            r#"resource.domain == principal"#,
            r#"resource == principal"#,
            r#"principal.jurisdiction != resource.region"#,
            r#"principal.accreditations.contains("dpia-process")"#,
            r#"principal.accreditations.contains("other")"#,
            r#"principal.sector.contains("p")"#,
            r#"["direct-care", "research"].contains(context.purpose)"#,
            r#"context.fieldClassifications.contains("identifier")"#,
            r#"context.ownerApproved"#,
            r#"context.durationDays"#,
            r#"context.licence.name == "l""#,
            r#"context.missing"#,
            r#"resource.personalData || resource.classification == "restricted""#,
            r#"resource.personalData || resource.missing"#,
            r#"resource.classification == "restricted" || resource.missing"#,
            r#"(resource.personalData && resource.missing) || context.ownerApproved"#,
            r#"resource.tags.contains("a") && !context.ownerApproved"#,
            r#"resource.domain.sector == principal.sector"#,
            r#"context.durationDays > 10"#,
            r#"true"#,
        ];
        let (mut direct, mut deferred) = (0, 0);
        for text in conditions {
            let policy = format!("permit (principal, action, resource) when {{ {text} }};");
            let parsed: StaticPolicy =
                cedar_policy_core::parser::parse_policy(Some(PolicyID::from_string("p")), &policy)
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
            let body = parsed
                .non_scope_constraints()
                .unwrap_or_else(|| panic!("{text}: no condition"));
            let cedar = evaluator.interpret(body, &HashMap::new());
            match Test::of(body).and_then(|t| t.eval(&facts)) {
                Some(answer) => {
                    direct += 1;
                    match cedar {
                        Ok(v) => assert_eq!(v, Value::from(answer), "{text}"),
                        Err(e) => panic!("{text}: answered {answer}, Cedar errs: {e}"),
                    }
                }
                None => deferred += 1,
            }
        }
        assert!(
            direct >= 20 && deferred >= 6,
            "{direct} direct, {deferred} deferred"
        );
    }

    /// The `&&` chain is split in evaluation order, each part with the rest.
    #[test]
    fn split_keeps_evaluation_order() {
        let policy = "permit (principal, action, resource) when { resource.a && (resource.b && context.c) && principal.d };";
        let parsed: StaticPolicy =
            cedar_policy_core::parser::parse_policy(Some(PolicyID::from_string("p")), policy)
                .unwrap_or_else(|e| panic!("{e}"));
        let body = parsed
            .non_scope_constraints()
            .unwrap_or_else(|| panic!("no condition"));
        let parts = split(body);
        let attrs: Vec<String> = parts
            .iter()
            .map(|c| match &c.test {
                Some(Test::Truthy(Operand::Attr(_, a))) => a.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(attrs, ["a", "b", "c", "d"]);
        let mut whole = Vec::new();
        flatten(&parts[0].rest, &mut whole);
        assert_eq!(whole.len(), 4);
        assert!(matches!(
            parts[3].rest.expr_kind(),
            ExprKind::GetAttr { .. }
        ));
    }
}
