//! The CRD YAML committed under charts/datamesh/crds/ is exactly what the
//! Rust types generate; a change to the types without regenerating fails here.

#[test]
fn committed_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/datamesh/crds");
    let mut stale = Vec::new();
    for (file, crd) in datamesh_crds::crds() {
        let generated =
            datamesh_crds::render_crd(&crd).unwrap_or_else(|e| panic!("render {file}: {e}"));
        let committed = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if committed != generated {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `cargo run -p datamesh-crds --bin crdgen` and commit the result"
    );
}

#[test]
fn every_kind_has_status_printer_columns_and_the_category() {
    for (file, crd) in datamesh_crds::crds() {
        assert_eq!(crd.spec.group, "datamesh.dev", "{file}");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["datamesh".to_string()][..]),
            "{file}"
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty()),
            "{file} has a short name"
        );
        let v = &crd.spec.versions[0];
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{file} has a status subresource"
        );
        let cols: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(cols.contains(&"Age"), "{file} columns {cols:?}");
    }
    let (_, dp) = datamesh_crds::crds()
        .into_iter()
        .find(|(f, _)| f == "dataproducts.yaml")
        .unwrap_or_else(|| panic!("no dataproducts"));
    let cols: Vec<String> = dp.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    for want in ["Domain", "Classification", "Lifecycle", "Ready", "Age"] {
        assert!(
            cols.iter().any(|c| c == want),
            "kubectl get dp shows {want}: {cols:?}"
        );
    }
}
