//! Interactions on a resource type: create (plain and conditional), and conditional update,
//! delete and patch.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hds_fhir_store::{self as store, DeleteOutcome, Method, VersionCheck};
use serde_json::Value;

use super::conditional::{criteria, criteria_from_pairs, matches};
use super::instance::{
    delete_response, parse_patch, patch_in, update_response, version_check, write_update,
};
use super::{check_type, keeps_history, set_id, valid_id, validate};
use crate::AppState;
use crate::error::FhirError;
use crate::http::{
    BaseUrl, FhirBody, Prefer, QueryPairs, parse_resource, require_json_body, version_response,
};
use crate::smart::{self, Access};
use hds_auth::smart::Interaction;

/// The most resources one conditional delete removes when `_count` asks for several.
const MAX_CONDITIONAL_DELETE: u32 = 1000;

#[allow(clippy::too_many_arguments)]
pub async fn create(
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
    require_json_body(&headers)?;
    let mut resource = parse_resource(&body)?;
    // The server assigns the id of a created resource; one sent by the client is ignored, so it
    // is replaced before validation judges it.
    let id = uuid::Uuid::new_v4().to_string();
    set_id(&mut resource, &id);
    validate(&resource, &rt, StatusCode::BAD_REQUEST)?;
    let reg = s.registry();
    let grants = access.grants(&reg, &rt, Interaction::Create)?;
    let after = grants.admit_body(&reg, &resource, &format!("create this {rt}"))?;
    let if_none_exist = match headers.get("if-none-exist") {
        Some(v) => {
            let (mut query, key) = criteria(
                &reg,
                &rt,
                v.to_str()
                    .map_err(|_| FhirError::bad_request("If-None-Exist is not valid text"))?,
            )?;
            // The match is a search: only among what the caller may search.
            access.confine_search(&reg, &rt, &mut query)?;
            Some((query, key))
        }
        None => None,
    };
    let index = hds_fhir_search::extract_with(&reg, &resource);
    let mut conn = s.store.connection().await?;
    let v = match &if_none_exist {
        // A plain create is one statement in autocommit: one round trip, one commit.
        None if after.is_none() => store::create(&conn, &rt, &id, resource, &index).await?,
        // A scope's query is checked on the index rows of the written resource, in its
        // transaction.
        None => {
            let tx = conn.transaction().await?;
            let v = store::create(&tx, &rt, &id, resource, &index).await?;
            after.check_current(&tx, &rt, &id).await?;
            tx.commit().await?;
            v
        }
        Some((query, key)) => {
            let tx = conn.transaction().await?;
            let found = matches(&tx, &rt, query, key, 2).await?;
            match found.as_slice() {
                [] => {}
                [existing_id] => {
                    let existing = store::read(&tx, &rt, existing_id)
                        .await?
                        .ok_or_else(|| FhirError::not_found(existing_id.clone()))?;
                    tx.commit().await?;
                    return Ok(version_response(
                        StatusCode::OK,
                        &existing,
                        &base,
                        prefer.return_,
                        true,
                        &q,
                    ));
                }
                _ => {
                    return Err(FhirError::precondition_failed(format!(
                        "If-None-Exist '{key}' matches more than one {rt}"
                    )));
                }
            }
            let v = store::create(&tx, &rt, &id, resource, &index).await?;
            after.check_current(&tx, &rt, &id).await?;
            tx.commit().await?;
            v
        }
    };
    metrics::counter!("hds_fhir_resources_created_total", "type" => rt).increment(1);
    Ok(version_response(
        StatusCode::CREATED,
        &v,
        &base,
        prefer.return_,
        true,
        &q,
    ))
}

