//! A FhirService's objects.

use hds_common::from_spec::{EXPORT_MOUNT, IMPORT_MOUNT, fhir_service_config};
use hds_crds::{FhirService, Workspace};

use super::exposure::{accept_own_urls, expose, max_replicas, public_url};
use super::pod::{Pod, Workload};
use super::{Context, Desired, DesiredError, Owner, listen, postgres, render, workspace_issuer};

/// The objects of a FhirService: `hds fhir` with the config `hds_common::from_spec` makes of
/// its spec, the database URL from the Secret `<name>-db`, and the export and import
/// filesystem claims mounted where that config points; its autoscaler and route when asked
/// for, the route's public URL as the base URL.
pub fn fhir_service(
    svc: &FhirService,
    ws: Option<&Workspace>,
    ctx: &Context,
) -> Result<Desired, DesiredError> {
    let owner = Owner::of(svc, "FhirService", "fhir", ctx)?;
    let spec = &svc.spec;
    let mut cfg = fhir_service_config(svc, ws, postgres())?;
    cfg.listen = Some(listen());
    // Clients outside follow the absolute URLs the service answers: the public URL when there
    // is one.
    let public = public_url(spec.exposure.as_ref());
    cfg.base_url = Some(public.clone().unwrap_or_else(|| owner.url(ctx)));
    accept_own_urls(&mut cfg.auth, &owner.url(ctx), public.as_deref());
    cfg.auth.workspace_issuer = workspace_issuer(ws, ctx).or(cfg.auth.workspace_issuer);

    // Claims are shared by as many pods as the autoscaler may run.
    let replicas = max_replicas(spec.replicas, spec.autoscaling.as_ref());
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

    let mut desired = Workload {
        owner: &owner,
        name: owner.name.clone(),
        config_map: format!("{}-config", owner.name),
        command: "fhir",
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
