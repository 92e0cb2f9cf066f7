//! The one path from a custom resource to a service config. The operator calls it with the
//! database URL it provisioned (as a mounted file); `hds up` with the database it started.

use hds_crds::common::{AuthenticationMode, CorsSpec, PostgresStorage};
use hds_crds::fhir_service::VersioningPolicy;
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};

use crate::config::{
    AuditConfig, AuthConfig, AuthMode, BufferingConfig, CorsConfig, DicomLimits,
    DicomServiceConfig, DicomStorageConfig, DicomValidationConfig, ExportConfig, FhirClientConfig,
    FhirServiceConfig, ImportConfig, Limits, MedTechServiceConfig, MqttConfig, PostgresConfig,
    ResourceVersionPolicyConfig, SmartApplicationConfig, SmartIdentityProviderConfig,
    ValidationConfig, VersionPolicy,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{kind} has no metadata.name")]
    Unnamed { kind: &'static str },
    #[error("{kind} '{name}' refers to Workspace '{wanted}', but was given Workspace '{given}'")]
    WrongWorkspace {
        kind: &'static str,
        name: String,
        wanted: String,
        given: String,
    },
}

fn audit(spec: Option<&hds_crds::common::AuditSpec>) -> AuditConfig {
    spec.map_or_else(AuditConfig::default, |a| AuditConfig {
        log: a.log.clone().unwrap_or_else(|| AuditConfig::default().log),
        audit_events: a.audit_events,
    })
}

/// Where a service's database comes from: its own spec, else its Workspace's default.
pub fn postgres_source<'a>(
    own: Option<&'a PostgresStorage>,
    workspace: Option<&'a Workspace>,
) -> Option<&'a PostgresStorage> {
    own.or_else(|| workspace.and_then(|w| w.spec.defaults.postgres.as_ref()))
}

/// The service config of a FhirService. `postgres` is the connection the caller resolved.
pub fn fhir_service_config(
    svc: &FhirService,
    workspace: Option<&Workspace>,
    postgres: PostgresConfig,
) -> Result<FhirServiceConfig, SpecError> {
    let spec = &svc.spec;
    let name = checked_name(
        "FhirService",
        svc.metadata.name.as_ref(),
        &spec.workspace_ref,
        workspace,
    )?;
    let auth = &spec.authentication;
    let limits = spec.limits.clone().unwrap_or_default();
    let defaults = Limits::default();
    Ok(FhirServiceConfig {
        name,
        workspace: spec.workspace_ref.name.clone(),
        listen: None,
        base_url: None,
        postgres,
        auth: AuthConfig {
            smart_identity_providers: auth
                .smart_identity_providers
                .iter()
                .map(|p| SmartIdentityProviderConfig {
                    authority: p.authority.clone(),
                    applications: p
                        .applications
                        .iter()
                        .map(|a| SmartApplicationConfig {
                            client_id: a.client_id.clone(),
                            audience: a.audience.clone(),
                            allowed_data_actions: a.allowed_data_actions.clone(),
                        })
                        .collect(),
                })
                .collect(),
            ..auth_config(&auth.common(), workspace)
        },
        cors: spec.cors.as_ref().map(cors),
        audit: audit(spec.audit.as_ref()),
        resource_version_policy: ResourceVersionPolicyConfig {
            default: version_policy(spec.resource_version_policy.default),
            resource_type_overrides: spec
                .resource_version_policy
                .resource_type_overrides
                .iter()
                .map(|(t, p)| (t.clone(), version_policy(*p)))
                .collect(),
        },
        export: export_config(spec.export.as_ref()),
        import: import_config(spec.import.as_ref()),
        validation: ValidationConfig {
            enforce_profiles: spec.validation.as_ref().is_some_and(|v| v.enforce_profiles),
        },
        limits: Limits {
            max_request_body_bytes: limits
                .max_request_body_bytes
                .unwrap_or(defaults.max_request_body_bytes),
            transaction_entry_limit: limits
                .transaction_entry_limit
                .unwrap_or(defaults.transaction_entry_limit),
            ..defaults
        },
    })
}

/// A service's name, once it is known to belong to the Workspace given (if one is).
fn checked_name(
    kind: &'static str,
    name: Option<&String>,
    workspace_ref: &hds_crds::common::WorkspaceRef,
    workspace: Option<&Workspace>,
) -> Result<String, SpecError> {
    let name = name.cloned().ok_or(SpecError::Unnamed { kind })?;
    if let Some(ws) = workspace {
        let given = ws.metadata.name.clone().unwrap_or_default();
        if given != workspace_ref.name {
            return Err(SpecError::WrongWorkspace {
                kind,
                name,
                wanted: workspace_ref.name.clone(),
                given,
            });
        }
    }
    Ok(name)
}

