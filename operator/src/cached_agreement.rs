//! The agreements cache's copy of an agreement.
//!
//! At 50,000 agreements the cache is most of the operator's memory: a typed
//! agreement is ~1.1 KB inline plus ~40 small strings, ~2.8 KB in all. The
//! cached copy keeps typed only what is read across the whole cache —
//! metadata, the consumer, the product, the phase and the end of access —
//! and packs the spec and status ([`crate::packed`]), a few hundred bytes. A
//! reconcile unpacks the full agreement it decides on
//! ([`CachedAgreement::expand`], a few µs).

use crate::packed::{Dictionary, PackError, Packed, SpecAndStatus, cached_resource};
use datamesh_crds::agreement::{
    AgreementPhase, DataSharingAgreementSpec, DataSharingAgreementStatus,
};
use datamesh_crds::{DataSharingAgreement, ObjectRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// A cached agreement: [`DataSharingAgreement`] with its spec and status
/// packed. Deserialises from an agreement, so a watch of this type reads
/// the API server's objects directly.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "DataSharingAgreement")]
pub struct CachedAgreement {
    metadata: ObjectMeta,
    /// `spec.consumer`.
    pub consumer: String,
    /// `spec.product`.
    pub product: ObjectRef,
    /// `status.phase`.
    pub phase: Option<AgreementPhase>,
    /// `status.activeUntil`, parsed (None when absent or not a timestamp).
    pub active_until: Option<jiff::Timestamp>,
    packed: Packed,
}

/// One dictionary per phase (and one for agreements without a status):
/// agreements of one phase share most of their text — the operator's
/// phrases for that phase, and what a deployment repeats (licence, policy
/// messages, store address).
static DICTIONARIES: [Dictionary; 7] = [const { Dictionary::new() }; 7];

const KIND: &str = "DataSharingAgreement";

fn dictionary(phase: Option<AgreementPhase>) -> &'static Dictionary {
    let slot = match phase {
        None => 0,
        Some(AgreementPhase::Pending) => 1,
        Some(AgreementPhase::PendingApproval) => 2,
        Some(AgreementPhase::Active) => 3,
        Some(AgreementPhase::Denied) => 4,
        Some(AgreementPhase::Expired) => 5,
        Some(AgreementPhase::Revoked) => 6,
    };
    &DICTIONARIES[slot]
}

type Body = SpecAndStatus<DataSharingAgreementSpec, DataSharingAgreementStatus>;

impl TryFrom<DataSharingAgreement> for CachedAgreement {
    type Error = PackError;

    fn try_from(mut dsa: DataSharingAgreement) -> Result<Self, PackError> {
        crate::controller::strip(&mut dsa);
        let DataSharingAgreement {
            metadata,
            spec,
            status,
        } = dsa;
        let phase = status.as_ref().and_then(|s| s.phase);
        let packed = Packed::spec_and_status(&spec, &status, dictionary(phase), KIND, &metadata)?;
        Ok(Self {
            consumer: spec.consumer,
            product: spec.product,
            phase,
            active_until: status
                .as_ref()
                .and_then(|s| s.active_until.as_deref())
                .and_then(|t| t.parse().ok()),
            packed,
            metadata,
        })
    }
}

impl CachedAgreement {
    /// The agreement as the API server sent it (less `managedFields` and
    /// kubectl's last-applied annotation).
    pub fn expand(&self) -> Result<DataSharingAgreement, PackError> {
        let body = self.body()?;
        Ok(DataSharingAgreement {
            metadata: self.metadata.clone(),
            spec: body.spec,
            status: body.status,
        })
    }

    /// The agreement's status.
    pub fn status(&self) -> Result<Option<DataSharingAgreementStatus>, PackError> {
        Ok(self.body()?.status)
    }

    fn body(&self) -> Result<Body, PackError> {
        self.packed.unpack(KIND, &self.metadata)
    }

    /// Bytes the packed spec and status take.
    #[cfg(test)]
    fn packed_len(&self) -> usize {
        self.packed.packed_len()
    }
}

