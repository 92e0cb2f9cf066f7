//! A Workspace's own token issuer: the equivalent of Entra ID's managed identities and service
//! principals, so that one machine or one cluster needs no outside identity provider.
//!
//! It publishes an OpenID discovery document and a JWKS, and answers the OAuth 2.0
//! client-credentials grant (RFC 6749 §4.4) with JWT access tokens in the RFC 9068 profile
//! (`typ: at+jwt`), signed with ES256. A token carries the client's Azure data roles in `roles`
//! and its SMART scopes in `scope`, so services validate it like any other authority's.
//!
//! Client secrets are held only as hashes: `$sha256$<hex>` of the secret, or an `$argon2id$` PHC
//! string (verified with the `argon2` crate). A plaintext secret from a Secret is hashed when the
//! issuer is built and then dropped.

mod routes;

pub use routes::router;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Azure's default access-token lifetime.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A client secret as stored: never the secret itself.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretHash {
    Sha256([u8; 32]),
    /// A PHC string (`$argon2id$v=19$m=…`).
    Argon2(String),
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretHash::Sha256(_) => "SecretHash::Sha256(..)",
            SecretHash::Argon2(_) => "SecretHash::Argon2(..)",
        })
    }
}

impl SecretHash {
    /// Hashes a plaintext secret (read from a Secret) for keeping in memory.
    pub fn of_plaintext(secret: &str) -> Self {
        SecretHash::Sha256(Sha256::digest(secret.as_bytes()).into())
    }

    /// Parses `$sha256$<64 hex digits>` or an `$argon2id$…` PHC string.
    pub fn parse(text: &str) -> Result<Self, IssuerError> {
        let text = text.trim();
        if let Some(hex) = text.strip_prefix("$sha256$") {
            let bytes = decode_hex(hex).ok_or_else(|| {
                IssuerError::Config("a $sha256$ secret hash needs 64 hex digits".into())
            })?;
            return Ok(SecretHash::Sha256(bytes));
        }
        if text.starts_with("$argon2") {
            PasswordHash::new(text).map_err(|e| {
                IssuerError::Config(format!("the $argon2 secret hash does not parse: {e}"))
            })?;
            return Ok(SecretHash::Argon2(text.to_owned()));
        }
        Err(IssuerError::Config(
            "a secret hash must be '$sha256$<hex>' or an '$argon2id$' PHC string".into(),
        ))
    }

    pub fn verify(&self, secret: &str) -> bool {
        match self {
            SecretHash::Sha256(want) => {
                let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                bool::from(got.ct_eq(want))
            }
            SecretHash::Argon2(phc) => PasswordHash::new(phc).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            }),
        }
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// A client allowed the client-credentials grant.
#[derive(Debug, Clone)]
pub struct IssuerClient {
    pub client_id: String,
    pub secret: SecretHash,
    /// Azure data-plane role names, carried in the token's `roles`.
    pub roles: Vec<String>,
    /// SMART scopes the client may ask for (all of them when it asks for none).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `iss` of its tokens; discovery is served at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// PKCS#8 PEM of a P-256 private key ([`generate_signing_key`]).
    pub signing_key_pem: String,
    pub token_lifetime: Duration,
    pub clients: Vec<IssuerClient>,
    /// The base URLs of the Workspace's services: the audiences a token may name. A token asked
    /// for without `resource` names all of them.
    pub audiences: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("{0}")]
    Config(String),
}

/// A refused token request, as RFC 6749 §5.2 words it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// 401 for a client that failed to authenticate, 400 otherwise.
    pub fn status(&self) -> u16 {
        if self.code == "invalid_client" {
            401
        } else {
            400
        }
    }
}

/// A new P-256 signing key as PKCS#8 PEM.
pub fn generate_signing_key() -> String {
    let key = SigningKey::random(&mut rand::thread_rng());
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_default()
}

