//! The audit trail against the real API server, with the operator as a
//! process writing to a SQLite file or a PostgreSQL database: every step of
//! an agreement is recorded in order and the chain verifies; an edited record
//! is named by `kubectl datamesh audit verify`; an unwritable store grants
//! nothing; the HTTP API is read-only and names bad parameters.
//!
//! Grants need a real PostgreSQL (the product's output port): DATAMESH_PG_URL
//! (exported by scripts/test.sh). Without it these tests fail, saying so.

use datamesh_crds::agreement::AgreementPhase;
use datamesh_crds::{AgreementApproval, DataProduct, DataSharingAgreement, Domain, Licence};
use datamesh_e2e::{fixtures, *};
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn pg_url() -> anyhow::Result<String> {
    std::env::var("DATAMESH_PG_URL").map_err(|_| {
        anyhow::anyhow!(
            "DATAMESH_PG_URL is not set: run under scripts/test.sh, or start one with \
             `DATAMESH_STATE=/tmp/dm-me bash scripts/postgres.sh up` and export what it prints"
        )
    })
}

/// A provider with a restricted product backed by a real table, a consumer, a licence.
struct World {
    client: Client,
    provider_ns: String,
    consumer: String,
    consumer_ns: String,
    licence: String,
    provider: String,
}

