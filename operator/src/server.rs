//! The operator's own HTTP endpoints: Prometheus metrics and the kubelet's probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (it reached the
/// apiserver; followers are ready too, they only wait for the Lease).
pub async fn serve(listen: SocketAddr, ready: Arc<AtomicBool>) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async { hds_common::telemetry::prometheus().render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ready): State<Arc<AtomicBool>>| async move {
                if ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not connected to the apiserver yet",
                    )
                }
            }),
        )
        .with_state(ready);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "metrics and probes");
    axum::serve(listener, app).await?;
    Ok(())
}
