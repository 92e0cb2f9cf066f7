use std::collections::BTreeMap;

use super::*;
use crate::desired::{CONFIG_HASH_ANNOTATION, CONFIG_KEY, dicom_service, medtech_service};
use hds_common::config::WorkspaceIssuerConfig;

fn ctx() -> Context {
    Context::new("ghcr.io/example/hds:test")
}

fn example<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    // The first document: a file may go on with a Secret.
    let first = text.split("\n---\n").next().unwrap();
    serde_yaml::from_str(first).unwrap()
}

fn example_workspace() -> Workspace {
    let mut ws: Workspace = example("workspace.yaml");
    ws.metadata.uid = Some("w-1".into());
    ws
}

fn example_services() -> Vec<WorkspaceService> {
    let fhir: FhirService = example("fhir-service.yaml");
    let dicom: DicomService = example("dicom-service.yaml");
    let medtech: MedTechService = example("medtech-service.yaml");
    // Listed as the apiserver might: in no particular order.
    vec![
        WorkspaceService::medtech(&medtech).unwrap(),
        WorkspaceService::fhir(&fhir).unwrap(),
        WorkspaceService::dicom(&dicom).unwrap(),
    ]
}

fn config(d: &DesiredWorkspace) -> WorkspaceIssuerConfig {
    serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap()
}

fn pod_annotations(d: &k8s_openapi::api::apps::v1::Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap()
}

#[test]
fn the_example_issuer_config_lists_the_clients_and_the_services() {
    let d = workspace(&example_workspace(), &example_services(), &ctx()).unwrap();
    let cfg = config(&d);
    cfg.check().unwrap();
    assert_eq!(
        cfg.issuer,
        "http://demo-issuer.default.svc.cluster.local:8080"
    );
    assert_eq!(cfg.listen, Some("0.0.0.0:8080".parse().unwrap()));
    assert_eq!(
        cfg.signing_key_file.to_str(),
        Some("/var/run/hds/signing-key/signingKey")
    );
    assert_eq!(cfg.token_lifetime_seconds, Some(3600));
    assert_eq!(
        cfg.audiences,
        [
            "http://fhir.default.svc.cluster.local:8080",
            "http://dicom.default.svc.cluster.local:8080",
            "http://vitals.default.svc.cluster.local:8080",
        ]
    );
    let ids: Vec<_> = cfg.clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["demo-app", "dicom-fhir-sync-dicom", "medtech-vitals"]);
    assert_eq!(
        cfg.clients[0]
            .secret_file
            .as_deref()
            .and_then(|p| p.to_str()),
        Some("/var/run/hds/clients/demo-app")
    );
    assert_eq!(
        cfg.clients[0].roles,
        ["FHIR Data Contributor", "DICOM Data Owner"]
    );
    let medtech = &cfg.clients[2];
    assert_eq!(
        medtech.secret_file.as_deref().and_then(|p| p.to_str()),
        Some("/var/run/hds/clients/medtech-vitals")
    );
    assert_eq!(medtech.roles, ["FHIR Data Writer"]);
    assert!(
        medtech
            .scopes
            .contains(&"system/Observation.crus".to_owned())
    );
    assert_eq!(d.generated_signing_key.as_deref(), Some("demo-signing-key"));
    assert_eq!(
        d.generated_clients,
        ["dicom-fhir-sync-dicom", "medtech-vitals"]
    );

    // The mounted files are where the config points.
    let pod = d
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let volumes = pod.volumes.unwrap();
    let key = volumes.iter().find(|v| v.name == "signing-key").unwrap();
    assert_eq!(
        key.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("demo-signing-key")
    );
    let clients = volumes.iter().find(|v| v.name == "clients").unwrap();
    let sources = clients.projected.as_ref().unwrap().sources.clone().unwrap();
    let files: Vec<_> = sources
        .iter()
        .map(|s| {
            let s = s.secret.as_ref().unwrap();
            let item = &s.items.as_ref().unwrap()[0];
            (s.name.as_str(), item.key.as_str(), item.path.as_str())
        })
        .collect();
    assert_eq!(
        files,
        [
            ("demo-app-credentials", "clientSecret", "demo-app"),
            (
                "demo-client-dicom-fhir-sync-dicom",
                "clientSecret",
                "dicom-fhir-sync-dicom"
            ),
            (
                "demo-client-medtech-vitals",
                "clientSecret",
                "medtech-vitals"
            ),
        ]
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["issuer", "--config", "/etc/hds/config.yaml"]
    );
    assert!(!volumes.iter().any(|v| v.name == "db"));
    // Names: everything is `<workspace>-issuer`.
    for o in d.objects() {
        assert_eq!(o["metadata"]["name"], "demo-issuer", "{o}");
        assert_eq!(o["metadata"]["ownerReferences"][0]["kind"], "Workspace");
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/component"],
            "issuer"
        );
    }
    assert_eq!(
        d.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        8080
    );
}

