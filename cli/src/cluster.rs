//! Connecting to the cluster the way kubectl does (`--kubeconfig`,
//! `--context`, `-n`, `-A`), and turning API failures into errors that say
//! what to do next. Every command that talks to the cluster goes through here.

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;

/// Where to connect; the same flags and defaults as kubectl.
#[derive(Debug, Clone, Args, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

/// A connection to the cluster and what it was made from.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given explicitly.
    pub namespace_given: bool,
    /// `-A`.
    pub all_namespaces: bool,
    /// The API server URL, for error messages.
    pub server: String,
    /// Which kubeconfig was used, for error messages.
    pub kubeconfig: String,
}

/// What went wrong talking to the cluster, each with the next step to take.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The kubeconfig could not be read or has no usable context.
    #[error(
        "cannot use kubeconfig {path}: {message}\n  pass --kubeconfig FILE or set KUBECONFIG (locally: eval \"$(bash scripts/cluster.sh env)\")"
    )]
    Kubeconfig {
        /// The file (or `$KUBECONFIG`).
        path: String,
        /// Why.
        message: String,
    },
    /// The API server did not answer.
    #[error(
        "cannot reach the API server {server} (kubeconfig {kubeconfig}): {message}\n  is the cluster running? check --kubeconfig/--context (locally: bash scripts/cluster.sh up)"
    )]
    Unreachable {
        /// The server URL.
        server: String,
        /// The kubeconfig used.
        kubeconfig: String,
        /// Why.
        message: String,
    },
    /// A datamesh CRD is missing.
    #[error(
        "datamesh is not installed in this cluster (the API server does not know {resource}): helm install datamesh charts/datamesh (or bash scripts/demo.sh locally)"
    )]
    NotInstalled {
        /// The resource asked for.
        resource: String,
    },
    /// RBAC refused the request.
    #[error(
        "forbidden: you may not {verb} {resource}{scope}: {message}\n  ask the owners of the domain (or your cluster administrator) to grant you `{verb}` on `{resource}`"
    )]
    Forbidden {
        /// The verb, e.g. `create`.
        verb: String,
        /// The resource, e.g. `agreementapprovals`.
        resource: String,
        /// ` in namespace X`, or empty.
        scope: String,
        /// The API server's message.
        message: String,
    },
    /// The named object does not exist.
    #[error("{kind} {name} not found{scope}\n  {hint}")]
    NotFound {
        /// Kind, e.g. `DataProduct`.
        kind: String,
        /// Name (`ns/name` or `name`).
        name: String,
        /// ` in namespace X`, or empty.
        scope: String,
        /// What to try.
        hint: String,
    },
    /// The API server refused the request for another reason (validation, conflict).
    #[error("the API server refused to {verb} {resource}: {message}")]
    Refused {
        /// The verb.
        verb: String,
        /// The resource.
        resource: String,
        /// The API server's message (names the field for validation errors).
        message: String,
    },
    /// A flag or argument cannot be used.
    #[error("{0}")]
    Input(String),
    /// Printing failed (e.g. serialising to YAML).
    #[error("cannot write output: {0}")]
    Output(String),
}

impl CliError {
    /// Unusable input exits 2; everything else (the cluster said no) exits 1.
    pub fn exit(&self) -> crate::command::Exit {
        match self {
            CliError::Input(_) | CliError::Kubeconfig { .. } | CliError::NotFound { .. } => {
                crate::command::Exit::BadInput
            }
            _ => crate::command::Exit::Failed,
        }
    }
}