/// Token settings every service shares; SMART identity providers are the FHIR service's own.
fn auth_config(
    auth: &hds_crds::common::AuthenticationSpec,
    workspace: Option<&Workspace>,
) -> AuthConfig {
    AuthConfig {
        mode: match auth.mode {
            AuthenticationMode::Oidc => AuthMode::Oidc,
            AuthenticationMode::None => AuthMode::None,
        },
        authority: auth.authority.clone(),
        audience: auth.audience.clone(),
        additional_audiences: Vec::new(),
        roles_claim: auth.roles_claim.clone(),
        leeway_seconds: None,
        // Without a configured URL the runner (operator or `hds up`) knows where the
        // Workspace's issuer is served and fills it in.
        workspace_issuer: workspace.and_then(workspace_issuer_url),
        smart_identity_providers: Vec::new(),
    }
}

/// The service config of a DicomService. `postgres` is the connection the caller resolved.
pub fn dicom_service_config(
    svc: &DicomService,
    workspace: Option<&Workspace>,
    postgres: PostgresConfig,
) -> Result<DicomServiceConfig, SpecError> {
    let spec = &svc.spec;
    let name = checked_name(
        "DicomService",
        svc.metadata.name.as_ref(),
        &spec.workspace_ref,
        workspace,
    )?;
    let blob = spec
        .storage
        .blob
        .as_ref()
        .or_else(|| workspace.and_then(|w| w.spec.defaults.blob_storage.as_ref()));
    Ok(DicomServiceConfig {
        name,
        workspace: spec.workspace_ref.name.clone(),
        listen: None,
        base_url: None,
        postgres,
        auth: auth_config(&spec.authentication, workspace),
        cors: spec.cors.as_ref().map(cors),
        audit: audit(spec.audit.as_ref()),
        storage: DicomStorageConfig {
            url: blob.map(|b| storage_url(b, DICOM_MOUNT)),
            ..DicomStorageConfig::default()
        },
        limits: DicomLimits {
            max_stow_bytes: spec
                .limits
                .as_ref()
                .and_then(|l| l.max_stow_bytes)
                .unwrap_or(DicomLimits::default().max_stow_bytes),
            ..DicomLimits::default()
        },
        validation: DicomValidationConfig {
            strict: spec.validation.as_ref().is_some_and(|v| v.strict),
        },
        enable_data_partitions: spec.enable_data_partitions,
        orphan_sweep: Default::default(),
        // Where the FHIR service and the issuer are is known to the runner (operator or
        // `hds up`), which fills this in from `spec.fhirSync`.
        fhir_sync: None,
    })
}

/// The service config of a MedTechService. Where its FHIR service and the Workspace issuer are
/// is known to the runner (operator or `hds up`), which fills in `fhir` and the MQTT secrets.
pub fn medtech_service_config(
    svc: &MedTechService,
    workspace: Option<&Workspace>,
    fhir: FhirClientConfig,
) -> Result<MedTechServiceConfig, SpecError> {
    let spec = &svc.spec;
    let name = checked_name(
        "MedTechService",
        svc.metadata.name.as_ref(),
        &spec.workspace_ref,
        workspace,
    )?;
    let mqtt = &spec.ingestion.mqtt;
    let defaults = BufferingConfig::default();
    let buffering = spec.buffering.clone().unwrap_or_default();
    Ok(MedTechServiceConfig {
        workspace: spec.workspace_ref.name.clone(),
        listen: None,
        base_url: None,
        auth: auth_config(&spec.authentication, workspace),
        mqtt: MqttConfig {
            broker_url: mqtt.broker_url.clone(),
            topic_filter: mqtt.topic_filter.clone(),
            shared_subscription_group: mqtt.shared_subscription_group.clone(),
            qos: mqtt.qos,
            client_id: mqtt.client_id.clone(),
            client_id_suffix_env: None,
            tls: mqtt.tls.as_ref().is_some_and(|t| t.enabled),
            error_topic: spec.error_topic.clone(),
            ..MqttConfig::default()
        },
        device_mapping: spec.device_mapping.content.clone(),
        fhir_mapping: spec.fhir_destination.fhir_mapping.content.clone(),
        fhir,
        resolution: spec.fhir_destination.resource_identity_resolution_type,
        error_policy: spec.error_policy.unwrap_or_default(),
        observation_id_scheme: spec.fhir_destination.observation_id_scheme,
        buffering: BufferingConfig {
            flush_interval_ms: buffering
                .flush_interval_ms
                .map_or(defaults.flush_interval_ms, u64::from),
            max_messages: buffering
                .max_messages
                .map_or(defaults.max_messages, |m| m as usize),
            ..defaults
        },
        http_ingestion: spec.ingestion.http.as_ref().is_none_or(|h| h.enabled),
        name,
    })
}

