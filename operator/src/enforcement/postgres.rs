//! Grants on a PostgreSQL output port: one LOGIN role per agreement with
//! SELECT on exactly the granted columns, expiring with the agreement.
//!
//! Every statement is safe to repeat: a grant after a crash finds the role by
//! its deterministic name ([`role_name`]) and resets its password, expiry and
//! privileges; a revoke of a role that is gone does nothing. Roles the
//! operator made carry a COMMENT starting with [`MARK`], which is how
//! convergence finds them again.

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection, Row};
use std::str::FromStr;

/// Prefix of the COMMENT on every role the operator created.
pub const MARK: &str = "datamesh agreement ";

/// Prefix of every role name the operator creates.
pub const ROLE_PREFIX: &str = "dm_";

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

/// Where a port's data lives, from its admin connection URL. Holds the admin
/// password: never log, print or store it outside the provider's namespace.
#[derive(Clone)]
pub struct Admin {
    options: PgConnectOptions,
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
        })
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

    async fn connect(&self) -> Result<PgConnection, DbError> {
        let connect = PgConnection::connect_with(&self.options);
        match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
            Ok(r) => r.map_err(|e| self.err(e)),
            Err(_) => Err(self.err("connection timed out")),
        }
    }
}

/// What one grant creates.
pub struct RoleGrant<'a> {
    /// Role name, from [`role_name`].
    pub role: &'a str,
    /// Text after [`MARK`] in the role's COMMENT (`namespace/name uid`).
    pub label: &'a str,
    /// New password.
    pub password: &'a str,
    /// End of access (RFC 3339), if any.
    pub valid_until: Option<&'a str>,
    /// Schema of the table.
    pub schema: &'a str,
    /// Table or view.
    pub table: &'a str,
    /// Columns to grant SELECT on.
    pub columns: &'a [String],
}

/// Creates or resets the role and grants SELECT on exactly `columns`, in one
/// transaction: either all of it holds or none.
pub async fn grant(admin: &Admin, g: &RoleGrant<'_>) -> Result<(), DbError> {
    if g.columns.is_empty() {
        return Err(admin.err("no columns to grant"));
    }
    let mut conn = admin.connect().await?;
    let mut tx = conn.begin().await.map_err(|e| admin.err(e))?;
    let role = quote_ident(g.role);
    let exists = role_exists(&mut tx, g.role)
        .await
        .map_err(|e| admin.err(e))?;
    let until = g
        .valid_until
        .map(|t| format!(" VALID UNTIL {}", quote_literal(t)))
        .unwrap_or_else(|| " VALID UNTIL 'infinity'".into());
    let verb = if exists { "ALTER" } else { "CREATE" };
    let table = format!("{}.{}", quote_ident(g.schema), quote_ident(g.table));
    let columns = g
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let statements = [
        format!(
            "{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION PASSWORD {}{until}",
            quote_literal(g.password)
        ),
        format!(
            "COMMENT ON ROLE {role} IS {}",
            quote_literal(&format!("{MARK}{}", g.label))
        ),
        // start from nothing, so a narrowed grant really narrows
        format!("REVOKE ALL ON {table} FROM {role}"),
        format!("GRANT USAGE ON SCHEMA {} TO {role}", quote_ident(g.schema)),
        format!("GRANT SELECT ({columns}) ON {table} TO {role}"),
    ];
    for sql in statements {
        // The password is in the first statement: an error is reported
        // without the statement text.
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| admin.err(e))?;
    }
    tx.commit().await.map_err(|e| admin.err(e))?;
    Ok(())
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// Whether the role exists.
pub async fn has_role(admin: &Admin, role: &str) -> Result<bool, DbError> {
    let mut conn = admin.connect().await?;
    role_exists(&mut conn, role).await.map_err(|e| admin.err(e))
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
        .execute(&mut conn)
        .await
        .map_err(|e| admin.err(e))?;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(role)
        .execute(&mut conn)
        .await
        .map_err(|e| admin.err(e))?;
    for sql in [
        format!("DROP OWNED BY {quoted}"),
        format!("DROP ROLE IF EXISTS {quoted}"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .map_err(|e| admin.err(e))?;
    }
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
    .fetch_all(&mut conn)
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

#[cfg(test)]
mod tests {
    use super::*;

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
