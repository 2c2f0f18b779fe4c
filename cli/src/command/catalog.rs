//! `kubectl datamesh catalog`: the published data products of every domain,
//! searchable; `catalog show` for one product's whole entry with its licence
//! terms and who has access; `catalog export --format dcat` for portals.

use super::Exit;
use crate::cluster::{CliError, Cluster, split_ref};
use crate::output::{self, OutputArgs, Table, truncate};
use clap::{Args, Subcommand};
use datamesh_crds::condition::{READY, is_true};
use datamesh_crds::product::LifecycleStage;
use datamesh_crds::{AgreementPhase, DataProduct, DataSharingAgreement, Domain, Licence};
use serde_json::json;

/// Arguments of `catalog`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: Option<CatalogCommand>,
    #[command(flatten)]
    filter: Filter,
    #[command(flatten)]
    output: OutputArgs,
}

/// Which products to list.
#[derive(Debug, Args, Default)]
pub struct Filter {
    /// Words that must all appear in the title, description, tags or themes.
    text: Vec<String>,
    /// Only products of this Domain.
    #[arg(long)]
    domain: Option<String>,
    /// Only products with this theme.
    #[arg(long)]
    theme: Option<String>,
    /// Only products of this classification (open, internal, restricted, personal).
    #[arg(long)]
    classification: Option<String>,
    /// Also list draft, deprecated and retired products.
    #[arg(long)]
    all_stages: bool,
}

/// Catalogue subcommands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Every catalogue field of one product, its licence terms and who has access.
    Show(ShowArgs),
    /// Export the open, published catalogue as DCAT-AP JSON-LD for open-data portals.
    Export(ExportArgs),
}

/// Arguments of `catalog show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The product: NAME (in -n NAMESPACE) or NAMESPACE/NAME.
    product: String,
    #[command(flatten)]
    output: OutputArgs,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// DCAT 2 as JSON-LD.
    Dcat,
}

/// Arguments of `catalog export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Format of the export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Dcat)]
    format: ExportFormat,
    /// Catalogue title.
    #[arg(long, default_value = "datamesh open data catalogue")]
    title: String,
    /// Catalogue description.
    #[arg(long, default_value = "Open data products published in the datamesh.")]
    description: String,
    /// Base IRI of the dataset identifiers, e.g. https://data.example.gov.uk.
    #[arg(long, default_value = "urn:datamesh")]
    base_iri: String,
}

/// Runs `catalog ...`.
pub async fn run(cluster: &Cluster, args: &CatalogArgs) -> Result<Exit, CliError> {
    match &args.command {
        None => list(cluster, &args.filter, &args.output).await,
        Some(CatalogCommand::Show(show_args)) => show(cluster, show_args).await,
        Some(CatalogCommand::Export(export_args)) => export(cluster, export_args).await,
    }
}

/// Products the catalogue shows: `-n` narrows to one namespace, else all.
async fn products(cluster: &Cluster, filter: &Filter) -> Result<Vec<DataProduct>, CliError> {
    let scope = if cluster.namespace_given && !cluster.all_namespaces {
        Some(cluster.namespace.as_str())
    } else {
        None
    };
    let mut items: Vec<DataProduct> = cluster.list_in(scope).await?;
    items.retain(|p| matches(p, filter));
    items.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    for p in &mut items {
        p.metadata.managed_fields = None;
    }
    Ok(items)
}

fn matches(p: &DataProduct, f: &Filter) -> bool {
    let s = &p.spec;
    if !f.all_stages && s.lifecycle.stage != LifecycleStage::Published {
        return false;
    }
    if f.domain.as_deref().is_some_and(|d| d != s.domain) {
        return false;
    }
    if f.theme
        .as_deref()
        .is_some_and(|t| !s.themes.iter().any(|x| x.as_str() == t))
    {
        return false;
    }
    if f.classification
        .as_deref()
        .is_some_and(|c| !c.eq_ignore_ascii_case(s.classification.as_str()))
    {
        return false;
    }
    let haystack = format!(
        "{} {} {} {} {}",
        p.metadata.name.as_deref().unwrap_or(""),
        s.title,
        s.description,
        s.tags
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        s.themes
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    )
    .to_lowercase();
    f.text.iter().all(|w| haystack.contains(&w.to_lowercase()))
}

