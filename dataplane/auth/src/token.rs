//! Bearer token validation. A token is accepted when it is a JWT signed with RS256, ES256 or
//! PS256 by the key its trusted issuer publishes under its `kid`, names one of that issuer's
//! audiences, and is within `exp`, `nbf` and `iat` give or take the leeway. Everything else is
//! refused with a reason fit for `WWW-Authenticate: Bearer error_description`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::DataAction;
use crate::jwks::{KeyError, KeySet};
use crate::verified::VerifiedTokens;

/// Asymmetric algorithms only: a symmetric one would let anyone holding the public key (which
/// is public) sign tokens, and `none` is no signature at all.
const ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::PS256];

#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The `iss` of its tokens; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values (any one). Empty: any audience (only for issuers that serve this
    /// service alone, like a workspace's own).
    pub audiences: Vec<String>,
    /// Dotted path of the roles claim: `roles` (Entra ID), `realm_access.roles` (Keycloak).
    pub roles_claim: String,
    /// For a SMART identity provider (Azure's `smartIdentityProviders`): the applications it
    /// may issue tokens to. Non-empty means a token must come from one of them, for its
    /// audience, and that application's data actions stand in for roles.
    pub applications: Vec<SmartApplication>,
}

/// An application registered with a SMART identity provider.
#[derive(Debug, Clone)]
pub struct SmartApplication {
    pub client_id: String,
    pub audience: String,
    /// Azure's `allowedDataActions` (`Read`, …).
    pub allowed_data_actions: Vec<DataAction>,
}

#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub authorities: Vec<AuthorityConfig>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// The caller, as its token says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    pub issuer: String,
    pub subject: Option<String>,
    /// `azp`, `client_id` or `appid`: the application acting.
    pub client_id: Option<String>,
    pub roles: Vec<String>,
    /// From `scp` (Entra: space-separated or a list) or `scope` (RFC 9068).
    pub scopes: Vec<String>,
    /// SMART launch context.
    pub patient: Option<String>,
    pub fhir_user: Option<String>,
    /// Set for tokens of a SMART identity provider: the data actions its application is
    /// allowed, in place of roles (which such tokens do not carry).
    pub application_actions: Option<Vec<DataAction>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the Authorization header is not 'Bearer <token>'")]
    Malformed,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    /// The RFC 6750 error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::Malformed => "invalid_request",
            AuthError::Invalid(_) | AuthError::Unavailable(_) => "invalid_token",
        }
    }
}

struct Authority {
    config: AuthorityConfig,
    keys: KeySet,
}

#[derive(Clone)]
pub struct Validator {
    by_issuer: Arc<HashMap<String, Authority>>,
    leeway: u64,
    verified: Arc<VerifiedTokens>,
}

