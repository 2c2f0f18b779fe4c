//! Enforcement where the data lives: an Active agreement becomes a grant in
//! the product's store, and an ended one loses it.
//!
//! ```text
//!  DataSharingAgreement (consumer ns) ──product──▶ DataProduct (provider ns)
//!        │ owns                                        │ outputPorts[].postgres
//!        ▼                                             ▼
//!  Secret <name>-credentials   ◀── grant ──   admin Secret (never leaves the provider ns)
//!  (role, password, url, ...)                    │
//!                                                 ▼
//!                 PostgreSQL: login role dm_<uid> ∈ group dm_g_<hash> = SELECT (granted columns)
//! ```
//! One [`Grantor`] per output-port type; PostgreSQL is the only one so far,
//! the others fail closed with [`EnforcementError::NotSupported`]. Grants
//! and revocations are idempotent, so the reconciler simply retries them
//! after a crash; [`convergence`] removes what no agreement backs.
//!
//! Grants and revocations of different agreements run concurrently, each
//! under a shared [`Enforcement::lock`]; a convergence correction takes it
//! exclusively ([`Enforcement::exclusive`]), so it never sees a role whose
//! agreement status is still being written.

pub mod certificate;
pub mod convergence;
pub mod postgres;

use crate::metrics::Metrics;
use datamesh_crds::product::{ConsumerAuth, PortType, PostgresPort};
use datamesh_crds::{DataProduct, DataSharingAgreement};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Label on every credentials Secret, naming its agreement.
pub const AGREEMENT_LABEL: &str = "datamesh.dev/agreement";

/// Condition type on an agreement saying whether its grant is in place.
pub const GRANTED: &str = "Granted";

/// Why a grant or revocation did not happen. Messages name objects and
/// database hosts, never a password or a connection URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnforcementError {
    /// The product has no output port this operator can grant on yet.
    #[error("output port type(s) {0} not supported yet: only postgres ports are enforced")]
    NotSupported(String),
    /// The admin Secret or its key is missing or unusable.
    #[error("admin Secret {namespace}/{name}: {what}")]
    AdminSecret {
        /// Provider namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// What is wrong with it.
        what: String,
    },
    /// The database refused or could not be reached.
    #[error("database {0}")]
    Database(#[from] postgres::DbError),
    /// A Secret of the credentials' name exists and is not this agreement's.
    #[error("Secret {0} exists and is not owned by this agreement; not overwriting it")]
    SecretConflict(String),
    /// The API server failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The agreement lacks a field the API server always sets.
    #[error("agreement is missing {0}")]
    MissingField(&'static str),
    /// The port asks for client certificates and the operator has no CA.
    #[error(
        "the port's consumerAuth is certificate and the operator has no client CA (--client-ca-cert and --client-ca-key, the chart's enforcement.clientCASecret)"
    )]
    NoClientCa,
    /// The client certificate could not be made.
    #[error("issuing the client certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The end of access is not an RFC 3339 timestamp, so no certificate
    /// can end with it.
    #[error("end of access {0:?} is not an RFC 3339 timestamp")]
    BadEndTime(String),
}

impl EnforcementError {
    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            EnforcementError::NotSupported(_) => "PortTypeNotSupported",
            EnforcementError::AdminSecret { .. } => "AdminSecretUnusable",
            EnforcementError::Database(_) => "DatabaseError",
            EnforcementError::SecretConflict(_) => "SecretConflict",
            EnforcementError::NoClientCa => "ClientCaMissing",
            EnforcementError::Certificate(_) | EnforcementError::BadEndTime(_) => {
                "CertificateError"
            }
            EnforcementError::Kube(_) | EnforcementError::MissingField(_) => "GrantFailed",
        }
    }

    /// Whether the store cannot be reached at all (no product, no admin
    /// Secret), as opposed to a failure worth retrying.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            EnforcementError::AdminSecret { .. }
                | EnforcementError::NotSupported(_)
                | EnforcementError::NoClientCa
        )
    }
}

/// What was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The credentials Secret in the consumer's namespace.
    pub secret: String,
    /// A one-line account for status and Events (no credentials).
    pub summary: String,
}

/// How the credentials Secret's name was claimed for a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Created now, already holding the new credentials.
    Created,
    /// It was already this agreement's: rewritten once the role holds.
    Ours,
}

