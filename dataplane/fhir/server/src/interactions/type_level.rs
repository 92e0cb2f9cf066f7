//! Interactions on a resource type: create (plain and conditional), and conditional update,
//! delete and patch.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hds_fhir_search::Query;
use hds_fhir_store::{self as store, DeleteOutcome, IndexEntries, Method, VersionCheck};
use serde_json::Value;

use super::conditional::{criteria, criteria_from_pairs, matches};
use super::instance::{
    PatchDocument, delete_response, parse_patch, patch_in, update_response, version_check,
    write_update,
};
use super::{check_type, keeps_history, set_id, valid_id, validate};
use crate::AppState;
use crate::error::FhirError;
use crate::http::{
    BaseUrl, FhirBody, Prefer, QueryPairs, parse_resource, require_json_body, version_response,
};
use crate::smart::{self, Access, Pending};
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
    let resource = parse_resource(&body)?;
    let if_none_exist = match headers.get("if-none-exist") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| FhirError::bad_request("If-None-Exist is not valid text"))?,
        ),
        None => None,
    };
    // The server assigns the id of a created resource; one sent by the client is ignored.
    let id = hds_fhir_store::new_id();
    let new = NewResource::prepare(&s, &access, &rt, &id, resource, if_none_exist)?;
    let mut conn = s.store.connection().await?;
    if new.if_none_exist.is_none() && new.after.is_none() {
        if let Some(e) = &new.profiles {
            e.check(&conn, &new.resource).await?;
        }
        // A plain create is one statement in autocommit: one round trip, one commit.
        let v = store::create(&conn, &rt, &id, new.resource, &new.index).await?;
        metrics::counter!("hds_fhir_resources_created_total", "type" => rt).increment(1);
        return Ok(version_response(
            StatusCode::CREATED,
            &v,
            &base,
            prefer.return_,
            true,
            &q,
        ));
    }
    let tx = conn.transaction().await?;
    let response = new.create_in(&tx, &base, prefer, &q).await?;
    tx.commit().await?;
    Ok(response)
}

/// A resource about to be created: checked, validated, indexed, under the id it will have.
pub struct NewResource {
    pub rt: String,
    pub id: String,
    pub resource: Value,
    pub index: IndexEntries,
    /// What the caller's scopes still demand of the written resource.
    pub after: Pending,
    /// If-None-Exist (or a Bundle entry's ifNoneExist), parsed, with its lock key.
    pub if_none_exist: Option<(Query, String)>,
    /// The profiles of its `meta.profile` to enforce (`validation.enforceProfiles`).
    pub profiles: Option<crate::profiles::Enforcement>,
}

impl NewResource {
    pub fn prepare(
        s: &AppState,
        access: &Access,
        rt: &str,
        id: &str,
        mut resource: Value,
        if_none_exist: Option<&str>,
    ) -> Result<Self, FhirError> {
        // Replaced before validation judges it: the id is the server's.
        set_id(&mut resource, id);
        validate(&resource, rt, StatusCode::BAD_REQUEST)?;
        let reg = s.registry();
        let grants = access.grants(&reg, rt, Interaction::Create)?;
        let after = grants.admit_body(&reg, &resource, &format!("create this {rt}"))?;
        let if_none_exist = match if_none_exist {
            Some(raw) => {
                let (mut query, key) = criteria(&reg, rt, raw)?;
                // The match is a search: only among what the caller may search.
                access.confine_search(&reg, rt, &mut query)?;
                Some((query, key))
            }
            None => None,
        };
        let index = hds_fhir_search::extract_with(&reg, &resource);
        Ok(Self {
            rt: rt.to_owned(),
            id: id.to_owned(),
            profiles: crate::profiles::Enforcement::of(s, &resource),
            resource,
            index,
            after,
            if_none_exist,
        })
    }

    /// The create inside `tx`: 201, or 200 with the one resource If-None-Exist matches.
    pub async fn create_in(
        self,
        tx: &store::Transaction<'_>,
        base: &str,
        prefer: Prefer,
        q: &[(String, String)],
    ) -> Result<Response, FhirError> {
        let rt = &self.rt;
        if let Some((query, key)) = &self.if_none_exist
            && let Some(existing) = existing_match(tx, rt, query, key).await?
        {
            return Ok(version_response(
                StatusCode::OK,
                &existing,
                base,
                prefer.return_,
                true,
                q,
            ));
        }
        if let Some(e) = &self.profiles {
            e.check(tx, &self.resource).await?;
        }
        let v = store::create(tx, rt, &self.id, self.resource, &self.index).await?;
        self.after.check_current(tx, rt, &self.id).await?;
        metrics::counter!("hds_fhir_resources_created_total", "type" => rt.clone()).increment(1);
        Ok(version_response(
            StatusCode::CREATED,
            &v,
            base,
            prefer.return_,
            true,
            q,
        ))
    }
}

/// The one current resource If-None-Exist matches, or none; several is a 412.
pub async fn existing_match(
    tx: &store::Transaction<'_>,
    rt: &str,
    query: &Query,
    key: &str,
) -> Result<Option<store::StoredVersion>, FhirError> {
    let found = matches(tx, rt, query, key, 2).await?;
    match found.as_slice() {
        [] => Ok(None),
        [existing_id] => {
            Ok(Some(store::read(tx, rt, existing_id).await?.ok_or_else(
                || FhirError::not_found(existing_id.clone()),
            )?))
        }
        _ => Err(FhirError::precondition_failed(format!(
            "If-None-Exist '{key}' matches more than one {rt}"
        ))),
    }
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
    let resource = parse_resource(&body)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let response =
        conditional_update_in(&s, &tx, &access, &rt, &q, resource, &headers, &base, prefer).await?;
    tx.commit().await?;
    Ok(response)
}

