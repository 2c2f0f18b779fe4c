//! Which audit records a change makes: a pure function from an agreement's
//! phase change (or a policy's validation) to the records to append before
//! it takes effect. Keys make each record idempotent: a reconcile retried
//! after a crash computes the same keys and appends nothing twice.
//!
//! ```text
//! Pending ─▶ PendingApproval   request, decision(NeedsApproval)
//! Pending ─▶ Active            request, decision(Allow), grant
//! PendingApproval ─▶ Active    approval, decision(Allow), grant
//! * ─▶ Denied                  [request], [approval], decision(Deny)
//! Active ─▶ Revoked            [approval], revocation
//! Active ─▶ Expired            expiry
//! ```

use super::record::{Kind, NewRecord};
use crate::lifecycle::Answer;
use datamesh_crds::agreement::{AgreementPhase, DataSharingAgreementStatus};
use datamesh_crds::{DataSharingAgreement, GovernancePolicy};
use kube::ResourceExt;
use serde_json::json;

/// The actor of records the operator makes on its own.
pub const OPERATOR: &str = "operator";

fn base(dsa: &DataSharingAgreement, provider: Option<&str>) -> NewRecord {
    NewRecord {
        agreement: Some(format!(
            "{}/{}",
            dsa.namespace().unwrap_or_default(),
            dsa.name_any()
        )),
        agreement_uid: dsa.metadata.uid.clone(),
        product: Some(dsa.spec.product.to_string()),
        consumer: Some(dsa.spec.consumer.clone()),
        provider: provider.map(String::from),
        purpose: Some(dsa.spec.purpose.as_str().to_string()),
        ..NewRecord::default()
    }
}

fn uid(dsa: &DataSharingAgreement) -> String {
    // the API server always sets a uid; fall back to the name so keys stay unique per object
    dsa.metadata
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}/{}", dsa.namespace().unwrap_or_default(), dsa.name_any()))
}

fn decision_detail(s: &DataSharingAgreementStatus) -> serde_json::Value {
    match &s.decision {
        Some(d) => json!({
            "reasons": d.reasons,
            "policySetVersion": d.policy_set_version,
        }),
        None => json!({}),
    }
}

