//! `$validate` (type and instance level): a resource checked against R4 and against the
//! profiles stored here, answered with an OperationOutcome of everything found (200 whatever
//! the verdict, per FHIR; 400 only when the request itself cannot be read).
//!
//! The body is the resource, or a Parameters with `resource`, `mode` (create, update,
//! delete) and `profile`; `?profile=` and `?mode=` work too. The profiles are those asked for
//! and those in the resource's `meta.profile`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::{check_id, check_type};
use crate::AppState;
use crate::error::{FhirError, OutcomeIssue, operation_outcome};
use crate::http::{FhirBody, QueryPairs, json_response, parse_resource, require_json_body};
use crate::profiles::{Named, check_profiles, meta_profiles, outcome_issue};
use crate::smart::{self, Access};
use hds_auth::smart::Interaction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No mode given: the resource as it stands.
    Plain,
    Create,
    Update,
    Delete,
}

/// What a `$validate` request asks.
struct Request {
    resource: Option<Value>,
    mode: Mode,
    profiles: Vec<String>,
}

/// `POST [type]/$validate`.
pub async fn type_level(
    State(s): State<AppState>,
    Path(rt): Path<String>,
    QueryPairs(q): QueryPairs,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    let req = read_request(&rt, &q, &headers, &body)?;
    run(&s, &access, &rt, None, req).await
}

/// `POST [type]/[id]/$validate`.
pub async fn instance_post(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    QueryPairs(q): QueryPairs,
    headers: HeaderMap,
    access: Access,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let req = read_request(&rt, &q, &headers, &body)?;
    run(&s, &access, &rt, Some(&id), req).await
}

/// `GET [type]/[id]/$validate`: the stored resource, against `?profile=` and its own.
pub async fn instance_get(
    State(s): State<AppState>,
    Path((rt, id)): Path<(String, String)>,
    QueryPairs(q): QueryPairs,
    access: Access,
) -> Result<Response, FhirError> {
    check_type(&rt)?;
    check_id(&id)?;
    let req = Request {
        resource: None,
        mode: query_mode(&q)?.unwrap_or(Mode::Plain),
        profiles: query_profiles(&q),
    };
    run(&s, &access, &rt, Some(&id), req).await
}

fn read_request(
    rt: &str,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Request, FhirError> {
    let mut mode = query_mode(q)?;
    let mut profiles = query_profiles(q);
    let mut resource = None;
    if !body.iter().all(u8::is_ascii_whitespace) {
        require_json_body(headers)?;
        let v = parse_resource(body)?;
        if v.get("resourceType").and_then(Value::as_str) == Some("Parameters") && rt != "Parameters"
        {
            for p in v
                .get("parameter")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match p.get("name").and_then(Value::as_str) {
                    Some("resource") => {
                        resource = Some(p.get("resource").cloned().ok_or_else(|| {
                            FhirError::bad_request("the 'resource' parameter carries no resource")
                        })?)
                    }
                    Some("mode") => {
                        let code = p.get("valueCode").and_then(Value::as_str).ok_or_else(|| {
                            FhirError::bad_request("the 'mode' parameter must be a valueCode")
                        })?;
                        mode = Some(parse_mode(code)?);
                    }
                    Some("profile") => {
                        let url = ["valueUri", "valueCanonical", "valueString"]
                            .iter()
                            .find_map(|k| p.get(*k).and_then(Value::as_str))
                            .ok_or_else(|| {
                                FhirError::bad_request(
                                    "the 'profile' parameter must be a valueUri or valueCanonical",
                                )
                            })?;
                        profiles.push(url.to_owned());
                    }
                    Some(other) => {
                        return Err(FhirError::bad_request(format!(
                            "$validate has no parameter '{other}' (resource, mode, profile)"
                        )));
                    }
                    None => return Err(FhirError::bad_request("a parameter without name")),
                }
            }
        } else {
            resource = Some(v);
        }
    }
    Ok(Request {
        resource,
        mode: mode.unwrap_or(Mode::Plain),
        profiles,
    })
}

fn query_mode(q: &[(String, String)]) -> Result<Option<Mode>, FhirError> {
    q.iter()
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| parse_mode(v))
        .transpose()
}

fn query_profiles(q: &[(String, String)]) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == "profile")
        .map(|(_, v)| v.clone())
        .collect()
}

fn parse_mode(code: &str) -> Result<Mode, FhirError> {
    match code {
        "create" => Ok(Mode::Create),
        "update" => Ok(Mode::Update),
        "delete" => Ok(Mode::Delete),
        other => Err(FhirError::bad_request(format!(
            "mode '{other}' is not one of create, update, delete"
        ))),
    }
}

