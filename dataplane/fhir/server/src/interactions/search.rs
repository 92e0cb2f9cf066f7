//! Type-level, compartment and system-wide (`_type`) search. Unknown parameters are ignored and reported in an
//! OperationOutcome entry (lenient, the default), or refused with `Prefer: handling=strict`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hds_common::db::TypedQuery;
use hds_fhir_search::{Cursor, Filter, Scope, Summary, query::ReferenceValue};
use serde_json::json;

use super::check_type;
use super::history::link as page_link;
use crate::AppState;
use crate::bundle::BundleWriter;
use crate::error::FhirError;
use crate::http::{BaseUrl, FhirBody, Prefer, QueryPairs, content_type, json_response};
use crate::smart::Access;
use crate::subset::Subset;
use hds_auth::smart::Interaction;

pub async fn search_get(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    search(&s, Some(&rt), None, &base, q, prefer, &access).await
}

/// `GET [base]?_type=...`: every type listed (or every type), with the parameters they share.
pub async fn system_get(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    access: Access,
) -> Result<Response, FhirError> {
    search(&s, None, None, &base, q, prefer, &access).await
}

/// `POST [base]/_search` with a form body.
pub async fn system_post(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let q = with_form_body(q, &headers, &body)?;
    search(&s, None, None, &base, q, prefer, &access).await
}

/// `POST [type]/_search` with an `application/x-www-form-urlencoded` body; URL parameters count too.
#[allow(clippy::too_many_arguments)]
pub async fn search_post(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    let q = with_form_body(q, &headers, &body)?;
    search(&s, Some(&rt), None, &base, q, prefer, &access).await
}

/// `GET [compartment type]/[id]/[type]`: the search, limited to the compartment's members.
pub async fn compartment_get(
    State(s): State<AppState>,
    Path((comp, id, rt)): Path<(String, String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&comp)?;
    check_type(&rt)?;
    search(&s, Some(&rt), Some((&comp, &id)), &base, q, prefer, &access).await
}

#[allow(clippy::too_many_arguments)]
pub async fn compartment_post(
    State(s): State<AppState>,
    Path((comp, id, rt)): Path<(String, String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&comp)?;
    check_type(&rt)?;
    let q = with_form_body(q, &headers, &body)?;
    search(&s, Some(&rt), Some((&comp, &id)), &base, q, prefer, &access).await
}

fn with_form_body(
    mut q: Vec<(String, String)>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, FhirError> {
    match content_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") | None => {}
        Some(other) => {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!("POST _search takes application/x-www-form-urlencoded, not '{other}'"),
            ));
        }
    }
    q.extend(form_urlencoded::parse(body).into_owned());
    Ok(q)
}

/// Membership of `rt` resources in the `comp/id` compartment: any of the compartment
/// definition's parameters points at it.
pub(crate) fn compartment_filter(rt: &str, comp: &str, id: &str) -> Result<Filter, FhirError> {
    let reg = hds_fhir_search::r4();
    if !reg.is_compartment(comp) {
        return Err(FhirError::not_found(format!(
            "{comp} is not a compartment type (R4 has Patient, Encounter, RelatedPerson, Practitioner and Device)"
        )));
    }
    let params = reg.compartment_params(comp, rt);
    if params.is_empty() {
        return Err(FhirError::bad_request(format!(
            "{rt} resources are not members of the {comp} compartment"
        )));
    }
    let value = ReferenceValue {
        target_type: Some(comp.to_owned()),
        id: Some(id.to_owned()),
        url: None,
        version: None,
    };
    Ok(Filter::Or(
        params
            .iter()
            .map(|p| {
                // `{def}` marks the compartment's own resource (Patient in Patient/123/Patient).
                if p == "{def}" {
                    Filter::Id(vec![id.to_owned()])
                } else {
                    Filter::Reference {
                        param: p.clone(),
                        values: vec![value.clone()],
                    }
                }
            })
            .collect(),
    ))
}

async fn search(
    s: &AppState,
    rt: Option<&str>,
    compartment: Option<(&str, &str)>,
    base: &str,
    q: Vec<(String, String)>,
    prefer: Prefer,
    access: &Access,
) -> Result<Response, FhirError> {
    let conn = s.store.connection().await?;
    search_in(s, &conn, rt, compartment, base, q, prefer, access).await
}

