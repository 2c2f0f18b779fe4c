//! `kubectl datamesh policy ...`: the governance board's tools. Everything
//! works offline on files; the decisions come from datamesh-policies, the same
//! core the operator runs, so what is shown here is what the cluster decides.

// An InputError ends the command, once; carrying the file text for the
// snippet matters more than its size.
#![allow(clippy::result_large_err)]

use super::{Exit, OutputFormat};
use clap::{Args, Subcommand};
use datamesh_crds::ObjectRef;
use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_crds::{
    AgreementPhase, DataProduct, DataSharingAgreement, Domain, GovernancePolicy, Licence,
};
use datamesh_policies::testfile::{self, CaseResult};
use datamesh_policies::{
    AccessAction, Decision, DecisionInput, PolicyEngine, PolicySetError, PolicySource, redecide,
    shipped_sources,
};
use jiff::{SignedDuration, Timestamp};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Policy subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policies against the datamesh schema; errors are shown at their line and column.
    ///
    /// DIR holds `*.cedar` files (central policies) and GovernancePolicy
    /// manifests (`*.yaml`). Exit 0 when valid, 1 when not, 2 on unreadable input.
    Validate(ValidateArgs),
    /// Run the YAML policy tests in DIR; prints pass/fail per case and the
    /// difference of reasons. Exit 0 when all pass, 1 when any fails, 2 on a bad test file.
    Test(TestArgs),
    /// Decide one request and show every reason.
    Explain(Box<ExplainArgs>),
    /// Show which agreements would change outcome if NEW replaced OLD, and why.
    Diff(DiffArgs),
}

/// Which policies to use.
#[derive(Debug, Args)]
pub struct PolicyDirArgs {
    /// Also load the shipped default policies, as the operator does.
    #[arg(long)]
    defaults: bool,
}