pub struct WorkspaceIssuer {
    config: IssuerConfig,
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for WorkspaceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceIssuer")
            .field("issuer", &self.config.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The fields of a token request (form-encoded) that this issuer reads.
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    /// RFC 8707 resource indicators (may repeat).
    pub resources: Vec<String>,
}

impl TokenRequest {
    /// From an `application/x-www-form-urlencoded` body.
    pub fn from_form(body: &[u8]) -> Result<Self, OAuthError> {
        let mut r = TokenRequest::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            let slot = match k.as_ref() {
                "grant_type" => &mut r.grant_type,
                "client_id" => &mut r.client_id,
                "client_secret" => &mut r.client_secret,
                "scope" => &mut r.scope,
                "resource" | "audience" => {
                    r.resources.push(v);
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("the parameter '{k}' is repeated"),
                ));
            }
            *slot = Some(v);
        }
        Ok(r)
    }

    /// Adds the credentials of an `Authorization: Basic` header (client_secret_basic), whose
    /// parts are form-encoded as RFC 6749 §2.3.1 says.
    pub fn with_basic(mut self, header: &str) -> Result<Self, OAuthError> {
        let bad = || OAuthError::new("invalid_client", "the Basic credentials do not decode");
        let (scheme, value) = header.trim().split_once(' ').ok_or_else(bad)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(bad());
        }
        let decoded = STANDARD.decode(value.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let unform = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        if self.client_secret.is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not Basic and client_secret together",
            ));
        }
        let id = unform(id);
        if self.client_id.as_ref().is_some_and(|given| *given != id) {
            return Err(OAuthError::new(
                "invalid_request",
                "client_id differs from the Basic credentials",
            ));
        }
        self.client_id = Some(id);
        self.client_secret = Some(unform(secret));
        Ok(self)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: String,
}

impl TokenResponse {
    pub fn to_json(&self) -> Value {
        let mut v = json!({"access_token": self.access_token, "token_type": "Bearer",
                           "expires_in": self.expires_in});
        if !self.scope.is_empty() {
            v["scope"] = Value::String(self.scope.clone());
        }
        v
    }
}

