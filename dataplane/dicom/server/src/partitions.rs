//! `GET /partitions`, in Azure's shape, and Azure's answer to `/partitions/...` when data
//! partitions are off.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{AppState, DicomError};

/// The partitions, for clients to discover them (Azure: 204 when there are none).
pub(crate) async fn list(State(s): State<AppState>) -> Result<Response, DicomError> {
    let partitions = s.index.partitions().await?;
    if partitions.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body: Vec<Value> = partitions
        .iter()
        .map(|p| {
            json!({
                "PartitionKey": p.key,
                "PartitionName": p.name,
                "CreatedDate": p.created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            })
        })
        .collect();
    let mut r = Value::Array(body).to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Any `/partitions` route while partitions are off: Azure's 400, rather than a 404 that reads
/// as "no such study".
pub(crate) async fn disabled() -> DicomError {
    DicomError::BadRequest("Data partitions capability is disabled".into())
}
