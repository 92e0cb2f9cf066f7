//! The reconcile of a Workspace: its credentials (signing key, the services' client secrets),
//! its issuer Deployment, and a status that sums up its services.

use std::sync::Arc;
use std::time::Duration;

use hds_crds::common::ServiceStatus;
use hds_crds::workspace::{ServiceKind, ServiceSummary};
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::apply::{apply, get_opt, is_status};
use super::service::{ServiceResource, publish};
use super::status::{Blocked, Observed, Rollout, conditions, rollout};
use super::{Ctx, ReconcileError};
use crate::desired::{self, DesiredError, MANAGER, WorkspaceService};
use crate::identity;

pub async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(ws, &ctx).await;
    super::record_reconcile("Workspace", started, &result);
    result
}

/// The services naming `workspace` in `ns`, for the issuer and for the status.
async fn services(
    ctx: &Ctx,
    ns: &str,
    workspace: &str,
) -> Result<(Vec<WorkspaceService>, Vec<ServiceSummary>), ReconcileError> {
    async fn list<S: ServiceResource>(ctx: &Ctx, ns: &str) -> Result<Vec<S>, kube::Error> {
        Ok(Api::<S>::namespaced(ctx.client.clone(), ns)
            .list(&ListParams::default())
            .await?
            .items)
    }
    fn summary<S: ServiceResource>(kind: ServiceKind, s: &S) -> ServiceSummary {
        let status: Option<&ServiceStatus> = s.service_status();
        ServiceSummary {
            kind,
            name: s.name_any(),
            ready: status.is_some_and(|st| st.is_ready()),
            url: status.and_then(|st| st.url.clone()),
        }
    }
    let mut members = Vec::new();
    let mut summaries = Vec::new();
    for s in list::<FhirService>(ctx, ns).await? {
        if s.workspace_name() == workspace {
            members.extend(WorkspaceService::fhir(&s));
            summaries.push(summary(ServiceKind::FhirService, &s));
        }
    }
    for s in list::<DicomService>(ctx, ns).await? {
        if s.workspace_name() == workspace {
            members.extend(WorkspaceService::dicom(&s));
            summaries.push(summary(ServiceKind::DicomService, &s));
        }
    }
    for s in list::<MedTechService>(ctx, ns).await? {
        if s.workspace_name() == workspace {
            members.extend(WorkspaceService::medtech(&s));
            summaries.push(summary(ServiceKind::MedTechService, &s));
        }
    }
    summaries.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok((members, summaries))
}

async fn reconcile_inner(ws: Arc<Workspace>, ctx: &Ctx) -> Result<Action, ReconcileError> {
    let ns = ws
        .namespace()
        .unwrap_or_else(|| ctx.desired.default_namespace.clone());
    let name = ws.name_any();
    let generation = ws.meta().generation.unwrap_or(0);
    let owner = ws.controller_owner_ref(&()).ok_or_else(|| {
        ReconcileError::Desired(DesiredError::NoUid {
            kind: "Workspace",
            name: name.clone(),
        })
    })?;
    let (members, summaries) = services(ctx, &ns, &name).await?;

    let observed = match desired::workspace(&ws, &members, &ctx.desired) {
        Err(e) => Observed::Blocked(Blocked::fault("InvalidSpec", e.to_string())),
        Ok(d) => {
            let mut blocked = None;
            // Credentials first: the issuer pod mounts them.
            if let Some(secret_name) = &d.generated_signing_key {
                ensure_generated(
                    ctx,
                    &ws,
                    secret_name,
                    ("SigningKey", "the issuer's signing key"),
                    |existing| identity::signing_key_secret(&ws, existing, owner.clone()),
                )
                .await?;
            }
            for client_id in &d.generated_clients {
                let secret_name = desired::client_secret_name(&name, client_id);
                let what = format!("the secret of client {client_id}");
                ensure_generated(
                    ctx,
                    &ws,
                    &secret_name,
                    ("ClientSecret", &what),
                    |existing| identity::client_secret(&ws, client_id, existing, owner.clone()),
                )
                .await?;
            }
            // Secrets the user provides: say which is missing rather than leave a pod pending.
            for c in &ws.spec.identity.clients {
                if let Some(r) = &c.secret_ref
                    && blocked.is_none()
                    && get_opt::<Secret>(&ctx.client, &ns, &r.name)
                        .await?
                        .is_none()
                {
                    blocked = Some(Blocked::waiting(
                        "SecretNotFound",
                        format!(
                            "Secret '{}' of client '{}' not found in namespace '{ns}'",
                            r.name, c.client_id
                        ),
                    ));
                }
            }
            match blocked {
                Some(b) => Observed::Blocked(b),
                None => {
                    let applied = async {
                        apply(&ctx.client, &d.config_map).await?;
                        apply(&ctx.client, &d.service_account).await?;
                        apply(&ctx.client, &d.service).await?;
                        apply(&ctx.client, &d.deployment).await
                    }
                    .await;
                    match applied {
                        Ok(dep) => Observed::Workload(rollout(&dep)),
                        Err(e) if is_status(&e, 409) => Observed::Blocked(Blocked::fault(
                            "ApplyConflict",
                            format!(
                                "another field manager owns fields the operator sets; it does not force them: {e}"
                            ),
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    };

    let previous = ws
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let status = json!({
        "apiVersion": Workspace::api_version(&()),
        "kind": Workspace::kind(&()),
        "status": {
            "observedGeneration": generation,
            "conditions": conditions(&observed, None, generation, previous),
            "issuer": desired::issuer_url(&ws, &ctx.desired),
            "services": summaries,
        }
    });
    Api::<Workspace>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&status))
        .await?;
    match observed {
        Observed::Workload(Rollout::Available) => Ok(Action::requeue(Duration::from_secs(600))),
        Observed::Workload(Rollout::InProgress { .. }) => {
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Observed::Workload(Rollout::Stalled { message }) => {
            Err(ReconcileError::Blocked("ProgressDeadlineExceeded", message))
        }
        Observed::Blocked(b) if b.fault => Err(ReconcileError::Blocked(b.reason, b.message)),
        Observed::Blocked(_) => Ok(Action::requeue(Duration::from_secs(30))),
    }
}

/// Writes a generated credential Secret when `make` says it must be (absent, or a rotation
/// asked for), and records an Event saying so.
async fn ensure_generated(
    ctx: &Ctx,
    ws: &Workspace,
    secret_name: &str,
    (reason, what): (&'static str, &str),
    make: impl FnOnce(Option<&Secret>) -> Option<Secret>,
) -> Result<(), ReconcileError> {
    let existing = get_opt::<Secret>(
        &ctx.client,
        &ws.namespace().unwrap_or_default(),
        secret_name,
    )
    .await?;
    if let Some(s) = make(existing.as_ref()) {
        apply(&ctx.client, &s).await?;
        let verb = if existing.is_some() {
            "rotated"
        } else {
            "generated"
        };
        publish(
            ctx,
            ws,
            EventType::Normal,
            reason,
            format!("{verb} {what} in Secret {secret_name}"),
        )
        .await;
    }
    Ok(())
}
