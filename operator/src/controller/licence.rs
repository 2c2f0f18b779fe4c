//! Licence controller: a Licence is Ready once the schema has accepted it;
//! its status records the generation observed.

use super::{drain, error_policy, instrumented};
use crate::context::Context;
use crate::{Result, status};
use datamesh_crds::condition::{self, READY};
use datamesh_crds::{Licence, LicenceStatus};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;

/// Runs the Licence controller.
pub async fn run(ctx: Arc<Context>) {
    let api = Api::<Licence>::all(ctx.client.clone());
    let stream = Controller::new(api, crate::controller::watch_config())
        .with_config(super::controller_config())
        .trigger_backoff(super::TriggerBackoff::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Licence", stream).await;
}

#[tracing::instrument(skip_all, fields(kind = "Licence", name = %licence.name_any()))]
async fn reconcile(licence: Arc<Licence>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, "Licence", async {
        let api = Api::<Licence>::all(ctx.client.clone());
        let generation = licence.metadata.generation;
        let mut next = licence.status.clone().unwrap_or_default();
        next.observed_generation = generation;
        condition::set(
            &mut next.conditions,
            condition::new(
                READY,
                true,
                "Accepted",
                format!("{} version {}", licence.spec.title, licence.spec.version),
                generation,
                jiff::Timestamp::now(),
            ),
        );
        if status::apply_if_changed::<Licence, LicenceStatus>(
            &api,
            &licence.name_any(),
            licence.status.as_ref(),
            &next,
        )
        .await?
        {
            ctx.metrics.wrote("Licence", "status");
        }
        Ok(Action::await_change())
    })
    .await
}
