//! The service's HTTP side: `POST /ingest` (device messages for devices without MQTT; answered
//! once the message's outcome is durable) and `POST /$validate-mapping` (the mapping debugger).
//! Both need a valid token for this service unless auth is off by name.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::envelope::{MessageMeta, wrap};
use crate::pipeline::{Delivery, Done};

#[derive(Clone)]
pub struct HttpState {
    pub tokens: Option<Arc<hds_auth::Validator>>,
    pub ingest: Option<mpsc::UnboundedSender<Delivery>>,
    pub device_mapping: Arc<Value>,
    pub fhir_mapping: Arc<Value>,
    pub scheme: hds_medtech_fhir::IdScheme,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/ingest", post(ingest))
        .route("/$validate-mapping", post(validate_mapping))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(state)
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn authenticate(State(s): State<HttpState>, req: Request, next: Next) -> Response {
    let Some(tokens) = &s.tokens else {
        return next.run(req).await;
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match tokens.authorize_header(value).await {
        Ok(_) => next.run(req).await,
        Err(e) => {
            let mut r = problem(StatusCode::UNAUTHORIZED, e.to_string());
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngestQuery {
    /// Fills `SystemProperties.iothub-connection-device-id`, as an MQTT topic
    /// `devices/{id}/...` does.
    device_id: Option<String>,
}

async fn ingest(State(s): State<HttpState>, Query(q): Query<IngestQuery>, body: Bytes) -> Response {
    let Some(ingest) = &s.ingest else {
        return problem(
            StatusCode::NOT_FOUND,
            "HTTP ingestion is off for this MedTech service (spec.ingestion.http.enabled)",
        );
    };
    let topic = match &q.device_id {
        Some(d) => format!("devices/{d}/messages/events"),
        None => "http/ingest".to_owned(),
    };
    let enqueued = Utc::now();
    let envelope = wrap(
        &body,
        &MessageMeta {
            topic: &topic,
            user_properties: &[],
            content_type: Some("application/json"),
            enqueued,
        },
    );
    let (tx, rx) = oneshot::channel();
    let delivery = Delivery {
        envelope,
        source: topic,
        size: body.len(),
        enqueued,
        done: Done::Http(tx),
    };
    if ingest.send(delivery).is_err() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the MedTech service is stopping",
        );
    }
    match rx.await {
        Ok(outcome) => {
            let status = if outcome.measurements == 0 && !outcome.errors.is_empty() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            (status, Json(outcome)).into_response()
        }
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the MedTech service is stopping",
        ),
    }
}

/// `{"message": {...}, "deviceMapping"?: {...}, "fhirMapping"?: {...}, "properties"?: {...},
/// "systemProperties"?: {...}}`; the service's own templates when none are given.
async fn validate_mapping(State(s): State<HttpState>, body: Bytes) -> Response {
    let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object with a 'message' (and optionally 'deviceMapping', 'fhirMapping', 'properties', 'systemProperties')",
        );
    };
    let Some(message) = req.remove("message") else {
        return problem(StatusCode::BAD_REQUEST, "the body has no 'message'");
    };
    let object = |v: Option<Value>| match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let device = req.remove("deviceMapping");
    let fhir = req.remove("fhirMapping");
    let report = crate::debugger::debug(
        device.as_ref().unwrap_or(&s.device_mapping),
        fhir.as_ref().unwrap_or(&s.fhir_mapping),
        message,
        object(req.remove("properties")),
        object(req.remove("systemProperties")),
        &s.scheme,
    );
    Json(report).into_response()
}
