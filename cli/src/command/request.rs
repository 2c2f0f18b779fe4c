//! `kubectl datamesh request PRODUCT ...`: ask for data. Shows the terms of
//! the product's licence, then creates a DataSharingAgreement in the
//! consumer's namespace that accepts the licence's current version.
//! `--dry-run` decides offline with the same decision core the operator runs
//! and creates nothing; `--from-files` does so without a cluster at all.

use super::explain::{self, HintContext};
use super::{Exit, policy_set};
use crate::cluster::{CliError, Cluster, Op};
use crate::output::{self, OutputArgs};
use clap::Args;
use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_crds::{
    AgreementPhase, DataProduct, DataSharingAgreement, Domain, GovernancePolicy, Licence,
    LicenceSpec, ObjectRef,
};
use datamesh_policies::{Decision, DecisionInput, PolicyEngine, PolicySource};
use jiff::Timestamp;
use kube::api::PostParams;
use serde::Deserialize;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The product: NAMESPACE/NAME, or NAME when only one product has it.
    product: String,
    /// Why the data is needed, e.g. research, service-planning.
    #[arg(long)]
    purpose: String,
    /// Fields needed, comma-separated (data minimisation).
    #[arg(long, value_delimiter = ',', required = true)]
    fields: Vec<String>,
    /// When access must end: YYYY-MM-DD (end of that day, UTC) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    until: String,
    /// When access should start: YYYY-MM-DD or RFC 3339 (default: when granted).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// The purpose in words, for the provider and the audit trail.
    #[arg(long)]
    justification: Option<String>,
    /// The data will be used commercially.
    #[arg(long)]
    commercial: bool,
    /// The data will be passed on to third parties.
    #[arg(long)]
    redistribution: bool,
    /// The consumer's DPIA reference for this use (needed for personal data).
    #[arg(long, value_name = "REF")]
    dpia_reference: Option<String>,
    /// Name of the agreement (default: PRODUCT-for-PURPOSE).
    #[arg(long)]
    name: Option<String>,
    /// The consumer Domain (default: the Domain that owns the agreement's namespace).
    #[arg(long, value_name = "DOMAIN")]
    consumer: Option<String>,
    /// Decide offline and print the decision; create nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: read Domains, DataProducts, Licences and
    /// GovernancePolicies from these YAML files or directories instead of the cluster.
    #[arg(long, value_name = "PATH", requires = "dry_run", num_args = 1..)]
    from_files: Vec<PathBuf>,
    /// Decision time for --dry-run (RFC 3339; default now).
    #[arg(long, requires = "dry_run")]
    now: Option<String>,
    /// Accept the licence without asking (asked only on a terminal).
    #[arg(short = 'y', long)]
    yes: bool,
    /// Seconds to wait for the operator's decision after creating (0: do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    wait: u64,
    #[command(flatten)]
    output: OutputArgs,
}

impl RequestArgs {
    /// Whether the request is decided from files, without a cluster.
    pub fn offline(&self) -> bool {
        !self.from_files.is_empty()
    }
}

/// What the request is decided on.
struct World {
    consumer: Domain,
    provider: Domain,
    product: DataProduct,
    licence: Licence,
    engine: PolicyEngine,
    note: Option<String>,
}

/// Parses `YYYY-MM-DD` (start or end of that day, UTC) or RFC 3339 into RFC 3339.
fn date(flag: &str, value: &str, end_of_day: bool) -> Result<String, CliError> {
    if let Ok(ts) = value.parse::<Timestamp>() {
        return Ok(ts.to_string());
    }
    let day: jiff::civil::Date = value.parse().map_err(|_| {
        CliError::Input(format!(
            "--{flag} {value}: expected a date (2027-06-30) or an RFC 3339 time (2027-06-30T23:59:59Z)"
        ))
    })?;
    let time = if end_of_day {
        jiff::civil::time(23, 59, 59, 0)
    } else {
        jiff::civil::time(0, 0, 0, 0)
    };
    let ts = day
        .to_datetime(time)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| CliError::Input(format!("--{flag} {value}: {e}")))?
        .timestamp();
    Ok(ts.to_string())
}

