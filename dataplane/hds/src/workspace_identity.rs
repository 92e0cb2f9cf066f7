//! The Workspace issuers `hds up` runs: one per Workspace its services name, served at
//! `/workspaces/<name>` on the shared listener, with a ready development client.
//!
//! State that must survive a restart (the signing key, the dev client's secret) lives in the
//! data directory, so tokens and printed credentials stay valid across `hds up` runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use hds_auth::issuer::{
    DEFAULT_TOKEN_LIFETIME, IssuerClient, IssuerConfig, SecretHash, WorkspaceIssuer,
};
use hds_common::service_identity::ServiceIdentity;
use hds_crds::Workspace;
use serde_json::{Value, json};

/// The development client every `hds up` Workspace gets.
pub const DEV_CLIENT_ID: &str = "hds-dev";
const DEV_CLIENT_ROLES: &[&str] = &["FHIR Data Contributor", "DICOM Data Owner"];
/// The Secret key holding a PKCS#8 PEM P-256 key, when `issuer.signingKeySecretRef` names one.
pub const SIGNING_KEY_SECRET_KEY: &str = "signingKey";

pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// A client whose secret `hds up` can show (it was generated here or read from a Secret file).
pub struct KnownClient {
    pub client_id: String,
    pub client_secret: String,
    pub roles: Vec<String>,
}

pub struct LocalIssuer {
    pub workspace: String,
    pub issuer: Arc<WorkspaceIssuer>,
    pub known_clients: Vec<KnownClient>,
    /// Credentials of the services' own identities (MedTech, DICOM FHIR sync), by client id:
    /// for those services, not for the endpoints file.
    pub service_credentials: BTreeMap<String, String>,
}

/// Where a Workspace's issuer is mounted on the listener.
pub fn mount_path(workspace: &str) -> String {
    format!("/workspaces/{workspace}")
}

/// The issuer URL: the one the Workspace declares, else its mount point on this listener.
pub fn issuer_url(workspace: &str, ws: Option<&Workspace>, base: &str) -> String {
    ws.and_then(hds_common::from_spec::workspace_issuer_url)
        .unwrap_or_else(|| format!("{base}{}", mount_path(workspace)))
}

