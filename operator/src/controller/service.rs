//! The reconcile of FhirService, DicomService and MedTechService: one function, told apart by
//! [`ServiceResource`].
//!
//! Order: the Workspace, the database and `<name>-db`, then the desired objects (config first,
//! workload last, so a pod never starts on a config it cannot find), then the status computed
//! from what the apply returned. Steps that wait on the user (a Secret, a Workspace) end in a
//! condition and a short requeue; faults end in a condition and the per-object backoff.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use hds_crds::common::{PostgresStorage, ServiceStatus};
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::apply::{apply, create_if_absent, delete_if_present, get_opt, is_status};
use super::database;
use super::status::{Blocked, DatabaseState, Observed, Rollout, conditions, rollout};
use super::{Ctx, ReconcileError};
use crate::desired::{self, Desired, DesiredError, MANAGER};

/// Guards the cleanup a deleted service needs (its database, under deletionPolicy Delete).
pub const FINALIZER: &str = "hds.dev/cleanup";

/// What the reconcile needs to know of a service kind.
pub trait ServiceResource:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    fn workspace_name(&self) -> &str;
    /// Whether the service keeps a database (FHIR and DICOM do, MedTech does not).
    fn has_database(&self) -> bool;
    /// The service's own postgres storage, which wins over the Workspace's default.
    fn own_postgres(&self) -> Option<&PostgresStorage>;
    fn desired(
        &self,
        ws: Option<&Workspace>,
        ctx: &desired::Context,
    ) -> Result<Desired, DesiredError>;
    fn service_status(&self) -> Option<&ServiceStatus>;
}

/// The three impls differ only in these parts.
macro_rules! service_resource {
    ($ty:ty, $kind:literal, database: $db:literal, own_postgres: $own:expr, desired: $desired:path) => {
        impl ServiceResource for $ty {
            const KIND: &'static str = $kind;
            fn workspace_name(&self) -> &str {
                &self.spec.workspace_ref.name
            }
            fn has_database(&self) -> bool {
                $db
            }
            fn own_postgres(&self) -> Option<&PostgresStorage> {
                let own: fn(&Self) -> Option<&PostgresStorage> = $own;
                own(self)
            }
            fn desired(
                &self,
                ws: Option<&Workspace>,
                ctx: &desired::Context,
            ) -> Result<Desired, DesiredError> {
                $desired(self, ws, ctx)
            }
            fn service_status(&self) -> Option<&ServiceStatus> {
                self.status.as_ref()
            }
        }
    };
}

service_resource!(FhirService, "FhirService", database: true,
    own_postgres: |s| s.spec.storage.postgres.as_ref(), desired: desired::fhir_service);
service_resource!(DicomService, "DicomService", database: true,
    own_postgres: |s| s.spec.storage.postgres.as_ref(), desired: desired::dicom_service);
service_resource!(MedTechService, "MedTechService", database: false,
    own_postgres: |_| None, desired: desired::medtech_service);

