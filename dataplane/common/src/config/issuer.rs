//! A Workspace issuer run on its own (`hds issuer --config FILE`): what the operator renders
//! into the issuer's ConfigMap. Secrets are never inline: the signing key and the client
//! secrets are files (mounted Secrets), or a client's secret is given as a hash.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hds_auth::issuer::{IssuerClient, IssuerConfig, SecretHash};
use serde::{Deserialize, Serialize};

pub use hds_auth::issuer::DEFAULT_TOKEN_LIFETIME;

use super::load_yaml;

/// One Workspace's token issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceIssuerConfig {
    /// Where `hds issuer` listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The issuer URL: the `iss` of its tokens, whose discovery document, JWKS and token
    /// endpoint are served at the root of the listener.
    pub issuer: String,
    /// A PKCS#8 PEM file holding a P-256 private key (ES256).
    pub signing_key_file: PathBuf,
    /// How long a token lives; [`DEFAULT_TOKEN_LIFETIME`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_seconds: Option<u64>,
    /// The base URLs of the Workspace's services: the audiences a token may name.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub clients: Vec<IssuerClientConfig>,
}

/// A client allowed the client-credentials grant: exactly one of `secretFile` and `secretHash`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerClientConfig {
    pub client_id: String,
    /// A file holding the plaintext secret (a mounted Secret); a trailing newline is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// `$sha256$<hex>` of the secret, or an `$argon2id$` PHC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    /// Azure data-plane role names, carried in the token's `roles`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// SMART scopes the client may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A new signing key for [`WorkspaceIssuerConfig::signing_key_file`]: PKCS#8 PEM, P-256.
pub fn generate_signing_key() -> String {
    hds_auth::issuer::generate_signing_key()
}

