//! The audit trail: every request, decision, approval, grant, revocation,
//! expiry, correction and policy change, appended before it takes effect
//! and chained by hash so that an edited or deleted record shows.
//!
//! ```text
//!  controller ──events::*──▶ NewRecord ──AuditStore::append──▶ audit_records (SQLite | PostgreSQL)
//!                                                                  │
//!  HTTP /api/v1/audit, kubectl datamesh audit ◀──query / verify────┘  (chain::verify, shared)
//! ```
//! [`record`] and [`chain`] are pure (no database, no Kubernetes), so the CLI
//! checks a store file with exactly the operator's rules.

pub mod chain;
pub mod events;
pub mod query;
pub mod record;
pub mod store;

pub use chain::{Broken, Verification, verify};
pub use query::{BadParameter, Filter};
pub use record::{AuditRecord, GENESIS, Kind, NewRecord};
pub use store::{Appended, AuditError, AuditStore};

/// Default audit store: a SQLite file in the working directory, created if missing.
pub const DEFAULT_URL: &str = "sqlite://datamesh-audit.db?mode=rwc";