impl World {
    async fn new() -> anyhow::Result<Self> {
        let client = admin().await?;
        install_crds(&client).await?;
        let w = World {
            provider: unique("transport"),
            provider_ns: unique("transport"),
            consumer: unique("planning"),
            consumer_ns: unique("planning"),
            licence: unique("ogl"),
            client,
        };
        create_namespace(&w.client, &w.provider_ns).await?;
        create_namespace(&w.client, &w.consumer_ns).await?;
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
            fixtures::domain_with(&w.consumer, &[&w.consumer_ns], "public", &[]),
        )
        .await?;
        // the table the product's port names, and the provider's admin connection
        let pg = pg_url()?;
        let pool = sqlx::PgPool::connect(&pg).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS public.bus_punctuality (route text, day date, on_time_pct numeric)",
        )
        .execute(&pool)
        .await?;
        pool.close().await;
        create(
            &Api::<Secret>::namespaced(w.client.clone(), &w.provider_ns),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "transport-db"}, "stringData": {"url": pg}}),
        )
        .await?;
        Ok(w)
    }

    async fn product(&self, name: &str, classification: &str) -> anyhow::Result<()> {
        let mut p = fixtures::product(name, &self.provider_ns, &self.provider, &self.licence);
        p["spec"]["classification"] = json!(classification);
        create(
            &Api::<DataProduct>::namespaced(self.client.clone(), &self.provider_ns),
            p,
        )
        .await?;
        Ok(())
    }

    fn agreements(&self) -> Api<DataSharingAgreement> {
        Api::namespaced(self.client.clone(), &self.consumer_ns)
    }

    async fn request(&self, name: &str, product: &str) -> anyhow::Result<()> {
        let a = fixtures::agreement(
            name,
            &self.consumer_ns,
            &self.consumer,
            (&self.provider_ns, product),
            (&self.licence, "3.0"),
            &fixtures::in_secs(3600),
        );
        create(&self.agreements(), a).await?;
        Ok(())
    }

    async fn phase(&self, name: &str, want: AgreementPhase) -> anyhow::Result<()> {
        let api = self.agreements();
        wait_for(WAIT, || {
            let api = api.clone();
            async move {
                let a = api.get(name).await.ok()?;
                (a.status?.phase? == want).then_some(())
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("agreement {name} not {want:?}: {e}"))
    }

    async fn cleanup(&self) {
        delete_namespace(&self.client, &self.consumer_ns).await;
        delete_namespace(&self.client, &self.provider_ns).await;
    }
}

/// A raw HTTP/1.1 request on loopback: status code and body.
async fn http(method: &str, url: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url}"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

async fn get_json(url: &str) -> anyhow::Result<Value> {
    let (code, body) = http("GET", url).await?;
    anyhow::ensure!(code == 200, "GET {url}: {code} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The kinds of the agreement's records, in sequence order, from the HTTP API.
async fn kinds(op: &Operator, agreement: &str) -> anyhow::Result<Vec<String>> {
    let v = get_json(&format!(
        "http://{}/api/v1/audit?agreement={agreement}",
        op.http_addr
    ))
    .await?;
    Ok(v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["kind"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// `kubectl-datamesh audit verify --db URL`: exit code and stdout.
fn cli_verify(db: &str) -> anyhow::Result<(i32, String)> {
    let out = std::process::Command::new(workspace_bin("kubectl-datamesh")?)
        .args(["audit", "verify", "--db", db])
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    ))
}

async fn start_operator(audit_url: &str) -> anyhow::Result<Operator> {
    let lease = unique("datamesh-e2e");
    Operator::start_with(
        &admin_kubeconfig()?,
        &[
            "--lease-name",
            &lease,
            "--lease-seconds",
            "4",
            "--audit-url",
            audit_url,
        ],
    )
    .await
}

/// A SQLite audit file in a directory removed when the first value is dropped.
fn temp_sqlite() -> anyhow::Result<(tempfile::TempDir, PathBuf, String)> {
    let dir = temp_dir("datamesh-audit")?;
    let file = dir.path().join("audit.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    Ok((dir, file, url))
}

/// Every step of an approved, then deleted agreement is recorded in order;
/// the chain verifies; editing one record makes `audit verify --db` name it.
async fn trail_records_every_step(audit_url: &str, verify_url: &str) -> anyhow::Result<()> {
    let w = World::new().await?;
    let op = start_operator(audit_url).await?;
    w.product("fares", "restricted").await?;
    w.request("fares-study", "fares").await?;
    w.phase("fares-study", AgreementPhase::PendingApproval)
        .await?;
    create(
        &Api::<AgreementApproval>::namespaced(w.client.clone(), &w.provider_ns),
        fixtures::approval(
            "ok",
            &w.provider_ns,
            (&w.consumer_ns, "fares-study"),
            "admin",
            true,
        ),
    )
    .await?;
    w.phase("fares-study", AgreementPhase::Active).await?;
    w.agreements()
        .delete("fares-study", &DeleteParams::default())
        .await?;
    let agreement = format!("{}/fares-study", w.consumer_ns);
    let want = [
        "request",
        "decision",
        "approval",
        "decision",
        "grant",
        "revocation",
    ];
    let got = wait_for(WAIT, || {
        let (op, agreement) = (&op, &agreement);
        async move {
            let k = kinds(op, agreement).await.ok()?;
            (k.len() >= want.len()).then_some(k)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("records for {agreement}: {e}"))?;
    assert_eq!(got, want, "records of {agreement}");

    // outcome, actor and policy-set version are on record
    let items = get_json(&format!(
        "http://{}/api/v1/audit?agreement={agreement}&consumer={}",
        op.http_addr, w.consumer
    ))
    .await?;
    let records = items["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), want.len());
    assert_eq!(records[0]["actor"], format!("domain:{}", w.consumer));
    assert_eq!(records[1]["outcome"], "NeedsApproval");
    assert!(records[1]["detail"]["policySetVersion"].is_string());
    assert_eq!(records[2]["actor"], "user:admin");
    assert_eq!(
        records[4]["detail"]["fields"],
        json!(["route", "on_time_pct"])
    );
    let seqs: Vec<i64> = records.iter().filter_map(|r| r["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");

    let v = get_json(&format!("http://{}/api/v1/audit/verify", op.http_addr)).await?;
    assert_eq!(v["ok"], true, "{v}");
    // the auditor's command reads the same records through the API
    let out = std::process::Command::new(workspace_bin("kubectl-datamesh")?)
        .args(["audit", "--server", &format!("http://{}", op.http_addr)])
        .args([
            "--consumer",
            &w.consumer,
            "--agreement",
            &agreement,
            "-o",
            "json",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    let listed: Vec<&str> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, want);
    let out = std::process::Command::new(workspace_bin("kubectl-datamesh")?)
        .args([
            "audit",
            "verify",
            "--server",
            &format!("http://{}", op.http_addr),
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    op.kill().await?;
    let (code, out) = cli_verify(verify_url)?;
    assert_eq!(code, 0, "verify of an intact store: {out}");

    // tamper: the approval record now claims another approver
    let tampered = seqs[2];
    if verify_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(verify_url).await?;
        sqlx::query("UPDATE audit_records SET actor = 'user:mallory' WHERE seq = ?")
            .bind(tampered)
            .execute(&pool)
            .await?;
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(verify_url).await?;
        sqlx::query("UPDATE audit_records SET actor = 'user:mallory' WHERE seq = $1")
            .bind(tampered)
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let (code, out) = cli_verify(verify_url)?;
    assert_eq!(code, 1, "verify of a tampered store must fail: {out}");
    assert!(
        out.contains(&format!("record {tampered}")),
        "verify must name record {tampered}: {out}"
    );
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn sqlite_trail_records_every_step_and_names_an_edited_record() -> anyhow::Result<()> {
    let (_dir, file, url) = temp_sqlite()?;
    trail_records_every_step(&url, &format!("sqlite://{}", file.display())).await
}

#[tokio::test]
async fn postgres_trail_records_every_step_and_names_an_edited_record() -> anyhow::Result<()> {
    // a database of its own, so the chain holds this test's records only
    let pg = pg_url()?;
    let db = unique("audit").replace('-', "_");
    let pool = sqlx::PgPool::connect(&pg).await?;
    // `db` is ours: lower-case hex and underscores
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let (base, rest) = pg
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("DATAMESH_PG_URL has no database: {pg}"))?;
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{base}/{db}{query}");
    trail_records_every_step(&url, &url).await
}

#[tokio::test]
async fn unwritable_store_grants_nothing() -> anyhow::Result<()> {
    let (_dir, file, url) = temp_sqlite()?;
    let w = World::new().await?;
    let op = start_operator(&url).await?;
    w.product("buses", "open").await?;
    // a first request goes through: the store works
    w.request("first", "buses").await?;
    w.phase("first", AgreementPhase::Active).await?;
    // now the store cannot be written
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await?;
    sqlx::query("DROP TABLE audit_records")
        .execute(&pool)
        .await?;
    pool.close().await;
    w.request("second", "buses").await?;
    // the operator keeps failing the reconcile (by kind in its metrics) ...
    wait_for(WAIT, || {
        let op = &op;
        async move {
            let n = op
                .counter("datamesh_reconcile_errors", "error=\"audit\"")
                .await
                .ok()?;
            (n > 0.0).then_some(())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("no audit reconcile errors: {e}"))?;
    // ... and the agreement stays unanswered: no Active, no credentials
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a = w.agreements().get("second").await?;
    let status = a.status.unwrap_or_default();
    assert_ne!(status.phase, Some(AgreementPhase::Active), "{status:?}");
    assert_eq!(status.credentials_secret, None);
    let secrets = Api::<Secret>::namespaced(w.client.clone(), &w.consumer_ns)
        .list(&Default::default())
        .await?;
    assert!(
        !secrets.items.iter().any(|s| s
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.contains("second"))),
        "no credentials may be written for an unrecorded grant"
    );
    op.kill().await?;
    w.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn http_api_is_read_only_and_names_bad_parameters() -> anyhow::Result<()> {
    let (_dir, _file, url) = temp_sqlite()?;
    let w = World::new().await?;
    let op = start_operator(&url).await?;
    w.product("buses", "open").await?;
    w.product("fares", "restricted").await?;
    let base = format!("http://{}", op.http_addr);
    for path in [
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/catalog",
        "/api/v1/catalog/dcat",
    ] {
        for method in ["POST", "PUT", "DELETE"] {
            let (code, _) = http(method, &format!("{base}{path}")).await?;
            assert_eq!(code, 405, "{method} {path}");
        }
    }
    for (query, param) in [
        ("limit=many", "limit"),
        ("since=yesterday", "since"),
        ("product=bus%25", "product"),
        ("colour=red", "colour"),
    ] {
        let (code, body) = http("GET", &format!("{base}/api/v1/audit?{query}")).await?;
        assert_eq!(code, 400, "{query}: {body}");
        let v: Value = serde_json::from_str(&body)?;
        assert_eq!(v["parameter"], param, "{query}: {body}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(param)),
            "{body}"
        );
    }
    // the catalogue lists both once both are published (each in its own
    // reconcile, so wait for both) ...
    let buses = format!("{}/buses", w.provider_ns);
    let fares = format!("{}/fares", w.provider_ns);
    wait_for(WAIT, || {
        let (base, buses, fares) = (&base, &buses, &fares);
        async move {
            let catalog = get_json(&format!("{base}/api/v1/catalog")).await.ok()?;
            let names: Vec<String> = catalog["items"]
                .as_array()?
                .iter()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p["namespace"].as_str().unwrap_or(""),
                        p["name"].as_str().unwrap_or("")
                    )
                })
                .collect();
            (names.contains(buses) && names.contains(fares)).then_some(())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("catalogue never listed {buses} and {fares}: {e}"))?;
    // ... and the open DCAT export only the open one
    let dcat = get_json(&format!("{base}/api/v1/catalog/dcat")).await?;
    assert_eq!(dcat["@type"], "dcat:Catalog");
    let text = dcat.to_string();
    assert!(text.contains(&buses), "open product not exported: {text}");
    assert!(
        !text.contains(&fares),
        "restricted product exported: {text}"
    );
    // the admin Secret's name as a JSON string (a namespace such as
    // `transport-db12ab` may contain the bare text)
    assert!(
        !text.contains("\"transport-db\"") && !text.contains("adminSecretRef"),
        "credentials exported: {text}"
    );
    op.kill().await?;
    w.cleanup().await;
    Ok(())
}
