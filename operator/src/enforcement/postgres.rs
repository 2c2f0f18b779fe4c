//! Grants on a PostgreSQL output port: one LOGIN role per agreement, member
//! of one NOLOGIN *group* role per (table, set of columns) that holds SELECT
//! on exactly those columns; the login role expires with the agreement.
//!
//! Why groups: column privileges live in `pg_attribute.attacl`, which cannot
//! be TOASTed, so one column's ACL tops out near 8 KB — about 2,400 grantees.
//! Granting columns to each agreement's role capped a table at that many
//! concurrent agreements. A group per field set makes the ACL grow with the
//! number of distinct field sets instead; memberships (`pg_auth_members`)
//! have no such limit.
//!
//! Every statement is safe to repeat: a grant after a crash finds the role by
//! its deterministic name ([`role_name`]) and resets its password, expiry and
//! membership; a revoke of a role that is gone does nothing. Roles the
//! operator made carry a COMMENT starting with [`MARK`] (agreement roles) or
//! [`GROUP_MARK`] (groups), which is how convergence finds them again.

use sha2::{Digest, Sha256};
use sqlx::ConnectOptions;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{AssertSqlSafe, Connection, Row};
use std::str::FromStr;
use std::time::Duration;

/// Prefix of the COMMENT on every agreement role the operator created.
pub const MARK: &str = "datamesh agreement ";

/// Prefix of the COMMENT on every group role the operator created.
pub const GROUP_MARK: &str = "datamesh group ";

/// Prefix of every role name the operator creates.
pub const ROLE_PREFIX: &str = "dm_";

/// Prefix of every group role name.
pub const GROUP_PREFIX: &str = "dm_g_";

/// The NOLOGIN role every certificate-authenticated agreement role is a
/// member of, so that `pg_hba.conf` can say `cert` for exactly them
/// (`hostssl all +datamesh_certificate ... cert`). The operator creates it
/// in each database that has a certificate port; it holds no privileges.
pub const CERT_GROUP: &str = "datamesh_certificate";

/// Connections kept per database; grants of different agreements run
/// concurrently up to this many.
const POOL_SIZE: u32 = 8;

/// The role of an agreement: `dm_` and its uid without dashes, so a retry
/// after a crash finds the same role.
pub fn role_name(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{ROLE_PREFIX}{hex}")
}

/// The group role holding SELECT on `columns` of `schema.table`: the same
/// for every agreement granted the same field set, whatever the order or
/// repetition of the columns. 24 hex digits of SHA-256 keep it far inside
/// PostgreSQL's 63-byte names with no practical chance of a collision.
pub fn group_name(schema: &str, table: &str, columns: &[String]) -> String {
    let mut cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    cols.sort_unstable();
    cols.dedup();
    let mut h = Sha256::new();
    for part in [schema, table].into_iter().chain(cols) {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = hex::encode(h.finalize());
    format!("{GROUP_PREFIX}{}", &digest[..24])
}

/// Quotes an SQL identifier: wraps it in `"` and doubles any `"` inside, so
/// a name like `x"; DROP TABLE y; --` stays one identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal for statements that take no parameters
/// (CREATE/ALTER ROLE, COMMENT): doubles `'`; an `E'...'` literal also
/// doubles backslashes, so the text means the same whatever
/// `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let body = value.replace('\\', "\\\\").replace('\'', "''");
    format!("E'{body}'")
}

