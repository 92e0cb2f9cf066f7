//! A Workspace's objects: its token issuer, run as `hds issuer` behind a Service, trusted by
//! every service of the Workspace.
//!
//! The issuer's config lists the Workspace's clients (the spec's, with their secrets mounted
//! from the Secrets they name or given as hashes) and the identities of its services (MedTech,
//! DICOM→FHIR sync), whose secrets are the Secrets `<workspace>-client-<clientId>` the
//! operator generates ([`crate::identity`]). Its audiences are the services' in-cluster URLs,
//! and the public URLs of those exposed outside the cluster.

use hds_common::config::{IssuerClientConfig, WorkspaceIssuerConfig};
use hds_common::from_spec::workspace_issuer_url;
use hds_common::service_identity::{self, ServiceIdentity};
use hds_crds::workspace::ServiceKind;
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::pod::{Pod, Workload};
use super::{
    CLIENT_SECRET_KEY, Context, DesiredError, Owner, client_secret_name, listen, public_url,
    render, service_url,
};
use crate::identity::{ROTATION_ANNOTATION, rotate_value};

/// The key of the signing-key Secret holding the PKCS#8 PEM P-256 key.
pub const SIGNING_KEY_KEY: &str = "signingKey";
/// Where the signing-key Secret is mounted.
pub const SIGNING_KEY_DIR: &str = "/var/run/hds/signing-key";
/// Where the clients' secrets are mounted, one file per client.
pub const CLIENTS_DIR: &str = "/var/run/hds/clients";

/// The name of the issuer's ConfigMap, ServiceAccount, Service and Deployment.
pub fn issuer_name(workspace: &str) -> String {
    format!("{workspace}-issuer")
}

/// The name of the Secret holding the signing key the operator generates.
pub fn signing_key_secret_name(workspace: &str) -> String {
    format!("{workspace}-signing-key")
}

/// The issuer URL of a Workspace: the one its spec declares, else its issuer's in-cluster URL
/// `http://<workspace>-issuer.<namespace>.svc.<clusterDomain>:8080`.
pub fn issuer_url(ws: &Workspace, ctx: &Context) -> String {
    workspace_issuer_url(ws).unwrap_or_else(|| {
        let name = ws.metadata.name.as_deref().unwrap_or_default();
        let namespace = ws
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&ctx.default_namespace);
        service_url(&issuer_name(name), namespace, ctx)
    })
}

/// A service of the Workspace, as the controller observed it: a resource in the Workspace's
/// namespace whose `workspaceRef` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceService {
    pub kind: ServiceKind,
    pub name: String,
    /// The Workspace client the service acts as, when it calls another service.
    pub identity: Option<ServiceIdentity>,
    /// The public URL of a service exposed outside the cluster ([`public_url`]).
    pub public_url: Option<String>,
}

impl WorkspaceService {
    /// None for a resource without a name.
    pub fn fhir(svc: &FhirService) -> Option<Self> {
        Some(Self {
            kind: ServiceKind::FhirService,
            name: svc.metadata.name.clone()?,
            identity: None,
            public_url: public_url(svc.spec.exposure.as_ref()),
        })
    }

    /// With the identity of its FHIR sync, when that is on.
    pub fn dicom(svc: &DicomService) -> Option<Self> {
        Some(Self {
            kind: ServiceKind::DicomService,
            name: svc.metadata.name.clone()?,
            identity: service_identity::dicom_fhir_sync(svc),
            public_url: public_url(svc.spec.exposure.as_ref()),
        })
    }

    pub fn medtech(svc: &MedTechService) -> Option<Self> {
        Some(Self {
            kind: ServiceKind::MedTechService,
            name: svc.metadata.name.clone()?,
            identity: service_identity::medtech(svc),
            public_url: None,
        })
    }
}

/// The objects of a Workspace's issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredWorkspace {
    /// `<workspace>-issuer`, key `config.yaml`: the `hds issuer` config.
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    /// `<workspace>-issuer`, port 8080.
    pub service: Service,
    pub deployment: Deployment,
    /// The name of the signing-key Secret the operator must generate
    /// ([`crate::identity::signing_key_secret`]); None when the spec names its own.
    pub generated_signing_key: Option<String>,
    /// The client ids of the services' identities, whose Secrets the operator must generate
    /// ([`crate::identity::client_secret`]) before the pods mounting them can start.
    pub generated_clients: Vec<String>,
}

impl DesiredWorkspace {
    /// Every object as JSON (with `apiVersion` and `kind`), in apply order.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).expect("k8s-openapi objects always serialize")
        }
        vec![
            json(&self.config_map),
            json(&self.service_account),
            json(&self.service),
            json(&self.deployment),
        ]
    }
}

