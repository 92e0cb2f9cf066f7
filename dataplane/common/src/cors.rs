//! Cross-origin access, configured per service as Azure's `corsConfiguration` is. Services put
//! the layer outside authentication, so a browser's preflight (which never carries a token) is
//! answered; each names the response headers its browser clients must be able to read.

use axum::http::{HeaderValue, Method, header::HeaderName};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// Methods allowed when the config lists none: every method of the services' REST APIs.
pub const REST_METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The layer for `c`, exposing `expose` to scripts, or why the config cannot work. Browsers
/// refuse credentialed responses that allow any origin, so that combination is an error rather
/// than a silently broken service; `*` headers or methods with credentials echo what the browser
/// asks for instead.
pub fn layer(c: &CorsConfig, expose: &[HeaderName]) -> Result<CorsLayer, String> {
    let any = |list: &[String]| list.iter().any(|v| v.trim() == "*");
    let mut layer = CorsLayer::new();
    if any(&c.origins) {
        if c.allow_credentials {
            return Err("cors: allowCredentials cannot be combined with origin '*'".into());
        }
        layer = layer.allow_origin(AllowOrigin::any());
    } else {
        let mut origins = Vec::new();
        for o in &c.origins {
            let o = o.trim().trim_end_matches('/');
            origins.push(
                o.parse::<HeaderValue>()
                    .map_err(|_| format!("cors: '{o}' is not a valid origin"))?,
            );
        }
        layer = layer.allow_origin(origins);
    }
    layer = if any(&c.methods) {
        if c.allow_credentials {
            layer.allow_methods(AllowMethods::mirror_request())
        } else {
            layer.allow_methods(tower_http::cors::Any)
        }
    } else if c.methods.is_empty() {
        layer.allow_methods(REST_METHODS)
    } else {
        let mut methods = Vec::new();
        for m in &c.methods {
            methods.push(
                Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("cors: '{m}' is not an HTTP method"))?,
            );
        }
        layer.allow_methods(methods)
    };
    layer = if any(&c.headers) {
        if c.allow_credentials {
            layer.allow_headers(AllowHeaders::mirror_request())
        } else {
            layer.allow_headers(tower_http::cors::Any)
        }
    } else {
        let mut headers = Vec::new();
        for h in &c.headers {
            headers.push(
                h.trim()
                    .parse::<HeaderName>()
                    .map_err(|_| format!("cors: '{h}' is not a header name"))?,
            );
        }
        layer.allow_headers(headers)
    };
    if let Some(age) = c.max_age {
        layer = layer.max_age(std::time::Duration::from_secs(u64::from(age)));
    }
    if c.allow_credentials {
        layer = layer.allow_credentials(true);
    }
    Ok(layer.expose_headers(expose.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::{Layer, ServiceExt, service_fn};

    /// The headers of an answer to a cross-origin GET, through the layer for `c`.
    async fn answer(c: &CorsConfig, expose: &[HeaderName]) -> axum::http::HeaderMap {
        let svc = layer(c, expose)
            .unwrap()
            .layer(service_fn(|_: Request<()>| async {
                Ok::<_, std::convert::Infallible>(axum::http::Response::new(()))
            }));
        let req = Request::builder()
            .method(Method::GET)
            .uri("/x")
            .header("origin", "https://viewer.example")
            .body(())
            .unwrap();
        svc.oneshot(req).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn each_service_names_the_headers_it_exposes() {
        let c = CorsConfig {
            origins: vec!["https://viewer.example/".into()],
            ..CorsConfig::default()
        };
        let h = answer(&c, &[HeaderName::from_static("warning")]).await;
        assert_eq!(h["access-control-allow-origin"], "https://viewer.example");
        assert_eq!(h["access-control-expose-headers"], "warning");
        let h = answer(&c, &[]).await;
        assert!(h.get("access-control-expose-headers").is_none());
    }
}
