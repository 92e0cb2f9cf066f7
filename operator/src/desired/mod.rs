//! The desired Kubernetes objects of a service custom resource: a pure function of its spec
//! (and the Workspace it names), in the manner of kube-rs controller-rs. Nothing here talks to
//! an apiserver; the reconciler applies what these functions return.
//!
//! Each service becomes a ConfigMap holding the service config (rendered by the same
//! `hds_common::from_spec` functions `hds up` uses), a ServiceAccount, a ClusterIP Service, a
//! Deployment of the `hds` image, and a PodDisruptionBudget when it runs more than one replica;
//! filesystem claims with a `size` become PersistentVolumeClaims. When the spec asks, a
//! HorizontalPodAutoscaler, and an Ingress or a Gateway API HTTPRoute whose public URL becomes
//! the service's base URL ([`public_url`]).
//!
//! A Workspace becomes its token issuer (`hds issuer`): a ConfigMap, ServiceAccount, Service
//! and Deployment `<workspace>-issuer` ([`workspace()`]). The services trust that issuer and
//! get their tokens from it, at [`issuer_url`].

mod dicom;
mod exposure;
mod fhir;
mod medtech;
mod pod;
mod workspace;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use hds_common::config::PostgresConfig;
use hds_common::from_spec::SpecError;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};

pub use dicom::dicom_service;
pub use exposure::{
    DEFAULT_TARGET_CPU, GATEWAY_API_GROUP, GATEWAY_API_VERSION, HTTP_ROUTE_KIND, HTTP_ROUTES,
    public_url,
};
pub use fhir::fhir_service;
pub use medtech::medtech_service;
pub use workspace::{
    CLIENTS_DIR, DesiredWorkspace, SIGNING_KEY_DIR, SIGNING_KEY_KEY, WorkspaceService, issuer_name,
    issuer_url, signing_key_secret_name, workspace,
};

/// The port every `hds` service listens on inside its pod, and its Service's port.
pub const PORT: i32 = 8080;
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/hds";
/// The config file's key in the ConfigMap (and its name under [`CONFIG_DIR`]).
pub const CONFIG_KEY: &str = "config.yaml";
/// Where the database Secret `<name>-db` is mounted; its key `url` is the file `url` there.
pub const DB_DIR: &str = "/var/run/hds/db";
/// The key of the database Secret holding the connection URL.
pub const DB_URL_KEY: &str = "url";
/// Where the Workspace client's secret of a service calling a FHIR service is mounted.
pub const FHIR_CLIENT_DIR: &str = "/var/run/hds/fhir-client";
/// The key of a Workspace client Secret holding the client secret.
pub const CLIENT_SECRET_KEY: &str = "clientSecret";
/// The pod-template annotation carrying the hex SHA-256 of the ConfigMap's data, so a config
/// change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "hds.dev/config-hash";
/// The field manager and `app.kubernetes.io/managed-by` value.
pub const MANAGER: &str = "hds-operator";

/// What the desired objects depend on besides the resources themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The `hds` image the services run, e.g. `ghcr.io/example/hds:0.1.0`.
    pub image: String,
    /// The namespace of a resource that has none in its metadata.
    pub default_namespace: String,
    /// The cluster's DNS domain, for in-cluster URLs.
    pub cluster_domain: String,
}

impl Context {
    /// A context with the default namespace `default` and the domain `cluster.local`.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            default_namespace: "default".into(),
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// The objects one service resource should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub service: Service,
    /// Without `spec.replicas` while a HorizontalPodAutoscaler scales it.
    pub deployment: Deployment,
    /// Only when `spec.autoscaling` asks for one.
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
    /// Only when the service runs more than one replica (or autoscales from more than one).
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// Only when `spec.exposure.ingress` asks for one.
    pub ingress: Option<Ingress>,
    /// A `gateway.networking.k8s.io/v1` HTTPRoute (k8s-openapi has no Gateway API types), only
    /// when `spec.exposure.httpRoute` asks for one.
    pub http_route: Option<serde_json::Value>,
    /// Filesystem claims the spec asks the operator to create (those with a `size`). They carry
    /// no owner reference, so the data outlives the resource, and are to be created only when
    /// absent: a claim's spec is mostly immutable.
    pub persistent_volume_claims: Vec<PersistentVolumeClaim>,
}