/// The controller's entry point for one service object.
pub async fn reconcile<S: ServiceResource>(
    svc: Arc<S>,
    ctx: Arc<Ctx>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let ns = svc
        .namespace()
        .unwrap_or_else(|| ctx.desired.default_namespace.clone());
    let api: Api<S> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, svc, |event| async {
        match event {
            finalizer::Event::Apply(svc) => apply_service(svc, &ctx).await,
            finalizer::Event::Cleanup(svc) => cleanup_service(svc, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => ReconcileError::Finalizer(other.to_string()),
    });
    super::record_reconcile(S::KIND, started, &result);
    result
}

async fn apply_service<S: ServiceResource>(
    svc: Arc<S>,
    ctx: &Ctx,
) -> Result<Action, ReconcileError> {
    let ns = svc
        .namespace()
        .unwrap_or_else(|| ctx.desired.default_namespace.clone());
    let name = svc.name_any();
    let generation = svc.meta().generation.unwrap_or(0);
    let ws_name = svc.workspace_name().to_owned();
    let ws = get_opt::<Workspace>(&ctx.client, &ns, &ws_name).await?;

    let mut db_state = None;
    let mut events = Vec::new();
    let observed = match ws.as_ref() {
        None => Observed::Blocked(Blocked::waiting(
            "WorkspaceNotFound",
            format!("Workspace '{ws_name}' not found in namespace '{ns}'"),
        )),
        Some(ws) => {
            let mut blocked = None;
            if svc.has_database() {
                let owner = database::Owner {
                    namespace: &ns,
                    name: &name,
                    reference: owner_reference(&*svc)?,
                };
                let storage = hds_common::from_spec::postgres_source(svc.own_postgres(), Some(ws));
                let outcome = database::ensure(ctx, &owner, storage, &ws_name).await?;
                events.extend(outcome.events);
                if let DatabaseState::NotReady(b) = &outcome.state {
                    blocked = Some(b.clone());
                }
                db_state = Some(outcome.state);
            }
            match blocked {
                Some(b) => Observed::Blocked(b),
                None => match svc.desired(Some(ws), &ctx.desired) {
                    Err(e) => Observed::Blocked(Blocked::fault("InvalidSpec", e.to_string())),
                    Ok(d) => match apply_desired(ctx, &d).await {
                        Ok(rollout) => Observed::Workload(rollout),
                        Err(ReconcileError::Kube(e)) if is_status(&e, 409) => {
                            Observed::Blocked(Blocked::fault("ApplyConflict", conflict_message(&e)))
                        }
                        Err(e) => return Err(e),
                    },
                },
            }
        }
    };

    let url = desired::service_url(&name, &ns, &ctx.desired);
    let previous = svc
        .service_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let was_ready = svc.service_status().is_some_and(|s| s.is_ready());
    let conds = conditions(&observed, db_state.as_ref(), generation, previous);
    let status = json!({
        "apiVersion": S::api_version(&()),
        "kind": S::kind(&()),
        "status": {
            "observedGeneration": generation,
            "conditions": conds,
            "url": url,
            "internalUrl": url,
        }
    });
    Api::<S>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&status))
        .await?;

    let now_ready = matches!(observed, Observed::Workload(Rollout::Available));
    if now_ready && !was_ready {
        events.push(("Ready", format!("{} {name} is ready at {url}", S::KIND)));
    }
    for (reason, note) in events {
        publish(ctx, &*svc, EventType::Normal, reason, note).await;
    }
    match observed {
        Observed::Workload(Rollout::Available) => Ok(Action::requeue(Duration::from_secs(600))),
        Observed::Workload(Rollout::InProgress { .. }) => {
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Observed::Workload(Rollout::Stalled { message }) => {
            Err(ReconcileError::Blocked("ProgressDeadlineExceeded", message))
        }
        Observed::Blocked(b) if b.fault => {
            if was_ready || previous.iter().all(|c| c.reason != b.reason) {
                publish(ctx, &*svc, EventType::Warning, b.reason, b.message.clone()).await;
            }
            Err(ReconcileError::Blocked(b.reason, b.message))
        }
        Observed::Blocked(_) => Ok(Action::requeue(Duration::from_secs(30))),
    }
}

/// Applies `d` in order and returns the Deployment's rollout as the server reports it.
async fn apply_desired(ctx: &Ctx, d: &Desired) -> Result<Rollout, ReconcileError> {
    apply(&ctx.client, &d.config_map).await?;
    apply(&ctx.client, &d.service_account).await?;
    for claim in &d.persistent_volume_claims {
        create_if_absent(&ctx.client, claim).await?;
    }
    apply(&ctx.client, &d.service).await?;
    let deployment = apply(&ctx.client, &d.deployment).await?;
    match &d.pod_disruption_budget {
        Some(pdb) => {
            apply(&ctx.client, pdb).await?;
        }
        None => {
            // A budget left from when the service ran several replicas would block drains.
            let ns = d.deployment.namespace().unwrap_or_default();
            delete_if_present::<PodDisruptionBudget>(&ctx.client, &ns, &d.deployment.name_any())
                .await?;
        }
    }
    Ok(rollout(&deployment))
}

async fn cleanup_service<S: ServiceResource>(
    svc: Arc<S>,
    ctx: &Ctx,
) -> Result<Action, ReconcileError> {
    let ns = svc
        .namespace()
        .unwrap_or_else(|| ctx.desired.default_namespace.clone());
    if svc.has_database()
        && let Some((reason, note)) = database::cleanup(ctx, &ns, &svc.name_any()).await?
    {
        publish(ctx, &*svc, EventType::Normal, reason, note).await;
    }
    Ok(Action::await_change())
}

fn owner_reference<S: ServiceResource>(
    svc: &S,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference, ReconcileError> {
    svc.controller_owner_ref(&()).ok_or_else(|| {
        ReconcileError::Desired(DesiredError::NoUid {
            kind: S::KIND,
            name: svc.name_any(),
        })
    })
}

/// The apiserver's conflict message names the fields and their other manager; keep it.
fn conflict_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!(
            "another field manager owns fields the operator sets; it does not force them: {}",
            s.message
        ),
        other => other.to_string(),
    }
}

/// Records an event; a failure to record one is logged, never fatal to the reconcile.
pub(super) async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Ctx,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not record an event");
    }
}