/// Builds the issuer of `workspace` for the services at `audiences`.
pub fn build(
    workspace: &str,
    ws: Option<&Workspace>,
    base: &str,
    data_dir: &Path,
    secrets: &Secrets,
    audiences: Vec<String>,
    services: &[ServiceIdentity],
) -> anyhow::Result<LocalIssuer> {
    let dir = data_dir.join("workspaces").join(workspace);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let identity = ws.map(|w| &w.spec.identity);
    let issuer_spec = identity.and_then(|i| i.issuer.as_ref());
    let signing_key_pem = match issuer_spec.and_then(|i| i.signing_key_secret_ref.as_ref()) {
        Some(r) => secret_value(secrets, &r.name, SIGNING_KEY_SECRET_KEY)?,
        None => persisted(
            &dir.join("signing-key.pem"),
            hds_auth::issuer::generate_signing_key,
        )?,
    };
    let mut clients = Vec::new();
    let mut known = Vec::new();
    for c in identity.map(|i| i.clients.as_slice()).unwrap_or_default() {
        let secret = match (&c.secret_ref, &c.secret_hash) {
            (Some(r), None) => {
                let plain = secret_value(secrets, &r.name, &r.key)
                    .with_context(|| format!("client '{}'", c.client_id))?;
                known.push(KnownClient {
                    client_id: c.client_id.clone(),
                    client_secret: plain.clone(),
                    roles: c.roles.clone(),
                });
                SecretHash::of_plaintext(&plain)
            }
            (None, Some(hash)) => SecretHash::parse(hash)
                .with_context(|| format!("client '{}': secretHash", c.client_id))?,
            _ => bail!(
                "Workspace '{workspace}': client '{}' needs exactly one of secretRef or secretHash",
                c.client_id
            ),
        };
        clients.push(IssuerClient {
            client_id: c.client_id.clone(),
            secret,
            roles: c.roles.clone(),
            scopes: c.scopes.clone(),
        });
    }
    if !clients.iter().any(|c| c.client_id == DEV_CLIENT_ID) {
        let secret = persisted(&dir.join("dev-client-secret"), random_secret)?;
        let roles: Vec<String> = DEV_CLIENT_ROLES.iter().map(|r| (*r).to_owned()).collect();
        clients.push(IssuerClient {
            client_id: DEV_CLIENT_ID.into(),
            secret: SecretHash::of_plaintext(&secret),
            roles: roles.clone(),
            scopes: Vec::new(),
        });
        known.insert(
            0,
            KnownClient {
                client_id: DEV_CLIENT_ID.into(),
                client_secret: secret,
                roles,
            },
        );
    }
    let mut service_credentials = BTreeMap::new();
    if !services.is_empty() {
        std::fs::create_dir_all(dir.join("clients"))
            .with_context(|| format!("cannot create {}", dir.join("clients").display()))?;
    }
    for svc in services.iter().filter(|s| s.workspace == workspace) {
        if clients.iter().any(|c| c.client_id == svc.client_id) {
            bail!(
                "Workspace '{workspace}': client '{}' is reserved for a service's own identity",
                svc.client_id
            );
        }
        let secret = persisted(
            &dir.join("clients")
                .join(format!("{}.secret", svc.client_id)),
            random_secret,
        )?;
        clients.push(IssuerClient {
            client_id: svc.client_id.clone(),
            secret: SecretHash::of_plaintext(&secret),
            roles: svc.roles.clone(),
            scopes: svc.scopes.clone(),
        });
        service_credentials.insert(svc.client_id.clone(), secret);
    }
    let lifetime = issuer_spec
        .and_then(|i| i.token_lifetime_seconds)
        .map_or(DEFAULT_TOKEN_LIFETIME, |s| {
            std::time::Duration::from_secs(u64::from(s))
        });
    let issuer = WorkspaceIssuer::new(IssuerConfig {
        issuer: issuer_url(workspace, ws, base),
        signing_key_pem,
        token_lifetime: lifetime,
        clients,
        audiences,
    })
    .with_context(|| format!("Workspace '{workspace}': issuer"))?;
    Ok(LocalIssuer {
        workspace: workspace.to_owned(),
        issuer: Arc::new(issuer),
        known_clients: known,
        service_credentials,
    })
}

impl LocalIssuer {
    /// The endpoints-file entry: issuer, token URL and the clients whose secrets are known.
    pub fn endpoints_entry(&self) -> Value {
        json!({
            "name": self.workspace,
            "issuer": self.issuer.issuer(),
            "tokenUrl": self.issuer.token_endpoint(),
            "clients": self.known_clients.iter().map(|c| json!({
                "clientId": c.client_id,
                "clientSecret": c.client_secret,
                "roles": c.roles,
            })).collect::<Vec<_>>(),
        })
    }

    /// What the terminal shows: the dev client and a one-line curl that gets a token.
    pub fn print(&self) {
        println!(
            "Workspace {} issuer: {}",
            self.workspace,
            self.issuer.issuer()
        );
        if let Some(c) = self.known_clients.first() {
            println!(
                "  client {} (secret {}), roles: {}",
                c.client_id,
                c.client_secret,
                c.roles.join(", ")
            );
            println!(
                "  get a token: curl -s -u '{}:{}' -d grant_type=client_credentials {}",
                c.client_id,
                c.client_secret,
                self.issuer.token_endpoint()
            );
        }
    }
}

fn secret_value(secrets: &Secrets, name: &str, key: &str) -> anyhow::Result<String> {
    secrets
        .get(name)
        .and_then(|s| s.get(key))
        .cloned()
        .with_context(|| format!("Secret '{name}' with key '{key}' is not among the files"))
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads a value kept in the data directory, creating it (readable by the owner only) first.
fn persisted(path: &PathBuf, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text.trim().to_owned());
    }
    let value = make();
    write_private(path, value.as_bytes())?;
    Ok(value)
}

