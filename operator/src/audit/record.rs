//! One audit record: what happened, to what, by whom, and its link in the
//! hash chain. The hash covers a canonical encoding of every stored column
//! except the hash itself, so changing any byte of a stored record (or its
//! place in the chain) shows.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The previous hash of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A consumer asked for a product.
    Request,
    /// The decision core decided (outcome, reasons, policy-set version).
    Decision,
    /// The provider's answer was used.
    Approval,
    /// Access is about to be granted where the data lives.
    Grant,
    /// Access is about to be revoked (policy change, denial, deletion).
    Revocation,
    /// An agreement reached its end.
    Expiry,
    /// Convergence removed or restored a grant no agreement backs.
    Correction,
    /// A GovernancePolicy went into force, was refused or withdrawn.
    PolicyChange,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Decision => "decision",
            Kind::Approval => "approval",
            Kind::Grant => "grant",
            Kind::Revocation => "revocation",
            Kind::Expiry => "expiry",
            Kind::Correction => "correction",
            Kind::PolicyChange => "policy-change",
        }
    }
}

/// A record to append; the store adds sequence, time and chain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewRecord {
    /// Makes the append idempotent: a retry with the same key appends nothing.
    pub key: String,
    /// What happened (see [`Kind::as_str`]).
    pub kind: String,
    /// Who: `domain:<consumer>`, `user:<approver>` or `operator`.
    pub actor: String,
    /// The agreement, `namespace/name`.
    pub agreement: Option<String>,
    /// The agreement's uid (names outlive objects; uids do not repeat).
    pub agreement_uid: Option<String>,
    /// The product, `namespace/name`.
    pub product: Option<String>,
    /// The consumer domain.
    pub consumer: Option<String>,
    /// The provider domain.
    pub provider: Option<String>,
    /// The stated purpose.
    pub purpose: Option<String>,
    /// Allow, Deny, NeedsApproval, Approved, Denied, InForce, Refused ...
    pub outcome: Option<String>,
    /// Reasons, policy-set version, fields, period: whatever explains the record.
    pub detail: serde_json::Value,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Position in the chain, from 1 without gaps.
    pub seq: i64,
    /// Idempotency key.
    #[sqlx(rename = "idempotency_key")]
    pub key: String,
    /// When it was recorded, RFC 3339.
    pub at: String,
    /// The same time in microseconds since the epoch (for filtering).
    #[serde(skip)]
    pub at_us: i64,
    /// What happened.
    pub kind: String,
    /// Who.
    pub actor: String,
    /// Agreement `namespace/name`.
    pub agreement: Option<String>,
    /// Agreement uid.
    pub agreement_uid: Option<String>,
    /// Product `namespace/name`.
    pub product: Option<String>,
    /// Consumer domain.
    pub consumer: Option<String>,
    /// Provider domain.
    pub provider: Option<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Details as JSON text; shown as JSON by the API.
    #[serde(with = "json_text")]
    pub detail: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// Hash of this record's canonical encoding.
    pub hash: String,
}

/// The encoding a hash covers: a JSON object with the fields in this order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    key: &'a str,
    at: &'a str,
    at_us: i64,
    kind: &'a str,
    actor: &'a str,
    agreement: Option<&'a str>,
    agreement_uid: Option<&'a str>,
    product: Option<&'a str>,
    consumer: Option<&'a str>,
    provider: Option<&'a str>,
    purpose: Option<&'a str>,
    outcome: Option<&'a str>,
    detail: &'a str,
    prev_hash: &'a str,
}

impl AuditRecord {
    /// Builds the stored record that follows `prev_hash` at `seq`.
    pub fn chained(new: &NewRecord, seq: i64, at: jiff::Timestamp, prev_hash: &str) -> Self {
        let mut r = AuditRecord {
            seq,
            key: new.key.clone(),
            at: at.to_string(),
            at_us: at.as_microsecond(),
            kind: new.kind.clone(),
            actor: new.actor.clone(),
            agreement: new.agreement.clone(),
            agreement_uid: new.agreement_uid.clone(),
            product: new.product.clone(),
            consumer: new.consumer.clone(),
            provider: new.provider.clone(),
            purpose: new.purpose.clone(),
            outcome: new.outcome.clone(),
            detail: new.detail.to_string(),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        r.hash = r.content_hash();
        r
    }

    /// SHA-256 (hex) of the canonical encoding of everything but `hash`.
    pub fn content_hash(&self) -> String {
        let c = Canonical {
            seq: self.seq,
            key: &self.key,
            at: &self.at,
            at_us: self.at_us,
            kind: &self.kind,
            actor: &self.actor,
            agreement: self.agreement.as_deref(),
            agreement_uid: self.agreement_uid.as_deref(),
            product: self.product.as_deref(),
            consumer: self.consumer.as_deref(),
            provider: self.provider.as_deref(),
            purpose: self.purpose.as_deref(),
            outcome: self.outcome.as_deref(),
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        };
        // Serialising borrowed strings and integers cannot fail.
        let bytes = serde_json::to_vec(&c).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// Serialises JSON kept as text as the JSON value itself (text that is not
/// JSON, e.g. after tampering, is shown as a string).
mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => serde::Serialize::serialize(&v, s),
            Err(_) => s.serialize_str(text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditRecord {
        let new = NewRecord {
            key: "uid/1/request".into(),
            kind: Kind::Request.as_str().into(),
            actor: "domain:planning".into(),
            product: Some("transport/bus".into()),
            detail: serde_json::json!({"fields": ["route"]}),
            ..NewRecord::default()
        };
        AuditRecord::chained(&new, 1, jiff::Timestamp::UNIX_EPOCH, GENESIS)
    }

    #[test]
    fn hash_changes_with_any_field() {
        let r = sample();
        assert_eq!(r.hash, r.content_hash());
        let mut edited = r.clone();
        edited.product = Some("transport/other".into());
        assert_ne!(edited.content_hash(), r.hash);
        let mut relinked = r.clone();
        relinked.prev_hash = "ff".repeat(32);
        assert_ne!(relinked.content_hash(), r.hash);
        let mut detail = r.clone();
        detail.detail = r#"{"fields":["route","name"]}"#.into();
        assert_ne!(detail.content_hash(), r.hash);
    }

    #[test]
    fn json_round_trip_keeps_the_hash() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert!(text.contains(r#""detail":{"fields":["route"]}"#), "{text}");
        let back: AuditRecord = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.detail, r.detail);
    }
}
