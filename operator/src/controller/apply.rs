//! The thin apply: server-side apply with one field manager, never forced.
//!
//! Not forcing is what keeps the operator from fighting GitOps: a field another manager set to
//! a different value comes back as a 409 conflict, which the reconcile reports as a condition
//! instead of overwriting.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::desired::MANAGER;

/// A namespaced Kubernetes object the operator reads and writes.
pub trait Namespaced:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Namespaced for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

/// Apply `obj` (which names its namespace) and return what the server holds afterwards.
pub async fn apply<K: Namespaced>(client: &Client, obj: &K) -> Result<K, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(MANAGER),
        &Patch::Apply(obj),
    )
    .await
}

/// Create `obj` unless it exists: for objects whose spec is immutable once made (claims).
pub async fn create_if_absent<K: Namespaced>(client: &Client, obj: &K) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete `name` if it exists.
pub async fn delete_if_present<K: Namespaced>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Get `name`, or None when it does not exist.
pub async fn get_opt<K: Namespaced>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, kube::Error> {
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
}

pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
