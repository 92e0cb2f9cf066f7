//! The few FHIR interactions the sync needs, over HTTP with a client-credentials token from the
//! Workspace issuer (renewed a minute before it expires).

use std::time::{Duration, Instant};

use hds_common::config::FhirSyncConfig;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The FHIR service answered, and will answer the same again: a 4xx other than 401/429.
    #[error("{0}")]
    Refused(String),
    /// Worth retrying: the network, the token endpoint, a 5xx.
    #[error("{0}")]
    Unavailable(String),
    #[error("the DICOM index: {0}")]
    Index(#[from] hds_dicom_index::IndexError),
    #[error("the sync is misconfigured: {0}")]
    Config(String),
}

pub struct FhirClient {
    http: Client,
    base: String,
    credentials: Option<(String, String, String)>,
    token: Mutex<Option<(String, Instant)>>,
}

const FHIR_JSON: &str = "application/fhir+json";

impl FhirClient {
    pub fn new(config: &FhirSyncConfig) -> Result<Self, SyncError> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| SyncError::Config(format!("{}: {e}", f.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let credentials = match (&config.token_url, &config.client_id, secret) {
            (Some(url), Some(id), Some(secret)) => Some((url.clone(), id.clone(), secret)),
            (None, _, _) => None,
            _ => {
                return Err(SyncError::Config(
                    "tokenUrl needs clientId and clientSecret (or clientSecretFile)".into(),
                ));
            }
        };
        Ok(Self {
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| SyncError::Config(e.to_string()))?,
            base: config.fhir_url.trim_end_matches('/').to_owned(),
            credentials,
            token: Mutex::new(None),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn bearer(&self, renew: bool) -> Result<Option<String>, SyncError> {
        let Some((url, id, secret)) = &self.credentials else {
            return Ok(None);
        };
        let mut held = self.token.lock().await;
        if !renew
            && let Some((t, until)) = held.as_ref()
            && Instant::now() < *until
        {
            return Ok(Some(t.clone()));
        }
        let r = self
            .http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", &self.base),
            ])
            .send()
            .await
            .map_err(|e| SyncError::Unavailable(format!("the token endpoint: {e}")))?;
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(SyncError::Unavailable(format!(
                "the token endpoint answered {status}: {body}"
            )));
        }
        let v: Value = r
            .json()
            .await
            .map_err(|e| SyncError::Unavailable(format!("the token endpoint: {e}")))?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| {
                SyncError::Unavailable("the token endpoint sent no access_token".into())
            })?
            .to_owned();
        let life = v["expires_in"]
            .as_u64()
            .unwrap_or(300)
            .saturating_sub(60)
            .max(10);
        *held = Some((token.clone(), Instant::now() + Duration::from_secs(life)));
        Ok(Some(token))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_none_exist: Option<&str>,
    ) -> Result<Response, SyncError> {
        let mut renew = false;
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}/{path}", self.base))
                .header("accept", FHIR_JSON);
            if let Some(t) = self.bearer(renew).await? {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req
                    .header("content-type", FHIR_JSON)
                    .header("prefer", "return=representation")
                    .body(b.to_string());
            }
            if let Some(c) = if_none_exist {
                req = req.header("if-none-exist", c);
            }
            let r = req
                .send()
                .await
                .map_err(|e| SyncError::Unavailable(format!("the FHIR service: {e}")))?;
            if r.status() == StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            return Ok(r);
        }
    }

    async fn id_of(r: Response, what: &str) -> Result<String, SyncError> {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if status.is_success() {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return v["id"].as_str().map(str::to_owned).ok_or_else(|| {
                SyncError::Unavailable(format!("the FHIR service stored {what} but sent no id"))
            });
        }
        Err(classify(status, what, &text))
    }

    /// Conditional update: the one resource the search finds is replaced, or one is created.
    pub async fn upsert(
        &self,
        kind: &str,
        search: &str,
        body: &Value,
    ) -> Result<String, SyncError> {
        let r = self
            .send(Method::PUT, &format!("{kind}?{search}"), Some(body), None)
            .await?;
        Self::id_of(r, kind).await
    }

    /// Conditional create: the id of the resource the search finds, created when there is none.
    pub async fn create_if_missing(
        &self,
        kind: &str,
        search: &str,
        body: &Value,
    ) -> Result<String, SyncError> {
        let r = self
            .send(Method::POST, kind, Some(body), Some(search))
            .await?;
        Self::id_of(r, kind).await
    }

    /// Conditional delete; nothing to delete is fine.
    pub async fn delete(&self, kind: &str, search: &str) -> Result<(), SyncError> {
        let r = self
            .send(Method::DELETE, &format!("{kind}?{search}"), None, None)
            .await?;
        let status = r.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        Err(classify(status, kind, &text))
    }
}

fn classify(status: StatusCode, what: &str, body: &str) -> SyncError {
    let why = format!(
        "{what}: {status}: {}",
        body.chars().take(500).collect::<String>()
    );
    if status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        SyncError::Unavailable(why)
    } else {
        SyncError::Refused(why)
    }
}
