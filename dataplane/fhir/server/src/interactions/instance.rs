//! Interactions on one resource: read, vread, update, patch, delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::GenericClient;
use hds_common::config::VersionPolicy;
use hds_common::db::TypedQuery;
use hds_fhir_store::{self as store, DeleteOutcome, Method, VersionCheck, WriteOutcome};
use serde_json::Value;

use super::{check_id, check_type, keeps_history, validate};
use crate::AppState;
use crate::error::FhirError;
use crate::http::{
    BaseUrl, FhirBody, Prefer, QueryPairs, ReturnPref, content_type, etag, http_date, if_match,
    parse_etag, parse_resource, require_json_body, version_response,
};
use crate::smart::{self, Access};
use hds_auth::smart::Interaction;

pub async fn read(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    headers: HeaderMap,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let conn = s.store.connection().await?;
    read_in(&s, &conn, &access, &rt, &id, &headers, &base, &q).await
}

/// A read on `client` (a pooled connection, or a transaction Bundle's transaction).
#[allow(clippy::too_many_arguments)]
pub async fn read_in(
    s: &AppState,
    client: &impl TypedQuery,
    access: &Access,
    rt: &str,
    id: &str,
    headers: &HeaderMap,
    base: &str,
    q: &[(String, String)],
) -> Result<Response, FhirError> {
    let grants = access.grants(&s.registry(), rt, Interaction::Read)?;
    let unknown = || FhirError::not_found(format!("{rt}/{id} is not known"));
    let v = store::read(client, rt, id).await?.ok_or_else(unknown)?;
    // Outside the caller's grants, a resource is answered as one that does not exist (a deleted
    // one too: its compartment cannot be judged without its index rows).
    if !grants.is_open()
        && (v.is_deleted() || !smart::current_visible(client, rt, id, &grants).await?)
    {
        return Err(unknown());
    }
    if v.is_deleted() {
        return Err(deleted(rt, id, v.version_id));
    }
    if not_modified(headers, v.version_id, &v.last_updated) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, etag(v.version_id));
        r.headers_mut()
            .insert(header::LAST_MODIFIED, http_date(&v.last_updated));
        return Ok(r);
    }
    Ok(version_response(
        StatusCode::OK,
        &v,
        base,
        ReturnPref::Representation,
        false,
        q,
    ))
}

