//! The phases of a DataSharingAgreement, as a pure function from what is
//! known now (the current status, the decision, the provider's answer, the
//! time) to the next status, the Event to emit and when to look again.
//!
//! ```text
//!            ┌────────── Deny ──────────▶ Denied
//!  Pending ──┼── NeedsApproval ─▶ PendingApproval ──approve──▶ Active ──end──▶ Expired
//!            └────────── Allow ─────────────────────────────▶ Active ──no longer allowed──▶ Revoked
//! ```
//! Expired and Revoked are final; Denied is decided again only when the
//! consumer changes the request (a new generation).

use datamesh_crds::agreement::{
    AgreementPhase, ApprovalRecord, DataSharingAgreementStatus, DecisionRecord, ReasonRecord,
};
use datamesh_crds::condition::{self, READY};
use datamesh_policies::{Decision, Outcome};
use jiff::Timestamp;

/// The provider's answer, from an AgreementApproval.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Approved (true) or denied.
    pub approved: bool,
    /// The record kept in the agreement's status.
    pub record: ApprovalRecord,
}

/// Why no decision could be made (an object the decision needs is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// CamelCase reason, e.g. `ProductNotFound`.
    pub reason: &'static str,
    /// What is missing, in words.
    pub message: String,
}

/// What the next status depends on.
pub struct Facts<'a> {
    /// The agreement's generation.
    pub generation: Option<i64>,
    /// The agreement's current status.
    pub current: Option<&'a DataSharingAgreementStatus>,
    /// The decision, or why none could be made.
    pub decision: Result<&'a Decision, Blocked>,
    /// The provider's answer, if any.
    pub answer: Option<&'a Answer>,
    /// Now.
    pub now: Timestamp,
}

/// An Event to emit about a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Whether it is a warning.
    pub warning: bool,
    /// CamelCase reason, e.g. `Activated`.
    pub reason: &'static str,
    /// Human-readable text.
    pub message: String,
}

/// The next status, the Event to emit (on a phase change), and when the
/// agreement must be looked at again (its end).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Status to write (identical to the current one when nothing changed).
    pub status: DataSharingAgreementStatus,
    /// Event for a phase change.
    pub note: Option<Note>,
    /// When to reconcile again at the latest.
    pub wake_at: Option<Timestamp>,
}

