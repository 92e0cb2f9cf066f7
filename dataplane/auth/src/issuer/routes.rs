//! The issuer's HTTP face: discovery, JWKS and the token endpoint, mounted by whoever runs the
//! Workspace (`hds up` at `/workspaces/<name>`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{OAuthError, TokenRequest, WorkspaceIssuer};

/// `/.well-known/openid-configuration`, `/.well-known/jwks.json` and `/oauth2/token`, relative
/// to the issuer URL.
pub fn router(issuer: Arc<WorkspaceIssuer>) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(i): State<Arc<WorkspaceIssuer>>| async move { cached_json(i.discovery()) }),
        )
        .route(
            "/.well-known/jwks.json",
            get(|State(i): State<Arc<WorkspaceIssuer>>| async move { cached_json(i.jwks()) }),
        )
        .route("/oauth2/token", post(token))
        .with_state(issuer)
}

fn cached_json(v: Value) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            ),
        ],
        v.to_string(),
    )
        .into_response()
}

async fn token(State(i): State<Arc<WorkspaceIssuer>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    let basic = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let result = if form {
        TokenRequest::from_form(&body)
            .and_then(|r| match basic {
                Some(b) => r.with_basic(b),
                None => Ok(r),
            })
            .and_then(|r| i.issue(&r))
    } else {
        Err(OAuthError {
            code: "invalid_request",
            description: "the token request must be application/x-www-form-urlencoded".into(),
        })
    };
    let no_store = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
    ];
    match result {
        Ok(t) => (StatusCode::OK, no_store, t.to_json().to_string()).into_response(),
        Err(e) => {
            tracing::info!(error = e.code, description = %e.description, "token request refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let body = json!({"error": e.code, "error_description": e.description}).to_string();
            let mut resp = (status, no_store, body).into_response();
            if status == StatusCode::UNAUTHORIZED && basic.is_some() {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"token\""),
                );
            }
            resp
        }
    }
}
