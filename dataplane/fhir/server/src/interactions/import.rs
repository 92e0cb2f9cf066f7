//! `$import` in Azure's shape: `POST [base]/$import` with `Prefer: respond-async` and a
//! Parameters body (`inputFormat`, `mode`, `input` parts of `type` and `url`), status polling
//! at `[base]/_operations/import/[id]` (202 with X-Progress, then the result), DELETE to
//! cancel, and each input's refused lines as NDJSON OperationOutcomes below the status URL.
//! The jobs run in `hds_fhir_bulk::import`; each resource passes the checks of an ordinary
//! write ([`prepare`]).

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hds_auth::DataAction;
use hds_common::config::FhirServiceConfig;
use hds_fhir_bulk::import::{self, ImportInput, ImportRequest, LineIssue, Mode, Prepared};
use serde_json::{Value, json};

use super::{async_job, check_type, keeps_history, valid_id, validate};
use std::sync::Arc;

use crate::AppState;
use crate::error::FhirError;
use crate::http::{BaseUrl, FhirBody, respond_async};
use crate::profiles::{Enforcement, ProfileCache};

/// This module's jobs, in URLs and messages.
const OPERATION: async_job::Operation = async_job::Operation {
    path: "import",
    name: "import",
};

const NDJSON_FORMATS: &[&str] = &["application/fhir+ndjson", "application/ndjson"];

/// Error rows read per query while an error file streams.
const ERROR_PAGE: i64 = 1_000;

pub async fn kick_off(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let importer = s.importer()?;
    if !respond_async(&headers) {
        return Err(FhirError::bad_request(
            "$import runs asynchronously: send Prefer: respond-async",
        ));
    }
    let params = crate::http::parse_resource(&body)?;
    let (mode, inputs) = parse_parameters(&params)?;
    if mode == Mode::InitialLoad && !s.config.import.initial_import_mode {
        return Err(FhirError::bad_request(
            "mode InitialLoad needs the service in initial import mode (spec.import.initialImportMode: true); use IncrementalLoad to load into a service in use",
        ));
    }
    let inputs = inputs
        .into_iter()
        .enumerate()
        .map(|(n, (res_type, url))| {
            let path = importer.files.resolve(&url).map_err(|why| {
                FhirError::bad_request(why).at_expression(format!("Parameters.parameter[{n}]"))
            })?;
            Ok(ImportInput {
                res_type,
                url,
                path: path.to_string(),
            })
        })
        .collect::<Result<Vec<_>, FhirError>>()?;
    let req = ImportRequest {
        request: s.request_url(&base, &uri),
        mode,
        inputs,
    };
    let conn = s.store.connection().await?;
    let job = import::start(&conn, &req, &importer.wake)
        .await
        .map_err(|e| OPERATION.failure(e))?;
    Ok(async_job::accepted(
        format!("import job {} queued", job.id),
        Some(&OPERATION.status_url(&base, job.id)),
    ))
}

/// In initial import mode the service is being loaded: writes through the API are refused
/// (Azure's behaviour), so that nothing interleaves with the `InitialLoad` creates.
pub fn refuse_in_initial_mode(
    s: &AppState,
    method: &Method,
    route: &str,
    path: &str,
) -> Result<(), FhirError> {
    if !s.config.import.initial_import_mode {
        return Ok(());
    }
    match crate::access::required_action(method, route, path) {
        Some(
            DataAction::Write
            | DataAction::Delete
            | DataAction::HardDelete
            | DataAction::SearchParameter,
        ) => Err(FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this service is in initial import mode (spec.import.initialImportMode): writes through the API are refused until it is turned off",
        )),
        _ => Ok(()),
    }
}

/// [`refuse_in_initial_mode`] for every request.
pub async fn initial_mode_guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.config.import.initial_import_mode {
        let (route, path) = s.route_and_path(&req);
        if let Err(e) = refuse_in_initial_mode(&s, req.method(), &route, &path) {
            return e.into_response();
        }
    }
    next.run(req).await
}

type Inputs = Vec<(Option<String>, String)>;

