//! Decision latency with the shipped policies and with 1,000 / 10,000 extra
//! domain policies over 10,000 products, with the engine's index (by domain,
//! action and principal) versus Cedar's stock authorizer over one set holding
//! every policy; the same default rules in Rego evaluated by regorus; and
//! re-deciding 100,000 agreements after a central policy change.
//!
//! `bash scripts/bench-policies.sh` runs this and `opa bench` together;
//! `cargo bench -p datamesh-policies --bench decide` runs this alone. It prints
//! p50/p99 (wall clock and the thread's CPU time) and decisions per second
//! first, then criterion's estimates. With `DATAMESH_BENCH_OUT=DIR` it also
//! writes the Rego input documents for `opa bench` and a results file there.

#[path = "../tests/support/rego.rs"]
mod rego;

use criterion::{BenchmarkId, Criterion, criterion_group};
use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{
    Classification, DataProduct, Domain, Licence, LifecycleStage, ObjectRef, Sector,
};
use datamesh_policies::testfile::{TestDomain, TestLicence, TestProduct, domain, licence, product};
use datamesh_policies::{
    DecisionInput, Outcome, PolicyEngine, PolicySource, PreparedDomain, PreparedInput,
    PreparedLicence, PreparedProduct, redecide, redecide_against,
};
use jiff::Timestamp;
use rustix::time::{ClockId, clock_gettime};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

const DOMAINS: usize = 1_000;
const PRODUCTS_PER_DOMAIN: usize = 10;

struct World {
    domains: Vec<Domain>,
    products: Vec<DataProduct>,
    licence: Licence,
    now: Timestamp,
}

fn world() -> World {
    let domains = (0..DOMAINS)
        .map(|i| {
            let sector = if i % 3 == 0 {
                Sector::Private
            } else {
                Sector::Public
            };
            domain(
                &format!("d{i}"),
                &TestDomain {
                    sector,
                    jurisdiction: "GB".into(),
                    accreditations: vec![],
                },
            )
        })
        .collect();
    let products = (0..DOMAINS * PRODUCTS_PER_DOMAIN)
        .map(|i| {
            let classification = match i % 3 {
                0 => Classification::Open,
                1 => Classification::Internal,
                _ => Classification::Restricted,
            };
            let spec = TestProduct {
                domain: format!("d{}", i / PRODUCTS_PER_DOMAIN),
                classification,
                personal_data: false,
                licence: "lic".into(),
                lifecycle: LifecycleStage::Published,
                sunset_date: None,
                region: Some("GB".into()),
                tags: vec!["bench".into()],
                fields: BTreeMap::from([
                    ("a".to_string(), FieldClassification::Public),
                    ("b".to_string(), FieldClassification::Public),
                ]),
            };
            product(
                &format!("d{}", i / PRODUCTS_PER_DOMAIN),
                &format!("p{i}"),
                &spec,
            )
        })
        .collect();
    let licence = licence(
        "lic",
        &TestLicence {
            version: "1".into(),
            permitted_purposes: vec!["any".into()],
            commercial_use: false,
            redistribution: false,
            attribution: None,
            max_duration_days: Some(365),
            retention_days: Some(30),
            jurisdictions: vec![],
            requires_agreement: false,
        },
    );
    World {
        domains,
        products,
        licence,
        now: "2025-06-01T00:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH),
    }
}

/// `n` permits, spread over the domains; scoped to their domain when `indexed`,
/// else all central (every decision evaluates every one of them).
fn extra_policies(n: usize, indexed: bool) -> Vec<PolicySource> {
    let mut by_domain: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..n {
        let d = i % DOMAINS;
        let text = by_domain.entry(d).or_default();
        text.push_str(&format!(
            "@id(\"d{d}-rule-{i}\")\n@reason(\"d{d} shares tagged data with d{}\")\npermit (principal == DataMesh::Domain::\"d{}\", action == DataMesh::Action::\"Read\", resource is DataMesh::DataProduct)\nwhen {{ resource.domain == DataMesh::Domain::\"d{d}\" && resource.tags.contains(\"t{i}\") }};\n",
            (d + 1) % DOMAINS,
            (d + 1) % DOMAINS
        ));
    }
    by_domain
        .into_iter()
        .map(|(d, text)| {
            if indexed {
                PolicySource::for_domain(format!("GovernancePolicy/d{d}"), format!("d{d}"), text)
            } else {
                PolicySource::central(format!("GovernancePolicy/d{d}"), text)
            }
        })
        .collect()
}

