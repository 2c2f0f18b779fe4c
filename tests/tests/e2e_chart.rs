//! The Helm chart in charts/datamesh: `helm lint` clean, `helm template` with
//! default and non-default values, bad values refused by values.schema.json,
//! install/upgrade/uninstall against the real API server (CRDs kept), and
//! its RBAC: enough for the operator (run as the chart's ServiceAccount
//! through an agreement lifecycle) and nothing more (the rules, listed).

use anyhow::{Context as _, Result, anyhow, bail};
use datamesh_crds::agreement::AgreementPhase;
use datamesh_crds::{
    AgreementApproval, DataProduct, DataSharingAgreement, Domain, GovernancePolicy, Licence,
};
use datamesh_e2e::{fixtures, *};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const ADMISSION_POLICY: &str = "datamesh-approver-is-requester";
/// The MutatingAdmissionPolicies (and their bindings) of admission-finalizers.yaml.
const FINALIZER_POLICIES: [&str; 2] =
    ["datamesh-agreement-finalizer", "datamesh-product-finalizer"];

fn mutating_admission_api(client: &Client, kind: &str) -> Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "admissionregistration.k8s.io",
        "v1beta1",
        kind,
    ));
    Api::all_with(client.clone(), &ar)
}

// ---- helm ----------------------------------------------------------------

/// The helm binary: $DATAMESH_HELM, else the one scripts/toolchain.sh builds
/// from Go modules (cached after the first build).
fn helm_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("DATAMESH_HELM") {
        return Ok(PathBuf::from(p));
    }
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/toolchain.sh"))
        .arg("helm")
        .output()?;
    if !out.status.success() {
        bail!(
            "scripts/toolchain.sh helm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(dir).join("helm"))
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/datamesh")
}

/// Runs helm with the admin kubeconfig; returns its output whatever the exit code.
fn helm(args: &[&str]) -> Result<Output> {
    let mut cmd = std::process::Command::new(helm_bin()?);
    if let Ok(kc) = admin_kubeconfig() {
        cmd.env("KUBECONFIG", kc);
    }
    // keep helm's own state (repositories, cache) out of the user's home
    let home = std::env::temp_dir().join("datamesh-e2e-helm");
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    Ok(cmd.args(args).output()?)
}

/// Runs helm and fails with its stderr unless it succeeded; returns stdout.
fn helm_ok(args: &[&str]) -> Result<String> {
    let out = helm(args)?;
    if !out.status.success() {
        bail!(
            "helm {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A values file in a fresh temporary directory (kept while the returned directory lives).
fn values_file(name: &str, values: &Value) -> Result<(tempfile::TempDir, String)> {
    let dir = temp_dir("datamesh-chart-values")?;
    let path = dir.path().join(name);
    std::fs::write(&path, serde_yaml::to_string(values)?)?;
    Ok((dir, path.to_string_lossy().to_string()))
}

/// `helm template` of `chart` with extra arguments, as parsed documents.
fn render_chart(chart: &Path, args: &[&str]) -> Result<Vec<Value>> {
    let chart = chart.to_string_lossy().to_string();
    let mut all = vec!["template", "dm", &chart, "--namespace", "dm-system"];
    all.extend_from_slice(args);
    let text = helm_ok(&all)?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn render(args: &[&str]) -> Result<Vec<Value>> {
    render_chart(&chart_dir(), args)
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|d| d["kind"].as_str().map(String::from))
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value> {
    let mut it = docs.iter().filter(|d| d["kind"] == kind);
    let first = it.next().ok_or_else(|| anyhow!("no {kind} rendered"))?;
    if it.next().is_some() {
        bail!("more than one {kind} rendered");
    }
    Ok(first)
}

fn all_of<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The operator container's environment as name → the whole entry.
fn env_of(deployment: &Value) -> BTreeMap<String, Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e.clone())))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

// ---- lint, template, schema ------------------------------------------------

#[test]
fn helm_lint_is_clean() -> Result<()> {
    let chart = chart_dir().to_string_lossy().to_string();
    let out = helm_ok(&["lint", "--strict", &chart])?;
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "{out}"
    );
    assert!(out.contains("0 chart(s) failed"), "{out}");
    // and with the non-default settings a production install uses
    let out = helm_ok(&[
        "lint",
        "--strict",
        &chart,
        "--set",
        "replicas=1,serviceMonitor.enabled=true,audit.databaseUrlSecret.name=audit-db,otlp.endpoint=http://otel:4317",
    ])?;
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "{out}"
    );
    Ok(())
}

