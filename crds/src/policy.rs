//! GovernancePolicy: a named set of Cedar policies written by the governance
//! board (central) or by a domain for its own products (scoped).

use crate::condition::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Cedar policies that take part in every decision (or, when `domain` is set,
/// in decisions on that domain's products only).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datamesh.dev",
    version = "v1alpha1",
    kind = "GovernancePolicy",
    plural = "governancepolicies",
    shortname = "gp",
    category = "datamesh",
    status = "GovernancePolicyStatus",
    doc = "A named set of Cedar policies from the governance board or a domain.",
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.domain"),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    ),
    printcolumn(
        name = "Policies",
        type_ = "integer",
        json_path = ".status.policyCount"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GovernancePolicySpec {
    /// What these policies are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When set, the policies apply only to that domain's products, and may
    /// only permit (a domain cannot forbid for others, nor override a central forbid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub domain: Option<String>,
    /// Cedar policy text; every policy needs an `@id("...")` and a `@reason("...")`.
    #[schemars(length(min = 1, max = 262144))]
    pub policies: String,
}

/// One error found when validating a policy set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyError {
    /// The policy's @id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// Line (1-based) in `spec.policies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Column (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// What the operator found when validating the policies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GovernancePolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Valid and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of policies in the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_count: Option<u32>,
    /// Ids of the policies in force from this object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_ids: Vec<String>,
    /// Errors, when the set is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PolicyError>,
    /// The text of this object's policies that is in force: the spec when it
    /// is valid, otherwise the last valid spec. Kept here so that an operator
    /// restart keeps enforcing it instead of forgetting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_force: Option<String>,
}