fn join<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|t| t.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn list(cluster: &Cluster, filter: &Filter, out: &OutputArgs) -> Result<Exit, CliError> {
    let items = products(cluster, filter).await?;
    if !out.human() {
        output::print_list(out.output, &items)?;
        return Ok(Exit::Ok);
    }
    let mut headers = vec!["product", "domain", "classification", "licence", "title"];
    if out.wide() {
        headers.extend(["themes", "format", "updated", "ready", "active"]);
    }
    let mut table = Table::new(&headers);
    for p in &items {
        let s = &p.spec;
        let mut row = vec![
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or("")
            ),
            s.domain.clone(),
            s.classification.as_str().to_string(),
            s.licence.clone(),
            if out.wide() {
                s.title.clone()
            } else {
                truncate(&s.title, 50)
            },
        ];
        if out.wide() {
            let status = p.status.clone().unwrap_or_default();
            row.extend([
                join(s.themes.iter().map(|t| t.as_str())),
                s.format.clone(),
                s.update_frequency.as_str().to_string(),
                if is_true(&status.conditions, READY) {
                    "True".into()
                } else {
                    "False".into()
                },
                status.active_agreements.unwrap_or(0).to_string(),
            ]);
        }
        table.row(row);
    }
    table.print_or("No published data products match.");
    Ok(Exit::Ok)
}

