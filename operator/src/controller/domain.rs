//! Domain controller: labels the domain's namespaces, grants its team edit
//! rights on the domain's own datamesh objects (a Role and RoleBinding in each
//! of its namespaces, owned by the Domain so they go when it goes), and
//! records which namespaces it holds.

use super::{drain, error_policy, instrumented};
use crate::context::Context;
use crate::{MANAGER, Result, checks, status};
use datamesh_crds::condition::{self, READY};
use datamesh_crds::{DOMAIN_LABEL, Domain, DomainStatus};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Name of the Role and RoleBinding made in each of a domain's namespaces.
pub const TEAM_ROLE: &str = "datamesh-domain-team";

/// Runs the Domain controller.
pub async fn run(ctx: Arc<Context>) {
    let api = Api::<Domain>::all(ctx.client.clone());
    let domains = ctx.stores.domains.clone();
    let stream = Controller::new(api, crate::controller::watch_config())
        // a namespace appearing (or being relabelled) may complete a domain
        .watches(
            Api::<Namespace>::all(ctx.client.clone()),
            crate::controller::watch_config(),
            move |ns| {
                let name = ns.name_any();
                domains
                    .state()
                    .into_iter()
                    .filter(|d| d.spec.namespaces.iter().any(|n| n.0 == name))
                    .map(|d| ObjectRef::from_obj(&*d))
                    .collect::<Vec<_>>()
            },
        )
        .owns(
            Api::<Role>::all(ctx.client.clone()),
            crate::controller::watch_config(),
        )
        .owns(
            Api::<RoleBinding>::all(ctx.client.clone()),
            crate::controller::watch_config(),
        )
        .with_config(super::controller_config())
        .trigger_backoff(super::TriggerBackoff::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Domain", stream).await;
}

#[tracing::instrument(skip_all, fields(kind = "Domain", name = %domain.name_any()))]
async fn reconcile(domain: Arc<Domain>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, "Domain", reconcile_inner(domain, &ctx)).await
}

async fn reconcile_inner(domain: Arc<Domain>, ctx: &Context) -> Result<Action> {
    let name = domain.name_any();
    let existing: BTreeSet<String> = ctx
        .stores
        .namespaces
        .state()
        .iter()
        .map(|n| n.name_any())
        .collect();
    // A namespace labelled for another Domain that still exists stays theirs.
    let claimed_by_others: Vec<(String, String)> = domain
        .spec
        .namespaces
        .iter()
        .filter_map(|n| {
            let ns = ctx.stores.namespaces.get(&ObjectRef::new(&n.0))?;
            let owner = ns.labels().get(DOMAIN_LABEL)?.clone();
            let other_exists = ctx.stores.domains.get(&ObjectRef::new(&owner)).is_some();
            (owner != name && other_exists).then(|| (n.0.clone(), owner))
        })
        .collect();
    let readiness = checks::domain(&domain, &existing, &claimed_by_others);

    let mut held = Vec::new();
    for ns in domain.spec.namespaces.iter().map(|n| &n.0) {
        let terminating = ctx
            .stores
            .namespaces
            .get(&ObjectRef::new(ns))
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some());
        // nothing can be created in a namespace that is going away
        if !existing.contains(ns) || terminating || claimed_by_others.iter().any(|(c, _)| c == ns) {
            continue;
        }
        label_namespace(ctx, ns, &name).await?;
        grant_team(ctx, &domain, ns).await?;
        held.push(ns.clone());
    }

    let api = Api::<Domain>::all(ctx.client.clone());
    let generation = domain.metadata.generation;
    let mut next = domain.status.clone().unwrap_or_default();
    next.observed_generation = generation;
    next.namespaces = held;
    let was_ready = condition::is_true(&next.conditions, READY);
    condition::set(
        &mut next.conditions,
        condition::new(
            READY,
            readiness.ready,
            readiness.reason,
            &readiness.message,
            generation,
            jiff::Timestamp::now(),
        ),
    );
    if status::apply_if_changed::<Domain, DomainStatus>(&api, &name, domain.status.as_ref(), &next)
        .await?
    {
        ctx.metrics.wrote("Domain", "status");
        if was_ready != readiness.ready || domain.status.is_none() {
            super::publish_readiness(ctx, &*domain, &readiness).await;
        }
    }
    Ok(Action::await_change())
}

async fn label_namespace(ctx: &Context, ns: &str, domain: &str) -> Result<()> {
    let current = ctx.stores.namespaces.get(&ObjectRef::new(ns));
    if current
        .as_ref()
        .and_then(|n| n.labels().get(DOMAIN_LABEL))
        .map(String::as_str)
        == Some(domain)
    {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {DOMAIN_LABEL: domain}},
    });
    Api::<Namespace>::all(ctx.client.clone())
        .patch(
            ns,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.wrote("Namespace", "label");
    Ok(())
}

/// The rights a domain team has in its own namespaces: its products, its
/// agreements (as a consumer), approvals of requests for its products, and
/// reading the Secrets there (its granted credentials).
fn team_rules() -> Vec<PolicyRule> {
    let rule = |resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![datamesh_crds::GROUP.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let edit = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    vec![
        rule(
            &[
                "dataproducts",
                "datasharingagreements",
                "agreementapprovals",
            ],
            &edit,
        ),
        rule(
            &[
                "dataproducts/status",
                "datasharingagreements/status",
                "agreementapprovals/status",
            ],
            &["get"],
        ),
    ]
}

async fn grant_team(ctx: &Context, domain: &Domain, ns: &str) -> Result<()> {
    let owner = domain
        .controller_owner_ref(&())
        .ok_or(crate::Error::MissingField("metadata.uid"))?;
    let meta = ObjectMeta {
        name: Some(TEAM_ROLE.into()),
        namespace: Some(ns.into()),
        owner_references: Some(vec![owner]),
        labels: Some([(DOMAIN_LABEL.to_string(), domain.name_any())].into()),
        ..Default::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(team_rules()),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: TEAM_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: domain.spec.team_group_or_default(&domain.name_any()),
            namespace: None,
        }]),
    };
    let roles = Api::<Role>::namespaced(ctx.client.clone(), ns);
    let current = roles.get_opt(TEAM_ROLE).await?;
    if current
        .as_ref()
        .map(|r| (&r.rules, &r.metadata.owner_references))
        != Some((&role.rules, &role.metadata.owner_references))
    {
        roles
            .patch(
                TEAM_ROLE,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&apply_body(&role)?),
            )
            .await?;
        ctx.metrics.wrote("Role", "rbac");
    }
    let bindings = Api::<RoleBinding>::namespaced(ctx.client.clone(), ns);
    let current = bindings.get_opt(TEAM_ROLE).await?;
    if current
        .as_ref()
        .map(|b| (&b.subjects, &b.role_ref, &b.metadata.owner_references))
        != Some((
            &binding.subjects,
            &binding.role_ref,
            &binding.metadata.owner_references,
        ))
    {
        bindings
            .patch(
                TEAM_ROLE,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&apply_body(&binding)?),
            )
            .await?;
        ctx.metrics.wrote("RoleBinding", "rbac");
    }
    Ok(())
}

/// A typed object as a server-side-apply body (with apiVersion and kind).
fn apply_body<K: Resource<DynamicType = ()> + serde::Serialize>(
    obj: &K,
) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(obj)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
    }
    Ok(v)
}
