//! The FHIR R4 REST API of one FhirService.
//!
//! [`router`] builds the axum routes. Each handler lives in [`interactions`], shares the
//! HTTP-level helpers of [`http`], and turns every failure into a [`error::FhirError`], which
//! renders as an OperationOutcome. Storage is [`hds_fhir_store`]; matching is
//! [`hds_fhir_search`]; validation is [`hds_fhir_model`].

pub mod audit;
mod authn;
pub mod bundle;
mod cors;
pub mod error;
pub mod http;
pub mod interactions;
pub mod profiles;
pub mod smart;
mod smart_configuration;
pub mod subset;
pub mod testing;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hds_common::config::{AuthMode, FhirServiceConfig};
use hds_fhir_search::SearchParams;
use hds_fhir_store::Store;
use serde_json::Value;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::FhirError;
use interactions::{
    batch, capability, export, history, import, instance, reindex, search, type_level,
};

pub mod access;

/// What every handler shares. One `Arc`: axum clones the state for each layer and extractor
/// of every request, and a clone of the fields themselves (a dozen reference counts and two
/// strings) showed in search profiles.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Store,
    pub config: Arc<FhirServiceConfig>,
    /// The configured public base URL, if any.
    pub base_url: Option<String>,
    /// Where this service is mounted below the listener (`/fhir/<name>` under `hds up`).
    pub path_prefix: String,
    pub capability: Arc<Value>,
    /// R4's search parameters plus this service's own SearchParameter resources.
    pub search: Arc<SearchParams>,
    /// Wakes the `$reindex` worker when a job is queued.
    pub reindex_wake: Arc<Notify>,
    /// Checks bearer tokens; `None` only with `auth.mode: none`.
    pub tokens: Option<hds_auth::Validator>,
    pub audit: Arc<hds_common::audit::Auditor>,
    /// Runs `$export` jobs; `None` when the export storage could not be opened (logged).
    pub exporter: Option<Arc<hds_fhir_bulk::Exporter>>,
    /// Runs `$import` jobs; `None` when import is off or its storage could not be opened.
    pub importer: Option<Arc<hds_fhir_bulk::Importer>>,
    /// Runs `$bulk-delete` jobs.
    pub bulk_deleter: Arc<hds_fhir_bulk::BulkDeleter>,
    /// Compiled StructureDefinitions of this service, for `$validate` and enforcement.
    pub profiles: Arc<profiles::ProfileCache>,
}

impl AppState {
    /// Loads the service's custom search parameters and starts its `$reindex` worker (which
    /// resumes any job a previous run left unfinished).
    pub async fn new(
        config: FhirServiceConfig,
        store: Store,
        path_prefix: &str,
    ) -> Result<Self, hds_fhir_store::StoreError> {
        let config = Arc::new(config);
        let capability = Arc::new(capability::capability_statement(&config));
        let search = Arc::new(SearchParams::default());
        search.reload(&store.connection().await?).await?;
        let reindex_wake = Arc::new(Notify::new());
        tokio::spawn(hds_fhir_search::reindex::worker(
            store.pool().clone(),
            search.clone(),
            reindex_wake.clone(),
        ));
        let exporter = match files_of(&config, "exports") {
            Ok(files) => {
                let exporter = Arc::new(hds_fhir_bulk::Exporter {
                    pool: store.pool().clone(),
                    search: search.clone(),
                    files,
                    max_file_bytes: usize::try_from(config.export.max_file_bytes)
                        .unwrap_or(usize::MAX),
                    wake: Arc::new(Notify::new()),
                });
                tokio::spawn(exporter.clone().worker());
                Some(exporter)
            }
            Err(e) => {
                tracing::error!(service = %config.name, "{e}; $export is unavailable");
                None
            }
        };
        let profiles: Arc<profiles::ProfileCache> = Arc::default();
        let importer = importer(&config, &store, &search, &profiles);
        let policy = config.clone();
        let bulk_deleter = Arc::new(hds_fhir_bulk::BulkDeleter {
            pool: store.pool().clone(),
            search: search.clone(),
            keeps_history: Arc::new(move |rt| {
                interactions::keeps_history(policy.resource_version_policy.for_type(rt))
            }),
            wake: Arc::new(Notify::new()),
        });
        tokio::spawn(bulk_deleter.clone().worker());
        Ok(Self(Arc::new(Shared {
            exporter,
            importer,
            bulk_deleter,
            base_url: config
                .base_url
                .as_ref()
                .map(|b| b.trim_end_matches('/').to_owned()),
            path_prefix: path_prefix.trim_end_matches('/').to_owned(),
            tokens: authn::token_validator(&config),
            audit: Arc::new(audit::start(&config, &store)),
            store,
            config,
            capability,
            search,
            reindex_wake,
            profiles,
        })))
    }

