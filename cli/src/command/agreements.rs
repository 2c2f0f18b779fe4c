//! `kubectl datamesh agreements | approve | deny | revoke`: agreements and
//! the provider's answers to them.
//!
//! Approving and denying create an AgreementApproval in the product's
//! namespace with `spec.approver` set to the caller as the API server knows
//! them (SelfSubjectReview), because the API server's admission policy refuses
//! any other approver, and RBAC lets only the provider's team create it there.
//!
//! `revoke` is the provider's act: a Deny answer on an Active agreement,
//! which the operator turns into Revoked (with the reason, in the audit
//! trail). A consumer who no longer wants the data uses `revoke --withdraw`,
//! which deletes its own agreement; the operator's finalizer then revokes the grant.

use super::Exit;
use super::request::{report_phase, wait_for_phase};
use crate::cluster::{CliError, Cluster, Op, split_ref};
use crate::output::{self, OutputArgs, Table, truncate};
use clap::Args;
use datamesh_crds::approval::ApprovalDecision;
use datamesh_crds::{
    AgreementApproval, AgreementApprovalSpec, AgreementPhase, DataSharingAgreement, ObjectRef,
};
use kube::api::{DeleteParams, PostParams};

/// Arguments of `agreements`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only agreements on this product (NAMESPACE/NAME); implies -A.
    #[arg(long, value_name = "NS/NAME")]
    product: Option<String>,
    /// Only agreements in this phase.
    #[arg(long)]
    phase: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `approve` and `deny`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The agreement: NAME (in -n NAMESPACE, the consumer's) or NAMESPACE/NAME.
    agreement: String,
    /// Why; recorded in the agreement's status and the audit trail.
    #[arg(long)]
    reason: String,
    /// Seconds to wait for the operator to act on the answer (0: do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    wait: u64,
}

/// Arguments of `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The agreement: NAME (in -n NAMESPACE, the consumer's) or NAMESPACE/NAME.
    agreement: String,
    /// Why; recorded in the agreement's status and the audit trail.
    #[arg(long)]
    reason: Option<String>,
    /// As the consumer: withdraw by deleting your own agreement (access ends at once).
    #[arg(long)]
    withdraw: bool,
    /// Seconds to wait for the operator to revoke (0: do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    wait: u64,
}