fn reasons_text(reasons: &[ReasonRecord]) -> String {
    reasons
        .iter()
        .map(|r| format!("{} {}: {}", r.kind, r.id, r.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse(ts: Option<&String>) -> Option<Timestamp> {
    ts.and_then(|t| t.parse().ok())
}

/// Computes the next status of an agreement.
pub fn next(f: Facts<'_>) -> Transition {
    let current = f.current.cloned().unwrap_or_default();
    let phase = current.phase.unwrap_or(AgreementPhase::Pending);
    let unchanged = |wake_at| Transition {
        status: current.clone(),
        note: None,
        wake_at,
    };

    match phase {
        AgreementPhase::Expired | AgreementPhase::Revoked => return unchanged(None),
        AgreementPhase::Denied if current.observed_generation == f.generation => {
            return unchanged(None);
        }
        _ => {}
    }

    let mut s = current.clone();
    s.observed_generation = f.generation;
    let now_s = f.now.to_string();

    // An Active agreement ends at its end, whatever else is true.
    if phase == AgreementPhase::Active
        && let Some(until) = parse(current.active_until.as_ref())
        && f.now >= until
    {
        s.phase = Some(AgreementPhase::Expired);
        s.ended_at = Some(until.to_string());
        s.credentials_secret = None;
        set_ready(&mut s, false, "Expired", format!("ended at {until}"), f.now);
        let note = Note {
            warning: false,
            reason: "Expired",
            message: format!("access ended at {until}"),
        };
        return Transition {
            status: s,
            note: Some(note),
            wake_at: None,
        };
    }

    let end = |s: &mut DataSharingAgreementStatus,
               to: AgreementPhase,
               reason: &'static str,
               record: DecisionRecord| {
        let message = reasons_text(&record.reasons);
        s.phase = Some(to);
        s.decision = Some(record);
        s.granted_fields.clear();
        s.credentials_secret = None;
        if to == AgreementPhase::Revoked {
            s.ended_at = Some(now_s.clone());
        } else {
            s.active_from = None;
            s.active_until = None;
        }
        set_ready(s, false, reason, message.clone(), f.now);
        Note {
            warning: true,
            reason,
            message,
        }
    };

    let decision = match f.decision {
        Ok(d) => d,
        Err(blocked) => {
            if phase == AgreementPhase::Active {
                let record = DecisionRecord {
                    outcome: "Deny".into(),
                    reasons: vec![ReasonRecord {
                        kind: "request".into(),
                        id: blocked.reason.into(),
                        message: blocked.message,
                    }],
                    policy_set_version: current
                        .decision
                        .as_ref()
                        .and_then(|d| d.policy_set_version.clone()),
                };
                let note = end(&mut s, AgreementPhase::Revoked, "Revoked", record);
                return Transition {
                    status: s,
                    note: Some(note),
                    wake_at: None,
                };
            }
            s.phase = Some(AgreementPhase::Pending);
            set_ready(&mut s, false, blocked.reason, blocked.message, f.now);
            return finish(current, s, None, None);
        }
    };

    // The provider said no.
    if let Some(answer) = f.answer.filter(|a| !a.approved) {
        let record = DecisionRecord {
            outcome: "Deny".into(),
            reasons: vec![ReasonRecord {
                kind: "approval".into(),
                id: answer.record.approval.to_string(),
                message: format!(
                    "denied by {}{}",
                    answer.record.by,
                    answer
                        .record
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            }],
            policy_set_version: Some(decision.policy_set_version.clone()),
        };
        s.approval = Some(answer.record.clone());
        let to = if phase == AgreementPhase::Active {
            AgreementPhase::Revoked
        } else {
            AgreementPhase::Denied
        };
        let note = end(
            &mut s,
            to,
            if to == AgreementPhase::Revoked {
                "Revoked"
            } else {
                "Denied"
            },
            record,
        );
        return Transition {
            status: s,
            note: Some(note),
            wake_at: None,
        };
    }

    match (decision.outcome, phase) {
        (Outcome::Allow, AgreementPhase::Active) => {
            // Still allowed: keep the grant as it is; only an earlier end
            // (a shortened licence maximum, a sunset date) is taken.
            let until = match (parse(current.active_until.as_ref()), decision.active_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.active_until = until.map(|t| t.to_string());
            finish(current, s, None, until)
        }
        (Outcome::Allow, _) => {
            let from = decision.active_from.unwrap_or(f.now);
            s.phase = Some(AgreementPhase::Active);
            s.decision = Some(decision.to_record());
            s.granted_fields = decision.granted_fields.clone();
            s.active_from = Some(from.to_string());
            s.active_until = decision.active_until.map(|t| t.to_string());
            s.licence = decision.licence.clone();
            s.ended_at = None;
            if let Some(answer) = f.answer {
                s.approval = Some(answer.record.clone());
            }
            let until = decision.active_until;
            let message = format!(
                "granted {} until {}",
                decision.granted_fields.join(", "),
                until.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
            );
            set_ready(&mut s, true, "Active", message.clone(), f.now);
            let note = Note {
                warning: false,
                reason: "Activated",
                message,
            };
            finish(current, s, Some(note), until)
        }
        (Outcome::NeedsApproval, AgreementPhase::Active)
        | (Outcome::Deny, AgreementPhase::Active) => {
            let note = end(
                &mut s,
                AgreementPhase::Revoked,
                "Revoked",
                decision.to_record(),
            );
            Transition {
                status: s,
                note: Some(note),
                wake_at: None,
            }
        }
        (Outcome::NeedsApproval, _) => {
            s.phase = Some(AgreementPhase::PendingApproval);
            s.decision = Some(decision.to_record());
            let message = format!(
                "waiting for the provider's approval: {}",
                reasons_text(&decision.to_record().reasons)
            );
            set_ready(&mut s, false, "PendingApproval", message.clone(), f.now);
            let note = Note {
                warning: false,
                reason: "ApprovalRequired",
                message,
            };
            finish(current, s, Some(note), None)
        }
        (Outcome::Deny, _) => {
            let note = end(
                &mut s,
                AgreementPhase::Denied,
                "Denied",
                decision.to_record(),
            );
            Transition {
                status: s,
                note: Some(note),
                wake_at: None,
            }
        }
    }
}

/// Drops the note when the phase did not change (a re-decision that only
/// refreshed reasons is not news).
fn finish(
    current: DataSharingAgreementStatus,
    s: DataSharingAgreementStatus,
    note: Option<Note>,
    wake_at: Option<Timestamp>,
) -> Transition {
    let note = note.filter(|_| current.phase != s.phase);
    Transition {
        status: s,
        note,
        wake_at,
    }
}

fn set_ready(
    s: &mut DataSharingAgreementStatus,
    ready: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let generation = s.observed_generation;
    condition::set(
        &mut s.conditions,
        condition::new(READY, ready, reason, message, generation, now),
    );
}
