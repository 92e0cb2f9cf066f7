//! `$export` (Bulk Data Access IG 2.0): kick-off at system, Patient and Group level with
//! `Prefer: respond-async`, status polling at `[base]/_operations/export/[id]` (202 with
//! X-Progress, then the manifest), DELETE to cancel, and the files themselves below the
//! status URL. The jobs run in `hds_fhir_bulk`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hds_fhir_bulk::{ExportRequest, Job, Level, export};
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use super::{async_job, check_type};
use crate::AppState;
use crate::error::FhirError;
use crate::http::{BaseUrl, FhirBody, Prefer, QueryPairs, respond_async};

/// This module's jobs, in URLs and messages.
const OPERATION: async_job::Operation = async_job::Operation {
    path: "export",
    name: "export",
};

const NDJSON_FORMATS: &[&str] = &["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// The file of a job's errors, served from its record. Output files are named `Type-0001.ndjson`,
/// so no output file can have this name.
const ERROR_FILE: &str = "errors.ndjson";

pub async fn system(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    OriginalUri(uri): OriginalUri,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let k = KickOff::new(q, &body)?;
    kick_off(&s, &base, &uri, k, prefer, &headers, Level::System, None).await
}

/// `[base]/Patient/$export`.
#[allow(clippy::too_many_arguments)]
pub async fn patient(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    BaseUrl(base): BaseUrl,
    OriginalUri(uri): OriginalUri,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    if rt != "Patient" {
        return Err(FhirError::not_found(format!(
            "$export is defined on the system, Patient and Group/[id], not on {rt}"
        )));
    }
    let k = KickOff::new(q, &body)?;
    kick_off(&s, &base, &uri, k, prefer, &headers, Level::Patient, None).await
}

/// `[base]/Group/[id]/$export`: the Group's Patient members, as listed when it is kicked off.
#[allow(clippy::too_many_arguments)]
pub async fn group(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    OriginalUri(uri): OriginalUri,
    QueryPairs(q): QueryPairs,
    prefer: Prefer,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    if rt != "Group" {
        return Err(FhirError::not_found(format!(
            "$export on an instance is defined for Group/[id], not for {rt}"
        )));
    }
    super::check_id(&id)?;
    let k = KickOff::new(q, &body)?;
    let conn = s.store.connection().await?;
    let group = hds_fhir_store::read(&conn, "Group", &id)
        .await?
        .and_then(|v| v.body)
        .ok_or_else(|| FhirError::not_found(format!("Group/{id} is not known")))?;
    let group: Value = serde_json::from_str(&group).map_err(|e| {
        FhirError::from(hds_fhir_store::StoreError::Corrupt(
            format!("Group/{id}"),
            e,
        ))
    })?;
    let members = group["member"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["entity"]["reference"].as_str())
        .filter_map(|r| r.strip_prefix("Patient/"))
        .map(str::to_owned)
        .collect();
    kick_off(
        &s,
        &base,
        &uri,
        k,
        prefer,
        &headers,
        Level::Group,
        Some((id, members)),
    )
    .await
}

/// A kick-off's parameters: the query's, and those of a POST's Parameters resource.
struct KickOff {
    /// Names with their (primitive) values.
    pairs: Vec<(String, String)>,
    /// `patient` references, which the IG defines for the Parameters body only, each with
    /// where it was given.
    patients: Vec<(String, String)>,
}

impl KickOff {
    fn new(pairs: Vec<(String, String)>, body: &[u8]) -> Result<Self, FhirError> {
        let mut patients = Vec::new();
        let mut pairs = pairs;
        pairs.extend(parameter_pairs(body, "$export", |name, param, at| {
            if name != "patient" {
                return Ok(false);
            }
            let reference = param["valueReference"]["reference"]
                .as_str()
                .ok_or_else(|| {
                    FhirError::bad_request(
                        "'patient' takes a valueReference with a reference, such as Patient/123",
                    )
                    .at_expression(at)
                })?;
            patients.push((reference.to_owned(), at.to_owned()));
            Ok(true)
        })?);
        Ok(KickOff { pairs, patients })
    }
}

/// The parameters of an operation's POST body, a Parameters resource (none for an empty body),
/// as names with their primitive values, like a query's. `special` may take a parameter of
/// another kind first (it says whether it did); any other non-primitive value is refused.
pub(crate) fn parameter_pairs(
    body: &[u8],
    op: &str,
    mut special: impl FnMut(&str, &Value, &str) -> Result<bool, FhirError>,
) -> Result<Vec<(String, String)>, FhirError> {
    let mut pairs = Vec::new();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(pairs);
    }
    let p = crate::http::parse_resource(body)?;
    if p["resourceType"] != "Parameters" {
        return Err(FhirError::bad_request(format!(
            "a POST {op} takes a Parameters resource (or no body)"
        )));
    }
    for (i, param) in p["parameter"].as_array().into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        let name = param["name"]
            .as_str()
            .ok_or_else(|| FhirError::bad_request("a parameter has no name").at_expression(&at))?;
        if special(name, param, &at)? {
            continue;
        }
        let value = param
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, _)| k.starts_with("value"))
            .map(|(_, v)| v);
        let value = match value {
            Some(Value::String(v)) => v.clone(),
            Some(v @ (Value::Bool(_) | Value::Number(_))) => v.to_string(),
            _ => {
                return Err(FhirError::bad_request(format!(
                    "the {op} parameter '{name}' needs a value of a primitive type"
                ))
                .at_expression(at));
            }
        };
        pairs.push((name.to_owned(), value));
    }
    Ok(pairs)
}

