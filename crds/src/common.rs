//! Types shared by several hds.dev kinds.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types written by the operator on every hds.dev resource.
pub mod condition_types {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
}

/// Reference to a Workspace in the same namespace as the referring resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRef {
    pub name: String,
}

/// Reference to another object (usually a Secret or an hds.dev resource) in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    pub name: String,
}

/// A single key of a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
}

fn default_uri_key() -> String {
    "uri".into()
}

/// A Secret key holding a PostgreSQL connection URL (`postgres://user:pass@host:5432/db`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSecretRef {
    pub name: String,
    #[serde(default = "default_uri_key")]
    pub key: String,
}

fn default_username_key() -> String {
    "username".into()
}

fn default_password_key() -> String {
    "password".into()
}

/// Username/password pair stored in a Secret, used for MQTT brokers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    pub name: String,
    #[serde(default = "default_username_key")]
    pub username_key: String,
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

/// Cross-origin resource sharing, mirroring Azure's `corsConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
// Browsers refuse credentialed responses with a wildcard origin, so accepting the combination
// would only produce a service that silently fails for SPA clients.
#[x_kube(validation = ::kube::core::Rule::new(
    "!(has(self.allowCredentials) && self.allowCredentials && has(self.origins) && '*' in self.origins)"
).message("cors.allowCredentials cannot be combined with origin '*'"))]
pub struct CorsSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub methods: Vec<String>,
    /// Seconds a browser may cache the preflight response (Azure allows 0–99999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 99999))]
    pub max_age: Option<u32>,
    #[serde(default)]
    pub allow_credentials: bool,
}

/// What happens to the database when the owning resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the database; deleting a health-data service must never silently destroy PHI.
    #[default]
    Retain,
    Delete,
}

/// A CloudNativePG `Cluster` in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CnpgRef {
    pub cluster_name: String,
    /// Database to create; defaults to a name derived from the owning resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Role owning the database; defaults to the database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Where a service keeps its relational data. Exactly one source must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = ::kube::core::Rule::new(
    "(has(self.adminSecretRef) ? 1 : 0) + (has(self.cnpg) ? 1 : 0) + (has(self.connectionSecretRef) ? 1 : 0) == 1"
).message("exactly one of adminSecretRef, cnpg or connectionSecretRef must be set"))]
pub struct PostgresStorage {
    /// Secret holding an admin connection URL to a PostgreSQL server; the operator creates a
    /// dedicated database and role per service through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret_ref: Option<ConnectionSecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnpg: Option<CnpgRef>,
    /// Secret holding a ready-to-use connection URL; the operator only runs migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret_ref: Option<ConnectionSecretRef>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Blob storage on a PersistentVolumeClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStorage {
    pub claim_name: String,
    /// When set, the operator creates the claim if it does not exist yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// Sub-directory inside the volume, so several services can share one claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".into()
}

fn default_secret_access_key_key() -> String {
    "secretAccessKey".into()
}

/// S3 access keys stored in a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSecretRef {
    pub name: String,
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

/// An S3-compatible bucket (AWS, MinIO, Ceph RGW, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Endpoint URL; omit for AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Omit to use ambient credentials (IRSA, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<S3CredentialsSecretRef>,
    /// Most self-hosted S3 implementations need path-style addressing.
    #[serde(default)]
    pub force_path_style: bool,
}

/// Where a service keeps blobs (DICOM instances, export/import files). Exactly one must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = ::kube::core::Rule::new("(has(self.filesystem) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1")
    .message("exactly one of filesystem or s3 must be set"))]
pub struct BlobStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// Whether a data-plane service checks bearer tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthenticationMode {
    #[default]
    Oidc,
    /// Spelled out (rather than an `enabled: false` flag) so turning auth off is visible in review.
    None,
}

/// Token validation settings shared by the data-plane services.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationSpec {
    #[serde(default)]
    pub mode: AuthenticationMode,
    /// Token issuer; defaults to the Workspace issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Expected `aud` claim; defaults to the service URL, as in Azure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Dotted path of the roles claim in the authority's tokens: `roles` (Entra ID, the
    /// default) or `realm_access.roles` (Keycloak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
}

