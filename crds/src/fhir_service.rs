//! `FhirService`: a FHIR R4 server, modeled on Microsoft.HealthcareApis `workspaces/fhirservices`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AuditSpec, AuthenticationMode, AuthenticationSpec, AutoscalingSpec, BlobStorage, CorsSpec,
    ExposureSpec, PostgresStorage, ServiceStatus, WorkspaceRef, default_replicas,
};

// Each printcolumn repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "hds.dev",
    version = "v1alpha1",
    kind = "FhirService",
    namespaced,
    status = "ServiceStatus",
    shortname = "fhir",
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
pub struct FhirServiceSpec {
    /// Fixed at creation: moving a service between Workspaces would change who may call it
    /// and where its identities come from under running clients.
    #[x_kube(validation = ::kube::core::Rule::new("self == oldSelf").message("workspaceRef is immutable"))]
    pub workspace_ref: WorkspaceRef,
    /// FHIR version. Changing it would reinterpret every stored resource, hence immutable.
    #[serde(default)]
    #[x_kube(validation = ::kube::core::Rule::new("self == oldSelf").message("kind is immutable"))]
    pub kind: FhirKind,
    #[serde(default)]
    pub authentication: FhirAuthenticationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationSpec>,
    #[serde(default)]
    pub resource_version_policy: ResourceVersionPolicy,
    #[serde(default)]
    pub storage: FhirStorage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<FhirLimits>,
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

/// FHIR version, spelled as Azure's `kind` property.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FhirKind {
    #[default]
    #[serde(rename = "fhir-R4")]
    FhirR4,
}

/// Azure's `authenticationConfiguration`, including the SMART on FHIR proxy settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirAuthenticationSpec {
    #[serde(default)]
    pub mode: AuthenticationMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Dotted path of the roles claim: `roles` (Entra ID, the default) or `realm_access.roles`
    /// (Keycloak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    #[serde(default)]
    pub smart_proxy_enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smart_identity_providers: Vec<SmartIdentityProvider>,
}

impl FhirAuthenticationSpec {
    /// The subset shared with the other services, so token validation can be implemented once.
    pub fn common(&self) -> AuthenticationSpec {
        AuthenticationSpec {
            mode: self.mode,
            authority: self.authority.clone(),
            audience: self.audience.clone(),
            roles_claim: self.roles_claim.clone(),
        }
    }
}

/// An external identity provider trusted for SMART on FHIR launches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmartIdentityProvider {
    pub authority: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<SmartApplication>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmartApplication {
    pub client_id: String,
    pub audience: String,
    /// e.g. `Read`, as in Azure's `allowedDataActions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_data_actions: Vec<String>,
}

/// Bulk `$export` settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Defaults to the Workspace blob storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BlobStorage>,
}

/// Profile validation beyond `$validate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationSpec {
    /// Refuse (422) creates and updates of resources that do not conform to the profiles their
    /// `meta.profile` names, among the StructureDefinitions stored in the service.
    #[serde(default)]
    pub enforce_profiles: bool,
}

/// Bulk `$import` settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Initial mode accepts imports only while the server is empty and rejects normal writes.
    #[serde(default)]
    pub initial_import_mode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BlobStorage>,
}

/// Azure's resource versioning policy values, spelled exactly as in the Azure API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VersioningPolicy {
    NoVersion,
    #[default]
    Versioned,
    /// Versioned, and updates must carry a matching `If-Match` version.
    VersionedUpdate,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersionPolicy {
    #[serde(default)]
    pub default: VersioningPolicy,
    /// Per-resource-type overrides keyed by FHIR type name (e.g. `Patient`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_type_overrides: BTreeMap<String, VersioningPolicy>,
}

impl ResourceVersionPolicy {
    pub fn for_type(&self, resource_type: &str) -> VersioningPolicy {
        self.resource_type_overrides
            .get(resource_type)
            .copied()
            .unwrap_or(self.default)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirStorage {
    /// Absent means the Workspace default, or the embedded database under `hds up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresStorage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
    /// Maximum entries in a transaction/batch Bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_entry_limit: Option<u32>,
}