/// A search on `conn` (a pooled connection, or a transaction Bundle's transaction). `rt` None
/// is a system-wide search. `access` confines it to what the token's SMART scopes grant (see
/// [`crate::smart`]).
#[allow(clippy::too_many_arguments)]
pub async fn search_in(
    s: &AppState,
    conn: &impl TypedQuery,
    rt: Option<&str>,
    compartment: Option<(&str, &str)>,
    base: &str,
    q: Vec<(String, String)>,
    prefer: Prefer,
    access: &Access,
) -> Result<Response, FhirError> {
    let reg = s.registry();
    // Another patient's compartment, to a caller confined to its own patient's: as unknown as
    // reading that Patient would be.
    if let (Some(rt), Some(("Patient", id))) = (rt, compartment)
        && let Some(own) = access.grants(&reg, rt, Interaction::Search)?.only_patient()
        && own != id
    {
        return Err(FhirError::not_found(format!("Patient/{id} is not known")));
    }
    let cursor = q
        .iter()
        .find(|(k, _)| k == "_cursor")
        .map(|(_, v)| Cursor::decode(v))
        .transpose()?;
    let params: Vec<(String, String)> = q.into_iter().filter(|(k, _)| k != "_cursor").collect();
    let types: Vec<String>;
    let (scope, mut query) = match rt {
        Some(rt) => {
            let mut q = hds_fhir_search::parse_with(&reg, rt, &params)?;
            access.confine_search(&reg, rt, &mut q)?;
            (Scope::Type(rt), q)
        }
        None => {
            let (all, rest) = hds_fhir_search::split_types(&params)?;
            types = all;
            let mut q = hds_fhir_search::parse_system(&reg, &types, &rest)?;
            let named = params.iter().any(|(k, _)| k == "_type");
            access.confine_system_search(&reg, &types, named, &mut q)?;
            // The links repeat `_type` as given.
            let given = params.iter().filter(|(k, _)| k == "_type").cloned();
            q.applied.splice(0..0, given);
            (Scope::Types(&types), q)
        }
    };
    if prefer.strict
        && let Some((_, reason)) = query.unknown.first()
    {
        return Err(FhirError::bad_request(format!(
            "{reason} (Prefer: handling=strict; leave it out to have unknown parameters ignored)"
        )));
    }
    let path = match (compartment, rt) {
        (Some((comp, id)), Some(rt)) => {
            query.clauses.push(compartment_filter(rt, comp, id)?);
            format!("{comp}/{id}/{rt}")
        }
        (_, rt) => rt.unwrap_or_default().to_owned(),
    };
    let limits = &s.config.limits;
    let count = query
        .count
        .unwrap_or(limits.default_page_size)
        .min(limits.max_page_size);
    let mut applied = query.applied.clone();
    applied.push(("_count".into(), count.to_string()));

    // `_count=0` asks for no entries, which is only useful for the total (fhirpy's count()).
    if query.result.summary == Some(Summary::Count) || query.count == Some(0) {
        let total = hds_fhir_search::count_matches(conn, scope, &query).await?;
        let links = vec![("self", page_link(base, &path, &applied, None))];
        return Ok(json_response(
            StatusCode::OK,
            BundleWriter::new("searchset", Some(total), &links).finish(),
        ));
    }

    // Unconfined, a page brings its includes' first round in its own statement; a confined
    // caller's are judged round by round.
    let open = access.is_open();
    let mut page = hds_fhir_search::search_including(
        conn,
        scope,
        &query,
        count,
        cursor.as_ref(),
        if open { query.includes() } else { &[] },
    )
    .await?;
    let included = match page.included.take() {
        Some(first) => {
            hds_fhir_search::includes_from(conn, &page.matches, query.includes(), Some(first))
                .await?
        }
        None => {
            access
                .includes(conn, &reg, &page.matches, query.includes())
                .await?
        }
    };

    let mut links = vec![(
        "self",
        page_link(base, &path, &applied, cursor.as_ref().map(Cursor::encode)),
    )];
    if let Some(next) = &page.next {
        links.push((
            "next",
            page_link(base, &path, &applied, Some(next.encode())),
        ));
    }
    if let Some(prev) = &page.previous {
        links.push((
            "previous",
            page_link(base, &path, &applied, Some(prev.encode())),
        ));
    }
    let subset = Subset {
        summary: query.result.summary,
        elements: query.result.elements.clone(),
    };
    let mut w = BundleWriter::new("searchset", page.total, &links);
    for (versions, mode) in [(&page.matches, "match"), (&included, "include")] {
        for v in versions {
            let body = v.body.as_deref().and_then(|b| subset.apply(&v.res_type, b));
            w.search_entry(v, base, mode, body.as_deref());
        }
    }
    if !query.unknown.is_empty() {
        let issues: Vec<_> = query
            .unknown
            .iter()
            .map(|(_, reason)| {
                json!({"severity": "warning", "code": "not-supported",
                       "diagnostics": format!("{reason}; it was ignored")})
            })
            .collect();
        w.raw_entry(json!({
            "resource": {"resourceType": "OperationOutcome", "issue": issues},
            "search": {"mode": "outcome"}
        }));
    }
    Ok(json_response(StatusCode::OK, w.finish()))
}
