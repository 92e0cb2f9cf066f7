//! The FHIR R4 REST API of one FhirService.
//!
//! [`router`] builds the axum routes. Each handler lives in [`interactions`], shares the
//! HTTP-level helpers of [`http`], and turns every failure into a [`error::FhirError`], which
//! renders as an OperationOutcome. Storage is [`hds_fhir_store`]; matching is
//! [`hds_fhir_search`]; validation is [`hds_fhir_model`].

pub mod bundle;
pub mod error;
pub mod http;
pub mod interactions;
pub mod subset;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hds_common::config::{AuthMode, CorsConfig, FhirServiceConfig};
use hds_fhir_search::SearchParams;
use hds_fhir_store::Store;
use serde_json::Value;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::error::FhirError;
use interactions::{capability, history, instance, reindex, search, type_level};

pub mod access;

#[derive(Clone)]
pub struct AppState {
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
}

impl AppState {
    /// Loads the service's custom search parameters and starts its `$reindex` worker (which
    /// resumes any job a previous run left unfinished).
    pub async fn new(
        config: FhirServiceConfig,
        store: Store,
        path_prefix: &str,
    ) -> Result<Self, hds_fhir_store::StoreError> {
        let capability = Arc::new(capability::capability_statement(&config));
        let search = Arc::new(SearchParams::default());
        search.reload(&store.connection().await?).await?;
        let reindex_wake = Arc::new(Notify::new());
        tokio::spawn(hds_fhir_search::reindex::worker(
            store.pool().clone(),
            search.clone(),
            reindex_wake.clone(),
        ));
        Ok(Self {
            base_url: config
                .base_url
                .as_ref()
                .map(|b| b.trim_end_matches('/').to_owned()),
            path_prefix: path_prefix.trim_end_matches('/').to_owned(),
            tokens: token_validator(&config),
            store,
            config: Arc::new(config),
            capability,
            search,
            reindex_wake,
        })
    }

    /// The search parameters in force now.
    pub fn registry(&self) -> Arc<hds_fhir_search::Registry> {
        self.search.current()
    }
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
        .route("/", get(search::system_get).post(bundle_unsupported))
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
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let limit = usize::try_from(state.config.limits.max_request_body_bytes).unwrap_or(usize::MAX);
    let cors = state.config.cors.as_ref().map(cors_layer);
    let service = state.config.name.clone();
    let mut router = Router::new()
        .route("/metadata", get(capability::metadata))
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
    router
}

async fn negotiate(req: Request, next: Next) -> Response {
    let q = http::query_pairs(req.uri().query());
    match http::negotiate(req.headers(), &q) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The authorities a service trusts: its configured one, with the audience it expects (by
/// default its own URL, as in Azure).
fn token_validator(config: &FhirServiceConfig) -> Option<hds_auth::Validator> {
    if config.auth.mode == AuthMode::None {
        return None;
    }
    let audiences: Vec<String> = config
        .auth
        .audience
        .clone()
        .or_else(|| config.base_url.clone())
        .into_iter()
        .collect();
    let authorities: Vec<hds_auth::AuthorityConfig> = config
        .auth
        .authority
        .iter()
        .map(|issuer| hds_auth::AuthorityConfig {
            issuer: issuer.clone(),
            audiences: audiences.clone(),
            roles_claim: config
                .auth
                .roles_claim
                .clone()
                .unwrap_or_else(|| "roles".into()),
        })
        .collect();
    if authorities.is_empty() {
        tracing::error!(
            service = %config.name,
            "no token authority is configured (auth.authority): every data request will be refused with 401"
        );
    } else if audiences.is_empty() {
        tracing::warn!(service = %config.name, "no audience configured or derivable from the base URL: tokens for any audience of the authority are accepted");
    }
    Some(hds_auth::Validator::new(hds_auth::ValidatorConfig {
        authorities,
        leeway: std::time::Duration::from_secs(config.auth.leeway_seconds.unwrap_or(60)),
    }))
}

/// Every data request carries a valid token whose roles grant the data action its endpoint
/// declares in [`access::ENDPOINTS`]; the caller then travels with the request as a
/// [`hds_auth::Principal`].
async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(tokens) = &s.tokens else {
        return next.run(req).await;
    };
    let header_value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let principal = match tokens.authorize_header(header_value).await {
        Ok(p) => p,
        Err(e) => {
            let description = e.to_string();
            let challenge = format!(
                "Bearer error=\"{}\", error_description=\"{}\"",
                e.code(),
                description.replace('"', "'")
            );
            return FhirError::new(StatusCode::UNAUTHORIZED, "login", description)
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge)
                        .unwrap_or(HeaderValue::from_static("Bearer error=\"invalid_token\"")),
                )
                .into_response();
        }
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| {
            m.as_str()
                .strip_prefix(s.path_prefix.as_str())
                .unwrap_or(m.as_str())
                .to_owned()
        })
        .unwrap_or_default();
    let route = if route.is_empty() {
        "/".to_owned()
    } else {
        route
    };
    // Nested under `hds up`, the router may see its path with or without the mount point.
    let path = req.uri().path();
    let path = path
        .strip_prefix(s.path_prefix.as_str())
        .unwrap_or(path)
        .to_owned();
    let Some(action) = access::required_action(req.method(), &route, &path) else {
        tracing::error!(%route, method = %req.method(), "no data action is declared for this endpoint; refusing it");
        return FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "no data action is declared for this endpoint, so no one may call it",
        )
        .into_response();
    };
    let roles = principal.roles.iter().map(String::as_str);
    if !hds_auth::actions::allowed(roles, hds_auth::actions::ServiceKind::Fhir, action) {
        return FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the caller's roles ({}) do not grant the data action '{action}' this request needs",
                if principal.roles.is_empty() {
                    "none".to_owned()
                } else {
                    principal.roles.join(", ")
                }
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
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

async fn bundle_unsupported() -> FhirError {
    FhirError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not-supported",
        "batch and transaction Bundles are not supported by this server version",
    )
}

fn cors_layer(c: &CorsConfig) -> CorsLayer {
    let mut layer = CorsLayer::new();
    layer = if c.origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let origins: Vec<HeaderValue> = c.origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(origins)
    };
    let methods: Vec<Method> = c.methods.iter().filter_map(|m| m.parse().ok()).collect();
    if !methods.is_empty() {
        layer = layer.allow_methods(methods);
    }
    if c.headers.iter().any(|h| h == "*") {
        layer = layer.allow_headers(tower_http::cors::Any);
    } else {
        let headers: Vec<header::HeaderName> =
            c.headers.iter().filter_map(|h| h.parse().ok()).collect();
        layer = layer.allow_headers(headers);
    }
    if let Some(age) = c.max_age {
        layer = layer.max_age(std::time::Duration::from_secs(u64::from(age)));
    }
    if c.allow_credentials {
        layer = layer.allow_credentials(true);
    }
    layer.expose_headers([
        header::ETAG,
        header::LOCATION,
        header::CONTENT_LOCATION,
        header::LAST_MODIFIED,
    ])
}