#[test]
fn the_config_does_not_follow_the_order_services_are_listed_in() {
    let ws = example_workspace();
    let mut services = example_services();
    let a = workspace(&ws, &services, &ctx()).unwrap();
    services.reverse();
    services.push(services[0].clone());
    let b = workspace(&ws, &services, &ctx()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_declared_issuer_url_and_signing_key_are_used() {
    let mut ws = example_workspace();
    let issuer = ws.spec.identity.issuer.get_or_insert_default();
    issuer.url = Some("https://id.example/demo/".into());
    issuer.signing_key_secret_ref = Some(hds_crds::common::LocalObjectRef {
        name: "my-key".into(),
    });
    let d = workspace(&ws, &[], &ctx()).unwrap();
    assert_eq!(config(&d).issuer, "https://id.example/demo");
    assert_eq!(issuer_url(&ws, &ctx()), "https://id.example/demo");
    assert_eq!(d.generated_signing_key, None);
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let key = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "signing-key")
        .unwrap();
    assert_eq!(key.secret.unwrap().secret_name.as_deref(), Some("my-key"));
}

#[test]
fn clients_need_one_secret_and_may_not_take_a_services_id() {
    let mut ws = example_workspace();
    ws.spec.identity.clients[0].secret_hash = Some("$sha256$00".into());
    assert!(matches!(
        workspace(&ws, &[], &ctx()),
        Err(DesiredError::ClientCredentials { .. })
    ));
    ws.spec.identity.clients[0].secret_ref = None;
    let d = workspace(&ws, &[], &ctx()).unwrap();
    assert_eq!(
        config(&d).clients[0].secret_hash.as_deref(),
        Some("$sha256$00")
    );
    // Nothing to mount but the key.
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    assert!(!pod.volumes.unwrap().iter().any(|v| v.name == "clients"));

    ws.spec.identity.clients[0].client_id = "medtech-vitals".into();
    assert!(matches!(
        workspace(&ws, &example_services(), &ctx()),
        Err(DesiredError::ReservedClientId { .. })
    ));
}

#[test]
fn odd_client_ids_get_safe_file_names() {
    assert_eq!(client_file("demo-app", 0), "demo-app");
    assert_eq!(client_file("../etc", 3), "_3");
    assert_eq!(client_file("a/b", 1), "_1");
    assert_eq!(client_file(".hidden", 2), "_2");
    assert_eq!(client_file("https://app.example", 4), "_4");
}

#[test]
fn a_rotation_rolls_the_issuer_and_the_pods_reading_client_secrets() {
    let mut ws = example_workspace();
    let before = workspace(&ws, &example_services(), &ctx()).unwrap();
    assert!(!pod_annotations(&before.deployment).contains_key(ROTATION_ANNOTATION));
    ws.metadata.annotations = Some(BTreeMap::from([(
        crate::identity::ROTATE_ANNOTATION.to_owned(),
        "2024-06-01".to_owned(),
    )]));
    let after = workspace(&ws, &example_services(), &ctx()).unwrap();
    let a = pod_annotations(&after.deployment);
    assert_eq!(a[ROTATION_ANNOTATION], "2024-06-01");
    // The config is the same; the annotation alone rolls the pods.
    assert_eq!(
        a[CONFIG_HASH_ANNOTATION],
        pod_annotations(&before.deployment)[CONFIG_HASH_ANNOTATION]
    );

    let mut medtech: MedTechService = example("medtech-service.yaml");
    medtech.metadata.uid = Some("m-1".into());
    let m = medtech_service(&medtech, Some(&ws), &ctx()).unwrap();
    assert_eq!(
        pod_annotations(&m.deployment)[ROTATION_ANNOTATION],
        "2024-06-01"
    );
    let mut dicom: DicomService = example("dicom-service.yaml");
    dicom.metadata.uid = Some("d-1".into());
    let d = dicom_service(&dicom, Some(&ws), &ctx()).unwrap();
    assert_eq!(
        pod_annotations(&d.deployment)[ROTATION_ANNOTATION],
        "2024-06-01"
    );
    // A DICOM service without the sync reads no client secret: nothing to roll.
    dicom.spec.fhir_sync = None;
    let d = dicom_service(&dicom, Some(&ws), &ctx()).unwrap();
    assert!(!pod_annotations(&d.deployment).contains_key(ROTATION_ANNOTATION));
}

#[test]
fn services_trust_the_in_cluster_issuer_and_get_tokens_from_it() {
    let ws = example_workspace();
    let mut medtech: MedTechService = example("medtech-service.yaml");
    medtech.metadata.uid = Some("m-1".into());
    let m = medtech_service(&medtech, Some(&ws), &ctx()).unwrap();
    let cfg: serde_yaml::Value =
        serde_yaml::from_str(&m.config_map.data.unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(
        cfg["auth"]["workspaceIssuer"],
        "http://demo-issuer.default.svc.cluster.local:8080"
    );
    assert_eq!(
        cfg["fhir"]["tokenUrl"],
        "http://demo-issuer.default.svc.cluster.local:8080/oauth2/token"
    );
    // Without the Workspace there is nothing to trust.
    let alone = medtech_service(&medtech, None, &ctx()).unwrap();
    let cfg: serde_yaml::Value =
        serde_yaml::from_str(&alone.config_map.data.unwrap()[CONFIG_KEY]).unwrap();
    assert!(cfg["auth"].get("workspaceIssuer").is_none());
    assert!(cfg["fhir"].get("tokenUrl").is_none());
}