/// Writes a file only its owner can read: it holds secrets.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_client_and_key_persist_across_runs() {
        let dir = std::env::temp_dir().join(format!("hds-ws-{}", uuid_like()));
        let a = build("demo", None, "http://h", &dir, &Secrets::new(), vec![], &[]).unwrap();
        let b = build("demo", None, "http://h", &dir, &Secrets::new(), vec![], &[]).unwrap();
        assert_eq!(a.known_clients[0].client_id, DEV_CLIENT_ID);
        assert_eq!(
            a.known_clients[0].client_secret,
            b.known_clients[0].client_secret
        );
        assert_eq!(a.issuer.jwks(), b.issuer.jwks());
        assert_eq!(a.issuer.issuer(), "http://h/workspaces/demo");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("workspaces/demo/signing-key.pem"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn declared_clients_need_their_secret() {
        let ws: Workspace = serde_yaml::from_str(
            "apiVersion: hds.dev/v1alpha1\nkind: Workspace\nmetadata: {name: w}\nspec:\n  identity:\n    clients:\n    - {clientId: app, secretRef: {name: s, key: k}, roles: [FHIR Data Reader]}\n",
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("hds-ws-{}", uuid_like()));
        let err = build(
            "w",
            Some(&ws),
            "http://h",
            &dir,
            &Secrets::new(),
            vec![],
            &[],
        )
        .err()
        .unwrap();
        assert!(
            format!("{err:#}").contains("Secret 's' with key 'k'"),
            "{err:#}"
        );
        let secrets = Secrets::from([("s".into(), BTreeMap::from([("k".into(), "pw".into())]))]);
        let i = build("w", Some(&ws), "http://h", &dir, &secrets, vec![], &[]).unwrap();
        let ids: Vec<_> = i
            .known_clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect();
        assert_eq!(ids, [DEV_CLIENT_ID, "app"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn service_identities_get_tokens_with_only_their_roles_and_scopes() {
        let dir = std::env::temp_dir().join(format!("hds-ws-{}", uuid_like()));
        let medtech = ServiceIdentity {
            workspace: "demo".into(),
            client_id: "medtech-vitals".into(),
            roles: vec!["FHIR Data Writer".into()],
            scopes: vec!["system/Observation.crus".into(), "system/Patient.rs".into()],
        };
        let other_ws = ServiceIdentity {
            workspace: "elsewhere".into(),
            client_id: "medtech-other".into(),
            ..medtech.clone()
        };
        let i = build(
            "demo",
            None,
            "http://h",
            &dir,
            &Secrets::new(),
            vec!["http://h/fhir/f".into()],
            &[medtech, other_ws],
        )
        .unwrap();
        assert_eq!(
            i.service_credentials.keys().collect::<Vec<_>>(),
            ["medtech-vitals"]
        );
        // Not shown to users.
        assert!(i.known_clients.iter().all(|c| c.client_id == DEV_CLIENT_ID));
        let secret = &i.service_credentials["medtech-vitals"];
        let req = hds_auth::issuer::TokenRequest::from_form(
            format!(
                "grant_type=client_credentials&client_id=medtech-vitals&client_secret={secret}"
            )
            .as_bytes(),
        )
        .unwrap();
        let t = i.issuer.issue(&req).unwrap();
        assert_eq!(t.scope, "system/Observation.crus system/Patient.rs");
        // The same secret after a restart.
        let again = build(
            "demo",
            None,
            "http://h",
            &dir,
            &Secrets::new(),
            vec![],
            &[ServiceIdentity {
                workspace: "demo".into(),
                client_id: "medtech-vitals".into(),
                roles: vec![],
                scopes: vec![],
            }],
        )
        .unwrap();
        assert_eq!(&again.service_credentials["medtech-vitals"], secret);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn uuid_like() -> String {
        random_secret().replace(['-', '_'], "x")
    }
}
