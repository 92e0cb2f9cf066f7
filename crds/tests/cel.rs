//! Client-side evaluation of the CRDs' CEL rules (`x-kubernetes-validations`), so rule
//! regressions are caught without an apiserver.

use hds_crds::{
    DicomService, DicomServiceSpec, FhirService, FhirServiceSpec, MedTechService, Workspace,
    WorkspaceSpec,
    common::{
        AutoscalingSpec, BlobStorage, CnpgRef, ConnectionSecretRef, CorsSpec, ExposureSpec,
        FilesystemStorage, GatewayParentRef, HttpRouteSpec, IngressSpec, PostgresStorage,
        S3Storage, SecretKeySelector, WorkspaceRef,
    },
    fhir_service::{ExportSpec, FhirStorage},
    workspace::{IdentitySpec, WorkspaceClient},
};
use kube::{
    CustomResourceExt,
    core::cel::{self, ValidationErrors},
};
use serde::Deserialize as _;
use serde_json::{Value, json};

fn fhir(spec: FhirServiceSpec) -> FhirService {
    FhirService::new("fhir", spec)
}

fn fhir_spec() -> FhirServiceSpec {
    FhirServiceSpec {
        workspace_ref: WorkspaceRef {
            name: "demo".into(),
        },
        kind: Default::default(),
        authentication: Default::default(),
        cors: None,
        audit: None,
        export: None,
        import: None,
        validation: None,
        resource_version_policy: Default::default(),
        storage: Default::default(),
        limits: None,
        replicas: 1,
        resources: None,
        autoscaling: None,
        exposure: None,
    }
}

fn messages(result: Result<(), ValidationErrors>) -> Vec<String> {
    match result {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn assert_rejected(result: Result<(), ValidationErrors>, needle: &str) {
    let msgs = messages(result);
    assert!(
        msgs.iter().any(|m| m.contains(needle)),
        "expected a failure mentioning {needle:?}, got {msgs:?}"
    );
}

/// Validates raw JSON against a CRD's schema, for values the Rust types cannot express
/// (e.g. a FHIR kind that does not exist yet).
fn validate_json<K: CustomResourceExt>(
    new: &Value,
    old: Option<&Value>,
) -> Result<(), ValidationErrors> {
    let schema = crd_schema::<K>();
    cel::Validator::new().validate(&schema, new, old)
}

fn crd_schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap(),
    )
    .unwrap()
}

fn admin() -> Option<ConnectionSecretRef> {
    Some(ConnectionSecretRef {
        name: "pg-admin".into(),
        key: "uri".into(),
    })
}

fn with_postgres(postgres: PostgresStorage) -> FhirService {
    fhir(FhirServiceSpec {
        storage: FhirStorage {
            postgres: Some(postgres),
        },
        ..fhir_spec()
    })
}

