//! Fault tests: the API server, etcd and the operator crash, and the
//! database drops the operator's connections, while agreements are being
//! decided and granted. After each: every agreement in its phase, the grants
//! in PostgreSQL equal the Active agreements, and the audit chain verifies
//! with each request and grant on record once. After each fault every agreement reaches the phase its
//! decision calls for, and no phase transition happens twice (one Activated
//! Event at most per agreement). Bounded and deterministic: faults are
//! injected at points chosen by fixed seeds, and the tests assert on state,
//! not on timings.

use datamesh_crds::agreement::AgreementPhase;
use datamesh_crds::{DataProduct, DataSharingAgreement, Domain, Licence};
use datamesh_e2e::{fixtures, pg, *};
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::Duration;

struct Scene {
    client: Client,
    provider: String,
    provider_ns: String,
    consumer: String,
    consumer_ns: String,
    licence: String,
    /// One audit store for every operator of the scene (a restarted one too).
    audit_url: String,
    /// Holds the audit file; removed with the scene.
    _audit_dir: tempfile::TempDir,
}

impl Scene {
    async fn new() -> anyhow::Result<Self> {
        let client = admin().await?;
        install_crds(&client).await?;
        let audit_dir = temp_dir("datamesh-faults-audit")?;
        let s = Scene {
            provider: unique("transport"),
            provider_ns: unique("transport"),
            consumer: unique("mobility"),
            consumer_ns: unique("mobility"),
            licence: unique("ogl"),
            audit_url: format!("sqlite://{}/audit.db?mode=rwc", audit_dir.path().display()),
            _audit_dir: audit_dir,
            client,
        };
        create_namespace(&s.client, &s.provider_ns).await?;
        create_namespace(&s.client, &s.consumer_ns).await?;
        // Active means granted: the products' postgres port must exist.
        pg::fixture_store(&s.client, &s.provider_ns).await?;
        create(
            &Api::<Licence>::all(s.client.clone()),
            fixtures::licence(&s.licence),
        )
        .await?;
        let domains = Api::<Domain>::all(s.client.clone());
        create(&domains, fixtures::domain(&s.provider, &[&s.provider_ns])).await?;
        create(
            &domains,
            fixtures::domain_with(&s.consumer, &[&s.consumer_ns], "private", &[]),
        )
        .await?;
        let products = Api::<DataProduct>::namespaced(s.client.clone(), &s.provider_ns);
        create(
            &products,
            fixtures::product("bus", &s.provider_ns, &s.provider, &s.licence),
        )
        .await?;
        let mut fares = fixtures::product("fares", &s.provider_ns, &s.provider, &s.licence);
        fares["spec"]["classification"] = serde_json::json!("restricted");
        create(&products, fares).await?;
        Ok(s)
    }

