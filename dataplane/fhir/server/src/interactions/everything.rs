//! `Patient/[id]/$everything` (GET, or POST with its parameters in a Parameters resource): the
//! Patient and every resource in its compartment, type by type (the Patient first, then the
//! compartment's types in name order), as a searchset paged by `_count`. `_since` keeps
//! resources changed at or after an instant; `_type` keeps the listed types; `start` and `end`
//! bound the care dates (R4: "care dates, not record currency dates"): each type with a
//! `date` search parameter (R4's clinical date and its like) is matched on it, and the types
//! without one are kept whole, as Azure does. `_count=0` asks for no entries. The paging cursor
//! is the type's position and that type's own search cursor, so pages stay put while others
//! write, as search pages do.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use hds_fhir_search::{Cursor, Filter, ParamType, Scope};

use super::history::link as page_link;
use super::search::compartment_filter;
use super::{check_id, check_type};
use crate::AppState;
use crate::bundle::BundleWriter;
use crate::error::FhirError;
use crate::http::{BaseUrl, QueryPairs, json_response};
use crate::smart::Access;
use hds_auth::smart::Interaction;

pub async fn everything(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    access: Access,
) -> Result<Response, FhirError> {
    run(s, rt, id, base, q, access).await
}

/// The POST form R4 gives every operation: the parameters in a Parameters resource (or none).
pub async fn everything_post(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    access: Access,
    body: Bytes,
) -> Result<Response, FhirError> {
    let mut q = q;
    q.extend(super::export::parameter_pairs(
        &body,
        "$everything",
        |_, _, _| Ok(false),
    )?);
    run(s, rt, id, base, q, access).await
}

async fn run(
    s: AppState,
    rt: String,
    id: String,
    base: String,
    q: Vec<(String, String)>,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    if rt != "Patient" {
        return Err(FhirError::not_found(format!(
            "$everything is defined here on Patient/[id], not on {rt}"
        )));
    }
    check_id(&id)?;
    let reg = s.registry();
    let mut types: Vec<&str> = hds_fhir_model::r4()
        .resource_types()
        .filter(|t| *t != "Patient" && !reg.compartment_params("Patient", t).is_empty())
        .collect();
    types.sort_unstable();
    types.insert(0, "Patient");
    let mut since = None;
    let mut care = Vec::new();
    let mut count = s.config.limits.default_page_size;
    let mut start = (0usize, None);
    for (k, v) in &q {
        match k.as_str() {
            "_since" => since = Some(super::export::parse_instant(v)?.to_rfc3339()),
            "start" => care.push(("date".to_owned(), format!("ge{v}"))),
            "end" => care.push(("date".to_owned(), format!("le{v}"))),
            "_count" => {
                count = v
                    .parse::<u32>()
                    .map_err(|_| FhirError::bad_request(format!("_count '{v}' is not a number")))?
                    .min(s.config.limits.max_page_size)
            }
            "_type" => {
                let wanted: Vec<&str> = v.split(',').map(str::trim).collect();
                for t in &wanted {
                    if !types.contains(t) {
                        return Err(FhirError::bad_request(format!(
                            "_type names '{t}', which is not a type of the Patient compartment"
                        )));
                    }
                }
                types.retain(|t| wanted.contains(t));
            }
            "_cursor" => start = decode_cursor(v)?,
            _ => {}
        }
    }
    let conn = s.store.connection().await?;
    let patient = hds_fhir_store::read(&conn, "Patient", &id).await?;
    if patient.is_none_or(|v| v.is_deleted()) {
        return Err(FhirError::not_found(format!("Patient/{id} is not known")));
    }
    let mut matches = Vec::new();
    let mut next = None;
    let (first, mut cursor) = start;
    // `_count=0` asks for no entries (R4 search): an empty page, and no next one.
    let first = if count == 0 { types.len() } else { first };
    for (ti, t) in types.iter().enumerate().skip(first) {
        let remaining = count - matches.len() as u32;
        if remaining == 0 {
            next = Some((ti, None));
            break;
        }
        let mut pairs: Vec<(String, String)> = since
            .iter()
            .map(|s| ("_lastUpdated".to_owned(), format!("ge{s}")))
            .collect();
        if reg
            .get(t, "date")
            .is_some_and(|p| p.kind == ParamType::Date)
        {
            pairs.extend(care.iter().cloned());
        }
        let mut query = hds_fhir_search::parse_with(&reg, t, &pairs)?;
        let members = compartment_filter(t, "Patient", &id)?;
        query.clauses.push(if *t == "Patient" {
            // The Patient itself, and the Patients its compartment holds (linked ones).
            Filter::Or(vec![Filter::Id(vec![id.clone()]), members])
        } else {
            members
        });
        // Confined like a compartment search of this type; a type the caller may not search
        // is left out rather than failing the whole operation.
        if access.grants(&reg, t, Interaction::Search).is_err() {
            continue;
        }
        access.confine_search(&reg, t, &mut query)?;
        let page = hds_fhir_search::search(
            &conn,
            Scope::Type(t),
            &query,
            remaining,
            cursor.take().as_ref(),
        )
        .await?;
        matches.extend(page.matches);
        if let Some(c) = page.next {
            next = Some((ti, Some(c)));
            break;
        }
    }
    let path = format!("Patient/{id}/$everything");
    let mut applied: Vec<(String, String)> =
        q.iter().filter(|(k, _)| k != "_cursor").cloned().collect();
    if !applied.iter().any(|(k, _)| k == "_count") {
        applied.push(("_count".into(), count.to_string()));
    }
    let this = q
        .iter()
        .find(|(k, _)| k == "_cursor")
        .map(|(_, v)| v.clone());
    let mut links = vec![("self", page_link(&base, &path, &applied, this))];
    if let Some((ti, c)) = next {
        let token = format!("{ti}.{}", c.map(|c| c.encode()).unwrap_or_default());
        links.push(("next", page_link(&base, &path, &applied, Some(token))));
    }
    let mut w = BundleWriter::new("searchset", None, &links);
    for v in &matches {
        w.search_entry(v, &base, "match", None);
    }
    Ok(json_response(axum::http::StatusCode::OK, w.finish()))
}

/// `<type position>.<that type's search cursor, or nothing>`.
fn decode_cursor(v: &str) -> Result<(usize, Option<Cursor>), FhirError> {
    let bad = || FhirError::bad_request("the _cursor of $everything is not one this server gave");
    let (ti, c) = v.split_once('.').ok_or_else(bad)?;
    let ti = ti.parse().map_err(|_| bad())?;
    let c = if c.is_empty() {
        None
    } else {
        Some(Cursor::decode(c).map_err(|_| bad())?)
    };
    Ok((ti, c))
}
