//! `/changefeed` and `/changefeed/latest`, in Azure's shape: v1 follows by sequence number
//! (`offset` is the last sequence seen), v2 adds a time window (`startTime`, `endTime`) in
//! which `offset` skips entries.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hds_dicom_index::DEFAULT_PARTITION;
use hds_dicom_index::changefeed::{Change, ChangeQuery};
use serde_json::{Map, Value, json};

use crate::{AppState, DicomError};

/// The API version a feed request came by: its `limit` default and maximum are Azure's for
/// that version (Change feed overview: v1 10 and 100, v2 100 and 200). Azure serves no
/// unversioned route; hds's keeps the defaults it had before the versions were told apart
/// (10, at most 200), so its clients see no change.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Version {
    Unversioned,
    V1,
    V2,
}

impl Version {
    fn limits(self) -> (i64, i64) {
        match self {
            Version::Unversioned => (10, 200),
            Version::V1 => (10, 100),
            Version::V2 => (100, 200),
        }
    }
}

/// The query's parameters by lower-case name: Azure binds them as ASP.NET does, without
/// regard to case (its own page spells `endtime` and `includemetadata`). A name it does not
/// know is refused, as QIDO does, rather than silently widening the answer.
fn params(query: Option<String>, known: &[&str]) -> Result<HashMap<String, String>, DicomError> {
    let mut out = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let key = name.to_ascii_lowercase();
        if !known.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
            return Err(DicomError::BadRequest(format!(
                "the query parameter '{name}' is not a change feed parameter; these are: {}",
                known.join(", ")
            )));
        }
        out.insert(key, value.into_owned());
    }
    Ok(out)
}

const FEED_PARAMETERS: &[&str] = &["startTime", "endTime", "offset", "limit", "includeMetadata"];

pub(crate) async fn feed(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    version: Version,
) -> Result<Response, DicomError> {
    let q = params(raw, FEED_PARAMETERS)?;
    let int = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| match q
        .get(&name.to_ascii_lowercase())
    {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                DicomError::BadRequest(format!(
                    "{name} must be an integer from {} to {}, not '{v}'",
                    range.start(),
                    range.end()
                ))
            }),
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, DicomError> {
        q.get(&name.to_ascii_lowercase())
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        DicomError::BadRequest(format!(
                            "{name} must be an ISO 8601 date-time with a zone (2024-01-31T12:00:00Z), not '{v}'"
                        ))
                    })
            })
            .transpose()
    };
    let (default_limit, max_limit) = version.limits();
    let query = ChangeQuery {
        offset: int("offset", 0, 0..=i64::MAX)?,
        limit: int("limit", default_limit, 1..=max_limit)?,
        start: time("startTime")?,
        end: time("endTime")?,
        include_metadata: flag(&q)?,
    };
    if let (Some(a), Some(b)) = (query.start, query.end)
        && a >= b
    {
        return Err(DicomError::BadRequest(
            "startTime must be before endTime".into(),
        ));
    }
    let changes = s.index.changes(&query).await?;
    let base = s.base_url(&headers);
    let body = Value::Array(changes.iter().map(|c| entry(&base, c)).collect());
    Ok(json_response(body))
}

pub(crate) async fn latest(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let q = params(raw, &["includeMetadata"])?;
    let change = s.index.latest_change(flag(&q)?).await?;
    let base = s.base_url(&headers);
    Ok(json_response(
        change.map_or_else(|| json!({}), |c| entry(&base, &c)),
    ))
}

/// includeMetadata: Azure's default is true; the value binds as a .NET bool, in any case.
fn flag(q: &HashMap<String, String>) -> Result<bool, DicomError> {
    match q.get("includemetadata").map(|v| v.to_ascii_lowercase()) {
        None => Ok(true),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(_) => Err(DicomError::BadRequest(format!(
            "includeMetadata must be true or false, not '{}'",
            q["includemetadata"]
        ))),
    }
}

fn json_response(v: Value) -> Response {
    let mut r = v.to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn entry(base: &str, c: &Change) -> Value {
    let mut m = Map::new();
    m.insert("Sequence".into(), json!(c.sequence));
    if c.partition != DEFAULT_PARTITION {
        m.insert("PartitionName".into(), json!(c.partition));
    }
    m.insert("StudyInstanceUid".into(), json!(c.study_uid));
    m.insert("SeriesInstanceUid".into(), json!(c.series_uid));
    m.insert("SopInstanceUid".into(), json!(c.sop_uid));
    m.insert("Action".into(), json!(c.action));
    m.insert(
        "Timestamp".into(),
        json!(
            c.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ),
    );
    m.insert("State".into(), json!(c.state));
    if let Some(meta) = &c.metadata {
        let root = format!("{}/", crate::partition_root(base, &c.partition));
        let text = meta.replace("\"BulkDataURI\":\"", &format!("\"BulkDataURI\":\"{root}"));
        m.insert(
            "Metadata".into(),
            serde_json::from_str(&text).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}