#[test]
fn template_with_default_values_renders_a_hardened_ha_operator() -> Result<()> {
    let docs = render(&[])?;
    let want: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "PersistentVolumeClaim",
        "Deployment",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // `helm template` knows no cluster: without `--api-versions` naming
    // MutatingAdmissionPolicy, admission-finalizers.yaml renders nothing (as
    // on a cluster that does not serve it)
    assert_eq!(
        kinds(&docs),
        want,
        "no ServiceMonitor, no policies, no MutatingAdmissionPolicy by default"
    );

    let d = one(&docs, "Deployment")?;
    assert_eq!(d["spec"]["replicas"], 2, "two replicas by default");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "dm-datamesh");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for what in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][what][res].is_string(),
                "resources.{what}.{res} set"
            );
        }
    }
    let env = env_of(d);
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env["HOSTNAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(env["DATAMESH_LEADER_ELECT"]["value"], "true");
    assert_eq!(
        env["DATAMESH_LEASE_NAME"]["value"], "datamesh-operator",
        "the Lease `kubectl datamesh status` looks for"
    );
    assert_eq!(env["DATAMESH_CONVERGENCE_SECONDS"]["value"], "60");
    assert!(
        !env.contains_key("DATAMESH_CLIENT_CA_CERT"),
        "no client CA unless one is named"
    );
    assert_eq!(
        env["DATAMESH_AUDIT_URL"]["value"],
        "sqlite:///var/lib/datamesh/audit.db?mode=rwc"
    );
    assert!(!env.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"));

    // the SQLite file lives on the claim, mounted at its directory
    let pvc = one(&docs, "PersistentVolumeClaim")?;
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    let vols = pod["volumes"].as_array().cloned().unwrap_or_default();
    assert!(
        vols.iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]),
        "{vols:?}"
    );

    let svc = one(&docs, "Service")?;
    assert_eq!(svc["spec"]["ports"][0]["name"], "http");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    Ok(())
}

/// The capability helm sees on a cluster that serves MutatingAdmissionPolicy v1beta1.
const MAP_CAPABILITY: &str = "admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy";

#[test]
fn template_adds_the_finalizer_policies_where_the_api_server_serves_them() -> Result<()> {
    let docs = render(&["--api-versions", MAP_CAPABILITY])?;
    let k = kinds(&docs);
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    ] {
        assert!(k.contains(kind), "{kind} missing: {k:?}");
    }
    // one policy per kind, each adding the operator's own finalizer on CREATE
    let policies = all_of(&docs, "MutatingAdmissionPolicy");
    assert_eq!(policies.len(), 2, "{policies:?}");
    let want = [
        (
            "datasharingagreements",
            datamesh_operator::controller::agreement::FINALIZER,
        ),
        (
            "dataproducts",
            datamesh_operator::controller::product::FINALIZER,
        ),
    ];
    let bindings = all_of(&docs, "MutatingAdmissionPolicyBinding");
    for (resource, finalizer) in want {
        let p = policies
            .iter()
            .find(|p| {
                strings(&p["spec"]["matchConstraints"]["resourceRules"][0]["resources"])
                    == [resource]
            })
            .ok_or_else(|| anyhow!("no MutatingAdmissionPolicy for {resource}"))?;
        let spec = &p["spec"];
        assert_eq!(p["apiVersion"], "admissionregistration.k8s.io/v1beta1");
        assert_eq!(
            spec["failurePolicy"], "Ignore",
            "the operator is the backstop"
        );
        assert_eq!(spec["reinvocationPolicy"], "Never");
        let rule = &spec["matchConstraints"]["resourceRules"][0];
        assert_eq!(strings(&rule["apiGroups"]), ["datamesh.dev"]);
        assert_eq!(strings(&rule["operations"]), ["CREATE"]);
        let m = &spec["mutations"][0];
        assert_eq!(m["patchType"], "ApplyConfiguration");
        let expr = m["applyConfiguration"]["expression"]
            .as_str()
            .unwrap_or_default();
        assert!(
            expr.contains(&format!("finalizers: [\"{finalizer}\"]")),
            "{resource}: {expr}"
        );
        let name = &p["metadata"]["name"];
        assert!(
            bindings.iter().any(|b| b["spec"]["policyName"] == *name),
            "no binding for {name}"
        );
    }
    assert_eq!(bindings.len(), 2, "{bindings:?}");

    // admission.enabled=false turns every admission policy off, capability or not
    let docs = render(&[
        "--api-versions",
        MAP_CAPABILITY,
        "--set",
        "admission.enabled=false",
    ])?;
    let k = kinds(&docs);
    assert!(
        !k.iter().any(|kind| kind.contains("AdmissionPolicy")),
        "{k:?}"
    );
    Ok(())
}

