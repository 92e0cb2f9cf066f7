//! The DICOMweb service (PS3.18; Azure's DICOM service is the compatibility target): STOW-RS
//! (`stow`), QIDO-RS (`qido`), WADO-RS (`wado`: instances, metadata, frames, rendered images,
//! bulk data), delete and the change feed (`changefeed`). Instance files live in an object store
//! (`blobs`), everything else in the index (`hds-dicom-index`); what an instance says comes from
//! `hds-dicom-model`. Every request leaves an audit record (`audit`); browser viewers are let in
//! by the service's CORS settings. Files no instance row names are removed by the orphan sweep
//! (`sweep`).

mod audit;
mod authn;
mod blobs;
mod changefeed;
mod error;
mod extended;
mod media;
mod partitions;
mod qido;
mod spool;
mod stow;
mod sweep;
mod wado;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, header};
use axum::routing::get;
use hds_common::config::{AuthMode, DicomServiceConfig};
use hds_dicom_index::Index;

pub use blobs::Blobs;
pub use error::DicomError;
pub use sweep::{SweepOutcome, owner, sweep_orphans};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: DicomServiceConfig,
    pub index: Index,
    pub blobs: Blobs,
    tokens: Option<hds_auth::Validator>,
    auditor: hds_common::audit::Auditor,
    /// Wakes the reindex worker when tags are added.
    reindex: tokio::sync::Notify,
    /// Where the service is mounted below the listener's root (`/dicom/<name>` under `hds up`).
    prefix: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: DicomServiceConfig, index: Index, prefix: &str) -> anyhow::Result<Self> {
        check_config(&config)
            .map_err(|e| anyhow::anyhow!("DicomService '{}': {e}", config.name))?;
        let url = config.storage.url.clone().unwrap_or_else(|| {
            let dir = std::env::temp_dir()
                .join("hds-dicom")
                .join(format!("{}-{}", config.workspace, config.name));
            format!("file://{}", dir.display())
        });
        let mut blobs = Blobs::open(&url).map_err(anyhow::Error::msg)?;
        if !config.storage.sync {
            tracing::warn!(
                service = %config.name,
                "storage.sync is off: a crash or power cut may lose instance files the index names"
            );
            blobs = blobs.without_sync();
        }
        if config.auth.mode == AuthMode::None {
            tracing::warn!(
                service = %config.name,
                "AUTHENTICATION IS OFF (auth.mode: none): every caller may read, store and delete every DICOM instance of this service"
            );
        }
        let tokens = hds_common::auth::token_validator(
            &config.name,
            &config.auth,
            config.base_url.as_deref(),
        );
        let auditor = audit::start(&config);
        Ok(Self(Arc::new(Inner {
            config,
            index,
            blobs,
            tokens,
            auditor,
            reindex: tokio::sync::Notify::new(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })))
    }

    /// The base URL RetrieveURLs and BulkDataURIs start with: the configured one, else the
    /// request's own (X-Forwarded-Proto and -Host first, as behind an ingress).
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(b) = &self.config.base_url {
            return b.trim_end_matches('/').to_owned();
        }
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or("localhost");
        let proto = header("x-forwarded-proto").unwrap_or("http");
        format!("{proto}://{host}{}", self.prefix)
    }
}

/// What in a config would make the service misbehave, found before it starts.
pub fn check_config(config: &DicomServiceConfig) -> Result<(), String> {
    if let Some(c) = &config.cors {
        hds_common::cors::layer(c, &[]).map(drop)?;
    }
    audit::check(config)
}

/// What a browser viewer reads of an answer: the media type, where things are, the QIDO
/// warnings and erroneous tags, and metadata validators.
const EXPOSED: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LOCATION,
    header::LOCATION,
    header::WARNING,
    header::ETAG,
    HeaderName::from_static(qido::ERRONEOUS_ATTRIBUTES),
];

/// The URL paths of a partition start with: the base, plus `/partitions/{name}` outside the
/// default partition.
pub(crate) fn partition_root(base: &str, partition: &str) -> String {
    if partition == hds_dicom_index::DEFAULT_PARTITION {
        base.to_owned()
    } else {
        format!("{base}/partitions/{partition}")
    }
}

/// The partition a request names (`/partitions/{name}/...`), else the default one. Names are
/// Azure's: letters, digits, `.`, `-` and `_`, at most 64; they become part of file keys.
pub(crate) fn partition_of(
    p: &std::collections::HashMap<String, String>,
) -> Result<&str, DicomError> {
    match p.get("partition") {
        None => Ok(hds_dicom_index::DEFAULT_PARTITION),
        Some(name)
            if !name.is_empty()
                && name.len() <= 64
                && name != "."
                && name != ".."
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            Ok(name)
        }
        Some(name) => Err(DicomError::BadRequest(format!(
            "'{name}' is not a partition name: letters, digits, '.', '-' and '_', at most 64"
        ))),
    }
}

