//! `DicomService`: a DICOMweb server, modeled on Microsoft.HealthcareApis `workspaces/dicomservices`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AuditSpec, AuthenticationSpec, AutoscalingSpec, BlobStorage, CorsSpec, ExposureSpec,
    LocalObjectRef, PostgresStorage, ServiceStatus, WorkspaceRef, default_replicas,
};

// Each printcolumn repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "hds.dev",
    version = "v1alpha1",
    kind = "DicomService",
    namespaced,
    status = "ServiceStatus",
    shortname = "dicom",
    category = "hds",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DicomServiceSpec {
    /// Fixed at creation: moving a service between Workspaces would change who may call it
    /// and where its identities come from under running clients.
    #[x_kube(validation = ::kube::core::Rule::new("self == oldSelf").message("workspaceRef is immutable"))]
    pub workspace_ref: WorkspaceRef,
    #[serde(default)]
    pub authentication: AuthenticationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// One audit record per request (docs/audit.md). AuditEvents need a FHIR store, which a
    /// DICOM service has not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ::kube::core::Rule::new("!has(self.auditEvents) || !self.auditEvents")
        .message("audit.auditEvents is for FHIR services; a DICOM service writes audit records to its log"))]
    pub audit: Option<AuditSpec>,
    #[serde(default)]
    pub storage: DicomStorage,
    /// Partitions change the identity of every stored instance, so, as in Azure, the choice is
    /// fixed at creation.
    #[serde(default)]
    #[x_kube(validation = ::kube::core::Rule::new("self == oldSelf").message("enableDataPartitions is immutable"))]
    pub enable_data_partitions: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_sync: Option<FhirSyncSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<DicomLimitsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<DicomValidationSpec>,
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A HorizontalPodAutoscaler between `minReplicas` and `maxReplicas`; `replicas` is then
    /// only the default of `minReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// An Ingress or HTTPRoute for clients outside the cluster, and the public URL the service
    /// then answers with. Cluster only: `hds up` ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<ExposureSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DicomStorage {
    /// Where instances (the `.dcm` files) live; defaults to the Workspace blob storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobStorage>,
    /// Where the metadata index lives; defaults to the Workspace database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresStorage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DicomLimitsSpec {
    /// The largest STOW request in bytes (default 2 GiB); a larger one is refused with 413 and
    /// nothing of it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_stow_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DicomValidationSpec {
    /// Refuse instances with malformed indexed attributes instead of storing them with a
    /// warning (the default, as Azure does since 2023).
    #[serde(default)]
    pub strict: bool,
}

/// Publishes ImagingStudy resources to a FhirService as instances arrive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirSyncSpec {
    pub fhir_service_ref: LocalObjectRef,
    /// Identifier system used to match DICOM PatientID to a FHIR Patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_identifier_system: Option<String>,
    #[serde(default)]
    pub enabled: bool,
}
