//! kubectl-datamesh against the real API server, with the operator running
//! and examples/city applied: the output of catalog, catalog show,
//! agreements, explain and status (snapshots in cli/tests/snapshots/e2e-*.txt,
//! policy-set hashes and times normalised; `UPDATE_SNAPSHOTS=1` rewrites
//! them), the provider's deny and revoke, and errors that say what to do next.

use datamesh_crds::{AgreementPhase, DataSharingAgreement};
use datamesh_e2e::{
    Operator, admin, admin_kubeconfig, install_crds, repo_root, temp_dir, unique, user_kubeconfig,
    wait_for, workspace_bin,
};
use kube::Api;
use std::path::Path;
use std::time::Duration;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the plugin with this kubeconfig, no colour, from the repository root.
async fn plugin(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let out = tokio::process::Command::new(workspace_bin("kubectl-datamesh")?)
        .args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .await?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Replaces what differs between runs: policy-set hashes and RFC 3339 times
/// written by the cluster (`at ...Z`, `renewed ...Z`).
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i]);
        out.push_str("sha256:<version>");
        rest = rest[i + 7..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

fn snapshot(name: &str, raw: &str) {
    let actual = normalise(raw);
    let path = repo_root()
        .join("cli/tests/snapshots")
        .join(format!("e2e-{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: String = expected
            .lines()
            .zip(actual.lines().chain(std::iter::repeat("")))
            .filter(|(e, a)| e != a)
            .take(10)
            .map(|(e, a)| format!("- {e}\n+ {a}\n"))
            .collect();
        panic!("{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept):\n{diff}");
    }
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn phase_of(api: &Api<DataSharingAgreement>, name: &str, want: AgreementPhase) {
    let found = wait_for(Duration::from_secs(60), || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let d = api.get(&name).await.ok()?;
            (d.status?.phase? == want).then_some(())
        }
    })
    .await;
    assert!(found.is_ok(), "{name} did not become {want:?}");
}

#[tokio::test]
async fn plugin_against_the_city() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    let kc = admin_kubeconfig()?;
    let _operator = Operator::start_with(
        &kc,
        &["--lease-name", "datamesh-operator", "--lease-seconds", "4"],
    )
    .await?;
    // the example's products live in the test PostgreSQL: grants need their tables
    datamesh_e2e::pg::seed_city().await?;
    kubectl(&kc, &["apply", "-f", "examples/city/"]).await?;
    kubectl(&kc, &["apply", "-f", "examples/city/agreements/"]).await?;
    let civic: Api<DataSharingAgreement> = Api::namespaced(client.clone(), "civic-mobility");
    // agreements a failed earlier run of this test left behind
    for d in civic.list(&Default::default()).await? {
        let n = d.metadata.name.unwrap_or_default();
        if n.starts_with("cli-") {
            civic.delete(&n, &Default::default()).await?;
        }
    }
    phase_of(
        &civic,
        "social-care-clients-for-marketing",
        AgreementPhase::Denied,
    )
    .await;
    phase_of(
        &civic,
        "bus-punctuality-for-feeder-planning",
        AgreementPhase::Active,
    )
    .await;
    phase_of(
        &civic,
        "business-rates-for-flexi-stops",
        AgreementPhase::PendingApproval,
    )
    .await;
    let tp: Api<DataSharingAgreement> = Api::namespaced(client.clone(), "transport-planning");
    phase_of(
        &tp,
        "air-quality-for-clean-air-zone",
        AgreementPhase::Active,
    )
    .await;
    // its product's port says consumerAuth: certificate
    let keys: Vec<String> =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "transport-planning")
            .get("air-quality-for-clean-air-zone-credentials")
            .await?
            .data
            .unwrap_or_default()
            .into_keys()
            .collect();
    assert!(
        keys.iter().any(|k| k == "tls.crt") && !keys.iter().any(|k| k == "password"),
        "a certificate, no password: {keys:?}"
    );

    // The catalogue lists the published city products and searches their text.
    let r = plugin(&kc, &["catalog"]).await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    for p in [
        "transport/bus-punctuality",
        "environment/air-quality-readings",
        "social-care/case-records",
    ] {
        assert!(r.stdout.contains(p), "catalog lacks {p}:\n{}", r.stdout);
    }
    assert!(
        !r.stdout.contains("diffusion-tube-no2-annual"),
        "deprecated products are not listed by default"
    );
    let r = plugin(
        &kc,
        &["catalog", "air", "quality", "--classification", "open"],
    )
    .await?;
    assert!(
        r.stdout.contains("environment/air-quality-readings"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("transport/bus-punctuality"),
        "{}",
        r.stdout
    );
    let r = plugin(&kc, &["catalog", "--all-stages", "--domain", "environment"]).await?;
    assert!(
        r.stdout.contains("diffusion-tube-no2-annual"),
        "{}",
        r.stdout
    );

    // The DCAT export holds the open products only.
    let r = plugin(&kc, &["catalog", "export", "--format", "dcat"]).await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dcat: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(dcat["@type"], "dcat:Catalog");
    let ids = dcat["dcat:dataset"].to_string();
    assert!(ids.contains("bus-punctuality"), "{ids}");
    assert!(
        !ids.contains("case-records"),
        "personal data in the open catalogue: {ids}"
    );

    let r = plugin(
        &kc,
        &["catalog", "show", "environment/air-quality-readings"],
    )
    .await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot("catalog-show", &r.stdout);

    let r = plugin(&kc, &["agreements", "-n", "civic-mobility"]).await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot("agreements", &r.stdout);

    let r = plugin(
        &kc,
        &[
            "explain",
            "civic-mobility/social-care-clients-for-marketing",
        ],
    )
    .await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot("explain-denied", &r.stdout);

    let r = plugin(
        &kc,
        &[
            "explain",
            "-n",
            "civic-mobility",
            "business-rates-for-flexi-stops",
            "-o",
            "json",
        ],
    )
    .await?;
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(doc["phase"], "PendingApproval");
    let hints = doc["whatWouldChangeTheOutcome"].to_string();
    assert!(
        hints.contains("kubectl datamesh approve civic-mobility/business-rates-for-flexi-stops"),
        "{hints}"
    );

    // status: the operator leads, and the counts include the city's agreements.
    let r = plugin(&kc, &["status", "-o", "json"]).await?;
    assert_eq!(
        r.code, 0,
        "status found a problem: {}{}",
        r.stdout, r.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(doc["operator"]["healthy"], true);
    assert!(doc["operator"]["leader"].is_string());
    assert!(
        doc["agreements"]["Active"].as_u64().unwrap_or(0) >= 3,
        "{doc}"
    );
    assert!(
        doc["agreements"]["Denied"].as_u64().unwrap_or(0) >= 3,
        "{doc}"
    );
    assert!(doc["products"]["ready"].as_u64().unwrap_or(0) >= 7, "{doc}");
    assert!(
        doc["policySetVersion"]
            .as_str()
            .unwrap_or("")
            .starts_with("sha256:")
    );
    let r = plugin(&kc, &["status", "--operator-namespace", "nowhere"]).await?;
    assert_eq!(r.code, 1, "no Lease there: unhealthy");
    assert!(
        r.stdout.contains("is the operator running?"),
        "{}",
        r.stdout
    );

    // A provider denies a pending request and revokes an Active one.
    let name = unique("cli-bus");
    let r = plugin(
        &kc,
        &[
            "request",
            "transport/bus-punctuality",
            "-n",
            "civic-mobility",
            "--purpose",
            "service-planning",
            "--fields",
            "route_id,stop_id",
            "--until",
            "2027-01-31",
            "--name",
            &name,
            "--yes",
        ],
    )
    .await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("phase: Active"), "{}", r.stdout);
    let agreement = format!("civic-mobility/{name}");
    let r = plugin(
        &kc,
        &["revoke", &agreement, "--reason", "feeder trial ended"],
    )
    .await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    phase_of(&civic, &name, AgreementPhase::Revoked).await;
    let r = plugin(&kc, &["approve", &agreement, "--reason", "too late"]).await?;
    assert_eq!(r.code, 2, "a Revoked agreement cannot be approved");
    assert!(r.stderr.contains("cannot change any more"), "{}", r.stderr);

    // (its own request, so the city's agreements keep their documented phases)
    let pending = unique("cli-rates");
    let r = plugin(
        &kc,
        &[
            "request",
            "finance/business-rates",
            "-n",
            "civic-mobility",
            "--purpose",
            "service-planning",
            "--fields",
            "ward_code",
            "--until",
            "2027-01-31",
            "--name",
            &pending,
            "--yes",
        ],
    )
    .await?;
    assert!(
        r.stdout.contains("phase: PendingApproval"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let r = plugin(
        &kc,
        &[
            "deny",
            &format!("civic-mobility/{pending}"),
            "--reason",
            "no sharing with the private sector this year",
        ],
    )
    .await?;
    assert_eq!(r.code, 0, "{}", r.stderr);
    phase_of(&civic, &pending, AgreementPhase::Denied).await;
    for n in [&name, &pending] {
        civic.delete(n, &Default::default()).await?;
    }

    // policy diff --live: dropping open-read would deny the city's open-data agreements.
    let proposed_dir = temp_dir("cli-policies")?;
    let proposed = proposed_dir.path();
    for entry in std::fs::read_dir(repo_root().join("policies/cedar"))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let text = match (
            text.find("@id(\"open-read\")"),
            text.find("@id(\"internal-same-sector\")"),
        ) {
            (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b..]),
            _ => text,
        };
        std::fs::write(proposed.join(entry_name(&path)), text)?;
    }
    let old_dir = repo_root().join("policies/cedar");
    let r = plugin(
        &kc,
        &[
            "policy",
            "diff",
            old_dir.to_str().unwrap_or_default(),
            proposed.to_str().unwrap_or_default(),
            "--live",
            "--exit-code",
        ],
    )
    .await?;
    assert_eq!(r.code, 1, "changes found: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("civic-mobility/bus-punctuality-for-feeder-planning: Allow -> Deny"),
        "{}",
        r.stdout
    );

    // Errors say what to do next.
    let r = plugin(
        &kc,
        &["explain", "-n", "civic-mobility", "no-such-agreement"],
    )
    .await?;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(
            "DataSharingAgreement no-such-agreement not found in namespace civic-mobility"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("kubectl datamesh agreements"),
        "{}",
        r.stderr
    );

    let nobody = user_kubeconfig("cli-nobody", &[])?;
    let r = plugin(&nobody, &["agreements", "-n", "civic-mobility"]).await?;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "forbidden: you may not list datasharingagreements in namespace civic-mobility"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("ask the owners of the domain"),
        "{}",
        r.stderr
    );

    let dead_dir = temp_dir("dead-server")?;
    let dead = dead_dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(&kc)?;
    let server_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .unwrap_or_default()
        .to_string();
    std::fs::write(
        &dead,
        text.replace(&server_line, "    server: https://127.0.0.1:1"),
    )?;
    let r = plugin(&dead, &["catalog"]).await?;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot reach the API server https://127.0.0.1:1/"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&dead.display().to_string()),
        "names the kubeconfig: {}",
        r.stderr
    );
    Ok(())
}

fn entry_name(path: &Path) -> std::ffi::OsString {
    path.file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default()
}