/// An OperationOutcome issue for the manifest's error file.
fn export_issue(severity: &str, code: &str, diagnostics: String) -> Value {
    json!({"severity": severity, "code": code, "diagnostics": diagnostics})
}

/// The Patient id a `patient` reference names: `Patient/[id]`, or that under this server's
/// base.
fn patient_id<'a>(base: &str, reference: &'a str) -> Option<&'a str> {
    let local = reference
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(reference);
    local
        .strip_prefix("Patient/")
        .filter(|id| super::valid_id(id))
}

/// The Patients a kick-off's `patient` parameter keeps (None: it has none). For a Group, only
/// its members are kept, and at Patient level only Patients the server holds; the others are
/// reported in the error file, as the IG asks, and none of their data is exported.
async fn chosen_patients(
    s: &AppState,
    base: &str,
    refs: &[(String, String)],
    group: Option<&(String, Vec<String>)>,
    errors: &mut Vec<Value>,
) -> Result<Option<Vec<String>>, FhirError> {
    if refs.is_empty() {
        return Ok(None);
    }
    let conn = s.store.connection().await?;
    let mut chosen: Vec<String> = Vec::new();
    for (reference, at) in refs {
        let id = patient_id(base, reference).ok_or_else(|| {
            FhirError::bad_request(format!(
                "'patient' must refer to a Patient of this server, such as Patient/123, not '{reference}'"
            ))
            .at_expression(at)
        })?;
        if chosen.iter().any(|c| c == id) {
            continue;
        }
        let known = match group {
            Some((gid, members)) => {
                if !members.iter().any(|m| m == id) {
                    errors.push(export_issue(
                        "error",
                        "not-found",
                        format!("Patient/{id} is not a member of Group/{gid}: none of its data is exported"),
                    ));
                    continue;
                }
                true
            }
            None => hds_fhir_store::read(&conn, "Patient", id)
                .await?
                .is_some_and(|v| v.body.is_some()),
        };
        if !known {
            errors.push(export_issue(
                "error",
                "not-found",
                format!("Patient/{id} is not known to this server"),
            ));
            continue;
        }
        chosen.push(id.to_owned());
    }
    Ok(Some(chosen))
}