#[test]
fn template_with_non_default_values() -> Result<()> {
    let (_dir, values) = values_file(
        "prod.yaml",
        &json!({
            "replicas": 1,
            "logging": {"format": "text", "level": "debug"},
            "otlp": {"endpoint": "http://otel-collector.observability:4317"},
            "audit": {"databaseUrlSecret": {"name": "audit-db", "key": "DATABASE_URL"}},
            "serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}},
            "leaderElection": {"leaseName": "mesh-leader"},
            "enforcement": {"convergenceSeconds": 300, "clientCASecret": "mesh-client-ca"},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
            "policies": {"items": [{
                "name": "transport-extra",
                "description": "Transport's own rule.",
                "domain": "transport",
                "policies": "@id(\"t\")\n@reason(\"r\")\npermit (principal, action, resource);\n"
            }]},
        }),
    )?;
    let docs = render(&["-f", &values])?;
    let k = kinds(&docs);
    assert!(
        k.contains("ServiceMonitor") && k.contains("GovernancePolicy"),
        "{k:?}"
    );
    assert!(
        !k.contains("PersistentVolumeClaim"),
        "no claim with a database URL"
    );

    let d = one(&docs, "Deployment")?;
    assert_eq!(d["spec"]["replicas"], 1);
    let env = env_of(d);
    assert_eq!(
        env["DATAMESH_AUDIT_URL"]["valueFrom"]["secretKeyRef"],
        json!({"name": "audit-db", "key": "DATABASE_URL"})
    );
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"],
        "http://otel-collector.observability:4317"
    );
    assert_eq!(env["DATAMESH_LOG_FORMAT"]["value"], "text");
    assert_eq!(env["RUST_LOG"]["value"], "debug");
    assert_eq!(env["DATAMESH_LEASE_NAME"]["value"], "mesh-leader");
    assert_eq!(env["DATAMESH_CONVERGENCE_SECONDS"]["value"], "300");
    let pod = &d["spec"]["template"]["spec"];
    // the client CA: the Secret's two files, read-only, where the env says
    let ca = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "client-ca")
        .cloned()
        .unwrap_or_default();
    assert_eq!(ca["secret"]["secretName"], "mesh-client-ca");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "client-ca")
        .cloned()
        .unwrap_or_default();
    assert_eq!(mount["readOnly"], true);
    for (var, file) in [
        ("DATAMESH_CLIENT_CA_CERT", "tls.crt"),
        ("DATAMESH_CLIENT_CA_KEY", "tls.key"),
    ] {
        assert_eq!(
            env[var]["value"],
            format!("{}/{file}", mount["mountPath"].as_str().unwrap_or_default())
        );
    }
    assert!(
        !pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["name"] == "audit"),
        "no audit volume with a database URL"
    );
    // maps merge with the defaults: the given keys change, the others stay
    let res = &pod["containers"][0]["resources"];
    assert_eq!(res["limits"]["memory"], "1Gi");
    assert_eq!(res["requests"]["cpu"], "100m");

    // the leader-election Role covers the configured Lease name only
    let role = one(&docs, "Role")?;
    let named: Vec<_> = role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| strings(&r["resourceNames"]))
        .collect();
    assert_eq!(named, ["mesh-leader"]);

    let sm = one(&docs, "ServiceMonitor")?;
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");

    let gp = one(&docs, "GovernancePolicy")?;
    assert_eq!(gp["metadata"]["name"], "transport-extra");
    assert_eq!(gp["spec"]["domain"], "transport");
    assert_eq!(gp["spec"]["description"], "Transport's own rule.");
    assert!(
        gp["spec"]["policies"]
            .as_str()
            .unwrap_or_default()
            .contains("permit (principal, action, resource);")
    );
    // the objects pass the API server's schema too (checked in the install test)
    Ok(())
}

