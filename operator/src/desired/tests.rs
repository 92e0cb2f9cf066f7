use super::*;
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};

fn ctx() -> Context {
    Context::new("ghcr.io/example/hds:test")
}

fn fhir(extra: &str) -> FhirService {
    serde_yaml::from_str(&format!(
        "apiVersion: hds.dev/v1alpha1\nkind: FhirService\nmetadata: {{name: fhir, namespace: ns1, uid: u-1}}\nspec:\n  workspaceRef: {{name: demo}}\n{extra}"
    ))
    .unwrap()
}

fn workspace(spec: &str) -> Workspace {
    serde_yaml::from_str(&format!(
        "apiVersion: hds.dev/v1alpha1\nkind: Workspace\nmetadata: {{name: demo, namespace: ns1}}\nspec: {spec}\n"
    ))
    .unwrap()
}

fn medtech(extra: &str) -> MedTechService {
    serde_yaml::from_str(&format!(
        r#"apiVersion: hds.dev/v1alpha1
kind: MedTechService
metadata: {{name: vitals, namespace: ns1, uid: u-2}}
spec:
  workspaceRef: {{name: demo}}
  ingestion:
    mqtt: {{brokerUrl: "mqtt://broker:1883", topicFilter: "d/+", {extra}}}
  deviceMapping: {{content: {{templateType: CollectionContent, template: []}}}}
  fhirDestination:
    fhirServiceRef: {{name: records}}
    fhirMapping: {{content: {{templateType: CollectionFhir, template: []}}}}
"#
    ))
    .unwrap()
}

fn hash(d: &Desired) -> String {
    d.deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH_ANNOTATION]
        .clone()
}

fn config(d: &Desired) -> serde_yaml::Value {
    serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap()
}

