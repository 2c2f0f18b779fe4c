//! Secrets stay secret: after a full agreement lifecycle (grant, credentials,
//! revocation), neither the operator's logs (at debug level) nor the Events
//! in the provider's and consumer's namespaces contain the provider's admin
//! password, the consumer's granted password or a granted certificate's
//! private key.

use datamesh_crds::agreement::AgreementPhase;
use datamesh_crds::{DataProduct, DataSharingAgreement, Domain, Licence};
use datamesh_e2e::{fixtures, pg, *};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn no_password_in_logs_or_events() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    let log = std::env::temp_dir().join(format!("{}.log", unique("operator-hygiene")));
    let lease = unique("hygiene");
    let op =
        Operator::start_logging_to(&log, &["--lease-name", &lease, "--lease-seconds", "4"]).await?;

    let (provider, consumer) = (unique("transport"), unique("mobility"));
    let (p_ns, c_ns) = (unique("transport"), unique("mobility"));
    let lic = unique("ogl");
    create_namespace(&client, &p_ns).await?;
    create_namespace(&client, &c_ns).await?;
    pg::fixture_store(&client, &p_ns).await?;
    create(
        &Api::<Licence>::all(client.clone()),
        fixtures::licence(&lic),
    )
    .await?;
    let domains = Api::<Domain>::all(client.clone());
    create(&domains, fixtures::domain(&provider, &[&p_ns])).await?;
    create(
        &domains,
        fixtures::domain_with(&consumer, &[&c_ns], "private", &[]),
    )
    .await?;
    create(
        &Api::<DataProduct>::namespaced(client.clone(), &p_ns),
        fixtures::product("bus", &p_ns, &provider, &lic),
    )
    .await?;
    let mut by_cert = fixtures::product("bus-cert", &p_ns, &provider, &lic);
    by_cert["spec"]["outputPorts"][0]["postgres"]["consumerAuth"] =
        serde_json::json!("certificate");
    create(
        &Api::<DataProduct>::namespaced(client.clone(), &p_ns),
        by_cert,
    )
    .await?;
    let agreements = Api::<DataSharingAgreement>::namespaced(client.clone(), &c_ns);
    create(
        &agreements,
        fixtures::agreement(
            "plan",
            &c_ns,
            &consumer,
            (&p_ns, "bus"),
            (&lic, "3.0"),
            "2027-06-30T00:00:00Z",
        ),
    )
    .await?;
    create(
        &agreements,
        fixtures::agreement(
            "plan-cert",
            &c_ns,
            &consumer,
            (&p_ns, "bus-cert"),
            (&lic, "3.0"),
            "2027-06-30T00:00:00Z",
        ),
    )
    .await?;
    let active = |name: &'static str| {
        let agreements = agreements.clone();
        wait_for(WAIT, move || {
            let agreements = agreements.clone();
            async move {
                let a = agreements.get(name).await.ok()?;
                (a.status.as_ref()?.phase == Some(AgreementPhase::Active)).then_some(a)
            }
        })
    };
    let a = active("plan").await?;
    active("plan-cert").await?;
    // the private key's base64 lines, each long enough to be its alone
    let key_lines: Vec<String> = Api::<Secret>::namespaced(client.clone(), &c_ns)
        .get("plan-cert-credentials")
        .await?
        .data
        .unwrap_or_default()
        .get("tls.key")
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .map(str::to_string)
        .collect();
    assert!(!key_lines.is_empty(), "a real private key");
    let secret_name = a
        .status
        .and_then(|s| s.credentials_secret)
        .unwrap_or_default();
    let secret = Api::<Secret>::namespaced(client.clone(), &c_ns)
        .get(&secret_name)
        .await?;
    let granted = secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .unwrap_or_default();
    assert!(granted.len() >= 16, "a real generated password");

    // End them: deletion revokes the grants.
    for name in ["plan", "plan-cert"] {
        agreements.delete(name, &Default::default()).await?;
        wait_for(WAIT, || {
            let agreements = agreements.clone();
            async move { agreements.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await?;
    }
    // the operator's queued Events reach the API server before it stops
    let mut events = Vec::new();
    for ns in [&p_ns, &c_ns] {
        events.push((ns, settled_events(&client, ns, WAIT).await?));
    }
    drop(op);

    let admin_url = pg::url()?;
    let admin_password = admin_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|userinfo| userinfo.split(':').nth(1))
        .unwrap_or_default()
        .to_string();
    assert!(
        !admin_password.is_empty(),
        "the test URL carries a password"
    );
    let logs = std::fs::read_to_string(&log)?;
    assert!(logs.len() > 1000, "the operator logged at debug level");
    let mut secrets = vec![
        granted.clone(),
        admin_url.clone(),
        format!(":{admin_password}@"),
    ];
    secrets.extend(key_lines);
    secrets.retain(|s| !s.is_empty());
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "the operator log contains a secret ({} chars)",
            s.len()
        );
    }
    for (ns, events) in &events {
        assert!(!events.is_empty());
        let text = serde_json::to_string(events)?;
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "an Event in {ns} contains a secret"
            );
        }
    }
    delete_namespace(&client, &p_ns).await;
    delete_namespace(&client, &c_ns).await;
    let _ = domains.delete(&provider, &Default::default()).await;
    let _ = domains.delete(&consumer, &Default::default()).await;
    let _ = Api::<Licence>::all(client.clone())
        .delete(&lic, &Default::default())
        .await;
    let _ = std::fs::remove_file(&log);
    Ok(())
}