fn token(flag: &str, value: &str) -> Result<Token, CliError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(Token(value.to_string()))
    } else {
        Err(CliError::Input(format!(
            "--{flag} {value}: use lower-case letters, digits and '-', e.g. service-planning"
        )))
    }
}

/// Builds the agreement's spec from the flags.
fn spec(
    args: &RequestArgs,
    consumer: &str,
    product: &DataProduct,
    licence: &Licence,
) -> Result<DataSharingAgreementSpec, CliError> {
    let fields: Vec<FieldName> = args
        .fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .map(|f| FieldName(f.to_string()))
        .collect();
    if fields.is_empty() {
        return Err(CliError::Input("--fields: name at least one field".into()));
    }
    Ok(DataSharingAgreementSpec {
        consumer: consumer.to_string(),
        product: ObjectRef {
            namespace: product.metadata.namespace.clone().unwrap_or_default(),
            name: product.metadata.name.clone().unwrap_or_default(),
        },
        purpose: token("purpose", &args.purpose)?,
        justification: args.justification.clone(),
        fields,
        start: args
            .from
            .as_deref()
            .map(|v| date("from", v, false))
            .transpose()?,
        end: date("until", &args.until, true)?,
        licence: AcceptedLicence {
            name: licence.metadata.name.clone().unwrap_or_default(),
            version: licence.spec.version.clone(),
        },
        commercial_use: args.commercial,
        redistribution: args.redistribution,
        dpia_reference: args.dpia_reference.clone(),
    })
}

