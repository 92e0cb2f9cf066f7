//! `Workspace`: the grouping and identity boundary, modeled on Microsoft.HealthcareApis
//! `workspaces`. Unlike Azure, which delegates to Entra ID, a Workspace can run its own issuer.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    BlobStorage, CredentialsSecretRef, LocalObjectRef, PostgresStorage, SecretKeySelector,
    condition_types,
};

// Each printcolumn repeats `type_ = "string"`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hds.dev",
    version = "v1alpha1",
    kind = "Workspace",
    namespaced,
    status = "WorkspaceStatus",
    shortname = "hdsws",
    category = "hds",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".status.issuer"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    #[serde(default)]
    pub identity: IdentitySpec,
    #[serde(default)]
    pub defaults: WorkspaceDefaults,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// The Workspace's own token issuer. Every Workspace has one and its services always trust
    /// it; this only changes its URL, key or token lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerSpec>,
    /// Keyed by clientId so server-side apply merges entries instead of replacing the list; the
    /// CEL rule gives the same guarantee where the list-map key is not enforced (client-side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(
        merge_strategy = ::kube::core::ListMerge::Map(vec!["clientId".into()]),
        validation = ::kube::core::Rule::new("self.all(c, self.exists_one(d, d.clientId == c.clientId))")
            .message("identity.clients[].clientId must be unique")
    )]
    pub clients: Vec<WorkspaceClient>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// Externally reachable issuer URL; defaults to one derived from the gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret whose key `signingKey` holds the signing key (PKCS#8 PEM, P-256, for ES256);
    /// generated (and rotated by recreating it) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret_ref: Option<LocalObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_seconds: Option<u32>,
}

/// A client-credentials application allowed to obtain tokens from the Workspace issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = ::kube::core::Rule::new("!(has(self.secretRef) && has(self.secretHash))")
    .message("set at most one of secretRef or secretHash"))]
pub struct WorkspaceClient {
    #[schemars(length(min = 1, max = 253))]
    pub client_id: String,
    /// Secret key holding the plaintext client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
    /// Alternatively a hash of the client secret, so the plaintext never has to live in the
    /// cluster: an `$argon2id$...` PHC string, or `$sha256$` followed by the hex SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    /// Azure data-plane role names, e.g. `FHIR Data Contributor`, `DICOM Data Reader`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Additional SMART scopes granted to the client, e.g. `system/Patient.read`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Storage used by services that do not configure their own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_storage: Option<BlobStorage>,
}

/// Stand-in for Azure's Event Grid integration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsSpec {
    pub mqtt: MqttEvents,
}

fn default_topic_prefix() -> String {
    "hds/events".into()
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttEvents {
    #[x_kube(validation = ::kube::core::Rule::new("self.matches('^mqtts?://[^/]+')")
        .message("brokerUrl must be an mqtt:// or mqtts:// URL"))]
    pub broker_url: String,
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ::kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSummary>,
}

impl WorkspaceStatus {
    pub fn is_ready(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == condition_types::READY && c.status == "True")
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ServiceKind {
    FhirService,
    DicomService,
    MedTechService,
}

/// One row of the Workspace's service overview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    pub kind: ServiceKind,
    pub name: String,
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
