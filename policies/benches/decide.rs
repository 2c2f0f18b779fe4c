//! Decision latency with the shipped policies and with 1,000 / 10,000 extra
//! domain policies over 10,000 products, indexed by domain versus the same
//! policies all evaluated (what the stock authorizer does with one set); and
//! re-deciding 100,000 agreements after a central policy change.
//!
//! `cargo bench -p datamesh-policies --bench decide` prints p50/p99 and
//! decisions per second first, then criterion's estimates.

use criterion::{BenchmarkId, Criterion, criterion_group};
use datamesh_crds::agreement::{AcceptedLicence, DataSharingAgreementSpec, FieldName};
use datamesh_crds::domain::Token;
use datamesh_crds::product::FieldClassification;
use datamesh_crds::{
    Classification, DataProduct, Domain, Licence, LifecycleStage, ObjectRef, Sector,
};
use datamesh_policies::testfile::{TestDomain, TestLicence, TestProduct, domain, licence, product};
use datamesh_policies::{DecisionInput, PolicyEngine, PolicySource, redecide};
use jiff::Timestamp;
use std::collections::BTreeMap;
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

fn engines() -> Vec<(String, PolicyEngine)> {
    let build = |extra| PolicyEngine::with_defaults(extra).unwrap_or_else(|e| panic!("{e:?}"));
    vec![
        ("shipped".into(), build(vec![])),
        ("indexed+1000".into(), build(extra_policies(1_000, true))),
        ("indexed+10000".into(), build(extra_policies(10_000, true))),
        ("unindexed+1000".into(), build(extra_policies(1_000, false))),
        (
            "unindexed+10000".into(),
            build(extra_policies(10_000, false)),
        ),
    ]
}

/// p50/p99 of single decisions and single-core decisions per second.
fn percentiles(w: &World, engines: &[(String, PolicyEngine)]) {
    let reqs = requests(w, 20_000);
    let inputs = inputs(w, &reqs);
    println!(
        "{:<18} {:>10} {:>10} {:>14}",
        "policy set", "p50 µs", "p99 µs", "decisions/s"
    );
    for (name, engine) in engines {
        let n = if name.starts_with("unindexed+10000") {
            500
        } else {
            inputs.len()
        };
        let mut times: Vec<f64> = Vec::with_capacity(n);
        let start = Instant::now();
        for input in inputs.iter().take(n) {
            let t = Instant::now();
            black_box(engine.decide(black_box(input)));
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let total = start.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "{name:<18} {:>10.1} {:>10.1} {:>14.0}",
            at(0.50),
            at(0.99),
            n as f64 / total
        );
    }
}

fn bench_decide(c: &mut Criterion, w: &World, engines: &[(String, PolicyEngine)]) {
    let reqs = requests(w, 1_000);
    let inputs = inputs(w, &reqs);
    let mut group = c.benchmark_group("decide");
    group
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1));
    for (name, engine) in engines {
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                black_box(engine.decide(black_box(&inputs[i])))
            })
        });
    }
    group.finish();
}

fn bench_redecide(c: &mut Criterion, w: &World) {
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
    let start = Instant::now();
    let changed = redecide(&old, &new, &inputs).len();
    println!(
        "redecide 100000 agreements after a central change: {changed} changed, {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("redecide");
    group.sample_size(10);
    group.bench_function("100000-agreements-central-change", |b| {
        b.iter(|| black_box(redecide(&old, &new, &inputs)))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let w = world();
    let engines = engines();
    percentiles(&w, &engines);
    bench_decide(c, &w, &engines);
    bench_redecide(c, &w);
}

criterion_group!(decide, benches);

fn main() {
    decide();
    Criterion::default().configure_from_args().final_summary();
}
