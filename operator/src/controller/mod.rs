//! The controllers: watch the hds.dev kinds and what they own, reconcile each object with
//! [`service::reconcile`] and
//! [`workspace::reconcile`], back off per object on faults.

pub mod apply;
mod database;
pub mod service;
pub mod status;
pub mod workspace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::desired::{self, DesiredError, MANAGER};
use service::ServiceResource;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// A fault already written to the object's conditions; returned so the object backs off.
    #[error("{0}: {1}")]
    Blocked(&'static str, String),
    #[error("cleanup: {0}")]
    Cleanup(String),
    #[error("{0}")]
    Internal(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl ReconcileError {
    /// A metric label: which kind of failure.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubeApi",
            Self::Desired(_) => "InvalidSpec",
            Self::Blocked(reason, _) => reason,
            Self::Cleanup(_) => "Cleanup",
            Self::Internal(_) => "Internal",
            Self::Finalizer(_) => "Finalizer",
        }
    }
}

/// What every reconcile shares.
pub struct Ctx {
    pub client: Client,
    pub desired: desired::Context,
    pub recorder: Recorder,
    /// Consecutive failures per object, for the exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Ctx {
    pub fn new(client: Client, desired: desired::Context, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            desired,
            failures: Mutex::default(),
        }
    }

    /// The delay before retrying an object that failed `n` times in a row: 5 s doubling to at
    /// most 5 minutes.
    pub fn backoff(n: u32) -> Duration {
        Duration::from_secs(5u64.saturating_mul(1 << n.min(6)).min(300))
    }

    fn failed(&self, key: String) -> u32 {
        let mut f = self.failures.lock().expect("backoff map poisoned");
        let n = f.entry(key).or_insert(0);
        *n += 1;
        *n - 1
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .expect("backoff map poisoned")
            .remove(key);
    }
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Counts and times one reconcile (metrics `hds_operator_reconciles_total`,
/// `hds_operator_reconcile_errors_total`, `hds_operator_reconcile_duration_seconds`).
fn record_reconcile<T>(kind: &'static str, started: Instant, result: &Result<T, ReconcileError>) {
    let outcome = if result.is_ok() { "success" } else { "error" };
    metrics::counter!("hds_operator_reconciles_total", "kind" => kind, "result" => outcome)
        .increment(1);
    metrics::histogram!("hds_operator_reconcile_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        metrics::counter!("hds_operator_reconcile_errors_total", "kind" => kind, "reason" => e.label())
            .increment(1);
    }
}

fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &ReconcileError,
    ctx: Arc<Ctx>,
) -> Action {
    let n = ctx.failed(key(&*obj));
    let delay = Ctx::backoff(n);
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %err,
        retry_in_s = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn reconcile_service<S: ServiceResource>(
    svc: Arc<S>,
    ctx: Arc<Ctx>,
) -> Result<Action, ReconcileError> {
    let k = key(&*svc);
    let result = service::reconcile(svc, ctx.clone()).await;
    if result.is_ok() {
        ctx.succeeded(&k);
    }
    result
}

fn service_controller<S: ServiceResource>(
    ctx: Arc<Ctx>,
    namespace: Option<&str>,
) -> impl std::future::Future<Output = ()> {
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let controller = Controller::new(api::<S>(&client, namespace), watcher::Config::default());
    // A Workspace's defaults and issuer are part of each of its services' config.
    let services = controller.store();
    controller
        .watches(
            api::<Workspace>(&client, namespace),
            watcher::Config::default(),
            move |ws: Workspace| {
                let (name, ns) = (ws.name_any(), ws.namespace());
                services
                    .state()
                    .into_iter()
                    .filter(|s| s.workspace_name() == name && s.namespace() == ns)
                    .map(|s| ObjectRef::from_obj(&*s))
                    .collect::<Vec<_>>()
            },
        )
        .owns(api::<Deployment>(&client, namespace), owned.clone())
        .owns(api::<Service>(&client, namespace), owned.clone())
        .owns(api::<ConfigMap>(&client, namespace), owned.clone())
        .owns(api::<Secret>(&client, namespace), owned)
        .shutdown_on_signal()
        .run(reconcile_service::<S>, error_policy::<S>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn reconcile_workspace(ws: Arc<Workspace>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let k = key(&*ws);
    let result = workspace::reconcile(ws, ctx.clone()).await;
    if result.is_ok() {
        ctx.succeeded(&k);
    }
    result
}

/// The Workspace controller also watches the services, whose readiness its status sums up and
/// whose identities its issuer serves.
fn workspace_controller(
    ctx: Arc<Ctx>,
    namespace: Option<&str>,
) -> impl std::future::Future<Output = ()> {
    let client = ctx.client.clone();
    fn member<S: ServiceResource>(s: S) -> Option<ObjectRef<Workspace>> {
        Some(ObjectRef::new(s.workspace_name()).within(&s.namespace()?))
    }
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    Controller::new(
        api::<Workspace>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Deployment>(&client, namespace), owned.clone())
    .owns(api::<Secret>(&client, namespace), owned)
    .watches(
        api::<FhirService>(&client, namespace),
        watcher::Config::default(),
        member,
    )
    .watches(
        api::<DicomService>(&client, namespace),
        watcher::Config::default(),
        member,
    )
    .watches(
        api::<MedTechService>(&client, namespace),
        watcher::Config::default(),
        member,
    )
    .shutdown_on_signal()
    .run(reconcile_workspace, error_policy::<Workspace>, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "controller event");
        }
    })
}

/// Runs the controllers until a shutdown signal.
pub async fn run(ctx: Arc<Ctx>, namespace: Option<String>) {
    let ns = namespace.as_deref();
    tokio::join!(
        service_controller::<FhirService>(ctx.clone(), ns),
        service_controller::<DicomService>(ctx.clone(), ns),
        service_controller::<MedTechService>(ctx.clone(), ns),
        workspace_controller(ctx.clone(), ns),
    );
}

#[cfg(test)]
mod tests;