#[test]
fn postgres_requires_exactly_one_source() {
    assert_rejected(
        cel::validate_cel(&with_postgres(PostgresStorage::default())),
        "exactly one of adminSecretRef",
    );
    assert!(
        cel::validate_cel(&with_postgres(PostgresStorage {
            admin_secret_ref: admin(),
            ..Default::default()
        }))
        .is_ok()
    );
    assert!(
        cel::validate_cel(&with_postgres(PostgresStorage {
            cnpg: Some(CnpgRef {
                cluster_name: "pg".into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .is_ok()
    );
    assert_rejected(
        cel::validate_cel(&with_postgres(PostgresStorage {
            admin_secret_ref: admin(),
            connection_secret_ref: admin(),
            ..Default::default()
        })),
        "exactly one of adminSecretRef",
    );
}

#[test]
fn blob_storage_requires_exactly_one_backend() {
    let with_blob = |storage: BlobStorage| {
        fhir(FhirServiceSpec {
            export: Some(ExportSpec {
                enabled: true,
                storage: Some(storage),
            }),
            ..fhir_spec()
        })
    };
    let fs = || {
        Some(FilesystemStorage {
            claim_name: "exports".into(),
            ..Default::default()
        })
    };
    let s3 = || {
        Some(S3Storage {
            bucket: "exports".into(),
            ..Default::default()
        })
    };
    assert!(
        cel::validate_cel(&with_blob(BlobStorage {
            filesystem: fs(),
            s3: None
        }))
        .is_ok()
    );
    assert!(
        cel::validate_cel(&with_blob(BlobStorage {
            filesystem: None,
            s3: s3()
        }))
        .is_ok()
    );
    assert_rejected(
        cel::validate_cel(&with_blob(BlobStorage {
            filesystem: fs(),
            s3: s3(),
        })),
        "exactly one of filesystem or s3",
    );
    assert_rejected(
        cel::validate_cel(&with_blob(BlobStorage::default())),
        "exactly one of filesystem or s3",
    );
}

#[test]
fn cors_credentials_cannot_use_wildcard_origin() {
    let with_cors = |origin: &str, allow_credentials: bool| {
        fhir(FhirServiceSpec {
            cors: Some(CorsSpec {
                origins: vec![origin.into()],
                allow_credentials,
                ..Default::default()
            }),
            ..fhir_spec()
        })
    };
    assert_rejected(
        cel::validate_cel(&with_cors("*", true)),
        "allowCredentials cannot be combined",
    );
    assert!(cel::validate_cel(&with_cors("*", false)).is_ok());
    assert!(cel::validate_cel(&with_cors("https://app.example", true)).is_ok());
}

#[test]
fn cors_max_age_range_is_in_the_schema() {
    let schema = crd_schema::<FhirService>();
    let max_age = &schema["properties"]["spec"]["properties"]["cors"]["properties"]["maxAge"];
    assert_eq!(max_age["maximum"].as_f64(), Some(99999.0), "{max_age}");
    assert_eq!(max_age["minimum"].as_f64(), Some(0.0), "{max_age}");
}

#[test]
fn fhir_kind_is_immutable() {
    let current = serde_json::to_value(fhir(fhir_spec())).unwrap();
    assert!(validate_json::<FhirService>(&current, Some(&current)).is_ok());

    let mut future = current.clone();
    future["spec"]["kind"] = json!("fhir-R5");
    assert_rejected(
        validate_json::<FhirService>(&future, Some(&current)),
        "kind is immutable",
    );
    // Transition rules do not apply on create.
    assert!(validate_json::<FhirService>(&future, None).is_ok());
}

#[test]
fn fhir_kind_serializes_as_azure() {
    let value = serde_json::to_value(fhir(fhir_spec())).unwrap();
    assert_eq!(value["spec"]["kind"], json!("fhir-R4"));
}

#[test]
fn dicom_data_partitions_are_immutable() {
    let dicom = |enable_data_partitions| {
        DicomService::new(
            "dicom",
            DicomServiceSpec {
                workspace_ref: WorkspaceRef {
                    name: "demo".into(),
                },
                authentication: Default::default(),
                cors: None,
                audit: None,
                storage: Default::default(),
                enable_data_partitions,
                fhir_sync: None,
                limits: None,
                validation: None,
                replicas: 1,
                resources: None,
                autoscaling: None,
                exposure: None,
            },
        )
    };
    assert!(cel::validate_cel(&dicom(true)).is_ok());
    assert!(cel::validate_cel_update(&dicom(true), &dicom(true)).is_ok());
    assert_rejected(
        cel::validate_cel_update(&dicom(true), &dicom(false)),
        "enableDataPartitions is immutable",
    );
    assert_rejected(
        cel::validate_cel_update(&dicom(false), &dicom(true)),
        "enableDataPartitions is immutable",
    );
}

#[test]
fn autoscaling_bounds_must_not_cross() {
    let with = |min_replicas: Option<i32>, max_replicas: i32| {
        fhir(FhirServiceSpec {
            autoscaling: Some(AutoscalingSpec {
                min_replicas,
                max_replicas,
                ..Default::default()
            }),
            ..fhir_spec()
        })
    };
    assert!(cel::validate_cel(&with(Some(2), 5)).is_ok());
    assert!(cel::validate_cel(&with(Some(3), 3)).is_ok());
    // Without minReplicas, spec.replicas is the floor (the operator keeps it within bounds).
    assert!(cel::validate_cel(&with(None, 1)).is_ok());
    assert_rejected(
        cel::validate_cel(&with(Some(4), 2)),
        "autoscaling.maxReplicas must be at least minReplicas",
    );
}

#[test]
fn autoscaling_ranges_are_in_the_schema() {
    let schema = crd_schema::<FhirService>();
    let a = &schema["properties"]["spec"]["properties"]["autoscaling"];
    assert_eq!(a["required"], json!(["maxReplicas"]));
    let p = &a["properties"];
    assert_eq!(p["minReplicas"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(p["maxReplicas"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(
        p["targetCPUUtilizationPercentage"]["minimum"].as_f64(),
        Some(1.0)
    );
    assert_eq!(
        p["targetCPUUtilizationPercentage"]["maximum"].as_f64(),
        Some(100.0)
    );
    assert_eq!(
        p["targetMemoryUtilizationPercentage"]["maximum"].as_f64(),
        Some(100.0)
    );
    // MedTech scales too, but has nothing to expose.
    let medtech = crd_schema::<MedTechService>();
    let props = &medtech["properties"]["spec"]["properties"];
    assert!(props["autoscaling"].is_object());
    assert!(props.get("exposure").is_none());
}

fn ingress() -> IngressSpec {
    IngressSpec {
        host: "fhir.example.org".into(),
        ..Default::default()
    }
}

fn http_route() -> HttpRouteSpec {
    HttpRouteSpec {
        parent_refs: vec![GatewayParentRef {
            name: "public".into(),
            ..Default::default()
        }],
        hostnames: vec!["fhir.example.org".into()],
        path: None,
    }
}

fn exposed(exposure: ExposureSpec) -> FhirService {
    fhir(FhirServiceSpec {
        exposure: Some(exposure),
        ..fhir_spec()
    })
}

#[test]
fn exposure_is_an_ingress_or_an_http_route_not_both() {
    assert!(
        cel::validate_cel(&exposed(ExposureSpec {
            ingress: Some(ingress()),
            ..Default::default()
        }))
        .is_ok()
    );
    assert!(
        cel::validate_cel(&exposed(ExposureSpec {
            http_route: Some(http_route()),
            ..Default::default()
        }))
        .is_ok()
    );
    // Only a URL: the route is made elsewhere.
    assert!(
        cel::validate_cel(&exposed(ExposureSpec {
            url: Some("https://fhir.example.org".into()),
            ..Default::default()
        }))
        .is_ok()
    );
    assert_rejected(
        cel::validate_cel(&exposed(ExposureSpec {
            ingress: Some(ingress()),
            http_route: Some(http_route()),
            url: None,
        })),
        "at most one of ingress or httpRoute",
    );
}

#[test]
fn exposure_url_and_paths_are_checked() {
    for ok in ["https://fhir.example.org", "http://10.0.0.1:8080/fhir"] {
        assert!(
            cel::validate_cel(&exposed(ExposureSpec {
                url: Some(ok.into()),
                ..Default::default()
            }))
            .is_ok(),
            "{ok}"
        );
    }
    for bad in ["fhir.example.org", "ftp://fhir.example.org", "https://"] {
        assert_rejected(
            cel::validate_cel(&exposed(ExposureSpec {
                url: Some(bad.into()),
                ..Default::default()
            })),
            "exposure.url must be an http:// or https:// URL",
        );
    }
    assert_rejected(
        cel::validate_cel(&exposed(ExposureSpec {
            ingress: Some(IngressSpec {
                path: Some("fhir".into()),
                ..ingress()
            }),
            ..Default::default()
        })),
        "ingress.path must start with /",
    );
    assert_rejected(
        cel::validate_cel(&exposed(ExposureSpec {
            http_route: Some(HttpRouteSpec {
                path: Some("fhir".into()),
                ..http_route()
            }),
            ..Default::default()
        })),
        "httpRoute.path must start with /",
    );
    // The list minimums are in the schema, for the apiserver to enforce.
    let schema = crd_schema::<DicomService>();
    let route = &schema["properties"]["spec"]["properties"]["exposure"]["properties"]["httpRoute"];
    assert_eq!(route["properties"]["parentRefs"]["minItems"], json!(1));
    assert_eq!(route["properties"]["hostnames"]["minItems"], json!(1));
}

fn client(id: &str) -> WorkspaceClient {
    WorkspaceClient {
        client_id: id.into(),
        ..Default::default()
    }
}

fn workspace(clients: Vec<WorkspaceClient>) -> Workspace {
    Workspace::new(
        "demo",
        WorkspaceSpec {
            identity: IdentitySpec {
                issuer: None,
                clients,
            },
            ..Default::default()
        },
    )
}

#[test]
fn workspace_client_ids_are_unique() {
    assert!(cel::validate_cel(&workspace(vec![client("a"), client("b")])).is_ok());
    assert_rejected(
        cel::validate_cel(&workspace(vec![client("a"), client("b"), client("a")])),
        "clientId must be unique",
    );
}

#[test]
fn workspace_client_secret_is_a_ref_or_a_hash() {
    let both = WorkspaceClient {
        secret_ref: Some(SecretKeySelector {
            name: "s".into(),
            key: "k".into(),
        }),
        secret_hash: Some("$argon2id$v=19$...".into()),
        ..client("a")
    };
    assert_rejected(
        cel::validate_cel(&workspace(vec![both])),
        "at most one of secretRef or secretHash",
    );
}

#[test]
fn mqtt_broker_url_needs_mqtt_scheme() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/medtech-service.yaml"
    ))
    .unwrap();
    let medtech: MedTechService = serde_yaml::from_str(&docs).unwrap();
    assert!(cel::validate_cel(&medtech).is_ok());

    let mut tls = medtech.clone();
    tls.spec.ingestion.mqtt.broker_url = "mqtts://broker.example:8883".into();
    assert!(cel::validate_cel(&tls).is_ok());

    let mut http = medtech;
    http.spec.ingestion.mqtt.broker_url = "http://broker.example".into();
    assert_rejected(cel::validate_cel(&http), "brokerUrl must be an mqtt://");
}

/// Every rule must compile and stay within the apiserver's cost budget, or the CRD itself is
/// rejected at install time.
#[test]
fn all_rules_compile_within_budget() {
    fn walk(node: &Value, path: &str, found: &mut usize) {
        let Some(obj) = node.as_object() else { return };
        if let Some(rules) = obj
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            let compiled = cel::compile_schema(node);
            assert!(
                !compiled.has_errors(),
                "{path}: {:?}",
                compiled.compilation_errors()
            );
            for rule in rules {
                let rule = rule["rule"].as_str().unwrap();
                let warnings = cel::estimate_rule_cost(rule, &compiled);
                assert!(warnings.is_empty(), "{path}: {rule}: {warnings:?}");
                *found += 1;
            }
        }
        for (key, child) in obj {
            match key.as_str() {
                "properties" => {
                    for (name, prop) in child.as_object().unwrap() {
                        walk(prop, &format!("{path}.{name}"), found);
                    }
                }
                "items" | "additionalProperties" => walk(child, &format!("{path}[]"), found),
                _ => {}
            }
        }
    }
    let mut found = 0;
    for crd in hds_crds::all_crds() {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap(),
        )
        .unwrap();
        walk(&schema, crd.spec.names.kind.as_str(), &mut found);
    }
    assert!(found >= 10, "only {found} rules found");
}

#[test]
fn every_service_keeps_its_workspace() {
    for kind in ["FhirService", "DicomService", "MedTechService"] {
        let current = match kind {
            "FhirService" => serde_json::to_value(fhir(fhir_spec())).unwrap(),
            other => {
                let text = std::fs::read_to_string(format!(
                    "{}/../examples/{}.yaml",
                    env!("CARGO_MANIFEST_DIR"),
                    if other == "DicomService" {
                        "dicom-service"
                    } else {
                        "medtech-service"
                    }
                ))
                .unwrap();
                let doc = serde_yaml::Deserializer::from_str(&text)
                    .map(|d| serde_yaml::Value::deserialize(d).unwrap())
                    .find(|d| d["kind"].as_str() == Some(other))
                    .unwrap();
                serde_json::to_value(doc).unwrap()
            }
        };
        let mut moved = current.clone();
        moved["spec"]["workspaceRef"]["name"] = json!("other");
        let result = match kind {
            "FhirService" => validate_json::<FhirService>(&moved, Some(&current)),
            "DicomService" => validate_json::<DicomService>(&moved, Some(&current)),
            _ => validate_json::<MedTechService>(&moved, Some(&current)),
        };
        assert_rejected(result, "workspaceRef is immutable");
    }
}

#[test]
fn a_dicom_service_cannot_ask_for_audit_events() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/dicom-service.yaml"
    ))
    .unwrap();
    let mut dicom: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
    dicom["spec"]["audit"] = json!({"log": "stdout"});
    assert!(validate_json::<DicomService>(&dicom, None).is_ok());
    dicom["spec"]["audit"] = json!({"auditEvents": true});
    assert_rejected(
        validate_json::<DicomService>(&dicom, None),
        "audit.auditEvents is for FHIR services",
    );
}