/// PBKDF2 iterations of a role's SCRAM verifier: PostgreSQL's own default and
/// the minimum RFC 7677 asks for. It is the largest cost of a grant (the
/// server checks every new verifier against the empty password, ~3 ms at
/// 4096), but the passwords being random would not make fewer safe to use:
/// client libraries consumers connect with refuse counts below 4096 (e.g.
/// pgjdbc's SCRAM library and Bun's SQL client did), so it stays.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802 and
/// 7677), derived here so that the password itself never reaches the server:
/// not in a statement PostgreSQL logs when it fails, nor in
/// `pg_stat_activity`. The server would first apply SASLprep, which leaves
/// the ASCII letters and digits of the passwords the operator makes as they are.
pub fn scram_verifier(password: &str, salt: &[u8; 16], iterations: u32) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |message: &[u8]| {
        // HMAC takes a key of any length: this cannot fail
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&salted)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(message);
        mac.finalize().into_bytes()
    };
    let client_key = hmac(b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

/// Where a port's data lives, from its admin connection URL. Holds the admin
/// password: never log, print or store it outside the provider's namespace.
#[derive(Clone)]
pub struct Admin {
    options: PgConnectOptions,
    /// Shared connections, once [`Admin::pooled`].
    pool: Option<PgPool>,
    /// Host the database answers on.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    password: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Admin({})", self.target())
    }
}

/// A database call that failed; its text never holds the admin password.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {message}")]
pub struct DbError {
    /// `host:port/database`.
    pub target: String,
    /// What failed (admin credentials removed).
    pub message: String,
}

impl Admin {
    /// Parses an admin URL (`postgres://user:password@host:port/db`). The
    /// error never repeats the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| "not a valid postgres:// connection URL".to_string())?
            // bounded, so a stuck database never holds the grant lock for long
            .options([("statement_timeout", "20000"), ("lock_timeout", "10000")])
            // `CREATE ROLE ... PASSWORD` carries the consumer's password: never log statements
            .disable_statement_logging();
        let password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .map(|(_, pw)| pw.to_string())
            .unwrap_or_default();
        let database = options
            .get_database()
            .unwrap_or(options.get_username())
            .to_string();
        Ok(Self {
            host: options.get_host().to_string(),
            port: options.get_port(),
            database,
            password,
            options,
            pool: None,
        })
    }

    /// The same admin with a pool of connections, so grants reuse
    /// connections (and their authentication) and run concurrently. Needs a
    /// tokio runtime.
    pub fn pooled(mut self) -> Self {
        self.pool = Some(
            PgPoolOptions::new()
                .max_connections(POOL_SIZE)
                .acquire_timeout(Duration::from_secs(10))
                .idle_timeout(Duration::from_secs(120))
                .connect_lazy_with(self.options.clone()),
        );
        self
    }

    /// `host:port/database`, safe to show.
    pub fn target(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }

    fn err(&self, e: impl std::fmt::Display) -> DbError {
        let mut message = e.to_string();
        if self.password.len() >= 3 {
            message = message.replace(&self.password, "***");
        }
        DbError {
            target: self.target(),
            message,
        }
    }

    async fn connect(&self) -> Result<Conn, DbError> {
        if let Some(pool) = &self.pool {
            return pool
                .acquire()
                .await
                .map(Conn::Pooled)
                .map_err(|e| self.err(e));
        }
        let connect = PgConnection::connect_with(&self.options);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(r) => r.map(Conn::Direct).map_err(|e| self.err(e)),
            Err(_) => Err(self.err("connection timed out")),
        }
    }
}

/// A connection from the pool or made for one call.
enum Conn {
    Pooled(PoolConnection<Postgres>),
    Direct(PgConnection),
}

impl std::ops::Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Direct(c) => c,
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Direct(c) => c,
        }
    }
}

/// What one grant creates.
pub struct RoleGrant<'a> {
    /// Role name, from [`role_name`].
    pub role: &'a str,
    /// Text after [`MARK`] in the role's COMMENT (`namespace/name uid`).
    pub label: &'a str,
    /// How the role signs in.
    pub login: Login<'a>,
    /// End of access (RFC 3339), if any.
    pub valid_until: Option<&'a str>,
    /// Schema of the table.
    pub schema: &'a str,
    /// Table or view.
    pub table: &'a str,
    /// Columns to grant SELECT on.
    pub columns: &'a [String],
}

/// How an agreement's role signs in.
#[derive(Debug, Clone, Copy)]
pub enum Login<'a> {
    /// With this password (stored as a SCRAM-SHA-256 verifier).
    Password(&'a str),
    /// With a client certificate naming the role: no password, and a member
    /// of [`CERT_GROUP`].
    Certificate,
}