/// Arguments of `policy validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Directory (or single file) of policies.
    dir: PathBuf,
    #[command(flatten)]
    policies: PolicyDirArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Arguments of `policy test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Directory (or single file) of YAML policy tests.
    dir: PathBuf,
    /// Policies to test instead of the shipped ones.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// With --policies, also load the shipped default policies.
    #[arg(long)]
    defaults: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Arguments of `policy explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Domain manifest of the consumer.
    #[arg(long, value_name = "DOMAIN_FILE")]
    principal: PathBuf,
    /// DataProduct manifest.
    #[arg(long, value_name = "FILE")]
    product: PathBuf,
    /// Licence manifest of the product.
    #[arg(long, value_name = "FILE")]
    licence: PathBuf,
    /// Domain manifest of the provider (not needed when it is the principal).
    #[arg(long, value_name = "DOMAIN_FILE")]
    provider: Option<PathBuf>,
    /// Purpose of use, e.g. research.
    #[arg(long)]
    purpose: String,
    /// Fields asked for, comma-separated; none means every non-identifier field.
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Days of access asked for, from --start.
    #[arg(long, default_value_t = 30, conflicts_with = "end")]
    days: u32,
    /// When access starts (RFC 3339); defaults to --now.
    #[arg(long)]
    start: Option<String>,
    /// When access ends (RFC 3339), instead of --days.
    #[arg(long)]
    end: Option<String>,
    /// The data will be used commercially.
    #[arg(long)]
    commercial: bool,
    /// The data will be passed on.
    #[arg(long)]
    redistribution: bool,
    /// Licence version accepted; defaults to the current one.
    #[arg(long)]
    licence_version: Option<String>,
    /// The consumer's DPIA reference.
    #[arg(long)]
    dpia_reference: Option<String>,
    /// Decide as if the provider had approved.
    #[arg(long)]
    approved: bool,
    /// Decide as for an agreement already granted (re-decision).
    #[arg(long)]
    existing: bool,
    /// Subscribe instead of Read.
    #[arg(long)]
    subscribe: bool,
    /// Decision time (RFC 3339); defaults to now.
    #[arg(long)]
    now: Option<String>,
    /// Policies to decide with instead of the shipped ones.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// With --policies, also load the shipped default policies.
    #[arg(long)]
    defaults: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Arguments of `policy diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policies in force.
    old: PathBuf,
    /// The proposed policies.
    new: PathBuf,
    /// Files or directories with the agreements and the Domains, DataProducts
    /// and Licences they refer to (multi-document YAML, `kind: List` too).
    #[arg(long, num_args = 1.., required_unless_present = "live")]
    agreements: Vec<PathBuf>,
    /// Decide the agreements in the cluster (with the Domains, DataProducts
    /// and Licences there) instead of files; uses --kubeconfig/--context.
    #[arg(long, conflicts_with = "agreements")]
    live: bool,
    #[command(flatten)]
    policies: PolicyDirArgs,
    /// Decision time (RFC 3339); defaults to now.
    #[arg(long)]
    now: Option<String>,
    /// Exit 1 when any agreement changes outcome.
    #[arg(long)]
    exit_code: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Runs one policy subcommand.
pub fn run(cmd: PolicyCommand) -> Exit {
    let result = match cmd {
        PolicyCommand::Validate(args) => validate(&args),
        PolicyCommand::Test(args) => test(&args),
        PolicyCommand::Explain(args) => explain(&args),
        PolicyCommand::Diff(args) => diff(&args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("{}", render(&e));
        Exit::BadInput
    })
}

/// Input that could not be used, naming the file and, when known, the line.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A YAML file is malformed or does not match its kind.
    #[error("{path}:{line}:{column}: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
        #[source_code]
        src: NamedSource<String>,
        #[label("here")]
        span: SourceSpan,
    },
    /// Something is missing or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A policy test file is malformed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    TestFile(#[from] testfile::TestFileError),
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn yaml_error(path: &Path, text: &str, err: &serde_yaml::Error) -> InputError {
    let (line, column, index) = err
        .location()
        .map_or((1, 1, 0), |l| (l.line(), l.column(), l.index()));
    InputError::Yaml {
        path: path.display().to_string(),
        line,
        column,
        message: err.to_string(),
        src: NamedSource::new(path.display().to_string(), text.to_string()),
        span: SourceSpan::new(index.min(text.len()).into(), 0),
    }
}

fn render(diagnostic: &dyn Diagnostic) -> String {
    let theme = if std::io::stderr().is_terminal() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    match GraphicalReportHandler::new_themed(theme).render_report(&mut out, diagnostic) {
        Ok(()) => out,
        Err(_) => diagnostic.to_string(),
    }
}

/// Files under `path` (itself if a file) with one of `exts`, sorted.
fn files(path: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, InputError> {
    let io = |source| InputError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| InputError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| InputError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The objects found in a set of manifest files.
#[derive(Debug, Default)]
struct Objects {
    domains: BTreeMap<String, Domain>,
    products: BTreeMap<String, DataProduct>,
    licences: BTreeMap<String, Licence>,
    agreements: Vec<DataSharingAgreement>,
    policies: Vec<PolicySource>,
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Vec<serde_yaml::Value>,
}

impl Objects {
    /// Reads every YAML document of `path`, keeping the datamesh kinds.
    fn load(&mut self, path: &Path) -> Result<(), InputError> {
        let text = read(path)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            // Values lose their positions, so typed errors point at the object's name line.
            let value =
                serde_yaml::Value::deserialize(doc).map_err(|e| yaml_error(path, &text, &e))?;
            if value.is_null() {
                continue;
            }
            let head: KindOnly =
                serde_yaml::from_value(value.clone()).map_err(|e| yaml_error(path, &text, &e))?;
            if head.kind.as_deref() == Some("List") {
                for item in head.items {
                    self.add(path, &text, item)?;
                }
            } else {
                self.add(path, &text, value)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, path: &Path, text: &str, value: serde_yaml::Value) -> Result<(), InputError> {
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        match kind.as_str() {
            "Domain" => {
                let d: Domain = from_value(path, text, value)?;
                self.domains
                    .insert(name_of(path, &kind, d.metadata.name.as_deref())?, d);
            }
            "DataProduct" => {
                let p: DataProduct = from_value(path, text, value)?;
                let name = name_of(path, &kind, p.metadata.name.as_deref())?;
                let ns = p
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string());
                self.products.insert(format!("{ns}/{name}"), p);
            }
            "Licence" => {
                let l: Licence = from_value(path, text, value)?;
                self.licences
                    .insert(name_of(path, &kind, l.metadata.name.as_deref())?, l);
            }
            "DataSharingAgreement" => {
                let a: DataSharingAgreement = from_value(path, text, value)?;
                name_of(path, &kind, a.metadata.name.as_deref())?;
                self.agreements.push(a);
            }
            "GovernancePolicy" => {
                let g: GovernancePolicy = from_value(path, text, value)?;
                let mut source = PolicySource::from_governance_policy(&g);
                source.name = format!("{} ({})", path.display(), source.name);
                self.policies.push(source);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Deserializes a typed object; on failure, points at the object's `kind:` line
/// when the key path is not known (values lose their positions).
fn from_value<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    value: serde_yaml::Value,
) -> Result<T, InputError> {
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string);
    serde_yaml::from_value(value).map_err(|e| {
        let at = name
            .as_deref()
            .and_then(|n| text.find(&format!("name: {n}")))
            .unwrap_or(0);
        let (line, column) = line_column(text, at);
        InputError::Yaml {
            path: path.display().to_string(),
            line,
            column,
            message: format!("{}{e}", name.map(|n| format!("{n}: ")).unwrap_or_default()),
            src: NamedSource::new(path.display().to_string(), text.to_string()),
            span: SourceSpan::new(at.into(), 0),
        }
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

fn name_of(path: &Path, kind: &str, name: Option<&str>) -> Result<String, InputError> {
    name.map(str::to_string).ok_or_else(|| {
        InputError::Invalid(format!("{}: a {kind} has no metadata.name", path.display()))
    })
}

/// Policy sources from a directory: `*.cedar` (central) and GovernancePolicy manifests.
fn load_policies(dir: &Path, defaults: bool) -> Result<Vec<PolicySource>, InputError> {
    let mut sources = if defaults {
        shipped_sources()
    } else {
        Vec::new()
    };
    let mut objects = Objects::default();
    for file in files(dir, &["cedar", "yaml", "yml"])? {
        if file.extension().is_some_and(|e| e == "cedar") {
            sources.push(PolicySource::central(
                file.display().to_string(),
                read(&file)?,
            ));
        } else {
            objects.load(&file)?;
        }
    }
    sources.extend(objects.policies);
    if sources.is_empty() {
        return Err(InputError::Invalid(format!(
            "{}: no policies found (expected *.cedar files or GovernancePolicy manifests)",
            dir.display()
        )));
    }
    Ok(sources)
}

fn print_policy_errors(err: &PolicySetError, output: OutputFormat) {
    match output {
        OutputFormat::Table => {
            for e in &err.errors {
                eprintln!("{}", render(e));
            }
            eprintln!(
                "{} error(s); the policy set is refused as a whole",
                err.errors.len()
            );
        }
        OutputFormat::Json => {
            let errors: Vec<_> = err
                .errors
                .iter()
                .map(|e| {
                    json!({"kind": e.kind, "source": e.source_name, "policyId": e.policy_id,
                           "line": e.line, "column": e.column, "message": e.message, "help": e.help})
                })
                .collect();
            println!("{}", json!({"valid": false, "errors": errors}));
        }
    }
}

fn validate(args: &ValidateArgs) -> Result<Exit, InputError> {
    let sources = load_policies(&args.dir, args.policies.defaults)?;
    let count = sources.len();
    match PolicyEngine::new(sources) {
        Ok(engine) => {
            match args.output {
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = engine
                        .policies()
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.clone(),
                                format!("{:?}", p.effect).to_lowercase(),
                                p.domain.clone().unwrap_or_else(|| "central".into()),
                                format!("{}:{}", p.source, p.line),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "EFFECT", "SCOPE", "SOURCE"], &rows);
                    println!(
                        "valid: {} policies from {count} source(s), version {}",
                        engine.policies().len(),
                        engine.version()
                    );
                }
                OutputFormat::Json => {
                    println!(
                        "{}",
                        json!({"valid": true, "version": engine.version(), "policies": engine.policies()})
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Err(err) => {
            print_policy_errors(&err, args.output);
            Ok(Exit::Failed)
        }
    }
}

fn base_sources(policies: Option<&Path>, defaults: bool) -> Result<Vec<PolicySource>, InputError> {
    match policies {
        Some(dir) => load_policies(dir, defaults),
        None => Ok(shipped_sources()),
    }
}

fn test(args: &TestArgs) -> Result<Exit, InputError> {
    let base = base_sources(args.policies.as_deref(), args.defaults)?;
    if let Err(err) = PolicyEngine::new(base.clone()) {
        print_policy_errors(&err, args.output);
        return Ok(Exit::Failed);
    }
    let paths = files(&args.dir, &["yaml", "yml"])?;
    if paths.is_empty() {
        return Err(InputError::Invalid(format!(
            "{}: no policy tests (*.yaml) found",
            args.dir.display()
        )));
    }
    let mut exit = Exit::Ok;
    let mut all: Vec<(String, CaseResult)> = Vec::new();
    for path in &paths {
        let text = read(path)?;
        let loaded = match testfile::parse(&path.display().to_string(), &text) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{}", render(&e));
                exit = Exit::BadInput;
                continue;
            }
        };
        match loaded.run(&base) {
            Ok(results) => all.extend(results.into_iter().map(|r| (path.display().to_string(), r))),
            Err(err) => {
                print_policy_errors(&err, args.output);
                exit = Exit::BadInput;
            }
        }
    }
    let failed = all.iter().filter(|(_, r)| !r.passed).count();
    match args.output {
        OutputFormat::Table => {
            for (file, r) in &all {
                let mark = if r.passed { "PASS" } else { "FAIL" };
                println!("{mark}  {file}:{}  {}", r.line, r.name);
                if !r.passed {
                    print!("{}", reason_diff(r));
                }
            }
            println!("{} passed, {failed} failed", all.len() - failed);
        }
        OutputFormat::Json => {
            let cases: Vec<_> = all
                .iter()
                .map(|(file, r)| json!({"file": file, "case": r}))
                .collect();
            println!(
                "{}",
                json!({"passed": all.len() - failed, "failed": failed, "cases": cases})
            );
        }
    }
    if exit == Exit::Ok && failed > 0 {
        exit = Exit::Failed;
    }
    Ok(exit)
}

/// Expected against actual, one line per item, as a unified diff.
fn reason_diff(r: &CaseResult) -> String {
    let mut expected = format!("outcome: {}\n", r.expected.outcome);
    for id in &r.expected.reasons {
        expected.push_str(&format!("reason: {id}\n"));
    }
    if let Some(fields) = &r.expected.granted_fields {
        expected.push_str(&format!("grantedFields: {}\n", fields.join(", ")));
    }
    if let Some(until) = r.expected.active_until {
        expected.push_str(&format!("activeUntil: {until}\n"));
    }
    let mut actual = format!("outcome: {}\n", r.actual.outcome);
    for id in r.actual.reason_ids() {
        actual.push_str(&format!("reason: {id}\n"));
    }
    if r.expected.granted_fields.is_some() {
        let mut fields = r.actual.granted_fields.clone();
        fields.sort();
        actual.push_str(&format!("grantedFields: {}\n", fields.join(", ")));
    }
    if r.expected.active_until.is_some() {
        let until = r
            .actual
            .active_until
            .map(|t| t.to_string())
            .unwrap_or_default();
        actual.push_str(&format!("activeUntil: {until}\n"));
    }
    let mut out = String::from("      --- expected\n      +++ actual\n");
    for change in similar::TextDiff::from_lines(&expected, &actual).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(&format!("      {sign}{change}"));
    }
    for reason in &r.actual.reasons {
        out.push_str(&format!(
            "      ({}) {}: {}\n",
            reason.kind.as_str(),
            reason.id,
            reason.message
        ));
    }
    out
}

fn one<T: Clone>(path: &Path, kind: &str, found: &BTreeMap<String, T>) -> Result<T, InputError> {
    let mut values = found.values();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v.clone()),
        (None, _) => Err(InputError::Invalid(format!(
            "{}: no {kind} found",
            path.display()
        ))),
        (Some(_), Some(_)) => Err(InputError::Invalid(format!(
            "{}: more than one {kind}; give a file with one",
            path.display()
        ))),
    }
}

fn timestamp(flag: &str, value: Option<&str>) -> Result<Timestamp, InputError> {
    match value {
        None => Ok(Timestamp::now()),
        Some(v) => v.parse().map_err(|e| {
            InputError::Invalid(format!(
                "--{flag} `{v}` is not an RFC 3339 time (e.g. 2025-06-01T00:00:00Z): {e}"
            ))
        }),
    }
}

fn explain(args: &ExplainArgs) -> Result<Exit, InputError> {
    let load = |path: &Path| -> Result<Objects, InputError> {
        let mut objects = Objects::default();
        objects.load(path)?;
        Ok(objects)
    };
    let principal = one(&args.principal, "Domain", &load(&args.principal)?.domains)?;
    let product = one(&args.product, "DataProduct", &load(&args.product)?.products)?;
    let licence = one(&args.licence, "Licence", &load(&args.licence)?.licences)?;
    let provider = match &args.provider {
        Some(path) => one(path, "Domain", &load(path)?.domains)?,
        None if principal.metadata.name.as_deref() == Some(product.spec.domain.as_str()) => {
            principal.clone()
        }
        None => {
            return Err(InputError::Invalid(format!(
                "the product belongs to domain `{}`; pass its manifest with --provider FILE",
                product.spec.domain
            )));
        }
    };
    let now = timestamp("now", args.now.as_deref())?;
    let start = match &args.start {
        Some(s) => timestamp("start", Some(s))?,
        None => now,
    };
    let end = match &args.end {
        Some(e) => timestamp("end", Some(e))?,
        None => start
            .saturating_add(SignedDuration::from_hours(24 * i64::from(args.days)))
            .map_err(|e| InputError::Invalid(format!("--days {}: {e}", args.days)))?,
    };
    let purpose = args.purpose.trim();
    if purpose.is_empty() {
        return Err(InputError::Invalid("--purpose must not be empty".into()));
    }
    let request = DataSharingAgreementSpec {
        consumer: principal.metadata.name.clone().unwrap_or_default(),
        product: ObjectRef {
            namespace: product
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: product.metadata.name.clone().unwrap_or_default(),
        },
        purpose: Token(purpose.to_string()),
        justification: None,
        fields: args
            .fields
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .map(|f| FieldName(f.to_string()))
            .collect(),
        start: Some(start.to_string()),
        end: end.to_string(),
        licence: AcceptedLicence {
            name: licence.metadata.name.clone().unwrap_or_default(),
            version: args
                .licence_version
                .clone()
                .unwrap_or_else(|| licence.spec.version.clone()),
        },
        commercial_use: args.commercial,
        redistribution: args.redistribution,
        dpia_reference: args.dpia_reference.clone(),
    };
    let mut product = product;
    if product.metadata.namespace.is_none() {
        product.metadata.namespace = Some("default".into());
    }
    let sources = base_sources(args.policies.as_deref(), args.defaults)?;
    let engine = match PolicyEngine::new(sources) {
        Ok(e) => e,
        Err(err) => {
            print_policy_errors(&err, args.output);
            return Ok(Exit::Failed);
        }
    };
    let input = DecisionInput {
        action: if args.subscribe {
            AccessAction::Subscribe
        } else {
            AccessAction::Read
        },
        owner_approved: args.approved,
        existing_agreement: args.existing,
        ..DecisionInput::new(&principal, &provider, &product, &licence, &request, now)
    };
    let decision = engine.decide(&input);
    match args.output {
        OutputFormat::Json => println!("{}", json!({"request": request, "decision": decision})),
        OutputFormat::Table => print_decision(&request, &decision),
    }
    Ok(Exit::Ok)
}

fn print_decision(request: &DataSharingAgreementSpec, d: &Decision) {
    println!("Decision:       {}", d.outcome);
    println!("Consumer:       {}", request.consumer);
    println!(
        "Product:        {}/{}",
        request.product.namespace, request.product.name
    );
    println!("Purpose:        {}", request.purpose.as_str());
    if !d.granted_fields.is_empty() {
        println!("Granted fields: {}", d.granted_fields.join(", "));
    }
    if let (Some(from), Some(until)) = (d.active_from, d.active_until) {
        println!("Active:         {from} until {until}");
    }
    if let Some(l) = &d.licence {
        println!("Licence:        {} {}", l.name, l.version);
        if let Some(a) = &l.attribution {
            println!("Attribution:    {a}");
        }
        if let Some(r) = l.retention_days {
            println!("Retention:      delete within {r} days after access ends");
        }
    }
    println!("Policy set:     {}", d.policy_set_version);
    println!("Reasons:");
    let rows: Vec<Vec<String>> = d
        .reasons
        .iter()
        .map(|r| vec![r.kind.as_str().to_string(), r.id.clone(), r.message.clone()])
        .collect();
    print_table(&["KIND", "ID", "MESSAGE"], &rows);
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AgreementChange {
    agreement: String,
    old: Decision,
    new: Decision,
}

fn diff(args: &DiffArgs) -> Result<Exit, InputError> {
    let old_sources = load_policies(&args.old, args.policies.defaults)?;
    let new_sources = load_policies(&args.new, args.policies.defaults)?;
    let (old, new) = match (
        PolicyEngine::new(old_sources),
        PolicyEngine::new(new_sources),
    ) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            for (label, result) in [("OLD", o.err()), ("NEW", n.err())] {
                if let Some(err) = result {
                    eprintln!("{label} policies are invalid:");
                    print_policy_errors(&err, args.output);
                }
            }
            return Ok(Exit::Failed);
        }
    };
    let mut objects = Objects::default();
    for path in &args.agreements {
        for file in files(path, &["yaml", "yml"])? {
            objects.load(&file)?;
        }
    }
    diff_objects(args, old, new, objects)
}

impl DiffArgs {
    /// Whether the agreements come from the cluster (`--live`).
    pub fn is_live(&self) -> bool {
        self.live
    }
}

/// `policy diff --live`: the same comparison over the cluster's agreements,
/// Domains, DataProducts and Licences (given as their JSON/YAML documents).
pub fn diff_live(args: &DiffArgs, documents: Vec<serde_yaml::Value>) -> Exit {
    let result = (|| {
        let old = load_policies(&args.old, args.policies.defaults)?;
        let new = load_policies(&args.new, args.policies.defaults)?;
        let (old, new) = match (PolicyEngine::new(old), PolicyEngine::new(new)) {
            (Ok(o), Ok(n)) => (o, n),
            (o, n) => {
                for (label, result) in [("OLD", o.err()), ("NEW", n.err())] {
                    if let Some(err) = result {
                        eprintln!("{label} policies are invalid:");
                        print_policy_errors(&err, args.output);
                    }
                }
                return Ok(Exit::Failed);
            }
        };
        let mut objects = Objects::default();
        let source = Path::new("<cluster>");
        for doc in documents {
            objects.add(source, "", doc)?;
        }
        diff_objects(args, old, new, objects)
    })();
    result.unwrap_or_else(|e| {
        eprintln!("{}", render(&e));
        Exit::BadInput
    })
}

fn diff_objects(
    args: &DiffArgs,
    old: PolicyEngine,
    new: PolicyEngine,
    objects: Objects,
) -> Result<Exit, InputError> {
    if objects.agreements.is_empty() {
        return Err(InputError::Invalid(
            "no DataSharingAgreement found in the --agreements files (or, with --live, in the cluster)".into(),
        ));
    }
    let now = timestamp("now", args.now.as_deref())?;
    let mut labels = Vec::new();
    let mut inputs = Vec::new();
    for a in &objects.agreements {
        let label = format!(
            "{}/{}",
            a.metadata.namespace.as_deref().unwrap_or("default"),
            a.metadata.name.as_deref().unwrap_or("")
        );
        let missing = |what: String| {
            InputError::Invalid(format!(
                "agreement {label}: {what} not found in the --agreements files"
            ))
        };
        let product_key = format!("{}/{}", a.spec.product.namespace, a.spec.product.name);
        let product = objects
            .products
            .get(&product_key)
            .ok_or_else(|| missing(format!("DataProduct {product_key}")))?;
        let consumer = objects
            .domains
            .get(&a.spec.consumer)
            .ok_or_else(|| missing(format!("consumer Domain {}", a.spec.consumer)))?;
        let provider = objects
            .domains
            .get(&product.spec.domain)
            .ok_or_else(|| missing(format!("provider Domain {}", product.spec.domain)))?;
        let licence = objects
            .licences
            .get(&product.spec.licence)
            .ok_or_else(|| missing(format!("Licence {}", product.spec.licence)))?;
        let status = a.status.as_ref();
        let approved = status
            .and_then(|s| s.approval.as_ref())
            .is_some_and(|ap| ap.decision == "Approved");
        let existing = status.and_then(|s| s.phase) == Some(AgreementPhase::Active);
        labels.push(label);
        inputs.push(DecisionInput {
            owner_approved: approved,
            existing_agreement: existing,
            ..DecisionInput::new(consumer, provider, product, licence, &a.spec, now)
        });
    }
    let changes = redecide(&old, &new, &inputs);
    let changes: Vec<AgreementChange> = changes
        .into_iter()
        .map(|c| AgreementChange {
            agreement: labels.get(c.index).cloned().unwrap_or_default(),
            old: c.old,
            new: c.new,
        })
        .collect();
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            json!({"oldVersion": old.version(), "newVersion": new.version(), "agreements": inputs.len(), "changes": changes})
        ),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = changes
                .iter()
                .map(|c| {
                    let why = c
                        .new
                        .reasons
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    vec![
                        c.agreement.clone(),
                        c.old.outcome.to_string(),
                        c.new.outcome.to_string(),
                        why,
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print_table(&["AGREEMENT", "OLD", "NEW", "NEW REASONS"], &rows);
                println!();
                for c in &changes {
                    println!("{}: {} -> {}", c.agreement, c.old.outcome, c.new.outcome);
                    for r in &c.old.reasons {
                        println!("  - ({}) {}: {}", r.kind.as_str(), r.id, r.message);
                    }
                    for r in &c.new.reasons {
                        println!("  + ({}) {}: {}", r.kind.as_str(), r.id, r.message);
                    }
                }
            }
            println!(
                "{} of {} agreement(s) change outcome ({} -> {})",
                changes.len(),
                inputs.len(),
                old.version(),
                new.version()
            );
        }
    }
    Ok(if args.exit_code && !changes.is_empty() {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