async fn run(
    s: &AppState,
    access: &Access,
    rt: &str,
    id: Option<&str>,
    req: Request,
) -> Result<Response, FhirError> {
    let conn = s.store.connection().await?;
    let stored = |id: &str| format!("{rt}/{id} is not known");
    let resource = match (req.mode, req.resource, id) {
        (Mode::Delete, _, None) => {
            return Err(FhirError::bad_request(
                "mode delete validates the deletion of one resource: use [type]/[id]/$validate",
            ));
        }
        // Whether a resource may be deleted here depends only on its being there.
        (Mode::Delete, _, Some(id)) => {
            read_visible(s, &conn, access, rt, id)
                .await?
                .ok_or_else(|| FhirError::not_found(stored(id)))?;
            return Ok(answer(Vec::new()));
        }
        (_, Some(r), _) => r,
        (_, None, Some(id)) => read_visible(s, &conn, access, rt, id)
            .await?
            .ok_or_else(|| FhirError::not_found(stored(id)))?,
        (_, None, None) => {
            return Err(FhirError::bad_request(
                "$validate needs a resource: the body, or a Parameters with a 'resource'",
            ));
        }
    };
    let mut issues = identity_issues(&resource, rt, id, req.mode);
    let core: Vec<OutcomeIssue> = hds_fhir_model::r4()
        .validate(&resource)
        .into_iter()
        .map(outcome_issue)
        .collect();
    let mut profiles: Vec<(String, Named)> = req
        .profiles
        .into_iter()
        .map(|p| (p, Named::Requested))
        .collect();
    for p in meta_profiles(&resource) {
        if !profiles.iter().any(|(q, _)| *q == p) {
            profiles.push((p, Named::MetaProfile));
        }
    }
    // Profiles of another type are reported by the profile; a resource that is not even
    // R4 (no or wrong resourceType) has nothing for them to walk.
    let found = if resource.get("resourceType").and_then(Value::as_str) == Some(rt) {
        check_profiles(&s.profiles, &conn, &resource, &profiles).await?
    } else {
        Vec::new()
    };
    issues.extend(core.iter().cloned());
    // A snapshot repeats R4's own rules; what R4 already reported there is not news.
    issues.extend(found.into_iter().filter(|i| {
        !core
            .iter()
            .any(|c| c.code == i.code && c.expression == i.expression)
    }));
    Ok(answer(issues))
}

/// The resource's type and id against the URL and the mode.
fn identity_issues(resource: &Value, rt: &str, id: Option<&str>, mode: Mode) -> Vec<OutcomeIssue> {
    let mut out = Vec::new();
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t != rt => out.push(
            OutcomeIssue::error(
                "invalid",
                format!("resourceType '{t}' does not match the '{rt}' in the URL"),
            )
            .at("resourceType"),
        ),
        _ => {}
    }
    let body_id = resource.get("id").and_then(Value::as_str);
    if mode == Mode::Update {
        match (body_id, id) {
            (None, _) => out.push(
                OutcomeIssue::error("required", "an update must carry the resource's id")
                    .at(format!("{rt}.id")),
            ),
            (Some(b), Some(u)) if b != u => out.push(
                OutcomeIssue::error(
                    "invalid",
                    format!("the resource id '{b}' does not match the id '{u}' in the URL"),
                )
                .at(format!("{rt}.id")),
            ),
            _ => {}
        }
    }
    out
}

/// The current version of `rt/id` when it exists, is not deleted, and the caller may read it.
async fn read_visible(
    s: &AppState,
    conn: &deadpool_postgres::Object,
    access: &Access,
    rt: &str,
    id: &str,
) -> Result<Option<Value>, FhirError> {
    let grants = access.grants(&s.registry(), rt, Interaction::Read)?;
    let Some(v) = hds_fhir_store::read(conn, rt, id).await? else {
        return Ok(None);
    };
    let Some(body) = v.body else {
        return Ok(None);
    };
    if !grants.is_open() && !smart::current_visible(conn, rt, id, &grants).await? {
        return Ok(None);
    }
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| hds_fhir_store::StoreError::Corrupt(format!("{rt}/{id}"), e).into())
}

/// 200 with the issues, or with one "all OK" when there are none.
fn answer(issues: Vec<OutcomeIssue>) -> Response {
    let issues = if issues.is_empty() {
        vec![OutcomeIssue {
            severity: "information",
            code: "informational",
            diagnostics: "All OK: no errors or warnings".into(),
            expression: None,
        }]
    } else {
        issues
    };
    json_response(StatusCode::OK, operation_outcome(&issues).to_string())
}