#[test]
fn the_config_hash_follows_the_config_and_nothing_else() {
    let a = fhir_service(
        &fhir("  cors: {origins: ['https://a.example']}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    let again = fhir_service(
        &fhir("  cors: {origins: ['https://a.example']}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    let b = fhir_service(
        &fhir("  cors: {origins: ['https://b.example']}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    assert_eq!(hash(&a), hash(&again));
    assert_ne!(hash(&a), hash(&b));
    assert_eq!(hash(&a), config_hash(a.config_map.data.as_ref().unwrap()));
    assert_eq!(hash(&a).len(), 64);
    // Replicas and resources are not config: scaling does not roll the pods.
    let scaled = fhir_service(
        &fhir("  cors: {origins: ['https://a.example']}\n  replicas: 3\n  resources: {limits: {memory: 1Gi}}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    assert_eq!(hash(&a), hash(&scaled));
    // Nor does the image.
    let other_image = fhir_service(
        &fhir("  cors: {origins: ['https://a.example']}\n"),
        None,
        &Context::new("hds:other"),
    )
    .unwrap();
    assert_eq!(hash(&a), hash(&other_image));
}

#[test]
fn every_object_is_owned_by_the_resource_and_labelled() {
    let d = fhir_service(&fhir("  replicas: 2\n"), None, &ctx()).unwrap();
    let objects = d.objects();
    assert_eq!(
        objects.len(),
        5,
        "ConfigMap, ServiceAccount, Service, Deployment, PDB"
    );
    for o in &objects {
        let refs = o["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1, "{o}");
        assert_eq!(refs[0]["apiVersion"], "hds.dev/v1alpha1");
        assert_eq!(refs[0]["kind"], "FhirService");
        assert_eq!(refs[0]["name"], "fhir");
        assert_eq!(refs[0]["uid"], "u-1");
        assert_eq!(refs[0]["controller"], true);
        assert_eq!(refs[0]["blockOwnerDeletion"], true);
        assert_eq!(o["metadata"]["namespace"], "ns1");
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "hds");
        assert_eq!(labels["app.kubernetes.io/instance"], "fhir");
        assert_eq!(labels["app.kubernetes.io/component"], "fhir");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "hds-operator");
    }
}

#[test]
fn a_resource_without_uid_or_name_has_no_objects() {
    let mut svc = fhir("");
    svc.metadata.uid = None;
    assert_eq!(
        fhir_service(&svc, None, &ctx()).unwrap_err(),
        DesiredError::NoUid {
            kind: "FhirService",
            name: "fhir".into()
        }
    );
    svc.metadata.name = None;
    assert_eq!(
        fhir_service(&svc, None, &ctx()).unwrap_err(),
        DesiredError::Unnamed {
            kind: "FhirService"
        }
    );
}

#[test]
fn a_service_of_another_workspace_is_refused() {
    let mut ws = workspace("{}");
    ws.metadata.name = Some("other".into());
    assert!(matches!(
        fhir_service(&fhir(""), Some(&ws), &ctx()),
        Err(DesiredError::Spec(SpecError::WrongWorkspace { .. }))
    ));
}

#[test]
fn the_pod_runs_as_non_root_with_nothing_to_spare() {
    let d = fhir_service(&fhir(""), None, &ctx()).unwrap();
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_ne!(psc.run_as_user, Some(0));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["fhir", "--config", "/etc/hds/config.yaml"]
    );
    assert_eq!(
        d.service_account.automount_service_account_token,
        Some(false)
    );
    // One replica: no budget to keep.
    assert!(d.pod_disruption_budget.is_none());
}

#[test]
fn the_config_reads_the_database_url_from_the_mounted_secret() {
    let d = fhir_service(&fhir(""), None, &ctx()).unwrap();
    let cfg = config(&d);
    assert_eq!(cfg["postgres"]["urlFile"], "/var/run/hds/db/url");
    assert!(cfg["postgres"].get("url").is_none());
    assert_eq!(cfg["listen"], "0.0.0.0:8080");
    assert_eq!(cfg["baseUrl"], "http://fhir.ns1.svc.cluster.local:8080");
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let db = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "db")
        .unwrap();
    assert_eq!(db.secret.unwrap().secret_name.as_deref(), Some("fhir-db"));
    // And the config loads back as the service would load it.
    let text = &d.config_map.data.unwrap()[CONFIG_KEY];
    serde_yaml::from_str::<hds_common::config::FhirServiceConfig>(text).unwrap();
}

#[test]
fn medtech_writes_to_the_named_fhir_service_as_its_own_client() {
    let ws = workspace("{identity: {issuer: {url: 'https://issuer.example/demo/'}}}");
    let d = medtech_service(&medtech(""), Some(&ws), &ctx()).unwrap();
    let cfg = config(&d);
    assert_eq!(
        cfg["fhir"]["fhirUrl"],
        "http://records.ns1.svc.cluster.local:8080"
    );
    assert_eq!(
        cfg["fhir"]["tokenUrl"],
        "https://issuer.example/demo/oauth2/token"
    );
    assert_eq!(cfg["fhir"]["clientId"], "medtech-vitals");
    assert_eq!(
        cfg["fhir"]["clientSecretFile"],
        "/var/run/hds/fhir-client/clientSecret"
    );
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let volumes = pod.volumes.unwrap();
    // MedTech keeps no database, so it waits for no database Secret.
    assert!(!volumes.iter().any(|v| v.name == "db"));
    let secret = volumes
        .into_iter()
        .find(|v| v.name == "fhir-client")
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(
        secret.secret_name.as_deref(),
        Some("demo-client-medtech-vitals")
    );
    // The MedTech config loads back as the service would load it.
    serde_yaml::from_str::<hds_common::config::MedTechServiceConfig>(
        &d.config_map.data.unwrap()[CONFIG_KEY],
    )
    .unwrap();
}

#[test]
fn medtech_replicas_share_one_subscription_under_their_own_client_ids() {
    let d = medtech_service(&medtech(""), None, &ctx()).unwrap();
    let cfg = config(&d);
    assert_eq!(cfg["mqtt"]["sharedSubscriptionGroup"], "hds-medtech-vitals");
    assert_eq!(cfg["mqtt"]["clientIdSuffixEnv"], "POD_NAME");
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let pod_name = env.iter().find(|e| e.name == "POD_NAME").unwrap();
    let field = pod_name
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field.field_path, "metadata.name");
    // A group the spec names is kept.
    let named = medtech_service(&medtech("sharedSubscriptionGroup: mine"), None, &ctx()).unwrap();
    assert_eq!(config(&named)["mqtt"]["sharedSubscriptionGroup"], "mine");
}

#[test]
fn medtech_without_a_fhir_service_is_refused() {
    let mut svc = medtech("");
    svc.spec.fhir_destination.fhir_service_ref.name.clear();
    assert!(matches!(
        medtech_service(&svc, None, &ctx()),
        Err(DesiredError::MissingFhirService { .. })
    ));
}

#[test]
fn medtech_mounts_the_broker_password_and_ca() {
    let d = medtech_service(
        &medtech("credentialsSecretRef: {name: broker}, tls: {enabled: true, caSecretRef: {name: ca, key: root.pem}}"),
        None,
        &ctx(),
    )
    .unwrap();
    let cfg = config(&d);
    assert_eq!(cfg["mqtt"]["passwordFile"], "/var/run/hds/mqtt/password");
    assert_eq!(cfg["mqtt"]["caFile"], "/var/run/hds/mqtt-ca/ca.crt");
    assert_eq!(cfg["mqtt"]["tls"], true);
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let creds = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "mqtt-credentials")
        .unwrap();
    let items = creds.secret.as_ref().unwrap().items.as_ref().unwrap();
    assert_eq!(items[1].key, "password");
    let ca = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "mqtt-ca")
        .unwrap();
    assert_eq!(
        ca.secret.as_ref().unwrap().items.as_ref().unwrap()[0].key,
        "root.pem"
    );

    let insecure = medtech("tls: {enabled: true, insecureSkipVerify: true}");
    assert!(matches!(
        medtech_service(&insecure, None, &ctx()),
        Err(DesiredError::InsecureSkipVerify { .. })
    ));
}

