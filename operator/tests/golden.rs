//! Golden tests: the desired objects of every Workspace and service in `examples/` (and in
//! `tests/fixtures/`, for what `hds up` has no use for: autoscaling, exposure), compared with
//! `tests/golden/<kind>-<name>.json`. `HDS_UPDATE_GOLDEN=1` rewrites the files instead.

use std::path::{Path, PathBuf};

use hds_crds::{Manifest, Workspace, parse_manifests};
use hds_operator::desired::{
    Context, WorkspaceService, dicom_service, fhir_service, medtech_service, workspace,
};
use serde_json::Value;

/// Resources read from files have no uid; the apiserver would give them one.
const UID: &str = "00000000-0000-4000-8000-000000000001";

fn examples() -> Vec<Manifest> {
    manifests_in("../examples")
}

/// Every manifest in the YAML files of `dir` (relative to the crate), in file-name order.
fn manifests_in(dir: &str) -> Vec<Manifest> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            parse_manifests(&std::fs::read_to_string(f).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect()
}

/// Object keys in order at every level, so the files do not depend on field order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<_> = o.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.values().any(has_null),
        Value::Array(a) => a.iter().any(has_null),
        _ => false,
    }
}

fn check(kind: &str, name: &str, objects: Vec<Value>) -> Option<String> {
    assert!(
        !objects.iter().any(has_null),
        "{kind} {name}: an object holds a null"
    );
    let text = serde_json::to_string_pretty(&sorted(Value::Array(objects))).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{}-{name}.json", kind.to_lowercase()));
    if std::env::var("HDS_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    (want != text).then(|| {
        format!(
            "{} differs from what {kind} '{name}' now yields (HDS_UPDATE_GOLDEN=1 rewrites it)",
            path.display()
        )
    })
}

/// Checks the services of `manifests` against their golden files: how many, and the failures.
fn check_services(manifests: &[Manifest]) -> (usize, Vec<String>) {
    let workspaces: Vec<&Workspace> = manifests
        .iter()
        .filter_map(|m| match m {
            Manifest::Workspace(w) => Some(w),
            _ => None,
        })
        .collect();
    let ws = |name: &str| {
        workspaces
            .iter()
            .copied()
            .find(|w| w.metadata.name.as_deref() == Some(name))
    };
    let ctx = Context::new("ghcr.io/hds-dev/hds:0.1.0");
    let mut failures = Vec::new();
    let mut seen = 0;
    for m in manifests {
        let (kind, name) = (m.kind(), m.name().unwrap_or_default());
        let desired = match m.clone() {
            Manifest::FhirService(mut s) => {
                s.metadata.uid = Some(UID.into());
                fhir_service(&s, ws(&s.spec.workspace_ref.name), &ctx)
            }
            Manifest::DicomService(mut s) => {
                s.metadata.uid = Some(UID.into());
                dicom_service(&s, ws(&s.spec.workspace_ref.name), &ctx)
            }
            Manifest::MedTechService(mut s) => {
                s.metadata.uid = Some(UID.into());
                medtech_service(&s, ws(&s.spec.workspace_ref.name), &ctx)
            }
            _ => continue,
        };
        seen += 1;
        let desired = desired.unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        failures.extend(check(kind, name, desired.objects()));
    }
    (seen, failures)
}

#[test]
fn the_examples_yield_their_golden_objects() {
    let (seen, failures) = check_services(&examples());
    assert_eq!(seen, 3, "one example of each service kind");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Checks the Workspaces of `manifests` against their golden files, each with the services
/// naming it (`services_expected` of them): how many, and the failures.
fn check_workspaces(manifests: &[Manifest], services_expected: usize) -> (usize, Vec<String>) {
    let ctx = Context::new("ghcr.io/hds-dev/hds:0.1.0");
    let mut failures = Vec::new();
    let mut seen = 0;
    for m in manifests {
        let Manifest::Workspace(ws) = m else { continue };
        let mut ws = ws.clone();
        ws.metadata.uid = Some(UID.into());
        let name = ws.metadata.name.clone().unwrap_or_default();
        // What the controller would find naming the Workspace in its namespace.
        let services: Vec<WorkspaceService> = manifests
            .iter()
            .filter_map(|m| match m {
                Manifest::FhirService(s) if s.spec.workspace_ref.name == name => {
                    WorkspaceService::fhir(s)
                }
                Manifest::DicomService(s) if s.spec.workspace_ref.name == name => {
                    WorkspaceService::dicom(s)
                }
                Manifest::MedTechService(s) if s.spec.workspace_ref.name == name => {
                    WorkspaceService::medtech(s)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            services.len(),
            services_expected,
            "Workspace {name}: its services"
        );
        seen += 1;
        let desired =
            workspace(&ws, &services, &ctx).unwrap_or_else(|e| panic!("Workspace {name}: {e}"));
        failures.extend(check("Workspace", &name, desired.objects()));
    }
    (seen, failures)
}

#[test]
fn the_example_workspaces_yield_their_golden_objects() {
    let (seen, failures) = check_workspaces(&examples(), 3);
    assert_eq!(seen, 1, "the example Workspace");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An autoscaled FhirService behind an Ingress and a DicomService behind an HTTPRoute, and
/// their Workspace, whose issuer mints tokens for their public URLs too.
#[test]
fn exposed_services_yield_their_golden_objects() {
    let manifests = manifests_in("tests/fixtures");
    let (services, mut failures) = check_services(&manifests);
    assert_eq!(services, 2, "tests/fixtures/exposed.yaml's services");
    let (workspaces, more) = check_workspaces(&manifests, 2);
    assert_eq!(workspaces, 1, "tests/fixtures/exposed.yaml's Workspace");
    failures.extend(more);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