async fn show(cluster: &Cluster, args: &ShowArgs) -> Result<Exit, CliError> {
    let (ns, name) = split_ref(&args.product, cluster)?;
    let mut product: DataProduct = cluster.get_in(&ns, &name).await?;
    product.metadata.managed_fields = None;
    let licence: Option<Licence> = cluster.get_cluster(&product.spec.licence).await.ok();
    let domain: Option<Domain> = cluster.get_cluster(&product.spec.domain).await.ok();
    // Who has access: a consumer may not be allowed to list every namespace's
    // agreements; then only the count the operator keeps in status is shown.
    let access: Option<Vec<DataSharingAgreement>> = cluster
        .list_in::<DataSharingAgreement>(None)
        .await
        .ok()
        .map(|all| {
            let mut active: Vec<DataSharingAgreement> = all
                .into_iter()
                .filter(|d| {
                    d.spec.product.namespace == ns
                        && d.spec.product.name == name
                        && d.status.as_ref().and_then(|s| s.phase) == Some(AgreementPhase::Active)
                })
                .collect();
            active.sort_by_key(|d| (d.metadata.namespace.clone(), d.metadata.name.clone()));
            active
        });

    if !args.output.human() {
        let access_doc = access.as_ref().map(|a| {
            a.iter()
                .map(|d| {
                    json!({
                        "agreement": {"namespace": d.metadata.namespace, "name": d.metadata.name},
                        "consumer": d.spec.consumer,
                        "purpose": d.spec.purpose,
                        "fields": d.status.as_ref().map(|s| s.granted_fields.clone()),
                        "until": d.status.as_ref().and_then(|s| s.active_until.clone()),
                    })
                })
                .collect::<Vec<_>>()
        });
        let doc = json!({
            "product": product,
            "licence": licence.as_ref().map(|l| json!({"name": l.metadata.name, "spec": l.spec})),
            "access": access_doc,
        });
        output::print_document(args.output.output, &doc)?;
        return Ok(Exit::Ok);
    }

    let s = &product.spec;
    println!("{ns}/{name}: {}", s.title);
    println!();
    for line in s.description.lines() {
        println!("  {line}");
    }
    println!();
    output::field(
        "Domain",
        match &domain {
            Some(d) => format!("{} ({})", s.domain, d.spec.display_name),
            None => s.domain.clone(),
        },
    );
    output::field("Owner", format!("{} <{}>", s.owner.name, s.owner.email));
    output::field("Classification", s.classification.as_str());
    if s.personal_data {
        output::field(
            "Personal data",
            format!(
                "yes, lawful basis {}",
                s.lawful_basis
                    .map(|b| format!("{b:?}"))
                    .unwrap_or_else(|| "-".into())
            ),
        );
        if let Some(d) = &s.dpia_reference {
            output::field("DPIA", d);
        }
    } else {
        output::field("Personal data", "no");
    }
    output::field("Format", &s.format);
    if let Some(t) = &s.temporal_coverage {
        output::field(
            "Temporal coverage",
            format!("{} → {}", t.from, t.to.as_deref().unwrap_or("ongoing")),
        );
    }
    output::field("Update frequency", s.update_frequency.as_str());
    output::field(
        "Lifecycle",
        match &s.lifecycle.sunset_date {
            Some(d) => format!("{} (sunset {d})", s.lifecycle.stage.as_str()),
            None => s.lifecycle.stage.as_str().to_string(),
        },
    );
    if let Some(r) = &s.region {
        output::field("Region", r);
    }
    if !s.standards.is_empty() {
        output::field("Standards", join(&s.standards));
    }
    if !s.themes.is_empty() {
        output::field("Themes", join(s.themes.iter().map(|t| t.as_str())));
    }
    if !s.tags.is_empty() {
        output::field("Tags", join(s.tags.iter().map(|t| t.as_str())));
    }
    if let Some(sla) = &s.sla {
        output::field(
            "SLA",
            format!(
                "freshness {}, availability {}",
                sla.freshness.as_deref().unwrap_or("-"),
                sla.availability
                    .map(|a| format!("{a}%"))
                    .unwrap_or_else(|| "-".into())
            ),
        );
    }
    let ready = product
        .status
        .as_ref()
        .is_some_and(|st| is_true(&st.conditions, READY));
    output::field("Ready", output::paint(if ready { "True" } else { "False" }));

    println!();
    println!("Output ports:");
    for p in &s.output_ports {
        let location = if let Some(pg) = &p.postgres {
            format!("postgres table {}.{}", pg.schema, pg.table)
        } else if let Some(o) = &p.object_store {
            format!(
                "object store s3://{}/{}",
                o.bucket,
                o.prefix.as_deref().unwrap_or("")
            )
        } else if let Some(a) = &p.api {
            format!("api {}", a.url)
        } else if let Some(st) = &p.stream {
            format!("stream topic {}", st.topic)
        } else {
            format!("{:?}", p.type_)
        };
        println!("  {:<22}{location}", p.name);
    }

    if !s.schema.is_empty() {
        println!();
        println!("Schema:");
        let mut t = Table::new(&["field", "type", "classification", "description"]);
        for f in &s.schema {
            t.row(vec![
                f.name.clone(),
                f.type_.clone(),
                f.classification.as_str().to_string(),
                f.description.clone().unwrap_or_default(),
            ]);
        }
        for line in t.render().lines() {
            println!("  {line}");
        }
    }

    if let Some(q) = &s.quality {
        println!();
        println!("Quality:");
        if let Some(c) = q.completeness {
            output::field("Completeness", format!("{c}%"));
        }
        if let Some(a) = &q.accuracy {
            output::field("Accuracy", a);
        }
        if let Some(c) = &q.currency {
            output::field("Currency", c);
        }
        if let Some(d) = &q.last_assessed {
            output::field("Last assessed", d);
        }
        for issue in &q.known_issues {
            output::field("Known issue", issue);
        }
    }

    if let Some(p) = &s.provenance {
        println!();
        println!("Provenance:");
        for src in &p.sources {
            output::field("Source", src);
        }
        for input in &p.inputs {
            output::field("Derived from", input);
        }
    }

    println!();
    match &licence {
        Some(l) => super::request::print_terms(&s.licence, &l.spec),
        None => println!(
            "Licence {}: not found (the product is not Ready until it exists)",
            s.licence
        ),
    }

    println!();
    println!("Who has access:");
    match access {
        Some(a) if a.is_empty() => println!("  no Active agreements"),
        Some(a) => {
            let mut t = Table::new(&["agreement", "consumer", "purpose", "until"]);
            for d in &a {
                t.row(vec![
                    format!(
                        "{}/{}",
                        d.metadata.namespace.as_deref().unwrap_or(""),
                        d.metadata.name.as_deref().unwrap_or("")
                    ),
                    d.spec.consumer.clone(),
                    d.spec.purpose.0.clone(),
                    d.status
                        .as_ref()
                        .and_then(|st| st.active_until.clone())
                        .unwrap_or_default(),
                ]);
            }
            for line in t.render().lines() {
                println!("  {line}");
            }
        }
        None => println!(
            "  {} Active agreements (you may not list agreements in other namespaces)",
            product
                .status
                .as_ref()
                .and_then(|st| st.active_agreements)
                .unwrap_or(0)
        ),
    }
    println!();
    println!(
        "Request access: kubectl datamesh request {ns}/{name} -n YOUR_NAMESPACE --purpose PURPOSE --fields {} --until YYYY-MM-DD",
        s.schema
            .iter()
            .take(3)
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(Exit::Ok)
}

async fn export(cluster: &Cluster, args: &ExportArgs) -> Result<Exit, CliError> {
    let ExportFormat::Dcat = args.format;
    let products: Vec<DataProduct> = cluster.list_in(None).await?;
    let domains: Vec<Domain> = cluster.list_cluster().await?;
    let licences: Vec<Licence> = cluster.list_cluster().await?;
    let info = datamesh_crds::dcat::CatalogInfo {
        title: args.title.clone(),
        description: args.description.clone(),
        base_iri: args.base_iri.trim_end_matches('/').to_string(),
    };
    let doc = datamesh_crds::dcat::catalog(&info, &products, &domains, &licences);
    output::print_document(output::Format::Json, &doc)?;
    Ok(Exit::Ok)
}
