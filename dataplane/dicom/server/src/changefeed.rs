//! `/changefeed` and `/changefeed/latest`, in Azure's shape: v1 follows by sequence number
//! (`offset` is the last sequence seen), v2 adds a time window (`startTime`, `endTime`) in
//! which `offset` skips entries.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hds_dicom_index::DEFAULT_PARTITION;
use hds_dicom_index::changefeed::{Change, ChangeQuery};
use serde_json::{Map, Value, json};

use crate::{AppState, DicomError};

const DEFAULT_LIMIT: i64 = 10;
const MAX_LIMIT: i64 = 200;

pub(crate) async fn feed(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let int = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| match q.get(name) {
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
        q.get(name)
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
    let query = ChangeQuery {
        offset: int("offset", 0, 0..=i64::MAX)?,
        limit: int("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?,
        start: time("startTime")?,
        end: time("endTime")?,
        include_metadata: flag(&q, "includeMetadata")?,
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
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let change = s.index.latest_change(flag(&q, "includeMetadata")?).await?;
    let base = s.base_url(&headers);
    Ok(json_response(
        change.map_or_else(|| json!({}), |c| entry(&base, &c)),
    ))
}

/// Azure's default for includeMetadata is true.
fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, DicomError> {
    match q.get(name).map(String::as_str) {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(DicomError::BadRequest(format!(
            "{name} must be true or false, not '{v}'"
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