/// The mode and the (type, url) of each input. Azure's `storageDetail` is accepted and
/// ignored: inputs always come from this service's import storage.
fn parse_parameters(p: &Value) -> Result<(Mode, Inputs), FhirError> {
    if p["resourceType"] != "Parameters" {
        return Err(FhirError::bad_request(
            "$import takes a Parameters resource (inputFormat, mode, input)",
        ));
    }
    let mut mode = Mode::IncrementalLoad;
    let mut inputs = Vec::new();
    for (n, param) in p["parameter"].as_array().into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{n}]");
        match param["name"].as_str() {
            Some("inputFormat") => {
                let f = primitive(param).unwrap_or_default();
                if !NDJSON_FORMATS.contains(&f) {
                    return Err(FhirError::bad_request(format!(
                        "inputFormat '{f}' is not supported: give application/fhir+ndjson"
                    ))
                    .at_expression(at));
                }
            }
            Some("mode") => {
                let m = primitive(param).unwrap_or_default();
                mode = Mode::parse(m).ok_or_else(|| {
                    FhirError::bad_request(format!(
                        "mode '{m}' is not one of InitialLoad, IncrementalLoad"
                    ))
                    .at_expression(at.clone())
                })?;
            }
            Some("input") => {
                let part = |name: &str| {
                    param["part"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|p| p["name"] == name)
                        .and_then(primitive)
                };
                let url = part("url").ok_or_else(|| {
                    FhirError::bad_request("an input has no url part").at_expression(at.clone())
                })?;
                let res_type = part("type").map(str::to_owned);
                if let Some(t) = &res_type {
                    check_type(t).map_err(|_| {
                        FhirError::bad_request(format!(
                            "an input's type '{t}' is not an R4 resource type"
                        ))
                        .at_expression(at.clone())
                    })?;
                }
                inputs.push((res_type, url.to_owned()));
            }
            Some("storageDetail") => {}
            other => {
                return Err(FhirError::bad_request(format!(
                    "the $import parameter '{}' is not known (inputFormat, mode, input, storageDetail)",
                    other.unwrap_or("")
                ))
                .at_expression(at));
            }
        }
    }
    if inputs.is_empty() {
        return Err(FhirError::bad_request(
            "$import needs at least one input part with a url",
        ));
    }
    Ok((mode, inputs))
}

/// A parameter's or part's value, whatever its value[x] type.
fn primitive(p: &Value) -> Option<&str> {
    p.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("value"))
        .and_then(|(_, v)| v.as_str())
}

/// The checks every imported resource passes: the ones of an ordinary write (type, id, R4
/// validation, a usable SearchParameter), then indexing with the service's live registry.
pub fn prepare(
    reg: &hds_fhir_search::Registry,
    config: &FhirServiceConfig,
    expected: Option<&str>,
    resource: Value,
) -> Result<Prepared, Vec<LineIssue>> {
    let issue = |code: &str, diagnostics: String| {
        vec![LineIssue {
            code: code.to_owned(),
            diagnostics,
            expression: None,
        }]
    };
    let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
        return Err(issue("required", "the line has no resourceType".into()));
    };
    if let Some(t) = expected
        && t != rt
    {
        return Err(issue(
            "invalid",
            format!("this input holds {t} resources, but the line is a {rt}"),
        ));
    }
    let rt = rt.to_owned();
    check_type(&rt).map_err(issues)?;
    let id = match resource.get("id") {
        None => None,
        Some(Value::String(id)) if valid_id(id) => Some(id.clone()),
        Some(other) => {
            return Err(issue("value", format!("{other} is not a valid FHIR id")));
        }
    };
    validate(&resource, &rt, StatusCode::BAD_REQUEST).map_err(issues)?;
    let search_parameter = rt == "SearchParameter";
    if search_parameter {
        super::reindex::check_search_parameter(&resource).map_err(issues)?;
    }
    let (version_id, last_updated) = kept_meta(&resource).map_err(|why| issue("value", why))?;
    let index = hds_fhir_search::extract_with(reg, &resource);
    Ok(Prepared {
        version_id,
        last_updated,
        keep_history: keeps_history(config.resource_version_policy.for_type(&rt)),
        res_type: rt,
        id,
        resource,
        index,
        search_parameter,
    })
}

/// The `meta.versionId` (a positive whole number here) and `meta.lastUpdated` a resource
/// carries, for an IncrementalLoad to keep.
fn kept_meta(
    resource: &Value,
) -> Result<(Option<i64>, Option<chrono::DateTime<chrono::Utc>>), String> {
    let meta = &resource["meta"];
    let version = match meta["versionId"].as_str() {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("meta.versionId '{v}' is not a version number (1, 2, ...) this server can keep")
        })?),
    };
    let last_updated = match meta["lastUpdated"].as_str() {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("meta.lastUpdated '{t}': {e}"))?
                .with_timezone(&chrono::Utc),
        ),
    };
    Ok((version, last_updated))
}