/// The objects of a Workspace: the issuer's config, ServiceAccount, Service and Deployment
/// (`hds issuer`, the signing key and the clients' secrets mounted). `services` are the
/// services that name the Workspace; their order does not matter.
pub fn workspace(
    ws: &Workspace,
    services: &[WorkspaceService],
    ctx: &Context,
) -> Result<DesiredWorkspace, DesiredError> {
    let owner = Owner::of(ws, "Workspace", "issuer", ctx)?;
    let name = issuer_name(&owner.name);
    let identity = &ws.spec.identity;
    let issuer_spec = identity.issuer.as_ref();
    let mut pod = Pod::default();

    let own_key = issuer_spec.and_then(|i| i.signing_key_secret_ref.as_ref());
    let generated_signing_key = own_key
        .is_none()
        .then(|| signing_key_secret_name(&owner.name));
    let key_secret =
        own_key.map_or_else(|| signing_key_secret_name(&owner.name), |r| r.name.clone());
    pod.secret_files(
        "signing-key",
        &key_secret,
        &[(SIGNING_KEY_KEY, SIGNING_KEY_KEY)],
        SIGNING_KEY_DIR,
    );

    // Sorted, so the config (and its hash) does not follow the order the services were listed.
    let mut services: Vec<&WorkspaceService> = services.iter().collect();
    services.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    services.dedup_by(|a, b| (a.kind, &a.name) == (b.kind, &b.name));
    // Each service's in-cluster URL (what callers in the cluster name), then its public URL
    // (what clients outside name): the service accepts tokens for either.
    let mut audiences: Vec<String> = Vec::new();
    for s in &services {
        let urls = [
            Some(service_url(&s.name, &owner.namespace, ctx)),
            s.public_url.clone(),
        ];
        for url in urls.into_iter().flatten() {
            if !audiences.contains(&url) {
                audiences.push(url);
            }
        }
    }

    let mut clients: Vec<IssuerClientConfig> = Vec::new();
    let mut files: Vec<(String, String, String)> = Vec::new();
    for c in &identity.clients {
        let (secret_file, secret_hash) = match (&c.secret_ref, &c.secret_hash) {
            (Some(r), None) => {
                let file = client_file(&c.client_id, clients.len());
                let path = format!("{CLIENTS_DIR}/{file}");
                files.push((r.name.clone(), r.key.clone(), file));
                (Some(path.into()), None)
            }
            (None, Some(hash)) => (None, Some(hash.clone())),
            _ => {
                return Err(DesiredError::ClientCredentials {
                    workspace: owner.name.clone(),
                    client_id: c.client_id.clone(),
                });
            }
        };
        clients.push(IssuerClientConfig {
            client_id: c.client_id.clone(),
            secret_file,
            secret_hash,
            roles: c.roles.clone(),
            scopes: c.scopes.clone(),
        });
    }
    let mut identities: Vec<&ServiceIdentity> = services
        .iter()
        .filter_map(|s| s.identity.as_ref())
        .collect();
    identities.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    identities.dedup_by(|a, b| a.client_id == b.client_id);
    let mut generated_clients = Vec::new();
    for id in identities {
        if clients.iter().any(|c| c.client_id == id.client_id) {
            return Err(DesiredError::ReservedClientId {
                workspace: owner.name.clone(),
                client_id: id.client_id.clone(),
            });
        }
        let file = client_file(&id.client_id, clients.len());
        clients.push(IssuerClientConfig {
            client_id: id.client_id.clone(),
            secret_file: Some(format!("{CLIENTS_DIR}/{file}").into()),
            secret_hash: None,
            roles: id.roles.clone(),
            scopes: id.scopes.clone(),
        });
        files.push((
            client_secret_name(&owner.name, &id.client_id),
            CLIENT_SECRET_KEY.into(),
            file,
        ));
        generated_clients.push(id.client_id.clone());
    }
    if !files.is_empty() {
        pod.projected_secrets("clients", &files, CLIENTS_DIR);
    }
    // The issuer reads its key and secrets at start: a rotation must restart it.
    if let Some(rotation) = rotate_value(ws) {
        pod.annotate(ROTATION_ANNOTATION, rotation);
    }

    let cfg = WorkspaceIssuerConfig {
        listen: Some(listen()),
        issuer: issuer_url(ws, ctx),
        signing_key_file: format!("{SIGNING_KEY_DIR}/{SIGNING_KEY_KEY}").into(),
        token_lifetime_seconds: issuer_spec
            .and_then(|i| i.token_lifetime_seconds)
            .map(u64::from),
        audiences,
        clients,
    };
    let desired = Workload {
        owner: &owner,
        name: name.clone(),
        config_map: name,
        command: "issuer",
        replicas: 1,
        autoscaling: None,
        resources: Some(issuer_resources()),
        config_yaml: render(&owner, &cfg)?,
        database: false,
        pod,
    }
    .build(ctx);
    Ok(DesiredWorkspace {
        config_map: desired.config_map,
        service_account: desired.service_account,
        service: desired.service,
        deployment: desired.deployment,
        generated_signing_key,
        generated_clients,
    })
}

/// A client's file name under [`CLIENTS_DIR`]: its id when that is a plain file name, else
/// `_<position>` (ids start with a letter or digit, so the two never meet).
fn client_file(client_id: &str, position: usize) -> String {
    let plain = client_id.len() <= 200
        && client_id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if plain {
        client_id.to_owned()
    } else {
        format!("_{position}")
    }
}

/// The issuer answers a few token requests a minute: a small request, no limit.
fn issuer_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_owned(), Quantity("10m".into())),
                ("memory".to_owned(), Quantity("64Mi".into())),
            ]
            .into(),
        ),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
#[path = "workspace_tests.rs"]
mod tests;
