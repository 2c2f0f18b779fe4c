//! Harness for datamesh's end-to-end tests: a client to the real local
//! control plane (started by `scripts/cluster.sh`, see `scripts/test.sh`),
//! CRD installation, the operator as a child process, and waiting helpers.
//!
//! Tests talk to a real kube-apiserver and etcd; nothing here mocks the API.

pub mod fixtures;
pub mod pg;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of the admin kubeconfig of the local control plane.
///
/// `scripts/test.sh` starts the control plane and exports `KUBECONFIG`;
/// running `cargo test` without it fails with a message saying so.
pub fn admin_kubeconfig() -> Result<PathBuf> {
    let path = std::env::var_os("DATAMESH_KUBECONFIG").or_else(|| std::env::var_os("KUBECONFIG")).ok_or_else(|| {
        anyhow!("no control plane: run the tests with scripts/test.sh (it starts kube-apiserver and etcd and sets KUBECONFIG)")
    })?;
    Ok(PathBuf::from(path))
}

/// A client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// An admin client to the local control plane.
pub async fn admin() -> Result<Client> {
    client_from(&admin_kubeconfig()?).await
}

/// A kubeconfig for a user with the given groups, signed by the cluster CA.
pub fn user_kubeconfig(user: &str, groups: &[&str]) -> Result<PathBuf> {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(repo_root().join("scripts/cluster.sh"))
        .arg("user")
        .arg(user)
        .args(groups);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "cluster.sh user {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(PathBuf::from(path))
}

/// Installs (server-side applies) every CRD under `charts/datamesh/crds/` and
/// waits until each is Established.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let dir = repo_root().join("charts/datamesh/crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("datamesh-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying {}", path.display()))?;
        names.push(name);
    }
    for name in names {
        wait_for(Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await
        .with_context(|| format!("CRD {name} not established"))?;
    }
    Ok(())
}

/// Polls `f` until it yields `Some`, or fails after `timeout`.
///
/// Used to wait for the operator's asynchronous effects; the timeout only
/// bounds a failing test, it asserts nothing about speed.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long the Events of a namespace must hold still before
/// [`settled_events`] returns them: many of the operator's send intervals
/// (10 per second) and more than its pause before a retry (1 s).
pub const EVENTS_QUIET: Duration = Duration::from_secs(2);

/// The Events in `ns` once the operator has sent what it queued. Normal
/// Events leave the operator through a queue at a bounded rate
/// (operator/src/event.rs), so a list taken right after a status change can
/// miss the latest; this lists until nothing changed for [`EVENTS_QUIET`],
/// for at most `timeout`.
pub async fn settled_events(
    client: &Client,
    ns: &str,
    timeout: Duration,
) -> Result<Vec<k8s_openapi::api::events::v1::Event>> {
    let api = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns);
    // an Event repeated through a series counts each occurrence
    let occurrences = |items: &[k8s_openapi::api::events::v1::Event]| -> i64 {
        items
            .iter()
            .map(|e| e.series.as_ref().map_or(1, |s| i64::from(s.count)))
            .sum()
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = api.list(&Default::default()).await?.items;
    let mut still_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let items = api.list(&Default::default()).await?.items;
        if occurrences(&items) != occurrences(&last) {
            last = items;
            still_since = tokio::time::Instant::now();
        } else if still_since.elapsed() >= EVENTS_QUIET {
            return Ok(items);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the Events in {ns} still changed after {timeout:?}");
        }
    }
}

/// A short random suffix so tests never collide on names.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{:x}", (n ^ std::process::id()) & 0xffffff)
}

/// Creates a namespace (deleted again by [`delete_namespace`]).
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Deletes a namespace; the namespace controller removes what is in it.
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// Creates an object from a YAML or JSON value with the admin client.
pub async fn create<K>(api: &Api<K>, value: serde_json::Value) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value)?;
    Ok(api.create(&PostParams::default(), &obj).await?)
}

/// The operator, running as a child process against the local control plane.
/// Killed when dropped, so a failing test leaves no process behind.
pub struct Operator {
    child: tokio::process::Child,
    /// Address of its health and metrics endpoints.
    pub http_addr: String,
    /// Holds its default audit file; removed when the operator is dropped.
    _audit_dir: tempfile::TempDir,
}

