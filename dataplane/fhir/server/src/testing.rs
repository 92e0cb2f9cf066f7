//! For tests (this crate's and other services'): a FHIR service on a fresh database of the
//! test PostgreSQL (`HDS_TEST_POSTGRES_URL`), served on a random loopback port, auth off.

use hds_common::config::{AuthConfig, AuthMode, FhirServiceConfig, Limits, PostgresConfig};

use crate::{AppState, router};

/// The admin URL of the PostgreSQL tests use.
pub fn admin_url() -> String {
    std::env::var("HDS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty database on it; its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let db = format!("hds_test_{}", uuid::Uuid::new_v4().simple());
    hds_common::db::ensure_database(&admin, &db)
        .await
        .expect("the test PostgreSQL must be reachable (HDS_TEST_POSTGRES_URL)");
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("HDS_TEST_POSTGRES_URL must be a postgres:// URL"),
    }
}

/// A service config with auth off and every default.
pub fn config() -> FhirServiceConfig {
    FhirServiceConfig {
        name: "test".into(),
        workspace: "ws".into(),
        listen: None,
        base_url: None,
        postgres: PostgresConfig::from_url(""),
        auth: AuthConfig {
            mode: AuthMode::None,
            ..Default::default()
        },
        cors: None,
        resource_version_policy: Default::default(),
        limits: Limits::default(),
        audit: Default::default(),
        export: Default::default(),
        validation: Default::default(),
        import: Default::default(),
    }
}

/// Serves `cfg` on a fresh database: the base URL and the database's URL.
pub async fn serve(mut cfg: FhirServiceConfig) -> (String, String) {
    let url = fresh_database().await;
    cfg.postgres = PostgresConfig::from_url(url.clone());
    let store = hds_fhir_store::Store::open(&url, 8)
        .await
        .expect("store opens and migrates");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AppState::new(cfg, store, "").await.expect("state loads"));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (format!("http://{addr}"), url)
}