pub async fn vread(
    State(s): State<AppState>,
    Path((rt, id, vid)): Path<(String, String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let conn = s.store.connection().await?;
    vread_in(&s, &conn, &access, &rt, &id, &vid, &base, &q).await
}

/// A vread on `client` (a pooled connection, or a transaction Bundle's transaction).
#[allow(clippy::too_many_arguments)]
pub async fn vread_in(
    s: &AppState,
    conn: &impl TypedQuery,
    access: &Access,
    rt: &str,
    id: &str,
    vid: &str,
    base: &str,
    q: &[(String, String)],
) -> Result<Response, FhirError> {
    let version_id: i64 = vid
        .parse()
        .map_err(|_| FhirError::not_found(format!("'{vid}' is not a version of {rt}/{id}")))?;
    let reg = s.registry();
    let grants = access.grants(&reg, rt, Interaction::Read)?;
    let missing = || FhirError::not_found(format!("{rt}/{id} has no version {version_id}"));
    // An older version is judged on its own body; the current one was judged by SQL.
    let mut judge_body = false;
    if !grants.is_open() {
        // The resource as it is now must be the caller's, and so must the version asked for.
        if !smart::current_visible(conn, rt, id, &grants).await? {
            return Err(missing());
        }
        let current = store::read(conn, rt, id).await?.ok_or_else(missing)?;
        if current.version_id != version_id && !grants.has_unconstrained() {
            return Err(smart::forbidden(format!(
                "earlier versions of {rt}/{id} cannot be checked against the query of the token's scopes, so only the current one ({}) may be read",
                current.version_id
            )));
        }
        judge_body = current.version_id != version_id;
    }
    let v = store::vread(conn, rt, id, version_id)
        .await?
        .ok_or_else(missing)?;
    if judge_body && let Some(body) = &v.body {
        let body: Value = serde_json::from_str(body)
            .map_err(|e| FhirError::from(store::StoreError::Corrupt(format!("{rt}/{id}"), e)))?;
        if !grants.admits_version(&reg, &body) {
            return Err(missing());
        }
    }
    if v.is_deleted() {
        return Err(deleted(rt, id, version_id));
    }
    Ok(version_response(
        StatusCode::OK,
        &v,
        base,
        ReturnPref::Representation,
        false,
        q,
    ))
}

#[allow(clippy::too_many_arguments)]
pub async fn update(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    require_json_body(&headers)?;
    let resource = parse_resource(&body)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let response = update_in(
        &s, &tx, &access, &rt, &id, resource, &headers, &base, prefer, &q,
    )
    .await?;
    tx.commit().await?;
    Ok(response)
}

/// An update inside `tx`.
#[allow(clippy::too_many_arguments)]
pub async fn update_in(
    s: &AppState,
    tx: &store::Transaction<'_>,
    access: &Access,
    rt: &str,
    id: &str,
    resource: Value,
    headers: &HeaderMap,
    base: &str,
    prefer: Prefer,
    q: &[(String, String)],
) -> Result<Response, FhirError> {
    match resource.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(FhirError::bad_request(format!(
                "the resource id '{body_id}' does not match the id '{id}' in the URL"
            )));
        }
        None => {
            return Err(FhirError::bad_request(
                "an update must carry the resource's id in its body",
            ));
        }
    }
    validate(&resource, rt, StatusCode::BAD_REQUEST)?;
    let check = version_check(s, rt, headers)?;
    let reg = s.registry();
    let grants = access.grants(&reg, rt, Interaction::Update)?;
    let after = grants.admit_body(&reg, &resource, &format!("write {rt}/{id} this way"))?;
    smart::admit_existing(tx, &reg, &grants, rt, id, "update").await?;
    let outcome = write_update(s, tx, rt, id, resource, check, Method::Put).await?;
    after.check_current(tx, rt, id).await?;
    update_response(outcome, rt, id, base, prefer.return_, q)
}

/// The version check an update asks for: If-Match, `If-None-Match: *` (create only), or the
/// versioned-update policy's demand for If-Match.
pub fn version_check(
    s: &AppState,
    rt: &str,
    headers: &HeaderMap,
) -> Result<VersionCheck, FhirError> {
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"*")
    {
        return Ok(VersionCheck::Absent);
    }
    Ok(match if_match(headers)? {
        Some(v) => VersionCheck::Expect(v),
        None if s.config.resource_version_policy.for_type(rt) == VersionPolicy::VersionedUpdate => {
            VersionCheck::RequiredIfExists
        }
        None => VersionCheck::Any,
    })
}

pub async fn write_update(
    s: &AppState,
    tx: &store::Transaction<'_>,
    rt: &str,
    id: &str,
    resource: Value,
    check: VersionCheck,
    method: Method,
) -> Result<WriteOutcome, FhirError> {
    crate::profiles::enforce(s, tx, &resource).await?;
    let index = hds_fhir_search::extract_with(&s.registry(), &resource);
    let keep = keeps_history(s.config.resource_version_policy.for_type(rt));
    Ok(store::update(tx, rt, id, resource, &index, check, keep, method).await?)
}

pub fn update_response(
    outcome: WriteOutcome,
    rt: &str,
    id: &str,
    base: &str,
    prefer: ReturnPref,
    q: &[(String, String)],
) -> Result<Response, FhirError> {
    match outcome {
        WriteOutcome::Created(v) => Ok(version_response(
            StatusCode::CREATED,
            &v,
            base,
            prefer,
            true,
            q,
        )),
        WriteOutcome::Updated(v) => Ok(version_response(StatusCode::OK, &v, base, prefer, true, q)),
        WriteOutcome::VersionConflict { current } => Err(version_conflict(rt, id, current)),
        WriteOutcome::PreconditionRequired => Err(FhirError::precondition_failed(format!(
            "{rt} uses the versioned-update policy: an update of {rt}/{id} must send If-Match with its current version"
        ))),
    }
}

