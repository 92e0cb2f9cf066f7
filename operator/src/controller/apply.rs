//! The thin apply: server-side apply with one field manager, never forced.
//!
//! Not forcing is what keeps the operator from fighting GitOps: a field another manager set to
//! a different value comes back as a 409 conflict, which the reconcile reports as a condition
//! instead of overwriting.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
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

/// Delete `name` if it exists and the object whose uid is `owner_uid` is its controller. For
/// objects a spec may stop asking for (an autoscaler, an Ingress, an HTTPRoute) whose names a
/// user may well have used for objects of their own, which are left alone.
pub async fn delete_if_owned<K: Namespaced>(
    client: &Client,
    namespace: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    delete_if_owned_in(&api, name, owner_uid).await
}

/// [`delete_if_owned`] through any `Api`, dynamic ones included. A 404 on the read is no object,
/// whether the name or the whole API is missing (a CRD not installed answers a plain-text 404).
pub async fn delete_if_owned_in<K>(
    api: &Api<K>,
    name: &str,
    owner_uid: &str,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let obj = match api.get(name).await {
        Ok(obj) => obj,
        Err(e) if is_status(&e, 404) => return Ok(()),
        Err(e) => return Err(e),
    };
    let meta = obj.meta();
    let ours = meta
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true));
    if !ours {
        return Ok(());
    }
    // Only the object just read: one made anew under the name since is not ours to delete.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
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
