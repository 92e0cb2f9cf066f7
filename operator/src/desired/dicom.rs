//! A DicomService's objects.

use hds_common::config::{FhirClientConfig, FhirSyncConfig};
use hds_common::from_spec::{DICOM_MOUNT, dicom_service_config};
use hds_crds::{DicomService, Workspace};

use super::exposure::{accept_own_urls, expose, max_replicas, public_url};
use super::pod::{Pod, Workload};
use super::{
    CLIENT_SECRET_KEY, Context, Desired, DesiredError, FHIR_CLIENT_DIR, Owner, client_secret_name,
    listen, postgres, render, workspace_issuer, workspace_token_url,
};
use crate::identity::{ROTATION_ANNOTATION, rotate_value};

/// The objects of a DicomService: `hds dicom` with the config `hds_common::from_spec` makes of
/// its spec, its blob storage (own or the Workspace's) as a mounted claim or `AWS_*`
/// variables, and, when `fhirSync` is on, the FhirService's in-cluster URL and the secret of
/// the Workspace client `dicom-fhir-sync-<name>` the sync writes as; its autoscaler and route
/// when asked for, the route's public URL as the base URL.
pub fn dicom_service(
    svc: &DicomService,
    ws: Option<&Workspace>,
    ctx: &Context,
) -> Result<Desired, DesiredError> {
    let owner = Owner::of(svc, "DicomService", "dicom", ctx)?;
    let spec = &svc.spec;
    let mut cfg = dicom_service_config(svc, ws, postgres())?;
    cfg.listen = Some(listen());
    // RetrieveURLs and the sync's Endpoint.address must work outside: the public URL when
    // there is one.
    let public = public_url(spec.exposure.as_ref());
    cfg.base_url = Some(public.clone().unwrap_or_else(|| owner.url(ctx)));
    accept_own_urls(&mut cfg.auth, &owner.url(ctx), public.as_deref());
    cfg.auth.workspace_issuer = workspace_issuer(ws, ctx).or(cfg.auth.workspace_issuer);

    let mut pod = Pod::default();
    // The same choice `dicom_service_config` makes for `storage.url`.
    let blob = spec
        .storage
        .blob
        .as_ref()
        .or_else(|| ws.and_then(|w| w.spec.defaults.blob_storage.as_ref()));
    if let Some(b) = blob {
        // Shared by as many pods as the autoscaler may run.
        let replicas = max_replicas(spec.replicas, spec.autoscaling.as_ref());
        pod.blob_storage(&owner, "blobs", b, DICOM_MOUNT, replicas);
    }
    let s3: Vec<_> = blob.and_then(|b| b.s3.as_ref()).into_iter().collect();
    pod.s3(&owner, &s3)?;

    if let Some(sync) = spec.fhir_sync.as_ref().filter(|s| s.enabled) {
        let fhir = &sync.fhir_service_ref.name;
        if fhir.is_empty() {
            return Err(DesiredError::MissingFhirService {
                kind: owner.kind,
                name: owner.name.clone(),
                field: "spec.fhirSync.fhirServiceRef",
            });
        }
        let client_id = format!("dicom-fhir-sync-{}", owner.name);
        let secret = client_secret_name(&spec.workspace_ref.name, &client_id);
        pod.secret_files(
            "fhir-client",
            &secret,
            &[(CLIENT_SECRET_KEY, CLIENT_SECRET_KEY)],
            FHIR_CLIENT_DIR,
        );
        // The secret is read at start: a rotation of the Workspace's credentials rolls the pods.
        if let Some(rotation) = ws.and_then(rotate_value) {
            pod.annotate(ROTATION_ANNOTATION, rotation);
        }
        cfg.fhir_sync = Some(FhirSyncConfig {
            fhir: FhirClientConfig {
                fhir_url: owner.sibling_url(fhir, ctx),
                token_url: workspace_token_url(ws, ctx),
                client_id: Some(client_id),
                client_secret: None,
                client_secret_file: Some(format!("{FHIR_CLIENT_DIR}/{CLIENT_SECRET_KEY}").into()),
            },
            patient_identifier_system: sync.patient_identifier_system.clone(),
        });
    }

    let mut desired = Workload {
        owner: &owner,
        name: owner.name.clone(),
        config_map: format!("{}-config", owner.name),
        command: "dicom",
        replicas: spec.replicas,
        autoscaling: spec.autoscaling.as_ref(),
        resources: spec.resources.clone(),
        config_yaml: render(&owner, &cfg)?,
        database: true,
        pod,
    }
    .build(ctx);
    expose(&owner, spec.exposure.as_ref(), &mut desired);
    Ok(desired)
}
