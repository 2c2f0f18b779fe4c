//! The API server refuses malformed manifests with a message naming the
//! field: the schema's enums and patterns, and each CEL rule of the CRDs.

use datamesh_crds::{DataProduct, DataSharingAgreement, Domain, Licence};
use datamesh_e2e::{fixtures, *};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

/// Creates the object (as raw JSON, so values the Rust types would reject
/// still reach the API server) with a server-side dry run and returns the
/// API server's refusal.
async fn refusal<K>(api: &Api<K>, value: Value) -> anyhow::Result<String>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: DynamicObject = serde_json::from_value(value)?;
    let ar = ApiResource::erase::<K>(&());
    let ns = obj.metadata.namespace.clone();
    let raw: Api<DynamicObject> = match (&ns, api.resource_url().contains("/namespaces/")) {
        (Some(ns), true) => Api::namespaced_with(admin().await?, ns, &ar),
        _ => Api::all_with(admin().await?, &ar),
    };
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match raw.create(&pp, &obj).await {
        Ok(_) => anyhow::bail!("the API server accepted an invalid object"),
        Err(kube::Error::Api(e)) => Ok(e.message),
        Err(e) => Err(e.into()),
    }
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
    } else if let Some((parent, key)) = pointer.rsplit_once('/')
        && let Some(obj) = v.pointer_mut(parent).and_then(Value::as_object_mut)
    {
        obj.insert(key.to_string(), new);
    }
    v
}

fn agreement() -> Value {
    json!({
        "apiVersion": "datamesh.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {
            "consumer": "mobility", "product": {"namespace": "transport", "name": "bus"},
            "purpose": "service-planning", "fields": ["route", "day"],
            "start": "2027-01-01T00:00:00Z", "end": "2027-06-30T00:00:00Z",
            "licence": {"name": "ogl", "version": "3.0"}
        }
    })
}

#[tokio::test]
async fn each_rule_refuses_a_bad_manifest_naming_the_field() -> anyhow::Result<()> {
    let client = admin().await?;
    install_crds(&client).await?;
    let products = Api::<DataProduct>::namespaced(client.clone(), "default");
    let agreements = Api::<DataSharingAgreement>::namespaced(client.clone(), "default");
    let domains = Api::<Domain>::all(client.clone());
    let licences = Api::<Licence>::all(client.clone());
    let good = fixtures::product("p", "default", "transport", "ogl");

    // The valid fixtures pass, so each refusal below is due to its one change.
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    products
        .create(&pp, &serde_json::from_value(good.clone())?)
        .await?;
    agreements
        .create(&pp, &serde_json::from_value(agreement())?)
        .await?;

    let cases: Vec<(&str, anyhow::Result<String>, &str)> = vec![
        (
            "personal data without a lawful basis",
            refusal(
                &products,
                with(
                    with(
                        with(good.clone(), "/spec/personalData", json!(true)),
                        "/spec/classification",
                        json!("personal"),
                    ),
                    "/spec/dpiaReference",
                    json!("DPIA-1"),
                ),
            )
            .await,
            "spec.lawfulBasis is required when spec.personalData is true",
        ),
        (
            "personal data without a DPIA",
            refusal(
                &products,
                with(
                    with(
                        with(good.clone(), "/spec/personalData", json!(true)),
                        "/spec/classification",
                        json!("personal"),
                    ),
                    "/spec/lawfulBasis",
                    json!("publicTask"),
                ),
            )
            .await,
            "spec.dpiaReference is required when spec.personalData is true",
        ),
        (
            "classification personal without personal data",
            refusal(
                &products,
                with(good.clone(), "/spec/classification", json!("personal")),
            )
            .await,
            "spec.personalData must be true when spec.classification is personal",
        ),
        (
            "deprecated without a sunset date",
            refusal(
                &products,
                with(good.clone(), "/spec/lifecycle/stage", json!("deprecated")),
            )
            .await,
            "spec.lifecycle.sunsetDate is required when spec.lifecycle.stage is deprecated",
        ),
        (
            "postgres port without its postgres block",
            refusal(
                &products,
                with(
                    good.clone(),
                    "/spec/outputPorts",
                    json!([{"name": "db", "type": "postgres"}]),
                ),
            )
            .await,
            "postgres is required when type is postgres",
        ),
        (
            "repeated schema field",
            refusal(
                &products,
                with(
                    good.clone(),
                    "/spec/schema",
                    json!([{"name": "a", "type": "text"}, {"name": "a", "type": "int"}]),
                ),
            )
            .await,
            "spec.schema must not repeat a field name",
        ),
        (
            "unknown classification",
            refusal(
                &products,
                with(good.clone(), "/spec/classification", json!("secret")),
            )
            .await,
            "spec.classification",
        ),
        (
            "hostile column name",
            refusal(
                &products,
                with(
                    good.clone(),
                    "/spec/schema",
                    json!([{"name": "x\"; DROP TABLE y; --", "type": "text"}]),
                ),
            )
            .await,
            "spec.schema[0].name",
        ),
        (
            "agreement ending before it starts",
            refusal(
                &agreements,
                with(agreement(), "/spec/end", json!("2026-01-01T00:00:00Z")),
            )
            .await,
            "spec.end must be after spec.start",
        ),
        (
            "agreement repeating a field",
            refusal(
                &agreements,
                with(agreement(), "/spec/fields", json!(["route", "route"])),
            )
            .await,
            "spec.fields must not repeat a field",
        ),
        (
            "agreement with a malformed end",
            refusal(
                &agreements,
                with(agreement(), "/spec/end", json!("next tuesday")),
            )
            .await,
            "spec.end",
        ),
        (
            "domain with a bad jurisdiction",
            refusal(
                &domains,
                with(
                    fixtures::domain("d", &["a"]),
                    "/spec/jurisdiction",
                    json!("Britain"),
                ),
            )
            .await,
            "spec.jurisdiction",
        ),
        (
            "domain repeating a namespace",
            refusal(
                &domains,
                with(
                    fixtures::domain("d", &["a"]),
                    "/spec/namespaces",
                    json!(["a", "a"]),
                ),
            )
            .await,
            "spec.namespaces must not repeat a namespace",
        ),
        (
            "licence mixing 'any' with other purposes",
            refusal(
                &licences,
                with(
                    fixtures::licence("l"),
                    "/spec/permittedPurposes",
                    json!(["any", "research"]),
                ),
            )
            .await,
            "'any' cannot be combined with other purposes",
        ),
    ];
    let mut failures = Vec::new();
    for (what, result, expected) in cases {
        match result {
            Ok(message) if message.contains(expected) => {}
            Ok(message) => failures.push(format!("{what}: message {message:?} lacks {expected:?}")),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