impl Validator {
    pub fn new(config: ValidatorConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let by_issuer = config
            .authorities
            .into_iter()
            .map(|a| {
                let keys = KeySet::new(&a.issuer, http.clone());
                (issuer_key(&a.issuer), Authority { config: a, keys })
            })
            .collect();
        Self {
            by_issuer: Arc::new(by_issuer),
            leeway: config.leeway.as_secs(),
            verified: Arc::default(),
        }
    }

    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.by_issuer.values().map(|a| a.config.issuer.as_str())
    }

    /// Validates the value of an `Authorization` header (absent: [`AuthError::Missing`]).
    pub async fn authorize_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        self.validate(token.trim()).await
    }

    pub async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        let now = now();
        if let Some(p) = self.verified.get(token, now) {
            return Ok(p);
        }
        let invalid = |m: &str| AuthError::Invalid(m.to_owned());
        // The header names the algorithm and key; `none` and unknown algorithms fail to parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            invalid(
                "the token is not a JWT signed with an accepted algorithm (RS256, ES256, PS256)",
            )
        })?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "the algorithm {:?} is not accepted (RS256, ES256 and PS256 are)",
                header.alg
            )));
        }
        // The issuer decides which keys to check against, so read it before verifying.
        let claims =
            unverified_claims(token).ok_or_else(|| invalid("the token's claims are not JSON"))?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the token has no issuer (iss)"))?;
        let authority = self.by_issuer.get(&issuer_key(iss)).ok_or_else(|| {
            AuthError::Invalid(format!("the issuer '{iss}' is not trusted by this service"))
        })?;
        let key = authority
            .keys
            .key(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyError::Unavailable(m) => AuthError::Unavailable(m),
                e => AuthError::Invalid(e.to_string()),
            })?;
        let mut v = Validation::new(header.alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.set_issuer(&[&authority.config.issuer, iss]);
        if authority.config.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&authority.config.audiences);
        }
        v.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| {
            AuthError::Invalid(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidAudience => "the token is not meant for this service (aud)",
                    ErrorKind::InvalidIssuer => "the token's issuer does not match (iss)",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp)",
                    _ => "the token is malformed",
                }
                .to_owned(),
            )
        })?;
        let c = data.claims;
        if let Some(iat) = c.get("iat").and_then(Value::as_u64)
            && iat > now + self.leeway
        {
            return Err(invalid("the token was issued in the future (iat)"));
        }
        let mut p = principal(&authority.config, &c);
        if !authority.config.applications.is_empty() {
            let auds = strings(c.get("aud"));
            let app = authority
                .config
                .applications
                .iter()
                .find(|a| {
                    p.client_id.as_deref() == Some(a.client_id.as_str())
                        && auds
                            .iter()
                            .any(|x| x.trim_end_matches('/') == a.audience.trim_end_matches('/'))
                })
                .ok_or_else(|| {
                    AuthError::Invalid(format!(
                        "the application '{}' is not registered with this service for the token's audience",
                        p.client_id.as_deref().unwrap_or("(none)")
                    ))
                })?;
            p.application_actions = Some(app.allowed_data_actions.clone());
        }
        let secs = |k: &str| c.get(k).and_then(Value::as_u64);
        if let Some(exp) = secs("exp") {
            let from = secs("nbf").map_or(0, |nbf| nbf.saturating_sub(self.leeway));
            self.verified
                .insert(token, &p, from, exp + self.leeway, now);
        }
        Ok(p)
    }
}

fn issuer_key(iss: &str) -> String {
    iss.trim_end_matches('/').to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn principal(cfg: &AuthorityConfig, c: &Value) -> Principal {
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    let roles = cfg
        .roles_claim
        .split('.')
        .try_fold(c, |v, step| v.get(step));
    Principal {
        issuer: s("iss").unwrap_or_default(),
        subject: s("sub"),
        client_id: s("azp").or_else(|| s("client_id")).or_else(|| s("appid")),
        roles: strings(roles),
        scopes: strings(c.get("scp").or_else(|| c.get("scope"))),
        patient: s("patient"),
        fhir_user: s("fhirUser"),
        application_actions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_become_a_principal_with_entra_and_keycloak_shapes() {
        let entra = AuthorityConfig {
            issuer: "https://login.example/t/v2.0".into(),
            audiences: vec![],
            roles_claim: "roles".into(),
            applications: vec![],
        };
        let p = principal(
            &entra,
            &json!({"iss": "https://login.example/t/v2.0", "sub": "s", "azp": "app",
                    "roles": ["FHIR Data Reader"], "scp": "patient/*.read launch"}),
        );
        assert_eq!(p.roles, ["FHIR Data Reader"]);
        assert_eq!(p.scopes, ["patient/*.read", "launch"]);
        assert_eq!(p.client_id.as_deref(), Some("app"));
        let keycloak = AuthorityConfig {
            roles_claim: "realm_access.roles".into(),
            ..entra
        };
        let p = principal(
            &keycloak,
            &json!({"realm_access": {"roles": ["fhir-data-writer"]}, "scope": "openid",
                    "client_id": "c", "patient": "123"}),
        );
        assert_eq!(p.roles, ["fhir-data-writer"]);
        assert_eq!(p.scopes, ["openid"]);
        assert_eq!(p.patient.as_deref(), Some("123"));
    }
}