    /// A request path (or matched route) below the service's mount point: nested under
    /// `hds up`, the router may see it with or without `/fhir/<name>`. Never empty.
    pub fn local_path<'p>(&self, path: &'p str) -> &'p str {
        hds_common::audit::below(&self.path_prefix, path)
    }

    /// A request's URL as the client would write it: the base, the path below the mount point,
    /// and the query (the `request` of an asynchronous job's result).
    pub fn request_url(&self, base: &str, uri: &axum::http::Uri) -> String {
        let local = self.local_path(uri.path());
        match uri.query() {
            Some(query) => format!("{base}{local}?{query}"),
            None => format!("{base}{local}"),
        }
    }

    /// The matched route and the path of a request, below the service's mount point.
    pub fn route_and_path(&self, req: &Request) -> (String, String) {
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("/", |m| self.local_path(m.as_str()))
            .to_owned();
        (route, self.local_path(req.uri().path()).to_owned())
    }

    /// The `$bulk-delete` runner.
    pub fn bulk_deleter(&self) -> &Arc<hds_fhir_bulk::BulkDeleter> {
        &self.bulk_deleter
    }

    /// The `$export` runner, or why there is none.
    pub fn exporter(&self) -> Result<&Arc<hds_fhir_bulk::Exporter>, FhirError> {
        self.exporter.as_ref().ok_or_else(|| {
            FhirError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the export storage of this service could not be opened (see its log)",
            )
        })
    }

    /// The `$import` runner, or why there is none.
    pub fn importer(&self) -> Result<&Arc<hds_fhir_bulk::Importer>, FhirError> {
        if !self.config.import.enabled {
            // Not 403: the caller's rights are not in question, the service's settings are.
            return Err(FhirError::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                "$import is not enabled on this service (spec.import.enabled)",
            ));
        }
        self.importer.as_ref().ok_or_else(|| {
            FhirError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the import storage of this service could not be opened (see its log)",
            )
        })
    }

    /// The search parameters in force now.
    pub fn registry(&self) -> Arc<hds_fhir_search::Registry> {
        self.search.current()
    }
}

/// Where `$export` files go, or `$import` inputs come from (`kind`): the configured store, or
/// a directory for this service under the system's temporary directory.
fn files_of(
    config: &FhirServiceConfig,
    kind: &str,
) -> Result<hds_fhir_bulk::storage::FileStore, String> {
    let configured = match kind {
        "exports" => &config.export.storage_url,
        _ => &config.import.storage_url,
    };
    let url = match configured {
        Some(u) => u.clone(),
        None => {
            let dir = std::env::temp_dir()
                .join(format!("hds-{kind}"))
                .join(&config.workspace)
                .join(&config.name);
            format!("file://{}", dir.display())
        }
    };
    hds_fhir_bulk::storage::FileStore::open(&url)
}

/// The `$import` runner of an import-enabled service, with its worker started. Every line
/// passes the checks of an ordinary write; SearchParameters it writes reload the registry.
fn importer(
    config: &Arc<FhirServiceConfig>,
    store: &Store,
    search: &Arc<SearchParams>,
    profiles: &Arc<profiles::ProfileCache>,
) -> Option<Arc<hds_fhir_bulk::Importer>> {
    if !config.import.enabled {
        return None;
    }
    let files = files_of(config, "imports")
        .inspect_err(|e| tracing::error!(service = %config.name, "{e}; $import is unavailable"))
        .ok()?;
    let (cfg, reg) = (config.clone(), search.clone());
    let importer = Arc::new(hds_fhir_bulk::Importer {
        pool: store.pool().clone(),
        files,
        prepare: Arc::new(move |expected, resource| {
            interactions::import::prepare(&reg.current(), &cfg, expected, resource)
        }),
        check: config
            .validation
            .enforce_profiles
            .then(|| interactions::import::profile_check(profiles.clone())),
        wake: Arc::new(Notify::new()),
        search_parameters_written: Arc::new(Notify::new()),
    });
    let (written, search, store) = (
        importer.search_parameters_written.clone(),
        search.clone(),
        store.clone(),
    );
    tokio::spawn(async move {
        loop {
            written.notified().await;
            reindex::reload_registry(&store, &search).await;
        }
    });
    tokio::spawn(importer.clone().worker());
    Some(importer)
}

/// What in a config would make the service misbehave, found before it starts.
pub fn check_config(config: &FhirServiceConfig) -> Result<(), String> {
    if let Some(c) = &config.cors {
        cors::layer(c).map(drop)?;
    }
    files_of(config, "exports").map(drop)?;
    if config.import.enabled {
        files_of(config, "imports").map(drop)?;
    }
    audit::check(config)
}