impl WorkspaceIssuerConfig {
    /// Reads and checks a config file in YAML or JSON.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config: Self = load_yaml(path)?;
        config
            .check()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }

    /// What serde cannot say: an issuer URL, a lifetime, one secret per client, unique ids.
    pub fn check(&self) -> anyhow::Result<()> {
        let url = url::Url::parse(self.issuer.trim()).ok();
        if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            bail!(
                "issuer must be an http:// or https:// URL, not '{}'",
                self.issuer
            );
        }
        if self.token_lifetime_seconds == Some(0) {
            bail!("tokenLifetimeSeconds must be at least 1");
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.clients {
            if c.client_id.is_empty() {
                bail!("a client has an empty clientId");
            }
            if !seen.insert(c.client_id.as_str()) {
                bail!("clientId '{}' appears more than once", c.client_id);
            }
            if c.secret_file.is_some() == c.secret_hash.is_some() {
                bail!(
                    "client '{}' needs exactly one of secretFile or secretHash",
                    c.client_id
                );
            }
        }
        Ok(())
    }

    pub fn token_lifetime(&self) -> Duration {
        self.token_lifetime_seconds
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
    }

    /// The issuer's settings with the files read: the signing key, and each client's secret
    /// (hashed at once; the plaintext is not kept).
    pub fn resolve(&self) -> anyhow::Result<IssuerConfig> {
        self.check()?;
        let signing_key_pem =
            std::fs::read_to_string(&self.signing_key_file).with_context(|| {
                format!(
                    "cannot read the signing key {}",
                    self.signing_key_file.display()
                )
            })?;
        let clients = self
            .clients
            .iter()
            .map(|c| {
                let secret = match (&c.secret_file, &c.secret_hash) {
                    (Some(file), None) => SecretHash::of_plaintext(
                        &read_secret(file)
                            .with_context(|| format!("client '{}': secretFile", c.client_id))?,
                    ),
                    (None, Some(hash)) => SecretHash::parse(hash)
                        .with_context(|| format!("client '{}': secretHash", c.client_id))?,
                    _ => unreachable!("check() allows exactly one"),
                };
                Ok(IssuerClient {
                    client_id: c.client_id.clone(),
                    secret,
                    roles: c.roles.clone(),
                    scopes: c.scopes.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(IssuerConfig {
            issuer: self.issuer.trim().to_owned(),
            signing_key_pem,
            token_lifetime: self.token_lifetime(),
            clients,
            audiences: self.audiences.clone(),
        })
    }
}

/// A secret file's content without its trailing newline (what `echo` and editors add).
fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if secret.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
listen: 0.0.0.0:8080
issuer: http://demo-issuer.default.svc.cluster.local:8080
signingKeyFile: /var/run/hds/signing-key/signingKey
tokenLifetimeSeconds: 600
audiences: [http://fhir.default.svc.cluster.local:8080]
clients:
- clientId: app
  secretFile: /var/run/hds/clients/app
  roles: [FHIR Data Contributor]
- clientId: hashed
  secretHash: $sha256$9f735e0df9a1ddc702bf0a1a7b83033f9f7153a00c29de82cedadc9957289b05
  scopes: [system/Patient.rs]
"#;

    fn parse(text: &str) -> anyhow::Result<WorkspaceIssuerConfig> {
        let c: WorkspaceIssuerConfig = serde_yaml::from_str(text)?;
        c.check()?;
        Ok(c)
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn a_full_config_parses_with_its_defaults() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.token_lifetime(), Duration::from_secs(600));
        assert_eq!(c.clients[0].roles, ["FHIR Data Contributor"]);
        assert_eq!(c.clients[1].scopes, ["system/Patient.rs"]);
        let minimal = parse("issuer: https://i.example\nsigningKeyFile: /k\n").unwrap();
        assert_eq!(minimal.token_lifetime(), DEFAULT_TOKEN_LIFETIME);
        assert!(minimal.clients.is_empty() && minimal.audiences.is_empty());
        // What serializes loads back.
        let again: WorkspaceIssuerConfig =
            serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        assert!(
            err("issuer: http://i\nsigningKeyFile: /k\nclients: [{clientId: a}]\n")
                .contains("client 'a' needs exactly one of secretFile or secretHash")
        );
        assert!(err(
            "issuer: http://i\nsigningKeyFile: /k\nclients: [{clientId: a, secretFile: /s, secretHash: x}]\n"
        )
        .contains("exactly one"));
        assert!(
            err("issuer: http://i\nsigningKeyFile: /k\nclients: [{clientId: a, secretHash: x}, {clientId: a, secretHash: y}]\n")
                .contains("'a' appears more than once")
        );
        assert!(err("issuer: issuer.example\nsigningKeyFile: /k\n").contains("http://"));
        assert!(
            err("issuer: http://i\nsigningKeyFile: /k\ntokenLifetimeSeconds: 0\n")
                .contains("at least 1")
        );
        assert!(err("issuer: http://i\nsigningKeyFile: /k\nclients: [{clientId: a, secretFile: /s, role: x}]\n").contains("role"));
        assert!(err("issuer: http://i\n").contains("signingKeyFile"));
    }

    #[test]
    fn files_are_read_and_a_trailing_newline_dropped() {
        let dir = std::env::temp_dir().join(format!("hds-issuer-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key"), generate_signing_key()).unwrap();
        std::fs::write(dir.join("secret"), "s3cret\n").unwrap();
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let yaml = |secret: &str| {
            format!(
                "issuer: http://i\nsigningKeyFile: {}\nclients: [{{clientId: a, secretFile: {}}}]\n",
                dir.join("key").display(),
                dir.join(secret).display()
            )
        };
        let resolved = parse(&yaml("secret")).unwrap().resolve().unwrap();
        assert!(resolved.clients[0].secret.verify("s3cret"));
        assert!(!resolved.clients[0].secret.verify("s3cret\n"));
        assert_eq!(resolved.token_lifetime, DEFAULT_TOKEN_LIFETIME);
        let e = format!(
            "{:#}",
            parse(&yaml("empty")).unwrap().resolve().unwrap_err()
        );
        assert!(
            e.contains("client 'a': secretFile") && e.contains("is empty"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            parse(&yaml("missing")).unwrap().resolve().unwrap_err()
        );
        assert!(e.contains("cannot read"), "{e}");
        let no_key = "issuer: http://i\nsigningKeyFile: /nonexistent\n";
        let e = format!("{:#}", parse(no_key).unwrap().resolve().unwrap_err());
        assert!(
            e.contains("cannot read the signing key /nonexistent"),
            "{e}"
        );
        let bad_hash = format!(
            "issuer: http://i\nsigningKeyFile: {}\nclients: [{{clientId: h, secretHash: plain}}]\n",
            dir.join("key").display()
        );
        let e = format!("{:#}", parse(&bad_hash).unwrap().resolve().unwrap_err());
        assert!(e.contains("client 'h': secretHash"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
