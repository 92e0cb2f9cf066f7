//! A FHIR service on a fresh database of the real PostgreSQL, served on a random port.

#![allow(dead_code)]

use hds_common::config::{AuthMode, FhirServiceConfig};
use reqwest::{Client, Response};
use serde_json::Value;

pub const FHIR_JSON: &str = "application/fhir+json";

pub struct TestServer {
    pub base: String,
    pub http: Client,
    /// The service's own database, for tests that look at what was stored.
    pub db_url: String,
}

#[allow(unused_imports)]
pub use hds_fhir_server::testing::{admin_url, config};

pub async fn start() -> TestServer {
    start_with(config()).await
}

pub async fn start_with(cfg: FhirServiceConfig) -> TestServer {
    let (base, db_url) = hds_fhir_server::testing::serve(cfg).await;
    TestServer {
        base,
        http: Client::new(),
        db_url,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .header("content-type", FHIR_JSON)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .header("content-type", FHIR_JSON)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.http.delete(self.url(path)).send().await.unwrap()
    }

    /// Creates a resource and returns its body as stored.
    pub async fn create(&self, body: &Value) -> Value {
        let rt = body["resourceType"].as_str().unwrap();
        let r = self.post(rt, body).await;
        assert_eq!(r.status(), 201, "create {rt}: {}", r.text().await.unwrap());
        r.json().await.unwrap()
    }
}

pub async fn json(r: Response) -> Value {
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an OperationOutcome response with the given status, and returns it.
pub async fn outcome(r: Response, status: u16) -> Value {
    assert_eq!(r.status(), status, "unexpected status");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with(FHIR_JSON), "content-type {ct}");
    let v = json(r).await;
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    assert!(!v["issue"].as_array().unwrap().is_empty());
    v
}

pub fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The unpacked official R4 examples package (npm hl7.fhir.r4.examples 4.0.1).
pub fn package_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    let base = std::env::var_os("HDS_R4_PACKAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hds/r4-examples")
        });
    let dir = base.join("package");
    assert!(
        dir.join("package.json").is_file(),
        "the R4 examples package is missing at {}: run scripts/fetch-r4-package.sh",
        dir.display()
    );
    dir
}

/// `Type/id` of a searchset Bundle's entries with `search.mode` = `mode`, in order.
pub fn ids_with_mode(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The audience secured test services expect.
pub const AUD: &str = "https://fhir.test";

/// A service that checks tokens: a loopback OpenID authority publishing `key` (kid `k1`), the
/// service trusting it for [`AUD`].
pub struct Secured {
    pub s: TestServer,
    pub a: hds_auth::testing::Authority,
    pub key: hds_auth::testing::TestKey,
}

/// Starts a [`Secured`] service; `tune` adjusts its config first.
pub async fn start_secured(tune: impl FnOnce(&mut FhirServiceConfig)) -> Secured {
    let a = hds_auth::testing::start_authority().await;
    let key = hds_auth::testing::ec_key("k1");
    *a.jwks.lock().unwrap() = vec![key.jwk.clone()];
    let mut cfg = config();
    cfg.auth.mode = AuthMode::Oidc;
    cfg.auth.authority = Some(a.issuer.clone());
    cfg.auth.audience = Some(AUD.into());
    tune(&mut cfg);
    Secured {
        s: start_with(cfg).await,
        a,
        key,
    }
}

/// Polls an asynchronous job's status URL until its result (200): each 202 carries X-Progress
/// and Retry-After, as the async pattern promises.
pub async fn poll_job(s: &TestServer, status: &str) -> Value {
    for _ in 0..300 {
        let r = s.http.get(status).send().await.unwrap();
        match r.status().as_u16() {
            202 => {
                assert!(r.headers().contains_key("x-progress"));
                assert!(r.headers().contains_key("retry-after"));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            200 => return r.json().await.unwrap(),
            other => panic!("status {other}: {}", r.text().await.unwrap()),
        }
    }
    panic!("the job at {status} did not finish in 30 s");
}
