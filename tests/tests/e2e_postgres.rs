//! Enforcement in a real PostgreSQL with the real API server: an Active
//! agreement's credentials read exactly the granted columns; expiry, the
//! provider's denial and deletion take them away; convergence drops a role
//! a crash left and restores a missing one; the provider's admin connection
//! never reaches the consumer.

use datamesh_crds::agreement::AgreementPhase;
use datamesh_crds::{AgreementApproval, DataProduct, DataSharingAgreement, Domain, Licence};
use datamesh_e2e::{fixtures, pg, *};
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Row};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A provider with one table (and one it never shares), a consumer, a licence.
struct World {
    client: Client,
    provider: String,
    provider_ns: String,
    consumer: String,
    consumer_ns: String,
    licence: String,
    /// The shared table: stop_id, name, footfall, notes.
    table: String,
    /// A table no product offers.
    other: String,
}

impl World {
    async fn new() -> anyhow::Result<Self> {
        Self::with_consumer_auth(None).await
    }

    /// A world whose port says `consumerAuth: auth` (the default if `None`).
    async fn with_consumer_auth(auth: Option<&str>) -> anyhow::Result<Self> {
        let client = admin().await?;
        install_crds(&client).await?;
        install_admission(&client).await?;
        let suffix = unique("t").replace('-', "_");
        let w = World {
            provider: unique("transport"),
            provider_ns: unique("transport"),
            consumer: unique("mobility"),
            consumer_ns: unique("mobility"),
            licence: unique("ogl"),
            table: format!("stops_{suffix}"),
            other: format!("payroll_{suffix}"),
            client,
        };
        pg::exec(&format!(
            "CREATE TABLE public.{t} (stop_id text, name text, footfall int, notes text);
             INSERT INTO public.{t} VALUES ('S1', 'Market St', 120, 'inspector visit'), ('S2', 'Quay', 45, 'none');
             CREATE TABLE public.{o} (who text, salary int);
             INSERT INTO public.{o} VALUES ('ann', 50000);",
            t = w.table,
            o = w.other
        ))
        .await?;
        create_namespace(&w.client, &w.provider_ns).await?;
        create_namespace(&w.client, &w.consumer_ns).await?;
        pg::admin_secret(&w.client, &w.provider_ns, "stops-admin").await?;
        create(
            &Api::<Licence>::all(w.client.clone()),
            fixtures::licence(&w.licence),
        )
        .await?;
        let domains = Api::<Domain>::all(w.client.clone());
        create(&domains, fixtures::domain(&w.provider, &[&w.provider_ns])).await?;
        create(&domains, fixtures::domain(&w.consumer, &[&w.consumer_ns])).await?;
        let mut p = fixtures::product("stops", &w.provider_ns, &w.provider, &w.licence);
        p["spec"]["outputPorts"] = json!([{"name": "warehouse", "type": "postgres",
            "postgres": {"schema": "public", "table": w.table, "adminSecretRef": {"name": "stops-admin"}}}]);
        if let Some(auth) = auth {
            p["spec"]["outputPorts"][0]["postgres"]["consumerAuth"] = json!(auth);
        }
        p["spec"]["schema"] = json!([
            {"name": "stop_id", "type": "text"}, {"name": "name", "type": "text"},
            {"name": "footfall", "type": "integer"}, {"name": "notes", "type": "text"}
        ]);
        create(
            &Api::<DataProduct>::namespaced(w.client.clone(), &w.provider_ns),
            p,
        )
        .await?;
        Ok(w)
    }

