//! The agreement lifecycle against the real API server, with the operator as
//! a process: decisions, approval by the provider (and refusal of anyone
//! else), denial with reasons, re-decision on policy and licence changes,
//! expiry, product deletion, crash recovery and leader election; the
//! finalizers added at creation by the chart's MutatingAdmissionPolicies, and
//! by the operator where they are missing.

use datamesh_crds::agreement::AgreementPhase;
use datamesh_crds::{
    AgreementApproval, DataProduct, DataSharingAgreement, Domain, GovernancePolicy, Licence,
};
use datamesh_e2e::{fixtures, pg, *};
use datamesh_operator::controller::agreement::FINALIZER as AGREEMENT_FINALIZER;
use datamesh_operator::controller::product::FINALIZER as PRODUCT_FINALIZER;
use kube::api::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A provider (transport) with products, a consumer (mobility), a licence.
struct World {
    client: Client,
    provider: String,
    provider_ns: String,
    consumer: String,
    consumer_ns: String,
    licence: String,
    /// Whether the API server adds the finalizers at creation (admission-finalizers.yaml).
    finalizers_at_admission: bool,
}

impl World {
    async fn new(consumer_sector: &str) -> anyhow::Result<Self> {
        let client = admin().await?;
        install_crds(&client).await?;
        let finalizers_at_admission = install_admission(&client).await?;
        let w = World {
            provider: unique("transport"),
            provider_ns: unique("transport"),
            consumer: unique("mobility"),
            consumer_ns: unique("mobility"),
            licence: unique("ogl"),
            finalizers_at_admission,
            client,
        };
        create_namespace(&w.client, &w.provider_ns).await?;
        create_namespace(&w.client, &w.consumer_ns).await?;
        // Active means granted: the products' postgres port must exist.
        pg::fixture_store(&w.client, &w.provider_ns).await?;
        create(
            &Api::<Licence>::all(w.client.clone()),
            fixtures::licence(&w.licence),
        )
        .await?;
        let domains = Api::<Domain>::all(w.client.clone());
        create(
            &domains,
            fixtures::domain_with(&w.provider, &[&w.provider_ns], "public", &["dpia-process"]),
        )
        .await?;
        create(
            &domains,
            fixtures::domain_with(&w.consumer, &[&w.consumer_ns], consumer_sector, &[]),
        )
        .await?;
        Ok(w)
    }

    fn products(&self) -> Api<DataProduct> {
        Api::namespaced(self.client.clone(), &self.provider_ns)
    }

    fn agreements(&self) -> Api<DataSharingAgreement> {
        Api::namespaced(self.client.clone(), &self.consumer_ns)
    }

    async fn product(&self, name: &str, classification: &str) -> anyhow::Result<()> {
        let mut p = fixtures::product(name, &self.provider_ns, &self.provider, &self.licence);
        p["spec"]["classification"] = json!(classification);
        create(&self.products(), p).await?;
        Ok(())
    }

    async fn request(&self, name: &str, product: &str, end: &str) -> anyhow::Result<()> {
        let a = fixtures::agreement(
            name,
            &self.consumer_ns,
            &self.consumer,
            (&self.provider_ns, product),
            (&self.licence, "3.0"),
            end,
        );
        create(&self.agreements(), a).await?;
        Ok(())
    }

    async fn phase(
        &self,
        name: &str,
        want: AgreementPhase,
    ) -> anyhow::Result<DataSharingAgreement> {
        let api = self.agreements();
        let name = name.to_string();
        wait_for(WAIT, || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let a = api.get(&name).await.ok()?;
                (a.status.as_ref()?.phase == Some(want)).then_some(a)
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("agreement {name} never reached {want:?}: {e}"))
    }

    async fn cleanup(self) {
        delete_namespace(&self.client, &self.provider_ns).await;
        delete_namespace(&self.client, &self.consumer_ns).await;
        let _ = Api::<Domain>::all(self.client.clone())
            .delete(&self.provider, &Default::default())
            .await;
        let _ = Api::<Domain>::all(self.client.clone())
            .delete(&self.consumer, &Default::default())
            .await;
        let _ = Api::<Licence>::all(self.client.clone())
            .delete(&self.licence, &Default::default())
            .await;
    }
}

