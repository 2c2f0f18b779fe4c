//! Standard Kubernetes status conditions, set so that an unchanged condition
//! keeps its `lastTransitionTime` (and so a reconcile that changes nothing
//! produces an identical status, which the operator then does not write).

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Condition type saying whether an object is usable.
pub const READY: &str = "Ready";
/// Condition type saying whether a GovernancePolicy validated.
pub const VALID: &str = "Valid";

/// Builds a condition; `status` true/false becomes "True"/"False".
pub fn new(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: Time(now),
    }
}

/// Puts `new` into `conditions`, replacing one of the same type. The previous
/// `lastTransitionTime` is kept when the status did not change.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) {
    if let Some(old) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if old.status == new.status {
            new.last_transition_time = old.last_transition_time.clone();
        }
        *old = new;
    } else {
        conditions.push(new);
    }
}

/// Finds a condition by type.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type exists and is "True".
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let t0 = jiff::Timestamp::from_second(1_000).unwrap_or_default();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap_or_default();
        let mut cs = vec![new(READY, true, "Ok", "fine", Some(1), t0)];
        set(&mut cs, new(READY, true, "Ok", "still fine", Some(2), t1));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, Time(t0));
        assert_eq!(cs[0].observed_generation, Some(2));
        set(&mut cs, new(READY, false, "Broken", "no", Some(3), t1));
        assert_eq!(cs[0].last_transition_time, Time(t1));
        assert!(!is_true(&cs, READY));
    }
}