fn requests(w: &World, n: usize) -> Vec<DataSharingAgreementSpec> {
    (0..n)
        .map(|i| {
            let p = &w.products[(i * 7919) % w.products.len()];
            let consumer = format!("d{}", (i * 104_729) % DOMAINS);
            DataSharingAgreementSpec {
                consumer,
                product: ObjectRef {
                    namespace: p.metadata.namespace.clone().unwrap_or_default(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                },
                purpose: Token("research".into()),
                justification: None,
                fields: vec![FieldName("a".into())],
                start: None,
                end: "2025-09-01T00:00:00Z".into(),
                licence: AcceptedLicence {
                    name: "lic".into(),
                    version: "1".into(),
                },
                commercial_use: false,
                redistribution: false,
                dpia_reference: None,
            }
        })
        .collect()
}

fn inputs<'a>(w: &'a World, reqs: &'a [DataSharingAgreementSpec]) -> Vec<DecisionInput<'a>> {
    reqs.iter()
        .map(|r| {
            let d = |name: &str| {
                let i: usize = name.trim_start_matches('d').parse().unwrap_or(0);
                &w.domains[i]
            };
            let pi: usize = r.product.name.trim_start_matches('p').parse().unwrap_or(0);
            let product = &w.products[pi];
            DecisionInput::new(
                d(&r.consumer),
                d(&product.spec.domain),
                product,
                &w.licence,
                r,
                w.now,
            )
        })
        .collect()
}

/// The Cedar form of every object, built once (as the operator keeps them
/// per object version, and as OPA and regorus get their input pre-built).
struct Prepared {
    domains: Vec<PreparedDomain>,
    products: Vec<PreparedProduct>,
    licence: PreparedLicence,
}

fn prepare(w: &World) -> Prepared {
    Prepared {
        domains: w.domains.iter().map(PreparedDomain::new).collect(),
        products: w.products.iter().map(PreparedProduct::new).collect(),
        licence: PreparedLicence::new(&w.licence),
    }
}

fn prepared_inputs<'a>(
    p: &'a Prepared,
    w: &World,
    reqs: &'a [DataSharingAgreementSpec],
) -> Vec<PreparedInput<'a>> {
    reqs.iter()
        .map(|r| {
            let d = |name: &str| {
                let i: usize = name.trim_start_matches('d').parse().unwrap_or(0);
                &p.domains[i]
            };
            let pi: usize = r.product.name.trim_start_matches('p').parse().unwrap_or(0);
            PreparedInput::new(
                d(&r.consumer),
                d(&w.products[pi].spec.domain),
                &p.products[pi],
                &p.licence,
                r,
                w.now,
            )
        })
        .collect()
}

/// (name, engine): Cedar with the index, and Cedar's stock authorizer over
/// one set holding the same policies.
fn engines() -> Vec<(String, PolicyEngine)> {
    let build = |extra| PolicyEngine::with_defaults(extra).unwrap_or_else(|e| panic!("{e:?}"));
    let shipped = build(vec![]);
    let stock_shipped = shipped.with_stock_authorizer();
    vec![
        ("cedar shipped".into(), shipped),
        (
            "cedar indexed+1000".into(),
            build(extra_policies(1_000, true)),
        ),
        (
            "cedar indexed+10000".into(),
            build(extra_policies(10_000, true)),
        ),
        ("stock shipped".into(), stock_shipped),
        (
            "stock+1000".into(),
            build(extra_policies(1_000, false)).with_stock_authorizer(),
        ),
        (
            "stock+10000".into(),
            build(extra_policies(10_000, false)).with_stock_authorizer(),
        ),
    ]
}

/// CPU time of this thread: what a decision costs when the cores are shared
/// (wall time also counts the time other processes ran instead).
fn thread_cpu() -> f64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

/// Latency figures of one engine, in µs, and decisions per second.
struct Latency {
    name: String,
    wall_p50: f64,
    wall_p99: f64,
    cpu_p50: f64,
    cpu_p99: f64,
    per_sec_wall: f64,
    per_sec_cpu: f64,
    n: usize,
}