/// Creates or resets the agreement's role and makes it a member of exactly
/// one group: the one holding SELECT on `columns` (created if needed). The
/// role's part is one transaction: either all of it holds or none.
pub async fn grant(admin: &Admin, g: &RoleGrant<'_>) -> Result<(), DbError> {
    if g.columns.is_empty() {
        return Err(admin.err("no columns to grant"));
    }
    let group = group_name(g.schema, g.table, g.columns);
    let table = format!("{}.{}", quote_ident(g.schema), quote_ident(g.table));
    let mut conn = admin.connect().await?;
    let role = quote_ident(g.role);
    let until = g
        .valid_until
        .map(|t| format!(" VALID UNTIL {}", quote_literal(t)))
        .unwrap_or_else(|| " VALID UNTIL 'infinity'".into());
    let password = match g.login {
        Login::Password(p) => quote_literal(&scram_verifier(p, &rand::random(), SCRAM_ITERATIONS)),
        Login::Certificate => "NULL".into(),
    };
    let certificate = matches!(g.login, Login::Certificate);
    let role_statements = |verb: &str| {
        [
            // INHERIT: the role uses its group's privileges without SET ROLE
            format!(
                "{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION PASSWORD {password}{until}"
            ),
            format!(
                "COMMENT ON ROLE {role} IS {}",
                quote_literal(&format!("{MARK}{}", g.label))
            ),
        ]
    };

    // The usual grant: a new role for an agreement whose field set already
    // has its group. One round trip to look and one to write, not seven: a
    // database across a network pays each.
    let found = look(&mut conn, g, &group, &table).await;
    if certificate && !found.as_ref().is_some_and(|f| f.cert_group) {
        ensure_cert_group(admin, &mut conn).await?;
    }
    let cert_member = format!("GRANT {} TO {role}", quote_ident(CERT_GROUP));
    if let Some(Found {
        role_exists: false,
        group_ready: true,
        ..
    }) = found
    {
        let [create, comment] = role_statements("CREATE");
        let mut message = vec![
            create,
            comment,
            format!("GRANT {} TO {role}", quote_ident(&group)),
        ];
        if certificate {
            message.push(cert_member);
        }
        // one simple-query message: PostgreSQL runs it as one implicit
        // transaction, so either all of it holds or none (a concurrent grant
        // of the same role fails here and is retried by the ALTER path)
        return run(admin, &mut conn, [message.join(";\n")]).await;
    }

    if !found.is_some_and(|f| f.group_ready) {
        ensure_group(admin, &mut conn, &group, g, &table).await?;
    }
    let mut tx = conn.begin().await.map_err(|e| admin.err(e))?;
    let exists = role_exists(&mut tx, g.role)
        .await
        .map_err(|e| admin.err(e))?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    let mut statements = Vec::from(role_statements(verb));
    if exists {
        // start from nothing, so a narrowed grant really narrows: other
        // groups, and any privilege granted to the role itself
        let others: Vec<String> = sqlx::query(
            "SELECT g.rolname::text FROM pg_auth_members m \
             JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member \
             WHERE r.rolname = $1 AND ((starts_with(g.rolname, $2) AND g.rolname <> $3) \
             OR (g.rolname = $4 AND NOT $5))",
        )
        .bind(g.role)
        .bind(GROUP_PREFIX)
        .bind(&group)
        .bind(CERT_GROUP)
        .bind(certificate)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| admin.err(e))?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|e| admin.err(e))?;
        for other in others {
            statements.push(format!("REVOKE {} FROM {role}", quote_ident(&other)));
        }
        // the table's ACL is shared with every other grant: serialise
        statements.push(format!(
            "SELECT pg_advisory_xact_lock({})",
            lock_key(g.schema)
        ));
        statements.push(format!("REVOKE ALL ON {table} FROM {role}"));
    }
    statements.push(format!("GRANT {} TO {role}", quote_ident(&group)));
    if certificate {
        statements.push(cert_member);
    }
    // The password is in the first statement: [`run`] reports an error
    // without the statement text.
    run(admin, &mut tx, statements).await?;
    tx.commit().await.map_err(|e| admin.err(e))?;
    Ok(())
}