/// Runs `agreements`.
pub async fn list(cluster: &Cluster, args: &ListArgs) -> Result<Exit, CliError> {
    let product = match &args.product {
        Some(p) => Some(split_ref(p, cluster)?),
        None => None,
    };
    let scope = if product.is_some() {
        None
    } else {
        cluster.list_scope()
    };
    let mut items: Vec<DataSharingAgreement> = cluster.list_in(scope).await?;
    items.retain(|d| {
        product
            .as_ref()
            .is_none_or(|(ns, n)| d.spec.product.namespace == *ns && d.spec.product.name == *n)
            && args
                .phase
                .as_deref()
                .is_none_or(|p| phase(d).eq_ignore_ascii_case(p))
    });
    items.sort_by_key(|d| (d.metadata.namespace.clone(), d.metadata.name.clone()));
    if !args.output.human() {
        for d in &mut items {
            d.metadata.managed_fields = None;
        }
        output::print_list(args.output.output, &items)?;
        return Ok(Exit::Ok);
    }
    let all = scope.is_none();
    let mut headers = vec![];
    if all {
        headers.push("namespace");
    }
    headers.extend(["name", "consumer", "product", "purpose", "phase", "until"]);
    if args.output.wide() {
        headers.extend(["fields", "approval"]);
    }
    headers.push("reason");
    let mut table = Table::new(&headers);
    for d in &items {
        let status = d.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if all {
            row.push(d.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(d.metadata.name.clone().unwrap_or_default());
        row.push(d.spec.consumer.clone());
        row.push(d.spec.product.to_string());
        row.push(d.spec.purpose.0.clone());
        row.push(phase(d).to_string());
        row.push(
            status
                .active_until
                .clone()
                .unwrap_or_else(|| "-".to_string()),
        );
        if args.output.wide() {
            row.push(
                d.spec
                    .fields
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            row.push(
                status
                    .approval
                    .as_ref()
                    .map(|a| format!("{} by {}", a.decision, a.by))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        let first = status
            .decision
            .as_ref()
            .and_then(|dec| dec.reasons.first())
            .map(|r| format!("{}: {}", r.id, r.message))
            .unwrap_or_else(|| "-".into());
        row.push(if args.output.wide() {
            first
        } else {
            truncate(&first, 70)
        });
        table.row(row);
    }
    let empty = match scope {
        Some(ns) => format!("No agreements in namespace {ns}."),
        None => "No agreements found.".to_string(),
    };
    table.print_or(&empty);
    Ok(Exit::Ok)
}

fn phase(d: &DataSharingAgreement) -> &'static str {
    d.status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| p.as_str())
        .unwrap_or("Pending")
}

/// Runs `approve` (`decision` Approve) or `deny` (Deny).
pub async fn answer(
    cluster: &Cluster,
    args: &AnswerArgs,
    decision: ApprovalDecision,
) -> Result<Exit, CliError> {
    let (ns, name) = split_ref(&args.agreement, cluster)?;
    let dsa: DataSharingAgreement = cluster.get_in(&ns, &name).await?;
    let before = dsa.status.as_ref().and_then(|s| s.phase);
    if before.is_some_and(|p| p.is_final()) {
        return Err(CliError::Input(format!(
            "agreement {ns}/{name} is {} and cannot change any more; the consumer can request again",
            phase(&dsa)
        )));
    }
    create_answer(cluster, &dsa, &ns, &name, decision, &args.reason).await?;
    let api: kube::Api<DataSharingAgreement> = kube::Api::namespaced(cluster.client.clone(), &ns);
    let want = match decision {
        ApprovalDecision::Approve => {
            |p: AgreementPhase| p == AgreementPhase::Active || p.is_final()
        }
        ApprovalDecision::Deny => |p: AgreementPhase| p.is_final(),
    };
    if let Some(after) = wait_for_phase(&api, &name, args.wait, want).await {
        report_phase(&after, &ns, &name, args.wait);
    }
    Ok(Exit::Ok)
}

/// Creates the AgreementApproval in the product's namespace.
async fn create_answer(
    cluster: &Cluster,
    dsa: &DataSharingAgreement,
    ns: &str,
    name: &str,
    decision: ApprovalDecision,
    reason: &str,
) -> Result<(), CliError> {
    let approver = cluster.whoami().await?;
    let provider_ns = dsa.spec.product.namespace.clone();
    let verb = match decision {
        ApprovalDecision::Approve => "approve",
        ApprovalDecision::Deny => "deny",
    };
    // generateName keeps every answer: a later one supersedes, none is overwritten
    let mut prefix: String = format!("{name}-{verb}-");
    if prefix.len() > 200 {
        prefix = format!("{}-{verb}-", &name[..name.len().min(180)]);
    }
    let approval = AgreementApproval {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(prefix),
            namespace: Some(provider_ns.clone()),
            ..Default::default()
        },
        spec: AgreementApprovalSpec {
            agreement: ObjectRef {
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            decision,
            approver: approver.clone(),
            reason: Some(reason.to_string()),
        },
        status: None,
    };
    let api: kube::Api<AgreementApproval> =
        kube::Api::namespaced(cluster.client.clone(), &provider_ns);
    let created = api
        .create(&PostParams::default(), &approval)
        .await
        .map_err(|e| {
            cluster.error(
                Op {
                    verb: "create",
                    resource: "agreementapprovals",
                    kind: "AgreementApproval",
                    name: None,
                    namespace: Some(&provider_ns),
                },
                e,
            )
        })?;
    println!(
        "agreementapproval {provider_ns}/{} created: {} {ns}/{name} as {approver}",
        created.metadata.name.unwrap_or_default(),
        match decision {
            ApprovalDecision::Approve => "approved",
            ApprovalDecision::Deny => "denied",
        }
    );
    Ok(())
}

/// Runs `revoke`.
pub async fn revoke(cluster: &Cluster, args: &RevokeArgs) -> Result<Exit, CliError> {
    let (ns, name) = split_ref(&args.agreement, cluster)?;
    let dsa: DataSharingAgreement = cluster.get_in(&ns, &name).await?;
    let api: kube::Api<DataSharingAgreement> = kube::Api::namespaced(cluster.client.clone(), &ns);
    if args.withdraw {
        api.delete(&name, &DeleteParams::default())
            .await
            .map_err(|e| {
                cluster.error(
                    Op::on(
                        "delete",
                        "datasharingagreements",
                        "DataSharingAgreement",
                        Some(&ns),
                        &name,
                    ),
                    e,
                )
            })?;
        println!("datasharingagreement {ns}/{name} deleted: access is revoked");
        return Ok(Exit::Ok);
    }
    if phase(&dsa) != AgreementPhase::Active.as_str() {
        return Err(CliError::Input(format!(
            "agreement {ns}/{name} is {}, not Active: use kubectl datamesh deny to refuse a pending one",
            phase(&dsa)
        )));
    }
    let reason = args
        .reason
        .as_deref()
        .ok_or_else(|| CliError::Input("--reason is required to revoke as the provider".into()))?;
    create_answer(cluster, &dsa, &ns, &name, ApprovalDecision::Deny, reason).await?;
    if let Some(after) = wait_for_phase(&api, &name, args.wait, |p| p.is_final()).await {
        report_phase(&after, &ns, &name, args.wait);
    }
    Ok(Exit::Ok)
}
