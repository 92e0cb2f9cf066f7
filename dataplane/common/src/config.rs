//! Service configuration: what one running service needs to know, and nothing about how it was
//! deployed. The operator renders it into a ConfigMap (`hds fhir --config FILE`); `hds up`
//! builds the same value in memory. Both derive it from the custom resource through
//! [`crate::from_spec::fhir_service_config`], so a setting cannot work in one place only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod issuer;
mod medtech;
pub use issuer::*;
pub use medtech::*;

/// Reads a config file in YAML or JSON (JSON is YAML).
fn load_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
    serde_yaml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
}

/// Azure's default FHIR request size limit is 4 MB; a Synthea patient bundle is larger, so ours
/// is 16 MiB by default and configurable.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// Azure's default transaction/batch entry limit.
pub const DEFAULT_TRANSACTION_ENTRY_LIMIT: u32 = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FhirServiceConfig {
    /// The FhirService's name; it appears in logs, metrics and the CapabilityStatement.
    pub name: String,
    #[serde(default)]
    pub workspace: String,
    /// Where `hds fhir` listens. `hds up` serves every service from one listener instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The public base URL (`https://fhir.example.org/fhir`). Without it, links are built from
    /// the request's Host and X-Forwarded-* headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    pub postgres: PostgresConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    #[serde(default)]
    pub resource_version_policy: ResourceVersionPolicyConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub export: ExportConfig,
    #[serde(default)]
    pub import: ImportConfig,
    #[serde(default)]
    pub validation: ValidationConfig,
}

impl FhirServiceConfig {
    /// Reads a config file in YAML or JSON (JSON is YAML).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load_yaml(path)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresConfig {
    /// A libpq connection URL. In a cluster it comes from a Secret, so it may instead be given
    /// as a file to read (`urlFile`) or left to the `HDS_POSTGRES_URL` variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    16
}

impl PostgresConfig {
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            url_file: None,
            pool_size: default_pool_size(),
        }
    }

    /// The connection URL, from the environment, the file, or the inline value, in that order.
    pub fn resolve_url(&self) -> anyhow::Result<String> {
        if let Ok(url) = std::env::var("HDS_POSTGRES_URL")
            && !url.is_empty()
        {
            return Ok(url);
        }
        if let Some(file) = &self.url_file {
            let url = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            return Ok(url.trim().to_owned());
        }
        self.url.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no PostgreSQL configured: set postgres.url, postgres.urlFile or HDS_POSTGRES_URL"
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every data-plane request needs a valid bearer token (the default).
    #[default]
    Oidc,
    /// No token checks at all. Only when named explicitly; the service warns at start-up.
    None,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub mode: AuthMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Further audiences accepted besides `audience` (by default the base URL): the service's
    /// other URLs. The operator lists the in-cluster URL of a service whose base URL is public,
    /// since callers inside the cluster (MedTech, DICOM→FHIR sync) ask the Workspace issuer for
    /// tokens naming the URL they call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_audiences: Vec<String>,
    /// Dotted path of the roles claim: `roles` (Entra ID, the default), `realm_access.roles`
    /// (Keycloak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    /// Clock skew tolerated on exp/nbf/iat, in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_seconds: Option<u64>,
    /// The issuer URL of the service's Workspace, trusted besides `authority`. Its tokens carry
    /// Azure's role names in `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_issuer: Option<String>,
    /// Outside authorities trusted for SMART on FHIR apps, as Azure's `smartIdentityProviders`:
    /// only their registered applications, each for its audience and data actions, and always
    /// narrowed by the token's SMART scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smart_identity_providers: Vec<SmartIdentityProviderConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmartIdentityProviderConfig {
    pub authority: String,
    #[serde(default)]
    pub applications: Vec<SmartApplicationConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmartApplicationConfig {
    pub client_id: String,
    pub audience: String,
    /// Azure's spelling: `Read`.
    #[serde(default)]
    pub allowed_data_actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsConfig {
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    #[serde(default)]
    pub allow_credentials: bool,
}

/// Where each request's audit record goes (schema in docs/audit.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// `stdout` (the default), `stderr`, `off`, or a file path to append JSON lines to.
    #[serde(default = "default_audit_log")]
    pub log: String,
    /// Also keep every record as a FHIR AuditEvent (IHE BALP) in the service's own store.
    #[serde(default)]
    pub audit_events: bool,
}

fn default_audit_log() -> String {
    "stdout".into()
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            log: default_audit_log(),
            audit_events: false,
        }
    }
}

/// Azure's resourceVersionPolicyConfiguration values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VersionPolicy {
    /// Only the current version is kept; history shows nothing older.
    #[serde(rename = "no-version")]
    NoVersion,
    /// Every version is kept (the default).
    #[default]
    #[serde(rename = "versioned")]
    Versioned,
    /// As versioned, and an update must carry If-Match.
    #[serde(rename = "versioned-update")]
    VersionedUpdate,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceVersionPolicyConfig {
    #[serde(default)]
    pub default: VersionPolicy,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_type_overrides: BTreeMap<String, VersionPolicy>,
}