/// What [`look`] found before a grant.
struct Found {
    /// The agreement's role exists (a retry, or a grant being changed).
    role_exists: bool,
    /// The group exists and holds USAGE on the schema and SELECT on every
    /// granted column.
    group_ready: bool,
    /// [`CERT_GROUP`] exists.
    cert_group: bool,
}

/// Looks, in one query, whether the agreement's role exists and whether its
/// group is ready (the one check of the group: [`ensure_group`] runs only
/// when it is not). `None` when the query fails (a table or column that is
/// not there makes the privilege functions raise): the caller then takes
/// the path that reports the database's own error.
async fn look(
    conn: &mut PgConnection,
    g: &RoleGrant<'_>,
    group: &str,
    table: &str,
) -> Option<Found> {
    // the privilege functions raise for a role that does not exist, so
    // they are only asked once the group is known to exist
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $5), \
         EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $6), \
         CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
         THEN has_schema_privilege($1, $2, 'USAGE') \
         AND coalesce((SELECT bool_and(has_column_privilege($1, $3, c, 'SELECT')) FROM unnest($4::text[]) c), false) \
         ELSE false END",
    )
    .bind(group)
    .bind(g.schema)
    .bind(table)
    .bind(g.columns)
    .bind(g.role)
    .bind(CERT_GROUP)
    .fetch_one(&mut *conn)
    .await
    .ok()?;
    Some(Found {
        role_exists: row.try_get(0).ok()?,
        cert_group: row.try_get(1).ok()?,
        group_ready: row.try_get(2).ok()?,
    })
}

/// Advisory-lock key of a schema: group creation and ACL changes on its
/// tables take it, because concurrent GRANTs on one object fail with "tuple
/// concurrently updated".
fn lock_key(schema: &str) -> String {
    format!(
        "hashtext({})",
        quote_literal(&format!("datamesh grants {schema}"))
    )
}

/// Makes `group` exist and hold USAGE on the schema and SELECT on exactly
/// its columns (restored if someone revoked them by hand), once [`look`]
/// found it not ready.
async fn ensure_group(
    admin: &Admin,
    conn: &mut PgConnection,
    group: &str,
    g: &RoleGrant<'_>,
    table: &str,
) -> Result<(), DbError> {
    let mut tx = conn.begin().await.map_err(|e| admin.err(e))?;
    let quoted = quote_ident(group);
    let columns = g
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    // taken before looking, so two grants cannot both create the group
    run(
        admin,
        &mut tx,
        [format!(
            "SELECT pg_advisory_xact_lock({})",
            lock_key(g.schema)
        )],
    )
    .await?;
    let mut statements = Vec::new();
    if !role_exists(&mut tx, group)
        .await
        .map_err(|e| admin.err(e))?
    {
        statements.push(format!(
            "CREATE ROLE {quoted} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION"
        ));
        statements.push(format!(
            "COMMENT ON ROLE {quoted} IS {}",
            quote_literal(&format!(
                "{GROUP_MARK}SELECT ({}) ON {}.{}",
                g.columns.join(", "),
                g.schema,
                g.table
            ))
        ));
    }
    statements.push(format!(
        "GRANT USAGE ON SCHEMA {} TO {quoted}",
        quote_ident(g.schema)
    ));
    statements.push(format!("GRANT SELECT ({columns}) ON {table} TO {quoted}"));
    run(admin, &mut tx, statements).await?;
    tx.commit().await.map_err(|e| admin.err(e))?;
    Ok(())
}

/// Makes [`CERT_GROUP`] exist; a concurrent grant creating it too is fine.
async fn ensure_cert_group(admin: &Admin, conn: &mut PgConnection) -> Result<(), DbError> {
    run(
        admin,
        conn,
        [format!(
            "DO $$BEGIN CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END$$",
            quote_ident(CERT_GROUP)
        )],
    )
    .await
}

