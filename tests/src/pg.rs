//! The real PostgreSQL of the tests (started by `scripts/test.sh` with
//! `scripts/postgres.sh`, URL in `DATAMESH_PG_URL`): a provider's table and
//! the admin Secret a product's postgres port names.

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// The admin URL of the test PostgreSQL.
pub fn url() -> Result<String> {
    std::env::var("DATAMESH_PG_URL").map_err(|_| {
        anyhow!("no PostgreSQL: run the tests with scripts/test.sh (it starts one and sets DATAMESH_PG_URL)")
    })
}

/// Connects with `url`.
pub async fn connect(url: &str) -> Result<PgConnection> {
    Ok(PgConnection::connect(url).await?)
}

/// Runs statements as the admin.
pub async fn exec(sql: &str) -> Result<()> {
    let mut c = connect(&url()?).await?;
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await?;
    Ok(())
}

/// Creates the admin Secret (`url` key) a postgres port names.
pub async fn admin_secret(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"url": url()?}
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// What [`crate::fixtures::product`] points at: the table
/// `public.bus_punctuality` and the admin Secret `transport-db` in `namespace`.
pub async fn fixture_store(client: &Client, namespace: &str) -> Result<()> {
    exec(
        "CREATE TABLE IF NOT EXISTS public.bus_punctuality \
         (route text, day date, on_time_pct numeric)",
    )
    .await?;
    admin_secret(client, namespace, "transport-db").await
}

/// Loads the city example's tables and rows (`examples/city/sql/seed.sql`,
/// idempotent) into the test PostgreSQL, which the example's port Secrets
/// point at (127.0.0.1:55432, the port `scripts/test.sh` uses).
pub async fn seed_city() -> Result<()> {
    let path = crate::repo_root().join("examples/city/sql/seed.sql");
    let sql =
        std::fs::read_to_string(&path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
    exec(&sql).await
}
