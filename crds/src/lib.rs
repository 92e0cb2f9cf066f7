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
    serde_yaml::to_string(crd).expect("CRDs always serialize")
}

/// All CRDs as one multi-document YAML stream, byte-for-byte stable across runs so the
/// committed copies can be checked for staleness with a plain diff.
pub fn crds_yaml() -> String {
    all_crds()
        .iter()
        .map(|crd| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
