//! History at instance, type and system level, newest first, paged by an opaque cursor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use hds_fhir_store::{HistoryQuery, HistoryScope, instant};
use serde_json::json;

use super::{check_id, check_type};
use crate::AppState;
use crate::bundle::BundleWriter;
use crate::error::FhirError;
use crate::http::{BaseUrl, QueryPairs, json_response};
use crate::smart::{self, Access, Grants};
use hds_auth::smart::Interaction;

pub async fn system(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    access: Access,
) -> Result<Response, FhirError> {
    access.check_system_history(&s.registry())?;
    history(&s, HistoryScope::System, &base, &q, None).await
}

pub async fn type_level(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    if !access
        .grants(&s.registry(), &rt, Interaction::Search)?
        .is_open()
    {
        return Err(smart::history_refusal(&format!("{rt} is")));
    }
    history(&s, HistoryScope::Type(rt), &base, &q, None).await
}

/// Under a compartment or a scope's query, the resource as it is now must be the caller's
/// (else 404, as for an unknown one), and only the versions whose bodies are in the caller's
/// compartment are listed (deletions of it too). Versions cannot be checked against a scope's
/// query, so a token whose grants all carry one gets 403.
pub async fn instance(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let grants = access.grants(&s.registry(), &rt, Interaction::Read)?;
    if grants.is_open() {
        return history(&s, HistoryScope::Instance(rt, id), &base, &q, None).await;
    }
    let conn = s.store.connection().await?;
    if !smart::current_visible(&conn, &rt, &id, &grants).await? {
        return Err(FhirError::not_found(format!("{rt}/{id} is not known")));
    }
    if !grants.has_unconstrained() {
        return Err(smart::forbidden(format!(
            "the versions of {rt}/{id} cannot be checked against the query of the token's scopes, so its history is not available to it; read the resource instead"
        )));
    }
    drop(conn);
    history(&s, HistoryScope::Instance(rt, id), &base, &q, Some(&grants)).await
}

async fn history(
    s: &AppState,
    scope: HistoryScope,
    base: &str,
    q: &[(String, String)],
    confine: Option<&Grants>,
) -> Result<Response, FhirError> {
    let limits = &s.config.limits;
    let mut query = HistoryQuery {
        scope: scope.clone(),
        since: None,
        at: None,
        before_seq: None,
        count: limits.default_page_size,
    };
    for (k, v) in q {
        match k.as_str() {
            "_count" => {
                let n: u32 = v.parse().map_err(|_| {
                    FhirError::bad_request(format!("_count '{v}' is not a non-negative integer"))
                })?;
                query.count = n.min(limits.max_page_size);
            }
            "_since" => {
                let (start, _) = hds_fhir_search::date::range(v)
                    .filter(|_| v.len() > 10)
                    .ok_or_else(|| {
                        FhirError::bad_request(format!("_since '{v}' is not a FHIR instant"))
                    })?;
                query.since = Some(start);
            }
            "_at" => {
                query.at = Some(hds_fhir_search::date::range(v).ok_or_else(|| {
                    FhirError::bad_request(format!("_at '{v}' is not a FHIR date or dateTime"))
                })?);
            }
            "_cursor" => {
                query.before_seq = Some(v.parse().map_err(|_| {
                    FhirError::bad_request(format!(
                        "'{v}' is not a history page cursor of this server"
                    ))
                })?);
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(FhirError::bad_request(format!(
                    "'{other}' is not a history parameter (use _count, _since, _at)"
                )));
            }
        }
    }
    let path = match &scope {
        HistoryScope::System => "_history".to_owned(),
        HistoryScope::Type(t) => format!("{t}/_history"),
        HistoryScope::Instance(t, id) => format!("{t}/{id}/_history"),
    };
    let conn = s.store.connection().await?;
    let page = hds_fhir_store::history(&conn, &query).await?;
    if let HistoryScope::Instance(t, id) = &scope
        && page.versions.is_empty()
        && query.before_seq.is_none()
        && query.since.is_none()
        && query.at.is_none()
        && hds_fhir_store::read(&conn, t, id).await?.is_none()
    {
        return Err(FhirError::not_found(format!("{t}/{id} is not known")));
    }
    let keep: Vec<(String, String)> = q.iter().filter(|(k, _)| k != "_cursor").cloned().collect();
    let mut links = vec![("self", link(base, &path, &keep, None))];
    if let Some(next) = page.next_before_seq {
        links.push(("next", link(base, &path, &keep, Some(next.to_string()))));
    }
    let mut w = BundleWriter::new("history", None, &links);
    let reg = s.registry();
    for v in &page.versions {
        if let (Some(g), Some(body)) = (confine, &v.body) {
            let visible = serde_json::from_str(body)
                .map(|b| g.admits_version(&reg, &b))
                .unwrap_or(false);
            if !visible {
                continue;
            }
        }
        let url = match v.method {
            hds_fhir_store::Method::Post => v.res_type.clone(),
            _ => format!("{}/{}", v.res_type, v.id),
        };
        let status = match (v.method, v.version_id) {
            (hds_fhir_store::Method::Delete, _) => "204 No Content",
            (_, 1) => "201 Created",
            _ => "200 OK",
        };
        w.entry(
            v,
            base,
            json!({
                "request": {"method": v.method.as_str(), "url": url},
                "response": {
                    "status": status,
                    "etag": format!("W/\"{}\"", v.version_id),
                    "lastModified": instant(&v.last_updated),
                },
            }),
        );
    }
    Ok(json_response(StatusCode::OK, w.finish()))
}

pub(crate) fn link(
    base: &str,
    path: &str,
    q: &[(String, String)],
    cursor: Option<String>,
) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in q {
        ser.append_pair(k, v);
    }
    if let Some(c) = cursor {
        ser.append_pair("_cursor", &c);
    }
    let qs = ser.finish();
    // A system search's path is the base itself (`[base]?_type=...`).
    let sep = if path.is_empty() { "" } else { "/" };
    if qs.is_empty() {
        format!("{base}{sep}{path}")
    } else {
        format!("{base}{sep}{path}?{qs}")
    }
}