/// A UID in the path that is no UID (PS3.5 9.1: digits and dots, at most 64 characters) names
/// nothing that can be stored: a 400, as Azure answers, rather than a 404 that reads as "not
/// here yet".
pub(crate) fn check_path_uids(
    p: &std::collections::HashMap<String, String>,
) -> Result<(), DicomError> {
    for (key, name) in [
        ("study", "StudyInstanceUID"),
        ("series", "SeriesInstanceUID"),
        ("instance", "SOPInstanceUID"),
    ] {
        if let Some(u) = p.get(key)
            && !hds_dicom_index::qido::is_uid(u)
        {
            return Err(DicomError::BadRequest(format!(
                "the {name} in the path, '{u}', is not a UID (digits and dots, at most 64 characters)"
            )));
        }
    }
    Ok(())
}

/// The service's routes, at the root and under Azure's version prefixes (`/v1`, `/v2`), and
/// under `/partitions/{partition}` too when data partitions are on.
pub fn router(state: AppState) -> Router {
    use changefeed::Version;
    let data = data_routes();
    let versioned = |v: Version| {
        let mut r = Router::new()
            .merge(data.clone())
            .route(
                "/changefeed",
                get(move |s, q, h| changefeed::feed(s, q, h, v)),
            )
            .route("/changefeed/latest", get(changefeed::latest))
            .route(
                "/extendedquerytags",
                get(extended::list).post(extended::add),
            )
            .route(
                "/extendedquerytags/{tag}",
                get(extended::get)
                    .delete(extended::delete)
                    .patch(extended::update),
            )
            .route("/extendedquerytags/{tag}/errors", get(extended::errors))
            .route("/operations/{id}", get(extended::operation));
        if state.config.enable_data_partitions {
            r = r
                .route("/partitions", get(partitions::list))
                .nest("/partitions/{partition}", data.clone());
        } else {
            r = r
                .route("/partitions", axum::routing::any(partitions::disabled))
                .route(
                    "/partitions/{*rest}",
                    axum::routing::any(partitions::disabled),
                );
        }
        r
    };
    let mut router = Router::new()
        .merge(versioned(Version::Unversioned))
        .nest("/v1", versioned(Version::V1))
        .nest("/v2", versioned(Version::V2))
        .layer(axum::middleware::from_fn(no_nul_in_path))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authn::authenticate,
        ));
    // Outside authentication: a preflight carries no token. `check_config` has refused a bad
    // config before start; should a runner skip it, no CORS is the safe side.
    if let Some(c) = &state.config.cors {
        match hds_common::cors::layer(c, &EXPOSED) {
            Ok(cors) => router = router.layer(cors),
            Err(e) => tracing::error!(service = %state.config.name, "{e}; CORS is off"),
        }
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            hds_common::audit::record::<AppState>,
        ))
        .with_state(state)
}

/// A NUL in a path segment (a UID, a partition name) cannot be in anything stored, and would
/// reach PostgreSQL, which refuses it in text: a 400 here, for every route at once.
async fn no_nul_in_path(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().path().contains("%00") {
        return DicomError::BadRequest("the path contains a NUL character (%00)".into())
            .into_response();
    }
    next.run(req).await
}

fn data_routes() -> Router<AppState> {
    use axum::routing::{delete, post};
    Router::new()
        .route(
            "/studies",
            post(stow::post).put(stow::put).get(qido::studies),
        )
        .route(
            "/studies/{study}",
            post(stow::post)
                .put(stow::put)
                .get(wado::retrieve)
                .delete(wado::delete),
        )
        .route("/studies/{study}/metadata", get(wado::metadata))
        .route("/studies/{study}/series", get(qido::series))
        .route("/studies/{study}/instances", get(qido::instances))
        .route("/series", get(qido::series))
        .route("/instances", get(qido::instances))
        .route(
            "/studies/{study}/series/{series}",
            get(wado::retrieve).delete(wado::delete),
        )
        .route(
            "/studies/{study}/series/{series}/metadata",
            get(wado::metadata),
        )
        .route(
            "/studies/{study}/series/{series}/instances",
            get(qido::instances),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}",
            get(wado::retrieve).merge(delete(wado::delete)),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(wado::metadata),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            get(wado::frames),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(wado::rendered),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            get(wado::rendered),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{*path}",
            get(wado::bulkdata),
        )
}

/// Opens the index and the blob store of one service and returns its routes.
pub async fn service(config: DicomServiceConfig, prefix: &str) -> anyhow::Result<(Router, Index)> {
    let url = config.postgres.resolve_url()?;
    let index = Index::open(&url, config.postgres.pool_size)
        .await
        .map_err(|e| anyhow::anyhow!("DicomService '{}': its database: {e}", config.name))?;
    let state = AppState::new(config, index.clone(), prefix)?;
    tokio::spawn(extended::reindex_worker(state.clone()));
    // Before any file is stored: a service sharing the store must see this one's mark.
    if let Err(e) = state.blobs.mark_owner(&sweep::owner(&state.config)).await {
        tracing::warn!(service = %state.config.name, error = %e, "cannot mark the blob store as this service's");
    }
    if state.config.orphan_sweep.enabled {
        tokio::spawn(sweep::worker(state.clone()));
    }
    Ok((router(state), index))
}