/// Audit records of a service: one per request, as JSON lines (docs/audit.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSpec {
    /// `stdout` (the default), `stderr`, `off`, or a file path inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Also keep each record as a FHIR AuditEvent (IHE Basic Audit Log Patterns) in the
    /// service's store.
    #[serde(default)]
    pub audit_events: bool,
}

/// A HorizontalPodAutoscaler (`autoscaling/v2`) for the service's Deployment. While it is set
/// the operator leaves the Deployment's replica count to the autoscaler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
// The apiserver refuses an HPA whose bounds cross; saying so here refuses the spec at apply time
// instead of leaving a service whose autoscaler can never be created.
#[x_kube(validation = ::kube::core::Rule::new(
    "!has(self.minReplicas) || self.maxReplicas >= self.minReplicas"
).message("autoscaling.maxReplicas must be at least minReplicas"))]
pub struct AutoscalingSpec {
    /// The fewest pods; defaults to `spec.replicas` (at least 1, at most `maxReplicas`). Above
    /// 1, a PodDisruptionBudget keeps all but one of them through node drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU use the autoscaler aims at, in percent of the pods' CPU request (default 80).
    /// Utilization is measured against requests, so set `resources.requests.cpu`.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory use the autoscaler aims at, in percent of the pods' memory request; no
    /// memory target unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: Option<i32>,
}

/// How clients outside the cluster reach a service: an Ingress or a Gateway API HTTPRoute made
/// by the operator, or only the URL of a route made elsewhere. The public URL becomes the
/// service's base URL (the absolute URLs it answers) and `status.url`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
// One public URL per service: two routes would each need it.
#[x_kube(validation = ::kube::core::Rule::new("!(has(self.ingress) && has(self.httpRoute))")
    .message("exposure: set at most one of ingress or httpRoute"))]
pub struct ExposureSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteSpec>,
    /// The public base URL, when it cannot be derived from the route (TLS terminated at a
    /// gateway, a load balancer in front, a route made by hand). Wins over the derived one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ::kube::core::Rule::new("self.matches('^https?://[^/]+')")
        .message("exposure.url must be an http:// or https:// URL"))]
    pub url: Option<String>,
}

/// A `networking.k8s.io/v1` Ingress to the service's port 8080.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The IngressClass; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    pub host: String,
    /// Path prefix (default `/`). The service answers at its root, so a longer prefix needs an
    /// ingress controller that strips it (set through `annotations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ::kube::core::Rule::new("self.startsWith('/')")
        .message("ingress.path must start with /"))]
    pub path: Option<String>,
    /// A TLS Secret for `host`; with it the public URL is `https://`, without it `http://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress, read by its controller (cert-manager, rewrites, timeouts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A `gateway.networking.k8s.io/v1` HTTPRoute to the service's port 8080. Gateways terminate
/// TLS, so the public URL is `https://<host><path>`, with the first hostname that is not a
/// wildcard, unless `exposure.url` says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (or their listeners) the route attaches to.
    #[schemars(length(min = 1))]
    pub parent_refs: Vec<GatewayParentRef>,
    #[schemars(length(min = 1))]
    pub hostnames: Vec<String>,
    /// Path prefix (default `/`); the route strips it before the request reaches the service,
    /// which answers at its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ::kube::core::Rule::new("self.startsWith('/')")
        .message("httpRoute.path must start with /"))]
    pub path: Option<String>,
}

/// A Gateway an HTTPRoute attaches to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentRef {
    pub name: String,
    /// The Gateway's namespace; the service's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A listener of the Gateway, when the route must attach to only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// Observed state shared by the service kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded, each carrying the generation it was computed from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ::kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Public base URL clients should use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// In-cluster base URL, used by sibling services (e.g. DICOM → FHIR sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_url: Option<String>,
}

impl ServiceStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    pub fn is_ready(&self) -> bool {
        self.condition(condition_types::READY)
            .is_some_and(|c| c.status == "True")
    }
}

pub(crate) fn default_replicas() -> i32 {
    1
}

/// Schema for Azure mapping templates: kept verbatim because their shape is owned by the
/// MedTech template language, not by this API.
pub(crate) fn preserved_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
