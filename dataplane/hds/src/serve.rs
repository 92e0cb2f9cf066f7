//! Serving routers: the listener, `/health/check` and `/metrics` beside the service routes, and a
//! graceful shutdown that lets requests in flight finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use hds_common::config::FhirServiceConfig;
use hds_common::health;
use hds_fhir_store::Store;

/// Opens the store of one FHIR service and returns its routes (mounted at `prefix`).
pub async fn fhir_service(
    config: FhirServiceConfig,
    prefix: &str,
) -> anyhow::Result<(Router, Store)> {
    hds_fhir_server::check_config(&config)
        .map_err(|e| anyhow::anyhow!("FhirService '{}': {e}", config.name))?;
    let url = config.postgres.resolve_url()?;
    let store = Store::open(&url, config.postgres.pool_size)
        .await
        .with_context(|| format!("FhirService '{}': cannot open its database", config.name))?;
    let name = config.name.clone();
    let state = hds_fhir_server::AppState::new(config, store.clone(), prefix)
        .await
        .with_context(|| format!("FhirService '{name}': cannot load its search parameters"))?;
    Ok((hds_fhir_server::router(state), store))
}

pub fn probe(stores: Vec<Store>) -> health::Probe {
    let stores = Arc::new(stores);
    Arc::new(move || {
        let stores = stores.clone();
        Box::pin(async move {
            for s in stores.iter() {
                s.ping().await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    })
}

/// The app as the listener serves it. A trailing slash is dropped before routing: FHIR clients
/// (fhirclient among them) post batches to `[base]/`, and `Patient/` is `Patient` to any of them.
pub fn make_service(
    app: Router,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<
    tower_http::normalize_path::NormalizePath<Router>,
    SocketAddr,
> {
    let app = tower::Layer::layer(
        &tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(),
        app,
    );
    axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(
        app,
    )
}

pub async fn listen(
    addr: SocketAddr,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    axum::serve(listener, make_service(app))
        .with_graceful_shutdown(shutdown)
        .await
        .context("server failed")?;
    tracing::info!("all requests drained");
    Ok(())
}

pub async fn fhir(config_path: PathBuf, listen_override: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = FhirServiceConfig::load(&config_path)?;
    let addr = listen_override
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
    let (routes, store) = fhir_service(config, "").await?;
    let app = routes.merge(health::router(probe(vec![store])));
    tracing::info!(%addr, "FHIR service listening");
    listen(addr, app, hds_common::shutdown::signal()).await
}
