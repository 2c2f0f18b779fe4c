//! Licence: reusable terms under which data is shared. Open licences (OGL,
//! CC-BY) and restricted ones are the same kind.

use crate::condition::Condition;
use crate::domain::Token;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The terms a consumer accepts when it uses a data product.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datamesh.dev",
    version = "v1alpha1",
    kind = "Licence",
    plural = "licences",
    shortname = "lic",
    category = "datamesh",
    status = "LicenceStatus",
    doc = "Reusable licence terms for sharing data.",
    printcolumn(name = "Title", type_ = "string", json_path = ".spec.title"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Commercial",
        type_ = "boolean",
        json_path = ".spec.commercialUse"
    ),
    printcolumn(
        name = "Max Days",
        type_ = "integer",
        json_path = ".spec.maxDurationDays"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.permittedPurposes.exists(p, p == 'any') || size(self.permittedPurposes) == 1").message("spec.permittedPurposes: 'any' cannot be combined with other purposes"))]
pub struct LicenceSpec {
    /// Title, e.g. "Open Government Licence".
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Version of the terms; a consumer accepts one version, and a change of
    /// version requires consumers to accept again.
    #[schemars(regex(pattern = r"^[0-9A-Za-z][0-9A-Za-z.\-]*$"), length(max = 32))]
    pub version: String,
    /// Where the full text is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Purposes the data may be used for (`any` permits every purpose).
    #[schemars(length(min = 1))]
    pub permitted_purposes: Vec<Token>,
    /// Whether the data may be used commercially.
    #[serde(default)]
    pub commercial_use: bool,
    /// Whether the consumer may pass the data on to third parties.
    #[serde(default)]
    pub redistribution: bool,
    /// Whether derived works may be made and shared.
    #[serde(default = "default_true")]
    pub derivatives: bool,
    /// Attribution statement a consumer must show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    /// Longest grant, in days, one agreement may have under this licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub max_duration_days: Option<u32>,
    /// Days within which the consumer must delete the data after a grant ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3650))]
    pub retention_days: Option<u32>,
    /// Charge for use, if any, e.g. "free" or "cost recovery".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
    /// Jurisdictions (ISO 3166 codes) a consumer may be established in; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jurisdictions: Vec<JurisdictionCode>,
    /// Whether use needs an agreement signed off by the provider (owner approval).
    #[serde(default)]
    pub requires_agreement: bool,
}

fn default_true() -> bool {
    true
}

/// An ISO 3166 code such as `GB` or `GB-SCT`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(transparent)]
pub struct JurisdictionCode(
    #[schemars(regex(pattern = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"))] pub String,
);

/// What the operator observed of a Licence.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenceStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl LicenceSpec {
    /// Whether `purpose` is among the permitted purposes.
    pub fn permits_purpose(&self, purpose: &str) -> bool {
        self.permitted_purposes
            .iter()
            .any(|p| p.as_str() == "any" || p.as_str() == purpose)
    }
}
