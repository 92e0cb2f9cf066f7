//! Serving routers: the listener, `/health/check` and `/metrics` beside the service routes, and a
//! graceful shutdown that lets requests in flight finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use hds_common::config::{DicomServiceConfig, FhirServiceConfig};
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

/// What `/health/check` asks: every service's database.
#[derive(Default, Clone)]
pub struct Databases {
    pub fhir: Vec<Store>,
    pub dicom: Vec<hds_dicom_index::Index>,
    /// Each MedTech service's "subscribed to its broker" flag: without it no device data comes.
    pub mqtt: Vec<(String, Arc<std::sync::atomic::AtomicBool>)>,
}

pub fn probe(dbs: Databases) -> health::Probe {
    let dbs = Arc::new(dbs);
    Arc::new(move || {
        let dbs = dbs.clone();
        Box::pin(async move {
            for s in dbs.fhir.iter() {
                s.ping().await.map_err(|e| e.to_string())?;
            }
            for i in dbs.dicom.iter() {
                i.ping().await.map_err(|e| e.to_string())?;
            }
            for (name, subscribed) in dbs.mqtt.iter() {
                if !subscribed.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(format!(
                        "MedTechService '{name}' is not subscribed to its MQTT broker"
                    ));
                }
            }
            Ok(())
        })
    })
}

/// The app as the listener serves it. A trailing slash is dropped before routing: FHIR clients
/// (fhirclient among them) post batches to `[base]/`, and `Patient/` is `Patient` to any of them.
/// A response that leaves its request's body unread ends the connection (`unread_body`).
pub fn make_service(
    app: Router,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<
    tower_http::normalize_path::NormalizePath<Router>,
    SocketAddr,
> {
    let app = app.layer(axum::middleware::from_fn(
        crate::unread_body::close_if_unread,
    ));
    let app = tower::Layer::layer(
        &tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(),
        app,
    );
    axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(
        app,
    )
}

/// Responses streamed in several writes (DICOM multipart bodies, search pages) would otherwise
/// wait on Nagle's algorithm and the client's delayed ACK: 40 ms per keep-alive request.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

pub async fn listen(
    addr: SocketAddr,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    axum::serve(no_delay(listener), make_service(app))
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
    let dbs = Databases {
        fhir: vec![store],
        ..Databases::default()
    };
    let app = routes.merge(health::router(probe(dbs)));
    tracing::info!(%addr, "FHIR service listening");
    listen(addr, app, hds_common::shutdown::signal()).await
}

pub async fn dicom(
    config_path: PathBuf,
    listen_override: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let config = DicomServiceConfig::load(&config_path)?;
    let addr = listen_override
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
    let sync = config.fhir_sync.clone();
    let name = config.name.clone();
    let dicom_url = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let (routes, index) = hds_dicom_server::service(config, "").await?;
    if let Some(sync) = &sync {
        hds_dicom_cast::spawn(index.clone(), sync, &name, &dicom_url)
            .with_context(|| format!("DicomService '{name}': fhirSync"))?;
    }
    let dbs = Databases {
        dicom: vec![index],
        ..Databases::default()
    };
    let app = routes.merge(health::router(probe(dbs)));
    tracing::info!(%addr, "DICOM service listening");
    listen(addr, app, hds_common::shutdown::signal()).await
}
