//! Cross-origin access, configured per service as Azure's `corsConfiguration` is (the layer is
//! [`hds_common::cors`]). It sits outside authentication, so a browser's preflight (which never
//! carries a token) is answered.

use axum::http::header;
use hds_common::config::CorsConfig;
use tower_http::cors::CorsLayer;

/// What FHIR clients read of an answer: versions, where a resource is, when it changed.
const EXPOSED: [header::HeaderName; 4] = [
    header::ETAG,
    header::LOCATION,
    header::CONTENT_LOCATION,
    header::LAST_MODIFIED,
];

/// The layer for `c` (see [`hds_common::cors::layer`]), or why the config cannot work.
pub fn layer(c: &CorsConfig) -> Result<CorsLayer, String> {
    hds_common::cors::layer(c, &EXPOSED)
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