/// Connects as kubectl would with the same flags. Does not contact the server yet.
pub async fn connect(args: &ClusterArgs) -> Result<Cluster, CliError> {
    let (kc, path) = match &args.kubeconfig {
        Some(p) => (
            Kubeconfig::read_from(p).map_err(|e| CliError::Kubeconfig {
                path: p.display().to_string(),
                message: e.to_string(),
            })?,
            p.display().to_string(),
        ),
        None => {
            let path = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
            (
                Kubeconfig::read().map_err(|e| CliError::Kubeconfig {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
                path,
            )
        }
    };
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| CliError::Kubeconfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let server = config.cluster_url.to_string();
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| CliError::Kubeconfig {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(Cluster {
        client,
        namespace,
        namespace_given: args.namespace.is_some(),
        all_namespaces: args.all_namespaces,
        server,
        kubeconfig: path,
    })
}

/// What a request was doing, so that a failure can name it.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// The verb: get, list, create, delete.
    pub verb: &'a str,
    /// The resource plural, e.g. `dataproducts`.
    pub resource: &'a str,
    /// The kind, for not-found messages.
    pub kind: &'a str,
    /// The object's name, when one is addressed.
    pub name: Option<&'a str>,
    /// The namespace, when namespaced.
    pub namespace: Option<&'a str>,
}

impl<'a> Op<'a> {
    /// An operation on every object of a resource.
    pub fn list(resource: &'a str, kind: &'a str, namespace: Option<&'a str>) -> Self {
        Op {
            verb: "list",
            resource,
            kind,
            name: None,
            namespace,
        }
    }

    /// An operation on one named object.
    pub fn on(
        verb: &'a str,
        resource: &'a str,
        kind: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> Self {
        Op {
            verb,
            resource,
            kind,
            name: Some(name),
            namespace,
        }
    }
}

impl Cluster {
    /// Turns a client error into one that says what to do next.
    pub fn error(&self, op: Op<'_>, err: kube::Error) -> CliError {
        let scope = op
            .namespace
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default();
        match err {
            kube::Error::Api(status) => match status.code {
                // A missing resource type answers 404 with this generic message;
                // a missing object names itself.
                404 if resource_group(op.resource) == datamesh_crds::GROUP
                    && (status.message == "the server could not find the requested resource"
                        || op.name.is_none()) =>
                {
                    CliError::NotInstalled {
                        resource: format!("{}.{}", op.resource, resource_group(op.resource)),
                    }
                }
                404 => CliError::NotFound {
                    kind: op.kind.to_string(),
                    name: op.name.unwrap_or_default().to_string(),
                    scope,
                    hint: not_found_hint(op.kind),
                },
                401 => CliError::Forbidden {
                    verb: op.verb.into(),
                    resource: op.resource.into(),
                    scope,
                    message: format!(
                        "the API server did not accept the credentials in {}",
                        self.kubeconfig
                    ),
                },
                403 => CliError::Forbidden {
                    verb: op.verb.into(),
                    resource: op.resource.into(),
                    scope,
                    message: status.message,
                },
                _ => CliError::Refused {
                    verb: op.verb.into(),
                    resource: op.resource.into(),
                    message: status.message,
                },
            },
            other => CliError::Unreachable {
                server: self.server.clone(),
                kubeconfig: self.kubeconfig.clone(),
                message: other.to_string(),
            },
        }
    }
}

fn resource_group(resource: &str) -> &'static str {
    match resource {
        "leases" => "coordination.k8s.io",
        "selfsubjectreviews" => "authentication.k8s.io",
        _ => datamesh_crds::GROUP,
    }
}

fn not_found_hint(kind: &str) -> String {
    match kind {
        "DataProduct" => "list the catalogue with: kubectl datamesh catalog".into(),
        "DataSharingAgreement" => {
            "list agreements with: kubectl datamesh agreements -A (or -n NAMESPACE)".into()
        }
        "Licence" => "list licences with: kubectl get licences".into(),
        "Domain" => "list domains with: kubectl get domains".into(),
        _ => format!("check the name with: kubectl get {}", kind.to_lowercase()),
    }
}

/// Splits `NS/NAME`, or takes the name with the namespace from `-n` / the context.
pub fn split_ref(arg: &str, cluster: &Cluster) -> Result<(String, String), CliError> {
    match arg.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        Some(_) => Err(CliError::Input(format!(
            "`{arg}` is not NAME or NAMESPACE/NAME"
        ))),
        None => Ok((cluster.namespace.clone(), arg.to_string())),
    }
}

/// A datamesh (or other) kind this CLI reads, with no dynamic type.
pub trait Kind:
    kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned
{
}
impl<K> Kind for K where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned
{
}

impl Cluster {
    /// Every object of a namespaced kind, in `namespace` or in all namespaces.
    pub async fn list_in<K>(&self, namespace: Option<&str>) -> Result<Vec<K>, CliError>
    where
        K: Kind + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        let api: kube::Api<K> = match namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        };
        let plural = K::plural(&());
        let kind = K::kind(&());
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|e| self.error(Op::list(&plural, &kind, namespace), e))
    }

    /// Every object of a cluster-scoped kind.
    pub async fn list_cluster<K>(&self) -> Result<Vec<K>, CliError>
    where
        K: Kind + kube::Resource<Scope = kube::core::ClusterResourceScope>,
    {
        let api: kube::Api<K> = kube::Api::all(self.client.clone());
        let plural = K::plural(&());
        let kind = K::kind(&());
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|e| self.error(Op::list(&plural, &kind, None), e))
    }

    /// One namespaced object.
    pub async fn get_in<K>(&self, namespace: &str, name: &str) -> Result<K, CliError>
    where
        K: Kind + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        let api: kube::Api<K> = kube::Api::namespaced(self.client.clone(), namespace);
        let plural = K::plural(&());
        let kind = K::kind(&());
        api.get(name)
            .await
            .map_err(|e| self.error(Op::on("get", &plural, &kind, Some(namespace), name), e))
    }

    /// One cluster-scoped object.
    pub async fn get_cluster<K>(&self, name: &str) -> Result<K, CliError>
    where
        K: Kind + kube::Resource<Scope = kube::core::ClusterResourceScope>,
    {
        let api: kube::Api<K> = kube::Api::all(self.client.clone());
        let plural = K::plural(&());
        let kind = K::kind(&());
        api.get(name)
            .await
            .map_err(|e| self.error(Op::on("get", &plural, &kind, None, name), e))
    }

    /// The namespace a list command looks in: none with `-A`, else `-n`/the context's.
    pub fn list_scope(&self) -> Option<&str> {
        if self.all_namespaces {
            None
        } else {
            Some(&self.namespace)
        }
    }

    /// The authenticated user's name, as the API server sees it (SelfSubjectReview).
    pub async fn whoami(&self) -> Result<String, CliError> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        let api: kube::Api<SelfSubjectReview> = kube::Api::all(self.client.clone());
        let review = api
            .create(&Default::default(), &SelfSubjectReview::default())
            .await
            .map_err(|e| {
                self.error(Op::list("selfsubjectreviews", "SelfSubjectReview", None), e)
            })?;
        review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| CliError::Refused {
                verb: "create".into(),
                resource: "selfsubjectreviews".into(),
                message: "the API server did not say who you are".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Option<Cluster> {
        let config = Config::new("https://127.0.0.1:1".parse().ok()?);
        Some(Cluster {
            client: Client::try_from(config).ok()?,
            namespace: "default".into(),
            namespace_given: false,
            all_namespaces: false,
            server: "https://127.0.0.1:1/".into(),
            kubeconfig: "/tmp/kc".into(),
        })
    }

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }))
    }

    #[tokio::test]
    async fn a_missing_crd_says_how_to_install() {
        let Some(c) = cluster() else {
            panic!("no client")
        };
        let e = c.error(
            Op::list("dataproducts", "DataProduct", None),
            status(404, "the server could not find the requested resource"),
        );
        let text = e.to_string();
        assert!(
            text.contains("datamesh is not installed in this cluster"),
            "{text}"
        );
        assert!(
            text.contains("helm install datamesh charts/datamesh"),
            "{text}"
        );
        assert_eq!(e.exit(), crate::command::Exit::Failed);
    }

    #[tokio::test]
    async fn a_missing_object_is_not_a_missing_install() {
        let Some(c) = cluster() else {
            panic!("no client")
        };
        let e = c.error(
            Op::on("get", "dataproducts", "DataProduct", Some("x"), "nope"),
            status(404, "dataproducts.datamesh.dev \"nope\" not found"),
        );
        assert!(matches!(e, CliError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("kubectl datamesh catalog"));
        assert_eq!(e.exit(), crate::command::Exit::BadInput);
    }

    #[tokio::test]
    async fn forbidden_names_verb_and_resource() {
        let Some(c) = cluster() else {
            panic!("no client")
        };
        let e = c.error(
            Op::on(
                "create",
                "agreementapprovals",
                "AgreementApproval",
                Some("social-care"),
                "a",
            ),
            status(
                403,
                "agreementapprovals.datamesh.dev is forbidden: User \"bob\" cannot create",
            ),
        );
        let text = e.to_string();
        assert!(
            text.contains("you may not create agreementapprovals in namespace social-care"),
            "{text}"
        );
        assert!(text.contains("ask the owners of the domain"), "{text}");
    }

    #[test]
    fn refs_split_on_the_slash_or_take_the_namespace() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { panic!("runtime") };
        let _guard = rt.enter();
        let Some(c) = cluster() else {
            panic!("no client")
        };
        assert_eq!(
            split_ref("ns/name", &c).ok(),
            Some(("ns".into(), "name".into()))
        );
        assert_eq!(
            split_ref("name", &c).ok(),
            Some(("default".into(), "name".into()))
        );
        assert!(split_ref("a/b/c", &c).is_err());
        assert!(split_ref("/b", &c).is_err());
    }
}