/// Export storage from the spec (see [`storage_url`]).
fn export_config(spec: Option<&hds_crds::fhir_service::ExportSpec>) -> ExportConfig {
    ExportConfig {
        storage_url: spec
            .and_then(|e| e.storage.as_ref())
            .map(|s| storage_url(s, EXPORT_MOUNT)),
        ..ExportConfig::default()
    }
}

fn import_config(spec: Option<&hds_crds::fhir_service::ImportSpec>) -> ImportConfig {
    ImportConfig {
        enabled: spec.is_some_and(|i| i.enabled),
        initial_import_mode: spec.is_some_and(|i| i.initial_import_mode),
        storage_url: spec
            .and_then(|i| i.storage.as_ref())
            .map(|s| storage_url(s, IMPORT_MOUNT)),
    }
}

/// A blob storage as an object store URL: S3 by its bucket and prefix (endpoint and
/// credentials reach the pod as `AWS_*` variables), a filesystem claim where the operator
/// mounts it.
fn storage_url(s: &hds_crds::common::BlobStorage, mount: &str) -> String {
    match (&s.s3, &s.filesystem) {
        (Some(s3), _) => format!(
            "s3://{}/{}",
            s3.bucket,
            s3.prefix.as_deref().unwrap_or("").trim_matches('/')
        ),
        (None, fs) => format!(
            "file://{mount}/{}",
            fs.as_ref()
                .and_then(|f| f.path.as_deref())
                .unwrap_or("")
                .trim_matches('/')
        ),
    }
}

/// Where the operator mounts an export filesystem claim in the FHIR service's pod.
pub const EXPORT_MOUNT: &str = "/var/lib/hds/export";
/// Where the operator mounts an import filesystem claim in the FHIR service's pod.
pub const IMPORT_MOUNT: &str = "/var/lib/hds/import";

/// Where the operator mounts a DICOM service's filesystem claim.
pub const DICOM_MOUNT: &str = "/var/lib/hds/dicom";

/// The issuer URL a Workspace declares, if it declares one.
pub fn workspace_issuer_url(ws: &Workspace) -> Option<String> {
    ws.spec
        .identity
        .issuer
        .as_ref()
        .and_then(|i| i.url.as_ref())
        .map(|u| u.trim_end_matches('/').to_owned())
}

fn version_policy(p: VersioningPolicy) -> VersionPolicy {
    match p {
        VersioningPolicy::NoVersion => VersionPolicy::NoVersion,
        VersioningPolicy::Versioned => VersionPolicy::Versioned,
        VersioningPolicy::VersionedUpdate => VersionPolicy::VersionedUpdate,
    }
}

