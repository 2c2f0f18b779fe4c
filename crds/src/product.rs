//! DataProduct: the catalogue entry and the contract for one data set that a
//! domain publishes from its own namespace. The data itself stays in the
//! domain's store; output ports say where.

use crate::common::{Classification, Contact, ObjectRef};
use crate::condition::Condition;
use crate::domain::Token;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A data product: its metadata, quality, provenance, licence and where it lives.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datamesh.dev",
    version = "v1alpha1",
    kind = "DataProduct",
    plural = "dataproducts",
    shortname = "dp",
    category = "datamesh",
    namespaced,
    status = "DataProductStatus",
    doc = "A data product published by a domain: catalogue entry and contract.",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(
        name = "Classification",
        type_ = "string",
        json_path = ".spec.classification"
    ),
    printcolumn(
        name = "Lifecycle",
        type_ = "string",
        json_path = ".spec.lifecycle.stage"
    ),
    printcolumn(
        name = "Licence",
        type_ = "string",
        json_path = ".spec.licence",
        priority = 1
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
#[x_kube(validation = Rule::new("!self.personalData || has(self.lawfulBasis)").message("spec.lawfulBasis is required when spec.personalData is true"))]
#[x_kube(validation = Rule::new("self.classification != 'personal' || self.personalData").message("spec.personalData must be true when spec.classification is personal"))]
#[x_kube(validation = Rule::new("!self.personalData || self.classification in ['restricted', 'personal']").message("spec.classification must be restricted or personal when spec.personalData is true"))]
#[x_kube(validation = Rule::new("!self.personalData || has(self.dpiaReference)").message("spec.dpiaReference is required when spec.personalData is true"))]
#[x_kube(validation = Rule::new("!has(self.schema) || self.schema.all(f, self.schema.exists_one(g, g.name == f.name))").message("spec.schema must not repeat a field name"))]
pub struct DataProductSpec {
    /// The Domain that owns this product; it must own the product's namespace.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub domain: String,
    /// Short title, e.g. "Bus punctuality by route".
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// What the data is, how it was collected and what it is good for.
    #[schemars(length(min = 1))]
    pub description: String,
    /// Who is accountable for the product.
    pub owner: Contact,
    /// How sensitive the product is.
    pub classification: Classification,
    /// Whether the product holds personal data.
    #[serde(default)]
    pub personal_data: bool,
    /// Lawful basis for processing personal data (UK GDPR Article 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lawful_basis: Option<LawfulBasis>,
    /// Reference of the Data Protection Impact Assessment covering this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpia_reference: Option<String>,
    /// Distribution format, e.g. `table`, `csv`, `parquet`, `json`.
    #[schemars(length(min = 1, max = 64))]
    pub format: String,
    /// Period the data covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_coverage: Option<TemporalCoverage>,
    /// How often the data is updated.
    pub update_frequency: UpdateFrequency,
    /// Where the product is in its life.
    pub lifecycle: Lifecycle,
    /// Where the data can be read; the data never moves into the control plane.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(q, q.name == p.name))").message("spec.outputPorts must not repeat a port name"))]
    pub output_ports: Vec<OutputPort>,
    /// Fields of the data, each with its classification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub schema: Vec<SchemaField>,
    /// Statement of data quality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Where the data comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// Standards the data follows, e.g. "GTFS", "INSPIRE".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standards: Vec<String>,
    /// Name of the Licence the product is shared under.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub licence: String,
    /// Service levels the owner commits to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    /// Region where the data resides (residency), e.g. `GB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"))]
    pub region: Option<String>,
    /// Free keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Token>,
    /// Themes, e.g. `transport`, `environment` (DCAT themes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub themes: Vec<Token>,
}

/// Lawful bases for processing personal data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LawfulBasis {
    /// The person has given consent.
    Consent,
    /// Needed for a contract with the person.
    Contract,
    /// Needed to comply with the law.
    LegalObligation,
    /// Needed to protect someone's life.
    VitalInterests,
    /// Needed for a task in the public interest or official authority.
    PublicTask,
    /// Legitimate interests, balanced against the person's.
    LegitimateInterests,
}

/// Period the data covers (RFC 3339 dates).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalCoverage {
    /// First date covered, e.g. `2019-01-01`.
    #[schemars(extend("format" = "date"))]
    pub from: String,
    /// Last date covered; absent while the data is still being collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub to: Option<String>,
}

/// How often a product is updated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UpdateFrequency {
    /// Updated as events happen.
    Continuous,
    /// Every hour.
    Hourly,
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every quarter.
    Quarterly,
    /// Every year.
    Annual,
    /// Not on a schedule.
    Irregular,
    /// Never updated.
    Never,
}

impl UpdateFrequency {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateFrequency::Continuous => "continuous",
            UpdateFrequency::Hourly => "hourly",
            UpdateFrequency::Daily => "daily",
            UpdateFrequency::Weekly => "weekly",
            UpdateFrequency::Monthly => "monthly",
            UpdateFrequency::Quarterly => "quarterly",
            UpdateFrequency::Annual => "annual",
            UpdateFrequency::Irregular => "irregular",
            UpdateFrequency::Never => "never",
        }
    }
}

/// Lifecycle stage and sunset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.stage != 'deprecated' || has(self.sunsetDate)").message("spec.lifecycle.sunsetDate is required when spec.lifecycle.stage is deprecated"))]
pub struct Lifecycle {
    /// draft → published → deprecated → retired.
    pub stage: LifecycleStage,
    /// When the product will be (or was) retired, RFC 3339 date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub sunset_date: Option<String>,
}

