//! The audit store: an append-only table in SQLite (a file, the default) or
//! PostgreSQL (for HA), same schema and migrations for both
//! (`operator/migrations/`).
//!
//! Appends are serialised in the process (one writer: the leader) and group
//! committed: the records of every reconcile waiting meanwhile go into one
//! transaction (read the last record, chain each new one to it, insert,
//! commit), and no caller returns before its records are durable. A second writer racing it fails on the sequence's primary
//! key rather than forking the chain. Every record has an idempotency key; a
//! retry of an append that already committed returns the stored record.

use super::chain::{ChainCheck, Verification};
use super::query::Filter;
use super::record::{AuditRecord, NewRecord};
use sqlx::QueryBuilder;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Records read per round trip while verifying.
const PAGE: i64 = 1000;

/// Keys looked up, or records inserted, per statement of an append: at 16
/// parameters a record, far below SQLite's and PostgreSQL's limits.
const CHUNK: usize = 256;

/// Errors of the audit store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("audit store URL must start with sqlite:// or postgres://, got {0:?}")]
    UnsupportedUrl(String),
    /// The database refused or failed a statement, or cannot be reached.
    #[error("audit store: {0}")]
    Database(#[from] sqlx::Error),
    /// A group commit failed (the message is the database's) or was cut short.
    #[error("audit store: {0}")]
    Commit(String),
    /// The schema could not be brought up to date.
    #[error("audit store migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the pool and `DB` to its database type.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => {
                #[allow(dead_code)]
                type DB = sqlx::Sqlite;
                $body
            }
            Pool::Postgres($p) => {
                #[allow(dead_code)]
                type DB = sqlx::Postgres;
                $body
            }
        }
    };
}

/// Whether an append wrote a new record or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Appended at this sequence number.
    New(i64),
    /// A record with the same key already exists at this sequence number.
    Existing(i64),
}

/// Records waiting for the next group commit, and where to answer.
struct Queued {
    records: Vec<NewRecord>,
    done: tokio::sync::oneshot::Sender<Result<Vec<Appended>, AuditError>>,
}

/// The append-only audit store.
pub struct AuditStore {
    pool: Pool,
    writer: tokio::sync::Mutex<()>,
    queue: std::sync::Mutex<Vec<Queued>>,
}

impl AuditStore {
    /// Connects and brings the schema up to date (creating a SQLite file
    /// when the URL says `mode=rwc`).
    pub async fn open(url: &str) -> Result<Self, AuditError> {
        let store = Self::connect(url, true).await?;
        on_pool!(&store.pool, p => MIGRATOR.run(p).await?);
        Ok(store)
    }

    /// Connects to an existing store without changing it (for verification).
    pub async fn open_existing(url: &str) -> Result<Self, AuditError> {
        Self::connect(url, false).await
    }

