//! SMART discovery: `/.well-known/smart-configuration` and the CapabilityStatement's
//! `oauth-uris`, from the trusted authority's own OpenID discovery document.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hds_common::config::AuthMode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::AppState;
use crate::error::FhirError;

type DiscoveryCache = HashMap<String, (Instant, Option<Value>)>;

static DISCOVERY: LazyLock<Mutex<DiscoveryCache>> = LazyLock::new(Mutex::default);

/// The authority's discovery document: cached 10 minutes, a failure 30 seconds.
async fn discovery(issuer: &str) -> Option<Value> {
    let mut cache = DISCOVERY.lock().await;
    if let Some((at, doc)) = cache.get(issuer) {
        let ttl = if doc.is_some() { 600 } else { 30 };
        if at.elapsed() < Duration::from_secs(ttl) {
            return doc.clone();
        }
    }
    let doc = match hds_auth::smart::fetch_discovery(issuer, Duration::from_secs(3)).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(%issuer, "no OpenID discovery document for SMART configuration: {e}");
            None
        }
    };
    cache.insert(issuer.to_owned(), (Instant::now(), doc.clone()));
    doc
}

/// The authority clients get tokens from: the configured one, else the first trusted.
fn authority(s: &AppState) -> Option<String> {
    if s.config.auth.mode == AuthMode::None {
        return None;
    }
    s.config
        .auth
        .authority
        .clone()
        .or_else(|| s.tokens.as_ref()?.issuers().next().map(str::to_owned))
        .map(|i| i.trim_end_matches('/').to_owned())
}

fn endpoint(doc: Option<&Value>, key: &str, issuer: &str) -> String {
    doc.and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .unwrap_or(issuer)
        .to_owned()
}

/// The SMART extension of `CapabilityStatement.rest.security` (authorize and token URLs), when
/// authentication is on.
pub async fn oauth_uris(s: &AppState) -> Option<Value> {
    let issuer = authority(s)?;
    let doc = discovery(&issuer).await;
    Some(json!({
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [
            {"url": "authorize", "valueUri": endpoint(doc.as_ref(), "authorization_endpoint", &issuer)},
            {"url": "token", "valueUri": endpoint(doc.as_ref(), "token_endpoint", &issuer)},
        ]
    }))
}

/// The scopes this server understands, as `scopes_supported` lists them.
const SCOPES_SUPPORTED: &[&str] = &[
    "openid",
    "fhirUser",
    "launch/patient",
    "patient/*.cruds",
    "patient/*.rs",
    "patient/*.read",
    "patient/*.write",
    "patient/*.*",
    "user/*.cruds",
    "user/*.rs",
    "user/*.read",
    "user/*.write",
    "user/*.*",
    "system/*.cruds",
    "system/*.rs",
    "system/*.read",
    "system/*.write",
    "system/*.*",
];

/// `GET /.well-known/smart-configuration` (public): the authority's endpoints from its
/// discovery document (the issuer URL where it has none), and what this server does with
/// SMART scopes. Only capabilities that hold are listed: the launch flows are the
/// authority's, which this server cannot vouch for.
pub async fn configuration(State(s): State<AppState>) -> Result<Response, FhirError> {
    let Some(issuer) = authority(&s) else {
        return Err(FhirError::not_found(
            "SMART on FHIR needs token authentication (auth.mode: oidc with an authority)",
        ));
    };
    let doc = discovery(&issuer).await;
    let d = doc.as_ref();
    let strings = |key: &str| -> Option<Vec<String>> {
        d?.get(key)?.as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    // OpenID discovery's defaults where the document is silent.
    let auth_methods = strings("token_endpoint_auth_methods_supported")
        .unwrap_or(vec!["client_secret_basic".into()]);
    let grant_types = strings("grant_types_supported")
        .unwrap_or(vec!["authorization_code".into(), "implicit".into()]);
    let mut capabilities = vec![
        "permission-v1",
        "permission-v2",
        "permission-patient",
        "permission-user",
    ];
    if auth_methods
        .iter()
        .any(|m| m == "client_secret_basic" || m == "client_secret_post")
    {
        capabilities.push("client-confidential-symmetric");
    }
    if auth_methods.iter().any(|m| m == "private_key_jwt") {
        capabilities.push("client-confidential-asymmetric");
    }
    if doc.is_some() {
        // It publishes an OpenID Connect discovery document.
        capabilities.push("sso-openid-connect");
    }
    if grant_types.iter().any(|g| g == "refresh_token") {
        capabilities.push("permission-offline");
    }
    let mut out = json!({
        "issuer": d.and_then(|d| d.get("issuer")).cloned().unwrap_or(json!(issuer)),
        "authorization_endpoint": endpoint(d, "authorization_endpoint", &issuer),
        "token_endpoint": endpoint(d, "token_endpoint", &issuer),
        "token_endpoint_auth_methods_supported": auth_methods,
        "grant_types_supported": grant_types,
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": strings("response_types_supported").unwrap_or(vec!["code".into()]),
        "capabilities": capabilities,
    });
    for key in [
        "jwks_uri",
        "registration_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "management_endpoint",
        "userinfo_endpoint",
    ] {
        if let Some(v) = d.and_then(|d| d.get(key)).filter(|v| v.is_string()) {
            out[key] = v.clone();
        }
    }
    // SMART forbids advertising `plain`.
    if let Some(methods) = strings("code_challenge_methods_supported") {
        let methods: Vec<String> = methods.into_iter().filter(|m| m != "plain").collect();
        out["code_challenge_methods_supported"] = json!(methods);
    }
    let mut r = (StatusCode::OK, out.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