fn measure(name: &str, n: usize, mut decide: impl FnMut(usize)) -> Latency {
    let mut wall: Vec<f64> = Vec::with_capacity(n);
    let mut cpu: Vec<f64> = Vec::with_capacity(n);
    // Warm up caches and allocator.
    for i in 0..n.min(200) {
        decide(i);
    }
    let start = Instant::now();
    for i in 0..n {
        let c = thread_cpu();
        let t = Instant::now();
        decide(i);
        wall.push(t.elapsed().as_secs_f64() * 1e6);
        cpu.push(thread_cpu() - c);
    }
    let total_cpu: f64 = cpu.iter().sum();
    let total = start.elapsed().as_secs_f64();
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * q) as usize]
    };
    Latency {
        name: name.to_string(),
        wall_p50: at(&mut wall, 0.50),
        wall_p99: at(&mut wall, 0.99),
        cpu_p50: at(&mut cpu, 0.50),
        cpu_p99: at(&mut cpu, 0.99),
        per_sec_wall: n as f64 / total,
        per_sec_cpu: n as f64 / (total_cpu / 1e6),
        n,
    }
}

/// Single decisions, one at a time on one thread: Cedar (indexed and stock)
/// and regorus on the same requests.
fn percentiles(w: &World, engines: &[(String, PolicyEngine)], report: &mut String) {
    let reqs = requests(w, 20_000);
    let inputs = inputs(w, &reqs);
    let prepared = prepare(w);
    let prepared_inputs = prepared_inputs(&prepared, w, &reqs);
    let mut rows = Vec::new();
    // decide_prepared: entities and licence record built once per object
    // (untimed); the context, entity store and evaluation are per decision.
    for (name, engine) in engines.iter().filter(|(n, _)| n.starts_with("cedar")) {
        for (a, b) in inputs.iter().zip(&prepared_inputs).take(2_000) {
            assert_eq!(engine.decide(a), engine.decide_prepared(b), "{name}");
        }
        let name = name.replacen("cedar", "prepared", 1);
        rows.push(measure(&name, prepared_inputs.len(), |i| {
            black_box(engine.decide_prepared(black_box(&prepared_inputs[i])));
        }));
    }
    // decide: everything built from the crds objects on every decision.
    // (`DATAMESH_BENCH_LATENCY_ONLY=prepared`: only the rows above, for profiling.)
    let only_prepared = std::env::var("DATAMESH_BENCH_LATENCY_ONLY").is_ok_and(|v| v == "prepared");
    for (name, engine) in engines.iter().filter(|_| !only_prepared) {
        let n = match name.as_str() {
            "stock+10000" => 300,
            "stock+1000" => 3_000,
            _ => inputs.len(),
        };
        rows.push(measure(name, n, |i| {
            black_box(engine.decide(black_box(&inputs[i])));
        }));
    }

    // regorus: the Rego input documents are built before timing (OPA is timed
    // the same way); so are the prepared objects of the `prepared` rows, while
    // the `cedar` rows include building every entity from the crds objects.
    let mut regorus = rego::engine();
    let documents: Vec<regorus::Value> = inputs
        .iter()
        .map(|i| rego::input_document(i).into())
        .collect();
    let shipped = &engines[0].1;
    let mismatches = inputs
        .iter()
        .zip(&documents)
        .take(2_000)
        .filter(|(input, doc)| {
            let cedar = shipped.decide(input);
            let ids: Vec<String> = cedar.reason_ids().into_iter().map(String::from).collect();
            rego::decide(&mut regorus, (*doc).clone()) != (cedar.outcome, ids)
        })
        .count();
    assert_eq!(
        mismatches, 0,
        "regorus and Cedar disagree on {mismatches} of 2,000 requests"
    );
    rows.push(measure("regorus", 5_000, |i| {
        regorus.set_input(documents[i].clone());
        black_box(regorus.eval_rule(rego::DECISION_RULE.into()).ok());
    }));

    let _ = writeln!(
        report,
        "{:<22} {:>7} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "engine", "n", "wall p50", "wall p99", "cpu p50", "cpu p99", "dec/s wall", "dec/s cpu"
    );
    for r in &rows {
        let _ = writeln!(
            report,
            "{:<22} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>12.0} {:>12.0}",
            r.name,
            r.n,
            r.wall_p50,
            r.wall_p99,
            r.cpu_p50,
            r.cpu_p99,
            r.per_sec_wall,
            r.per_sec_cpu
        );
    }
    print!("{report}");
}

/// The Rego input documents for `opa bench`: one request per classification
/// (open, internal, restricted), with what Cedar decides for each.
fn write_opa_inputs(w: &World, engine: &PolicyEngine, dir: &std::path::Path) {
    let reqs = requests(w, 3);
    let inputs = inputs(w, &reqs);
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("creating {}: {e}", dir.display());
    }
    for (i, input) in inputs.iter().enumerate() {
        let decision = engine.decide(input);
        let expected = serde_json::json!({
            "outcome": decision.outcome.as_str(),
            "reasons": decision.reason_ids(),
        });
        let files = [
            (format!("input-{i}.json"), rego::input_document(input)),
            (format!("expected-{i}.json"), expected),
        ];
        for (file, value) in files {
            let path = dir.join(file);
            if let Err(e) = std::fs::write(&path, value.to_string()) {
                panic!("writing {}: {e}", path.display());
            }
        }
    }
}

