//! A batch or transaction Bundle read into the requests its entries stand for. Everything that
//! can be judged without the database is judged here, so a malformed entry fails a transaction
//! before anything is written.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde_json::Value;

use crate::error::FhirError;
use crate::http::query_pairs;
use crate::interactions::{check_id, check_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Batch,
    Transaction,
}

/// What an entry's `request.url` names, below this server's base.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `[base]?...`: a system search.
    System { query: Vec<(String, String)> },
    /// `Type` or `Type?criteria`: create, search, or a conditional update, patch or delete.
    Type {
        rt: String,
        query: Vec<(String, String)>,
    },
    /// `Type/id`.
    Instance {
        rt: String,
        id: String,
        query: Vec<(String, String)>,
    },
    /// `Type/id/_history/vid`.
    Version { rt: String, id: String, vid: String },
    /// `Compartment/id/Type?...`.
    Compartment {
        comp: String,
        id: String,
        rt: String,
        query: Vec<(String, String)>,
    },
}

impl Target {
    /// The route of the router this target would take as a request of its own, and its path:
    /// what data action and SMART scopes it needs is judged from these.
    pub fn route_and_path(&self) -> (&'static str, String) {
        match self {
            Target::System { .. } => ("/", "/".into()),
            Target::Type { rt, .. } => ("/{type}", format!("/{rt}")),
            Target::Instance { rt, id, .. } => ("/{type}/{id}", format!("/{rt}/{id}")),
            Target::Version { rt, id, vid } => (
                "/{type}/{id}/_history/{vid}",
                format!("/{rt}/{id}/_history/{vid}"),
            ),
            Target::Compartment { comp, id, rt, .. } => {
                ("/{comp}/{id}/{type}", format!("/{comp}/{id}/{rt}"))
            }
        }
    }

    pub fn resource_type(&self) -> Option<&str> {
        match self {
            Target::System { .. } => None,
            Target::Type { rt, .. }
            | Target::Instance { rt, .. }
            | Target::Version { rt, .. }
            | Target::Compartment { rt, .. } => Some(rt),
        }
    }
}

/// One entry's request, checked.
#[derive(Debug, Clone)]
pub struct EntryRequest {
    /// Position in the Bundle; responses keep this order whatever the processing order.
    pub index: usize,
    pub full_url: Option<String>,
    pub method: Method,
    /// `request.url` as sent, for messages.
    pub url: String,
    pub target: Target,
    pub resource: Option<Value>,
    pub if_none_exist: Option<String>,
    /// ifMatch, ifNoneMatch and ifModifiedSince, as the headers they stand for (and a
    /// Content-Type for a patch), so the interactions read them as they read a request's.
    pub headers: HeaderMap,
}

impl EntryRequest {
    /// `entry N (METHOD url)`, to say which entry a message is about.
    pub fn label(&self) -> String {
        format!("entry {} ({} {})", self.index, self.method, self.url)
    }

    /// The transaction processing order of FHIR R4 (3.1.0.11.2): deletes, creates, updates
    /// and patches, then reads.
    pub fn phase(&self) -> u8 {
        if self.is_create_only_put() {
            return 1;
        }
        match self.method {
            Method::DELETE => 0,
            Method::POST => 1,
            Method::PUT | Method::PATCH => 2,
            _ => 3,
        }
    }

    /// A PUT with `ifNoneMatch: *`: a create under the id the client chose, which a transaction
    /// writes together with its other creates.
    pub fn is_create_only_put(&self) -> bool {
        self.method == Method::PUT
            && matches!(self.target, Target::Instance { .. })
            && self
                .headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes().trim_ascii() == b"*")
    }

    pub fn is_conditional(&self) -> bool {
        matches!(&self.target, Target::Type { query, .. } if !query.is_empty())
    }
}

/// The Bundle's type and its entries; or why it cannot be processed as a whole. An entry that
/// cannot be read is an error of the whole Bundle for a transaction, and of that entry alone for
/// a batch.
pub struct RequestBundle {
    pub kind: BundleKind,
    pub entries: Vec<Result<EntryRequest, FhirError>>,
}

