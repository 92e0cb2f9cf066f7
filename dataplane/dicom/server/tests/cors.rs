//! CORS as a browser DICOMweb viewer meets it: a preflight is answered without a token from an
//! allowed origin only, and answers carry the allowance and expose what a viewer reads.

mod common;

use common::*;
use hds_common::config::CorsConfig;
use reqwest::{Method, Response};

const VIEWER: &str = "https://viewer.example";

async fn server() -> Secured {
    start_secured(|cfg| {
        cfg.cors = Some(CorsConfig {
            origins: vec![VIEWER.into()],
            headers: vec!["authorization".into(), "accept".into()],
            methods: vec![],
            max_age: Some(600),
            allow_credentials: false,
        })
    })
    .await
}

async fn preflight(s: &TestServer, path: &str, origin: &str, method: &str) -> Response {
    s.http
        .request(Method::OPTIONS, s.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

fn h<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn preflights_are_answered_for_allowed_origins_only() {
    let t = server().await;
    let r = preflight(&t.s, "v2/studies", VIEWER, "GET").await;
    assert_eq!(r.status(), 200, "no token needed");
    assert_eq!(h(&r, "access-control-allow-origin"), Some(VIEWER));
    assert_eq!(h(&r, "access-control-max-age"), Some("600"));
    assert!(
        h(&r, "access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    // No methods listed: every method of the API, PATCH of extended query tags included.
    let methods = h(&r, "access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let r = preflight(
        &t.s,
        "studies/1.2/series",
        "https://elsewhere.example",
        "GET",
    )
    .await;
    assert_eq!(h(&r, "access-control-allow-origin"), None);
    let r =
        t.s.http
            .get(t.s.url("studies"))
            .header("origin", "https://elsewhere.example")
            .bearer_auth(t.token("viewer", &["DICOM Data Reader"]))
            .send()
            .await
            .unwrap();
    assert_eq!(h(&r, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn answers_carry_the_allowance_and_the_headers_a_viewer_reads() {
    let t = server().await;
    let owner = t.token("uploader", &["DICOM Data Owner"]);
    let (ctype, body) = multipart(&[("application/dicom", &file("CT_small.dcm"))]);
    let r =
        t.s.http
            .post(t.s.url("studies"))
            .header("content-type", ctype)
            .bearer_auth(&owner)
            .body(body)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    // A QIDO answer, with a warning (a lower level's attribute) a viewer may want to show.
    let r =
        t.s.http
            .get(t.s.url("studies?PatientID=1CT1&Modality=CT"))
            .header("origin", VIEWER)
            .header("accept", "application/dicom+json")
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "access-control-allow-origin"), Some(VIEWER));
    assert!(h(&r, "vary").unwrap_or_default().contains("origin"));
    let exposed = h(&r, "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    for name in [
        "content-type",
        "content-location",
        "location",
        "warning",
        "etag",
        "erroneous-dicom-attributes",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
    // Even a 401 must be readable, or the viewer cannot tell its user to sign in.
    let r =
        t.s.http
            .get(t.s.url("studies"))
            .header("origin", VIEWER)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h(&r, "access-control-allow-origin"), Some(VIEWER));
}

#[test]
fn a_config_browsers_would_refuse_stops_the_service_before_it_starts() {
    let mut cfg = config();
    cfg.cors = Some(CorsConfig {
        origins: vec!["*".into()],
        allow_credentials: true,
        ..Default::default()
    });
    let err = hds_dicom_server::check_config(&cfg).unwrap_err();
    assert!(err.contains("allowCredentials"), "{err}");
}
