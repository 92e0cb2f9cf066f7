//! The MedTech service's configuration: where device messages come from, the two Azure
//! templates, and the FHIR service the Observations go to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hds_crds::medtech_service::{ErrorPolicy, ObservationIdScheme, ResourceIdentityResolutionType};
use serde::{Deserialize, Serialize};

use super::{AuthConfig, FhirClientConfig, load_yaml};

/// One MedTech service (`hds medtech --config FILE`, or in-process under `hds up`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MedTechServiceConfig {
    pub name: String,
    #[serde(default)]
    pub workspace: String,
    /// Health, metrics, `$validate-mapping` and the HTTP ingestion endpoint listen here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The public base URL; tokens must name it as their audience unless `auth.audience` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub auth: AuthConfig,
    pub mqtt: MqttConfig,
    /// Azure's CollectionContent JSON, unchanged.
    pub device_mapping: serde_json::Value,
    /// Azure's CollectionFhir JSON, unchanged.
    pub fhir_mapping: serde_json::Value,
    pub fhir: FhirClientConfig,
    #[serde(default)]
    pub resolution: ResourceIdentityResolutionType,
    #[serde(default)]
    pub error_policy: ErrorPolicy,
    #[serde(default)]
    pub observation_id_scheme: ObservationIdScheme,
    #[serde(default)]
    pub buffering: BufferingConfig,
    /// `POST /ingest`: device messages over HTTP, for devices without MQTT.
    #[serde(default = "yes")]
    pub http_ingestion: bool,
}

fn yes() -> bool {
    true
}

impl MedTechServiceConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load_yaml(path)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    pub broker_url: String,
    pub topic_filter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_subscription_group: Option<String>,
    #[serde(default = "qos1")]
    pub qos: u8,
    /// Stable across restarts, so the broker keeps the session (and what it has not delivered)
    /// while the service is away. Defaults to `hds-medtech-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// An environment variable whose value is appended to the client id (`<id>-<value>`), so
    /// the replicas of one Deployment, which share this file, connect as distinct clients
    /// (the operator sets `POD_NAME`); two clients with one id would take each other's
    /// session in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_suffix_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the username (a mounted Secret), read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// TLS even when the URL says `mqtt://` (`mqtts://` always is).
    #[serde(default)]
    pub tls: bool,
    /// A PEM CA bundle for brokers with private certificates; the system's roots otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Where error records are published (QoS 1), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_topic: Option<String>,
}

fn qos1() -> u8 {
    1
}

/// How measurements wait to be written: one batch is written at a time while the next fills; a
/// batch goes as soon as the previous write is done and its first message has waited
/// `batchDelayMs` (never more than `flushIntervalMs`), or when `maxMessages` wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BufferingConfig {
    #[serde(default = "flush_interval")]
    pub flush_interval_ms: u64,
    #[serde(default = "batch_delay")]
    pub batch_delay_ms: u64,
    #[serde(default = "max_messages")]
    pub max_messages: usize,
    /// Observations written at once.
    #[serde(default = "write_concurrency")]
    pub write_concurrency: usize,
    /// How long a resolved Device/Patient is trusted before it is looked up again.
    #[serde(default = "identity_ttl")]
    pub identity_cache_ttl_seconds: u64,
}

fn flush_interval() -> u64 {
    1000
}
fn batch_delay() -> u64 {
    50
}
fn max_messages() -> usize {
    20_000
}
fn write_concurrency() -> usize {
    16
}
fn identity_ttl() -> u64 {
    300
}

impl Default for BufferingConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: flush_interval(),
            batch_delay_ms: batch_delay(),
            max_messages: max_messages(),
            write_concurrency: write_concurrency(),
            identity_cache_ttl_seconds: identity_ttl(),
        }
    }
}
