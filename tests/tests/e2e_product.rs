//! A Domain and a DataProduct become Ready against the real API server; a
//! product waits for its Licence, naming it, and becomes Ready when it appears.

use datamesh_crds::condition::{self, READY};
use datamesh_crds::{DataProduct, Domain, Licence};
use datamesh_e2e::{fixtures, *};
use kube::Api;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn ready_condition(p: &DataProduct) -> Option<(String, String, String, Option<i64>)> {
    let c = condition::get(&p.status.as_ref()?.conditions, READY)?;
    Some((
        c.status.clone(),
        c.reason.clone(),
        c.message.clone(),
        c.observed_generation,
    ))
}

#[tokio::test]
async fn domain_and_product_become_ready_and_product_waits_for_licence() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    let _op = Operator::start().await?;

    let ns = unique("transport");
    let dom = unique("transport");
    let lic = unique("ogl");
    create_namespace(&client, &ns).await?;

    let domains = Api::<Domain>::all(client.clone());
    create(&domains, fixtures::domain(&dom, &[&ns])).await?;
    // The Domain becomes Ready, records its namespace, and labels it.
    let d = wait_for(WAIT, || {
        let domains = domains.clone();
        let dom = dom.clone();
        async move {
            let d = domains.get(&dom).await.ok()?;
            condition::is_true(&d.status.as_ref()?.conditions, READY).then_some(d)
        }
    })
    .await?;
    assert_eq!(
        d.status.as_ref().map(|s| s.namespaces.clone()),
        Some(vec![ns.clone()])
    );
    let labelled = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get(&ns)
        .await?;
    assert_eq!(
        labelled
            .metadata
            .labels
            .unwrap_or_default()
            .get("datamesh.dev/domain"),
        Some(&dom)
    );

    // A product whose licence does not exist yet is not Ready, and says which licence.
    let products = Api::<DataProduct>::namespaced(client.clone(), &ns);
    create(
        &products,
        fixtures::product("bus-punctuality", &ns, &dom, &lic),
    )
    .await?;
    let (status, reason, message, generation) = wait_for(WAIT, || {
        let products = products.clone();
        async move { ready_condition(&products.get("bus-punctuality").await.ok()?) }
    })
    .await?;
    assert_eq!(status, "False");
    assert_eq!(reason, "LicenceNotFound");
    assert!(
        message.contains(&lic),
        "message names the licence: {message}"
    );
    assert_eq!(generation, Some(1));

    // Creating the Licence makes the waiting product Ready.
    create(
        &Api::<Licence>::all(client.clone()),
        fixtures::licence(&lic),
    )
    .await?;
    let (status, reason, _, _) = wait_for(WAIT, || {
        let products = products.clone();
        async move {
            ready_condition(&products.get("bus-punctuality").await.ok()?).filter(|c| c.0 == "True")
        }
    })
    .await?;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Ready"));

    // A product in a namespace its Domain does not own is refused with a reason.
    let other_ns = unique("elsewhere");
    create_namespace(&client, &other_ns).await?;
    let elsewhere = Api::<DataProduct>::namespaced(client.clone(), &other_ns);
    create(
        &elsewhere,
        fixtures::product("stray", &other_ns, &dom, &lic),
    )
    .await?;
    let (status, reason, _, _) = wait_for(WAIT, || {
        let elsewhere = elsewhere.clone();
        async move { ready_condition(&elsewhere.get("stray").await.ok()?) }
    })
    .await?;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NamespaceNotOwned")
    );

    delete_namespace(&client, &ns).await;
    delete_namespace(&client, &other_ns).await;
    let _ = domains.delete(&dom, &Default::default()).await;
    let _ = Api::<Licence>::all(client.clone())
        .delete(&lic, &Default::default())
        .await;
    Ok(())
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_writes_nothing() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    let ns = unique("quiet");
    let dom = unique("quiet");
    let lic = unique("quiet-ogl");
    create_namespace(&client, &ns).await?;
    create(
        &Api::<Licence>::all(client.clone()),
        fixtures::licence(&lic),
    )
    .await?;
    create(
        &Api::<Domain>::all(client.clone()),
        fixtures::domain(&dom, &[&ns]),
    )
    .await?;
    let products = Api::<DataProduct>::namespaced(client.clone(), &ns);
    create(&products, fixtures::product("p", &ns, &dom, &lic)).await?;

    // First operator brings everything to Ready.
    let op = Operator::start().await?;
    wait_for(WAIT, || {
        let products = products.clone();
        async move { ready_condition(&products.get("p").await.ok()?).filter(|c| c.0 == "True") }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    op.kill().await?;

    // The resourceVersion of every object of this test (and of what the
    // operator made for it) moves on any write, by anyone.
    let versions = || async {
        let rv = |m: &kube::api::ObjectMeta| m.resource_version.clone().unwrap_or_default();
        let rbac_ns = ns.clone();
        anyhow::Ok(vec![
            rv(&Api::<Domain>::all(client.clone()).get(&dom).await?.metadata),
            rv(&Api::<Licence>::all(client.clone())
                .get(&lic)
                .await?
                .metadata),
            rv(&products.get("p").await?.metadata),
            rv(
                &Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                    .get(&ns)
                    .await?
                    .metadata,
            ),
            rv(
                &Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), &rbac_ns)
                    .get("datamesh-domain-team")
                    .await?
                    .metadata,
            ),
            rv(&Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(
                client.clone(),
                &rbac_ns,
            )
            .get("datamesh-domain-team")
            .await?
            .metadata),
        ])
    };
    let before = versions().await?;

    // A restarted operator re-reconciles every object and writes nothing for
    // objects that did not change. (Other tests' leftovers may legitimately
    // change meanwhile, so the check is on this test's objects.)
    let op = Operator::start().await?;
    wait_for(WAIT, || {
        let op = &op;
        async move {
            let d = op
                .counter("datamesh_reconciles_total", "kind=\"DataProduct\"")
                .await
                .ok()?;
            let l = op
                .counter("datamesh_reconciles_total", "kind=\"Licence\"")
                .await
                .ok()?;
            let m = op
                .counter("datamesh_reconciles_total", "kind=\"Domain\"")
                .await
                .ok()?;
            (d >= 1.0 && l >= 1.0 && m >= 1.0).then_some(())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        versions().await?,
        before,
        "a resync of unchanged objects wrote to the API server"
    );

    delete_namespace(&client, &ns).await;
    let _ = Api::<Domain>::all(client.clone())
        .delete(&dom, &Default::default())
        .await;
    let _ = Api::<Licence>::all(client.clone())
        .delete(&lic, &Default::default())
        .await;
    Ok(())
}
