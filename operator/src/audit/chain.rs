//! Checking the hash chain: pure, fed records in sequence order, so the
//! operator's `/api/v1/audit/verify` and `kubectl datamesh audit verify --db`
//! give the same verdict on the same store.

use super::record::{AuditRecord, GENESIS};
use serde::{Deserialize, Serialize};

/// The first record that breaks the chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Broken {
    /// Sequence number of the first broken record (the expected one, for a gap).
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// The verdict on a whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// True when every record is intact and linked to its predecessor.
    pub ok: bool,
    /// Records checked (up to and including the broken one).
    pub records: u64,
    /// The first broken record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<Broken>,
}

/// Walks a chain record by record.
#[derive(Debug)]
pub struct ChainCheck {
    next_seq: i64,
    prev_hash: String,
    records: u64,
    broken: Option<Broken>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS.to_string(),
            records: 0,
            broken: None,
        }
    }
}

impl ChainCheck {
    /// Checks the next record; false once the chain is broken (stop feeding).
    pub fn check(&mut self, r: &AuditRecord) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.records += 1;
        let fail = if r.seq != self.next_seq {
            Some(Broken {
                seq: self.next_seq,
                reason: format!(
                    "record {} is missing (the next record is {}): deleted",
                    self.next_seq, r.seq
                ),
            })
        } else if r.hash != r.content_hash() {
            Some(Broken {
                seq: r.seq,
                reason: format!(
                    "record {} does not match its hash: its content was changed",
                    r.seq
                ),
            })
        } else if r.prev_hash != self.prev_hash {
            Some(Broken {
                seq: r.seq,
                reason: format!(
                    "record {} does not link to record {}: the chain was rewritten",
                    r.seq,
                    r.seq - 1
                ),
            })
        } else {
            None
        };
        self.next_seq = r.seq + 1;
        self.prev_hash = r.hash.clone();
        self.broken = fail;
        self.broken.is_none()
    }

    /// The verdict.
    pub fn finish(self) -> Verification {
        Verification {
            ok: self.broken.is_none(),
            records: self.records,
            broken: self.broken,
        }
    }
}

/// Verifies records given in sequence order.
pub fn verify<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Verification {
    let mut check = ChainCheck::default();
    for r in records {
        if !check.check(r) {
            break;
        }
    }
    check.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::NewRecord;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let new = NewRecord {
                    key: format!("k{seq}"),
                    kind: "decision".into(),
                    actor: "operator".into(),
                    detail: serde_json::json!({"n": seq}),
                    ..NewRecord::default()
                };
                let r = AuditRecord::chained(&new, seq, jiff::Timestamp::UNIX_EPOCH, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let v = verify(&chain(5));
        assert!(v.ok);
        assert_eq!(v.records, 5);
        assert!(verify(&[]).ok);
    }

    #[test]
    fn edited_record_is_named() {
        let mut c = chain(5);
        if let Some(r) = c.get_mut(2) {
            r.outcome = Some("Allow".into());
        }
        let v = verify(&c);
        assert!(!v.ok);
        assert_eq!(v.broken.map(|b| b.seq), Some(3));
    }

    #[test]
    fn rehashed_edit_breaks_the_next_link() {
        let mut c = chain(5);
        if let Some(r) = c.get_mut(1) {
            r.outcome = Some("Allow".into());
            r.hash = r.content_hash();
        }
        let v = verify(&c);
        assert_eq!(v.broken.map(|b| b.seq), Some(3));
    }

    #[test]
    fn deleted_record_is_named() {
        let mut c = chain(5);
        c.remove(3);
        let v = verify(&c);
        let broken = v.broken.unwrap_or_else(|| panic!("gap not found"));
        assert_eq!(broken.seq, 4);
        assert!(broken.reason.contains("deleted"), "{}", broken.reason);
    }
}
