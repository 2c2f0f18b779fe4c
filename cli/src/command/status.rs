//! `kubectl datamesh status`: is the operator running and leading, are the
//! governance policies valid, which policy set is in force, and how many
//! agreements and products are in each state. Exit 1 when something needs attention.

use super::{Exit, policy_set};
use crate::cluster::{CliError, Cluster, Op};
use crate::output::{self, OutputArgs, Table};
use clap::Args;
use datamesh_crds::condition::{READY, VALID, get, is_true};
use datamesh_crds::{DataProduct, DataSharingAgreement};
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;
use std::collections::BTreeMap;

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Namespace of the operator's leader-election Lease (when the Lease is
    /// not there and this flag is not given, `default` is tried: a locally run operator).
    #[arg(long, value_name = "NS")]
    operator_namespace: Option<String>,
    /// Name of the operator's leader-election Lease.
    #[arg(long, default_value = "datamesh-operator")]
    lease_name: String,
    #[command(flatten)]
    output: OutputArgs,
}

const DEFAULT_OPERATOR_NAMESPACE: &str = "datamesh-system";

/// What the Lease says about the operator.
struct Leader {
    namespace: String,
    holder: Option<String>,
    renewed: Option<jiff::Timestamp>,
    fresh: bool,
}

async fn leader(cluster: &Cluster, args: &StatusArgs) -> Result<Option<Leader>, CliError> {
    let mut candidates = vec![
        args.operator_namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_OPERATOR_NAMESPACE.to_string()),
    ];
    if args.operator_namespace.is_none() {
        candidates.push("default".to_string());
    }
    for ns in candidates {
        let api: kube::Api<Lease> = kube::Api::namespaced(cluster.client.clone(), &ns);
        let lease = api.get_opt(&args.lease_name).await.map_err(|e| {
            cluster.error(
                Op::on("get", "leases", "Lease", Some(&ns), &args.lease_name),
                e,
            )
        })?;
        if let Some(lease) = lease {
            let spec = lease.spec.unwrap_or_default();
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let fresh = renewed.is_some_and(|r| {
                jiff::Timestamp::now().duration_since(r)
                    <= jiff::SignedDuration::from_secs(duration)
            });
            return Ok(Some(Leader {
                namespace: ns,
                holder: spec.holder_identity.filter(|h| !h.is_empty()),
                renewed,
                fresh,
            }));
        }
    }
    Ok(None)
}

/// Runs `status`.
pub async fn run(cluster: &Cluster, args: &StatusArgs) -> Result<Exit, CliError> {
    let agreements: Vec<DataSharingAgreement> = cluster.list_in(None).await?;
    let products: Vec<DataProduct> = cluster.list_in(None).await?;
    let set = policy_set::load(cluster).await?;
    let leader = leader(cluster, args).await?;

    let mut phases: BTreeMap<&'static str, usize> = BTreeMap::new();
    for d in &agreements {
        let p = d
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map(|p| p.as_str())
            .unwrap_or("Pending");
        *phases.entry(p).or_default() += 1;
    }
    let ready = products
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, READY))
        })
        .count();
    let policies: Vec<(String, String, String, u32)> = set
        .objects
        .iter()
        .map(|gp| {
            let status = gp.status.clone().unwrap_or_default();
            let valid = get(&status.conditions, VALID);
            (
                gp.metadata.name.clone().unwrap_or_default(),
                valid
                    .map(|c| c.status.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                valid.map(|c| c.message.clone()).unwrap_or_default(),
                status.policy_count.unwrap_or(0),
            )
        })
        .collect();
    let invalid = policies.iter().filter(|p| p.1 != "True").count();
    let healthy = leader
        .as_ref()
        .is_some_and(|l| l.fresh && l.holder.is_some());

    if !args.output.human() {
        let doc = json!({
            "operator": {
                "healthy": healthy,
                "leaseNamespace": leader.as_ref().map(|l| l.namespace.clone()),
                "leader": leader.as_ref().and_then(|l| l.holder.clone()),
                "renewTime": leader.as_ref().and_then(|l| l.renewed.map(|t| t.to_string())),
            },
            "policySetVersion": set.engine.version(),
            "governancePolicies": policies.iter().map(|(n, v, m, c)| json!({"name": n, "valid": v, "message": m, "policies": c})).collect::<Vec<_>>(),
            "agreements": phases,
            "products": {"total": products.len(), "ready": ready},
        });
        output::print_document(args.output.output, &doc)?;
    } else {
        println!("Operator:");
        match &leader {
            Some(l) => {
                output::field(
                    "Health",
                    output::paint(if healthy { "healthy" } else { "unhealthy" }),
                );
                output::field("Leader", l.holder.as_deref().unwrap_or("none"));
                output::field(
                    "Lease",
                    format!(
                        "{}/{}, renewed {}",
                        l.namespace,
                        args.lease_name,
                        l.renewed
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "never".into())
                    ),
                );
                if !healthy {
                    output::field(
                        "Next step",
                        "the leader stopped renewing its Lease: check the operator's pods and log",
                    );
                }
            }
            None => {
                output::field("Health", output::paint("unhealthy"));
                output::field(
                    "Next step",
                    format!(
                        "no Lease {} found: is the operator running? (helm install datamesh charts/datamesh, or --operator-namespace NS)",
                        args.lease_name
                    ),
                );
            }
        }
        println!();
        println!("Policies:");
        output::field("Policy set version", set.engine.version());
        if let Some(note) = &set.note {
            output::field("Note", note);
        }
        if policies.is_empty() {
            output::field("GovernancePolicies", "none (the shipped defaults apply)");
        } else {
            let mut t = Table::new(&["governancepolicy", "valid", "policies", "message"]);
            for (n, v, m, c) in &policies {
                t.row(vec![n.clone(), v.clone(), c.to_string(), m.clone()]);
            }
            for line in t.render().lines() {
                println!("  {line}");
            }
        }
        println!();
        println!("Agreements:");
        if phases.is_empty() {
            output::field("Total", 0);
        }
        for (p, n) in &phases {
            output::field(p, n);
        }
        println!();
        println!("Data products:");
        output::field("Total", products.len());
        output::field("Ready", ready);
        output::field("Not ready", products.len() - ready);
    }
    Ok(if healthy && invalid == 0 {
        Exit::Ok
    } else {
        Exit::Failed
    })
}
