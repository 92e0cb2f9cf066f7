//! Azure's `$bulk-delete`: `DELETE [base]/$bulk-delete` and `DELETE [base]/[type]/$bulk-delete`
//! with `Prefer: respond-async`, search parameters choosing what goes, `_hardDelete` and
//! `_purgeHistory`; status at `[base]/_operations/bulk-delete/[id]` (202, then a Parameters
//! with `ResourceDeletedCount` per type), DELETE there to cancel. The jobs run in
//! `hds_fhir_bulk::bulk_delete`.

use axum::Extension;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hds_auth::{DataAction, Principal};
use hds_fhir_bulk::bulk_delete::{self, BulkDeleteJob, BulkDeleteRequest, Mode};
use serde_json::{Value, json};

use super::{async_job, check_type};
use crate::AppState;
use crate::error::FhirError;
use crate::http::{BaseUrl, QueryPairs, json_response, respond_async};

/// This module's jobs, in URLs and messages.
const OPERATION: async_job::Operation = async_job::Operation {
    path: "bulk-delete",
    name: "bulk delete",
};

pub async fn system(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    OriginalUri(uri): OriginalUri,
    QueryPairs(q): QueryPairs,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
) -> Result<Response, FhirError> {
    kick_off(&s, &base, &uri, q, &headers, principal, None).await
}

pub async fn type_level(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    OriginalUri(uri): OriginalUri,
    QueryPairs(q): QueryPairs,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    kick_off(&s, &base, &uri, q, &headers, principal, Some(rt)).await
}

async fn kick_off(
    s: &AppState,
    base: &str,
    uri: &axum::http::Uri,
    q: Vec<(String, String)>,
    headers: &HeaderMap,
    principal: Option<Extension<Principal>>,
    rt: Option<String>,
) -> Result<Response, FhirError> {
    let deleter = s.bulk_deleter();
    let mut hard = false;
    let mut purge = false;
    let mut search = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "_hardDelete" => hard = flag(&k, &v)?,
            "_purgeHistory" => purge = flag(&k, &v)?,
            "_format" | "_pretty" => {}
            _ => search.push((k, v)),
        }
    }
    let mode = match (hard, purge) {
        (true, _) => Mode::Hard,
        (false, true) => Mode::PurgeHistory,
        (false, false) => Mode::Soft,
    };
    // Like Azure: removing versions for good needs the hardDelete action, not just delete.
    if mode != Mode::Soft
        && let Some(Extension(p)) = &principal
        && !crate::authn::grants(p, DataAction::HardDelete)
    {
        return Err(FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "_hardDelete and _purgeHistory need the data action 'hardDelete' (FHIR Data Contributor)",
        ));
    }
    if !respond_async(headers) {
        return Err(FhirError::bad_request(
            "$bulk-delete runs asynchronously: send Prefer: respond-async",
        ));
    }
    let reg = s.registry();
    let (types, parsed) = match &rt {
        Some(rt) => (
            Some(vec![rt.clone()]),
            hds_fhir_search::parse_with(&reg, rt, &search)?,
        ),
        None => {
            let (types, rest) = hds_fhir_search::split_types(&search)?;
            let parsed = hds_fhir_search::parse_system(&reg, &types, &rest)?;
            let named = search.iter().any(|(k, _)| k == "_type");
            search = rest;
            (named.then_some(types), parsed)
        }
    };
    // Strict, as conditional deletes are: an ignored parameter would delete more than asked.
    if let Some((name, why)) = parsed.unknown.first() {
        return Err(FhirError::bad_request(format!(
            "'{name}' cannot be applied ({why}); $bulk-delete does not ignore parameters"
        )));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&search)
        .finish();
    let req = BulkDeleteRequest {
        request: s.request_url(base, uri),
        types,
        query,
        mode,
    };
    let conn = s.store.connection().await?;
    let job = bulk_delete::start(&conn, &req, &deleter.wake)
        .await
        .map_err(|e| OPERATION.failure(e))?;
    Ok(async_job::accepted(
        format!("bulk delete job {} queued", job.id),
        Some(&OPERATION.status_url(base, job.id)),
    ))
}

fn flag(name: &str, v: &str) -> Result<bool, FhirError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(FhirError::bad_request(format!(
            "{name} takes true or false, not '{v}'"
        ))),
    }
}

/// 202 with X-Progress while the job runs; Azure's Parameters of deleted counts once it has
/// completed or was cancelled.
pub async fn status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let id = OPERATION.job_id(&id)?;
    let conn = s.store.connection().await?;
    let job = bulk_delete::get(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(|| FhirError::not_found(format!("no bulk delete job '{id}'")))?;
    match job.status.as_str() {
        "queued" | "running" => Ok(async_job::in_progress(&format!(
            "{} resources deleted ({})",
            job.deleted.iter().map(|(_, n)| n).sum::<i64>(),
            job.status
        ))),
        "completed" | "cancelled" => Ok(json_response(StatusCode::OK, counts(&job).to_string())),
        other => Err(OPERATION.ended(id, other, job.message.as_deref())),
    }
}

fn counts(job: &BulkDeleteJob) -> Value {
    let part: Vec<Value> = job
        .deleted
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| json!({"name": t, "valueDecimal": n}))
        .collect();
    let mut parameter = Vec::new();
    if !part.is_empty() {
        parameter.push(json!({"name": "ResourceDeletedCount", "part": part}));
    }
    if job.status == "cancelled" {
        parameter.push(json!({"name": "Issues", "valueString": "the job was cancelled; the counts are what it deleted before"}));
    }
    // FHIR JSON has no empty arrays: a job that deleted nothing answers a bare Parameters.
    match parameter.is_empty() {
        true => json!({"resourceType": "Parameters"}),
        false => json!({"resourceType": "Parameters", "parameter": parameter}),
    }
}

pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let id = OPERATION.job_id(&id)?;
    let conn = s.store.connection().await?;
    bulk_delete::cancel(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(|| FhirError::not_found(format!("no bulk delete job '{id}' to cancel")))?;
    Ok(async_job::accepted(
        format!("bulk delete job {id} cancelled; what it deleted stays deleted"),
        None,
    ))
}