/// Records for an agreement moving from `before` to `after`; none when the
/// phase does not change.
pub fn agreement_records(
    dsa: &DataSharingAgreement,
    provider: Option<&str>,
    before: Option<&DataSharingAgreementStatus>,
    after: &DataSharingAgreementStatus,
    answer: Option<&Answer>,
) -> Vec<NewRecord> {
    let from = before
        .and_then(|s| s.phase)
        .unwrap_or(AgreementPhase::Pending);
    let to = after.phase.unwrap_or(AgreementPhase::Pending);
    if from == to || to == AgreementPhase::Pending {
        return Vec::new();
    }
    let uid = uid(dsa);
    let generation = dsa.metadata.generation.unwrap_or(0);
    let base = base(dsa, provider);
    let outcome = after.decision.as_ref().map(|d| d.outcome.clone());
    let policy_version = after
        .decision
        .as_ref()
        .and_then(|d| d.policy_set_version.clone());
    let mut out = Vec::new();

    // A new request: first decision of this generation.
    if matches!(from, AgreementPhase::Pending | AgreementPhase::Denied) {
        out.push(NewRecord {
            key: format!("{uid}/{generation}/request"),
            kind: Kind::Request.as_str().into(),
            actor: format!("domain:{}", dsa.spec.consumer),
            detail: json!({
                "fields": dsa.spec.fields,
                "justification": dsa.spec.justification,
                "start": dsa.spec.start,
                "end": dsa.spec.end,
                "licence": dsa.spec.licence,
                "commercialUse": dsa.spec.commercial_use,
                "redistribution": dsa.spec.redistribution,
            }),
            ..base.clone()
        });
    }

    // The provider's answer, when it decides this change.
    if let Some(a) = answer {
        let used = (a.approved && to == AgreementPhase::Active)
            || (!a.approved && matches!(to, AgreementPhase::Denied | AgreementPhase::Revoked));
        if used {
            out.push(NewRecord {
                key: format!("{uid}/{generation}/approval/{}", a.record.approval),
                kind: Kind::Approval.as_str().into(),
                actor: format!("user:{}", a.record.by),
                outcome: Some(a.record.decision.clone()),
                detail: json!({
                    "approval": a.record.approval.to_string(),
                    "reason": a.record.reason,
                    "at": a.record.at,
                }),
                ..base.clone()
            });
        }
    }

    let decision = |phase: &str| NewRecord {
        key: format!("{uid}/{generation}/decision/{phase}"),
        kind: Kind::Decision.as_str().into(),
        actor: OPERATOR.into(),
        outcome: outcome.clone(),
        detail: decision_detail(after),
        ..base.clone()
    };
    match to {
        AgreementPhase::PendingApproval => out.push(decision("PendingApproval")),
        AgreementPhase::Denied => out.push(decision("Denied")),
        AgreementPhase::Active => {
            out.push(decision("Active"));
            out.push(NewRecord {
                key: format!("{uid}/{generation}/grant"),
                kind: Kind::Grant.as_str().into(),
                actor: OPERATOR.into(),
                outcome: Some("Granted".into()),
                detail: json!({
                    "fields": after.granted_fields,
                    "activeFrom": after.active_from,
                    "activeUntil": after.active_until,
                    "licence": after.licence,
                    "policySetVersion": policy_version,
                }),
                ..base.clone()
            });
        }
        AgreementPhase::Revoked => out.push(NewRecord {
            key: format!("{uid}/revocation"),
            kind: Kind::Revocation.as_str().into(),
            actor: OPERATOR.into(),
            outcome: Some("Revoked".into()),
            detail: decision_detail(after),
            ..base.clone()
        }),
        AgreementPhase::Expired => out.push(NewRecord {
            key: format!("{uid}/expiry"),
            kind: Kind::Expiry.as_str().into(),
            actor: OPERATOR.into(),
            outcome: Some("Expired".into()),
            detail: json!({"endedAt": after.ended_at}),
            ..base.clone()
        }),
        AgreementPhase::Pending => {}
    }
    out
}

/// The revocation of an Active agreement that is being deleted.
pub fn deletion_record(dsa: &DataSharingAgreement, provider: Option<&str>) -> NewRecord {
    NewRecord {
        key: format!("{}/revocation", uid(dsa)),
        kind: Kind::Revocation.as_str().into(),
        actor: OPERATOR.into(),
        outcome: Some("Revoked".into()),
        detail: json!({"reasons": [{"kind": "request", "id": "Deleted", "message": "agreement deleted"}]}),
        ..base(dsa, provider)
    }
}

/// A correction convergence made where the data lives (`dropped` a role no
/// agreement backs, `regranted` a missing one). Keyed by time: the same role
/// may need correcting again later.
pub fn correction_record(
    action: &str,
    role: &str,
    target: &str,
    agreement: Option<&DataSharingAgreement>,
    product: &datamesh_crds::DataProduct,
    reason: &str,
    now: jiff::Timestamp,
) -> NewRecord {
    let mut r = match agreement {
        Some(a) => base(a, Some(&product.spec.domain)),
        None => NewRecord {
            product: Some(format!(
                "{}/{}",
                product.namespace().unwrap_or_default(),
                product.name_any()
            )),
            provider: Some(product.spec.domain.clone()),
            ..NewRecord::default()
        },
    };
    r.key = format!(
        "correction/{target}/{role}/{action}/{}",
        now.as_microsecond()
    );
    r.kind = Kind::Correction.as_str().into();
    r.actor = OPERATOR.into();
    r.outcome = Some(action.into());
    r.detail = json!({"role": role, "target": target, "reason": reason});
    r
}

