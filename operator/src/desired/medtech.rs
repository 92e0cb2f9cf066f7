//! A MedTechService's objects.

use hds_common::config::FhirClientConfig;
use hds_common::from_spec::medtech_service_config;
use hds_crds::{MedTechService, Workspace};

use super::pod::{Pod, Workload};
use super::{
    CLIENT_SECRET_KEY, Context, Desired, DesiredError, FHIR_CLIENT_DIR, Owner, client_secret_name,
    listen, render, workspace_issuer, workspace_token_url,
};
use crate::identity::{ROTATION_ANNOTATION, rotate_value};

/// Where the broker credentials Secret is mounted: files `username` and `password`.
pub const MQTT_CREDENTIALS_DIR: &str = "/var/run/hds/mqtt";
/// Where the broker's CA bundle is mounted: file `ca.crt`.
pub const MQTT_CA_DIR: &str = "/var/run/hds/mqtt-ca";
/// The variable holding the pod's name, appended to the MQTT client id.
const POD_NAME_ENV: &str = "POD_NAME";

/// The objects of a MedTechService: `hds medtech` with the config `hds_common::from_spec`
/// makes of its spec, writing to the named FhirService's in-cluster URL as the Workspace
/// client `medtech-<name>` (its secret mounted from `<workspace>-client-medtech-<name>`), with
/// the broker's password and CA mounted as files.
pub fn medtech_service(
    svc: &MedTechService,
    ws: Option<&Workspace>,
    ctx: &Context,
) -> Result<Desired, DesiredError> {
    let owner = Owner::of(svc, "MedTechService", "medtech", ctx)?;
    let spec = &svc.spec;
    let fhir = &spec.fhir_destination.fhir_service_ref.name;
    if fhir.is_empty() {
        return Err(DesiredError::MissingFhirService {
            kind: owner.kind,
            name: owner.name.clone(),
            field: "spec.fhirDestination.fhirServiceRef",
        });
    }
    let mqtt = &spec.ingestion.mqtt;
    if mqtt.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
        return Err(DesiredError::InsecureSkipVerify {
            name: owner.name.clone(),
        });
    }

    let mut pod = Pod::default();
    let client_id = format!("medtech-{}", owner.name);
    pod.secret_files(
        "fhir-client",
        &client_secret_name(&spec.workspace_ref.name, &client_id),
        &[(CLIENT_SECRET_KEY, CLIENT_SECRET_KEY)],
        FHIR_CLIENT_DIR,
    );
    // The secret is read at start: a rotation of the Workspace's credentials rolls the pods.
    if let Some(rotation) = ws.and_then(rotate_value) {
        pod.annotate(ROTATION_ANNOTATION, rotation);
    }
    let client = FhirClientConfig {
        fhir_url: owner.sibling_url(fhir, ctx),
        token_url: workspace_token_url(ws, ctx),
        client_id: Some(client_id),
        client_secret: None,
        client_secret_file: Some(format!("{FHIR_CLIENT_DIR}/{CLIENT_SECRET_KEY}").into()),
    };
    let mut cfg = medtech_service_config(svc, ws, client)?;
    cfg.listen = Some(listen());
    cfg.base_url = Some(owner.url(ctx));
    cfg.auth.workspace_issuer = workspace_issuer(ws, ctx).or(cfg.auth.workspace_issuer);
    // Replicas split the stream through one shared subscription, and each connects under its
    // own client id (the pod's name appended): one id shared by two pods would have the broker
    // hand the session back and forth between them.
    cfg.mqtt
        .shared_subscription_group
        .get_or_insert_with(|| format!("hds-medtech-{}", owner.name));
    cfg.mqtt.client_id_suffix_env = Some(POD_NAME_ENV.into());
    pod.pod_name_env(POD_NAME_ENV);

    if let Some(c) = &mqtt.credentials_secret_ref {
        pod.secret_files(
            "mqtt-credentials",
            &c.name,
            &[(&c.username_key, "username"), (&c.password_key, "password")],
            MQTT_CREDENTIALS_DIR,
        );
        cfg.mqtt.username_file = Some(format!("{MQTT_CREDENTIALS_DIR}/username").into());
        cfg.mqtt.password_file = Some(format!("{MQTT_CREDENTIALS_DIR}/password").into());
    }
    if let Some(ca) = mqtt.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
        pod.secret_files("mqtt-ca", &ca.name, &[(&ca.key, "ca.crt")], MQTT_CA_DIR);
        cfg.mqtt.ca_file = Some(format!("{MQTT_CA_DIR}/ca.crt").into());
    }

    Ok(Workload {
        owner: &owner,
        name: owner.name.clone(),
        config_map: format!("{}-config", owner.name),
        command: "medtech",
        replicas: spec.replicas,
        autoscaling: spec.autoscaling.as_ref(),
        resources: spec.resources.clone(),
        config_yaml: render(&owner, &cfg)?,
        database: false,
        pod,
    }
    .build(ctx))
}