/// `validation.enforceProfiles` for imported resources: the check of an ordinary write.
pub fn profile_check(cache: Arc<ProfileCache>) -> hds_fhir_bulk::import::Check {
    Arc::new(move |tx, resource| {
        let enforcement = Enforcement::with(&cache, true, resource);
        Box::pin(async move {
            match enforcement {
                Some(e) => e.check(tx, resource).await.map_err(issues),
                None => Ok(()),
            }
        })
    })
}

fn issues(e: FhirError) -> Vec<LineIssue> {
    e.issues
        .into_iter()
        .map(|i| LineIssue {
            code: i.code.to_owned(),
            diagnostics: i.diagnostics,
            expression: i.expression,
        })
        .collect()
}

async fn job(s: &AppState, id: &str) -> Result<hds_fhir_bulk::ImportJob, FhirError> {
    let id = OPERATION.job_id(id)?;
    let conn = s.store.connection().await?;
    import::get(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(|| FhirError::not_found(format!("no import job '{id}'")))
}

/// 202 with X-Progress while the job runs; Azure's result once it is done.
pub async fn status(
    State(s): State<AppState>,
    Path(id): Path<String>,
    BaseUrl(base): BaseUrl,
) -> Result<Response, FhirError> {
    let job = job(&s, &id).await?;
    let id = job.id;
    match job.status.as_str() {
        "queued" | "running" => Ok(async_job::in_progress(&format!(
            "input {} of {}; {} resources imported, {} lines refused ({})",
            (job.input_index as usize + 1).min(job.inputs.len()),
            job.inputs.len(),
            job.succeeded.iter().sum::<i64>(),
            job.failed.iter().sum::<i64>(),
            job.status
        ))),
        // Azure's result is plain JSON, not a FHIR resource (as the export manifest).
        "completed" => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            result(&base, &job).to_string(),
        )
            .into_response()),
        other => Err(OPERATION.ended(id, other, job.message.as_deref())),
    }
}

/// Azure's result: per input, what was imported (`output`) and, where lines were refused, an
/// error file of their OperationOutcomes (`error`).
fn result(base: &str, job: &hds_fhir_bulk::ImportJob) -> Value {
    let mut output = Vec::new();
    let mut error = Vec::new();
    for (i, input) in job.inputs.iter().enumerate() {
        let succeeded = job.succeeded.get(i).copied().unwrap_or(0);
        let failed = job.failed.get(i).copied().unwrap_or(0);
        let mut o = json!({"count": succeeded, "inputUrl": input.url});
        if let Some(t) = &input.res_type {
            o["type"] = json!(t);
        }
        output.push(o);
        if failed > 0 {
            error.push(json!({
                "type": "OperationOutcome",
                "count": failed,
                "inputUrl": input.url,
                "url": format!("{}/errors/{}", OPERATION.status_url(base, job.id), i + 1),
            }));
        }
    }
    json!({
        "transactionTime": hds_fhir_store::instant(&job.transaction_time),
        "request": job.request,
        "output": output,
        "error": error,
    })
}

pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let id = OPERATION.job_id(&id)?;
    let conn = s.store.connection().await?;
    import::cancel(&conn, id)
        .await
        .map_err(|e| OPERATION.failure(e))?
        .ok_or_else(|| FhirError::not_found(format!("no import job '{id}' to cancel")))?;
    Ok(async_job::accepted(
        format!("import job {id} cancelled; what it had committed stays"),
        None,
    ))
}

/// One input's refused lines, an OperationOutcome per line, streamed page by page.
pub async fn errors(
    State(s): State<AppState>,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    let job = job(&s, &id).await?;
    let missing = || FhirError::not_found(format!("import job {} has no error file '{n}'", job.id));
    let index: usize = n.parse().map_err(|_| missing())?;
    if index == 0 || index > job.inputs.len() {
        return Err(missing());
    }
    let (pool, id, input) = (s.store.pool().clone(), job.id, index as i32 - 1);
    let pages = futures_util::stream::try_unfold(Some(-1i64), move |after| {
        let pool = pool.clone();
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let conn = pool.get().await.map_err(std::io::Error::other)?;
            let rows = import::errors(&conn, id, input, after, ERROR_PAGE)
                .await
                .map_err(std::io::Error::other)?;
            if rows.is_empty() {
                return Ok(None);
            }
            let next = (rows.len() as i64 == ERROR_PAGE).then(|| rows[rows.len() - 1].0);
            let mut text = String::new();
            for (_, outcome) in rows {
                text.push_str(&outcome);
                text.push('\n');
            }
            Ok::<_, std::io::Error>(Some((text, next)))
        }
    });
    let mut r = Body::from_stream(pages).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    Ok(r)
}