/// Path of a workspace binary built by `cargo build` (scripts/test.sh builds them first).
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (`cargo build --bins`, as scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

impl Operator {
    /// Starts the operator with the admin kubeconfig and waits until it is
    /// ready. Each start uses its own Lease, so a killed predecessor's lease
    /// does not delay it; tests of leader election pass `--lease-name`.
    pub async fn start() -> Result<Self> {
        let lease = unique("datamesh-e2e");
        Self::start_with(
            &admin_kubeconfig()?,
            &["--lease-name", &lease, "--lease-seconds", "4"],
        )
        .await
    }

    /// Starts the operator with a given kubeconfig and extra arguments.
    pub async fn start_with(kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        Self::spawn(kubeconfig, args, None, &[]).await
    }

    /// Starts the operator without the given variables of this environment
    /// (e.g. with no client CA).
    pub async fn start_without_env(remove: &[&str]) -> Result<Self> {
        let lease = unique("datamesh-e2e");
        Self::spawn(
            &admin_kubeconfig()?,
            &["--lease-name", &lease, "--lease-seconds", "4"],
            None,
            remove,
        )
        .await
    }

    /// Starts the operator (debug logs, JSON) writing its stdout and stderr
    /// to `log`, for tests that read what it logged.
    pub async fn start_logging_to(log: &Path, args: &[&str]) -> Result<Self> {
        Self::spawn(&admin_kubeconfig()?, args, Some(log), &[]).await
    }

    async fn spawn(
        kubeconfig: &Path,
        args: &[&str],
        log: Option<&Path>,
        env_remove: &[&str],
    ) -> Result<Self> {
        let (stdout, stderr, level) = match log {
            Some(path) => {
                let file = std::fs::File::create(path)?;
                (
                    Stdio::from(file.try_clone()?),
                    Stdio::from(file),
                    Some("debug".to_string()),
                )
            }
            None => (Stdio::inherit(), Stdio::inherit(), None),
        };
        let port = free_port()?;
        let http_addr = format!("127.0.0.1:{port}");
        let audit_dir = temp_dir("datamesh-audit")?;
        let mut command = tokio::process::Command::new(workspace_bin("datamesh-operator")?);
        for name in env_remove {
            command.env_remove(name);
        }
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .env("DATAMESH_HTTP_ADDR", &http_addr)
            // each operator its own audit file (an --audit-url argument wins)
            .env(
                "DATAMESH_AUDIT_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    audit_dir.path().join("audit.db").display()
                ),
            )
            .env(
                "RUST_LOG",
                level.unwrap_or_else(|| {
                    std::env::var("DATAMESH_OPERATOR_LOG").unwrap_or_else(|_| "info".into())
                }),
            )
            .args(args)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?;
        let op = Self {
            child,
            http_addr,
            _audit_dir: audit_dir,
        };
        op.wait_ready().await?;
        Ok(op)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) -> Result<()> {
        let url = format!("http://{}/readyz", self.http_addr);
        wait_for(Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                http_get(&url)
                    .await
                    .ok()
                    .filter(|(code, _)| *code == 200)
                    .map(|_| ())
            }
        })
        .await
        .context("operator did not become ready")
    }

    /// Fetches the Prometheus metrics text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(http_get(&format!("http://{}/metrics", self.http_addr))
            .await?
            .1)
    }

    /// Sum of a counter over all label sets whose labels contain `filter`.
    pub async fn counter(&self, name: &str, filter: &str) -> Result<f64> {
        let text = self.metrics().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Kills the operator (SIGKILL) and waits for it to exit.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// A fresh directory under the system's temporary one, removed with
/// everything in it when dropped (test files must not pile up in /tmp).
pub fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir()?)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A minimal HTTP/1.1 GET on loopback, returning status code and body.
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs: {url}"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Applies every document of a YAML file (server-side apply, as admin).
pub async fn apply_yaml_file(client: &Client, path: &Path) -> Result<()> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    use kube::discovery::Scope;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value)?;
        let types = obj
            .types
            .clone()
            .ok_or_else(|| anyhow!("document without apiVersion/kind in {}", path.display()))?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (ar, caps): (ApiResource, _) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| anyhow!("unknown kind {gvk:?}"))?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &name,
            &PatchParams::apply("datamesh-e2e").force(),
            &Patch::Apply(&obj),
        )
        .await?;
    }
    Ok(())
}

