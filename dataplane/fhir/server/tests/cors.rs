//! CORS as a browser meets it: preflights are answered before authentication (they carry no
//! token), only the configured origins are allowed, and actual responses expose the headers FHIR
//! clients read.

mod common;

use common::*;
use hds_common::config::CorsConfig;
use reqwest::{Method, Response};

const APP: &str = "https://app.example";

async fn server(cors: CorsConfig) -> TestServer {
    // Auth on: nothing here may need a token.
    start_secured(|cfg| cfg.cors = Some(cors)).await.s
}

fn configured() -> CorsConfig {
    CorsConfig {
        origins: vec![APP.into()],
        headers: vec!["authorization".into(), "content-type".into()],
        methods: vec!["GET".into(), "POST".into(), "PUT".into()],
        max_age: Some(600),
        allow_credentials: true,
    }
}

async fn preflight(s: &TestServer, origin: &str, method: &str, headers: &str) -> Response {
    s.http
        .request(Method::OPTIONS, s.url("Patient"))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

fn h<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_from_an_allowed_origin_is_answered_without_a_token() {
    let s = server(configured()).await;
    let r = preflight(&s, APP, "POST", "authorization,content-type").await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "access-control-allow-origin"), Some(APP));
    assert_eq!(h(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(h(&r, "access-control-max-age"), Some("600"));
    let methods = h(&r, "access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "PUT"] {
        assert!(methods.contains(m), "{methods}");
    }
    assert!(!methods.contains("DELETE"), "{methods}");
    let headers = h(&r, "access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    // Caches must keep answers for different origins apart.
    let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
    assert!(
        vary.iter().any(|v| v.to_str().unwrap().contains("origin")),
        "{vary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_get_no_allowance() {
    let s = server(configured()).await;
    let r = preflight(&s, "https://evil.example", "POST", "authorization").await;
    assert_eq!(h(&r, "access-control-allow-origin"), None);
    // An actual request from elsewhere still meets authentication, and no CORS allowance.
    let r = s
        .http
        .get(s.url("Patient"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h(&r, "access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_responses_carry_the_allowance_and_exposed_headers() {
    let s = server(configured()).await;
    // Even a 401 must be readable by the app, or it cannot tell the user to sign in.
    let r = s
        .http
        .get(s.url("Patient"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h(&r, "access-control-allow-origin"), Some(APP));
    let r = s
        .http
        .get(s.url("metadata"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "access-control-allow-origin"), Some(APP));
    let exposed = h(&r, "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    for name in ["etag", "location", "content-location", "last-modified"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_as_azure_writes_them() {
    let s = server(CorsConfig {
        origins: vec!["*".into()],
        headers: vec!["*".into()],
        methods: vec![],
        max_age: None,
        allow_credentials: false,
    })
    .await;
    let r = preflight(
        &s,
        "https://any.example",
        "DELETE",
        "x-custom,authorization",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(h(&r, "access-control-allow-headers"), Some("*"));
    // No methods listed: the FHIR API's methods.
    assert!(
        h(&r, "access-control-allow-methods")
            .unwrap()
            .contains("DELETE")
    );

    // `*` headers with credentials echo the request's headers (a literal `*` is not allowed).
    let s = server(CorsConfig {
        origins: vec![APP.into()],
        headers: vec!["*".into()],
        methods: vec!["*".into()],
        max_age: None,
        allow_credentials: true,
    })
    .await;
    let r = preflight(&s, APP, "PATCH", "x-custom").await;
    assert_eq!(h(&r, "access-control-allow-headers"), Some("x-custom"));
    assert_eq!(h(&r, "access-control-allow-methods"), Some("PATCH"));
}

#[test]
fn a_wildcard_origin_with_credentials_is_refused_before_start() {
    let mut cfg = config();
    cfg.cors = Some(CorsConfig {
        origins: vec!["*".into()],
        allow_credentials: true,
        ..Default::default()
    });
    let err = hds_fhir_server::check_config(&cfg).unwrap_err();
    assert!(err.contains("allowCredentials"), "{err}");
}
