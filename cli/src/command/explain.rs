//! `kubectl datamesh explain AGREEMENT`: the decision on an agreement, every
//! policy and licence term behind it, the provider's answer, and what would
//! change the outcome. The hints live here so that `request --dry-run` gives
//! the same advice.

use super::Exit;
use super::policy_set;
use crate::cluster::{CliError, Cluster, split_ref};
use crate::output::{self, OutputArgs};
use clap::Args;
use datamesh_crds::agreement::ReasonRecord;
use datamesh_crds::{DataProduct, DataSharingAgreement, Licence, LicenceSpec};
use datamesh_policies::PolicyEngine;
use serde_json::json;

/// Arguments of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The agreement: NAME (in -n NAMESPACE) or NAMESPACE/NAME.
    agreement: String,
    #[command(flatten)]
    output: OutputArgs,
}

/// What the hints need to be specific.
pub struct HintContext<'a> {
    /// `ns/name` of the agreement, when it exists.
    pub agreement: Option<String>,
    /// The consumer domain's name.
    pub consumer: &'a str,
    /// The product's owning domain.
    pub provider: Option<&'a str>,
    /// The product, when readable.
    pub product: Option<&'a DataProduct>,
    /// The product's licence, when readable.
    pub licence: Option<&'a LicenceSpec>,
    /// The fields asked for.
    pub fields: &'a [String],
}