#[test]
fn governance_policies_come_from_files_in_the_chart() -> Result<()> {
    // a copy of the chart with one more policy file, as a board would ship it
    let scratch = temp_dir("datamesh-chart-copy")?;
    let copy = scratch.path().join("datamesh");
    let status = std::process::Command::new("cp")
        .args(["-r"])
        .arg(chart_dir())
        .arg(&copy)
        .status()?;
    assert!(status.success());
    std::fs::write(
        copy.join("policies/no-retired-reads.cedar"),
        "// Nobody reads a retired product.\n@id(\"no-retired\")\n@reason(\"retired\")\nforbid (principal, action, resource);\n",
    )?;
    let docs = render_chart(&copy, &[])?;
    let gps = all_of(&docs, "GovernancePolicy");
    assert_eq!(gps.len(), 1, "{gps:?}");
    assert_eq!(gps[0]["metadata"]["name"], "no-retired-reads");
    assert_eq!(
        gps[0]["spec"]["description"],
        "Nobody reads a retired product."
    );
    assert!(
        gps[0]["spec"]["policies"]
            .as_str()
            .unwrap_or_default()
            .contains("forbid (principal, action, resource);")
    );
    // turned off, the files are ignored
    let docs = render_chart(&copy, &["--set", "policies.fromFiles=false"])?;
    assert!(all_of(&docs, "GovernancePolicy").is_empty());
    // a values entry may not take a file's name
    let out = helm(&[
        "template",
        "dm",
        &copy.to_string_lossy(),
        "--set",
        "policies.items[0].name=no-retired-reads",
        "--set",
        "policies.items[0].policies=x",
    ])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GovernancePolicy names must be unique"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn bad_values_are_refused_naming_the_key() -> Result<()> {
    let chart = chart_dir().to_string_lossy().to_string();
    let cases = [
        (json!({"replicas": "two"}), "/replicas"),
        (json!({"replicas": 0}), "/replicas"),
        (
            json!({"resources": {"limits": {"memory": "-1Gi"}}}),
            "/resources/limits/memory",
        ),
        (
            json!({"resources": {"requests": {"cpu": -1}}}),
            "/resources/requests/cpu",
        ),
        (json!({"logging": {"format": "xml"}}), "/logging/format"),
        (
            json!({"enforcement": {"convergenceSeconds": 0}}),
            "/enforcement/convergenceSeconds",
        ),
        (
            json!({"securityContext": {"runAsNonRoot": false, "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}),
            "/securityContext/runAsNonRoot",
        ),
        (json!({"replica": 2}), "replica"),
        (
            json!({"podSecurityContext": {"runAsNonRoot": true, "runAsUser": 0}}),
            "/podSecurityContext/runAsUser",
        ),
        (
            json!({"audit": {"sqlite": {"persistence": {"size": "lots"}}}}),
            "/audit/sqlite/persistence/size",
        ),
        (
            json!({"policies": {"items": [{"name": "Bad_Name", "policies": "x"}]}}),
            "/policies/items/0/name",
        ),
    ];
    for (values, key) in cases {
        let (_dir, file) = values_file("bad.yaml", &values)?;
        for cmd in [
            vec!["template", "dm", &chart, "-f", &file],
            vec!["lint", &chart, "-f", &file],
        ] {
            let out = helm(&cmd)?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !out.status.success(),
                "{values} accepted by helm {}",
                cmd[0]
            );
            assert!(
                text.contains("values don't meet the specifications of the schema"),
                "{values}: {text}"
            );
            assert!(text.contains(key), "{values}: message names {key}: {text}");
        }
    }
    // a rule the schema cannot express, refused by the templates with a reason
    let out = helm(&[
        "template",
        "dm",
        &chart,
        "--set",
        "leaderElection.enabled=false",
    ])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("replicas > 1 needs leaderElection.enabled=true")
    );
    Ok(())
}

// ---- RBAC: nothing more ------------------------------------------------------

/// (apiGroup, resource, resourceNames) → verbs, over every rule of `roles`.
fn rule_table(roles: &[&Value]) -> BTreeMap<(String, String, String), BTreeSet<String>> {
    let mut table = BTreeMap::new();
    for role in roles {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let names = strings(&rule["resourceNames"]).join(",");
            for group in strings(&rule["apiGroups"]) {
                for res in strings(&rule["resources"]) {
                    table
                        .entry((group.clone(), res, names.clone()))
                        .or_insert_with(BTreeSet::new)
                        .extend(strings(&rule["verbs"]));
                }
            }
        }
    }
    table
}