/// A GovernancePolicy going into force (`version` of the new set) or being
/// refused (`errors`), or withdrawn (`withdrawn`).
pub fn policy_record(
    gp: &GovernancePolicy,
    outcome: &str,
    version: Option<&str>,
    message: &str,
) -> NewRecord {
    let uid = gp.metadata.uid.clone().unwrap_or_else(|| gp.name_any());
    let generation = gp.metadata.generation.unwrap_or(0);
    NewRecord {
        key: format!("policy/{uid}/{generation}/{outcome}"),
        kind: Kind::PolicyChange.as_str().into(),
        actor: OPERATOR.into(),
        outcome: Some(outcome.into()),
        detail: json!({
            "governancePolicy": gp.name_any(),
            "generation": generation,
            "policySetVersion": version,
            "message": message,
        }),
        ..NewRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datamesh_crds::agreement::{ApprovalRecord, DecisionRecord};

    fn dsa() -> DataSharingAgreement {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataSharingAgreement",
            "metadata": {"name": "a", "namespace": "planning", "uid": "u-1", "generation": 2},
            "spec": {"consumer": "planning", "product": {"namespace": "transport", "name": "bus"},
                "purpose": "service-planning", "fields": ["route"], "end": "2030-01-01T00:00:00Z",
                "licence": {"name": "ogl", "version": "3.0"}}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn status(phase: AgreementPhase, outcome: &str) -> DataSharingAgreementStatus {
        DataSharingAgreementStatus {
            phase: Some(phase),
            decision: Some(DecisionRecord {
                outcome: outcome.into(),
                reasons: vec![],
                policy_set_version: Some("v1".into()),
            }),
            ..Default::default()
        }
    }

    fn kinds(r: &[NewRecord]) -> Vec<&str> {
        r.iter().map(|r| r.kind.as_str()).collect()
    }

    #[test]
    fn direct_grant_records_request_decision_grant() {
        let r = agreement_records(
            &dsa(),
            Some("transport"),
            None,
            &status(AgreementPhase::Active, "Allow"),
            None,
        );
        assert_eq!(kinds(&r), ["request", "decision", "grant"]);
        assert!(
            r.iter()
                .all(|r| r.product.as_deref() == Some("transport/bus"))
        );
        assert_eq!(r.first().map(|r| r.actor.as_str()), Some("domain:planning"));
    }

    #[test]
    fn approval_then_grant() {
        let answer = Answer {
            approved: true,
            record: ApprovalRecord {
                decision: "Approved".into(),
                by: "alice".into(),
                at: "2026-01-01T00:00:00Z".into(),
                approval: datamesh_crds::ObjectRef {
                    namespace: "transport".into(),
                    name: "ok".into(),
                },
                reason: None,
            },
        };
        let before = status(AgreementPhase::PendingApproval, "NeedsApproval");
        let r = agreement_records(
            &dsa(),
            None,
            Some(&before),
            &status(AgreementPhase::Active, "Allow"),
            Some(&answer),
        );
        assert_eq!(kinds(&r), ["approval", "decision", "grant"]);
        assert_eq!(r.first().map(|r| r.actor.as_str()), Some("user:alice"));
    }

    #[test]
    fn no_phase_change_no_records_and_keys_are_stable() {
        let s = status(AgreementPhase::Active, "Allow");
        assert!(agreement_records(&dsa(), None, Some(&s), &s, None).is_empty());
        let a = agreement_records(&dsa(), None, None, &s, None);
        let b = agreement_records(&dsa(), None, None, &s, None);
        assert_eq!(
            a.iter().map(|r| &r.key).collect::<Vec<_>>(),
            b.iter().map(|r| &r.key).collect::<Vec<_>>()
        );
    }

    #[test]
    fn endings() {
        let active = status(AgreementPhase::Active, "Allow");
        let revoked = agreement_records(
            &dsa(),
            None,
            Some(&active),
            &status(AgreementPhase::Revoked, "Deny"),
            None,
        );
        assert_eq!(kinds(&revoked), ["revocation"]);
        let expired = agreement_records(
            &dsa(),
            None,
            Some(&active),
            &status(AgreementPhase::Expired, "Allow"),
            None,
        );
        assert_eq!(kinds(&expired), ["expiry"]);
        let denied = agreement_records(
            &dsa(),
            None,
            None,
            &status(AgreementPhase::Denied, "Deny"),
            None,
        );
        assert_eq!(kinds(&denied), ["request", "decision"]);
    }
}