    /// Creates agreement `i` (every fourth on the restricted product), retrying
    /// while the API server is down.
    async fn request(&self, i: usize) -> anyhow::Result<()> {
        let product = if i.is_multiple_of(4) { "fares" } else { "bus" };
        let a = fixtures::agreement(
            &format!("req-{i}"),
            &self.consumer_ns,
            &self.consumer,
            (&self.provider_ns, product),
            (&self.licence, "3.0"),
            "2027-06-30T00:00:00Z",
        );
        let obj: DataSharingAgreement = serde_json::from_value(a)?;
        wait_for(Duration::from_secs(60), || {
            let client = self.client.clone();
            let ns = self.consumer_ns.clone();
            let obj = obj.clone();
            async move {
                let api = Api::<DataSharingAgreement>::namespaced(client, &ns);
                match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => Some(()),
                    Err(kube::Error::Api(e)) if e.code == 409 => Some(()), // created before the fault
                    Err(_) => None,
                }
            }
        })
        .await
    }

    /// Every agreement reached the phase its decision calls for, and none was activated twice.
    async fn converged(&self, n: usize) -> anyhow::Result<()> {
        let api = Api::<DataSharingAgreement>::namespaced(self.client.clone(), &self.consumer_ns);
        let all = wait_for(Duration::from_secs(120), || {
            let api = api.clone();
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                let settled = list
                    .items
                    .iter()
                    .filter(|a| {
                        let want = if a.spec.product.name == "fares" {
                            AgreementPhase::PendingApproval
                        } else {
                            AgreementPhase::Active
                        };
                        a.status.as_ref().and_then(|s| s.phase) == Some(want)
                    })
                    .count();
                (settled == n && list.items.len() == n).then_some(list.items)
            }
        })
        .await?;
        // Events follow the status writes through the operator's queue: a
        // second Activated would show once that queue is sent
        let events =
            settled_events(&self.client, &self.consumer_ns, Duration::from_secs(120)).await?;
        for a in &all {
            let name = a.metadata.name.as_deref().unwrap_or_default();
            let activated: i32 = events
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .filter(|e| e.reason.as_deref() == Some("Activated"))
                .map(|e| e.series.as_ref().map(|s| s.count).unwrap_or(1))
                .sum();
            assert!(activated <= 1, "{name} activated {activated} times");
        }
        Ok(())
    }

    /// Every grant in PostgreSQL for this scene's consumer is backed by an
    /// Active agreement, and every Active agreement is granted.
    async fn grants_match_agreements(&self) -> anyhow::Result<()> {
        use datamesh_operator::enforcement::postgres::{MARK, role_name};
        use kube::ResourceExt;
        use sqlx::Row;
        let api = Api::<DataSharingAgreement>::namespaced(self.client.clone(), &self.consumer_ns);
        let active: std::collections::BTreeSet<String> = api
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|a| a.status.as_ref().and_then(|s| s.phase) == Some(AgreementPhase::Active))
            .filter_map(|a| a.uid().map(|u| role_name(&u)))
            .collect();
        let mut c = pg::connect(&pg::url()?).await?;
        let granted: std::collections::BTreeSet<String> = sqlx::query(
            "SELECT r.rolname::text FROM pg_roles r JOIN pg_shdescription d \
             ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass \
             WHERE starts_with(d.description, $1)",
        )
        .bind(format!("{MARK}{}/", self.consumer_ns))
        .fetch_all(&mut c)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
        assert_eq!(
            granted, active,
            "grants in PostgreSQL differ from the Active agreements"
        );
        Ok(())
    }

    /// An operator of this scene (its audit store shared with the others).
    async fn operator(&self, lease: &str) -> anyhow::Result<Operator> {
        let args = [
            "--lease-name",
            lease,
            "--lease-seconds",
            "3",
            "--audit-url",
            self.audit_url.as_str(),
        ];
        Operator::start_with(&admin_kubeconfig()?, &args).await
    }

    /// The audit chain verifies, and holds each agreement's request once and
    /// each Active agreement's grant once (nothing lost, nothing twice).
    async fn audit_complete(&self, op: &Operator) -> anyhow::Result<()> {
        let get = |path: String| async move {
            let (code, body) = http_get(&format!("http://{}{path}", op.http_addr)).await?;
            anyhow::ensure!(code == 200, "{path}: {code} {body}");
            anyhow::Ok(serde_json::from_str::<serde_json::Value>(&body)?)
        };
        let v = get("/api/v1/audit/verify".into()).await?;
        assert_eq!(v["ok"], true, "audit chain: {v}");
        let records = get(format!(
            "/api/v1/audit?consumer={}&limit=10000",
            self.consumer
        ))
        .await?;
        let mut count: std::collections::BTreeMap<(String, String), usize> = Default::default();
        for r in records["items"].as_array().into_iter().flatten() {
            let key = (
                r["agreement"].as_str().unwrap_or_default().to_string(),
                r["kind"].as_str().unwrap_or_default().to_string(),
            );
            *count.entry(key).or_default() += 1;
        }
        let api = Api::<DataSharingAgreement>::namespaced(self.client.clone(), &self.consumer_ns);
        for a in api.list(&Default::default()).await?.items {
            let name = format!(
                "{}/{}",
                self.consumer_ns,
                a.metadata.name.as_deref().unwrap_or_default()
            );
            let n = |kind: &str| count.get(&(name.clone(), kind.to_string())).copied();
            assert_eq!(n("request"), Some(1), "{name}: request records");
            let active = a.status.as_ref().and_then(|s| s.phase) == Some(AgreementPhase::Active);
            assert_eq!(
                n("grant").unwrap_or(0),
                usize::from(active),
                "{name}: grant records"
            );
        }
        Ok(())
    }

    async fn cleanup(self) {
        delete_namespace(&self.client, &self.provider_ns).await;
        delete_namespace(&self.client, &self.consumer_ns).await;
        let domains = Api::<Domain>::all(self.client.clone());
        let _ = domains.delete(&self.provider, &Default::default()).await;
        let _ = domains.delete(&self.consumer, &Default::default()).await;
        let _ = Api::<Licence>::all(self.client.clone())
            .delete(&self.licence, &Default::default())
            .await;
    }
}

/// A small deterministic generator, so each seed injects its fault at the same point every run.
fn fault_point(seed: u64, n: usize) -> usize {
    let x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 33) as usize) % n
}

const BATCH: usize = 40;

#[tokio::test]
async fn control_plane_and_operator_crashes_lose_nothing() -> anyhow::Result<()> {
    let mut injected = 0;
    let mut survived = 0;

    // The API server, then etcd, killed in the middle of a batch.
    for component in ["apiserver", "etcd"] {
        let s = Scene::new().await?;
        let op = s.operator(&unique("fault-lease")).await?;
        let at = fault_point(component.len() as u64, BATCH);
        for i in 0..BATCH {
            if i == at {
                restart_component(component, true)?;
                injected += 1;
            }
            s.request(i).await?;
        }
        s.converged(BATCH).await?;
        s.grants_match_agreements().await?;
        s.audit_complete(&op).await?;
        survived += 1;
        drop(op);
        s.cleanup().await;
    }

    // The operator killed (SIGKILL) at seeded points of a batch, then restarted.
    for seed in [7u64, 21, 1999] {
        let s = Scene::new().await?;
        let lease = unique("fault-lease");
        let op = s.operator(&lease).await?;
        let at = fault_point(seed, BATCH);
        let mut op = Some(op);
        for i in 0..BATCH {
            if i == at
                && let Some(op) = op.take()
            {
                op.kill().await?;
                injected += 1;
            }
            s.request(i).await?;
        }
        let op = s.operator(&lease).await?;
        s.converged(BATCH).await?;
        s.grants_match_agreements().await?;
        s.audit_complete(&op).await?;
        survived += 1;
        drop(op);
        s.cleanup().await;
    }
    // PostgreSQL drops every connection of the operator's admin user, twice
    // in a batch, while grants are being made.
    {
        let s = Scene::new().await?;
        let op = s.operator(&unique("fault-lease")).await?;
        let points = [fault_point(3, BATCH), fault_point(11, BATCH)];
        for i in 0..BATCH {
            if points.contains(&i) {
                pg::exec(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE usename = current_user AND pid <> pg_backend_pid()",
                )
                .await?;
                injected += 1;
            }
            s.request(i).await?;
        }
        s.converged(BATCH).await?;
        s.grants_match_agreements().await?;
        s.audit_complete(&op).await?;
        survived += points.len();
        drop(op);
        s.cleanup().await;
    }
    println!("faults injected: {injected}, survived: {survived}");
    assert_eq!(injected, survived);
    Ok(())
}
