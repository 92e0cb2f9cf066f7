//! The endpoints every service answers without a token: `/health/check`, the readiness the
//! kubelet probes, which fails when the database is unreachable; `/health/live`, which answers
//! while the process serves HTTP (liveness must not follow a database outage, or the outage
//! becomes a restart loop); and `/metrics` for Prometheus.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::{Json, Router, http::StatusCode, response::IntoResponse, routing::get};

/// A readiness probe: Ok when the service can do its work.
pub type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Routes for `/health/check`, `/health/live` and `/metrics`.
pub fn router(probe: Probe) -> Router {
    Router::new()
        .route(
            "/health/check",
            get(move || {
                let probe = probe.clone();
                async move {
                    match probe().await {
                        Ok(()) => (
                            StatusCode::OK,
                            Json(serde_json::json!({"status": "Healthy"})),
                        ),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(serde_json::json!({"status": "Unhealthy", "reason": reason})),
                        ),
                    }
                }
            }),
        )
        .route(
            "/health/live",
            get(|| async { Json(serde_json::json!({"status": "Alive"})) }),
        )
        .route("/metrics", get(metrics))
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::prometheus().render(),
    )
}