/// The routes of one FHIR service. `/metadata` is public; everything else passes the auth layer.
pub fn router(state: AppState) -> Router {
    if state.config.auth.mode == AuthMode::None {
        tracing::warn!(
            service = %state.config.name,
            "AUTHENTICATION IS OFF (auth.mode: none): anyone who can reach this FHIR service can read and change all of its data"
        );
    }
    let protected = Router::new()
        .route("/", get(search::system_get).post(batch::process))
        .route("/_search", post(search::system_post))
        .route("/_history", get(history::system))
        .route(
            "/{type}",
            get(search::search_get)
                .post(type_level::create)
                .put(type_level::conditional_update)
                .delete(type_level::conditional_delete)
                .patch(type_level::conditional_patch),
        )
        .route("/{type}/_search", post(search::search_post))
        .route("/{type}/_history", get(history::type_level))
        .route(
            "/{type}/{id}",
            get(instance::read)
                .put(instance::update)
                .delete(instance::delete)
                .patch(instance::patch),
        )
        .route("/{type}/{id}/_history", get(history::instance))
        .route("/{type}/{id}/_history/{vid}", get(instance::vread))
        .route("/$export", get(export::system).post(export::system))
        .route(
            "/{type}/$export",
            get(export::patient).post(export::patient),
        )
        .route(
            "/{type}/{id}/$export",
            get(export::group).post(export::group),
        )
        .route(
            "/{type}/$validate",
            post(interactions::validate::type_level),
        )
        .route(
            "/{type}/{id}/$validate",
            get(interactions::validate::instance_get).post(interactions::validate::instance_post),
        )
        .route(
            "/{type}/{id}/$everything",
            get(interactions::everything::everything)
                .post(interactions::everything::everything_post),
        )
        .route(
            "/{type}/{id}/$purge-history",
            axum::routing::delete(instance::purge_history),
        )
        .route(
            "/_operations/export/{id}",
            get(export::status).delete(export::cancel),
        )
        .route("/_operations/export/{id}/{file}", get(export::file))
        .route("/$import", post(import::kick_off))
        .route(
            "/$bulk-delete",
            axum::routing::delete(interactions::bulk_delete::system),
        )
        .route(
            "/{type}/$bulk-delete",
            axum::routing::delete(interactions::bulk_delete::type_level),
        )
        .route(
            "/_operations/bulk-delete/{id}",
            get(interactions::bulk_delete::status).delete(interactions::bulk_delete::cancel),
        )
        .route(
            "/_operations/import/{id}",
            get(import::status).delete(import::cancel),
        )
        .route("/_operations/import/{id}/errors/{n}", get(import::errors))
        .route("/$reindex", post(reindex::start_all))
        .route("/{type}/$reindex", post(reindex::start_type))
        .route(
            "/_operations/reindex/{id}",
            get(reindex::status).delete(reindex::cancel),
        )
        .route("/{comp}/{id}/{type}", get(search::compartment_get))
        .route(
            "/{comp}/{id}/{type}/_search",
            post(search::compartment_post),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            reindex::reload_after_search_parameter_write,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            import::initial_mode_guard,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authn::authenticate,
        ));
    let limit = usize::try_from(state.config.limits.max_request_body_bytes).unwrap_or(usize::MAX);
    // Runners call `check_config` first; should one not, a bad CORS config means no
    // cross-origin access, the safe side.
    let cors = state.config.cors.as_ref().and_then(|c| {
        cors::layer(c)
            .inspect_err(|e| tracing::error!(service = %state.config.name, "{e}; CORS is off"))
            .ok()
    });
    let service = state.config.name.clone();
    let audit_state = state.clone();
    let mut router = Router::new()
        .route("/metadata", get(capability::metadata))
        .route(
            "/.well-known/smart-configuration",
            get(smart_configuration::configuration),
        )
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(negotiate))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |req, next| {
            record(service.clone(), req, next)
        }))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.layer(middleware::from_fn_with_state(
        audit_state,
        hds_common::audit::record::<AppState>,
    ))
}

async fn negotiate(req: Request, next: Next) -> Response {
    let q = http::query_pairs(req.uri().query());
    match http::negotiate(req.uri().path(), req.headers(), &q) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn record(service: String, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!("hds_http_request_duration_seconds", "service" => service.clone(), "method" => method.clone())
        .record(start.elapsed().as_secs_f64());
    metrics::counter!("hds_http_requests_total", "service" => service, "method" => method, "status" => status)
        .increment(1);
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    FhirError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "internal error while processing the request; it has been logged",
    )
    .into_response()
}

async fn not_found(uri: axum::http::Uri) -> FhirError {
    FhirError::not_found(format!("no FHIR endpoint at '{}'", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> FhirError {
    FhirError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        format!("{method} is not supported on '{}'", uri.path()),
    )
}