impl Desired {
    /// Every object as JSON (with `apiVersion` and `kind`), in apply order: config, identity,
    /// storage, network, workload, scaling, budget, exposure (the route last, so it never sends
    /// outside traffic to a Service without pods).
    pub fn objects(&self) -> Vec<serde_json::Value> {
        fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).expect("k8s-openapi objects always serialize")
        }
        let mut out = vec![json(&self.config_map), json(&self.service_account)];
        out.extend(self.persistent_volume_claims.iter().map(json));
        out.push(json(&self.service));
        out.push(json(&self.deployment));
        out.extend(self.horizontal_pod_autoscaler.iter().map(json));
        out.extend(self.pod_disruption_budget.iter().map(json));
        out.extend(self.ingress.iter().map(json));
        out.extend(self.http_route.iter().cloned());
        out
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DesiredError {
    #[error("{kind} has no metadata.name")]
    Unnamed { kind: &'static str },
    #[error("{kind} '{name}' has no metadata.uid, so its objects cannot name it as their owner")]
    NoUid { kind: &'static str, name: String },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{kind} '{name}': {field} names no FhirService")]
    MissingFhirService {
        kind: &'static str,
        name: String,
        field: &'static str,
    },
    #[error(
        "{kind} '{name}': its S3 storages differ in endpoint, region or credentials, but a pod has one set of AWS_* variables"
    )]
    ConflictingS3 { kind: &'static str, name: String },
    #[error(
        "MedTechService '{name}': tls.insecureSkipVerify is not supported; give the broker's CA in tls.caSecretRef"
    )]
    InsecureSkipVerify { name: String },
    #[error(
        "Workspace '{workspace}': client '{client_id}' needs exactly one of secretRef or secretHash"
    )]
    ClientCredentials {
        workspace: String,
        client_id: String,
    },
    #[error(
        "Workspace '{workspace}': client '{client_id}' is reserved for a service's own identity"
    )]
    ReservedClientId {
        workspace: String,
        client_id: String,
    },
    #[error("{kind} '{name}': the config cannot be rendered: {message}")]
    Render {
        kind: &'static str,
        name: String,
        message: String,
    },
}

/// The in-cluster base URL of the service `name` in `namespace`.
pub fn service_url(name: &str, namespace: &str, ctx: &Context) -> String {
    format!(
        "http://{name}.{namespace}.svc.{}:{PORT}",
        ctx.cluster_domain
    )
}

/// The name of the Secret holding the client secret of the Workspace client `client_id`.
pub fn client_secret_name(workspace: &str, client_id: &str) -> String {
    format!("{workspace}-client-{client_id}")
}

/// The name of the Secret holding a service's database URL (key `url`).
pub fn db_secret_name(name: &str) -> String {
    format!("{name}-db")
}

/// The token endpoint of a Workspace's issuer ([`issuer_url`]), when the Workspace exists.
pub fn workspace_token_url(ws: Option<&hds_crds::Workspace>, ctx: &Context) -> Option<String> {
    ws.map(|ws| format!("{}/oauth2/token", issuer_url(ws, ctx)))
}

/// The issuer a service of the Workspace trusts ([`issuer_url`]), when the Workspace exists.
fn workspace_issuer(ws: Option<&hds_crds::Workspace>, ctx: &Context) -> Option<String> {
    ws.map(|ws| issuer_url(ws, ctx))
}

/// The hex SHA-256 of a ConfigMap's data: each key and value, in key order, each followed by
/// a NUL byte so that no two different maps hash alike.
pub fn config_hash(data: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in data {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Who a service resource is: its kind, name, namespace and owner reference.
struct Owner {
    kind: &'static str,
    component: &'static str,
    name: String,
    namespace: String,
    reference: OwnerReference,
}

impl Owner {
    fn of<K>(
        res: &K,
        kind: &'static str,
        component: &'static str,
        ctx: &Context,
    ) -> Result<Self, DesiredError>
    where
        K: Resource<DynamicType = ()>,
    {
        let meta = res.meta();
        let name = meta
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(DesiredError::Unnamed { kind })?;
        let uid =
            meta.uid
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| DesiredError::NoUid {
                    kind,
                    name: name.clone(),
                })?;
        Ok(Self {
            kind,
            component,
            namespace: meta
                .namespace
                .clone()
                .unwrap_or_else(|| ctx.default_namespace.clone()),
            reference: OwnerReference {
                api_version: K::api_version(&()).into_owned(),
                kind: K::kind(&()).into_owned(),
                name: name.clone(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            name,
        })
    }

    /// The labels every object of this service carries.
    fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector();
        l.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        l
    }

    /// The labels that pick this service's pods.
    fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "hds".into()),
            ("app.kubernetes.io/instance".into(), self.name.clone()),
            ("app.kubernetes.io/component".into(), self.component.into()),
        ])
    }

    /// Metadata of an owned object called `name`.
    fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn url(&self, ctx: &Context) -> String {
        service_url(&self.name, &self.namespace, ctx)
    }

    /// A sibling service's in-cluster URL (same namespace, as references are local).
    fn sibling_url(&self, name: &str, ctx: &Context) -> String {
        service_url(name, &self.namespace, ctx)
    }
}

/// The database connection of a FHIR or DICOM service's config: the URL in the mounted Secret.
fn postgres() -> PostgresConfig {
    PostgresConfig {
        url: None,
        url_file: Some(PathBuf::from(format!("{DB_DIR}/{DB_URL_KEY}"))),
        ..PostgresConfig::from_url("")
    }
}

fn listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], PORT as u16))
}

/// A config as YAML. Through JSON and `hds_crds::json_to_yaml`, because serde_json's
/// `arbitrary_precision` numbers (in MedTech templates) would otherwise reach YAML as structs.
fn render<T: serde::Serialize>(owner: &Owner, cfg: &T) -> Result<String, DesiredError> {
    let err = |message: String| DesiredError::Render {
        kind: owner.kind,
        name: owner.name.clone(),
        message,
    };
    let json = serde_json::to_value(cfg).map_err(|e| err(e.to_string()))?;
    serde_yaml::to_string(&hds_crds::json_to_yaml(&json)).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests;