cached_resource!(CachedAgreement, DataSharingAgreement);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    fn agreement(name: &str, status: serde_json::Value) -> DataSharingAgreement {
        serde_json::from_value(json!({
            "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataSharingAgreement",
            "metadata": {
                "name": name, "namespace": "planning", "uid": format!("uid-{name}"),
                "resourceVersion": "42", "generation": 1,
                "finalizers": ["datamesh.dev/revoke-access"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "buses"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "consumer": "planning", "purpose": "service-planning",
                "justification": "Plan bus lanes with punctuality data.",
                "product": {"namespace": "transport", "name": "bus-punctuality"},
                "fields": ["route", "on_time_pct"], "licence": {"name": "ogl", "version": "3.0"},
                "end": "2027-06-30T00:00:00Z", "dpiaReference": "DPIA-7"
            },
            "status": status
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn active() -> serde_json::Value {
        json!({
            "observedGeneration": 1, "phase": "Active",
            "decision": {"outcome": "Allow", "policySetVersion": "sha256:6e8b00fe0feb3ef1",
                "reasons": [{"kind": "policy", "id": "open-read", "message": "open products are readable by any registered domain"}]},
            "grantedFields": ["route", "on_time_pct"],
            "activeFrom": "2026-11-26T13:39:23.59108837Z", "activeUntil": "2027-06-30T00:00:00Z",
            "licence": {"name": "ogl", "version": "3.0", "attribution": "Contains public sector information licensed under the Open Government Licence v3.0."},
            "credentialsSecret": "a1-credentials",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Active", "observedGeneration": 1,
                "message": "granted route, on_time_pct until 2027-06-30T00:00:00Z", "lastTransitionTime": "2026-11-26T13:39:23Z"}]
        })
    }

    fn without_noise(mut dsa: DataSharingAgreement) -> DataSharingAgreement {
        crate::controller::strip(&mut dsa);
        dsa
    }

    #[test]
    fn expands_to_the_agreement_it_was_made_from() {
        for dsa in [
            agreement("pending", serde_json::Value::Null),
            agreement("a1", active()),
            agreement("a2", active()),
        ] {
            let cached = CachedAgreement::try_from(dsa.clone()).unwrap_or_else(|e| panic!("{e}"));
            let back = cached.expand().unwrap_or_else(|e| panic!("{e}"));
            let want = without_noise(dsa.clone());
            assert_eq!(back.metadata, want.metadata);
            assert_eq!(back.spec, want.spec);
            assert_eq!(back.status, want.status);
            assert_eq!(
                cached.status().unwrap_or_else(|e| panic!("{e}")),
                dsa.status
            );
        }
    }

    #[test]
    fn keeps_typed_what_the_cache_is_searched_by() {
        let cached =
            CachedAgreement::try_from(agreement("a1", active())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cached.consumer, "planning");
        assert_eq!(cached.product.name, "bus-punctuality");
        assert_eq!(cached.phase, Some(AgreementPhase::Active));
        assert_eq!(
            cached.active_until,
            Some(
                "2027-06-30T00:00:00Z"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            )
        );
        let meta = cached.meta();
        assert!(meta.managed_fields.is_none());
        assert_eq!(
            meta.annotations.as_ref().map(|a| a.len()),
            Some(1),
            "other annotations stay"
        );
    }

    #[test]
    fn packs_an_active_agreement_into_far_less_than_its_json() {
        let first =
            CachedAgreement::try_from(agreement("a1", active())).unwrap_or_else(|e| panic!("{e}"));
        let second =
            CachedAgreement::try_from(agreement("a2", active())).unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_vec(
            &json!({"spec": agreement("a2", active()).spec, "status": active()}),
        )
        .unwrap_or_default()
        .len();
        assert!(
            first.packed_len() < json / 2,
            "{} of {json}",
            first.packed_len()
        );
        assert!(
            second.packed_len() < json / 4,
            "{} of {json}",
            second.packed_len()
        );
    }

    #[test]
    fn a_watch_of_the_cached_type_reads_agreements() {
        let value = serde_json::to_value(agreement("a1", active())).unwrap_or_default();
        let cached: CachedAgreement =
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cached.meta().name.as_deref(), Some("a1"));
        assert_eq!(CachedAgreement::kind(&()), DataSharingAgreement::kind(&()));
        assert_eq!(
            CachedAgreement::url_path(&(), Some("planning")),
            DataSharingAgreement::url_path(&(), Some("planning"))
        );
    }
}
