//! A FhirService's objects.

use hds_common::from_spec::{EXPORT_MOUNT, IMPORT_MOUNT, fhir_service_config};
use hds_crds::{FhirService, Workspace};

use super::pod::{Pod, Workload};
use super::{Context, Desired, DesiredError, Owner, listen, postgres, render, workspace_issuer};

/// The objects of a FhirService: `hds fhir` with the config `hds_common::from_spec` makes of
/// its spec, the database URL from the Secret `<name>-db`, and the export and import
/// filesystem claims mounted where that config points.
pub fn fhir_service(
    svc: &FhirService,
    ws: Option<&Workspace>,
    ctx: &Context,
) -> Result<Desired, DesiredError> {
    let owner = Owner::of(svc, "FhirService", "fhir", ctx)?;
    let mut cfg = fhir_service_config(svc, ws, postgres())?;
    cfg.listen = Some(listen());
    cfg.base_url = Some(owner.url(ctx));
    cfg.auth.workspace_issuer = workspace_issuer(ws, ctx).or(cfg.auth.workspace_issuer);

    let spec = &svc.spec;
    let replicas = spec.replicas;
    let mut pod = Pod::default();
    let export = spec.export.as_ref().and_then(|e| e.storage.as_ref());
    let import = spec.import.as_ref().and_then(|i| i.storage.as_ref());
    if let Some(s) = export {
        pod.blob_storage(&owner, "export", s, EXPORT_MOUNT, replicas);
    }
    if let Some(s) = import {
        pod.blob_storage(&owner, "import", s, IMPORT_MOUNT, replicas);
    }
    let s3: Vec<_> = export
        .into_iter()
        .chain(import)
        .filter_map(|s| s.s3.as_ref())
        .collect();
    pod.s3(&owner, &s3)?;

    Ok(Workload {
        owner: &owner,
        name: owner.name.clone(),
        config_map: format!("{}-config", owner.name),
        command: "fhir",
        replicas,
        resources: spec.resources.clone(),
        config_yaml: render(&owner, &cfg)?,
        database: true,
        pod,
    }
    .build(ctx))
}