fn reason_ids(a: &DataSharingAgreement) -> Vec<String> {
    a.status
        .as_ref()
        .and_then(|s| s.decision.as_ref())
        .map(|d| d.reasons.iter().map(|r| r.id.clone()).collect())
        .unwrap_or_default()
}

async fn events_for(client: &Client, ns: &str, name: &str, reason: &str) -> anyhow::Result<i32> {
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await?;
    Ok(events
        .items
        .iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .map(|e| e.series.as_ref().map(|s| s.count).unwrap_or(1))
        .sum())
}

/// Waits until at least one such Event exists (Events follow the status
/// write), then returns how many there are.
async fn wait_events(client: &Client, ns: &str, name: &str, reason: &str) -> anyhow::Result<i32> {
    wait_for(WAIT, || async move {
        events_for(client, ns, name, reason)
            .await
            .ok()
            .filter(|n| *n > 0)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    events_for(client, ns, name, reason).await
}

#[tokio::test]
async fn open_product_becomes_active_and_expires_at_its_end() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    let _op = Operator::start().await?;
    w.product("bus", "open").await?;
    w.request("plan", "bus", "2027-06-30T00:00:00Z").await?;
    let a = w.phase("plan", AgreementPhase::Active).await?;
    let s = a.status.clone().unwrap_or_default();
    assert_eq!(s.granted_fields, vec!["route", "on_time_pct"]);
    assert_eq!(s.active_until.as_deref(), Some("2027-06-30T00:00:00Z"));
    assert!(
        reason_ids(&a).contains(&"open-read".to_string()),
        "{:?}",
        reason_ids(&a)
    );
    assert_eq!(s.licence.as_ref().map(|l| l.version.as_str()), Some("3.0"));
    assert!(
        s.licence
            .as_ref()
            .and_then(|l| l.attribution.as_ref())
            .is_some(),
        "attribution carried into the grant"
    );

    // Expiry happens at the end time, without anyone touching the object.
    w.request("short", "bus", &fixtures::in_secs(4)).await?;
    w.phase("short", AgreementPhase::Active).await?;
    let expired = w.phase("short", AgreementPhase::Expired).await?;
    let ended: jiff::Timestamp = expired
        .status
        .as_ref()
        .and_then(|s| s.ended_at.clone())
        .unwrap_or_default()
        .parse()?;
    let end: jiff::Timestamp = expired.spec.end.parse()?;
    assert_eq!(ended, end, "ended exactly at spec.end");
    assert_eq!(
        wait_events(&w.client, &w.consumer_ns, "short", "Expired").await?,
        1
    );
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn restricted_product_needs_the_providers_approval_and_only_theirs() -> anyhow::Result<()> {
    let w = World::new("public").await?;
    let _op = Operator::start().await?;
    w.product("fares", "restricted").await?;
    w.request("fares-study", "fares", "2027-06-30T00:00:00Z")
        .await?;
    let a = w
        .phase("fares-study", AgreementPhase::PendingApproval)
        .await?;
    assert!(
        reason_ids(&a).contains(&"restricted-owner-approved".to_string()),
        "{:?}",
        reason_ids(&a)
    );

    // The domain controller gave each team rights in its own namespaces only.
    wait_for(WAIT, || {
        let roles = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(
            w.client.clone(),
            &w.provider_ns,
        );
        async move { roles.get("datamesh-domain-team").await.ok() }
    })
    .await?;
    let consumer_user = unique("carol");
    let consumer_kc = user_kubeconfig(&consumer_user, &[&format!("datamesh:{}", w.consumer)])?;
    let consumer = client_from(&consumer_kc).await?;
    let provider_user = unique("pat");
    let provider_kc = user_kubeconfig(&provider_user, &[&format!("datamesh:{}", w.provider)])?;
    let provider = client_from(&provider_kc).await?;
    wait_for(WAIT, || {
        let roles = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(
            w.client.clone(),
            &w.consumer_ns,
        );
        async move { roles.get("datamesh-domain-team").await.ok() }
    })
    .await?;

    // The consumer cannot approve its own request: RBAC refuses it in the provider's namespace.
    let as_consumer = Api::<AgreementApproval>::namespaced(consumer.clone(), &w.provider_ns);
    let refused = create(
        &as_consumer,
        fixtures::approval(
            "self-approve",
            &w.provider_ns,
            (&w.consumer_ns, "fares-study"),
            &consumer_user,
            true,
        ),
    )
    .await;
    let msg = format!("{:?}", refused.err());
    assert!(
        msg.contains("forbidden") || msg.contains("Forbidden"),
        "consumer approval refused by RBAC: {msg}"
    );
    // An approval in the consumer's own namespace is allowed by RBAC but means nothing.
    let own = Api::<AgreementApproval>::namespaced(consumer, &w.consumer_ns);
    create(
        &own,
        fixtures::approval(
            "self-approve",
            &w.consumer_ns,
            (&w.consumer_ns, "fares-study"),
            &consumer_user,
            true,
        ),
    )
    .await?;

    // Nobody can approve in someone else's name (admission policy).
    let as_provider = Api::<AgreementApproval>::namespaced(provider.clone(), &w.provider_ns);
    let forged = create(
        &as_provider,
        fixtures::approval(
            "forged",
            &w.provider_ns,
            (&w.consumer_ns, "fares-study"),
            "someone-else",
            true,
        ),
    )
    .await;
    let msg = format!("{:?}", forged.err());
    assert!(
        msg.contains("spec.approver must be the user creating the approval"),
        "{msg}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.agreements()
            .get("fares-study")
            .await?
            .status
            .and_then(|s| s.phase),
        Some(AgreementPhase::PendingApproval)
    );

    // The provider approves: Active, with who approved recorded.
    create(
        &as_provider,
        fixtures::approval(
            "ok",
            &w.provider_ns,
            (&w.consumer_ns, "fares-study"),
            &provider_user,
            true,
        ),
    )
    .await?;
    let a = w.phase("fares-study", AgreementPhase::Active).await?;
    let approval = a.status.and_then(|s| s.approval).unwrap_or_default();
    assert_eq!(approval.by, provider_user);
    assert_eq!(approval.decision, "Approved");

    // A second request denied by the provider is Denied with the provider's reason.
    w.request("fares-again", "fares", "2027-06-30T00:00:00Z")
        .await?;
    w.phase("fares-again", AgreementPhase::PendingApproval)
        .await?;
    create(
        &as_provider,
        fixtures::approval(
            "no",
            &w.provider_ns,
            (&w.consumer_ns, "fares-again"),
            &provider_user,
            false,
        ),
    )
    .await?;
    let a = w.phase("fares-again", AgreementPhase::Denied).await?;
    let reasons = a
        .status
        .and_then(|s| s.decision)
        .map(|d| d.reasons)
        .unwrap_or_default();
    assert!(
        reasons
            .iter()
            .any(|r| r.kind == "approval" && r.message.contains(&provider_user)),
        "{reasons:?}"
    );
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn denied_request_shows_the_policy_reasons() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    let _op = Operator::start().await?;
    let mut p = fixtures::product("care", &w.provider_ns, &w.provider, &w.licence);
    p["spec"]["classification"] = json!("personal");
    p["spec"]["personalData"] = json!(true);
    p["spec"]["lawfulBasis"] = json!("publicTask");
    p["spec"]["dpiaReference"] = json!("DPIA-2026-014");
    create(&w.products(), p).await?;
    w.request("care-marketing", "care", "2027-06-30T00:00:00Z")
        .await?;
    let a = w.phase("care-marketing", AgreementPhase::Denied).await?;
    let ids = reason_ids(&a);
    assert!(
        ids.contains(&"personal-data-accredited".to_string()),
        "{ids:?}"
    );
    let ready = a.status.map(|s| s.conditions).unwrap_or_default();
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Denied")
    );
    assert_eq!(
        wait_events(&w.client, &w.consumer_ns, "care-marketing", "Denied").await?,
        1
    );
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_new_forbid_revokes_and_an_invalid_policy_changes_nothing() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    let _op = Operator::start().await?;
    w.product("bus", "open").await?;
    w.request("plan", "bus", "2027-06-30T00:00:00Z").await?;
    let before = w.phase("plan", AgreementPhase::Active).await?;

    // An invalid policy: Valid=False naming the line, nothing else changes.
    let gps = Api::<GovernancePolicy>::all(w.client.clone());
    let bad = unique("bad-policy");
    create(&gps, json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "GovernancePolicy", "metadata": {"name": bad},
        "spec": {"policies": "@id(\"broken\")\n@reason(\"x\")\nforbid (principal, action, resource)\nwhen { context.nonsense == 1 };"}
    })).await?;
    let status = wait_for(WAIT, || {
        let gps = gps.clone();
        let bad = bad.clone();
        async move {
            let gp = gps.get(&bad).await.ok()?;
            let s = gp.status?;
            s.conditions
                .iter()
                .any(|c| c.type_ == "Valid" && c.status == "False")
                .then_some(s)
        }
    })
    .await?;
    assert!(!status.errors.is_empty());
    assert!(
        status.errors.iter().any(|e| e.line == Some(4)),
        "error names line 4: {:?}",
        status.errors
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.agreements().get("plan").await?.status,
        before.status,
        "an invalid policy changed nothing"
    );
    gps.delete(&bad, &Default::default()).await?;

    // A valid forbid for this purpose revokes the Active agreement, naming the new policy.
    let good = unique("no-planning");
    create(&gps, json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "GovernancePolicy", "metadata": {"name": good},
        "spec": {"policies": format!("@id(\"{good}\")\n@reason(\"service planning by this firm is paused\")\nforbid (principal, action in [DataMesh::Action::\"Read\", DataMesh::Action::\"Subscribe\"], resource)\nwhen {{ context.purpose == \"service-planning\" && principal == DataMesh::Domain::\"{}\" }};", w.consumer)}
    })).await?;
    let a = w.phase("plan", AgreementPhase::Revoked).await?;
    assert!(reason_ids(&a).contains(&good), "{:?}", reason_ids(&a));
    assert_eq!(
        wait_events(&w.client, &w.consumer_ns, "plan", "Revoked").await?,
        1
    );
    let _ = gps.delete(&good, &Default::default()).await;
    // the operator takes the policy out of force before it is gone
    wait_for(WAIT, || {
        let gps = gps.clone();
        let good = good.clone();
        async move { gps.get_opt(&good).await.ok()?.is_none().then_some(()) }
    })
    .await?;
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_shortened_licence_ends_agreements_at_the_new_limit() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    let _op = Operator::start().await?;
    w.product("bus", "open").await?;
    w.request("plan", "bus", "2027-06-30T00:00:00Z").await?;
    let a = w.phase("plan", AgreementPhase::Active).await?;
    let from: jiff::Timestamp = a
        .status
        .as_ref()
        .and_then(|s| s.active_from.clone())
        .unwrap_or_default()
        .parse()?;

    let patch = json!({"spec": {"maxDurationDays": 30}});
    Api::<Licence>::all(w.client.clone())
        .patch(&w.licence, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let want = (from + jiff::SignedDuration::from_hours(24 * 30)).to_string();
    let api = w.agreements();
    let until = wait_for(WAIT, || {
        let api = api.clone();
        let want = want.clone();
        async move {
            let a = api.get("plan").await.ok()?;
            let s = a.status?;
            (s.active_until.as_deref() == Some(want.as_str())
                && s.phase == Some(AgreementPhase::Active))
            .then_some(want)
        }
    })
    .await?;
    assert_eq!(until, want);
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn retirement_and_sunset_end_agreements_and_unaffected_ones_are_left_alone()
-> anyhow::Result<()> {
    let w = World::new("private").await?;
    let _op = Operator::start().await?;
    w.product("bus", "open").await?;
    w.product("tickets", "open").await?;
    w.product("other", "open").await?;
    w.request("on-bus", "bus", "2027-06-30T00:00:00Z").await?;
    w.request("on-tickets", "tickets", "2027-06-30T00:00:00Z")
        .await?;
    w.request("on-other", "other", "2027-06-30T00:00:00Z")
        .await?;
    for name in ["on-bus", "on-tickets", "on-other"] {
        w.phase(name, AgreementPhase::Active).await?;
    }
    let untouched = w
        .agreements()
        .get("on-other")
        .await?
        .metadata
        .resource_version;

    // Retiring a product ends every agreement on it, naming the policy.
    let retire = json!({"spec": {"lifecycle": {"stage": "retired"}}});
    w.products()
        .patch("bus", &PatchParams::default(), &Patch::Merge(&retire))
        .await?;
    let a = w.phase("on-bus", AgreementPhase::Revoked).await?;
    assert!(
        reason_ids(&a).contains(&"retired-never".to_string()),
        "{:?}",
        reason_ids(&a)
    );

    // Deprecating with a sunset date keeps existing agreements until the sunset, then they expire.
    let sunset = fixtures::in_secs(5);
    let deprecate = json!({"spec": {"lifecycle": {"stage": "deprecated", "sunsetDate": sunset}}});
    w.products()
        .patch(
            "tickets",
            &PatchParams::default(),
            &Patch::Merge(&deprecate),
        )
        .await?;
    let api = w.agreements();
    let want: jiff::Timestamp = sunset.parse()?;
    wait_for(WAIT, || {
        let api = api.clone();
        async move {
            let s = api.get("on-tickets").await.ok()?.status?;
            let until: jiff::Timestamp = s.active_until?.parse().ok()?;
            (until == want && s.phase == Some(AgreementPhase::Active)).then_some(())
        }
    })
    .await?;
    let a = w.phase("on-tickets", AgreementPhase::Expired).await?;
    assert_eq!(
        a.status
            .and_then(|s| s.ended_at)
            .map(|t| t.parse::<jiff::Timestamp>().ok()),
        Some(Some(want))
    );

    // A policy change decides every agreement again; one still allowed is not written.
    let gps = Api::<GovernancePolicy>::all(w.client.clone());
    let gp = unique("unrelated");
    create(&gps, json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "GovernancePolicy", "metadata": {"name": gp},
        "spec": {"policies": format!("@id(\"{gp}\")\n@reason(\"no sharing with a domain that does not exist\")\nforbid (principal == DataMesh::Domain::\"nobody-{gp}\", action, resource);")}
    })).await?;
    wait_for(WAIT, || {
        let gps = gps.clone();
        let gp = gp.clone();
        async move {
            gps.get(&gp)
                .await
                .ok()?
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Valid" && c.status == "True")
                .then_some(())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.agreements()
            .get("on-other")
            .await?
            .metadata
            .resource_version,
        untouched
    );
    gps.delete(&gp, &Default::default()).await?;
    wait_for(WAIT, || {
        let gps = gps.clone();
        let gp = gp.clone();
        async move { gps.get_opt(&gp).await.ok()?.is_none().then_some(()) }
    })
    .await?;
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn deleting_a_product_revokes_its_agreements_first() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    let _op = Operator::start().await?;
    w.product("bus", "open").await?;
    for name in ["a1", "a2"] {
        w.request(name, "bus", "2027-06-30T00:00:00Z").await?;
        w.phase(name, AgreementPhase::Active).await?;
    }
    w.products().delete("bus", &Default::default()).await?;
    for name in ["a1", "a2"] {
        let a = w.phase(name, AgreementPhase::Revoked).await?;
        assert!(
            reason_ids(&a).contains(&"ProductDeleted".to_string()),
            "{:?}",
            reason_ids(&a)
        );
    }
    let products = w.products();
    wait_for(WAIT, || {
        let products = products.clone();
        async move { products.get_opt("bus").await.ok()?.is_none().then_some(()) }
    })
    .await?;
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_killed_operator_converges_every_agreement_exactly_once() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    w.product("bus", "open").await?;
    w.product("fares", "restricted").await?;
    let lease = unique("crash-lease");
    let args = ["--lease-name", lease.as_str(), "--lease-seconds", "3"];
    let kc = admin_kubeconfig()?;
    let op = Operator::start_with(&kc, &args).await?;
    let api = w.agreements();
    let pp = PostParams::default();
    for i in 0..200usize {
        let product = if i.is_multiple_of(4) { "fares" } else { "bus" };
        let a = fixtures::agreement(
            &format!("req-{i}"),
            &w.consumer_ns,
            &w.consumer,
            (&w.provider_ns, product),
            (&w.licence, "3.0"),
            "2027-06-30T00:00:00Z",
        );
        api.create(&pp, &serde_json::from_value(a)?).await?;
        if i == 120 {
            op_kill_soon(&op).await;
        }
    }
    op.kill().await?;
    let op = Operator::start_with(&kc, &args).await?;
    let all = wait_for(Duration::from_secs(120), || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.ok()?;
            let done = list
                .items
                .iter()
                .filter(|a| {
                    matches!(
                        a.status.as_ref().and_then(|s| s.phase),
                        Some(AgreementPhase::Active) | Some(AgreementPhase::PendingApproval)
                    )
                })
                .count();
            (done == 200).then_some(list.items)
        }
    })
    .await?;
    // a second Activated Event would come through the operator's queue
    settled_events(&w.client, &w.consumer_ns, Duration::from_secs(120)).await?;
    for a in &all {
        let want = if a.spec.product.name == "fares" {
            AgreementPhase::PendingApproval
        } else {
            AgreementPhase::Active
        };
        assert_eq!(
            a.status.as_ref().and_then(|s| s.phase),
            Some(want),
            "{:?}",
            a.metadata.name
        );
        if want == AgreementPhase::Active {
            let n = events_for(
                &w.client,
                &w.consumer_ns,
                a.metadata.name.as_deref().unwrap_or_default(),
                "Activated",
            )
            .await?;
            assert!(n <= 1, "activated {n} times");
        }
    }
    drop(op);
    w.cleanup().await;
    Ok(())
}

