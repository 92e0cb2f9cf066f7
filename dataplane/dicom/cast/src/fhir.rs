//! The few FHIR interactions the sync needs, through the shared client
//! ([`hds_common::fhir_client`]) with the sync's Workspace identity.

use hds_common::config::FhirSyncConfig;
use hds_common::fhir_client::{self, FhirClientError};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

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

impl From<FhirClientError> for SyncError {
    fn from(e: FhirClientError) -> Self {
        match e {
            FhirClientError::Unavailable(m) => SyncError::Unavailable(m),
            FhirClientError::Config(m) => SyncError::Config(m),
        }
    }
}

pub struct FhirClient {
    inner: fhir_client::FhirClient,
}

impl FhirClient {
    pub fn new(config: &FhirSyncConfig) -> Result<Self, SyncError> {
        Ok(Self {
            inner: fhir_client::FhirClient::new(&config.fhir)?,
        })
    }

    pub fn base(&self) -> &str {
        self.inner.base()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_none_exist: Option<&str>,
    ) -> Result<Response, SyncError> {
        let body = body.map(|b| b.to_string());
        let mut headers = Vec::new();
        if body.is_some() {
            headers.push(("prefer", "return=representation"));
        }
        if let Some(c) = if_none_exist {
            headers.push(("if-none-exist", c));
        }
        Ok(self
            .inner
            .send(method, path, body.as_deref().map(str::as_bytes), &headers)
            .await?)
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
    if fhir_client::is_transient(status) {
        SyncError::Unavailable(why)
    } else {
        SyncError::Refused(why)
    }
}
