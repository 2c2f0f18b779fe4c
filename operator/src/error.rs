//! The operator's errors. Each variant's name doubles as the `error` label of
//! the reconcile-error metric, so failures show up by kind in Prometheus.

/// Errors of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be (de)serialised.
    #[error("serialisation: {0}")]
    Serde(#[from] serde_json::Error),
    /// An object lacks a field the API server always sets.
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// Adding or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Other objects still depend on this one; try again shortly.
    #[error("waiting: {0}")]
    Waiting(String),
    /// The audit store could not record the change, so it was not made.
    #[error("audit: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A grant or revocation where the data lives failed.
    #[error("enforcement: {0}")]
    Enforcement(#[from] crate::enforcement::EnforcementError),
    /// A cached object could not be unpacked.
    #[error("cache: {0}")]
    Cache(#[from] crate::packed::PackError),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Serde(_) => "serde",
            Error::MissingField(_) => "missing_field",
            Error::Finalizer(_) => "finalizer",
            Error::Waiting(_) => "waiting",
            Error::Audit(_) => "audit",
            Error::Enforcement(_) => "enforcement",
            Error::Cache(_) => "cache",
        }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