fn bench_decide(c: &mut Criterion, w: &World, engines: &[(String, PolicyEngine)]) {
    let reqs = requests(w, 1_000);
    let inputs = inputs(w, &reqs);
    let prepared = prepare(w);
    let prepared_inputs = prepared_inputs(&prepared, w, &reqs);
    let mut group = c.benchmark_group("decide");
    group
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    for (name, engine) in engines.iter().filter(|(n, _)| n.starts_with("cedar")) {
        let mut i = 0;
        let name = name.replacen("cedar", "prepared", 1);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % prepared_inputs.len();
                black_box(engine.decide_prepared(black_box(&prepared_inputs[i])))
            })
        });
    }
    for (name, engine) in engines {
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                black_box(engine.decide(black_box(&inputs[i])))
            })
        });
    }
    let mut regorus = rego::engine();
    let documents: Vec<regorus::Value> = inputs
        .iter()
        .map(|i| rego::input_document(i).into())
        .collect();
    let mut i = 0;
    group.bench_function(BenchmarkId::from_parameter("regorus"), |b| {
        b.iter(|| {
            i = (i + 1) % documents.len();
            regorus.set_input(documents[i].clone());
            black_box(regorus.eval_rule(rego::DECISION_RULE.into()).ok())
        })
    });
    group.finish();
}

/// 100,000 agreements after a central change, 10,000 domain policies in force,
/// on all cores: `redecide` (old and new set, as `policy diff` does) and
/// `redecide_against` (new set against the recorded outcomes, as the operator does).
fn bench_redecide(c: &mut Criterion, w: &World, report: &mut String) {
    let reqs = requests(w, 100_000);
    let inputs = inputs(w, &reqs);
    let old = PolicyEngine::with_defaults(extra_policies(10_000, true))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let change = PolicySource::central(
        "GovernancePolicy/no-private-internal",
        "@id(\"no-private-internal\")\n@reason(\"internal data is not shared with the private sector\")\nforbid (principal, action, resource) when { principal.sector == \"private\" && resource.classification == \"internal\" };\n",
    );
    let mut extra = extra_policies(10_000, true);
    extra.push(change);
    let new = PolicyEngine::with_defaults(extra).unwrap_or_else(|e| panic!("{e:?}"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let start = Instant::now();
    let changed = redecide(&old, &new, &inputs).len();
    let both = start.elapsed().as_secs_f64();
    let previous: Vec<Outcome> = old.decide_all(&inputs).iter().map(|d| d.outcome).collect();
    let start = Instant::now();
    let changed_against = redecide_against(&new, &previous, &inputs).len();
    let against = start.elapsed().as_secs_f64();
    assert_eq!(changed, changed_against);
    let _ = writeln!(
        report,
        "redecide 100000 agreements ({cores} cores): {changed} change outcome; redecide (old+new) {both:.2} s, redecide_against (new vs recorded) {against:.2} s"
    );
    println!("{}", report.lines().last().unwrap_or_default());

    let mut group = c.benchmark_group("redecide");
    group.sample_size(10);
    group.bench_function("100000-agreements-against-recorded", |b| {
        b.iter(|| black_box(redecide_against(&new, &previous, &inputs)))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let w = world();
    let engines = engines();
    let mut report = String::new();
    let out = std::env::var_os("DATAMESH_BENCH_OUT").map(std::path::PathBuf::from);
    if let Some(dir) = &out {
        write_opa_inputs(&w, &engines[0].1, &dir.join("opa-inputs"));
    }
    percentiles(&w, &engines, &mut report);
    // For profiling the single-decision path: the latency table only.
    if std::env::var_os("DATAMESH_BENCH_LATENCY_ONLY").is_some() {
        return;
    }
    bench_redecide(c, &w, &mut report);
    if let Some(dir) = &out {
        let path = dir.join("cedar-regorus.txt");
        if let Err(e) = std::fs::write(&path, &report) {
            panic!("writing {}: {e}", path.display());
        }
    }
    bench_decide(c, &w, &engines);
}

criterion_group!(decide, benches);

fn main() {
    decide();
    Criterion::default().configure_from_args().final_summary();
}
