//! Keeps `examples/` and `crds/yaml/` from rotting: every example must parse and pass the CEL
//! rules, and the committed CRD YAML must match the Rust types.

use std::{fs, path::PathBuf};

use hds_crds::{Manifest, parse_manifests};
use kube::core::cel;

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn examples_parse_and_pass_cel() {
    let mut files: Vec<_> = fs::read_dir(repo_path("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "examples missing: {files:?}");

    let mut kinds = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let manifests =
            parse_manifests(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for m in manifests {
            let result = match &m {
                Manifest::Workspace(r) => cel::validate_cel(r),
                Manifest::FhirService(r) => cel::validate_cel(r),
                Manifest::DicomService(r) => cel::validate_cel(r),
                Manifest::MedTechService(r) => cel::validate_cel(r),
                Manifest::Secret { .. } => Ok(()),
                Manifest::Other { kind, .. } => {
                    panic!("{}: unexpected kind {kind}", file.display())
                }
            };
            if let Err(e) = result {
                panic!("{}: {} {:?}: {e:?}", file.display(), m.kind(), m.name());
            }
            kinds.push(m.kind().to_owned());
        }
    }
    for kind in ["Workspace", "FhirService", "DicomService", "MedTechService"] {
        assert!(kinds.iter().any(|k| k == kind), "no example for {kind}");
    }
}

#[test]
fn medtech_example_embeds_the_json_templates() {
    let text = fs::read_to_string(repo_path("examples/medtech-service.yaml")).unwrap();
    let Manifest::MedTechService(medtech) = parse_manifests(&text).unwrap().remove(0) else {
        panic!("not a MedTechService");
    };
    let json = |name: &str| -> serde_json::Value {
        let path = repo_path(&format!("examples/templates/{name}"));
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    };
    assert_eq!(
        medtech.spec.device_mapping.content,
        json("devicemapping.json")
    );
    assert_eq!(
        medtech.spec.fhir_destination.fhir_mapping.content,
        json("fhirmapping.json")
    );
}

#[test]
fn fhir_example_is_secured_by_its_workspace_and_uses_embedded_storage() {
    let text = fs::read_to_string(repo_path("examples/fhir-service.yaml")).unwrap();
    let Manifest::FhirService(fhir) = parse_manifests(&text).unwrap().remove(0) else {
        panic!("not a FhirService");
    };
    // Tokens required; no outside authority, so the Workspace's own issuer is the one trusted.
    assert_eq!(
        fhir.spec.authentication.mode,
        hds_crds::common::AuthenticationMode::Oidc
    );
    assert!(fhir.spec.authentication.authority.is_none());
    assert!(fhir.spec.storage.postgres.is_none());
    assert_eq!(fhir.spec.workspace_ref.name, "demo");
}

#[test]
fn committed_crd_yaml_is_current() {
    let committed = fs::read_to_string(repo_path("crds/yaml/all.yaml"))
        .expect("crds/yaml/all.yaml missing; run scripts/gen-crds.sh");
    assert!(
        committed == hds_crds::crds_yaml(),
        "crds/yaml is stale; run scripts/gen-crds.sh"
    );
    for crd in hds_crds::all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        let committed = fs::read_to_string(repo_path(&format!("crds/yaml/{name}.yaml")))
            .unwrap_or_else(|_| panic!("crds/yaml/{name}.yaml missing; run scripts/gen-crds.sh"));
        assert!(
            committed == hds_crds::crd_yaml(&crd),
            "crds/yaml/{name}.yaml is stale; run scripts/gen-crds.sh"
        );
    }
}

#[test]
fn crds_have_expected_names_and_columns() {
    let crds = hds_crds::all_crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "workspaces.hds.dev",
            "fhirservices.hds.dev",
            "dicomservices.hds.dev",
            "medtechservices.hds.dev"
        ]
    );
    let fhir = &crds[1];
    assert_eq!(fhir.spec.scope, "Namespaced");
    assert_eq!(
        fhir.spec.names.short_names.as_deref(),
        Some(&["fhir".to_owned()][..])
    );
    let columns: Vec<_> = fhir.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("URL", ".status.url"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    assert_eq!(hds_crds::crds_yaml(), hds_crds::crds_yaml());
}
