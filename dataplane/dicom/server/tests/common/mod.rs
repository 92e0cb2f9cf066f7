//! A DICOM service on a fresh database of the real PostgreSQL and a fresh blob directory,
//! served on a random port; pydicom's bundled test files as instances.

#![allow(dead_code)]

use std::path::PathBuf;

use hds_auth::testing::{Authority, TestKey, ec_key, now, sign, start_authority};
use hds_common::config::{
    AuditConfig, AuthConfig, AuthMode, DicomLimits, DicomServiceConfig, DicomStorageConfig,
    PostgresConfig,
};
use reqwest::Client;

pub struct TestServer {
    pub base: String,
    pub http: Client,
    pub db_url: String,
    pub blob_dir: tempfile::TempDir,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }
}

pub fn config() -> DicomServiceConfig {
    DicomServiceConfig {
        name: "test".into(),
        workspace: "ws".into(),
        listen: None,
        base_url: None,
        postgres: PostgresConfig::from_url(""),
        auth: AuthConfig {
            mode: AuthMode::None,
            ..Default::default()
        },
        cors: None,
        // Records to stdout would drown the test output; tests/audit.rs reads them from a file.
        audit: AuditConfig {
            log: "off".into(),
            ..Default::default()
        },
        storage: DicomStorageConfig::default(),
        limits: DicomLimits::default(),
        validation: Default::default(),
        enable_data_partitions: false,
        fhir_sync: None,
        orphan_sweep: Default::default(),
    }
}

pub async fn start() -> TestServer {
    start_with(config()).await
}

pub async fn start_with(mut cfg: DicomServiceConfig) -> TestServer {
    let url = hds_common::db::fresh_test_database().await;
    let blob_dir = tempfile::tempdir().unwrap();
    cfg.postgres = PostgresConfig::from_url(url.clone());
    cfg.storage.url = Some(format!("file://{}", blob_dir.path().display()));
    let (app, _) = hds_dicom_server::service(cfg, "")
        .await
        .expect("service starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // With the peer address, as `hds` serves it: audit records carry it.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestServer {
        base: format!("http://{addr}"),
        http: Client::new(),
        db_url: url,
        blob_dir,
    }
}

/// A service that checks tokens of a loopback authority, and the means to sign them.
pub struct Secured {
    pub s: TestServer,
    pub authority: Authority,
    pub key: TestKey,
}

pub const AUDIENCE: &str = "https://dicom.test";

impl Secured {
    /// A token of `client` (its subject `<client>-sub`) holding `roles`.
    pub fn token(&self, client: &str, roles: &[&str]) -> String {
        sign(
            &self.key,
            &serde_json::json!({"iss": self.authority.issuer, "aud": AUDIENCE,
                "sub": format!("{client}-sub"), "azp": client,
                "exp": now() + 300, "iat": now(), "roles": roles}),
        )
    }
}

pub async fn start_secured(change: impl FnOnce(&mut DicomServiceConfig)) -> Secured {
    let authority = start_authority().await;
    let key = ec_key("k1");
    authority.jwks.lock().unwrap().push(key.jwk.clone());
    let mut cfg = config();
    cfg.auth = AuthConfig {
        mode: AuthMode::Oidc,
        authority: Some(authority.issuer.clone()),
        audience: Some(AUDIENCE.into()),
        ..Default::default()
    };
    change(&mut cfg);
    Secured {
        s: start_with(cfg).await,
        authority,
        key,
    }
}

/// pydicom's test files: `HDS_DICOM_TEST_FILES`, else asked of the Python with pydicom
/// (`HDS_PYTHON`, else `python3`). Missing files fail the test; they are never skipped.
pub fn test_files() -> PathBuf {
    if let Ok(d) = std::env::var("HDS_DICOM_TEST_FILES") {
        return PathBuf::from(d);
    }
    let python = std::env::var("HDS_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import pydicom,os;print(os.path.join(os.path.dirname(pydicom.__file__),'data','test_files'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{python} cannot run ({e}); set HDS_DICOM_TEST_FILES or HDS_PYTHON"));
    assert!(
        out.status.success(),
        "pydicom is not importable by {python}: set HDS_PYTHON to the e2e venv's python (scripts/test.sh does) or HDS_DICOM_TEST_FILES"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn file(name: &str) -> Vec<u8> {
    let p = test_files().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub const MULTIPART_DICOM: &str = "multipart/related; type=\"application/dicom\"";

/// A STOW body of these parts (each with its content type) and its Content-Type.
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XyZhdsTestBoundary";
    let mut body = Vec::new();
    for (ct, data) in parts {
        body.extend(format!("--{boundary}\r\nContent-Type: {ct}\r\n\r\n").into_bytes());
        body.extend_from_slice(data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").into_bytes());
    (format!("{MULTIPART_DICOM}; boundary={boundary}"), body)
}

/// The parts of a multipart/related response: (headers text, body).
pub fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"')
        .to_owned();
    let delim = format!("--{boundary}").into_bytes();
    let mut out = Vec::new();
    let mut positions = Vec::new();
    let mut i = 0;
    while i + delim.len() <= body.len() {
        if body[i..].starts_with(&delim) {
            positions.push(i);
            i += delim.len();
        } else {
            i += 1;
        }
    }
    for w in positions.windows(2) {
        let part = &body[w[0] + delim.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = part
            .windows(4)
            .position(|x| x == b"\r\n\r\n")
            .expect("part headers end");
        out.push((
            String::from_utf8_lossy(&part[..split]).into_owned(),
            part[split + 4..].to_vec(),
        ));
    }
    out
}

pub async fn stow(s: &TestServer, path: &str, parts: &[(&str, &[u8])]) -> (u16, serde_json::Value) {
    let (ct, body) = multipart(parts);
    let r = s
        .http
        .post(s.url(path))
        .header("content-type", ct)
        .header("accept", "application/dicom+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The failure reasons of a STOW answer, in order.
pub fn failure_reasons(answer: &serde_json::Value) -> Vec<u64> {
    answer["00081198"]["Value"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["00081197"]["Value"][0].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

pub fn referenced(answer: &serde_json::Value) -> usize {
    answer["00081199"]["Value"].as_array().map_or(0, Vec::len)
}

pub async fn get(s: &TestServer, path: &str, accept: &str) -> reqwest::Response {
    s.http
        .get(s.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

/// A QIDO (or other DICOM JSON) answer: its status and body (Null when empty).
pub async fn json(s: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let r = get(s, path, "application/dicom+json").await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// CT_small under another SOP Instance UID of the same length (every occurrence, meta included).
pub fn variant(ct: &[u8], n: usize) -> Vec<u8> {
    let old = b"1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";
    let new = format!("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.{:05}", 20000 + n);
    let mut out = ct.to_vec();
    let mut i = 0;
    while let Some(at) = out[i..].windows(old.len()).position(|w| w == old) {
        out[i + at..i + at + old.len()].copy_from_slice(new.as_bytes());
        i += at + old.len();
    }
    out
}

/// The operation at `href` (an extended query tag's reindex) once it has completed.
pub async fn completed(s: &TestServer, href: &str) -> serde_json::Value {
    let mut done = serde_json::Value::Null;
    for _ in 0..100 {
        done = s.http.get(href).send().await.unwrap().json().await.unwrap();
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    done
}