/// Lets the operator work on part of the batch before it is killed.
async fn op_kill_soon(_op: &Operator) {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn of_two_operators_only_the_leader_writes() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    let lease = unique("ha-lease");
    let args = ["--lease-name", lease.as_str(), "--lease-seconds", "10"];
    let kc = admin_kubeconfig()?;
    let a = Operator::start_with(&kc, &args).await?;
    let b = Operator::start_with(&kc, &args).await?;
    w.product("bus", "open").await?;
    w.request("plan", "bus", "2027-06-30T00:00:00Z").await?;
    w.phase("plan", AgreementPhase::Active).await?;
    let (la, lb) = (
        a.counter("datamesh_leader", "").await?,
        b.counter("datamesh_leader", "").await?,
    );
    assert_eq!(la + lb, 1.0, "exactly one leader");
    let (leader, follower) = if la == 1.0 { (&a, &b) } else { (&b, &a) };
    assert!(leader.counter("datamesh_api_writes_total", "").await? > 0.0);
    assert_eq!(
        follower.counter("datamesh_api_writes_total", "").await?,
        0.0,
        "the follower wrote"
    );
    assert_eq!(
        follower.counter("datamesh_reconciles_total", "").await?,
        0.0,
        "the follower reconciled"
    );
    drop(a);
    drop(b);
    w.cleanup().await;
    Ok(())
}