#[test]
fn chart_rbac_grants_exactly_the_listed_rules() -> Result<()> {
    let docs = render(&[])?;
    let cluster = all_of(&docs, "ClusterRole");
    let ns = all_of(&docs, "Role");
    for role in cluster.iter().chain(ns.iter()) {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "wildcard in {field}: {rule}"
                );
            }
            assert!(rule["nonResourceURLs"].is_null(), "{rule}");
            for verb in strings(&rule["verbs"]) {
                assert!(
                    !["escalate", "bind", "impersonate"].contains(&verb.as_str()),
                    "{verb} granted: {rule}"
                );
            }
        }
    }
    // the ClusterRoleBinding binds the chart's own ClusterRole, never cluster-admin
    for b in all_of(&docs, "ClusterRoleBinding") {
        assert_eq!(
            b["roleRef"]["name"],
            one(&docs, "ClusterRole")?["metadata"]["name"]
        );
    }

    let v = |verbs: &[&str]| verbs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let k = |g: &str, r: &str, n: &str| (g.to_string(), r.to_string(), n.to_string());
    let read = ["get", "list", "watch"];
    let team = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let status = ["get", "patch"];
    let want: BTreeMap<_, _> = [
        (k("datamesh.dev", "domains", ""), v(&read)),
        (k("datamesh.dev", "licences", ""), v(&read)),
        (
            k("datamesh.dev", "governancepolicies", ""),
            v(&["get", "list", "watch", "patch"]),
        ),
        (k("datamesh.dev", "dataproducts", ""), v(&team)),
        (k("datamesh.dev", "datasharingagreements", ""), v(&team)),
        (k("datamesh.dev", "agreementapprovals", ""), v(&team)),
        (k("datamesh.dev", "domains/status", ""), v(&status)),
        (k("datamesh.dev", "licences/status", ""), v(&status)),
        (
            k("datamesh.dev", "governancepolicies/status", ""),
            v(&status),
        ),
        (k("datamesh.dev", "dataproducts/status", ""), v(&status)),
        (
            k("datamesh.dev", "datasharingagreements/status", ""),
            v(&status),
        ),
        (
            k("datamesh.dev", "agreementapprovals/status", ""),
            v(&["get"]),
        ),
        (k("datamesh.dev", "domains/finalizers", ""), v(&["update"])),
        (
            k("", "namespaces", ""),
            v(&["get", "list", "watch", "patch"]),
        ),
        (
            k("rbac.authorization.k8s.io", "roles", ""),
            v(&["get", "list", "watch", "create", "patch"]),
        ),
        (
            k("rbac.authorization.k8s.io", "rolebindings", ""),
            v(&["get", "list", "watch", "create", "patch"]),
        ),
        (
            k("", "secrets", ""),
            v(&["get", "create", "patch", "delete"]),
        ),
        (k("events.k8s.io", "events", ""), v(&["create", "patch"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(rule_table(&cluster), want, "ClusterRole rules");

    let want_ns: BTreeMap<_, _> = [
        (k("coordination.k8s.io", "leases", ""), v(&["create"])),
        (
            k("coordination.k8s.io", "leases", "datamesh-operator"),
            v(&["get", "patch"]),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(rule_table(&ns), want_ns, "leader-election Role rules");

    // secrets: never listed or watched (that would read every Secret in the cluster)
    let secrets = &rule_table(&cluster)[&k("", "secrets", "")];
    assert!(!secrets.contains("list") && !secrets.contains("watch"));
    Ok(())
}

// ---- against the real API server ---------------------------------------------

/// A release in its own namespace; uninstalled and the namespace deleted on `cleanup`.
struct Release {
    client: Client,
    name: String,
    ns: String,
}

impl Release {
    async fn install(client: &Client, prefix: &str, args: &[&str]) -> Result<Self> {
        let r = Release {
            client: client.clone(),
            name: unique(prefix),
            ns: unique(prefix),
        };
        let chart = chart_dir().to_string_lossy().to_string();
        let mut all = vec![
            "install",
            &r.name,
            &chart,
            "--namespace",
            &r.ns,
            "--create-namespace",
        ];
        all.extend_from_slice(args);
        helm_ok(&all)?;
        Ok(r)
    }

    fn fullname(&self) -> String {
        format!("{}-datamesh", self.name)
    }

    async fn cleanup(self) {
        let _ = helm(&["uninstall", &self.name, "--namespace", &self.ns]);
        delete_namespace(&self.client, &self.ns).await;
    }
}

/// Whether the release's ServiceAccount may do `verb` on `resource`.
async fn sa_can(
    client: &Client,
    r: &Release,
    (group, resource, sub): (&str, &str, &str),
    verb: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<bool> {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {
            "user": format!("system:serviceaccount:{}:{}", r.ns, r.fullname()),
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", r.ns), "system:authenticated"],
            "resourceAttributes": {
                "group": group, "resource": resource, "subresource": sub, "verb": verb,
                "namespace": ns.unwrap_or_default(), "name": name.unwrap_or_default(),
            }
        }
    }))?;
    let out = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(out.status.map(|s| s.allowed).unwrap_or(false))
}

#[tokio::test]
async fn install_upgrade_uninstall_against_the_api_server() -> Result<()> {
    let client = admin().await?;
    // The harness applies the admission policy without Helm's ownership
    // metadata; remove it so this release can own it, and put it back at the end.
    let vap = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
    ));
    let vapb = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
    ));
    let vaps = Api::<kube::api::DynamicObject>::all_with(client.clone(), &vap);
    let vapbs = Api::<kube::api::DynamicObject>::all_with(client.clone(), &vapb);
    let _ = vaps
        .delete(ADMISSION_POLICY, &DeleteParams::default())
        .await;
    let _ = vapbs
        .delete(ADMISSION_POLICY, &DeleteParams::default())
        .await;
    // the same for the finalizer policies, where the API server serves them
    // (then the release installs them too)
    let mutating = serves_mutating_admission_policy(&client).await?;
    let (maps, mapbs) = (
        mutating_admission_api(&client, "MutatingAdmissionPolicy"),
        mutating_admission_api(&client, "MutatingAdmissionPolicyBinding"),
    );
    if mutating {
        for name in FINALIZER_POLICIES {
            let _ = maps.delete(name, &DeleteParams::default()).await;
            let _ = mapbs.delete(name, &DeleteParams::default()).await;
        }
    }

    let scope = unique("chart-test-domain");
    let policy = unique("chart-policy");
    let (_values_dir, values) = values_file(
        "install.yaml",
        &json!({"policies": {"items": [{
            "name": policy, "domain": scope,
            "description": "A domain rule that touches no other test.",
            "policies": "@id(\"chart-test\")\n@reason(\"installed by the chart test\")\npermit (principal, action == DataMesh::Action::\"Read\", resource);\n"
        }]}}),
    )?;
    let r = Release::install(&client, "dm-install", &["-f", &values]).await?;
    let result = async {
        let full = r.fullname();
        let ns = r.ns.as_str();
        Api::<Deployment>::namespaced(client.clone(), ns).get(&full).await?;
        Api::<ServiceAccount>::namespaced(client.clone(), ns).get(&full).await?;
        Api::<Service>::namespaced(client.clone(), ns).get(&full).await?;
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .get(&format!("{full}-audit"))
            .await?;
        Api::<Role>::namespaced(client.clone(), ns)
            .get(&format!("{full}-leader-election"))
            .await?;
        Api::<RoleBinding>::namespaced(client.clone(), ns)
            .get(&format!("{full}-leader-election"))
            .await?;
        Api::<ClusterRole>::all(client.clone()).get(&full).await?;
        Api::<ClusterRoleBinding>::all(client.clone()).get(&full).await?;
        let gps = Api::<GovernancePolicy>::all(client.clone());
        let gp = gps.get(&policy).await?;
        assert_eq!(gp.spec.domain.as_deref(), Some(scope.as_str()));
        vaps.get(ADMISSION_POLICY).await?;
        vapbs.get(ADMISSION_POLICY).await?;
        if mutating {
            for name in FINALIZER_POLICIES {
                let p = maps.get(name).await?;
                assert_eq!(
                    p.metadata
                        .annotations
                        .unwrap_or_default()
                        .get("meta.helm.sh/release-name"),
                    Some(&r.name),
                    "{name} installed by the release"
                );
                mapbs.get(name).await?;
            }
        }
        // the Deployment's pods never run here (no kubelet): that is expected

        // upgrade: one replica, text logs, a second policy
        let second = unique("chart-policy");
        let (_upgrade_dir, upgrade) = values_file(
            "upgrade.yaml",
            &json!({"replicas": 1, "logging": {"format": "text"},
                "policies": {"items": [
                    {"name": policy, "domain": scope, "policies": "@id(\"chart-test\")\n@reason(\"r\")\npermit (principal, action == DataMesh::Action::\"Read\", resource);\n"},
                    {"name": second, "domain": scope, "policies": "@id(\"chart-test-2\")\n@reason(\"r\")\npermit (principal, action == DataMesh::Action::\"Read\", resource);\n"}
                ]}}),
        )?;
        let chart = chart_dir().to_string_lossy().to_string();
        helm_ok(&["upgrade", &r.name, &chart, "--namespace", ns, "-f", &upgrade])?;
        let d = Api::<Deployment>::namespaced(client.clone(), ns).get(&full).await?;
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(1));
        let env = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers.into_iter().next())
            .and_then(|c| c.env)
            .unwrap_or_default();
        assert!(
            env.iter()
                .any(|e| e.name == "DATAMESH_LOG_FORMAT" && e.value.as_deref() == Some("text"))
        );
        gps.get(&second).await?;
        let history = helm_ok(&["history", &r.name, "--namespace", ns, "-o", "json"])?;
        let history: Vec<Value> = serde_json::from_str(&history)?;
        assert_eq!(history.len(), 2, "{history:?}");

        // a bad value in an upgrade is refused and changes nothing
        let out = helm(&["upgrade", &r.name, &chart, "--namespace", ns, "--set", "replicas=two"])?;
        assert!(!out.status.success());
        let history = helm_ok(&["history", &r.name, "--namespace", ns, "-o", "json"])?;
        assert_eq!(serde_json::from_str::<Vec<Value>>(&history)?.len(), 2);

        // uninstall: the release's objects go; CRDs and the audit claim stay
        helm_ok(&["uninstall", &r.name, "--namespace", ns])?;
        wait_for(WAIT, || {
            let (c, full, policy) = (client.clone(), full.clone(), policy.clone());
            async move {
                let deployment = Api::<Deployment>::namespaced(c.clone(), ns).get_opt(&full).await.ok()?;
                let role = Api::<ClusterRole>::all(c.clone()).get_opt(&full).await.ok()?;
                let gp = Api::<GovernancePolicy>::all(c).get_opt(&policy).await.ok()?;
                (deployment.is_none() && role.is_none() && gp.is_none()).then_some(())
            }
        })
        .await
        .context("release objects removed by uninstall")?;
        if mutating {
            for name in FINALIZER_POLICIES {
                assert!(maps.get_opt(name).await?.is_none(), "{name} left behind");
            }
        }
        let crds = Api::<CustomResourceDefinition>::all(client.clone());
        for crd in [
            "domains.datamesh.dev",
            "licences.datamesh.dev",
            "dataproducts.datamesh.dev",
            "datasharingagreements.datamesh.dev",
            "agreementapprovals.datamesh.dev",
            "governancepolicies.datamesh.dev",
        ] {
            assert!(crds.get_opt(crd).await?.is_some(), "CRD {crd} kept");
        }
        assert!(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                .get_opt(&format!("{full}-audit"))
                .await?
                .is_some(),
            "the audit claim outlives the release"
        );
        anyhow::Ok(())
    }
    .await;
    r.cleanup().await;
    install_admission(&client).await?;
    result
}

