//! For tests (this crate's and other services'): a FHIR service on a fresh database of the
//! test PostgreSQL (`HDS_TEST_POSTGRES_URL`), served on a random loopback port, auth off.

use hds_common::config::{AuthConfig, AuthMode, FhirServiceConfig, Limits, PostgresConfig};

use crate::{AppState, router};

pub use hds_common::db::{fresh_test_database as fresh_database, test_admin_url as admin_url};

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
pub async fn serve(cfg: FhirServiceConfig) -> (String, String) {
    serve_on(cfg, fresh_database().await).await
}

/// Serves `cfg` on the database at `url`, migrating it first, as a restarted server does.
pub async fn serve_on(mut cfg: FhirServiceConfig, url: String) -> (String, String) {
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
