//! The walk-through in examples/README.md, run as a test command by command:
//! every `kubectl` (and `kubectl datamesh`) command of its ```sh blocks runs
//! against the real API server with the operator running and the built
//! kubectl-datamesh on PATH, and must exit 0; the agreement the walk-through
//! requests and approves with the plugin must end up Active. Setup lines that
//! are not kubectl (starting the cluster, Postgres, the operator) are what
//! this harness does itself.

use datamesh_crds::{AgreementPhase, DataSharingAgreement};
use datamesh_e2e::{
    Operator, admin, admin_kubeconfig, install_crds, repo_root, wait_for, workspace_bin,
};
use kube::Api;
use kube::api::DeleteParams;
use std::time::Duration;

/// Logical shell commands of the ```sh blocks: `\` continuations joined,
/// heredoc bodies kept with their command, comments dropped.
fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    let mut heredoc: Option<String> = None;
    for raw in markdown.lines() {
        let line = raw.trim();
        if line.starts_with("```") {
            in_block = line == "```sh" && !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(end) = &heredoc {
            current.push('\n');
            current.push_str(raw.trim_start_matches("   "));
            if line == end {
                out.push(std::mem::take(&mut current));
                heredoc = None;
            }
            continue;
        }
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            current.push_str(stripped.trim_end());
            current.push(' ');
            continue;
        }
        current.push_str(line);
        if let Some(i) = current.find("<<") {
            let marker = current[i + 2..]
                .trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .to_string();
            heredoc = Some(marker);
            continue;
        }
        out.push(std::mem::take(&mut current));
    }
    out
}

#[tokio::test]
async fn readme_walkthrough_reaches_an_active_agreement_with_the_plugin() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    // the walk-through's `psql ... -f seed.sql` step, done by the harness
    datamesh_e2e::pg::seed_city().await?;
    let kubeconfig = admin_kubeconfig()?;
    let plugin = workspace_bin("kubectl-datamesh")?;
    let bin_dir = plugin.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The Lease name `status` looks for; the namespace is the operator's default.
    let _operator = Operator::start_with(
        &kubeconfig,
        &["--lease-name", "datamesh-operator", "--lease-seconds", "4"],
    )
    .await?;

    // A rerun on the same cluster starts from no agreement of that name.
    let dsas: Api<DataSharingAgreement> = Api::namespaced(client.clone(), "urban-observatory");
    if dsas
        .get_opt("ward-referrals-study")
        .await
        .ok()
        .flatten()
        .is_some()
    {
        dsas.delete("ward-referrals-study", &DeleteParams::default())
            .await?;
        wait_for(Duration::from_secs(30), || {
            let dsas = dsas.clone();
            async move {
                match dsas.get_opt("ward-referrals-study").await {
                    Ok(None) => Some(()),
                    _ => None,
                }
            }
        })
        .await?;
    }

    let readme = std::fs::read_to_string(repo_root().join("examples/README.md"))?;
    let all = commands(&readme);
    let kubectl: Vec<&String> = all.iter().filter(|c| c.starts_with("kubectl ")).collect();
    for needed in [
        "kubectl datamesh catalog",
        "kubectl datamesh request",
        "kubectl datamesh approve",
        "kubectl datamesh explain",
        "kubectl datamesh agreements",
    ] {
        assert!(
            kubectl.iter().any(|c| c.starts_with(needed)),
            "the walk-through no longer uses `{needed}`"
        );
    }
    for cmd in kubectl {
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .current_dir(repo_root())
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "walk-through command failed ({}):\n$ {cmd}\n{stdout}\n{stderr}",
            out.status
        );
        println!("$ {cmd}\n{stdout}");
    }

    let dsa = dsas.get("ward-referrals-study").await?;
    let status = dsa.status.unwrap_or_default();
    assert_eq!(status.phase, Some(AgreementPhase::Active), "{status:?}");
    let approval = status.approval.unwrap_or_default();
    assert_eq!(approval.decision, "Approved");
    assert!(!approval.by.is_empty());
    Ok(())
}

#[test]
fn command_parser_joins_continuations_and_heredocs() {
    let md = "text\n```sh\nkubectl a \\\n  b\n# note\nkubectl apply -f - <<EOF\n   x: 1\n   EOF\n```\n```yaml\nkubectl no\n```\n";
    let cmds = commands(md);
    assert_eq!(
        cmds,
        vec![
            "kubectl a b".to_string(),
            "kubectl apply -f - <<EOF\nx: 1\nEOF".to_string()
        ]
    );
}