/// What would change the outcome, for one reason (None when it did not hold the request back).
pub fn hint(outcome: &str, reason: &ReasonRecord, cx: &HintContext<'_>) -> Option<String> {
    let approve = || {
        let target = cx
            .agreement
            .clone()
            .unwrap_or_else(|| "NAMESPACE/AGREEMENT".into());
        format!(
            "ask the provider{} to run: kubectl datamesh approve {target} --reason \"...\"",
            cx.provider
                .map(|p| format!(" (an owner of domain {p})"))
                .unwrap_or_default()
        )
    };
    let purposes = || {
        cx.licence
            .map(|l| {
                l.permitted_purposes
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "those the licence names".into())
    };
    match (reason.kind.as_str(), reason.id.as_str()) {
        ("policy", "internal-owner-approved" | "restricted-owner-approved")
        | ("licenceTerm", "requiresAgreement")
            if outcome == "NeedsApproval" =>
        {
            Some(approve())
        }
        ("policy", "personal-data-accredited") => Some(format!(
            "the consumer domain ({}) needs the dpia-process accreditation (spec.accreditations of its Domain)",
            cx.consumer
        )),
        ("policy", "personal-data-dpia") => Some(
            "name the consumer's DPIA for this use: request again with --dpia-reference REF (spec.dpiaReference)".into(),
        ),
        ("policy", "personal-data-purpose") => Some(format!(
            "personal data is shared only for a purpose the licence names explicitly: use one of {}",
            purposes()
        )),
        ("policy", "identifier-fields-purpose") => {
            let identifiers: Vec<&str> = cx
                .product
                .map(|p| {
                    p.spec
                        .schema
                        .iter()
                        .filter(|f| {
                            f.classification
                                == datamesh_crds::product::FieldClassification::Identifier
                                && cx.fields.contains(&f.name)
                        })
                        .map(|f| f.name.as_str())
                        .collect()
                })
                .unwrap_or_default();
            Some(if identifiers.is_empty() {
                "leave the identifier fields out of --fields, or state a purpose that needs them".into()
            } else {
                format!(
                    "leave the identifier fields out of --fields ({}), or state a purpose that needs them",
                    identifiers.join(", ")
                )
            })
        }
        ("policy", "data-residency") => Some(format!(
            "the consumer must be established in the product's region{}",
            cx.product
                .and_then(|p| p.spec.region.as_deref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        ("policy", "retired-never" | "draft-never" | "deprecated-no-new-agreements") => Some(
            "choose a published product: kubectl datamesh catalog".into(),
        ),
        ("policy", "default-deny") => Some(
            "no policy permits this request: check the product's classification and the consumer's sector, or ask the governance board for a policy that covers it".into(),
        ),
        ("licenceTerm", "permittedPurposes") => Some(format!(
            "use one of the permitted purposes: {}",
            purposes()
        )),
        ("licenceTerm", "commercialUse") => Some(
            "drop --commercial (the licence is non-commercial), or choose a product whose licence allows commercial use".into(),
        ),
        ("licenceTerm", "redistribution") => Some(
            "do not ask to pass the data on (the licence forbids redistribution)".into(),
        ),
        ("licenceTerm", "maxDurationDays") => Some(format!(
            "ask for a shorter period: at most {} days (an earlier --until)",
            cx.licence
                .and_then(|l| l.max_duration_days)
                .map(|d| d.to_string())
                .unwrap_or_else(|| "the licence's maximum".into())
        )),
        ("licenceTerm", "jurisdictions") => Some(format!(
            "the licence allows only consumers established in {}",
            cx.licence
                .map(|l| l
                    .jurisdictions
                    .iter()
                    .map(|j| j.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )),
        ("licenceTerm", "name" | "version") => Some(
            "accept the product's current licence: delete the agreement and request again with kubectl datamesh request".into(),
        ),
        ("request", "fields") => Some(format!(
            "ask only for fields in the product's schema{}",
            cx.product
                .map(|p| format!(
                    ": {}",
                    p.spec
                        .schema
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_default()
        )),
        ("request", _) => Some(format!("correct spec.{} of the request", reason.id)),
        ("approval", _) => Some(
            "the provider refused: talk to the product's owner, then request again with what they need".into(),
        ),
        ("error", _) => Some(
            "the decision failed closed: check the operator's log and kubectl datamesh status".into(),
        ),
        _ => None,
    }
}

/// Prints the reasons, each with its policy's effect and source and the
/// hint, as the `Why` and `What would change the outcome` sections.
pub fn print_reasons(
    outcome: &str,
    reasons: &[ReasonRecord],
    engine: &PolicyEngine,
    cx: &HintContext<'_>,
) {
    println!("Why:");
    if reasons.is_empty() {
        println!("  (no reasons recorded yet)");
    }
    for r in reasons {
        let origin = match engine.policy(&r.id) {
            Some(p) if r.kind == "policy" => format!(
                " ({}, {})",
                format!("{:?}", p.effect).to_lowercase(),
                p.source
            ),
            _ => String::new(),
        };
        println!("  {} {}{origin}", r.kind, r.id);
        println!("      {}", r.message);
        if let Some(p) = engine.policy(&r.id).filter(|p| p.reason != r.message) {
            println!("      policy: {}", p.reason);
        }
    }
    let hints: Vec<String> = hints(outcome, reasons, cx);
    println!();
    println!("What would change the outcome:");
    if hints.is_empty() {
        println!("  nothing needed: {outcome}");
    }
    for h in hints {
        println!("  - {h}");
    }
}

/// Every distinct hint for these reasons, in reason order.
pub fn hints(outcome: &str, reasons: &[ReasonRecord], cx: &HintContext<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if outcome == "Allow" {
        return out;
    }
    for r in reasons {
        if let Some(h) = hint(outcome, r, cx)
            && !out.contains(&h)
        {
            out.push(h);
        }
    }
    out
}

/// Runs `explain`.
pub async fn run(cluster: &Cluster, args: &ExplainArgs) -> Result<Exit, CliError> {
    let (ns, name) = split_ref(&args.agreement, cluster)?;
    let dsa: DataSharingAgreement = cluster.get_in(&ns, &name).await?;
    let product: Option<DataProduct> = cluster
        .get_in(&dsa.spec.product.namespace, &dsa.spec.product.name)
        .await
        .ok();
    let licence: Option<Licence> = match &product {
        Some(p) => cluster.get_cluster(&p.spec.licence).await.ok(),
        None => None,
    };
    let set = policy_set::load(cluster).await?;
    let status = dsa.status.clone().unwrap_or_default();
    let phase = status.phase.map(|p| p.as_str()).unwrap_or("Pending");
    let decision = status.decision.clone().unwrap_or_default();
    let outcome = if decision.outcome.is_empty() {
        "Undecided".to_string()
    } else {
        decision.outcome.clone()
    };
    let fields: Vec<String> = dsa
        .spec
        .fields
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    let cx = HintContext {
        agreement: Some(format!("{ns}/{name}")),
        consumer: &dsa.spec.consumer,
        provider: product.as_ref().map(|p| p.spec.domain.as_str()),
        product: product.as_ref(),
        licence: licence.as_ref().map(|l| &l.spec),
        fields: &fields,
    };
    let hint_list = hints(&outcome, &decision.reasons, &cx);

    if !args.output.human() {
        let doc = json!({
            "agreement": {"namespace": ns, "name": name},
            "consumer": dsa.spec.consumer,
            "product": dsa.spec.product,
            "purpose": dsa.spec.purpose,
            "phase": phase,
            "decision": decision,
            "approval": status.approval,
            "whatWouldChangeTheOutcome": hint_list,
        });
        output::print_document(args.output.output, &doc)?;
        return Ok(Exit::Ok);
    }

    println!("Agreement {ns}/{name}");
    output::field("Consumer", &dsa.spec.consumer);
    output::field("Product", &dsa.spec.product);
    output::field(
        "Licence accepted",
        format!("{} {}", dsa.spec.licence.name, dsa.spec.licence.version),
    );
    output::field("Purpose", &dsa.spec.purpose.0);
    output::field("Fields", fields.join(", "));
    output::field(
        "Period",
        format!(
            "{} → {}",
            dsa.spec.start.as_deref().unwrap_or("when granted"),
            dsa.spec.end
        ),
    );
    output::field("Phase", output::paint(phase));
    output::field("Decision", output::paint(&outcome));
    if let Some(v) = &decision.policy_set_version {
        output::field("Policy set", v);
    }
    if let Some(until) = &status.active_until {
        output::field("Active until", until);
    }
    if !status.granted_fields.is_empty() {
        output::field("Granted fields", status.granted_fields.join(", "));
    }
    if let Some(l) = &status.licence {
        if let Some(a) = &l.attribution {
            output::field("Attribution", a);
        }
        if let Some(r) = l.retention_days {
            output::field(
                "Delete data within",
                format!("{r} days after the grant ends"),
            );
        }
    }
    // The operator's grant at the data store, when it has tried one.
    if let Some(g) = datamesh_crds::condition::get(&status.conditions, "Granted") {
        output::field(
            "Granted at the store",
            format!("{} ({}: {})", output::paint(&g.status), g.reason, g.message),
        );
    }
    if let Some(s) = &status.credentials_secret {
        output::field("Credentials", format!("Secret {ns}/{s}"));
    }
    match &status.approval {
        Some(a) => output::field(
            "Approval",
            format!(
                "{} by {} at {} ({}){}",
                output::paint(&a.decision),
                a.by,
                a.at,
                a.approval,
                a.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ),
        None => output::field("Approval", "none"),
    }
    println!();
    print_reasons(&outcome, &decision.reasons, &set.engine, &cx);
    if let Some(note) = set.note {
        println!();
        println!("note: {note}");
    }
    Ok(Exit::Ok)
}
