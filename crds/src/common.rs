//! Small types shared by several kinds.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A person or team to contact.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Name of the person or team.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Email address.
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), length(max = 254))]
    pub email: String,
}

/// How sensitive a data product is, from least to most.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Classification {
    /// Anyone may see it (open data).
    Open,
    /// For registered parties of the data mesh.
    Internal,
    /// Only with the owner's approval.
    Restricted,
    /// Holds personal data: DPIA, lawful basis and accreditation apply.
    Personal,
}

impl Classification {
    /// The name used in manifests and in Cedar (`open`, `internal`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Open => "open",
            Classification::Internal => "internal",
            Classification::Restricted => "restricted",
            Classification::Personal => "personal",
        }
    }
}

/// A reference to a namespaced object by namespace and name.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, KubeSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Namespace of the object.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub namespace: String,
    /// Name of the object.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