impl ResourceVersionPolicyConfig {
    pub fn for_type(&self, resource_type: &str) -> VersionPolicy {
        self.resource_type_overrides
            .get(resource_type)
            .copied()
            .unwrap_or(self.default)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_body")]
    pub max_request_body_bytes: u64,
    #[serde(default = "default_entries")]
    pub transaction_entry_limit: u32,
    /// Page size when the client gives no `_count`.
    #[serde(default = "default_page")]
    pub default_page_size: u32,
    /// The largest `_count` honoured; larger requests are clamped.
    #[serde(default = "default_max_page")]
    pub max_page_size: u32,
}

fn default_body() -> u64 {
    DEFAULT_MAX_REQUEST_BODY_BYTES
}
fn default_entries() -> u32 {
    DEFAULT_TRANSACTION_ENTRY_LIMIT
}
fn default_page() -> u32 {
    20
}
fn default_max_page() -> u32 {
    1000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: default_body(),
            transaction_entry_limit: default_entries(),
            default_page_size: default_page(),
            max_page_size: default_max_page(),
        }
    }
}

/// Where `$export` writes its files, and how big one may grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportConfig {
    /// An object store URL: `file:///var/lib/hds/exports` (the default is a directory under the
    /// system's temporary directory, named after the workspace and service; `hds up` uses its
    /// data directory) or `s3://bucket/prefix` for S3-compatible storage, configured by the
    /// usual `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// An export file is closed, and the next begun, once it holds this many bytes.
    #[serde(default = "default_export_file_bytes")]
    pub max_file_bytes: u64,
}

pub const DEFAULT_EXPORT_FILE_BYTES: u64 = 64 * 1024 * 1024;

fn default_export_file_bytes() -> u64 {
    DEFAULT_EXPORT_FILE_BYTES
}

/// Profile validation on writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationConfig {
    /// Refuse (422) a create or update of a resource that does not conform to a profile its
    /// `meta.profile` names, or names a profile not stored in the service. Off by default,
    /// as in Azure, where only `$validate` judges profiles.
    #[serde(default)]
    pub enforce_profiles: bool,
}

/// Whether `$import` is on, and where it reads from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportConfig {
    /// Off unless turned on, as in Azure: an import writes with the server's own authority.
    #[serde(default)]
    pub enabled: bool,
    /// Azure's initial import mode: `InitialLoad` imports are accepted (creates only), and
    /// writes through the API are refused meanwhile.
    #[serde(default)]
    pub initial_import_mode: bool,
    /// The object store URL inputs must lie in (`file:///...` or `s3://bucket/prefix`); the
    /// default is a directory under the system's temporary directory, named after the
    /// workspace and service (`hds up` uses its data directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            storage_url: None,
            max_file_bytes: DEFAULT_EXPORT_FILE_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_config_refuses_unknown_keys_at_both_levels() {
        let c: FhirSyncConfig = serde_yaml::from_str(
            "fhir: {fhirUrl: http://f, clientId: c}\npatientIdentifierSystem: urn:x\n",
        )
        .unwrap();
        assert_eq!(c.fhir.fhir_url, "http://f");
        assert_eq!(c.fhir.client_id.as_deref(), Some("c"));
        assert_eq!(c.patient_identifier_system.as_deref(), Some("urn:x"));
        for bad in [
            "fhir: {fhirUrl: http://f, fhirUlr: x}\n",
            "fhir: {fhirUrl: http://f}\nsystem: x\n",
        ] {
            assert!(
                serde_yaml::from_str::<FhirSyncConfig>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn minimal_yaml_gets_secure_defaults() {
        let cfg: FhirServiceConfig =
            serde_yaml::from_str("name: fhir\npostgres: {url: 'postgres://x/y'}\n").unwrap();
        assert_eq!(cfg.auth.mode, AuthMode::Oidc);
        assert_eq!(
            cfg.resource_version_policy.for_type("Patient"),
            VersionPolicy::Versioned
        );
        assert_eq!(cfg.limits.transaction_entry_limit, 500);
    }

    #[test]
    fn version_policy_uses_azure_spelling_and_overrides() {
        let cfg: FhirServiceConfig = serde_yaml::from_str(
            "name: f\npostgres: {}\nresourceVersionPolicy: {default: no-version, resourceTypeOverrides: {Patient: versioned-update}}\n",
        )
        .unwrap();
        assert_eq!(
            cfg.resource_version_policy.for_type("Observation"),
            VersionPolicy::NoVersion
        );
        assert_eq!(
            cfg.resource_version_policy.for_type("Patient"),
            VersionPolicy::VersionedUpdate
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_yaml::from_str::<FhirServiceConfig>("name: f\npostgres: {}\nauht: {}\n")
            .unwrap_err();
        assert!(err.to_string().contains("auht"), "{err}");
    }
}

/// Azure's DICOM service takes requests up to 4 GB; ours defaults to 2 GiB per STOW request.
pub const DEFAULT_MAX_STOW_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// A STOW part up to this size is held in memory; a larger one is spooled to a temporary file.
pub const DEFAULT_SPOOL_BYTES: u64 = 32 * 1024 * 1024;

/// One DICOM service (`hds dicom --config FILE`, or in-process under `hds up`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DicomServiceConfig {
    pub name: String,
    #[serde(default)]
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The public base URL; RetrieveURLs and BulkDataURIs are built from it, or from the
    /// request's Host and X-Forwarded-* headers without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    pub postgres: PostgresConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Cross-origin access for browser viewers, as the FHIR service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    /// The audit log (one record per request, docs/audit.md). `auditEvents` needs a FHIR store,
    /// so a DICOM service refuses it.
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub storage: DicomStorageConfig,
    #[serde(default)]
    pub limits: DicomLimits,
    #[serde(default)]
    pub validation: DicomValidationConfig,
    /// Azure's data partitions: `/partitions/{name}/...` routes, each partition its own
    /// namespace of UIDs. Fixed at creation.
    #[serde(default)]
    pub enable_data_partitions: bool,
    /// Writes ImagingStudy, Patient and Endpoint resources for what is stored here into a FHIR
    /// service ("DICOM cast").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_sync: Option<FhirSyncConfig>,
    /// The sweep that removes instance files the index does not name (left by a process killed
    /// between a file write and the index commit, or between a delete's commit and the file's
    /// removal).
    #[serde(default)]
    pub orphan_sweep: DicomOrphanSweepConfig,
}

/// When the orphan-file sweep runs, and which files it may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DicomOrphanSweepConfig {
    #[serde(default = "default_orphan_sweep_enabled")]
    pub enabled: bool,
    /// Files younger than this are never removed: a STOW writes its files before its index
    /// commit, so this must exceed the longest STOW request.
    #[serde(default = "default_orphan_grace")]
    pub grace_seconds: u64,
    /// The first sweep starts this long after the service.
    #[serde(default = "default_orphan_delay")]
    pub start_delay_seconds: u64,
    /// Then one every this many hours (at least 1).
    #[serde(default = "default_orphan_interval")]
    pub interval_hours: u64,
}

fn default_orphan_sweep_enabled() -> bool {
    true
}
fn default_orphan_grace() -> u64 {
    3600
}
fn default_orphan_delay() -> u64 {
    600
}
fn default_orphan_interval() -> u64 {
    24
}

impl Default for DicomOrphanSweepConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            grace_seconds: default_orphan_grace(),
            start_delay_seconds: default_orphan_delay(),
            interval_hours: default_orphan_interval(),
        }
    }
}