#[allow(clippy::too_many_arguments)]
async fn kick_off(
    s: &AppState,
    base: &str,
    uri: &axum::http::Uri,
    k: KickOff,
    prefer: Prefer,
    headers: &HeaderMap,
    level: Level,
    group: Option<(String, Vec<String>)>,
) -> Result<Response, FhirError> {
    let exporter = s.exporter()?;
    if !respond_async(headers) {
        return Err(FhirError::bad_request(
            "$export runs asynchronously: send Prefer: respond-async",
        ));
    }
    let mut types: Option<Vec<String>> = None;
    let mut since = None;
    let mut filters = Vec::new();
    let mut errors = Vec::new();
    for (k, v) in &k.pairs {
        match k.as_str() {
            "_outputFormat" => {
                if !NDJSON_FORMATS.contains(&v.as_str()) {
                    return Err(FhirError::bad_request(format!(
                        "_outputFormat '{v}' is not supported: this server writes application/fhir+ndjson"
                    )));
                }
            }
            "_type" => {
                // An empty list would export nothing at all, which nobody asks for on purpose.
                if v.split(',').all(|t| t.trim().is_empty()) {
                    return Err(FhirError::bad_request(
                        "_type is empty: name the resource types to export, or leave _type out",
                    ));
                }
                let list = types.get_or_insert_with(Vec::new);
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    check_type(t).map_err(|_| {
                        FhirError::bad_request(format!(
                            "_type names '{t}', which is not an R4 resource type"
                        ))
                    })?;
                    if !list.iter().any(|x| x == t) {
                        list.push(t.to_owned());
                    }
                }
            }
            "_since" => since = Some(parse_instant(v)?),
            "_format" | "_pretty" => {}
            "_typeFilter" => filters.push(v.clone()),
            // Ignoring it would export Patients the client did not ask for.
            "patient" => {
                return Err(FhirError::bad_request(
                    "the $export parameter 'patient' is given in a POST's Parameters body (as a valueReference), not in the URL",
                ));
            }
            // The IG: an unsupported parameter is an error, unless the client asked for
            // lenient handling; then it is ignored and reported in the manifest's error file.
            other => {
                let why =
                    format!("the $export parameter '{other}' is not supported by this server");
                if !prefer.lenient {
                    return Err(FhirError::new(
                        StatusCode::BAD_REQUEST,
                        "not-supported",
                        why,
                    ));
                }
                errors.push(export_issue(
                    "warning",
                    "not-supported",
                    format!("{why}; it was ignored (Prefer: handling=lenient)"),
                ));
            }
        }
    }
    if level == Level::System && !k.patients.is_empty() {
        return Err(FhirError::bad_request(
            "the $export parameter 'patient' applies to Patient and Group exports, not to a system-level one",
        ));
    }
    if let (Some(t), Level::Patient | Level::Group) = (&types, level) {
        let reg = hds_fhir_search::r4();
        if let Some(outside) = t
            .iter()
            .find(|t| reg.compartment_params("Patient", t).is_empty())
        {
            return Err(FhirError::bad_request(format!(
                "{outside} is not in the Patient compartment, so a Patient or Group export cannot contain it"
            )));
        }
    }
    let type_filters = type_filters(s, &filters, types.as_deref(), level)?;
    let patients = match chosen_patients(s, base, &k.patients, group.as_ref(), &mut errors).await? {
        Some(chosen) => Some(chosen),
        None => group.map(|(_, members)| members),
    };
    let req = ExportRequest {
        type_filters,
        request: s.request_url(base, uri),
        level,
        patients,
        types,
        since,
        errors,
    };
    let conn = s.store.connection().await?;
    let job = export::start(&conn, &req, &exporter.wake)
        .await
        .map_err(|e| OPERATION.failure(e))?;
    Ok(async_job::accepted(
        format!("export job {} queued", job.id),
        Some(&OPERATION.status_url(base, job.id)),
    ))
}

/// `_typeFilter` values: comma-separated `Type?query` items (a comma inside a query, an OR of
/// values, stays with it: an item starts only where a resource type and `?` follow). Each is
/// checked as a search of its type, strictly, and must name a type the export covers.
fn type_filters(
    s: &AppState,
    values: &[String],
    types: Option<&[String]>,
    level: Level,
) -> Result<BTreeMap<String, Vec<String>>, FhirError> {
    let mut items: Vec<String> = Vec::new();
    for piece in values.iter().flat_map(|v| v.split(',')) {
        let starts_item = piece
            .split_once('?')
            .is_some_and(|(t, _)| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphabetic()));
        match items.last_mut() {
            Some(last) if !starts_item => {
                last.push(',');
                last.push_str(piece);
            }
            _ => items.push(piece.to_owned()),
        }
    }
    let reg = s.registry();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in items {
        let bad = |why: String| FhirError::bad_request(format!("_typeFilter '{item}': {why}"));
        let (rt, query) = item
            .split_once('?')
            .ok_or_else(|| bad("give it as Type?search-parameters".into()))?;
        check_type(rt).map_err(|_| bad(format!("'{rt}' is not an R4 resource type")))?;
        if types.is_some_and(|t| !t.iter().any(|x| x == rt)) {
            return Err(bad(format!("{rt} is not among the exported types (_type)")));
        }
        if level != Level::System
            && hds_fhir_search::r4()
                .compartment_params("Patient", rt)
                .is_empty()
        {
            return Err(bad(format!("{rt} is not in the Patient compartment")));
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let q = hds_fhir_search::parse_with(&reg, rt, &pairs).map_err(|e| bad(e.to_string()))?;
        if let Some((name, why)) = q.unknown.first() {
            return Err(bad(format!("'{name}' cannot be applied ({why})")));
        }
        // They shape a search's page, which an export has none of: accepted, they would be
        // silently ignored.
        if q.count.is_some() || q.result != hds_fhir_search::ResultParams::default() {
            return Err(FhirError::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                format!(
                    "_typeFilter '{item}': result parameters (_include, _revinclude, _sort, _count, _summary, _elements, _total) do not apply to an export"
                ),
            ));
        }
        out.entry(rt.to_owned()).or_default().push(query.to_owned());
    }
    Ok(out)
}

