//! GovernancePolicy controller: validates each object's policies together
//! with everything else in force. A valid text goes into force (and every
//! agreement is decided again); an invalid one gets Valid=False with each
//! error's policy id, line and column, and the previous text stays in force.

use super::{drain, error_policy, instrumented};
use crate::context::Context;
use crate::{Error, Result, status};
use datamesh_crds::condition::{self, VALID};
use datamesh_crds::{GovernancePolicy, GovernancePolicyStatus};
use datamesh_policies::PolicySource;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;

/// Finalizer that takes a deleted object's policies out of force.
pub const FINALIZER: &str = "datamesh.dev/policy-in-force";

/// Runs the GovernancePolicy controller.
pub async fn run(ctx: Arc<Context>) {
    let api = Api::<GovernancePolicy>::all(ctx.client.clone());
    let stream = Controller::new(api, crate::controller::watch_config())
        .with_config(super::controller_config())
        .trigger_backoff(super::TriggerBackoff::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("GovernancePolicy", stream).await;
}

#[tracing::instrument(skip_all, fields(kind = "GovernancePolicy", name = %gp.name_any()))]
async fn reconcile(gp: Arc<GovernancePolicy>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, "GovernancePolicy", async {
        let api = Api::<GovernancePolicy>::all(ctx.client.clone());
        finalizer(&api, FINALIZER, gp, |event| async {
            match event {
                Finalizer::Apply(gp) => apply(&gp, &ctx).await,
                Finalizer::Cleanup(gp) => {
                    // AUDIT: the withdrawal is on record before it takes effect.
                    let record = crate::audit::events::policy_record(&gp, "Withdrawn", None, "GovernancePolicy deleted");
                    ctx.audit.append(&record).await?;
                    match ctx.policy.remove(&gp.name_any()) {
                        Ok(version) => tracing::info!(%version, "policies withdrawn"),
                        Err(e) => tracing::error!(error = %e, "policy set without this object does not validate"),
                    }
                    Ok(Action::await_change())
                }
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        })
    })
    .await
}

async fn apply(gp: &GovernancePolicy, ctx: &Context) -> Result<Action> {
    let name = gp.name_any();
    let generation = gp.metadata.generation;
    let mut next = gp.status.clone().unwrap_or_default();
    next.observed_generation = generation;
    let now = jiff::Timestamp::now();
    let was_valid = condition::get(&next.conditions, VALID).map(|c| c.status == "True");
    let outcome = ctx
        .policy
        .propose(&name, PolicySource::from_governance_policy(gp));
    let (valid, message) = match &outcome {
        Ok(version) => {
            let ids = ctx
                .policy
                .engine()
                .policy_ids_from(&format!("GovernancePolicy/{name}"));
            next.policy_count = Some(ids.len() as u32);
            next.policy_ids = ids;
            next.errors.clear();
            next.in_force = Some(gp.spec.policies.clone());
            (
                true,
                format!(
                    "{} policies in force (policy set {version})",
                    next.policy_ids.len()
                ),
            )
        }
        Err(errors) => {
            next.errors = errors.iter().map(|e| e.to_record()).collect();
            let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
            let kept = if next.in_force.is_some() {
                "the previous version stays in force"
            } else {
                "none of it is in force"
            };
            (
                false,
                format!("{} error(s); {kept}. First: {first}", errors.len()),
            )
        }
    };
    condition::set(
        &mut next.conditions,
        condition::new(
            VALID,
            valid,
            if valid { "Valid" } else { "Invalid" },
            &message,
            generation,
            now,
        ),
    );
    // AUDIT: recorded before the status says so. (The set is already in
    // force in memory; a failed append fails the reconcile and is retried.)
    let record = match &outcome {
        Ok(version) => crate::audit::events::policy_record(gp, "InForce", Some(version), &message),
        Err(_) => crate::audit::events::policy_record(gp, "Refused", None, &message),
    };
    ctx.audit.append(&record).await?;
    let api = Api::<GovernancePolicy>::all(ctx.client.clone());
    if status::apply_if_changed::<GovernancePolicy, GovernancePolicyStatus>(
        &api,
        &name,
        gp.status.as_ref(),
        &next,
    )
    .await?
    {
        ctx.metrics.wrote("GovernancePolicy", "status");
        if was_valid != Some(valid)
            || outcome.is_ok()
                && gp.status.as_ref().and_then(|s| s.in_force.as_ref()) != Some(&gp.spec.policies)
        {
            let event = Event {
                type_: if valid {
                    EventType::Normal
                } else {
                    EventType::Warning
                },
                reason: if valid {
                    "PoliciesInForce".into()
                } else {
                    "PoliciesRefused".into()
                },
                note: Some(message),
                action: "Validate".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&event, &gp.object_ref(&())).await {
                tracing::warn!(error = %e, "cannot publish event");
            }
        }
    }
    Ok(Action::await_change())
}