pub fn parse_bundle(bundle: Value, base: &str, limit: u32) -> Result<RequestBundle, FhirError> {
    let Value::Object(mut bundle) = bundle else {
        return Err(FhirError::bad_request("the body must be a Bundle"));
    };
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::bad_request(
            "POST to the base URL takes a Bundle of type batch or transaction",
        ));
    }
    let kind = match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => BundleKind::Batch,
        Some("transaction") => BundleKind::Transaction,
        Some(other) => {
            return Err(FhirError::bad_request(format!(
                "a Bundle of type '{other}' cannot be processed: POST to the base URL takes type batch or transaction"
            )));
        }
        None => {
            return Err(FhirError::bad_request(
                "the Bundle has no type: POST to the base URL takes type batch or transaction",
            ));
        }
    };
    let entries = match bundle.remove("entry") {
        None => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(FhirError::bad_request("Bundle.entry must be an array")),
    };
    if entries.len() > limit as usize {
        return Err(FhirError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "too-costly",
            format!(
                "the Bundle has {} entries, more than the {limit} this service accepts in one batch or transaction (limits.transactionEntryLimit)",
                entries.len()
            ),
        ));
    }
    let entries = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            parse_entry(i, e, base).map_err(|mut err| {
                for issue in &mut err.issues {
                    issue.diagnostics = format!("entry {i}: {}", issue.diagnostics);
                    issue
                        .expression
                        .get_or_insert_with(|| format!("Bundle.entry[{i}]"));
                }
                err
            })
        })
        .collect();
    Ok(RequestBundle { kind, entries })
}

fn parse_entry(index: usize, entry: Value, base: &str) -> Result<EntryRequest, FhirError> {
    let Value::Object(mut entry) = entry else {
        return Err(FhirError::bad_request("a Bundle entry must be an object"));
    };
    let full_url = entry
        .get("fullUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let resource = entry.remove("resource");
    let Some(Value::Object(request)) = entry.remove("request") else {
        return Err(FhirError::bad_request(
            "the entry has no request (method and url)",
        ));
    };
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
    let method = match text("method").as_deref() {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        Some("DELETE") => Method::DELETE,
        Some(other) => {
            return Err(FhirError::bad_request(format!(
                "request.method '{other}' is not one of GET, HEAD, POST, PUT, PATCH, DELETE"
            )));
        }
        None => return Err(FhirError::bad_request("the entry's request has no method")),
    };
    let Some(url) = text("url") else {
        return Err(FhirError::bad_request("the entry's request has no url"));
    };
    let target = parse_url(&url, base)?;
    let mut headers = HeaderMap::new();
    let mut put = |name: HeaderName, value: Option<String>| -> Result<(), FhirError> {
        if let Some(v) = value {
            let v = HeaderValue::from_str(&v).map_err(|_| {
                FhirError::bad_request(format!("request.{name} '{v}' is not valid text"))
            })?;
            headers.insert(name, v);
        }
        Ok(())
    };
    put(header::IF_MATCH, text("ifMatch"))?;
    put(header::IF_NONE_MATCH, text("ifNoneMatch"))?;
    // An instant in the Bundle (R4 Bundle.entry.request.ifModifiedSince), an HTTP-date in the
    // header it stands for.
    let since = text("ifModifiedSince")
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| httpdate::fmt_http_date(t.into()))
                .map_err(|_| {
                    FhirError::bad_request(format!(
                        "request.ifModifiedSince '{v}' is not a FHIR instant (such as 2024-01-31T12:00:00Z)"
                    ))
                })
        })
        .transpose()?;
    put(header::IF_MODIFIED_SINCE, since)?;
    let if_none_exist = text("ifNoneExist");

    let needs_resource = |what: &str| -> Result<Value, FhirError> {
        match &resource {
            Some(r @ Value::Object(_)) => Ok(r.clone()),
            _ => Err(FhirError::bad_request(format!(
                "{method} {url} needs the {what} in entry.resource"
            ))),
        }
    };
    let resource = match (&method, &target) {
        (&Method::POST, Target::Type { rt, query }) => {
            if !query.is_empty() {
                return Err(FhirError::bad_request(format!(
                    "POST {url}: a create takes no parameters (use ifNoneExist for a conditional create)"
                )));
            }
            let r = needs_resource("resource to create")?;
            same_type(&r, rt)?;
            Some(r)
        }
        (&Method::PUT, Target::Type { rt, query } | Target::Instance { rt, query, .. }) => {
            if matches!(target, Target::Type { .. }) && query.is_empty() {
                return Err(FhirError::bad_request(format!(
                    "PUT {url}: an update names the resource (Type/id) or has search criteria (Type?...)"
                )));
            }
            let r = needs_resource("resource to write")?;
            same_type(&r, rt)?;
            Some(r)
        }
        (&Method::PATCH, Target::Type { query, .. } | Target::Instance { query, .. }) => {
            if matches!(target, Target::Type { .. }) && query.is_empty() {
                return Err(FhirError::bad_request(format!(
                    "PATCH {url}: a patch names the resource (Type/id) or has search criteria (Type?...)"
                )));
            }
            let r =
                needs_resource("patch (a Parameters resource, or a Binary holding a JSON Patch)")?;
            headers.insert(header::CONTENT_TYPE, patch_content_type(&r)?);
            Some(r)
        }
        (&Method::DELETE, Target::Type { query, .. }) if query.is_empty() => {
            return Err(FhirError::bad_request(format!(
                "DELETE {url}: a delete names the resource (Type/id) or has search criteria (Type?...)"
            )));
        }
        (&Method::DELETE, Target::Type { .. } | Target::Instance { .. }) => None,
        (&Method::GET | &Method::HEAD, _) => None,
        _ => {
            return Err(FhirError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "not-supported",
                format!("{method} {url} is not an interaction a Bundle entry can carry"),
            ));
        }
    };
    Ok(EntryRequest {
        index,
        full_url,
        method,
        url,
        target,
        resource,
        if_none_exist,
        headers,
    })
}

