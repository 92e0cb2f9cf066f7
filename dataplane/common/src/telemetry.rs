//! Logs are tracing events: human-readable on a terminal, JSON lines when `HDS_LOG_FORMAT=json`
//! (what a log pipeline in a cluster wants). Metrics go to one process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the tracing subscriber. `RUST_LOG` overrides the default filter. Safe to call twice.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info,tokio_postgres=warn"));
    let json = std::env::var("HDS_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    // A second call (tests, `hds up` running several services) keeps the first subscriber.
    let _ = result;
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is already global (only in tests): keep a private one so /metrics
            // still answers.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}
