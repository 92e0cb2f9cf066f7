//! Type-level search over the parameters the REST core indexes (`_id`, `identifier`,
//! `_lastUpdated`). Unknown parameters are ignored and left out of the self link (lenient), or
//! refused with `Prefer: handling=strict`, as the spec describes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::check_type;
use super::history::link as page_link;
use crate::AppState;
use crate::bundle::BundleWriter;
use crate::error::FhirError;
use crate::http::{BaseUrl, FhirBody, Prefer, QueryPairs, content_type, json_response};

pub async fn search_get(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    search(&s, &rt, &base, q, prefer).await
}

/// `POST [type]/_search` with an `application/x-www-form-urlencoded` body; URL parameters count too.
pub async fn search_post(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    QueryPairs(mut q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    match content_type(&headers).as_deref() {
        Some("application/x-www-form-urlencoded") | None => {}
        Some(other) => {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!("POST _search takes application/x-www-form-urlencoded, not '{other}'"),
            ));
        }
    }
    q.extend(form_urlencoded::parse(&body).into_owned());
    search(&s, &rt, &base, q, prefer).await
}

async fn search(
    s: &AppState,
    rt: &str,
    base: &str,
    q: Vec<(String, String)>,
    prefer: Prefer,
) -> Result<Response, FhirError> {
    let cursor = q
        .iter()
        .find(|(k, _)| k == "_cursor")
        .map(|(_, v)| v.clone());
    let params: Vec<(String, String)> = q.iter().filter(|(k, _)| k != "_cursor").cloned().collect();
    let query = hds_fhir_search::parse(&params)?;
    if prefer.strict
        && let Some(p) = query.unknown.first()
    {
        return Err(FhirError::bad_request(format!(
            "search parameter '{p}' is not supported (supported: _id, identifier, _lastUpdated, _count)"
        )));
    }
    let limits = &s.config.limits;
    let count = query
        .count
        .unwrap_or(limits.default_page_size)
        .min(limits.max_page_size);
    let conn = s.store.connection().await?;
    let page = hds_fhir_search::search(&conn, rt, &query, count, cursor.as_deref()).await?;
    let mut applied = query.applied.clone();
    applied.push(("_count".into(), count.to_string()));
    let mut links = vec![("self", page_link(base, rt, &applied, cursor.clone()))];
    if let Some(next) = page.next_after {
        links.push(("next", page_link(base, rt, &applied, Some(next))));
    }
    let mut w = BundleWriter::new("searchset", Some(page.total), &links);
    for v in &page.matches {
        w.entry(v, base, json!({"search": {"mode": "match"}}));
    }
    Ok(json_response(StatusCode::OK, w.finish()))
}
