//! The HTTP side of FHIR that every interaction shares: formats, Prefer, If-Match and friends,
//! the request body, the base URL, and resource responses with their headers.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hds_fhir_store::StoredVersion;
use serde_json::Value;

use crate::error::{FHIR_JSON, FhirError, OutcomeIssue, operation_outcome};

const JSON_TYPES: &[&str] = &[
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "json",
    "text/json",
];

fn is_xml(t: &str) -> bool {
    t == "xml" || t.ends_with("/xml") || t.ends_with("+xml")
}

/// What a bulk file (an `$export` output or error file, an `$import` error file) may be asked
/// for as: the Bulk Data IG's default Accept is application/fhir+ndjson.
const NDJSON_TYPES: &[&str] = &["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// A bulk operation's NDJSON file: `.../_operations/export/[id]/[file]` or
/// `.../_operations/import/[id]/errors/[n]`.
pub fn is_bulk_file(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(5).collect();
    matches!(
        segments.as_slice(),
        [_, _, "export", "_operations", ..] | [_, "errors", _, "import", "_operations"]
    )
}

/// Checks `_format` and Accept: this server answers JSON only (and NDJSON for the files of
/// bulk operations), and says so with a 406.
pub fn negotiate(
    path: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<(), FhirError> {
    let speaks =
        |t: &str| JSON_TYPES.contains(&t) || (is_bulk_file(path) && NDJSON_TYPES.contains(&t));
    if let Some((_, f)) = query.iter().find(|(k, _)| k == "_format") {
        let f = f
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !speaks(&f) {
            return Err(FhirError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-supported",
                format!(
                    "_format '{f}' is not supported: this server speaks application/fhir+json only"
                ),
            ));
        }
        return Ok(());
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let acceptable = accept.split(',').any(|part| {
        let t = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        t.is_empty() || t == "*/*" || t == "application/*" || speaks(&t)
    });
    if acceptable {
        Ok(())
    } else {
        Err(FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            format!("cannot answer in '{accept}': this server speaks application/fhir+json only"),
        ))
    }
}

/// The request body's media type, lower-cased and without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// A resource body must be JSON; anything else gets 415.
pub fn require_json_body(headers: &HeaderMap) -> Result<(), FhirError> {
    match content_type(headers) {
        None => Ok(()),
        Some(t) if JSON_TYPES.contains(&t.as_str()) => Ok(()),
        Some(t) => Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            if is_xml(&t) {
                "XML resources are not supported: send application/fhir+json".to_owned()
            } else {
                format!("unsupported Content-Type '{t}': send application/fhir+json")
            },
        )),
    }
}

/// The raw body, with the configured size limit turned into a 413 OperationOutcome.
pub struct FhirBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for FhirBody {
    type Rejection = FhirError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(FhirError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-costly",
                "the request body is larger than this service accepts (limits.maxRequestBodyBytes)",
            )),
            Err(e) => Err(FhirError::bad_request(format!(
                "cannot read the request body: {e}"
            ))),
        }
    }
}

/// Parses a JSON resource body; a syntax error names its line and column.
pub fn parse_resource(body: &[u8]) -> Result<Value, FhirError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(FhirError::bad_request(
            "the request body is empty; a FHIR resource was expected",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            "the body must be a JSON object holding a FHIR resource",
        ));
    }
    Ok(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPref {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

/// The parts of `Prefer` this server acts on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prefer {
    pub return_: ReturnPref,
    pub strict: bool,
    /// `handling=lenient` was asked for by name (the default is lenient too, but some
    /// operations, such as `$export`, refuse what they cannot do unless told otherwise).
    pub lenient: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Prefer {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut p = Prefer::default();
        for v in parts.headers.get_all("prefer") {
            for token in v.to_str().unwrap_or("").split([',', ';']) {
                let token = token.trim().replace(' ', "");
                match token.as_str() {
                    "return=minimal" => p.return_ = ReturnPref::Minimal,
                    "return=representation" => p.return_ = ReturnPref::Representation,
                    "return=OperationOutcome" => p.return_ = ReturnPref::OperationOutcome,
                    "handling=strict" => (p.strict, p.lenient) = (true, false),
                    "handling=lenient" => (p.strict, p.lenient) = (false, true),
                    _ => {}
                }
            }
        }
        Ok(p)
    }
}

/// `If-Match: W/"3"` (or `"3"`, or `3`) as a version number.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, FhirError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    parse_etag(s).map(Some).ok_or_else(|| {
        FhirError::bad_request(format!(
            "If-Match '{s}' is not an ETag of the form W/\"<versionId>\""
        ))
    })
}