fn dicom(extra: &str) -> DicomService {
    serde_yaml::from_str(&format!(
        "apiVersion: hds.dev/v1alpha1\nkind: DicomService\nmetadata: {{name: img, namespace: ns1, uid: u-3}}\nspec:\n  workspaceRef: {{name: demo}}\n{extra}"
    ))
    .unwrap()
}

#[test]
fn dicom_s3_storage_reaches_the_pod_as_aws_variables() {
    let d = dicom_service(
        &dicom("  storage: {blob: {s3: {bucket: b, endpoint: 'http://minio:9000', credentialsSecretRef: {name: s3}}}}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    assert_eq!(config(&d)["storage"]["url"], "s3://b/");
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let names: Vec<_> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_ENDPOINT",
            "AWS_ALLOW_HTTP",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY"
        ]
    );
    let key = env[2]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((key.name.as_str(), key.key.as_str()), ("s3", "accessKeyId"));
    assert!(d.persistent_volume_claims.is_empty());
}

#[test]
fn fhir_storages_with_different_s3_credentials_are_refused() {
    let svc = fhir(
        "  export: {enabled: true, storage: {s3: {bucket: a, credentialsSecretRef: {name: one}}}}\n  import: {enabled: true, storage: {s3: {bucket: b, credentialsSecretRef: {name: two}}}}\n",
    );
    assert!(matches!(
        fhir_service(&svc, None, &ctx()),
        Err(DesiredError::ConflictingS3 { .. })
    ));
}

#[test]
fn dicom_falls_back_to_the_workspace_blob_storage() {
    let ws = workspace("{defaults: {blobStorage: {filesystem: {claimName: shared, path: dicom}}}}");
    let d = dicom_service(&dicom(""), Some(&ws), &ctx()).unwrap();
    assert_eq!(
        config(&d)["storage"]["url"],
        "file:///var/lib/hds/dicom/dicom"
    );
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let v = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "blobs")
        .unwrap();
    assert_eq!(v.persistent_volume_claim.unwrap().claim_name, "shared");
    // No size: the claim is the user's, not created here.
    assert!(d.persistent_volume_claims.is_empty());
}