fn finalizers(meta: &ObjectMeta) -> Vec<String> {
    meta.finalizers.clone().unwrap_or_default()
}

/// The field managers that own metadata.finalizers. A finalizer added at
/// admission is owned by nobody; one a client adds (the operator's patch) is
/// on record under that client's manager.
fn finalizer_owners(meta: &ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:metadata/f:finalizers").is_some())
        })
        .map(|m| m.manager.clone().unwrap_or_default())
        .collect()
}

/// With no operator running, the API server adds the finalizers when an
/// agreement and a product are created (the chart's admission-finalizers.yaml,
/// installed by the harness); the operator then decides the agreement as
/// usual and writes no finalizer of its own.
#[tokio::test]
async fn finalizers_are_added_at_admission_and_the_operator_writes_none() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    assert!(
        w.finalizers_at_admission,
        "scripts/cluster.sh turns MutatingAdmissionPolicy on, yet the API server does not serve it"
    );
    let pp = PostParams::default();

    // No operator yet: whatever finalizer is there, the API server put it there.
    let p = fixtures::product("bus", &w.provider_ns, &w.provider, &w.licence);
    let p = w
        .products()
        .create(&pp, &serde_json::from_value(p)?)
        .await?;
    assert_eq!(finalizers(&p.metadata), [PRODUCT_FINALIZER]);
    let a = fixtures::agreement(
        "plan",
        &w.consumer_ns,
        &w.consumer,
        (&w.provider_ns, "bus"),
        (&w.licence, "3.0"),
        "2027-06-30T00:00:00Z",
    );
    let created = w
        .agreements()
        .create(&pp, &serde_json::from_value(a.clone())?)
        .await?;
    assert_eq!(finalizers(&created.metadata), [AGREEMENT_FINALIZER]);
    // stored so, not only in the answer to the create
    let stored = w.agreements().get("plan").await?;
    assert_eq!(finalizers(&stored.metadata), [AGREEMENT_FINALIZER]);
    assert_eq!(
        finalizers(&w.products().get("bus").await?.metadata),
        [PRODUCT_FINALIZER]
    );
    assert!(
        finalizer_owners(&stored.metadata).is_empty(),
        "{:?}",
        stored.metadata.managed_fields
    );

    // A finalizer the creator gives is kept: finalizers merge as a set
    // (a dry run, so no foreign finalizer is left to block the clean-up).
    let mut other = a;
    other["metadata"]["name"] = json!("other");
    other["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let other = w
        .agreements()
        .create(&dry, &serde_json::from_value(other)?)
        .await?;
    assert_eq!(
        finalizers(&other.metadata),
        ["example.com/keep", AGREEMENT_FINALIZER]
    );

    // The operator decides the agreement as usual. It found the finalizers in
    // place, so it patched none: nobody owns them in managedFields.
    let _op = Operator::start().await?;
    let a = w.phase("plan", AgreementPhase::Active).await?;
    assert!(
        reason_ids(&a).contains(&"open-read".to_string()),
        "{:?}",
        reason_ids(&a)
    );
    assert_eq!(finalizers(&a.metadata), [AGREEMENT_FINALIZER]);
    assert!(
        finalizer_owners(&a.metadata).is_empty(),
        "the operator wrote the agreement's finalizers: {:?}",
        finalizer_owners(&a.metadata)
    );
    let p = w.products().get("bus").await?;
    assert_eq!(finalizers(&p.metadata), [PRODUCT_FINALIZER]);
    assert!(
        finalizer_owners(&p.metadata).is_empty(),
        "the operator wrote the product's finalizers: {:?}",
        finalizer_owners(&p.metadata)
    );

    // and the finalizer still does its work: deleting the agreement revokes first
    w.agreements().delete("plan", &Default::default()).await?;
    let api = w.agreements();
    wait_for(WAIT, || {
        let api = api.clone();
        async move { api.get_opt("plan").await.ok()?.is_none().then_some(()) }
    })
    .await?;
    w.cleanup().await;
    Ok(())
}