/// Runs statements in order on `conn`, stopping at the first failure, whose
/// error carries the database's message but never the statement.
async fn run(
    admin: &Admin,
    conn: &mut PgConnection,
    statements: impl IntoIterator<Item = String>,
) -> Result<(), DbError> {
    for sql in statements {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(|e| admin.err(e))?;
    }
    Ok(())
}

/// Drops the operator's groups that no role is a member of any more (their
/// agreements all ended). Returns the groups dropped.
pub async fn drop_empty_groups(admin: &Admin) -> Result<Vec<String>, DbError> {
    let mut conn = admin.connect().await?;
    let empty: Vec<String> = sqlx::query(
        "SELECT r.rolname::text FROM pg_roles r \
         JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass \
         WHERE starts_with(r.rolname, $1) AND starts_with(d.description, $2) \
         AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid) ORDER BY 1",
    )
    .bind(GROUP_PREFIX)
    .bind(GROUP_MARK)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| admin.err(e))?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()
    .map_err(|e| admin.err(e))?;
    for group in &empty {
        let mut tx = conn.begin().await.map_err(|e| admin.err(e))?;
        let quoted = quote_ident(group);
        // DROP OWNED BY revokes its privileges. The caller holds the
        // enforcement lock exclusively, so no grant touches the same ACLs.
        run(
            admin,
            &mut tx,
            [
                format!("DROP OWNED BY {quoted}"),
                format!("DROP ROLE IF EXISTS {quoted}"),
            ],
        )
        .await?;
        tx.commit().await.map_err(|e| admin.err(e))?;
    }
    Ok(empty)
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// Ends the role: no new logins, its sessions terminated, its privileges in
/// this database revoked, the role dropped. Nothing to do when it is gone.
/// Returns whether a role was dropped.
pub async fn revoke(admin: &Admin, role: &str) -> Result<bool, DbError> {
    let mut conn = admin.connect().await?;
    if !role_exists(&mut conn, role)
        .await
        .map_err(|e| admin.err(e))?
    {
        return Ok(false);
    }
    let quoted = quote_ident(role);
    // first no new logins, then end the open sessions
    sqlx::raw_sql(AssertSqlSafe(format!("ALTER ROLE {quoted} NOLOGIN")))
        .execute(&mut *conn)
        .await
        .map_err(|e| admin.err(e))?;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(role)
        .execute(&mut *conn)
        .await
        .map_err(|e| admin.err(e))?;
    run(
        admin,
        &mut conn,
        [
            format!("DROP OWNED BY {quoted}"),
            format!("DROP ROLE IF EXISTS {quoted}"),
        ],
    )
    .await?;
    Ok(true)
}

/// A role the operator created, as found in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedRole {
    /// Role name.
    pub role: String,
    /// Text after [`MARK`] in its COMMENT.
    pub label: String,
}