/// A FHIR service another service writes to, and the Workspace client it writes as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FhirClientConfig {
    /// The FHIR service's base URL.
    pub fhir_url: String,
    /// The token endpoint of the Workspace issuer; without it calls go without a token (for a
    /// FHIR service whose auth is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// A file holding the client secret (a mounted Secret), read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
}

/// Where the DICOM→FHIR sync writes, and the identity it writes with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FhirSyncConfig {
    /// The FHIR service, and the client the sync writes as.
    pub fhir: FhirClientConfig,
    /// The identifier system a Patient's DICOM PatientID is matched and created under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_identifier_system: Option<String>,
}

impl DicomServiceConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load_yaml(path)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DicomStorageConfig {
    /// Where instance files go: `file:///var/lib/hds/dicom` or `s3://bucket/prefix` (the
    /// `AWS_*` variables configure S3). The default is a directory under the system's
    /// temporary directory named after the service; `hds up` uses its data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For a `file://` store: a STOW is answered only once its files are on stable storage
    /// (one `syncfs` shared by the requests that finish writing together), so a power cut
    /// never leaves the index naming a lost file. `false` trades that for speed, as Orthanc's
    /// `SyncStorageArea: false` does. Other stores are durable when a write returns.
    #[serde(default = "default_storage_sync")]
    pub sync: bool,
}

fn default_storage_sync() -> bool {
    true
}

impl Default for DicomStorageConfig {
    fn default() -> Self {
        Self {
            url: None,
            sync: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DicomLimits {
    /// The largest STOW request body; a larger one is refused with 413 and nothing of it stored.
    #[serde(default = "default_max_stow")]
    pub max_stow_bytes: u64,
    /// Parts up to this size are processed in memory, larger ones from a temporary file.
    #[serde(default = "default_spool")]
    pub spool_bytes: u64,
}

fn default_max_stow() -> u64 {
    DEFAULT_MAX_STOW_BYTES
}
fn default_spool() -> u64 {
    DEFAULT_SPOOL_BYTES
}

impl Default for DicomLimits {
    fn default() -> Self {
        Self {
            max_stow_bytes: DEFAULT_MAX_STOW_BYTES,
            spool_bytes: DEFAULT_SPOOL_BYTES,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DicomValidationConfig {
    /// Refuse an instance whose indexed attributes are malformed (a bad date, a UID with bad
    /// syntax). Off by default, as in Azure since 2023: such values are left out of the index
    /// and the instance is stored with a warning, because real-world files often have them.
    #[serde(default)]
    pub strict: bool,
}