/// A kubeconfig that authenticates with a token of the release's ServiceAccount.
async fn service_account_kubeconfig(
    client: &Client,
    r: &Release,
) -> Result<(tempfile::TempDir, PathBuf)> {
    let tr: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))?;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &r.ns)
        .create_token_request(&r.fullname(), &PostParams::default(), &tr)
        .await?
        .status
        .map(|s| s.token)
        .ok_or_else(|| anyhow!("TokenRequest returned no token"))?;
    let admin: Value = serde_yaml::from_str(&std::fs::read_to_string(admin_kubeconfig()?)?)?;
    let cluster = &admin["clusters"][0]["cluster"];
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "operator",
    });
    let dir = temp_dir("datamesh-sa")?;
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kc)?)?;
    Ok((dir, path))
}

async fn phase(
    api: &Api<DataSharingAgreement>,
    name: &str,
    want: AgreementPhase,
) -> Result<DataSharingAgreement> {
    wait_for(WAIT, || async move {
        let a = api.get(name).await.ok()?;
        (a.status.as_ref()?.phase == Some(want)).then_some(a)
    })
    .await
    .with_context(|| format!("agreement {name} never reached {want:?}"))
}

fn ready(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test]
async fn chart_rbac_is_enough_for_a_full_agreement_lifecycle() -> Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    install_admission(&client).await?;
    let r = Release::install(
        &client,
        "dm-rbac",
        &["--set", "replicas=1", "--set", "admission.enabled=false"],
    )
    .await?;
    let provider = unique("transport");
    let consumer = unique("mobility");
    let (provider_ns, consumer_ns, licence) =
        (unique("transport"), unique("mobility"), unique("ogl"));
    let result = async {
        // the chart's ServiceAccount identity, nothing else
        let (scratch, kc) = service_account_kubeconfig(&client, &r).await?;
        let lease = "datamesh-operator".to_string();
        let instance = unique("operator");
        let audit_dir = scratch.path().to_path_buf();
        let audit = format!("sqlite://{}/audit.db?mode=rwc", audit_dir.display());
        let op = Operator::start_with(
            &kc,
            &[
                "--audit-url",
                &audit,
                "--lease-namespace",
                &r.ns,
                "--lease-name",
                &lease,
                "--lease-seconds",
                "4",
                "--instance",
                &instance,
            ],
        )
        .await?;
        wait_for(WAIT, || async {
            (op.counter("datamesh_leader", "").await.ok()? == 1.0).then_some(())
        })
        .await
        .context("the operator took its Lease with the chart's Role")?;

        create_namespace(&client, &provider_ns).await?;
        create_namespace(&client, &consumer_ns).await?;
        // the products' postgres port: a real table and its admin Secret (made by the admin)
        pg::fixture_store(&client, &provider_ns).await?;
        create(
            &Api::<Licence>::all(client.clone()),
            fixtures::licence(&licence),
        )
        .await?;
        let domains = Api::<Domain>::all(client.clone());
        create(
            &domains,
            fixtures::domain_with(&provider, &[&provider_ns], "public", &["dpia-process"]),
        )
        .await?;
        create(
            &domains,
            fixtures::domain_with(&consumer, &[&consumer_ns], "public", &[]),
        )
        .await?;
        for d in [&provider, &consumer] {
            let domains = domains.clone();
            wait_for(WAIT, || {
                let domains = domains.clone();
                async move {
                    let d = domains.get(d).await.ok()?;
                    ready(d.status.as_ref().map(|s| &s.conditions)).then_some(())
                }
            })
            .await
            .with_context(|| format!("domain {d} Ready"))?;
        }
        // the operator (as the chart's identity) gave the teams their Roles
        let bindings = Api::<RoleBinding>::namespaced(client.clone(), &provider_ns);
        wait_for(WAIT, || {
            let b = bindings.clone();
            async move { b.get("datamesh-domain-team").await.ok() }
        })
        .await
        .context("team RoleBinding created by the operator")?;

        let products = Api::<DataProduct>::namespaced(client.clone(), &provider_ns);
        for (name, classification) in [("bus", "open"), ("fares", "restricted")] {
            let mut p = fixtures::product(name, &provider_ns, &provider, &licence);
            p["spec"]["classification"] = json!(classification);
            create(&products, p).await?;
            let products = products.clone();
            wait_for(WAIT, || {
                let products = products.clone();
                async move {
                    let p = products.get(name).await.ok()?;
                    ready(p.status.as_ref().map(|s| &s.conditions)).then_some(())
                }
            })
            .await
            .with_context(|| format!("product {name} Ready"))?;
        }

        let agreements = Api::<DataSharingAgreement>::namespaced(client.clone(), &consumer_ns);
        for (name, product) in [("plan", "bus"), ("study", "fares")] {
            create(
                &agreements,
                fixtures::agreement(
                    name,
                    &consumer_ns,
                    &consumer,
                    (&provider_ns, product),
                    (&licence, "3.0"),
                    "2027-06-30T00:00:00Z",
                ),
            )
            .await?;
        }
        phase(&agreements, "plan", AgreementPhase::Active).await?;
        phase(&agreements, "study", AgreementPhase::PendingApproval).await?;

        // the provider approves through the team Role the operator granted
        let approver = unique("pat");
        let provider_kc = user_kubeconfig(&approver, &[&format!("datamesh:{provider}")])?;
        let as_provider =
            Api::<AgreementApproval>::namespaced(client_from(&provider_kc).await?, &provider_ns);
        create(
            &as_provider,
            fixtures::approval("ok", &provider_ns, (&consumer_ns, "study"), &approver, true),
        )
        .await?;
        phase(&agreements, "study", AgreementPhase::Active).await?;

        // granted where the data lives: credentials Secrets written as the chart's identity
        let secrets =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &consumer_ns);
        let mut credentials = Vec::new();
        for name in ["plan", "study"] {
            let a = agreements.get(name).await?;
            let secret = a
                .status
                .and_then(|s| s.credentials_secret)
                .ok_or_else(|| anyhow!("agreement {name} names no credentials Secret"))?;
            assert!(
                secrets.get_opt(&secret).await?.is_some(),
                "Secret {secret} exists"
            );
            credentials.push(secret);
        }

        // deleting the products revokes their agreements (finalizers as the chart's identity)
        for (product, agreement) in [("bus", "plan"), ("fares", "study")] {
            products.delete(product, &DeleteParams::default()).await?;
            phase(&agreements, agreement, AgreementPhase::Revoked).await?;
        }
        for secret in &credentials {
            assert!(
                secrets.get_opt(secret).await?.is_none(),
                "Secret {secret} deleted on revocation"
            );
        }
        wait_for(WAIT, || {
            let products = products.clone();
            async move {
                products
                    .list(&Default::default())
                    .await
                    .ok()?
                    .items
                    .is_empty()
                    .then_some(())
            }
        })
        .await
        .context("products gone once their agreements were revoked")?;
        op.kill().await?;

        // ... and nothing more: what the identity may not do
        let c = &client;
        let other = unique("elsewhere");
        for (what, verb, ns, name, allowed) in [
            (("", "secrets", ""), "list", None, None, false),
            (
                ("", "secrets", ""),
                "watch",
                Some(provider_ns.as_str()),
                None,
                false,
            ),
            (
                ("", "secrets", ""),
                "get",
                Some(provider_ns.as_str()),
                Some("transport-db"),
                true,
            ),
            (("", "pods", ""), "create", Some(r.ns.as_str()), None, false),
            (
                ("", "namespaces", ""),
                "delete",
                None,
                Some(provider_ns.as_str()),
                false,
            ),
            (
                ("rbac.authorization.k8s.io", "clusterroles", ""),
                "create",
                None,
                None,
                false,
            ),
            (
                ("rbac.authorization.k8s.io", "clusterrolebindings", ""),
                "create",
                None,
                None,
                false,
            ),
            (
                ("rbac.authorization.k8s.io", "roles", ""),
                "escalate",
                Some(provider_ns.as_str()),
                None,
                false,
            ),
            (
                ("rbac.authorization.k8s.io", "roles", ""),
                "bind",
                Some(provider_ns.as_str()),
                None,
                false,
            ),
            (
                ("rbac.authorization.k8s.io", "roles", ""),
                "delete",
                Some(provider_ns.as_str()),
                None,
                false,
            ),
            (("", "users", ""), "impersonate", None, None, false),
            (
                ("coordination.k8s.io", "leases", ""),
                "patch",
                Some(r.ns.as_str()),
                Some(lease.as_str()),
                true,
            ),
            (
                ("coordination.k8s.io", "leases", ""),
                "patch",
                Some(r.ns.as_str()),
                Some(other.as_str()),
                false,
            ),
            (
                ("coordination.k8s.io", "leases", ""),
                "create",
                Some(provider_ns.as_str()),
                None,
                false,
            ),
            (("datamesh.dev", "domains", ""), "delete", None, None, false),
            (
                ("datamesh.dev", "licences", ""),
                "update",
                None,
                None,
                false,
            ),
            (
                ("apiextensions.k8s.io", "customresourcedefinitions", ""),
                "update",
                None,
                None,
                false,
            ),
        ] {
            assert_eq!(
                sa_can(c, &r, what, verb, ns, name).await?,
                allowed,
                "{verb} {what:?} in {ns:?} name {name:?}"
            );
        }
        anyhow::Ok(())
    }
    .await;
    delete_namespace(&client, &provider_ns).await;
    delete_namespace(&client, &consumer_ns).await;
    for d in [&provider, &consumer] {
        let _ = Api::<Domain>::all(client.clone())
            .delete(d, &Default::default())
            .await;
    }
    let _ = Api::<Licence>::all(client.clone())
        .delete(&licence, &Default::default())
        .await;
    r.cleanup().await;
    result
}
