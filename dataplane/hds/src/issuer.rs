//! `hds issuer --config FILE`: one Workspace's token issuer on its own, as the operator runs it
//! in a cluster: discovery, JWKS and the token endpoint at the root of the listener, beside
//! `/health/check` and `/metrics`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use hds_auth::issuer::WorkspaceIssuer;
use hds_common::config::WorkspaceIssuerConfig;
use hds_common::health;

/// Runs the issuer of the config file until SIGINT or SIGTERM.
pub async fn run(config_path: &Path, listen_override: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = WorkspaceIssuerConfig::load(config_path)?;
    let addr = listen_override
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
    // Built before binding, so a bad key or secret stops the process without it ever listening.
    let app = app(&config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, issuer = %config.issuer, "Workspace issuer listening");
    serve(listener, app, hds_common::shutdown::signal()).await
}

/// The issuer's routes: its files read, its key and secrets checked.
pub fn app(config: &WorkspaceIssuerConfig) -> anyhow::Result<Router> {
    let issuer = WorkspaceIssuer::new(config.resolve()?)
        .with_context(|| format!("issuer {}", config.issuer))?;
    // Up means ready: everything it needs was read at start.
    let probe: health::Probe = Arc::new(|| Box::pin(async { Ok(()) }));
    Ok(hds_auth::issuer::router(Arc::new(issuer)).merge(health::router(probe)))
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        crate::serve::no_delay(listener),
        crate::serve::make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hds_auth::{AuthorityConfig, Validator, ValidatorConfig};
    use serde_json::Value;

    async fn json(response: reqwest::Response) -> Value {
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hds-issuer-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_issuer_gives_tokens_its_jwks_verifies() {
        let dir = temp_dir();
        std::fs::write(
            dir.join("signingKey"),
            hds_common::config::generate_signing_key(),
        )
        .unwrap();
        std::fs::write(dir.join("app"), "s3cret\n").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let audience = "http://fhir.test.svc.cluster.local:8080";
        let config_file = dir.join("config.yaml");
        std::fs::write(
            &config_file,
            format!(
                "issuer: {base}\nsigningKeyFile: {}\ntokenLifetimeSeconds: 120\naudiences: [{audience}]\nclients:\n- clientId: app\n  secretFile: {}\n  roles: [FHIR Data Reader]\n  scopes: [system/Patient.rs]\n",
                dir.join("signingKey").display(),
                dir.join("app").display()
            ),
        )
        .unwrap();
        let config = WorkspaceIssuerConfig::load(&config_file).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app(&config).unwrap(), async {
            let _ = stopped.await;
        }));

        let http = reqwest::Client::new();
        let health = http
            .get(format!("{base}/health/check"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let discovery = json(
            http.get(format!("{base}/.well-known/openid-configuration"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(discovery["issuer"], base.as_str());
        assert_eq!(discovery["token_endpoint"], format!("{base}/oauth2/token"));

        let wrong = http
            .post(format!("{base}/oauth2/token"))
            .basic_auth("app", Some("s3cret\n"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "the file's newline is not the secret");
        let response = http
            .post(format!("{base}/oauth2/token"))
            .basic_auth("app", Some("s3cret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let token = json(response).await;
        assert_eq!(token["expires_in"], 120);
        let access_token = token["access_token"].as_str().unwrap();

        // A service trusting this issuer finds its key through discovery and the JWKS.
        let validator = Validator::new(ValidatorConfig {
            authorities: vec![AuthorityConfig {
                issuer: base.clone(),
                audiences: vec![audience.into()],
                roles_claim: "roles".into(),
                applications: vec![],
            }],
            leeway: std::time::Duration::from_secs(5),
        });
        let principal = validator.validate(access_token).await.unwrap();
        assert_eq!(principal.client_id.as_deref(), Some("app"));
        assert_eq!(principal.roles, ["FHIR Data Reader"]);
        assert_eq!(principal.scopes, ["system/Patient.rs"]);
        // And refuses a token whose signature is not the issuer's.
        let mut forged = access_token.to_owned();
        forged.truncate(forged.len() - 4);
        forged.push_str("AAAA");
        assert!(validator.validate(&forged).await.is_err());

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_key_or_secret_file_is_an_error_not_a_panic() {
        let dir = temp_dir();
        std::fs::write(dir.join("signingKey"), "not a key").unwrap();
        let config: WorkspaceIssuerConfig = serde_yaml::from_str(&format!(
            "issuer: http://i\nsigningKeyFile: {}\n",
            dir.join("signingKey").display()
        ))
        .unwrap();
        let e = format!("{:#}", app(&config).unwrap_err());
        assert!(e.contains("PKCS#8"), "{e}");
        let e = format!(
            "{:#}",
            WorkspaceIssuerConfig::load(&dir.join("absent.yaml")).unwrap_err()
        );
        assert!(e.contains("cannot read config"), "{e}");
        std::fs::write(
            dir.join("bad.yaml"),
            "issuer: http://i\nsigningKeyFile: /k\nclients: [{clientId: a}]\n",
        )
        .unwrap();
        let e = format!(
            "{:#}",
            WorkspaceIssuerConfig::load(&dir.join("bad.yaml")).unwrap_err()
        );
        assert!(
            e.contains("needs exactly one of secretFile or secretHash"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