/// A conditional update inside `tx`; `q` holds the criteria.
#[allow(clippy::too_many_arguments)]
pub async fn conditional_update_in(
    s: &AppState,
    tx: &store::Transaction<'_>,
    access: &Access,
    rt: &str,
    q: &[(String, String)],
    mut resource: Value,
    headers: &HeaderMap,
    base: &str,
    prefer: Prefer,
) -> Result<Response, FhirError> {
    validate(&resource, rt, StatusCode::BAD_REQUEST)?;
    let id = conditional_update_target(s, tx, access, rt, q, &resource).await?;
    let reg = s.registry();
    let grants = access.grants(&reg, rt, Interaction::Update)?;
    let check = version_check(s, rt, headers)?;
    set_id(&mut resource, &id);
    let after = grants.admit_body(&reg, &resource, &format!("write {rt}/{id} this way"))?;
    smart::admit_existing(tx, &reg, &grants, rt, &id, "update").await?;
    let outcome = write_update(s, tx, rt, &id, resource, check, Method::Put).await?;
    after.check_current(tx, rt, &id).await?;
    update_response(outcome, rt, &id, base, prefer.return_, q)
}

/// The id a conditional update writes: the one match, the body's id when nothing matches and
/// that id is free, or a new one.
pub async fn conditional_update_target(
    s: &AppState,
    tx: &store::Transaction<'_>,
    access: &Access,
    rt: &str,
    q: &[(String, String)],
    resource: &Value,
) -> Result<String, FhirError> {
    let reg = s.registry();
    let (mut query, key) = criteria_from_pairs(&reg, rt, q)?;
    access.confine_search(&reg, rt, &mut query)?;
    access.grants(&reg, rt, Interaction::Update)?;
    let body_id = resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let found = matches(tx, rt, &query, &key, 2).await?;
    Ok(match (found.as_slice(), body_id) {
        ([], None) => hds_fhir_store::new_id(),
        ([], Some(id)) => {
            if !valid_id(&id) {
                return Err(FhirError::bad_request(format!(
                    "'{id}' is not a valid FHIR id"
                )));
            }
            let existing = store::read(tx, rt, &id).await?;
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
    })
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
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let response = conditional_delete_in(&s, &tx, &access, &rt, &q, prefer).await?;
    tx.commit().await?;
    Ok(response)
}

/// A conditional delete inside `tx`; `q` holds the criteria.
pub async fn conditional_delete_in(
    s: &AppState,
    tx: &store::Transaction<'_>,
    access: &Access,
    rt: &str,
    q: &[(String, String)],
    prefer: Prefer,
) -> Result<Response, FhirError> {
    let reg = s.registry();
    let (mut query, key) = criteria_from_pairs(&reg, rt, q)?;
    access.confine_search(&reg, rt, &mut query)?;
    let grants = access.grants(&reg, rt, Interaction::Delete)?;
    let many = query.count.map(|c| c.clamp(1, MAX_CONDITIONAL_DELETE));
    let keep = keeps_history(s.config.resource_version_policy.for_type(rt));
    let limit = many.map_or(2, i64::from);
    let found = matches(tx, rt, &query, &key, limit).await?;
    if many.is_none() && found.len() > 1 {
        return Err(FhirError::precondition_failed(format!(
            "the criteria '{key}' match more than one {rt}; add _count=N to delete several"
        )));
    }
    let mut last = None;
    for id in &found {
        smart::admit_existing(tx, &reg, &grants, rt, id, "delete").await?;
        if let DeleteOutcome::Deleted(v) =
            store::delete(tx, rt, id, VersionCheck::Any, keep).await?
        {
            last = Some(v.version_id);
        }
    }
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
    let document = parse_patch(&headers, &body)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let response = conditional_patch_in(
        &s, &tx, &access, &rt, &q, &document, &headers, &base, prefer,
    )
    .await?;
    tx.commit().await?;
    Ok(response)
}

/// A conditional patch inside `tx`; `q` holds the criteria.
#[allow(clippy::too_many_arguments)]
pub async fn conditional_patch_in(
    s: &AppState,
    tx: &store::Transaction<'_>,
    access: &Access,
    rt: &str,
    q: &[(String, String)],
    document: &PatchDocument,
    headers: &HeaderMap,
    base: &str,
    prefer: Prefer,
) -> Result<Response, FhirError> {
    let reg = s.registry();
    let (mut query, key) = criteria_from_pairs(&reg, rt, q)?;
    access.confine_search(&reg, rt, &mut query)?;
    let grants = access.grants(&reg, rt, Interaction::Update)?;
    let found = matches(tx, rt, &query, &key, 2).await?;
    let id = match found.as_slice() {
        [] => return Err(FhirError::not_found(format!("no {rt} matches '{key}'"))),
        [id] => id.clone(),
        _ => {
            return Err(FhirError::precondition_failed(format!(
                "the criteria '{key}' match more than one {rt}"
            )));
        }
    };
    patch_in(s, tx, rt, &id, document, headers, base, prefer, q, &grants).await
}