#[allow(clippy::too_many_arguments)]
pub async fn conditional_update(
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
    require_json_body(&headers)?;
    let reg = s.registry();
    let (mut query, key) = criteria_from_pairs(&reg, &rt, &q)?;
    access.confine_search(&reg, &rt, &mut query)?;
    let grants = access.grants(&reg, &rt, Interaction::Update)?;
    let mut resource = parse_resource(&body)?;
    validate(&resource, &rt, StatusCode::BAD_REQUEST)?;
    let check = version_check(&s, &rt, &headers)?;
    let body_id = resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let found = matches(&tx, &rt, &query, &key, 2).await?;
    let id = match (found.as_slice(), body_id) {
        ([], None) => uuid::Uuid::new_v4().to_string(),
        ([], Some(id)) => {
            if !valid_id(&id) {
                return Err(FhirError::bad_request(format!(
                    "'{id}' is not a valid FHIR id"
                )));
            }
            let existing = store::read(&tx, &rt, &id).await?;
            if existing.is_some_and(|v| !v.is_deleted()) {
                return Err(FhirError::bad_request(format!(
                    "{rt}/{id} exists but does not match '{key}'; refusing to overwrite it"
                )));
            }
            id
        }
        ([m], None) => m.clone(),
        ([m], Some(id)) if *m == id => id,
        ([m], Some(id)) => {
            return Err(FhirError::bad_request(format!(
                "the criteria match {rt}/{m}, but the body's id is '{id}'"
            )));
        }
        _ => {
            return Err(FhirError::precondition_failed(format!(
                "the criteria '{key}' match more than one {rt}"
            )));
        }
    };
    set_id(&mut resource, &id);
    let after = grants.admit_body(&reg, &resource, &format!("write {rt}/{id} this way"))?;
    smart::admit_existing(&tx, &reg, &grants, &rt, &id, "update").await?;
    let outcome = write_update(&s, &tx, &rt, &id, resource, check, Method::Put).await?;
    after.check_current(&tx, &rt, &id).await?;
    tx.commit().await?;
    update_response(outcome, &rt, &id, &base, prefer.return_, &q)
}

/// Deletes the one match (Azure's default). With `_count=N` it deletes up to N matches, as
/// Azure's conditional delete does; without it several matches are a 412.
pub async fn conditional_delete(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    let reg = s.registry();
    let (mut query, key) = criteria_from_pairs(&reg, &rt, &q)?;
    access.confine_search(&reg, &rt, &mut query)?;
    let grants = access.grants(&reg, &rt, Interaction::Delete)?;
    let many = query.count.map(|c| c.clamp(1, MAX_CONDITIONAL_DELETE));
    let keep = keeps_history(s.config.resource_version_policy.for_type(&rt));
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let limit = many.map_or(2, i64::from);
    let found = matches(&tx, &rt, &query, &key, limit).await?;
    if many.is_none() && found.len() > 1 {
        return Err(FhirError::precondition_failed(format!(
            "the criteria '{key}' match more than one {rt}; add _count=N to delete several"
        )));
    }
    let mut last = None;
    for id in &found {
        smart::admit_existing(&tx, &reg, &grants, &rt, id, "delete").await?;
        if let DeleteOutcome::Deleted(v) =
            store::delete(&tx, &rt, id, VersionCheck::Any, keep).await?
        {
            last = Some(v.version_id);
        }
    }
    tx.commit().await?;
    let version = if found.len() == 1 { last } else { None };
    Ok(delete_response(
        prefer,
        version,
        format!("{} {rt} deleted", found.len()),
    ))
}

#[allow(clippy::too_many_arguments)]
pub async fn conditional_patch(
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
    let reg = s.registry();
    let (mut query, key) = criteria_from_pairs(&reg, &rt, &q)?;
    access.confine_search(&reg, &rt, &mut query)?;
    let grants = access.grants(&reg, &rt, Interaction::Update)?;
    let document = parse_patch(&headers, &body)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let found = matches(&tx, &rt, &query, &key, 2).await?;
    let id = match found.as_slice() {
        [] => return Err(FhirError::not_found(format!("no {rt} matches '{key}'"))),
        [id] => id.clone(),
        _ => {
            return Err(FhirError::precondition_failed(format!(
                "the criteria '{key}' match more than one {rt}"
            )));
        }
    };
    let response = patch_in(
        &s, &tx, &rt, &id, &document, &headers, &base, prefer, &q, &grants,
    )
    .await?;
    tx.commit().await?;
    Ok(response)
}