/// Stages of a product's life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleStage {
    /// Being prepared; not in the catalogue, no new agreements.
    Draft,
    /// In the catalogue and open to requests.
    Published,
    /// Still served, but going away at the sunset date; no new agreements.
    Deprecated,
    /// Gone: every agreement on it ends.
    Retired,
}

impl LifecycleStage {
    /// The name used in manifests and in Cedar.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Draft => "draft",
            LifecycleStage::Published => "published",
            LifecycleStage::Deprecated => "deprecated",
            LifecycleStage::Retired => "retired",
        }
    }
}

/// Where and how the data can be read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'postgres' || has(self.postgres)").message("spec.outputPorts[].postgres is required when type is postgres"))]
#[x_kube(validation = Rule::new("self.type != 'objectStore' || has(self.objectStore)").message("spec.outputPorts[].objectStore is required when type is objectStore"))]
#[x_kube(validation = Rule::new("self.type != 'api' || has(self.api)").message("spec.outputPorts[].api is required when type is api"))]
#[x_kube(validation = Rule::new("self.type != 'stream' || has(self.stream)").message("spec.outputPorts[].stream is required when type is stream"))]
pub struct OutputPort {
    /// Name of the port within the product.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    /// Kind of store.
    #[serde(rename = "type")]
    pub type_: PortType,
    /// A PostgreSQL table or view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresPort>,
    /// An object-store bucket and prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectStorePort>,
    /// An HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiPort>,
    /// A stream topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamPort>,
}

/// Kinds of output port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PortType {
    /// PostgreSQL table or view.
    Postgres,
    /// Object store (S3-compatible).
    ObjectStore,
    /// HTTP API.
    Api,
    /// Event stream.
    Stream,
}

/// A PostgreSQL table or view, and the admin connection used to grant on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresPort {
    /// Schema of the table or view.
    #[serde(default = "default_pg_schema")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]*$"), length(max = 63))]
    pub schema: String,
    /// Table or view name.
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]*$"), length(max = 63))]
    pub table: String,
    /// Secret in the product's namespace holding `url`: an administrative
    /// connection URL. It never leaves the provider's namespace.
    pub admin_secret_ref: SecretKeyRef,
    /// How consumers sign in to this database: `password` (the default) or
    /// `certificate`. A change applies to grants made after it.
    #[serde(default)]
    pub consumer_auth: ConsumerAuth,
}

/// How a granted consumer signs in to a PostgreSQL port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConsumerAuth {
    /// A random password per agreement, stored as a SCRAM-SHA-256 verifier;
    /// works with any `scram-sha-256` line in `pg_hba.conf`.
    #[default]
    Password,
    /// A client certificate per agreement (CN = the role), issued by the
    /// operator's client CA and valid until the agreement ends; no password
    /// exists. The server must trust that CA (`ssl_ca_file`) and say `cert`
    /// for members of `datamesh_certificate`, which the operator creates:
    /// `hostssl all +datamesh_certificate 0.0.0.0/0 cert`. Much cheaper to
    /// grant: no key derivation on either side.
    Certificate,
}

fn default_pg_schema() -> String {
    "public".to_string()
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key in the Secret.
    #[serde(default = "default_url_key")]
    pub key: String,
}

fn default_url_key() -> String {
    "url".to_string()
}

/// An object-store location.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorePort {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// An HTTP API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiPort {
    /// Base URL.
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
}

/// A stream topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamPort {
    /// Topic name.
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
}

/// One field (column) of the product, with its classification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaField {
    /// Column name; a plain SQL identifier.
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]*$"), length(min = 1, max = 63))]
    pub name: String,
    /// Data type, e.g. `text`, `integer`, `timestamp`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 64))]
    pub type_: String,
    /// What the field means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How sensitive the field is.
    #[serde(default)]
    pub classification: FieldClassification,
}

/// Classification of one field.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FieldClassification {
    /// Not sensitive.
    #[default]
    Public,
    /// Personal data (about an identifiable person).
    Personal,
    /// Special-category or otherwise sensitive data.
    Sensitive,
    /// Directly identifies a person (name, NHS number, address).
    Identifier,
}

impl FieldClassification {
    /// The name used in manifests and in Cedar.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldClassification::Public => "public",
            FieldClassification::Personal => "personal",
            FieldClassification::Sensitive => "sensitive",
            FieldClassification::Identifier => "identifier",
        }
    }
}

/// A statement of data quality.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quality {
    /// Share of expected records present, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub completeness: Option<f64>,
    /// How accurate the data is, and how that was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<String>,
    /// How current the data is, e.g. "within 24 hours".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Known problems a consumer should be aware of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_issues: Vec<String>,
    /// When quality was last assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub last_assessed: Option<String>,
}

/// Where the data comes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// External sources, described in words or by URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Data products this one is derived from (lineage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ObjectRef>,
}

/// Service levels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sla {
    /// Maximum age of the data, e.g. "1h", "24h".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(m|h|d)$"))]
    pub freshness: Option<String>,
    /// Availability target in percent, e.g. 99.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub availability: Option<f64>,
}

/// What the operator observed of a DataProduct.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProductStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of Active agreements on this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_agreements: Option<u32>,
}

impl DataProductSpec {
    /// The classification of a named field, if the schema lists it.
    pub fn field(&self, name: &str) -> Option<&SchemaField> {
        self.schema.iter().find(|f| f.name == name)
    }
}
