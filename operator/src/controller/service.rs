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
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::apply::{
    apply, create_if_absent, delete_if_owned, delete_if_owned_in, get_opt, is_status,
};
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
    /// The public URL, when the spec exposes the service outside the cluster.
    fn public_url(&self) -> Option<String>;
}

/// The three impls differ only in these parts.
macro_rules! service_resource {
    ($ty:ty, $kind:literal, database: $db:literal, own_postgres: $own:expr, desired: $desired:path,
     public_url: $public:expr) => {
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
            fn public_url(&self) -> Option<String> {
                let public: fn(&Self) -> Option<String> = $public;
                public(self)
            }
        }
    };
}

service_resource!(FhirService, "FhirService", database: true,
    own_postgres: |s| s.spec.storage.postgres.as_ref(), desired: desired::fhir_service,
    public_url: |s| desired::public_url(s.spec.exposure.as_ref()));
service_resource!(DicomService, "DicomService", database: true,
    own_postgres: |s| s.spec.storage.postgres.as_ref(), desired: desired::dicom_service,
    public_url: |s| desired::public_url(s.spec.exposure.as_ref()));
service_resource!(MedTechService, "MedTechService", database: false,
    own_postgres: |_| None, desired: desired::medtech_service, public_url: |_| None);

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
                    Ok(d) => {
                        match apply_desired(ctx, &d, svc.meta().uid.as_deref().unwrap_or_default())
                            .await
                        {
                            Ok(observed) => observed,
                            Err(ReconcileError::Kube(e)) if is_status(&e, 409) => {
                                Observed::Blocked(Blocked::fault(
                                    "ApplyConflict",
                                    conflict_message(&e),
                                ))
                            }
                            Err(e) => return Err(e),
                        }
                    }
                },
            }
        }
    };

    let internal_url = desired::service_url(&name, &ns, &ctx.desired);
    // What clients should use: the public URL of an exposed service, else the in-cluster one.
    let url = svc.public_url().unwrap_or_else(|| internal_url.clone());
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
            "internalUrl": internal_url,
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

/// `gateway.networking.k8s.io/v1` `HTTPRoute`, for `Api<DynamicObject>`.
pub fn http_route_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(
        desired::GATEWAY_API_GROUP,
        desired::GATEWAY_API_VERSION,
        desired::HTTP_ROUTE_KIND,
    );
    ApiResource::from_gvk_with_plural(&gvk, desired::HTTP_ROUTES)
}

/// Applies `d` in order and returns what came of it: the Deployment's rollout as the server
/// reports it, or a wait for the Gateway API when an HTTPRoute is asked for without it.
/// Objects the spec no longer asks for go, when they are the service's (`owner_uid`).
async fn apply_desired(
    ctx: &Ctx,
    d: &Desired,
    owner_uid: &str,
) -> Result<Observed, ReconcileError> {
    apply(&ctx.client, &d.config_map).await?;
    apply(&ctx.client, &d.service_account).await?;
    for claim in &d.persistent_volume_claims {
        create_if_absent(&ctx.client, claim).await?;
    }
    apply(&ctx.client, &d.service).await?;
    let deployment = apply(&ctx.client, &d.deployment).await?;
    let ns = d.deployment.namespace().unwrap_or_default();
    let name = d.deployment.name_any();
    match &d.horizontal_pod_autoscaler {
        Some(hpa) => {
            apply(&ctx.client, hpa).await?;
        }
        // Left behind, it would go on scaling a Deployment that has its count back.
        None => {
            delete_if_owned::<HorizontalPodAutoscaler>(&ctx.client, &ns, &name, owner_uid).await?
        }
    }
    match &d.pod_disruption_budget {
        Some(pdb) => {
            apply(&ctx.client, pdb).await?;
        }
        None => {
            // A budget left from when the service ran several replicas would block drains; one
            // of the user's own under this name is theirs.
            delete_if_owned::<PodDisruptionBudget>(&ctx.client, &ns, &name, owner_uid).await?;
        }
    }
    // Routes go last, so outside traffic never reaches a Service before its pods exist.
    match &d.ingress {
        Some(ingress) => {
            apply(&ctx.client, ingress).await?;
        }
        None => delete_if_owned::<Ingress>(&ctx.client, &ns, &name, owner_uid).await?,
    }
    let routes: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &http_route_resource());
    match &d.http_route {
        Some(route) => {
            let applied = routes
                .patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(route))
                .await;
            match applied {
                Ok(_) => {}
                // Server-side apply creates what is missing, so a 404 means the kind itself is
                // unknown: the Gateway API CRDs are not installed. The user's to provide.
                Err(e) if is_status(&e, 404) => {
                    return Ok(Observed::Blocked(Blocked::waiting(
                        "GatewayApiNotInstalled",
                        format!(
                            "spec.exposure.httpRoute needs the Gateway API ({}/{} HTTPRoute), which is not installed",
                            desired::GATEWAY_API_GROUP,
                            desired::GATEWAY_API_VERSION
                        ),
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => delete_if_owned_in(&routes, &name, owner_uid).await?,
    }
    Ok(Observed::Workload(rollout(&deployment)))
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