/// Labels of the enforcement counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// Port type, e.g. `postgres`.
    pub port_type: &'static str,
    /// `grant` or `revoke`.
    pub operation: &'static str,
    /// `ok` or the error's reason.
    pub outcome: &'static str,
}

/// Grants on one kind of output port.
#[derive(Debug, Clone)]
pub enum Grantor {
    /// A PostgreSQL table or view.
    Postgres {
        /// The provider's namespace (where the admin Secret is).
        namespace: String,
        /// The port.
        port: PostgresPort,
    },
}

impl Grantor {
    /// The grantor of a product's first enforceable port.
    pub fn for_product(product: &DataProduct) -> Result<Self, EnforcementError> {
        let namespace = product.namespace().unwrap_or_default();
        if let Some(port) = product
            .spec
            .output_ports
            .iter()
            .find_map(|p| p.postgres.clone().filter(|_| p.type_ == PortType::Postgres))
        {
            return Ok(Grantor::Postgres { namespace, port });
        }
        let types = product
            .spec
            .output_ports
            .iter()
            .map(|p| {
                serde_json::to_value(p.type_)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(EnforcementError::NotSupported(types))
    }

    /// The port type, for metrics.
    pub fn port_type(&self) -> &'static str {
        match self {
            Grantor::Postgres { .. } => "postgres",
        }
    }
}

/// The grant machinery shared by the reconciler and the convergence pass.
pub struct Enforcement {
    client: Client,
    metrics: Arc<Metrics>,
    lock: tokio::sync::RwLock<()>,
    /// One pooled admin per admin URL (the key holds a password: memory only).
    admins: std::sync::Mutex<std::collections::HashMap<String, postgres::Admin>>,
    /// Where the next convergence pass starts checking credentials Secrets.
    secret_cursor: std::sync::atomic::AtomicUsize,
    /// Admin Secrets read lately, by (namespace, name, key).
    recent_admins: std::sync::Mutex<RecentAdmins>,
    /// Signs the client certificates of `consumerAuth: certificate` ports.
    client_ca: Option<Arc<certificate::ClientCa>>,
}

/// Admin connections read lately: (namespace, Secret, key) → (when, admin).
type RecentAdmins =
    std::collections::HashMap<(String, String, String), (std::time::Instant, postgres::Admin)>;

/// How long an admin Secret read is reused.
pub const ADMIN_SECRET_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Admin pools kept at most; beyond, the map starts again (a pool closes when
/// its last grant finishes).
const MAX_ADMINS: usize = 256;

/// The credentials Secret's name for an agreement.
pub fn secret_name(agreement: &str) -> String {
    format!("{agreement}-credentials")
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// `namespace/name uid`, the label in a role's COMMENT.
pub fn role_label(dsa: &impl kube::Resource) -> String {
    format!(
        "{}/{} {}",
        dsa.namespace().unwrap_or_default(),
        dsa.name_any(),
        dsa.uid().unwrap_or_default()
    )
}

impl Enforcement {
    /// Grant machinery using `client` for Secrets, and `client_ca` (if any)
    /// for client certificates.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        client_ca: Option<Arc<certificate::ClientCa>>,
    ) -> Self {
        Self {
            client_ca,
            client,
            metrics,
            lock: tokio::sync::RwLock::new(()),
            admins: Default::default(),
            secret_cursor: Default::default(),
            recent_admins: Default::default(),
        }
    }

    /// The start of this convergence pass's window of Secret checks and its
    /// length; the next pass continues after it.
    pub fn next_secret_window(&self, per_pass: usize) -> (usize, usize) {
        let start = self
            .secret_cursor
            .fetch_add(per_pass, std::sync::atomic::Ordering::Relaxed);
        (start, per_pass)
    }

    /// Held (shared) from before a grant or revocation until the agreement's
    /// status says so; grants of different agreements do not wait for each
    /// other.
    pub async fn lock(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.lock.read().await
    }

    /// Held by a convergence correction: no grant or revocation is between
    /// its database change and its status write meanwhile.
    pub async fn exclusive(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.lock.write().await
    }

    fn count(&self, port_type: &'static str, operation: &'static str, outcome: &'static str) {
        self.metrics
            .enforcement
            .get_or_create(&OperationLabels {
                port_type,
                operation,
                outcome,
            })
            .inc();
    }

    /// Reads a Postgres port's admin connection from the provider's Secret,
    /// at most once per [`ADMIN_SECRET_TTL`] per Secret (a burst of grants on
    /// one database reads it once; a rotated password is picked up within
    /// the TTL, and a failed grant retries after it).
    pub async fn admin(
        &self,
        namespace: &str,
        port: &PostgresPort,
    ) -> Result<postgres::Admin, EnforcementError> {
        let key = (
            namespace.to_string(),
            port.admin_secret_ref.name.clone(),
            port.admin_secret_ref.key.clone(),
        );
        if let Some((at, admin)) = self
            .recent_admins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < ADMIN_SECRET_TTL
        {
            return Ok(admin.clone());
        }
        let admin = self.read_admin(namespace, port).await?;
        let mut recent = self
            .recent_admins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() >= MAX_ADMINS {
            recent.clear();
        }
        recent.insert(key, (std::time::Instant::now(), admin.clone()));
        Ok(admin)
    }

    async fn read_admin(
        &self,
        namespace: &str,
        port: &PostgresPort,
    ) -> Result<postgres::Admin, EnforcementError> {
        let r = &port.admin_secret_ref;
        let bad = |what: String| EnforcementError::AdminSecret {
            namespace: namespace.to_string(),
            name: r.name.clone(),
            what,
        };
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(&r.name)
            .await?
            .ok_or_else(|| bad("not found".into()))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| bad(format!("has no key {}", r.key)))?;
        let url =
            String::from_utf8(bytes).map_err(|_| bad(format!("key {} is not UTF-8", r.key)))?;
        let url = url.trim();
        let mut admins = self
            .admins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(admin) = admins.get(url) {
            return Ok(admin.clone());
        }
        let admin = postgres::Admin::parse(url)
            .map_err(|e| bad(format!("key {}: {e}", r.key)))?
            .pooled();
        if admins.len() >= MAX_ADMINS {
            admins.clear();
        }
        admins.insert(url.to_string(), admin.clone());
        Ok(admin)
    }

    /// Grants `fields` of `product` to the agreement until `until`, and writes
    /// the consumer's credentials Secret. Safe to repeat: each call sets a
    /// fresh password and rewrites the Secret to match.
    pub async fn grant(
        &self,
        dsa: &DataSharingAgreement,
        product: &DataProduct,
        fields: &[String],
        until: Option<&str>,
    ) -> Result<Granted, EnforcementError> {
        let grantor = Grantor::for_product(product);
        let port_type = grantor.as_ref().map(Grantor::port_type).unwrap_or("none");
        let result = match grantor {
            Ok(g) => self.grant_with(&g, dsa, fields, until).await,
            Err(e) => Err(e),
        };
        self.count(
            port_type,
            "grant",
            result
                .as_ref()
                .err()
                .map(EnforcementError::reason)
                .unwrap_or("ok"),
        );
        result
    }

    async fn grant_with(
        &self,
        grantor: &Grantor,
        dsa: &DataSharingAgreement,
        fields: &[String],
        until: Option<&str>,
    ) -> Result<Granted, EnforcementError> {
        let uid = dsa
            .uid()
            .ok_or(EnforcementError::MissingField("metadata.uid"))?;
        let secret = secret_name(&dsa.name_any());
        match grantor {
            Grantor::Postgres { namespace, port } => {
                let admin = self.admin(namespace, port).await?;
                let role = postgres::role_name(&uid);
                let table = format!("{}.{}", port.schema, port.table);
                let mut data = vec![
                    ("host", admin.host.clone()),
                    ("port", admin.port.to_string()),
                    ("database", admin.database.clone()),
                    ("user", role.clone()),
                    ("table", table.clone()),
                    ("fields", fields.join(",")),
                ];
                let password = match port.consumer_auth {
                    ConsumerAuth::Password => {
                        let password = random_password();
                        data.push(("url", postgres::consumer_url(&admin, &role, &password)));
                        data.push(("password", password.clone()));
                        Some(password)
                    }
                    ConsumerAuth::Certificate => {
                        let ca = self
                            .client_ca
                            .as_ref()
                            .ok_or(EnforcementError::NoClientCa)?;
                        let end = until
                            .map(|t| t.parse::<jiff::Timestamp>().map(|t| t.as_second()))
                            .transpose()
                            .map_err(|_| {
                                EnforcementError::BadEndTime(until.unwrap_or_default().to_string())
                            })?;
                        let issued = ca.issue(&role, end)?;
                        data.push(("url", postgres::consumer_cert_url(&admin, &role)));
                        data.push(("tls.crt", issued.cert_pem));
                        data.push(("tls.key", issued.key_pem));
                        None
                    }
                };
                let login = match &password {
                    Some(p) => postgres::Login::Password(p),
                    None => postgres::Login::Certificate,
                };
                // The Secret's name is claimed before the role is touched: a
                // name taken by someone else fails the grant without ever
                // creating a role whose password nobody holds.
                let (api, credentials) = self.credentials(dsa, &secret, &data)?;
                let claim = self.claim_secret(&api, &credentials, &uid).await?;
                let granted = postgres::grant(
                    &admin,
                    &postgres::RoleGrant {
                        role: &role,
                        label: &role_label(dsa),
                        login,
                        valid_until: until,
                        schema: &port.schema,
                        table: &port.table,
                        columns: fields,
                    },
                )
                .await;
                match (granted, claim) {
                    (Ok(()), Claim::Created) => {}
                    (Ok(()), Claim::Ours) => self.replace_secret(&api, &credentials).await?,
                    (Err(e), Claim::Created) => {
                        // no credentials are left for a grant that did not
                        // happen; the Secret was created just now, so it is ours
                        match api.delete(&secret, &DeleteParams::default()).await {
                            Ok(_) => self.metrics.wrote("Secret", "delete"),
                            Err(kube::Error::Api(e)) if e.code == 404 => {}
                            Err(d) => {
                                tracing::warn!(error = %d, "cannot remove the credentials of a failed grant; the next attempt rewrites them")
                            }
                        }
                        return Err(e.into());
                    }
                    (Err(e), Claim::Ours) => return Err(e.into()),
                }
                Ok(Granted {
                    summary: format!(
                        "role {role} may SELECT ({}) on {table} at {}; credentials in Secret {secret}",
                        fields.join(", "),
                        admin.target()
                    ),
                    secret,
                })
            }
        }
    }

    /// Creates the credentials Secret, or finds it already this agreement's
    /// (an earlier attempt's). The common case, a first grant, is one
    /// request: create. A Secret of that name that is not the agreement's
    /// is [`EnforcementError::SecretConflict`] and stays as it is.
    async fn claim_secret(
        &self,
        api: &Api<Secret>,
        secret: &Secret,
        uid: &str,
    ) -> Result<Claim, EnforcementError> {
        let create = PostParams {
            field_manager: Some(crate::MANAGER.into()),
            ..Default::default()
        };
        match api.create(&create, secret).await {
            Ok(_) => {
                self.metrics.wrote("Secret", "credentials");
                return Ok(Claim::Created);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        match api.get_opt(name).await? {
            Some(existing) if !owned_by(&existing, uid) => {
                Err(EnforcementError::SecretConflict(name.to_string()))
            }
            // gone again since the create: the replace below recreates it
            _ => Ok(Claim::Ours),
        }
    }

    /// Rewrites this agreement's credentials Secret (server-side apply).
    async fn replace_secret(
        &self,
        api: &Api<Secret>,
        secret: &Secret,
    ) -> Result<(), EnforcementError> {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        let mut value = serde_json::to_value(secret).map_err(|_| {
            EnforcementError::MissingField("a serialisable Secret") // unreachable in practice
        })?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        api.patch(
            name,
            &PatchParams::apply(crate::MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
        self.metrics.wrote("Secret", "credentials");
        Ok(())
    }

    /// The credentials Secret of `dsa`, owned by it, and the API of its namespace.
    fn credentials(
        &self,
        dsa: &DataSharingAgreement,
        name: &str,
        data: &[(&str, String)],
    ) -> Result<(Api<Secret>, Secret), EnforcementError> {
        let ns = dsa
            .namespace()
            .ok_or(EnforcementError::MissingField("metadata.namespace"))?;
        let owner = dsa
            .controller_owner_ref(&())
            .ok_or(EnforcementError::MissingField("metadata.uid"))?;
        let mut secret = Secret {
            type_: Some("Opaque".into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        secret.metadata.name = Some(name.to_string());
        secret.metadata.namespace = Some(ns.clone());
        secret.metadata.owner_references = Some(vec![owner]);
        secret.metadata.labels = Some(BTreeMap::from([(
            AGREEMENT_LABEL.to_string(),
            dsa.name_any(),
        )]));
        Ok((Api::namespaced(self.client.clone(), &ns), secret))
    }

    /// Ends the agreement's grant and deletes its credentials Secret. Safe to
    /// repeat. `product` is None when the product is gone: then only the
    /// Secret can be removed, and convergence drops the role once any product
    /// reaches that database again.
    pub async fn revoke(
        &self,
        dsa: &DataSharingAgreement,
        product: Option<&DataProduct>,
    ) -> Result<(), EnforcementError> {
        let grantor = product.map(Grantor::for_product);
        let port_type = match &grantor {
            Some(Ok(g)) => g.port_type(),
            _ => "none",
        };
        let result = async {
            if let Some(Ok(g)) = &grantor {
                self.revoke_with(g, dsa).await?;
            }
            self.delete_secret(dsa).await
        }
        .await;
        self.count(
            port_type,
            "revoke",
            result
                .as_ref()
                .err()
                .map(EnforcementError::reason)
                .unwrap_or("ok"),
        );
        result
    }

    async fn revoke_with(
        &self,
        grantor: &Grantor,
        dsa: &DataSharingAgreement,
    ) -> Result<(), EnforcementError> {
        let uid = dsa
            .uid()
            .ok_or(EnforcementError::MissingField("metadata.uid"))?;
        match grantor {
            Grantor::Postgres { namespace, port } => {
                let admin = self.admin(namespace, port).await?;
                postgres::revoke(&admin, &postgres::role_name(&uid)).await?;
                Ok(())
            }
        }
    }

    async fn delete_secret(&self, dsa: &DataSharingAgreement) -> Result<(), EnforcementError> {
        let (Some(ns), Some(uid)) = (dsa.namespace(), dsa.uid()) else {
            return Ok(());
        };
        let name = secret_name(&dsa.name_any());
        let api = Api::<Secret>::namespaced(self.client.clone(), &ns);
        match api.get_opt(&name).await? {
            Some(s) if owned_by(&s, &uid) => {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => self.metrics.wrote("Secret", "delete"),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn owned_by(secret: &Secret, uid: &str) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid)
}

/// The status of an agreement whose grant failed: the phase it had, with a
/// `Granted` condition saying why (pure; the message carries no credentials).
pub fn grant_failed(
    current: Option<&datamesh_crds::agreement::DataSharingAgreementStatus>,
    generation: Option<i64>,
    error: &EnforcementError,
    now: jiff::Timestamp,
) -> datamesh_crds::agreement::DataSharingAgreementStatus {
    let mut s = current.cloned().unwrap_or_default();
    if s.phase.is_none() {
        s.phase = Some(datamesh_crds::AgreementPhase::Pending);
    }
    datamesh_crds::condition::set(
        &mut s.conditions,
        datamesh_crds::condition::new(
            GRANTED,
            false,
            error.reason(),
            format!("not granted, will retry: {error}"),
            generation,
            now,
        ),
    );
    s
}

/// Sets the `Granted` condition of a status.
pub fn set_granted(
    s: &mut datamesh_crds::agreement::DataSharingAgreementStatus,
    granted: bool,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) {
    let generation = s.observed_generation;
    datamesh_crds::condition::set(
        &mut s.conditions,
        datamesh_crds::condition::new(GRANTED, granted, reason, message, generation, now),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use datamesh_crds::AgreementPhase;
    use datamesh_crds::agreement::DataSharingAgreementStatus;

    #[test]
    fn a_failed_grant_keeps_the_phase_and_says_why() {
        let current = DataSharingAgreementStatus {
            phase: Some(AgreementPhase::PendingApproval),
            ..Default::default()
        };
        let e = EnforcementError::NotSupported("api".into());
        let s = grant_failed(Some(&current), Some(2), &e, jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(s.phase, Some(AgreementPhase::PendingApproval));
        assert!(s.credentials_secret.is_none());
        let c = datamesh_crds::condition::get(&s.conditions, GRANTED);
        assert_eq!(c.map(|c| c.reason.as_str()), Some("PortTypeNotSupported"));
        assert_eq!(c.map(|c| c.status.as_str()), Some("False"));
        assert!(c.is_some_and(|c| c.message.contains("not supported yet")));
    }

    #[test]
    fn passwords_are_long_random_and_url_safe() {
        let (a, b) = (random_password(), random_password());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