/// Installs the chart's admission policies: the ValidatingAdmissionPolicy that
/// binds an approval to its creator (admission-approver.yaml) and, where the
/// API server serves MutatingAdmissionPolicy v1beta1 (`scripts/cluster.sh`
/// turns it on), the policies that add the operator's finalizers when an
/// agreement or a product is created (admission-finalizers.yaml). Elsewhere
/// the latter is skipped with a line on stderr and the operator adds the
/// finalizers itself.
///
/// Returns whether the finalizers are added at admission. Needs the CRDs
/// ([`install_crds`]): it waits until a dry-run create of an agreement and of
/// a product comes back with their finalizers.
pub async fn install_admission(client: &Client) -> Result<bool> {
    let templates = repo_root().join("charts/datamesh/templates");
    apply_yaml_file(client, &templates.join("admission-approver.yaml")).await?;
    let finalizers = serves_mutating_admission_policy(client).await?;
    if finalizers {
        apply_yaml_file(client, &templates.join("admission-finalizers.yaml")).await?;
        wait_for(Duration::from_secs(30), || async {
            admission_adds_finalizers(client).await.then_some(())
        })
        .await
        .context(
            "the MutatingAdmissionPolicies of admission-finalizers.yaml did not take effect",
        )?;
    } else {
        eprintln!(
            "install_admission: the API server does not serve admissionregistration.k8s.io/v1beta1 \
             MutatingAdmissionPolicy; admission-finalizers.yaml skipped, the operator adds its finalizers itself"
        );
    }
    // the API server picks up new admission policies asynchronously
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(finalizers)
}

/// Whether the API server serves MutatingAdmissionPolicy in
/// admissionregistration.k8s.io/v1beta1 (a feature gate and a runtime-config
/// flag in Kubernetes 1.34).
pub async fn serves_mutating_admission_policy(client: &Client) -> Result<bool> {
    match client
        .list_api_group_resources("admissionregistration.k8s.io/v1beta1")
        .await
    {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.kind == "MutatingAdmissionPolicy")),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a dry-run create of an agreement and of a product (in `default`;
/// nothing is stored) comes back with the operator's finalizers.
async fn admission_adds_finalizers(client: &Client) -> bool {
    use datamesh_crds::{DataProduct, DataSharingAgreement};
    use datamesh_operator::controller::{agreement, product};
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let has = |meta: &kube::api::ObjectMeta, finalizer: &str| {
        meta.finalizers.iter().flatten().any(|f| f == finalizer)
    };
    let a = fixtures::agreement(
        "admission-probe",
        "default",
        "admission-probe",
        ("default", "admission-probe"),
        ("admission-probe", "1.0"),
        "2027-06-30T00:00:00Z",
    );
    let p = fixtures::product(
        "admission-probe",
        "default",
        "admission-probe",
        "admission-probe",
    );
    let (Ok(a), Ok(p)) = (
        serde_json::from_value::<DataSharingAgreement>(a),
        serde_json::from_value::<DataProduct>(p),
    ) else {
        return false;
    };
    let agreements = Api::<DataSharingAgreement>::namespaced(client.clone(), "default");
    let products = Api::<DataProduct>::namespaced(client.clone(), "default");
    match (
        agreements.create(&dry, &a).await,
        products.create(&dry, &p).await,
    ) {
        (Ok(a), Ok(p)) => {
            has(&a.metadata, agreement::FINALIZER) && has(&p.metadata, product::FINALIZER)
        }
        _ => false,
    }
}

/// Restarts one component of the local control plane (`apiserver` or
/// `etcd`); with `kill`, SIGKILL as in a crash. Used by fault tests.
pub fn restart_component(component: &str, kill: bool) -> Result<()> {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(repo_root().join("scripts/cluster.sh"))
        .arg(format!("restart-{component}"));
    if kill {
        cmd.arg("--kill");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "cluster.sh restart-{component}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
