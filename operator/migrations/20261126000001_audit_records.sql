-- The audit trail: one row per recorded event, chained by hash (see
-- operator/src/audit/record.rs for the canonical encoding each hash covers).
-- Same SQL for SQLite and PostgreSQL. `detail` is JSON kept as text, so the
-- bytes the hash covers are the bytes stored.
CREATE TABLE audit_records (
    seq BIGINT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    agreement TEXT,
    agreement_uid TEXT,
    product TEXT,
    consumer TEXT,
    provider TEXT,
    purpose TEXT,
    outcome TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_records_product ON audit_records (product);
CREATE INDEX audit_records_consumer ON audit_records (consumer);
CREATE INDEX audit_records_provider ON audit_records (provider);
CREATE INDEX audit_records_at ON audit_records (at_us);
