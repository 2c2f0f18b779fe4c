//! Domain: a team or organisation that owns data (a council department, an
//! agency, a business partner). Cluster-scoped; the register of parties.

use crate::common::Contact;
use crate::condition::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Describes a party of the data mesh: who they are, whom to contact, which
/// namespaces hold their data products, and what they are accredited for.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datamesh.dev",
    version = "v1alpha1",
    kind = "Domain",
    plural = "domains",
    shortname = "dom",
    category = "datamesh",
    status = "DomainStatus",
    doc = "A party of the data mesh that owns data and may consume others' data.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Sector", type_ = "string", json_path = ".spec.sector"),
    printcolumn(
        name = "Jurisdiction",
        type_ = "string",
        json_path = ".spec.jurisdiction"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpec {
    /// Human-readable name, e.g. "Transport for the City".
    #[schemars(length(min = 1, max = 200))]
    pub display_name: String,
    /// What the domain does and which data it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// People accountable for the domain's data products.
    #[schemars(length(min = 1))]
    pub owners: Vec<Contact>,
    /// The data steward: day-to-day contact for data quality and access.
    pub data_steward: Contact,
    /// Namespaces that hold this domain's data products and agreements.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.all(n, self.exists_one(m, m == n))").message("spec.namespaces must not repeat a namespace"))]
    pub namespaces: Vec<NamespaceName>,
    /// Kubernetes group of the domain's team; the operator grants it rights on
    /// the domain's own products only. Defaults to `datamesh:<domain name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_group: Option<String>,
    /// Public, private or third sector.
    pub sector: Sector,
    /// Where the domain is established: an ISO 3166 code such as `GB` or `GB-SCT`.
    #[schemars(regex(pattern = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"))]
    pub jurisdiction: String,
    /// Accreditations held, e.g. `dpia-process`, `iso27001`, `dspt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accreditations: Vec<Token>,
}

/// A namespace name (DNS label).
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(transparent)]
pub struct NamespaceName(
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub String,
);

/// A short lower-case token (purposes, accreditations, themes).
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(transparent)]
pub struct Token(
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub String,
);

impl Token {
    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Token {
    fn from(s: &str) -> Self {
        Token(s.to_string())
    }
}

/// Which sector a domain belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Sector {
    /// Central or local government and other public bodies.
    Public,
    /// Businesses.
    Private,
    /// Charities, voluntary and community organisations.
    Third,
}

impl Sector {
    /// The name used in manifests and in Cedar.
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Public => "public",
            Sector::Private => "private",
            Sector::Third => "third",
        }
    }
}

/// What the operator observed of a Domain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Namespaces that exist and carry this domain's label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

impl DomainSpec {
    /// The Kubernetes group of the domain's team.
    pub fn team_group_or_default(&self, domain_name: &str) -> String {
        self.team_group
            .clone()
            .unwrap_or_else(|| format!("datamesh:{domain_name}"))
    }
}
