//! Security: what a domain team's identity can and cannot do, enforced by the
//! API server with the RBAC the operator grants per domain.

use datamesh_crds::{DataProduct, Domain, Licence};
use datamesh_e2e::{fixtures, *};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{Patch, PatchParams};
use std::time::Duration;

fn forbidden<T: std::fmt::Debug>(r: &Result<T, impl std::fmt::Debug>) -> bool {
    format!("{r:?}").contains("Forbidden") || format!("{r:?}").contains("forbidden")
}

#[tokio::test]
async fn a_team_acts_in_its_own_namespaces_only() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    let _op = Operator::start().await?;
    let (a, b) = (unique("finance"), unique("transport"));
    let (a_ns, b_ns) = (unique("finance"), unique("transport"));
    let lic = unique("ogl");
    create_namespace(&client, &a_ns).await?;
    create_namespace(&client, &b_ns).await?;
    create(
        &Api::<Licence>::all(client.clone()),
        fixtures::licence(&lic),
    )
    .await?;
    let domains = Api::<Domain>::all(client.clone());
    create(&domains, fixtures::domain(&a, &[&a_ns])).await?;
    create(&domains, fixtures::domain(&b, &[&b_ns])).await?;
    create(
        &Api::<DataProduct>::namespaced(client.clone(), &b_ns),
        fixtures::product("bus", &b_ns, &b, &lic),
    )
    .await?;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bus-reader-credentials", "namespace": b_ns},
        "stringData": {"password": "not-for-finance"}
    }))?;
    Api::<Secret>::namespaced(client.clone(), &b_ns)
        .create(&Default::default(), &secret)
        .await?;
    for ns in [&a_ns, &b_ns] {
        wait_for(Duration::from_secs(60), || {
            let rb = Api::<RoleBinding>::namespaced(client.clone(), ns);
            async move { rb.get("datamesh-domain-team").await.ok() }
        })
        .await?;
    }

    let alice = client_from(&user_kubeconfig(
        &unique("alice"),
        &[&format!("datamesh:{a}")],
    )?)
    .await?;
    // Her own namespace: she may publish a product.
    let own = Api::<DataProduct>::namespaced(alice.clone(), &a_ns);
    create(&own, fixtures::product("rates", &a_ns, &a, &lic)).await?;
    // Another domain's namespace: she may neither create, edit nor delete its products…
    let theirs = Api::<DataProduct>::namespaced(alice.clone(), &b_ns);
    assert!(forbidden(
        &create(&theirs, fixtures::product("fake", &b_ns, &b, &lic)).await
    ));
    let patch = serde_json::json!({"spec": {"classification": "open", "title": "hijacked"}});
    assert!(forbidden(
        &theirs
            .patch("bus", &PatchParams::default(), &Patch::Merge(&patch))
            .await
    ));
    assert!(forbidden(&theirs.delete("bus", &Default::default()).await));
    // …nor read the credentials granted to that domain…
    assert!(forbidden(
        &Api::<Secret>::namespaced(alice.clone(), &b_ns)
            .get("bus-reader-credentials")
            .await
    ));
    // …nor change Domains, Licences or the board's policies.
    let patch = serde_json::json!({"spec": {"accreditations": ["dpia-process"]}});
    assert!(forbidden(
        &Api::<Domain>::all(alice.clone())
            .patch(&a, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    ));
    assert!(forbidden(
        &create(
            &Api::<Licence>::all(alice.clone()),
            fixtures::licence(&unique("mine"))
        )
        .await
    ));
    // Nor write an agreement's status (where the decision lives).
    let status = serde_json::json!({"status": {"phase": "Active"}});
    let dsa = Api::<datamesh_crds::DataSharingAgreement>::namespaced(alice, &a_ns);
    assert!(forbidden(
        &dsa.patch_status("any", &PatchParams::default(), &Patch::Merge(&status))
            .await
    ));

    delete_namespace(&client, &a_ns).await;
    delete_namespace(&client, &b_ns).await;
    let _ = domains.delete(&a, &Default::default()).await;
    let _ = domains.delete(&b, &Default::default()).await;
    let _ = Api::<Licence>::all(client.clone())
        .delete(&lic, &Default::default())
        .await;
    Ok(())
}