/// A FHIR instant (or date) for `_since`.
pub(crate) fn parse_instant(v: &str) -> Result<DateTime<Utc>, FhirError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(FhirError::bad_request(format!(
        "_since '{v}' is not a FHIR instant (such as 2024-01-31T12:00:00Z)"
    )))
}

/// 202 with X-Progress while the job runs; the manifest once it is done.
pub async fn status(
    State(s): State<AppState>,
    Path(id): Path<String>,
    BaseUrl(base): BaseUrl,
) -> Result<Response, FhirError> {
    let id = OPERATION.job_id(&id)?;
    let conn = s.store.connection().await?;
    let job = export::get(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(|| FhirError::not_found(format!("no export job '{id}'")))?;
    match job.status.as_str() {
        "queued" | "running" => Ok(async_job::in_progress(&format!(
            "{} resources in {} files ({})",
            job.exported,
            job.output.len(),
            job.status
        ))),
        "completed" => Ok(manifest(&s, &base, &job)),
        other => Err(OPERATION.ended(id, other, job.message.as_deref())),
    }
}

fn manifest(s: &AppState, base: &str, job: &Job) -> Response {
    let output: Vec<Value> = job
        .output
        .iter()
        .map(|f| {
            json!({
                "type": f.res_type,
                "url": format!("{}/{}", OPERATION.status_url(base, job.id), f.file),
                "count": f.count,
            })
        })
        .collect();
    let error: Vec<Value> = if job.errors.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "type": "OperationOutcome",
            "url": format!("{}/{ERROR_FILE}", OPERATION.status_url(base, job.id)),
            "count": job.errors.len(),
        })]
    };
    let body = json!({
        "transactionTime": hds_fhir_store::instant(&job.transaction_time),
        "request": job.request,
        "requiresAccessToken": s.tokens.is_some(),
        "output": output,
        "error": error,
    });
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Cancels a running job, or deletes a finished one's files.
pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let id = OPERATION.job_id(&id)?;
    let conn = s.store.connection().await?;
    let before = export::cancel(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(|| FhirError::not_found(format!("no export job '{id}' to cancel")))?;
    // A running job removes its files when it sees the cancellation; a finished one has no
    // worker left, so its files go now.
    if !before.is_active() {
        let exporter = s.exporter()?;
        exporter
            .discard(&id.to_string())
            .await
            .map_err(|e| OPERATION.failure(e))?;
    }
    Ok(async_job::accepted(
        format!("export job {id} cancelled"),
        None,
    ))
}

/// One output file, streamed from the store.
pub async fn file(
    State(s): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    let id = OPERATION.job_id(&id)?;
    let missing = || FhirError::not_found(format!("export job {id} has no file '{name}'"));
    let conn = s.store.connection().await?;
    let job = export::get(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(missing)?;
    if job.status == "cancelled" {
        return Err(missing());
    }
    if name == ERROR_FILE && job.status == "completed" && !job.errors.is_empty() {
        let mut lines = String::new();
        for issue in &job.errors {
            lines.push_str(
                &json!({"resourceType": "OperationOutcome", "issue": [issue]}).to_string(),
            );
            lines.push('\n');
        }
        return Ok(ndjson(Body::from(lines)));
    }
    if !job.output.iter().any(|f| f.file == name) {
        return Err(missing());
    }
    let exporter = s.exporter()?;
    let got = exporter
        .files
        .store
        .get(&exporter.files.path(&id.to_string(), &name))
        .await
        .map_err(|e| OPERATION.failure(e))?;
    Ok(ndjson(Body::from_stream(got.into_stream())))
}

fn ndjson(body: Body) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    r
}