pub fn parse_etag(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').parse().ok()
}

pub fn etag(version_id: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("W/\"{version_id}\""))
        .expect("an integer etag is a valid header")
}

pub fn http_date(t: &DateTime<Utc>) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date((*t).into()))
        .expect("an HTTP date is a valid header")
}

/// Query pairs, percent-decoded, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The request's query pairs, for handlers.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(query_pairs(parts.uri.query())))
    }
}

/// The service's base URL as clients see it.
pub struct BaseUrl(pub String);

impl FromRequestParts<crate::AppState> for BaseUrl {
    type Rejection = FhirError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(b) = &state.base_url {
            return Ok(Self(b.clone()));
        }
        let h = &parts.headers;
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let proto = get("x-forwarded-proto").unwrap_or("http");
        let host = get("x-forwarded-host")
            .or_else(|| get("host"))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        Ok(Self(format!("{proto}://{host}{}", state.path_prefix)))
    }
}

/// Renders a stored JSON text, pretty when `_pretty=true` was asked for.
pub fn render_body(body: &str, query: &[(String, String)]) -> String {
    let pretty = query.iter().any(|(k, v)| k == "_pretty" && v == "true");
    if pretty
        && let Ok(v) = serde_json::from_str::<Value>(body)
        && let Ok(s) = serde_json::to_string_pretty(&v)
    {
        return s;
    }
    body.to_owned()
}

/// `Prefer: respond-async`, which the asynchronous operations require.
pub fn respond_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// The `meta.lastUpdated` of the version a response carries, to the full precision that the
/// Last-Modified header cannot hold (a Bundle entry's `response.lastModified` shows it).
#[derive(Debug, Clone, Copy)]
pub struct LastUpdated(pub DateTime<Utc>);

/// The response to a read or a write of one resource version: ETag, Last-Modified, Location
/// (on create), and the body `Prefer: return=` asks for.
pub fn version_response(
    status: StatusCode,
    v: &StoredVersion,
    base: &str,
    prefer: ReturnPref,
    location: bool,
    query: &[(String, String)],
) -> Response {
    let mut resp = match (prefer, &v.body) {
        (ReturnPref::Representation, Some(body)) => json_response(status, render_body(body, query)),
        (ReturnPref::OperationOutcome, _) => {
            let what = if status == StatusCode::CREATED {
                "created"
            } else {
                "updated"
            };
            let oo = operation_outcome(&[OutcomeIssue {
                severity: "information",
                code: "informational",
                diagnostics: format!("{}/{} {what} as version {}", v.res_type, v.id, v.version_id),
                expression: None,
            }]);
            json_response(status, oo.to_string())
        }
        _ => status.into_response(),
    };
    resp.extensions_mut().insert(LastUpdated(v.last_updated));
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag(v.version_id));
    h.insert(header::LAST_MODIFIED, http_date(&v.last_updated));
    if location {
        let url = format!("{base}/{}/{}/_history/{}", v.res_type, v.id, v.version_id);
        if let Ok(value) = HeaderValue::from_str(&url) {
            h.insert(header::LOCATION, value.clone());
            h.insert(header::CONTENT_LOCATION, value);
        }
    }
    resp
}