fn same_type(resource: &Value, rt: &str) -> Result<(), FhirError> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == rt => Ok(()),
        Some(t) => Err(FhirError::bad_request(format!(
            "entry.resource is a {t}, but request.url names {rt}"
        ))),
        None => Err(FhirError::bad_request("entry.resource has no resourceType")),
    }
}

/// A patch in a Bundle is a FHIRPath Patch (Parameters) or a JSON Patch carried in a Binary;
/// the Content-Type tells the patch interaction which.
fn patch_content_type(r: &Value) -> Result<HeaderValue, FhirError> {
    match r.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => Ok(HeaderValue::from_static("application/fhir+json")),
        Some("Binary")
            if r.get("contentType").and_then(Value::as_str)
                == Some("application/json-patch+json") =>
        {
            Ok(HeaderValue::from_static("application/json-patch+json"))
        }
        _ => Err(FhirError::bad_request(
            "a patch entry's resource must be a Parameters (FHIRPath Patch) or a Binary with contentType application/json-patch+json",
        )),
    }
}

/// `request.url`, relative to this server's base (or absolute on it).
pub fn parse_url(url: &str, base: &str) -> Result<Target, FhirError> {
    let rel = match url.strip_prefix(base) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') => rest,
        _ if url.starts_with("http://") || url.starts_with("https://") => {
            return Err(FhirError::bad_request(format!(
                "request.url '{url}' is not on this server ({base})"
            )));
        }
        _ => url,
    };
    let rel = rel.trim_start_matches('/');
    let (path, raw_query) = rel.split_once('?').unwrap_or((rel, ""));
    let query = if raw_query.is_empty() {
        Vec::new()
    } else {
        query_pairs(Some(raw_query))
    };
    let seg: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.trim_end_matches('/').split('/').collect()
    };
    let unsupported = || {
        FhirError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "not-supported",
            format!(
                "request.url '{url}' is not an interaction a Bundle entry can carry here (Type, Type/id, Type/id/_history/vid, Compartment/id/Type, or a search)"
            ),
        )
    };
    let ty = |t: &str| check_type(t).map(|()| t.to_owned());
    let id = |i: &str| check_id(i).map(|()| i.to_owned());
    Ok(match seg.as_slice() {
        [] => Target::System { query },
        [rt] if !rt.starts_with('$') && !rt.starts_with('_') => Target::Type { rt: ty(rt)?, query },
        [rt, i] if !i.starts_with('$') && !i.starts_with('_') => Target::Instance {
            rt: ty(rt)?,
            id: id(i)?,
            query,
        },
        [rt, i, "_history", vid] => Target::Version {
            rt: ty(rt)?,
            id: id(i)?,
            vid: (*vid).to_owned(),
        },
        [comp, i, rt] if !rt.starts_with('$') && !rt.starts_with('_') => Target::Compartment {
            comp: ty(comp)?,
            id: id(i)?,
            rt: ty(rt)?,
            query,
        },
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "http://h/fhir";

    #[test]
    fn urls_name_their_targets() {
        assert_eq!(
            parse_url("Patient", BASE).unwrap(),
            Target::Type {
                rt: "Patient".into(),
                query: vec![]
            }
        );
        assert_eq!(
            parse_url("http://h/fhir/Patient/1", BASE).unwrap(),
            Target::Instance {
                rt: "Patient".into(),
                id: "1".into(),
                query: vec![]
            }
        );
        assert_eq!(
            parse_url("/Patient?identifier=a|b", BASE).unwrap(),
            Target::Type {
                rt: "Patient".into(),
                query: vec![("identifier".into(), "a|b".into())]
            }
        );
        assert!(matches!(
            parse_url("Patient/1/_history/2", BASE).unwrap(),
            Target::Version { .. }
        ));
        assert!(matches!(
            parse_url("Patient/1/Observation?code=x", BASE).unwrap(),
            Target::Compartment { .. }
        ));
        assert!(matches!(
            parse_url("?_type=Patient", BASE).unwrap(),
            Target::System { .. }
        ));
        assert!(parse_url("Nonsense/1", BASE).is_err());
        assert!(parse_url("Patient/a b", BASE).is_err());
        assert!(parse_url("http://elsewhere/fhir/Patient/1", BASE).is_err());
        assert!(parse_url("Patient/1/$everything", BASE).is_err());
    }

    #[test]
    fn entries_are_checked_before_anything_runs() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "PUT", "url": "Patient/1"}},
            {"request": {"method": "DELETE", "url": "Patient"}},
            {"request": {"method": "GET"}},
            {"request": {"method": "DELETE", "url": "Patient/1", "ifMatch": "W/\"3\""}},
            {"resource": {"resourceType": "Basic"}, "request": {"method": "PATCH", "url": "Patient/1"}},
        ]});
        let r = parse_bundle(b, BASE, 500).unwrap();
        assert_eq!(r.kind, BundleKind::Transaction);
        let ok: Vec<bool> = r.entries.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, false, false, false, true, false]);
        let e = r.entries[5].as_ref().unwrap();
        assert_eq!(e.headers[header::IF_MATCH], "W/\"3\"");
        assert_eq!(e.phase(), 0);
        let err = r.entries[1].as_ref().unwrap_err();
        assert!(err.issues[0].diagnostics.starts_with("entry 1: "));
    }

    #[test]
    fn the_entry_limit_and_the_type_are_enforced() {
        let many = json!({"resourceType": "Bundle", "type": "batch",
            "entry": vec![json!({"request": {"method": "GET", "url": "Patient"}}); 3]});
        let err = parse_bundle(many, BASE, 2).err().unwrap();
        assert!(err.issues[0].diagnostics.contains("more than the 2"));
        let wrong = json!({"resourceType": "Bundle", "type": "collection"});
        assert!(parse_bundle(wrong, BASE, 2).is_err());
    }
}
