//! Cross-origin access, configured per service as Azure's `corsConfiguration` is. The layer sits
//! outside authentication, so a browser's preflight (which never carries a token) is answered.

use axum::http::{HeaderValue, Method, header};
use hds_common::config::CorsConfig;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

/// Methods allowed when the config lists none: every method of the FHIR REST API.
const FHIR_METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The layer for `c`, or why the config cannot work. Browsers refuse credentialed responses
/// that allow any origin, so that combination is an error rather than a silently broken
/// service; `*` headers or methods with credentials echo what the browser asks for instead.
pub fn layer(c: &CorsConfig) -> Result<CorsLayer, String> {
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
        layer.allow_methods(FHIR_METHODS)
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
                    .parse::<header::HeaderName>()
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
    Ok(layer.expose_headers([
        header::ETAG,
        header::LOCATION,
        header::CONTENT_LOCATION,
        header::LAST_MODIFIED,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(origins: &[&str], headers: &[&str], credentials: bool) -> CorsConfig {
        CorsConfig {
            origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            headers: headers.iter().map(|s| (*s).to_owned()).collect(),
            methods: vec![],
            max_age: None,
            allow_credentials: credentials,
        }
    }

    #[test]
    fn unusable_configs_are_errors_not_panics() {
        assert!(layer(&cfg(&["*"], &[], true)).is_err());
        assert!(layer(&cfg(&["https://a\nb"], &[], false)).is_err());
        assert!(layer(&cfg(&["https://a"], &["bad header"], false)).is_err());
        // tower-http panics on `*` headers with credentials; we mirror the request instead.
        let _ = layer(&cfg(&["https://a"], &["*"], true)).unwrap();
        let _ = layer(&cfg(&["*"], &["*"], false)).unwrap();
    }
}