fn cors(c: &CorsSpec) -> CorsConfig {
    CorsConfig {
        origins: c.origins.clone(),
        headers: c.headers.clone(),
        methods: c.methods.clone(),
        max_age: c.max_age,
        allow_credentials: c.allow_credentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(kind: &str) -> hds_crds::manifest::Manifest {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        let mut found = None;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for m in hds_crds::manifest::parse_manifests(&text).unwrap_or_default() {
                if m.kind() == kind {
                    found = Some(m);
                }
            }
        }
        found.unwrap_or_else(|| panic!("no {kind} in examples/"))
    }

    #[test]
    fn the_example_fhir_service_becomes_a_config() {
        let hds_crds::manifest::Manifest::FhirService(svc) = example("FhirService") else {
            unreachable!()
        };
        let hds_crds::manifest::Manifest::Workspace(ws) = example("Workspace") else {
            unreachable!()
        };
        let cfg = fhir_service_config(&svc, Some(&ws), PostgresConfig::from_url("postgres://h/db"))
            .unwrap();
        assert_eq!(cfg.name, svc.metadata.name.unwrap());
        assert_eq!(cfg.workspace, ws.metadata.name.unwrap());
        // The example is secured: tokens from the Workspace issuer.
        assert_eq!(cfg.auth.mode, AuthMode::Oidc);
        // What the operator writes into a ConfigMap must load back as the same config.
        let yaml = serde_yaml::to_string(&cfg).unwrap();
        assert_eq!(
            serde_yaml::from_str::<FhirServiceConfig>(&yaml).unwrap(),
            cfg
        );
    }

    #[test]
    fn the_example_medtech_service_becomes_a_config() {
        let hds_crds::manifest::Manifest::MedTechService(svc) = example("MedTechService") else {
            unreachable!()
        };
        let fhir = FhirClientConfig {
            fhir_url: "http://h/fhir".into(),
            ..Default::default()
        };
        let cfg = medtech_service_config(&svc, None, fhir).unwrap();
        assert_eq!(cfg.mqtt.topic_filter, "devices/+/vitals");
        assert_eq!(cfg.mqtt.qos, 1);
        assert_eq!(cfg.buffering.flush_interval_ms, 1000);
        assert_eq!(cfg.device_mapping["templateType"], "CollectionContent");
        assert!(cfg.http_ingestion);
        let yaml = serde_yaml::to_string(&cfg).unwrap();
        assert_eq!(
            serde_yaml::from_str::<MedTechServiceConfig>(&yaml).unwrap(),
            cfg
        );
    }

    #[test]
    fn spec_settings_carry_over() {
        let svc: FhirService = serde_yaml::from_str(
            r#"
apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {name: f, namespace: default}
spec:
  workspaceRef: {name: ws}
  resourceVersionPolicy: {default: no-version, resourceTypeOverrides: {Patient: versioned-update}}
  cors: {origins: ["https://app.example"], maxAge: 600}
  limits: {maxRequestBodyBytes: 1000}
  import:
    enabled: true
    initialImportMode: true
    storage: {s3: {bucket: loads, prefix: /ndjson/}}
  export: {enabled: true, storage: {filesystem: {claimName: exports, path: jobs}}}
  validation: {enforceProfiles: true}
"#,
        )
        .unwrap();
        let cfg = fhir_service_config(&svc, None, PostgresConfig::from_url("x")).unwrap();
        assert_eq!(
            cfg.auth.mode,
            AuthMode::Oidc,
            "auth is on unless turned off by name"
        );
        assert_eq!(
            cfg.resource_version_policy.for_type("Patient"),
            VersionPolicy::VersionedUpdate
        );
        assert_eq!(
            cfg.resource_version_policy.for_type("Observation"),
            VersionPolicy::NoVersion
        );
        assert_eq!(cfg.cors.unwrap().max_age, Some(600));
        assert_eq!(cfg.limits.max_request_body_bytes, 1000);
        assert_eq!(cfg.limits.transaction_entry_limit, 500);
        assert!(cfg.import.enabled && cfg.import.initial_import_mode);
        assert_eq!(cfg.import.storage_url.as_deref(), Some("s3://loads/ndjson"));
        assert_eq!(
            cfg.export.storage_url.as_deref(),
            Some("file:///var/lib/hds/export/jobs")
        );
        assert!(cfg.validation.enforce_profiles);

        let ws: Workspace = serde_yaml::from_str(
            "apiVersion: hds.dev/v1alpha1\nkind: Workspace\nmetadata: {name: other}\nspec: {}\n",
        )
        .unwrap();
        assert!(matches!(
            fhir_service_config(&svc, Some(&ws), PostgresConfig::from_url("x")),
            Err(SpecError::WrongWorkspace { .. })
        ));
    }

    #[test]
    fn a_dicom_service_keeps_its_cors_and_logs_audit_records_by_default() {
        let svc: DicomService = serde_yaml::from_str(
            r#"
apiVersion: hds.dev/v1alpha1
kind: DicomService
metadata: {name: d}
spec:
  workspaceRef: {name: ws}
  cors: {origins: ["https://viewer.example"], headers: ["*"]}
"#,
        )
        .unwrap();
        let cfg = dicom_service_config(&svc, None, PostgresConfig::from_url("x")).unwrap();
        assert_eq!(cfg.cors.unwrap().origins, ["https://viewer.example"]);
        assert_eq!(cfg.audit, AuditConfig::default());
        assert_eq!(cfg.audit.log, "stdout");
        let mut svc = svc;
        svc.spec.audit = Some(hds_crds::common::AuditSpec {
            log: Some("/var/log/hds/audit.jsonl".into()),
            audit_events: false,
        });
        let cfg = dicom_service_config(&svc, None, PostgresConfig::from_url("x")).unwrap();
        assert_eq!(cfg.audit.log, "/var/log/hds/audit.jsonl");
    }
}
