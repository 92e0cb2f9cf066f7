//! Custom resources of the `hds.dev/v1alpha1` API: the Kubernetes rendering of the
//! Microsoft.HealthcareApis (2024-03-31) resource model.

pub mod common;
pub mod dicom_service;
pub mod fhir_service;
pub mod manifest;
pub mod medtech_service;
pub mod workspace;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use dicom_service::{DicomService, DicomServiceSpec};
pub use fhir_service::{FhirService, FhirServiceSpec};
pub use manifest::{Manifest, ManifestError, parse_manifests};
pub use medtech_service::{MedTechService, MedTechServiceSpec};
pub use workspace::{Workspace, WorkspaceSpec, WorkspaceStatus};

pub const GROUP: &str = "hds.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "hds.dev/v1alpha1";

/// All CRDs, in dependency order (Workspace first) so applying them in sequence never
/// references a kind that does not exist yet.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Workspace::crd(),
        FhirService::crd(),
        DicomService::crd(),
        MedTechService::crd(),
    ]
}

/// One CRD as a YAML document (without a leading `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    let json = serde_json::to_value(crd).expect("CRDs always serialize");
    serde_yaml::to_string(&json_to_yaml(&json)).expect("YAML values always serialize")
}

/// The workspace builds serde_json with `arbitrary_precision` (FHIR decimals must keep their
/// digits), and serde_yaml would then print numbers as serde_json's private wrapper struct. So
/// values cross to YAML through this walk, which turns each number back into a YAML number.
pub fn json_to_yaml(v: &serde_json::Value) -> serde_yaml::Value {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    match v {
        J::Null => Y::Null,
        J::Bool(b) => Y::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Y::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Y::Number(u.into())
            } else {
                Y::Number(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
        J::String(s) => Y::String(s.clone()),
        J::Array(a) => Y::Sequence(a.iter().map(json_to_yaml).collect()),
        J::Object(o) => Y::Mapping(
            o.iter()
                .map(|(k, v)| (Y::String(k.clone()), json_to_yaml(v)))
                .collect(),
        ),
    }
}

/// All CRDs as one multi-document YAML stream, byte-for-byte stable across runs so the
/// committed copies can be checked for staleness with a plain diff.
pub fn crds_yaml() -> String {
    all_crds()
        .iter()
        .map(|crd| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
