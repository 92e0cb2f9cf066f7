//! `MedTechService`: device-data ingestion into FHIR, modeled on Microsoft.HealthcareApis
//! `workspaces/iotconnectors` with MQTT in place of Event Hubs.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AuthenticationSpec, AutoscalingSpec, CredentialsSecretRef, LocalObjectRef, SecretKeySelector,
    ServiceStatus, WorkspaceRef, default_replicas, preserved_object,
};

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "hds.dev",
    version = "v1alpha1",
    kind = "MedTechService",
    namespaced,
    status = "ServiceStatus",
    shortname = "medtech",
    category = "hds",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MedTechServiceSpec {
    /// Fixed at creation: moving a service between Workspaces would change who may call it
    /// and where its identities come from under running clients.
    #[x_kube(validation = ::kube::core::Rule::new("self == oldSelf").message("workspaceRef is immutable"))]
    pub workspace_ref: WorkspaceRef,
    pub ingestion: IngestionSpec,
    /// Tokens for the HTTP endpoints (`/ingest`, `$validate-mapping`).
    #[serde(default)]
    pub authentication: AuthenticationSpec,
    pub device_mapping: MappingTemplate,
    pub fhir_destination: FhirDestination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_policy: Option<ErrorPolicy>,
    /// MQTT topic every error record is published to (QoS 1), beside the log and the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_topic: Option<String>,
    /// How long measurements wait before they are written (about a second by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering: Option<Buffering>,
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A HorizontalPodAutoscaler between `minReplicas` and `maxReplicas`; `replicas` is then
    /// only the default of `minReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestionSpec {
    pub mqtt: MqttIngestion,
    /// `POST /ingest` for devices that cannot speak MQTT (on unless set false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpIngestion>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngestion {
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Buffering {
    /// The longest a measurement waits before it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 300000))]
    pub flush_interval_ms: Option<u32>,
    /// Write once this many messages wait, however young.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_messages: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttIngestion {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    #[x_kube(validation = ::kube::core::Rule::new("self.matches('^mqtts?://[^/]+')")
        .message("brokerUrl must be an mqtt:// or mqtts:// URL"))]
    pub broker_url: String,
    /// e.g. `devices/+/telemetry`.
    pub topic_filter: String,
    /// Subscribe as `$share/<group>/<topicFilter>` so replicas split the stream instead of each
    /// receiving every message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_subscription_group: Option<String>,
    #[serde(default)]
    #[schemars(range(max = 2))]
    pub qos: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<MqttTls>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttTls {
    #[serde(default)]
    pub enabled: bool,
    /// CA bundle for brokers with private certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeySelector>,
    /// Only for development brokers; the operator reports it as Degraded.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// An Azure MedTech mapping template, kept byte-for-byte compatible with Azure's JSON so
/// templates can be copied between the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingTemplate {
    #[schemars(schema_with = "preserved_object")]
    pub content: serde_json::Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirDestination {
    pub fhir_service_ref: LocalObjectRef,
    #[serde(default)]
    pub resource_identity_resolution_type: ResourceIdentityResolutionType,
    pub fhir_mapping: MappingTemplate,
    #[serde(default)]
    pub observation_id_scheme: ObservationIdScheme,
}

/// How Observation ids and identifiers are made. Both are deterministic, so a redelivered
/// message updates the same Observation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ObservationIdScheme {
    /// The identifier system names this MedTech service, so two services writing the same
    /// device and type into one FHIR service never share an Observation.
    #[default]
    Hds,
    /// Azure's own identifier system and ids, so Observations written by Azure's MedTech
    /// service are updated in place after a migration.
    Azure,
}

/// How device/patient references are resolved, spelled as in Azure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ResourceIdentityResolutionType {
    /// Create Device and Patient resources when missing.
    Create,
    #[default]
    Lookup,
    LookupWithEncounter,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ErrorPolicy {
    #[default]
    Retry,
    /// Drop messages that fail normalization instead of blocking the partition.
    DiscardMatchAndExtractErrors,
}