/// Prints the licence terms the consumer is about to accept.
pub fn print_terms(name: &str, l: &LicenceSpec) {
    println!("Licence {name}: {} (version {})", l.title, l.version);
    if let Some(url) = &l.url {
        output::field("Text", url);
    }
    output::field(
        "Permitted purposes",
        l.permitted_purposes
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    output::field("Commercial use", yes_no(l.commercial_use));
    output::field("Redistribution", yes_no(l.redistribution));
    output::field("Derivatives", yes_no(l.derivatives));
    output::field(
        "Maximum duration",
        l.max_duration_days
            .map(|d| format!("{d} days"))
            .unwrap_or_else(|| "none".into()),
    );
    output::field(
        "Retention",
        l.retention_days
            .map(|d| format!("delete the data within {d} days after access ends"))
            .unwrap_or_else(|| "no limit".into()),
    );
    output::field("Attribution", l.attribution.as_deref().unwrap_or("none"));
    if let Some(c) = &l.charge {
        output::field("Charge", c);
    }
    if !l.jurisdictions.is_empty() {
        output::field(
            "Jurisdictions",
            l.jurisdictions
                .iter()
                .map(|j| j.0.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    output::field(
        "Owner approval",
        if l.requires_agreement {
            "required"
        } else {
            "not required by the licence"
        },
    );
}

fn yes_no(b: bool) -> &'static str {
    if b { "allowed" } else { "not allowed" }
}

/// Runs `request` against the cluster (or files, with --from-files).
///
/// Offline (`--from-files`) there is no cluster: the agreement's namespace is
/// `namespace` (`-n`), else the consumer Domain's first namespace.
pub async fn run(
    cluster: Option<&Cluster>,
    namespace: Option<&str>,
    args: &RequestArgs,
) -> Result<Exit, CliError> {
    let (world, namespace) = match cluster {
        Some(c) if args.from_files.is_empty() => gather(c, args).await?,
        _ => from_files(args, namespace)?,
    };
    let spec = spec(args, &consumer_name(&world), &world.product, &world.licence)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(&spec),
    };
    if args.dry_run {
        return dry_run(&world, &spec, &namespace, &name, args);
    }
    let Some(cluster) = cluster else {
        return Err(CliError::Input("--from-files needs --dry-run".into()));
    };
    if args.output.human() {
        print_terms(&spec.licence.name, &world.licence.spec);
        println!();
        if !args.yes && std::io::stdin().is_terminal() && !confirm(&spec, &namespace, &name)? {
            println!("nothing created");
            return Ok(Exit::Failed);
        }
    }
    let dsa = DataSharingAgreement {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    let api: kube::Api<DataSharingAgreement> =
        kube::Api::namespaced(cluster.client.clone(), &namespace);
    let created = api
        .create(&PostParams::default(), &dsa)
        .await
        .map_err(|e| {
            cluster.error(
                Op::on(
                    "create",
                    "datasharingagreements",
                    "DataSharingAgreement",
                    Some(&namespace),
                    &name,
                ),
                e,
            )
        })?;
    if args.output.human() {
        println!("datasharingagreement {namespace}/{name} created");
    }
    let decided = wait_for_phase(&api, &name, args.wait, |p| p != AgreementPhase::Pending).await;
    let shown = decided.unwrap_or(created);
    if !args.output.human() {
        output::print_document(args.output.output, &shown)?;
        return Ok(Exit::Ok);
    }
    report_phase(&shown, &namespace, &name, args.wait);
    Ok(Exit::Ok)
}

/// Prints the phase an agreement reached and the next command to run.
pub fn report_phase(dsa: &DataSharingAgreement, ns: &str, name: &str, waited: u64) {
    let phase = dsa.status.as_ref().and_then(|s| s.phase);
    match phase {
        None | Some(AgreementPhase::Pending) if waited > 0 => println!(
            "no decision after {waited}s: is the operator running? (kubectl datamesh status)"
        ),
        None | Some(AgreementPhase::Pending) => {
            println!("follow it with: kubectl datamesh agreements -n {ns}")
        }
        Some(p) => {
            println!("phase: {}", output::paint(p.as_str()));
            if let Some(first) = dsa
                .status
                .as_ref()
                .and_then(|s| s.decision.as_ref())
                .and_then(|d| d.reasons.first())
            {
                println!("reason: {}: {}", first.id, first.message);
            }
            println!("details: kubectl datamesh explain {ns}/{name}");
        }
    }
}

/// Polls until `done(phase)` or `seconds` pass; the last object read.
pub async fn wait_for_phase(
    api: &kube::Api<DataSharingAgreement>,
    name: &str,
    seconds: u64,
    done: impl Fn(AgreementPhase) -> bool,
) -> Option<DataSharingAgreement> {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut last = None;
    loop {
        if let Ok(d) = api.get(name).await {
            let phase = d
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(AgreementPhase::Pending);
            let finished = done(phase);
            last = Some(d);
            if finished {
                return last;
            }
        }
        if std::time::Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn confirm(spec: &DataSharingAgreementSpec, ns: &str, name: &str) -> Result<bool, CliError> {
    print!(
        "Accept {} version {} and create agreement {ns}/{name} for {}? [y/N] ",
        spec.licence.name, spec.licence.version, spec.product
    );
    std::io::stdout()
        .flush()
        .map_err(|e| CliError::Output(e.to_string()))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Input(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn default_name(spec: &DataSharingAgreementSpec) -> String {
    let mut name = format!("{}-for-{}", spec.product.name, spec.purpose.as_str());
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

fn consumer_name(world: &World) -> String {
    world.consumer.metadata.name.clone().unwrap_or_default()
}

fn dry_run(
    world: &World,
    spec: &DataSharingAgreementSpec,
    namespace: &str,
    name: &str,
    args: &RequestArgs,
) -> Result<Exit, CliError> {
    let now = match &args.now {
        Some(n) => n
            .parse::<Timestamp>()
            .map_err(|e| CliError::Input(format!("--now {n}: {e}")))?,
        None => Timestamp::now(),
    };
    let input = DecisionInput::new(
        &world.consumer,
        &world.provider,
        &world.product,
        &world.licence,
        spec,
        now,
    );
    let decision: Decision = world.engine.decide(&input);
    let record = decision.to_record();
    let fields: Vec<String> = args.fields.clone();
    let cx = HintContext {
        agreement: Some(format!("{namespace}/{name}")),
        consumer: &spec.consumer,
        provider: Some(&world.product.spec.domain),
        product: Some(&world.product),
        licence: Some(&world.licence.spec),
        fields: &fields,
    };
    let exit = if decision.outcome == datamesh_policies::Outcome::Deny {
        Exit::Failed
    } else {
        Exit::Ok
    };
    if !args.output.human() {
        let doc = json!({
            "agreement": {"namespace": namespace, "name": name},
            "spec": spec,
            "decision": record,
            "grantedFields": decision.granted_fields,
            "activeUntil": decision.active_until.map(|t| t.to_string()),
            "whatWouldChangeTheOutcome": explain::hints(record.outcome.as_str(), &record.reasons, &cx),
        });
        output::print_document(args.output.output, &doc)?;
        return Ok(exit);
    }
    print_terms(&spec.licence.name, &world.licence.spec);
    println!();
    println!("Dry run: agreement {namespace}/{name} would not be created");
    output::field("Consumer", &spec.consumer);
    output::field("Product", &spec.product);
    output::field("Purpose", spec.purpose.as_str());
    output::field("Fields", fields.join(", "));
    output::field("Decision", output::paint(decision.outcome.as_str()));
    output::field("Policy set", &decision.policy_set_version);
    if !decision.granted_fields.is_empty() {
        output::field("Would grant", decision.granted_fields.join(", "));
    }
    if let Some(until) = decision.active_until {
        output::field("Until", until);
    }
    println!();
    explain::print_reasons(record.outcome.as_str(), &record.reasons, &world.engine, &cx);
    if let Some(note) = &world.note {
        println!();
        println!("note: {note}");
    }
    Ok(exit)
}

/// Looks everything up in the cluster; returns the world and the agreement's namespace.
async fn gather(cluster: &Cluster, args: &RequestArgs) -> Result<(World, String), CliError> {
    let product = find_product(cluster, &args.product).await?;
    let licence: Licence = cluster.get_cluster(&product.spec.licence).await?;
    let provider: Domain = cluster.get_cluster(&product.spec.domain).await?;
    let namespace = cluster.namespace.clone();
    let consumer: Domain = match &args.consumer {
        Some(c) => cluster.get_cluster(c).await?,
        None => {
            let domains: Vec<Domain> = cluster.list_cluster().await?;
            owner_of(&domains, &namespace)?
        }
    };
    let (engine, note) = if args.dry_run {
        let set = policy_set::load(cluster).await?;
        (set.engine, set.note)
    } else {
        (default_engine()?, None)
    };
    Ok((
        World {
            consumer,
            provider,
            product,
            licence,
            engine,
            note,
        },
        namespace,
    ))
}

fn default_engine() -> Result<PolicyEngine, CliError> {
    PolicyEngine::with_defaults([])
        .map_err(|e| CliError::Output(format!("the shipped policies do not build: {e}")))
}

fn owner_of(domains: &[Domain], namespace: &str) -> Result<Domain, CliError> {
    domains
        .iter()
        .find(|d| d.spec.namespaces.iter().any(|n| n.0 == namespace))
        .cloned()
        .ok_or_else(|| {
            CliError::Input(format!(
                "no Domain owns namespace {namespace}: run the request in your domain's namespace (-n NAMESPACE) or name it with --consumer DOMAIN"
            ))
        })
}

async fn find_product(cluster: &Cluster, arg: &str) -> Result<DataProduct, CliError> {
    if arg.contains('/') {
        let (ns, name) = crate::cluster::split_ref(arg, cluster)?;
        return cluster.get_in(&ns, &name).await;
    }
    let all: Vec<DataProduct> = cluster.list_in(None).await?;
    pick_product(all, arg)
}

fn pick_product(all: Vec<DataProduct>, name: &str) -> Result<DataProduct, CliError> {
    let mut found: Vec<DataProduct> = all
        .into_iter()
        .filter(|p| p.metadata.name.as_deref() == Some(name))
        .collect();
    match found.len() {
        0 => Err(CliError::NotFound {
            kind: "DataProduct".into(),
            name: name.into(),
            scope: String::new(),
            hint: "list the catalogue with: kubectl datamesh catalog".into(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(CliError::Input(format!(
            "{} products are named {name}: give it as NAMESPACE/{name} ({})",
            found.len(),
            found
                .iter()
                .map(|p| p.metadata.namespace.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Loads the objects for an offline dry run from YAML files.
fn from_files(args: &RequestArgs, namespace: Option<&str>) -> Result<(World, String), CliError> {
    let mut domains: Vec<Domain> = Vec::new();
    let mut products: Vec<DataProduct> = Vec::new();
    let mut licences: Vec<Licence> = Vec::new();
    let mut policies: Vec<GovernancePolicy> = Vec::new();
    for path in yaml_files(&args.from_files)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_string();
            let bad =
                |e: serde_yaml::Error| CliError::Input(format!("{}: {kind}: {e}", path.display()));
            match kind.as_str() {
                "Domain" => domains.push(serde_yaml::from_value(value).map_err(bad)?),
                "DataProduct" => products.push(serde_yaml::from_value(value).map_err(bad)?),
                "Licence" => licences.push(serde_yaml::from_value(value).map_err(bad)?),
                "GovernancePolicy" => policies.push(serde_yaml::from_value(value).map_err(bad)?),
                _ => {}
            }
        }
    }
    let product = match args.product.split_once('/') {
        Some((ns, name)) => products
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| {
                CliError::Input(format!("no DataProduct {} in the files", args.product))
            })?,
        None => pick_product(products, &args.product)?,
    };
    let by_name = |d: &Domain, n: &str| d.metadata.name.as_deref() == Some(n);
    let licence = licences
        .into_iter()
        .find(|l| l.metadata.name.as_deref() == Some(product.spec.licence.as_str()))
        .ok_or_else(|| {
            CliError::Input(format!("no Licence {} in the files", product.spec.licence))
        })?;
    let provider = domains
        .iter()
        .find(|d| by_name(d, &product.spec.domain))
        .cloned()
        .ok_or_else(|| {
            CliError::Input(format!("no Domain {} in the files", product.spec.domain))
        })?;
    let (consumer, namespace) = match (&args.consumer, namespace) {
        (Some(c), ns) => {
            let d = domains
                .iter()
                .find(|d| by_name(d, c))
                .cloned()
                .ok_or_else(|| CliError::Input(format!("no Domain {c} in the files")))?;
            let ns = ns
                .map(str::to_string)
                .or_else(|| d.spec.namespaces.first().map(|n| n.0.clone()))
                .unwrap_or_default();
            (d, ns)
        }
        (None, Some(ns)) => (owner_of(&domains, ns)?, ns.to_string()),
        (None, None) => {
            return Err(CliError::Input(
                "--from-files: name the consumer with --consumer DOMAIN or its namespace with -n NAMESPACE".into(),
            ));
        }
    };
    let sources: Vec<PolicySource> = policies
        .iter()
        .map(PolicySource::from_governance_policy)
        .collect();
    let engine = PolicyEngine::with_defaults(sources).map_err(|e| {
        CliError::Input(format!(
            "the GovernancePolicies in the files do not validate: {e}"
        ))
    })?;
    Ok((
        World {
            consumer,
            provider,
            product,
            licence,
            engine,
            note: None,
        },
        namespace,
    ))
}

fn yaml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CliError::Input(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