/// Where the finalizers were not added at admission (clusters without
/// MutatingAdmissionPolicy, objects created before the policies were
/// installed), the operator adds them itself before it acts. The policies
/// act on CREATE only, so taking the finalizers off with an update makes
/// this the operator's path whether or not this API server has the policies.
#[tokio::test]
async fn without_admission_the_operator_adds_its_finalizers_itself() -> anyhow::Result<()> {
    let w = World::new("private").await?;
    w.product("bus", "open").await?;
    w.request("plan", "bus", "2027-06-30T00:00:00Z").await?;
    let strip = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let p = w
        .products()
        .patch("bus", &PatchParams::default(), &strip)
        .await?;
    assert!(finalizers(&p.metadata).is_empty(), "{:?}", p.metadata);
    let a = w
        .agreements()
        .patch("plan", &PatchParams::default(), &strip)
        .await?;
    assert!(finalizers(&a.metadata).is_empty(), "{:?}", a.metadata);

    let _op = Operator::start().await?;
    let a = w.phase("plan", AgreementPhase::Active).await?;
    assert_eq!(finalizers(&a.metadata), [AGREEMENT_FINALIZER]);
    assert!(
        !finalizer_owners(&a.metadata).is_empty(),
        "the operator's patch is on record: {:?}",
        a.metadata.managed_fields
    );
    let products = w.products();
    let p = wait_for(WAIT, || {
        let products = products.clone();
        async move {
            let p = products.get("bus").await.ok()?;
            (!finalizers(&p.metadata).is_empty()).then_some(p)
        }
    })
    .await?;
    assert_eq!(finalizers(&p.metadata), [PRODUCT_FINALIZER]);
    w.cleanup().await;
    Ok(())
}