/// Every role carrying the operator's mark.
pub async fn marked_roles(admin: &Admin) -> Result<Vec<MarkedRole>, DbError> {
    let mut conn = admin.connect().await?;
    let rows = sqlx::query(
        "SELECT r.rolname, d.description FROM pg_roles r \
         JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass \
         WHERE starts_with(r.rolname, $1) AND starts_with(d.description, $2) ORDER BY 1",
    )
    .bind(ROLE_PREFIX)
    .bind(MARK)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| admin.err(e))?;
    rows.into_iter()
        .map(|r| {
            let role: String = r.try_get(0)?;
            let description: String = r.try_get(1)?;
            Ok(MarkedRole {
                role,
                label: description
                    .strip_prefix(MARK)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(|e| admin.err(e))
}

/// The consumer's connection URL for a granted role.
pub fn consumer_url(admin: &Admin, role: &str, password: &str) -> String {
    format!(
        "postgres://{role}:{password}@{}:{}/{}",
        admin.host, admin.port, admin.database
    )
}

/// The connection URL of a certificate-authenticated consumer: no password,
/// TLS required. The client adds its certificate and key, e.g. libpq's
/// `sslcert=/creds/tls.crt&sslkey=/creds/tls.key` with the Secret mounted
/// at `/creds`.
pub fn consumer_cert_url(admin: &Admin, role: &str) -> String {
    format!(
        "postgres://{role}@{}:{}/{}?sslmode=require",
        admin.host, admin.port, admin.database
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifier_is_the_one_postgresql_derives() {
        // PostgreSQL 15's own verifier for this password (`CREATE ROLE ...
        // PASSWORD 'pencil1234ABCDwxyz'`, then pg_authid.rolpassword); the same
        // salt must give the same keys
        let theirs = "SCRAM-SHA-256$4096:6uqDq9eEJ/qfPKvwi6XxLA==$9hz04fCzIDtXJEF7w/aYFXHtSK4n9ezqlT5HGKcIItY=:yU3u0wY69HvD9HLrLVD5/3a1Iwak1YMFEt2bvLpXxxs=";
        use base64::Engine;
        let salt: [u8; 16] = base64::engine::general_purpose::STANDARD
            .decode("6uqDq9eEJ/qfPKvwi6XxLA==")
            .ok()
            .and_then(|s| s.try_into().ok())
            .unwrap_or_else(|| panic!("the salt is 16 bytes"));
        assert_eq!(scram_verifier("pencil1234ABCDwxyz", &salt, 4096), theirs);
        assert_ne!(scram_verifier("pencil1234ABCDwxyZ", &salt, 4096), theirs);
    }

    #[test]
    fn hostile_identifier_stays_one_identifier() {
        let q = quote_ident("x\"; DROP TABLE y; --");
        assert_eq!(q, "\"x\"\"; DROP TABLE y; --\"");
        // the only unpaired quotes are the outer ones
        let inner = &q[1..q.len() - 1];
        assert!(!inner.replace("\"\"", "").contains('"'));
    }

    #[test]
    fn literal_escapes_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's"), "E'it''s'");
        assert_eq!(quote_literal("a\\'; DROP"), "E'a\\\\''; DROP'");
    }

    #[test]
    fn one_group_per_table_and_field_set() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let g = group_name("public", "stops", &cols(&["a", "b"]));
        assert!(g.starts_with(GROUP_PREFIX) && g.len() <= 63, "{g}");
        // order and repetition do not matter
        assert_eq!(g, group_name("public", "stops", &cols(&["b", "a", "a"])));
        // another field set, table or schema is another group
        assert_ne!(g, group_name("public", "stops", &cols(&["a"])));
        assert_ne!(g, group_name("public", "trips", &cols(&["a", "b"])));
        assert_ne!(g, group_name("sales", "stops", &cols(&["a", "b"])));
        // names cannot run together into the same group
        assert_ne!(
            group_name("ab", "c", &cols(&["d"])),
            group_name("a", "bc", &cols(&["d"]))
        );
        // never mistaken for an agreement's role
        assert_ne!(
            g.len(),
            role_name("3f2a1c9e-0b4d-4e7a-9c1f-5d6e7f8a9b0c").len()
        );
    }

    #[test]
    fn role_name_is_deterministic_and_plain() {
        let r = role_name("3f2a1c9e-0b4d-4e7a-9c1f-5d6e7f8a9b0c");
        assert_eq!(r, "dm_3f2a1c9e0b4d4e7a9c1f5d6e7f8a9b0c");
        assert!(r.len() <= 63);
        assert_eq!(r, role_name("3F2A1C9E-0B4D-4E7A-9C1F-5D6E7F8A9B0C"));
    }

    #[test]
    fn admin_url_parse_errors_never_echo_the_url() {
        let e = Admin::parse("mysql://admin:s3cret@db/x")
            .err()
            .unwrap_or_default();
        assert!(!e.contains("s3cret"), "{e}");
        let a = Admin::parse("postgres://admin:s3cret@db.example:6543/sales").ok();
        let a = a.as_ref();
        assert_eq!(
            a.map(Admin::target).as_deref(),
            Some("db.example:6543/sales")
        );
        assert!(!format!("{a:?}").contains("s3cret"));
        let e = a.map(|a| a.err("auth failed for admin:s3cret").message);
        assert_eq!(e.as_deref(), Some("auth failed for admin:***"));
    }
}
