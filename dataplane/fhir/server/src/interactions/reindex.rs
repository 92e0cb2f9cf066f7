//! Custom search parameters and `$reindex`, in Azure's shapes: `POST [base]/$reindex` or
//! `POST [base]/[type]/$reindex` queues a job and answers 201 with its Parameters and a
//! Content-Location of `[base]/_operations/reindex/[id]`, which reports progress (GET) and
//! cancels (DELETE).

use axum::body::{Body, to_bytes};
use axum::extract::{Path, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hds_fhir_search::reindex;
use serde_json::Value;

use super::check_type;
use crate::AppState;
use crate::error::FhirError;
use crate::http::{BaseUrl, json_response};

pub async fn start_all(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
) -> Result<Response, FhirError> {
    start(&s, &base, None).await
}

pub async fn start_type(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    start(&s, &base, Some(vec![rt])).await
}

async fn start(
    s: &AppState,
    base: &str,
    types: Option<Vec<String>>,
) -> Result<Response, FhirError> {
    let conn = s.store.connection().await?;
    let job = reindex::start(&conn, types, &s.reindex_wake).await?;
    let mut resp = json_response(StatusCode::CREATED, job.to_parameters().to_string());
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/_operations/reindex/{}", job.id)) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(resp)
}

pub async fn status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let conn = s.store.connection().await?;
    match reindex::get(&conn, &id).await? {
        Some(job) => Ok(json_response(
            StatusCode::OK,
            job.to_parameters().to_string(),
        )),
        None => Err(FhirError::not_found(format!("no reindex job '{id}'"))),
    }
}

pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let conn = s.store.connection().await?;
    match reindex::cancel(&conn, &id).await? {
        Some(job) => Ok(json_response(
            StatusCode::OK,
            job.to_parameters().to_string(),
        )),
        None => Err(FhirError::not_found(format!("no reindex job '{id}'"))),
    }
}

/// Around every write of a SearchParameter: refuses one the server could not index (before the
/// write), and rebuilds the registry after a successful one, so that later writes index it and
/// searches know it is pending.
pub async fn reload_after_search_parameter_write(
    State(s): State<AppState>,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let is_sp = params
        .iter()
        .any(|(k, v)| k == "type" && v == "SearchParameter");
    let method = req.method().clone();
    if !is_sp || matches!(method, Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let req = if matches!(method, Method::POST | Method::PUT) {
        let (parts, body) = req.into_parts();
        let limit = usize::try_from(s.config.limits.max_request_body_bytes).unwrap_or(usize::MAX);
        let bytes = match to_bytes(body, limit).await {
            Ok(b) => b,
            Err(_) => {
                return FhirError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-costly",
                    "the request body is larger than this service accepts",
                )
                .into_response();
            }
        };
        if let Ok(sp) = serde_json::from_slice::<Value>(&bytes)
            && sp.get("resourceType").and_then(Value::as_str) == Some("SearchParameter")
            && let Err(e) = check_search_parameter(&sp)
        {
            return e.into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let resp = next.run(req).await;
    if resp.status().is_success() {
        reload_search_parameters(&s).await;
    }
    resp
}

/// A SearchParameter the server could not index is refused before it is written.
pub fn check_search_parameter(sp: &Value) -> Result<(), FhirError> {
    hds_fhir_search::custom_param(hds_fhir_search::r4(), sp).map_err(|why| {
        FhirError::bad_request(format!(
            "this SearchParameter cannot be used for search on this server: {why}"
        ))
    })?;
    Ok(())
}

/// Rebuilds the registry after SearchParameter writes, so that later writes index them and
/// searches know they are pending.
pub async fn reload_search_parameters(s: &AppState) {
    reload_registry(&s.store, &s.search).await;
}

/// Rebuilds `search` from the SearchParameters stored now (after API writes and imports).
pub async fn reload_registry(
    store: &hds_fhir_store::Store,
    search: &hds_fhir_search::SearchParams,
) {
    match store.connection().await {
        Ok(c) => {
            if let Err(e) = search.reload(&c).await {
                tracing::error!(error = %e, "cannot reload search parameters after a SearchParameter write");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot reload search parameters"),
    }
}
