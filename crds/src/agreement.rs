//! DataSharingAgreement: a consumer's request for one data product, for a
//! stated purpose, and — once decided — the record of what was granted.
//! Lives in the consumer's namespace.

use crate::common::ObjectRef;
use crate::condition::Condition;
use crate::domain::Token;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request to use one data product for a purpose, under a licence version.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datamesh.dev",
    version = "v1alpha1",
    kind = "DataSharingAgreement",
    plural = "datasharingagreements",
    shortname = "dsa",
    category = "datamesh",
    namespaced,
    status = "DataSharingAgreementStatus",
    doc = "A consumer's agreement to use one data product for a stated purpose.",
    printcolumn(name = "Consumer", type_ = "string", json_path = ".spec.consumer"),
    printcolumn(name = "Product", type_ = "string", json_path = ".spec.product.name"),
    printcolumn(name = "Purpose", type_ = "string", json_path = ".spec.purpose"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Until", type_ = "string", json_path = ".status.activeUntil"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.fields.all(f, self.fields.exists_one(g, g == f))").message("spec.fields must not repeat a field"))]
#[x_kube(validation = Rule::new("!has(self.start) || timestamp(self.end) > timestamp(self.start)").message("spec.end must be after spec.start"))]
pub struct DataSharingAgreementSpec {
    /// The consumer Domain; it must own the agreement's namespace.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub consumer: String,
    /// The data product asked for.
    pub product: ObjectRef,
    /// Why the data is needed, e.g. `service-planning`, `research`.
    pub purpose: Token,
    /// The purpose in words, for the provider and the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub justification: Option<String>,
    /// Fields needed (data minimisation); each must be in the product's schema.
    #[schemars(length(min = 1, max = 256))]
    pub fields: Vec<FieldName>,
    /// When access should start (RFC 3339); defaults to when it is granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
    ))]
    pub start: Option<String>,
    /// When access must end (RFC 3339).
    #[schemars(regex(
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
    ))]
    pub end: String,
    /// The licence and its version the consumer accepts.
    pub licence: AcceptedLicence,
    /// Whether the data will be used commercially.
    #[serde(default)]
    pub commercial_use: bool,
    /// Whether the consumer intends to pass the data on.
    #[serde(default)]
    pub redistribution: bool,
    /// Reference of the consumer's DPIA for this use (needed for personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpia_reference: Option<String>,
}

/// A field name (plain SQL identifier).
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(transparent)]
pub struct FieldName(
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]*$"), length(min = 1, max = 63))] pub String,
);

impl FieldName {
    /// The field's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The licence version a consumer accepts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedLicence {
    /// Licence name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Licence version accepted.
    #[schemars(length(min = 1, max = 32))]
    pub version: String,
}

/// Where an agreement is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AgreementPhase {
    /// Not decided yet.
    Pending,
    /// Allowed only with the provider's approval, which has not been given.
    PendingApproval,
    /// Granted and in force.
    Active,
    /// Refused by policy, licence terms or the provider.
    Denied,
    /// Ended at its end date.
    Expired,
    /// Ended early: policy change, licence change, product retired or deleted.
    Revoked,
}

impl AgreementPhase {
    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgreementPhase::Pending => "Pending",
            AgreementPhase::PendingApproval => "PendingApproval",
            AgreementPhase::Active => "Active",
            AgreementPhase::Denied => "Denied",
            AgreementPhase::Expired => "Expired",
            AgreementPhase::Revoked => "Revoked",
        }
    }

    /// Whether no further transition can happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AgreementPhase::Denied | AgreementPhase::Expired | AgreementPhase::Revoked
        )
    }
}

/// The decision and every reason behind it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// Allow, NeedsApproval or Deny.
    pub outcome: String,
    /// Policies and licence terms that decided it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<ReasonRecord>,
    /// Version (hash) of the policy set that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_set_version: Option<String>,
}

/// One reason of a decision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonRecord {
    /// `policy`, `licenceTerm` or `approval`.
    pub kind: String,
    /// Policy id or licence term name.
    pub id: String,
    /// Why, in words.
    pub message: String,
}

/// Who approved or denied, and when.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// `Approved` or `Denied`.
    pub decision: String,
    /// The user who approved (as authenticated by the API server).
    pub by: String,
    /// When.
    pub at: String,
    /// The AgreementApproval object that carried it.
    pub approval: ObjectRef,
    /// The approver's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The licence terms in force for a grant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenceInForce {
    /// Licence name.
    pub name: String,
    /// Licence version.
    pub version: String,
    /// Attribution the consumer must show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    /// Days within which the data must be deleted after the grant ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// What the operator decided and did for an agreement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSharingAgreementStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the agreement is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AgreementPhase>,
    /// The latest decision and its reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord>,
    /// The provider's approval or denial, when one was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
    /// Fields actually granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted_fields: Vec<String>,
    /// When access started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<String>,
    /// When access ends (no later than the licence allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<String>,
    /// When access ended, for Expired and Revoked agreements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The licence terms in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<LicenceInForce>,
    /// Secret in this namespace that holds the credentials, when granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