impl WorkspaceIssuer {
    pub fn new(config: IssuerConfig) -> Result<Self, IssuerError> {
        let key = SigningKey::from_pkcs8_pem(&config.signing_key_pem).map_err(|e| {
            IssuerError::Config(format!(
                "the signing key is not a PKCS#8 PEM P-256 (ES256) private key: {e}"
            ))
        })?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| IssuerError::Config(format!("the signing key does not encode: {e}")))?;
        let point = key.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(IssuerError::Config(
                "the signing key has no public point".into(),
            ));
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 thumbprint: stable for the key, so a restart with the same key keeps its kid.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig",
                         "alg": "ES256", "kid": kid});
        let mut seen = std::collections::BTreeSet::new();
        for c in &config.clients {
            if c.client_id.is_empty() || !seen.insert(c.client_id.as_str()) {
                return Err(IssuerError::Config(format!(
                    "client ids must be unique and non-empty ('{}')",
                    c.client_id
                )));
            }
        }
        Ok(Self {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            kid,
            jwk,
            config,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer_base())
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer_base())
    }

    fn issuer_base(&self) -> &str {
        self.config.issuer.trim_end_matches('/')
    }

    /// The OpenID Provider Metadata a validator reads (only what this issuer does).
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.config.issuer,
            "jwks_uri": self.jwks_uri(),
            "token_endpoint": self.token_endpoint(),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["token"],
            "scopes_supported": self.scopes_supported(),
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "roles", "scope"],
        })
    }

    fn scopes_supported(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self
            .config
            .clients
            .iter()
            .flat_map(|c| c.scopes.iter().map(String::as_str))
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// Answers a client-credentials request with a signed access token.
    pub fn issue(&self, req: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        match req.grant_type.as_deref() {
            Some("client_credentials") => {}
            None => return Err(OAuthError::new("invalid_request", "grant_type is missing")),
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!("grant_type '{other}' is not supported; use client_credentials"),
                ));
            }
        }
        let client = self.authenticate(req)?;
        // Azure's `<resource>/.default` scope names the audience, not a permission.
        let mut resources = req.resources.clone();
        let mut asked = Vec::new();
        for s in req.scope.as_deref().unwrap_or("").split_whitespace() {
            match s.strip_suffix("/.default") {
                Some(resource) => resources.push(resource.to_owned()),
                None => asked.push(s),
            }
        }
        let audiences = self.audiences(&resources)?;
        let granted: Vec<&str> = if asked.is_empty() {
            client.scopes.iter().map(String::as_str).collect()
        } else {
            if let Some(s) = asked
                .iter()
                .find(|s| !client.scopes.iter().any(|c| c == *s))
            {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("the client is not allowed the scope '{s}'"),
                ));
            }
            asked
        };
        let scope = granted.join(" ");
        let now = now();
        let lifetime = self.config.token_lifetime.as_secs();
        let mut claims = json!({
            "iss": self.config.issuer,
            "sub": client.client_id,
            "client_id": client.client_id,
            "azp": client.client_id,
            "aud": if audiences.len() == 1 { json!(audiences[0]) } else { json!(audiences) },
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid::Uuid::new_v4().to_string(),
            "roles": client.roles,
        });
        if !scope.is_empty() {
            claims["scope"] = Value::String(scope.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| OAuthError::new("server_error", format!("signing failed: {e}")))?;
        Ok(TokenResponse {
            access_token,
            expires_in: lifetime,
            scope,
        })
    }

    fn authenticate(&self, req: &TokenRequest) -> Result<&IssuerClient, OAuthError> {
        let refused = || OAuthError::new("invalid_client", "unknown client or wrong secret");
        let id = req.client_id.as_deref().ok_or_else(|| {
            OAuthError::new(
                "invalid_client",
                "no client credentials: use HTTP Basic or client_id and client_secret",
            )
        })?;
        let secret = req.client_secret.as_deref().ok_or_else(refused)?;
        let client = self
            .config
            .clients
            .iter()
            .find(|c| c.client_id == id)
            .ok_or_else(refused)?;
        if client.secret.verify(secret) {
            Ok(client)
        } else {
            Err(refused())
        }
    }

    fn audiences(&self, resources: &[String]) -> Result<Vec<String>, OAuthError> {
        if resources.is_empty() {
            return Ok(self.config.audiences.clone());
        }
        let norm = |s: &str| s.trim_end_matches('/').to_owned();
        let mut out = Vec::new();
        for r in resources {
            let r = norm(r);
            if !self.config.audiences.iter().any(|a| norm(a) == r) {
                return Err(OAuthError::new(
                    "invalid_target",
                    format!("'{r}' is not a service of this workspace"),
                ));
            }
            if !out.contains(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> WorkspaceIssuer {
        WorkspaceIssuer::new(IssuerConfig {
            issuer: "http://127.0.0.1:1/workspaces/demo".into(),
            signing_key_pem: generate_signing_key(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            clients: vec![IssuerClient {
                client_id: "app".into(),
                secret: SecretHash::of_plaintext("s3cret"),
                roles: vec!["FHIR Data Reader".into()],
                scopes: vec!["system/Patient.read".into(), "system/Observation.rs".into()],
            }],
            audiences: vec!["http://h/fhir/a".into(), "http://h/dicom/b".into()],
        })
        .unwrap()
    }

    fn req(form: &str) -> TokenRequest {
        TokenRequest::from_form(form.as_bytes()).unwrap()
    }

    fn claims(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn secret_hashes_parse_and_verify() {
        let sha = SecretHash::parse(
            "$sha256$9f735e0df9a1ddc702bf0a1a7b83033f9f7153a00c29de82cedadc9957289b05",
        )
        .unwrap();
        assert!(sha.verify("testpassword"));
        assert!(!sha.verify("testpassword "));
        assert!(SecretHash::parse("$sha256$abc").is_err());
        assert!(SecretHash::parse("plain").is_err());
        // An argon2id PHC string as `argon2` tools print it.
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"somesaltsomesalt").unwrap();
        let phc = argon2::Argon2::default()
            .hash_password(b"password", &salt)
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$"));
        let argon = SecretHash::parse(&phc).unwrap();
        assert!(argon.verify("password"));
        assert!(!argon.verify("Password"));
    }

    #[test]
    fn client_credentials_give_an_rfc9068_token() {
        let i = issuer();
        let t = i
            .issue(&req(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret",
            ))
            .unwrap();
        let header = jsonwebtoken::decode_header(&t.access_token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, Algorithm::ES256);
        let c = claims(&t.access_token);
        assert_eq!(c["iss"], "http://127.0.0.1:1/workspaces/demo");
        assert_eq!(c["client_id"], "app");
        assert_eq!(c["roles"], json!(["FHIR Data Reader"]));
        assert_eq!(c["aud"], json!(["http://h/fhir/a", "http://h/dicom/b"]));
        assert_eq!(c["scope"], "system/Patient.read system/Observation.rs");
        assert_eq!(t.expires_in, 3600);
        assert!(c["jti"].is_string());
    }

    #[test]
    fn basic_auth_resources_and_narrowed_scopes() {
        let i = issuer();
        let basic = format!("Basic {}", STANDARD.encode("app:s3cret"));
        let r = req(
            "grant_type=client_credentials&resource=http://h/fhir/a/&scope=system/Patient.read",
        )
        .with_basic(&basic)
        .unwrap();
        let t = i.issue(&r).unwrap();
        let c = claims(&t.access_token);
        assert_eq!(c["aud"], "http://h/fhir/a");
        assert_eq!(t.scope, "system/Patient.read");
        // Azure's `.default` form names the audience.
        let t = i
            .issue(&req(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret&scope=http://h/dicom/b/.default",
            ))
            .unwrap();
        assert_eq!(claims(&t.access_token)["aud"], "http://h/dicom/b");
    }

    #[test]
    fn refusals_use_rfc6749_codes() {
        let i = issuer();
        let code = |form: &str| i.issue(&req(form)).unwrap_err().code;
        assert_eq!(
            code("client_id=app&client_secret=s3cret"),
            "invalid_request"
        );
        assert_eq!(
            code("grant_type=password&client_id=app&client_secret=s3cret"),
            "unsupported_grant_type"
        );
        assert_eq!(
            code("grant_type=client_credentials&client_id=app&client_secret=wrong"),
            "invalid_client"
        );
        assert_eq!(
            code("grant_type=client_credentials&client_id=nobody&client_secret=s3cret"),
            "invalid_client"
        );
        assert_eq!(code("grant_type=client_credentials"), "invalid_client");
        assert_eq!(
            code(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret&scope=system/*.write"
            ),
            "invalid_scope"
        );
        assert_eq!(
            code(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret&resource=http://evil"
            ),
            "invalid_target"
        );
        assert!(TokenRequest::from_form(b"grant_type=a&grant_type=b").is_err());
        let both = req("grant_type=client_credentials&client_secret=x")
            .with_basic(&format!("Basic {}", STANDARD.encode("app:s3cret")));
        assert!(both.is_err());
        assert_eq!(OAuthError::new("invalid_client", "").status(), 401);
    }

    #[test]
    fn the_kid_is_the_keys_thumbprint_and_stable() {
        let pem = generate_signing_key();
        let mk = || {
            WorkspaceIssuer::new(IssuerConfig {
                issuer: "http://x".into(),
                signing_key_pem: pem.clone(),
                token_lifetime: DEFAULT_TOKEN_LIFETIME,
                clients: vec![],
                audiences: vec![],
            })
            .unwrap()
        };
        assert_eq!(mk().kid, mk().kid);
        assert_eq!(mk().jwks()["keys"][0]["kid"], json!(mk().kid));
        assert!(
            WorkspaceIssuer::new(IssuerConfig {
                signing_key_pem: "not a key".into(),
                ..mk().config.clone()
            })
            .is_err()
        );
    }
}
