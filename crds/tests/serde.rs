//! Manifests (de)serialise to and from the types without loss, with the
//! camelCase names and defaults users write.

use datamesh_crds::{DataProduct, DataSharingAgreement, Licence};

#[test]
fn product_round_trips_with_defaults() {
    let yaml = r#"
apiVersion: datamesh.dev/v1alpha1
kind: DataProduct
metadata: {name: bus, namespace: transport}
spec:
  domain: transport
  title: Bus punctuality
  description: On-time departures.
  owner: {name: Team, email: team@city.example}
  classification: open
  format: table
  updateFrequency: daily
  lifecycle: {stage: published}
  outputPorts:
  - name: db
    type: postgres
    postgres: {table: bus_punctuality, adminSecretRef: {name: db}}
  schema:
  - {name: route, type: text}
  - {name: nhs_number, type: text, classification: identifier}
  licence: ogl
"#;
    let p: DataProduct = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    let port = p.spec.output_ports[0]
        .postgres
        .as_ref()
        .unwrap_or_else(|| panic!("postgres port"));
    assert_eq!(port.schema, "public", "schema defaults to public");
    assert_eq!(
        port.admin_secret_ref.key, "url",
        "secret key defaults to url"
    );
    assert!(!p.spec.personal_data);
    assert_eq!(
        p.spec
            .field("nhs_number")
            .map(|f| f.classification.as_str()),
        Some("identifier")
    );
    assert_eq!(
        p.spec.field("route").map(|f| f.classification.as_str()),
        Some("public")
    );
    let back = serde_json::to_value(&p).unwrap_or_default();
    assert_eq!(back["spec"]["updateFrequency"], "daily");
    assert_eq!(back["spec"]["outputPorts"][0]["type"], "postgres");
    assert!(
        back["spec"].get("lawfulBasis").is_none(),
        "absent optionals are not written"
    );
    let again: DataProduct = serde_json::from_value(back).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.spec, p.spec);
}

#[test]
fn unknown_enum_values_are_errors() {
    let bad = r#"{"apiVersion":"datamesh.dev/v1alpha1","kind":"Licence","metadata":{"name":"l"},
        "spec":{"title":"t","version":"1","permittedPurposes":["Research!"]}}"#;
    // patterns are the API server's job; the type accepts the string
    assert!(serde_json::from_str::<Licence>(bad).is_ok());
    let bad_phase = r#"{"apiVersion":"datamesh.dev/v1alpha1","kind":"DataSharingAgreement","metadata":{"name":"a"},
        "spec":{"consumer":"c","product":{"namespace":"n","name":"p"},"purpose":"x","fields":["a"],
        "end":"2027-01-01T00:00:00Z","licence":{"name":"l","version":"1"}},"status":{"phase":"Granted"}}"#;
    assert!(serde_json::from_str::<DataSharingAgreement>(bad_phase).is_err());
}

#[test]
fn licence_purposes() {
    let l: Licence = serde_json::from_str(
        r#"{"apiVersion":"datamesh.dev/v1alpha1","kind":"Licence","metadata":{"name":"l"},
        "spec":{"title":"t","version":"1","permittedPurposes":["research"]}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(l.spec.permits_purpose("research"));
    assert!(!l.spec.permits_purpose("marketing"));
    assert!(l.spec.derivatives, "derivatives default to allowed");
}