pub fn version_conflict(rt: &str, id: &str, current: Option<i64>) -> FhirError {
    match current {
        Some(c) => FhirError::precondition_failed(format!(
            "If-Match does not name the current version of {rt}/{id}, which is W/\"{c}\""
        ))
        .header(header::ETAG, etag(c)),
        None => FhirError::precondition_failed(format!(
            "If-Match was given but {rt}/{id} does not exist"
        )),
    }
}

pub async fn delete(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    prefer: Prefer,
    headers: HeaderMap,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let response = delete_in(&s, &tx, &access, &rt, &id, &headers, prefer).await?;
    tx.commit().await?;
    Ok(response)
}

/// A delete inside `tx`.
pub async fn delete_in(
    s: &AppState,
    tx: &store::Transaction<'_>,
    access: &Access,
    rt: &str,
    id: &str,
    headers: &HeaderMap,
    prefer: Prefer,
) -> Result<Response, FhirError> {
    let check = if_match(headers)?.map_or(VersionCheck::Any, VersionCheck::Expect);
    let keep = keeps_history(s.config.resource_version_policy.for_type(rt));
    let reg = s.registry();
    let grants = access.grants(&reg, rt, Interaction::Delete)?;
    smart::admit_existing(tx, &reg, &grants, rt, id, "delete").await?;
    let outcome = store::delete(tx, rt, id, check, keep).await?;
    match outcome {
        DeleteOutcome::VersionConflict { current } => Err(version_conflict(rt, id, current)),
        DeleteOutcome::Deleted(v) => Ok(delete_response(
            prefer,
            Some(v.version_id),
            format!("{rt}/{id} deleted"),
        )),
        DeleteOutcome::NotFound => Ok(delete_response(
            prefer,
            None,
            format!("{rt}/{id} did not exist or was already deleted"),
        )),
    }
}

/// Deleting is idempotent: 204, or 200 with an OperationOutcome when one is asked for.
pub fn delete_response(prefer: Prefer, version: Option<i64>, message: String) -> Response {
    let mut r = if prefer.return_ == ReturnPref::OperationOutcome {
        let oo = crate::error::operation_outcome(&[crate::error::OutcomeIssue {
            severity: "information",
            code: "informational",
            diagnostics: message,
            expression: None,
        }]);
        crate::http::json_response(StatusCode::OK, oo.to_string())
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    if let Some(v) = version {
        r.headers_mut().insert(header::ETAG, etag(v));
    }
    r
}

#[allow(clippy::too_many_arguments)]
pub async fn patch(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let document = parse_patch(&headers, &body)?;
    let grants = access.grants(&s.registry(), &rt, Interaction::Update)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let response = patch_in(
        &s, &tx, &rt, &id, &document, &headers, &base, prefer, &q, &grants,
    )
    .await?;
    tx.commit().await?;
    Ok(response)
}

pub enum PatchDocument {
    Json(Value),
    FhirPath(Value),
}

/// The patch format follows the Content-Type: JSON Patch, or a FHIRPath Patch Parameters body.
pub fn parse_patch(headers: &HeaderMap, body: &[u8]) -> Result<PatchDocument, FhirError> {
    let t = content_type(headers).unwrap_or_default();
    match t.as_str() {
        "application/json-patch+json" => {
            let v: Value = serde_json::from_slice(body).map_err(|e| {
                FhirError::bad_request(format!("the JSON Patch is not valid JSON: {e}"))
            })?;
            Ok(PatchDocument::Json(v))
        }
        "application/fhir+json" | "application/json" | "application/json+fhir" => {
            let v = parse_resource(body)?;
            if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
                return Err(FhirError::bad_request(
                    "a FHIRPath Patch must be a Parameters resource (or send application/json-patch+json)",
                ));
            }
            Ok(PatchDocument::FhirPath(v))
        }
        "" => Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "PATCH needs a Content-Type: application/json-patch+json or application/fhir+json",
        )),
        other => Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            format!(
                "PATCH with Content-Type '{other}' is not supported: use application/json-patch+json or application/fhir+json"
            ),
        )),
    }
}