    fn agreements(&self) -> Api<DataSharingAgreement> {
        Api::namespaced(self.client.clone(), &self.consumer_ns)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.consumer_ns)
    }

    /// Asks for stop_id and footfall until `end`.
    async fn request(&self, name: &str, end: &str) -> anyhow::Result<()> {
        let mut a = fixtures::agreement(
            name,
            &self.consumer_ns,
            &self.consumer,
            (&self.provider_ns, "stops"),
            (&self.licence, "3.0"),
            end,
        );
        a["spec"]["fields"] = json!(["stop_id", "footfall"]);
        create(&self.agreements(), a).await?;
        Ok(())
    }

    async fn phase(
        &self,
        name: &str,
        want: AgreementPhase,
    ) -> anyhow::Result<DataSharingAgreement> {
        let api = self.agreements();
        wait_for(WAIT, || {
            let api = api.clone();
            async move {
                let a = api.get(name).await.ok()?;
                (a.status.as_ref()?.phase == Some(want)).then_some(a)
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("agreement {name} never reached {want:?}: {e}"))
    }

    /// The consumer's connection URL, from its credentials Secret.
    async fn credentials(
        &self,
        secret: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let s = self.secrets().get(secret).await?;
        Ok(s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
            .collect())
    }

    async fn secret_gone(&self, name: &str) -> anyhow::Result<()> {
        let api = self.secrets();
        wait_for(WAIT, || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await
    }

    async fn cleanup(self) {
        delete_namespace(&self.client, &self.provider_ns).await;
        delete_namespace(&self.client, &self.consumer_ns).await;
        for d in [&self.provider, &self.consumer] {
            let _ = Api::<Domain>::all(self.client.clone())
                .delete(d, &Default::default())
                .await;
        }
        let _ = Api::<Licence>::all(self.client.clone())
            .delete(&self.licence, &Default::default())
            .await;
        let _ = pg::exec(&format!(
            "DROP TABLE IF EXISTS public.{}, public.{}",
            self.table, self.other
        ))
        .await;
    }
}

/// Runs a query with the consumer's URL; the error text on failure.
async fn query(url: &str, sql: &str) -> Result<Vec<sqlx::postgres::PgRow>, String> {
    let mut c = sqlx::postgres::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut c)
        .await
        .map_err(|e| e.to_string())
}

/// The admin password from DATAMESH_PG_URL's userinfo.
fn admin_userinfo() -> anyhow::Result<String> {
    let url = pg::url()?;
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
    Ok(rest
        .split_once('@')
        .map(|(u, _)| u.to_string())
        .unwrap_or_default())
}

/// The provider's admin URL and `user:password` appear in no Secret of the
/// consumer's namespace and nowhere in the agreement.
async fn assert_no_provider_credentials(w: &World, name: &str) -> anyhow::Result<()> {
    let (url, userinfo) = (pg::url()?, admin_userinfo()?);
    let secrets = w.secrets().list(&Default::default()).await?;
    for s in secrets.items {
        for (k, v) in s.data.unwrap_or_default() {
            let v = String::from_utf8_lossy(&v.0);
            assert!(
                !v.contains(&url) && !v.contains(&format!("{userinfo}@")),
                "admin credentials in Secret {} key {k}",
                s.metadata.name.unwrap_or_default()
            );
        }
    }
    let a = serde_json::to_string(&w.agreements().get(name).await?)?;
    assert!(
        !a.contains(&url) && !a.contains(&format!("{userinfo}@")),
        "admin credentials in the agreement"
    );
    Ok(())
}

#[tokio::test]
async fn granted_columns_only_then_nothing_after_expiry() -> anyhow::Result<()> {
    let w = World::new().await?;
    let _op = Operator::start().await?;
    w.request("footfall", &fixtures::in_secs(25)).await?;
    let a = w.phase("footfall", AgreementPhase::Active).await?;
    let status = a.status.unwrap_or_default();
    assert_eq!(
        status.credentials_secret.as_deref(),
        Some("footfall-credentials")
    );
    assert_eq!(status.granted_fields, vec!["stop_id", "footfall"]);

    let creds = w.credentials("footfall-credentials").await?;
    assert_eq!(
        creds.get("fields").map(String::as_str),
        Some("stop_id,footfall")
    );
    assert_eq!(creds.get("table"), Some(&format!("public.{}", w.table)));
    let url = creds.get("url").cloned().unwrap_or_default();
    assert!(url.starts_with(&format!(
        "postgres://{}:",
        creds.get("user").cloned().unwrap_or_default()
    )));
    let owner = w
        .secrets()
        .get("footfall-credentials")
        .await?
        .owner_references()
        .to_vec();
    assert_eq!(
        owner.first().map(|o| o.uid.as_str()),
        a.metadata.uid.as_deref()
    );

    // the granted columns are readable...
    let rows = query(
        &url,
        &format!(
            "SELECT stop_id, footfall FROM public.{} ORDER BY stop_id",
            w.table
        ),
    )
    .await
    .map_err(|e| anyhow::anyhow!("granted columns not readable: {e}"))?;
    let got: Vec<(String, i32)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    assert_eq!(got, vec![("S1".to_string(), 120), ("S2".to_string(), 45)]);
    // ...no other column, not SELECT *, and no other table
    for sql in [
        format!("SELECT notes FROM public.{}", w.table),
        format!("SELECT * FROM public.{}", w.table),
        format!("SELECT * FROM public.{}", w.other),
    ] {
        let e = query(&url, &sql).await.err().unwrap_or_default();
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    assert_no_provider_credentials(&w, "footfall").await?;

    // a session open at the end is ended too
    let mut open = sqlx::postgres::PgConnection::connect(&url).await?;
    w.phase("footfall", AgreementPhase::Expired).await?;
    w.secret_gone("footfall-credentials").await?;
    let e = query(&url, "SELECT 1").await.err().unwrap_or_default();
    assert!(!e.is_empty(), "expired credentials still connect");
    assert!(
        sqlx::query("SELECT 1").fetch_one(&mut open).await.is_err(),
        "a session outlived the agreement"
    );
    let a = w.agreements().get("footfall").await?;
    let granted =
        datamesh_crds::condition::get(&a.status.unwrap_or_default().conditions, "Granted").cloned();
    assert_eq!(
        granted.map(|c| (c.status, c.reason)),
        Some(("False".into(), "Revoked".into()))
    );
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_providers_denial_and_deletion_revoke_access() -> anyhow::Result<()> {
    let w = World::new().await?;
    let _op = Operator::start().await?;
    w.request("denied-later", &fixtures::in_secs(3600)).await?;
    w.request("deleted-later", &fixtures::in_secs(3600)).await?;
    w.phase("denied-later", AgreementPhase::Active).await?;
    w.phase("deleted-later", AgreementPhase::Active).await?;
    let denied = w.credentials("denied-later-credentials").await?;
    let deleted = w.credentials("deleted-later-credentials").await?;
    let sql = format!("SELECT stop_id FROM public.{}", w.table);
    for c in [&denied, &deleted] {
        query(c.get("url").map(String::as_str).unwrap_or_default(), &sql)
            .await
            .map_err(|e| anyhow::anyhow!("granted column not readable: {e}"))?;
    }

    // The provider withdraws its consent.
    let provider_user = unique("pat");
    let kc = user_kubeconfig(&provider_user, &[&format!("datamesh:{}", w.provider)])?;
    let as_provider = Api::<AgreementApproval>::namespaced(client_from(&kc).await?, &w.provider_ns);
    let approval = fixtures::approval(
        "withdrawn",
        &w.provider_ns,
        (&w.consumer_ns, "denied-later"),
        &provider_user,
        false,
    );
    // the provider's RBAC appears when the operator has reconciled its Domain
    wait_for(WAIT, || {
        let (api, approval) = (as_provider.clone(), approval.clone());
        async move { create(&api, approval).await.ok().map(|_| ()) }
    })
    .await?;
    w.phase("denied-later", AgreementPhase::Revoked).await?;
    w.secret_gone("denied-later-credentials").await?;
    let e = query(
        denied.get("url").map(String::as_str).unwrap_or_default(),
        &sql,
    )
    .await
    .err();
    assert!(e.is_some(), "credentials of a revoked agreement still work");

    // The consumer deletes the other: the finalizer revokes before it goes.
    w.agreements()
        .delete("deleted-later", &DeleteParams::default())
        .await?;
    let api = w.agreements();
    wait_for(WAIT, || {
        let api = api.clone();
        async move {
            api.get_opt("deleted-later")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await?;
    w.secret_gone("deleted-later-credentials").await?;
    let e = query(
        deleted.get("url").map(String::as_str).unwrap_or_default(),
        &sql,
    )
    .await
    .err();
    assert!(e.is_some(), "credentials of a deleted agreement still work");
    let mut admin = pg::connect(&pg::url()?).await?;
    let left: i64 = sqlx::query("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)")
        .bind(vec![
            denied.get("user").cloned().unwrap_or_default(),
            deleted.get("user").cloned().unwrap_or_default(),
        ])
        .fetch_one(&mut admin)
        .await?
        .try_get(0)?;
    assert_eq!(left, 0, "roles of ended agreements still exist");
    w.cleanup().await;
    Ok(())
}

async fn role_exists(role: &str) -> anyhow::Result<bool> {
    let mut admin = pg::connect(&pg::url()?).await?;
    let n: i64 = sqlx::query("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_one(&mut admin)
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

#[tokio::test]
async fn convergence_drops_a_role_a_crash_left_and_restores_a_missing_one() -> anyhow::Result<()> {
    let w = World::new().await?;
    // A role the operator created just before a crash: marked, no agreement.
    let ghost = format!(
        "dm_{}",
        unique("f")
            .replace('-', "")
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
    );
    pg::exec(&format!(
        "CREATE ROLE {ghost} LOGIN PASSWORD 'leftover';
         COMMENT ON ROLE {ghost} IS 'datamesh agreement {ns}/gone 00000000-0000-0000-0000-000000000000';
         GRANT SELECT (stop_id) ON public.{t} TO {ghost};",
        ns = w.consumer_ns,
        t = w.table
    ))
    .await?;
    // An unmarked role is not the operator's and stays.
    let bystander = format!("dm_bystander_{}", unique("b").replace('-', "_"));
    pg::exec(&format!("CREATE ROLE {bystander} NOLOGIN")).await?;

    let op = Operator::start_with(
        &admin_kubeconfig()?,
        &[
            "--lease-name",
            &unique("datamesh-e2e"),
            "--lease-seconds",
            "4",
            "--convergence-seconds",
            "2",
        ],
    )
    .await?;
    wait_for(WAIT, || async {
        (!role_exists(&ghost).await.ok()?).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("convergence left {ghost}: {e}"))?;
    assert!(
        role_exists(&bystander).await?,
        "convergence dropped a role it did not create"
    );
    assert!(
        op.counter(
            "datamesh_convergence_corrections_total",
            "action=\"dropped\""
        )
        .await?
            >= 1.0
    );

    // An Active agreement whose role was dropped behind the operator's back gets it again.
    w.request("restored", &fixtures::in_secs(3600)).await?;
    w.phase("restored", AgreementPhase::Active).await?;
    let before = w.credentials("restored-credentials").await?;
    let role = before.get("user").cloned().unwrap_or_default();
    pg::exec(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await?;
    let after = wait_for(WAIT, || async {
        let c = w.credentials("restored-credentials").await.ok()?;
        (c.get("password") != before.get("password") && role_exists(&role).await.ok()?).then_some(c)
    })
    .await
    .map_err(|e| anyhow::anyhow!("convergence did not restore the role: {e}"))?;
    query(
        after.get("url").map(String::as_str).unwrap_or_default(),
        &format!("SELECT stop_id FROM public.{}", w.table),
    )
    .await
    .map_err(|e| anyhow::anyhow!("restored credentials do not work: {e}"))?;
    assert!(
        op.counter(
            "datamesh_convergence_corrections_total",
            "action=\"regranted\""
        )
        .await?
            >= 1.0
    );
    // the Warning is published after the role is restored
    let events =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(w.client.clone(), &w.consumer_ns);
    wait_for(WAIT, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("GrantRestored"))
                .then_some(())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("no GrantRestored Event: {e}"))?;

    pg::exec(&format!("DROP ROLE IF EXISTS {bystander}")).await?;
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_hostile_column_name_is_one_quoted_identifier() -> anyhow::Result<()> {
    use datamesh_operator::enforcement::postgres::{self as grant, Admin, RoleGrant};
    // The CRD pattern refuses such a field at the API server; the grant
    // quotes it anyway, so even a column really named like this is harmless.
    let t = unique("hostile").replace('-', "_");
    let victim = format!("victim_{t}");
    let hostile = format!("x\"; DROP TABLE {victim}; --");
    pg::exec(&format!(
        "CREATE TABLE public.{victim} (a int); CREATE TABLE public.{t} (ok int, \"{}\" int, other int);",
        hostile.replace('"', "\"\"")
    ))
    .await?;
    let admin = Admin::parse(&pg::url()?).map_err(anyhow::Error::msg)?;
    let role = format!("dm_{}", t.replace('_', ""));
    grant::grant(
        &admin,
        &RoleGrant {
            role: &role,
            label: "test/hostile 0",
            login: datamesh_operator::enforcement::postgres::Login::Password(
                "pw'; DROP TABLE x; --",
            ),
            valid_until: Some("2999-01-01T00:00:00Z"),
            schema: "public",
            table: &t,
            columns: &["ok".to_string(), hostile.clone()],
        },
    )
    .await?;
    let mut c = pg::connect(&pg::url()?).await?;
    let victim_left: i64 = sqlx::query("SELECT count(*) FROM pg_tables WHERE tablename = $1")
        .bind(&victim)
        .fetch_one(&mut c)
        .await?
        .try_get(0)?;
    assert_eq!(victim_left, 1, "the hostile name was executed");
    let may = |col: String| {
        let (role, table) = (role.clone(), format!("public.{t}"));
        async move {
            let mut c = pg::connect(&pg::url()?).await?;
            let ok: bool = sqlx::query("SELECT has_column_privilege($1, $2, $3, 'SELECT')")
                .bind(&role)
                .bind(&table)
                .bind(&col)
                .fetch_one(&mut c)
                .await?
                .try_get(0)?;
            anyhow::Ok(ok)
        }
    };
    assert!(may("ok".into()).await?);
    assert!(may(hostile.clone()).await?);
    assert!(
        !may("other".into()).await?,
        "an ungranted column is readable"
    );
    assert!(grant::revoke(&admin, &role).await?);
    assert!(
        !grant::revoke(&admin, &role).await?,
        "a second revoke is a no-op"
    );
    pg::exec(&format!("DROP TABLE public.{victim}, public.{t}")).await?;
    Ok(())
}

/// Many agreements on one table: column privileges are granted to one group
/// per field set, so the table's ACL does not grow with agreements (granting
/// each role its columns failed past ~2,450 roles with "row is too big"), a
/// narrowed grant leaves the wider group, and an unused group is dropped.
#[tokio::test]
async fn three_thousand_agreements_on_one_table_share_two_groups() -> anyhow::Result<()> {
    use datamesh_operator::enforcement::postgres::{self as grant, Admin, RoleGrant};
    use futures::{StreamExt, TryStreamExt};
    let t = unique("many").replace('-', "_");
    pg::exec(&format!(
        "CREATE TABLE public.{t} (stop text, footfall int, secret text)"
    ))
    .await?;
    let admin = Admin::parse(&pg::url()?)
        .map_err(anyhow::Error::msg)?
        .pooled();
    let wide = vec!["stop".to_string(), "footfall".to_string()];
    let narrow = vec!["stop".to_string()];
    const N: usize = 3000;
    let roles: Vec<String> = (0..N)
        .map(|i| format!("dm_{}x{i}", t.replace('_', "")))
        .collect();
    futures::stream::iter(roles.iter().enumerate())
        .map(|(i, role)| {
            let (admin, cols, t) = (&admin, if i % 2 == 0 { &wide } else { &narrow }, &t);
            async move {
                grant::grant(
                    admin,
                    &RoleGrant {
                        role,
                        label: "test/many 0",
                        login: datamesh_operator::enforcement::postgres::Login::Password(
                            "not-a-real-password",
                        ),
                        valid_until: Some("2999-01-01T00:00:00Z"),
                        schema: "public",
                        table: t,
                        columns: cols,
                    },
                )
                .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    let mut c = pg::connect(&pg::url()?).await?;
    let privilege = |role: &str, col: &str| {
        sqlx::query("SELECT has_column_privilege($1, $2, $3, 'SELECT')")
            .bind(role.to_string())
            .bind(format!("public.{t}"))
            .bind(col.to_string())
    };
    for (i, role) in roles.iter().enumerate().step_by(499) {
        let footfall: bool = privilege(role, "footfall")
            .fetch_one(&mut c)
            .await?
            .try_get(0)?;
        let stop: bool = privilege(role, "stop")
            .fetch_one(&mut c)
            .await?
            .try_get(0)?;
        let secret: bool = privilege(role, "secret")
            .fetch_one(&mut c)
            .await?
            .try_get(0)?;
        assert!(stop && !secret, "{role}");
        assert_eq!(footfall, i % 2 == 0, "{role}: footfall");
    }
    let groups = [
        grant::group_name("public", &t, &wide),
        grant::group_name("public", &t, &narrow),
    ];
    let members: i64 = sqlx::query(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = ANY($1)",
    )
    .bind(&groups[..])
    .fetch_one(&mut c)
    .await?
    .try_get(0)?;
    assert_eq!(members, N as i64);
    // narrowing role 0 from wide to narrow leaves the wide group
    grant::grant(
        &admin,
        &RoleGrant {
            role: &roles[0],
            label: "test/many 0",
            login: datamesh_operator::enforcement::postgres::Login::Password("another-password"),
            valid_until: Some("2999-01-01T00:00:00Z"),
            schema: "public",
            table: &t,
            columns: &narrow,
        },
    )
    .await?;
    let footfall: bool = privilege(&roles[0], "footfall")
        .fetch_one(&mut c)
        .await?
        .try_get(0)?;
    assert!(!footfall, "a narrowed grant still reads the dropped column");
    // every role gone: both groups are unused and dropped
    futures::stream::iter(roles.iter())
        .map(|role| grant::revoke(&admin, role))
        .buffer_unordered(8)
        .try_collect::<Vec<bool>>()
        .await?;
    let dropped = grant::drop_empty_groups(&admin).await?;
    for g in &groups {
        assert!(dropped.contains(g), "{g} not dropped: {dropped:?}");
    }
    pg::exec(&format!("DROP TABLE public.{t}")).await?;
    Ok(())
}

/// The agreement's `Granted` condition as (status, reason), once it exists.
async fn granted_condition(w: &World, name: &str) -> anyhow::Result<(String, String, String)> {
    let api = w.agreements();
    wait_for(WAIT, || {
        let api = api.clone();
        async move {
            let a = api.get(name).await.ok()?;
            let c = datamesh_crds::condition::get(&a.status?.conditions, "Granted")?.clone();
            Some((c.status, c.reason, c.message))
        }
    })
    .await
}

#[tokio::test]
async fn no_grant_no_active_and_a_retry_once_the_store_is_reachable() -> anyhow::Result<()> {
    let w = World::new().await?;
    let products = Api::<DataProduct>::namespaced(w.client.clone(), &w.provider_ns);
    // a product whose admin Secret does not exist yet
    let mut later = fixtures::product("later", &w.provider_ns, &w.provider, &w.licence);
    later["spec"]["outputPorts"] = json!([{"name": "warehouse", "type": "postgres",
        "postgres": {"schema": "public", "table": w.table, "adminSecretRef": {"name": "later-admin"}}}]);
    later["spec"]["schema"] =
        json!([{"name": "stop_id", "type": "text"}, {"name": "footfall", "type": "integer"}]);
    create(&products, later).await?;
    // a product only reachable through an HTTP API
    let mut api_only = fixtures::product("api-only", &w.provider_ns, &w.provider, &w.licence);
    api_only["spec"]["outputPorts"] = json!([{"name": "rest", "type": "api", "api": {"url": "https://api.transport.city.example/stops"}}]);
    api_only["spec"]["schema"] =
        json!([{"name": "stop_id", "type": "text"}, {"name": "footfall", "type": "integer"}]);
    create(&products, api_only).await?;
    let _op = Operator::start().await?;
    for (name, product) in [("waits", "later"), ("unsupported", "api-only")] {
        let mut a = fixtures::agreement(
            name,
            &w.consumer_ns,
            &w.consumer,
            (&w.provider_ns, product),
            (&w.licence, "3.0"),
            &fixtures::in_secs(3600),
        );
        a["spec"]["fields"] = json!(["stop_id", "footfall"]);
        create(&w.agreements(), a).await?;
    }

    // Fail closed: allowed by policy, but not Active while nothing is granted.
    let (status, reason, message) = granted_condition(&w, "waits").await?;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AdminSecretUnusable"),
        "{message}"
    );
    let (status, reason, message) = granted_condition(&w, "unsupported").await?;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PortTypeNotSupported")
    );
    assert!(
        message.contains("api") && message.contains("not supported yet"),
        "{message}"
    );
    for name in ["waits", "unsupported"] {
        let s = w.agreements().get(name).await?.status.unwrap_or_default();
        assert_ne!(
            s.phase,
            Some(AgreementPhase::Active),
            "{name} is Active without a grant"
        );
        assert!(s.credentials_secret.is_none());
        assert!(
            w.secrets()
                .get_opt(&format!("{name}-credentials"))
                .await?
                .is_none()
        );
    }

    // Once the provider adds its admin Secret, the retry grants.
    pg::admin_secret(&w.client, &w.provider_ns, "later-admin").await?;
    let a = w.phase("waits", AgreementPhase::Active).await?;
    assert_eq!(
        a.status.and_then(|s| s.credentials_secret).as_deref(),
        Some("waits-credentials")
    );
    let creds = w.credentials("waits-credentials").await?;
    query(
        creds.get("url").map(String::as_str).unwrap_or_default(),
        &format!("SELECT footfall FROM public.{}", w.table),
    )
    .await
    .map_err(|e| anyhow::anyhow!("granted column not readable after the retry: {e}"))?;
    assert_no_provider_credentials(&w, "waits").await?;
    assert_no_provider_credentials(&w, "unsupported").await?;
    w.cleanup().await;
    Ok(())
}

/// A Secret of the credentials' name that is not the agreement's is never
/// overwritten: the agreement stays not Active with Granted=False
/// SecretConflict, and no role is left that nobody has the password of.
#[tokio::test]
async fn a_foreign_secret_of_the_credentials_name_is_not_overwritten() -> anyhow::Result<()> {
    let w = World::new().await?;
    let foreign = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "taken-credentials", "namespace": w.consumer_ns},
        "stringData": {"note": "the consumer team's own"}});
    create(&w.secrets(), foreign).await?;
    let _op = Operator::start().await?;
    w.request("taken", &fixtures::in_secs(3600)).await?;
    let (status, reason, message) = granted_condition(&w, "taken").await?;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretConflict"),
        "{message}"
    );
    let a = w.agreements().get("taken").await?;
    assert_ne!(
        a.status.as_ref().and_then(|s| s.phase),
        Some(AgreementPhase::Active)
    );
    let kept = w.credentials("taken-credentials").await?;
    assert_eq!(
        kept.keys().cloned().collect::<Vec<_>>(),
        vec!["note".to_string()],
        "the foreign Secret was changed"
    );
    let role = datamesh_operator::enforcement::postgres::role_name(&a.uid().unwrap_or_default());
    assert!(
        !role_exists(&role).await?,
        "a role without handed-over credentials is left"
    );
    w.cleanup().await;
    Ok(())
}

/// Runs `sql` with psql as a certificate consumer would: its credentials
/// Secret's host, port, database and user, the TLS mode, and (if given) the
/// directory holding a `tls.crt` and `tls.key`. Rows as `a,b` lines, or
/// psql's error.
async fn psql_as(
    creds: &std::collections::BTreeMap<String, String>,
    sslmode: &str,
    cert_dir: Option<&std::path::Path>,
    sql: &str,
) -> Result<String, String> {
    let get = |k: &str| creds.get(k).cloned().unwrap_or_default();
    let mut conninfo = format!(
        "host={} port={} dbname={} user={} sslmode={sslmode} connect_timeout=10",
        get("host"),
        get("port"),
        get("database"),
        get("user")
    );
    if let Some(dir) = cert_dir {
        conninfo.push_str(&format!(
            " sslcert={} sslkey={}",
            dir.join("tls.crt").display(),
            dir.join("tls.key").display()
        ));
    }
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-w", "-qtA", "-F", ",", "-v", "ON_ERROR_STOP=1"])
        .arg(&conninfo)
        .args(["-c", sql])
        .env_remove("PGPASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Writes a credentials Secret's certificate and key where libpq accepts
/// them (the key readable by its owner only).
fn write_cert(
    creds: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("dm-consumer-cert")?;
    for key in ["tls.crt", "tls.key"] {
        let path = dir.path().join(key);
        std::fs::write(&path, creds.get(key).cloned().unwrap_or_default())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(dir)
}

#[tokio::test]
async fn a_certificate_port_admits_its_consumer_by_certificate_only() -> anyhow::Result<()> {
    let w = World::with_consumer_auth(Some("certificate")).await?;
    let _op = Operator::start().await?;
    w.request("certified", &fixtures::in_secs(3600)).await?;
    w.request("neighbour", &fixtures::in_secs(3600)).await?;
    w.phase("certified", AgreementPhase::Active).await?;
    w.phase("neighbour", AgreementPhase::Active).await?;

    let creds = w.credentials("certified-credentials").await?;
    let user = creds.get("user").cloned().unwrap_or_default();
    assert!(
        !creds.contains_key("password"),
        "a certificate consumer got a password"
    );
    assert_eq!(
        creds.get("url").cloned().unwrap_or_default(),
        format!(
            "postgres://{user}@{}:{}/{}?sslmode=require",
            creds.get("host").cloned().unwrap_or_default(),
            creds.get("port").cloned().unwrap_or_default(),
            creds.get("database").cloned().unwrap_or_default()
        )
    );
    assert!(
        creds
            .get("tls.crt")
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----"))
    );
    assert!(
        creds
            .get("tls.key")
            .is_some_and(|k| k.contains("PRIVATE KEY"))
    );
    // the database holds no password for the role either
    let mut admin = pg::connect(&pg::url()?).await?;
    let no_password: bool =
        sqlx::query("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = $1")
            .bind(&user)
            .fetch_one(&mut admin)
            .await?
            .try_get(0)?;
    assert!(no_password, "role {user} has a password");

    // with its certificate, over TLS: the granted columns, nothing else
    let dir = write_cert(&creds)?;
    let rows = psql_as(
        &creds,
        "require",
        Some(dir.path()),
        &format!(
            "SELECT stop_id, footfall FROM public.{} ORDER BY 1",
            w.table
        ),
    )
    .await
    .map_err(|e| anyhow::anyhow!("granted columns not readable with the certificate: {e}"))?;
    assert_eq!(rows, "S1,120\nS2,45");
    let e = psql_as(
        &creds,
        "require",
        Some(dir.path()),
        &format!("SELECT notes FROM public.{}", w.table),
    )
    .await
    .err()
    .unwrap_or_default();
    assert!(e.contains("permission denied"), "{e}");
    // no certificate, no TLS, or another agreement's certificate: refused
    let e = psql_as(&creds, "require", None, "SELECT 1")
        .await
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("certificate"),
        "signed in without a certificate: {e}"
    );
    let e = psql_as(&creds, "disable", Some(dir.path()), "SELECT 1")
        .await
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("rejects connection"),
        "signed in without TLS: {e}"
    );
    let neighbour = write_cert(&w.credentials("neighbour-credentials").await?)?;
    let e = psql_as(&creds, "require", Some(neighbour.path()), "SELECT 1")
        .await
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("certificate authentication failed"),
        "signed in with another agreement's certificate: {e}"
    );

    // the agreement deleted: the certificate signs in no more
    w.agreements()
        .delete("certified", &DeleteParams::default())
        .await?;
    w.secret_gone("certified-credentials").await?;
    let e = psql_as(&creds, "require", Some(dir.path()), "SELECT 1")
        .await
        .err()
        .unwrap_or_default();
    assert!(
        !e.is_empty(),
        "a deleted agreement's certificate still signs in"
    );
    assert!(
        !role_exists(&user).await?,
        "role {user} outlived its agreement"
    );
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn without_a_client_ca_a_certificate_port_grants_nothing() -> anyhow::Result<()> {
    let w = World::with_consumer_auth(Some("certificate")).await?;
    let _op =
        Operator::start_without_env(&["DATAMESH_CLIENT_CA_CERT", "DATAMESH_CLIENT_CA_KEY"]).await?;
    w.request("uncertified", &fixtures::in_secs(3600)).await?;
    let (status, reason, message) = granted_condition(&w, "uncertified").await?;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ClientCaMissing"),
        "{message}"
    );
    assert!(message.contains("client CA"), "{message}");
    let s = w
        .agreements()
        .get("uncertified")
        .await?
        .status
        .unwrap_or_default();
    assert_ne!(s.phase, Some(AgreementPhase::Active));
    assert!(
        w.secrets()
            .get_opt("uncertified-credentials")
            .await?
            .is_none()
    );
    w.cleanup().await;
    Ok(())
}