    /// `writer`: the operator's own store, whose SQLite file is put in
    /// write-ahead-log mode (kept in the file, so readers follow). Readers
    /// (the audit API, `kubectl datamesh audit`) then never block an append,
    /// nor an append them — in rollback-journal mode a long query held
    /// appends, and with them every grant, for up to the busy timeout — and a
    /// commit is one append and one fsync of the log (synchronous=FULL: a
    /// committed record survives a power cut), not a journal created, synced
    /// and deleted.
    async fn connect(url: &str, writer: bool) -> Result<Self, AuditError> {
        let pool = if url.starts_with("sqlite:") {
            let mut opts =
                SqliteConnectOptions::from_str(url)?.busy_timeout(Duration::from_secs(5));
            if writer {
                opts = opts
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full);
            }
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(opts)
                    .await?,
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(AuditError::UnsupportedUrl(redact(url)));
        };
        Ok(Self {
            pool,
            writer: tokio::sync::Mutex::new(()),
            queue: Default::default(),
        })
    }

    /// Appends one record and commits it; returns only once it is durable.
    pub async fn append(&self, new: &NewRecord) -> Result<Appended, AuditError> {
        let mut results = self.commit_grouped(vec![new.clone()]).await?;
        results
            .pop()
            .ok_or_else(|| AuditError::Commit("no result for the record".into()))
    }

    /// Appends records in order, in one transaction; returns once they are
    /// durable. Nothing is appended if any fails.
    pub async fn append_all(&self, records: &[NewRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let results = self.commit_grouped(records.to_vec()).await?;
        for (r, a) in records.iter().zip(results) {
            match a {
                Appended::New(seq) => {
                    tracing::info!(seq, kind = %r.kind, key = %r.key, "audit record appended")
                }
                Appended::Existing(seq) => {
                    tracing::debug!(seq, key = %r.key, "audit record already present")
                }
            }
        }
        Ok(())
    }

    /// Group commit: callers queue their records; whoever holds the writer
    /// lock commits everything queued in one transaction (one fsync for
    /// many reconciles) and tells each caller its results. A caller whose
    /// records a previous holder committed finds the queue empty and its
    /// answer waiting.
    async fn commit_grouped(&self, records: Vec<NewRecord>) -> Result<Vec<Appended>, AuditError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.queued().push(Queued { records, done });
        {
            let _writer = self.writer.lock().await;
            let batch = std::mem::take(&mut *self.queued());
            if !batch.is_empty() {
                let all: Vec<&NewRecord> = batch.iter().flat_map(|q| &q.records).collect();
                match self.write_batch(&all).await {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        for q in batch {
                            let mine = results.by_ref().take(q.records.len()).collect();
                            let _ = q.done.send(Ok(mine));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for q in batch {
                            let _ = q.done.send(Err(AuditError::Commit(message.clone())));
                        }
                    }
                }
            }
        }
        answer
            .await
            .map_err(|_| AuditError::Commit("the append was interrupted".into()))?
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One transaction: find the records already stored by their keys,
    /// chain each new one to the last record, insert them. A few statements
    /// per batch, not two per record: with SQLite each statement is a round
    /// trip to its worker thread, with PostgreSQL one over the network.
    async fn write_batch(&self, records: &[&NewRecord]) -> Result<Vec<Appended>, AuditError> {
        let now = jiff::Timestamp::now();
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let mut last: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            let mut stored: HashMap<String, i64> = HashMap::new();
            for chunk in keys.chunks(CHUNK) {
                let mut q = QueryBuilder::<DB>::new(
                    "SELECT idempotency_key, seq FROM audit_records WHERE idempotency_key IN (",
                );
                let mut list = q.separated(", ");
                for key in chunk {
                    list.push_bind(key.to_string());
                }
                list.push_unseparated(")");
                // not kept prepared: the text differs with each batch's size,
                // and a cached statement per size would hold memory for nothing
                let found: Vec<(String, i64)> =
                    q.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
                stored.extend(found);
            }
            let mut results = Vec::with_capacity(records.len());
            let mut rows = Vec::new();
            for new in records {
                if let Some(&seq) = stored.get(&new.key) {
                    results.push(Appended::Existing(seq));
                    continue;
                }
                let (seq, prev) = match &last {
                    Some((seq, hash)) => (seq + 1, hash.clone()),
                    None => (1, super::record::GENESIS.to_string()),
                };
                let r = AuditRecord::chained(new, seq, now, &prev);
                last = Some((seq, r.hash.clone()));
                // a second record of the same key in this batch finds this one
                stored.insert(new.key.clone(), seq);
                results.push(Appended::New(seq));
                rows.push(r);
            }
            let mut rows = rows.into_iter();
            loop {
                let chunk: Vec<AuditRecord> = rows.by_ref().take(CHUNK).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO audit_records (seq, idempotency_key, at, at_us, kind, actor, agreement, \
                     agreement_uid, product, consumer, provider, purpose, outcome, detail, prev_hash, hash) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.seq)
                        .push_bind(r.key)
                        .push_bind(r.at)
                        .push_bind(r.at_us)
                        .push_bind(r.kind)
                        .push_bind(r.actor)
                        .push_bind(r.agreement)
                        .push_bind(r.agreement_uid)
                        .push_bind(r.product)
                        .push_bind(r.consumer)
                        .push_bind(r.provider)
                        .push_bind(r.purpose)
                        .push_bind(r.outcome)
                        .push_bind(r.detail)
                        .push_bind(r.prev_hash)
                        .push_bind(r.hash);
                });
                q.build().persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(results)
        })
    }

    /// Records matching `filter`, in sequence order.
    pub async fn query(&self, filter: &Filter) -> Result<Vec<AuditRecord>, AuditError> {
        on_pool!(&self.pool, p => {
            let mut q = QueryBuilder::<DB>::new("SELECT * FROM audit_records WHERE 1 = 1");
            if let Some(product) = &filter.product {
                match product.split_once('/') {
                    Some(_) => {
                        q.push(" AND product = ").push_bind(product.clone());
                    }
                    None => {
                        // the parameter is a DNS label, so LIKE sees no wildcards from it
                        q.push(" AND product LIKE ").push_bind(format!("%/{product}"));
                    }
                }
            }
            if let Some(consumer) = &filter.consumer {
                q.push(" AND consumer = ").push_bind(consumer.clone());
            }
            if let Some(domain) = &filter.domain {
                q.push(" AND (consumer = ")
                    .push_bind(domain.clone())
                    .push(" OR provider = ")
                    .push_bind(domain.clone())
                    .push(")");
            }
            if let Some(agreement) = &filter.agreement {
                q.push(" AND (agreement = ")
                    .push_bind(agreement.clone())
                    .push(" OR agreement_uid = ")
                    .push_bind(agreement.clone())
                    .push(")");
            }
            if let Some(since) = filter.since {
                q.push(" AND at_us >= ").push_bind(since.as_microsecond());
            }
            if let Some(until) = filter.until {
                q.push(" AND at_us < ").push_bind(until.as_microsecond());
            }
            q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(filter.limit));
            Ok(q.build_query_as::<AuditRecord>().fetch_all(p).await?)
        })
    }

    /// Checks the whole chain, page by page, and names the first broken record.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let mut check = ChainCheck::default();
        let mut after = 0i64;
        loop {
            let page: Vec<AuditRecord> = on_pool!(&self.pool, p => {
                let mut q = QueryBuilder::<DB>::new("SELECT * FROM audit_records WHERE seq > ");
                q.push_bind(after).push(" ORDER BY seq LIMIT ").push_bind(PAGE);
                q.build_query_as::<AuditRecord>().fetch_all(p).await?
            });
            let Some(last) = page.last() else { break };
            after = last.seq;
            if !page.iter().all(|r| check.check(r)) {
                break;
            }
        }
        Ok(check.finish())
    }

    /// Closes the connections.
    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Kind;

    fn rec(key: &str, product: &str) -> NewRecord {
        NewRecord {
            key: key.into(),
            kind: Kind::Decision.as_str().into(),
            actor: "operator".into(),
            product: Some(product.into()),
            consumer: Some("planning".into()),
            provider: Some("transport".into()),
            detail: serde_json::json!({"reasons": []}),
            ..NewRecord::default()
        }
    }

    fn temp_url(name: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!(
            "datamesh-audit-{name}-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        let _ = std::fs::create_dir_all(&dir);
        let url = format!("sqlite://{}/audit.db?mode=rwc", dir.display());
        (dir, url)
    }

    #[tokio::test]
    async fn appends_chain_and_are_idempotent() -> Result<(), AuditError> {
        let (dir, url) = temp_url("append");
        let store = AuditStore::open(&url).await?;
        assert_eq!(
            store.append(&rec("a", "transport/bus")).await?,
            Appended::New(1)
        );
        assert_eq!(
            store.append(&rec("b", "transport/tram")).await?,
            Appended::New(2)
        );
        assert_eq!(
            store.append(&rec("a", "transport/bus")).await?,
            Appended::Existing(1)
        );
        let all = store.query(&Filter::default()).await?;
        assert_eq!(all.len(), 2);
        assert_eq!(
            all.get(1).map(|r| r.prev_hash.clone()),
            all.first().map(|r| r.hash.clone())
        );
        assert!(store.verify().await?.ok);
        let bus = store
            .query(&Filter {
                product: Some("bus".into()),
                ..Filter::default()
            })
            .await?;
        assert_eq!(bus.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
        // reopening runs the migrations again without harm
        store.close().await;
        let store = AuditStore::open(&url).await?;
        assert_eq!(
            store.append(&rec("c", "transport/bus")).await?,
            Appended::New(3)
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_batch_larger_than_a_statement_keeps_order_and_finds_repeats()
    -> Result<(), AuditError> {
        let (dir, url) = temp_url("batch");
        let store = AuditStore::open(&url).await?;
        store.append(&rec("k-7", "transport/bus")).await?;
        // more records than one statement takes, one stored already and one
        // repeated within the batch
        let mut batch: Vec<NewRecord> = (0..CHUNK * 2 + 10)
            .map(|i| rec(&format!("k-{i}"), "transport/bus"))
            .collect();
        batch.push(rec("k-3", "transport/bus"));
        let refs: Vec<&NewRecord> = batch.iter().collect();
        let results = store.write_batch(&refs).await?;
        assert_eq!(results.len(), batch.len());
        assert_eq!(results.get(7), Some(&Appended::Existing(1)));
        assert_eq!(results.get(3), Some(&Appended::New(5)));
        assert_eq!(results.last(), Some(&Appended::Existing(5)));
        let all = store.query(&Filter::default()).await?;
        assert_eq!(all.len(), CHUNK * 2 + 10);
        assert!(all.iter().zip(1..).all(|(r, seq)| r.seq == seq));
        assert!(store.verify().await?.ok);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_form_one_unbroken_chain() -> Result<(), AuditError> {
        let (dir, url) = temp_url("group");
        let store = std::sync::Arc::new(AuditStore::open(&url).await?);
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let records: Vec<NewRecord> = (0..3)
                        .map(|j| rec(&format!("r{i}-{j}"), "transport/bus"))
                        .collect();
                    store.append_all(&records).await?;
                    // a retry of the same reconcile appends nothing new
                    store.append_all(&records).await
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| AuditError::Commit(e.to_string()))??;
        }
        let all = store.query(&Filter::default()).await?;
        assert_eq!(all.len(), 120);
        assert!(all.iter().zip(1..).all(|(r, seq)| r.seq == seq));
        // each reconcile's records stay together and in order
        for i in 0..40 {
            let seqs: Vec<i64> = (0..3)
                .filter_map(|j| {
                    let key = format!("r{i}-{j}");
                    all.iter().find(|r| r.key == key).map(|r| r.seq)
                })
                .collect();
            assert_eq!(seqs.len(), 3);
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        }
        assert!(store.verify().await?.ok);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn verify_names_an_edited_row() -> Result<(), AuditError> {
        let (dir, url) = temp_url("edit");
        let store = AuditStore::open(&url).await?;
        for k in ["a", "b", "c"] {
            store.append(&rec(k, "transport/bus")).await?;
        }
        if let Pool::Sqlite(p) = &store.pool {
            sqlx::query("UPDATE audit_records SET outcome = 'Allow' WHERE seq = 2")
                .execute(p)
                .await?;
        }
        let v = store.verify().await?;
        assert!(!v.ok);
        assert_eq!(v.broken.map(|b| b.seq), Some(2));
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_reader_in_the_middle_of_a_query_does_not_hold_up_appends() -> anyhow::Result<()> {
        let (dir, url) = temp_url("reader");
        let store = AuditStore::open(&url).await?;
        store.append(&rec("a", "transport/bus")).await?;
        // `kubectl datamesh audit` (or the audit API) reading: a read
        // transaction open on its own connection
        let reader = AuditStore::open_existing(&url).await?;
        let Pool::Sqlite(p) = &reader.pool else {
            anyhow::bail!("a sqlite:// URL opens SQLite");
        };
        let mut read = p.begin().await?;
        let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_records")
            .fetch_one(&mut *read)
            .await?;
        assert_eq!(seen, 1);
        // an append commits meanwhile; in rollback-journal mode it waited
        // for the busy timeout (5 s) and failed with "database is locked"
        let appended = tokio::time::timeout(
            Duration::from_secs(4),
            store.append(&rec("b", "transport/bus")),
        )
        .await;
        assert!(
            matches!(appended, Ok(Ok(Appended::New(2)))),
            "append while a read is open: {appended:?}"
        );
        // the reader keeps its snapshot; a new read sees the append
        let (still,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_records")
            .fetch_one(&mut *read)
            .await?;
        assert_eq!(still, 1);
        read.rollback().await?;
        assert_eq!(reader.query(&Filter::default()).await?.len(), 2);
        assert!(reader.verify().await?.ok);
        reader.close().await;
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
