//! AgreementApproval: the provider's answer to an agreement that needs
//! approval. It lives in the provider's namespace, so Kubernetes RBAC decides
//! who may create one (the provider team), and an admission policy shipped in
//! the chart requires `spec.approver` to be the authenticated user. A field on
//! the agreement itself could be set by anyone who can edit the agreement —
//! including the consumer — so approval is never a field there.

use crate::common::ObjectRef;
use crate::condition::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A provider's approval or denial of one DataSharingAgreement.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datamesh.dev",
    version = "v1alpha1",
    kind = "AgreementApproval",
    plural = "agreementapprovals",
    shortname = "dsaapproval",
    category = "datamesh",
    namespaced,
    status = "AgreementApprovalStatus",
    doc = "A provider's approval or denial of a DataSharingAgreement.",
    printcolumn(
        name = "Agreement",
        type_ = "string",
        json_path = ".spec.agreement.name"
    ),
    printcolumn(
        name = "Consumer NS",
        type_ = "string",
        json_path = ".spec.agreement.namespace"
    ),
    printcolumn(name = "Decision", type_ = "string", json_path = ".spec.decision"),
    printcolumn(name = "Approver", type_ = "string", json_path = ".spec.approver"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: create a new AgreementApproval instead"))]
#[x_kube(validation = Rule::new("self.decision == 'Approve' || has(self.reason)").message("spec.reason is required when spec.decision is Deny"))]
pub struct AgreementApprovalSpec {
    /// The agreement answered (in the consumer's namespace).
    pub agreement: ObjectRef,
    /// Approve or Deny.
    pub decision: ApprovalDecision,
    /// The approving user; must equal the user who creates this object.
    #[schemars(length(min = 1, max = 253))]
    pub approver: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub reason: Option<String>,
}

/// The provider's answer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ApprovalDecision {
    /// Grant the agreement.
    Approve,
    /// Refuse it.
    Deny,
}

/// What the operator did with an approval.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementApprovalStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Accepted and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