/// Applies a patch to the current version and stores the result, inside `tx`.
#[allow(clippy::too_many_arguments)]
pub async fn patch_in(
    s: &AppState,
    tx: &store::Transaction<'_>,
    rt: &str,
    id: &str,
    document: &PatchDocument,
    headers: &HeaderMap,
    base: &str,
    prefer: Prefer,
    q: &[(String, String)],
    grants: &smart::Grants,
) -> Result<Response, FhirError> {
    let reg = s.registry();
    smart::admit_existing(tx, &reg, grants, rt, id, "patch").await?;
    let current = store::read(tx, rt, id)
        .await?
        .ok_or_else(|| FhirError::not_found(format!("{rt}/{id} is not known")))?;
    let Some(body) = &current.body else {
        return Err(deleted(rt, id, current.version_id));
    };
    // The patch applies to the version read here; without If-Match the write must still land on
    // exactly that version, or a concurrent update would be silently overwritten.
    let check = VersionCheck::Expect(if_match(headers)?.unwrap_or(current.version_id));
    let mut resource: Value = serde_json::from_str(body)
        .map_err(|e| FhirError::from(store::StoreError::Corrupt(format!("{rt}/{id}"), e)))?;
    match document {
        PatchDocument::Json(p) => hds_fhir_patch::apply_json_patch(&mut resource, p)?,
        PatchDocument::FhirPath(p) => hds_fhir_patch::apply_fhirpath_patch_with(
            &mut resource,
            p,
            &super::patch_shape::R4ElementInfo,
        )?,
    }
    if resource.get("resourceType").and_then(Value::as_str) != Some(rt)
        || resource.get("id").and_then(Value::as_str) != Some(id)
    {
        return Err(FhirError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            "a patch may not change the resource's resourceType or id",
        ));
    }
    validate(&resource, rt, StatusCode::UNPROCESSABLE_ENTITY)?;
    let after = grants.admit_body(&reg, &resource, &format!("patch {rt}/{id} this way"))?;
    let outcome = write_update(s, tx, rt, id, resource, check, Method::Patch).await?;
    after.check_current(tx, rt, id).await?;
    update_response(outcome, rt, id, base, prefer.return_, q)
}

pub fn deleted(rt: &str, id: &str, version_id: i64) -> FhirError {
    FhirError::gone(format!("{rt}/{id} was deleted (version {version_id})"))
        .header(header::ETAG, etag(version_id))
}

/// Conditional read: If-None-Match on the ETag, or If-Modified-Since on lastUpdated.
fn not_modified(
    headers: &HeaderMap,
    version_id: i64,
    last_updated: &chrono::DateTime<chrono::Utc>,
) -> bool {
    if let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return v
            .split(',')
            .any(|t| t.trim() == "*" || parse_etag(t) == Some(version_id));
    }
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let since: chrono::DateTime<chrono::Utc> = since.into();
        // HTTP dates have whole seconds.
        return last_updated.timestamp() <= since.timestamp();
    }
    false
}

/// Azure's `$purge-history`: every earlier version of one resource goes; the current one (a
/// deletion marker too) stays. 204, or 404 for a resource that never existed.
pub async fn purge_history(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let mut conn = s.store.connection().await?;
    let tx = conn.transaction().await?;
    let purged = store::purge_history(&tx, &rt, &id)
        .await?
        .ok_or_else(|| FhirError::not_found(format!("{rt}/{id} is not known")))?;
    tx.commit().await?;
    tracing::info!(resource = %format!("{rt}/{id}"), purged, "history purged");
    Ok(StatusCode::NO_CONTENT.into_response())
}
