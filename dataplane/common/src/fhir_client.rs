//! How one hds service calls a FHIR service: over HTTP, with a client-credentials token from
//! the Workspace issuer (renewed a minute before it expires, and once more on a 401). The DICOM
//! →FHIR sync and the MedTech service both write through it.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, Response, StatusCode};
use tokio::sync::Mutex;

use crate::config::FhirClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum FhirClientError {
    /// Worth retrying: the network, the token endpoint.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Config(String),
}

pub struct FhirClient {
    http: Client,
    base: String,
    credentials: Option<(String, String, String)>,
    token: Mutex<Option<(String, Instant)>>,
}

pub const FHIR_JSON: &str = "application/fhir+json";

impl FhirClient {
    pub fn new(config: &FhirClientConfig) -> Result<Self, FhirClientError> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| FhirClientError::Config(format!("{}: {e}", f.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let credentials = match (&config.token_url, &config.client_id, secret) {
            (Some(url), Some(id), Some(secret)) => Some((url.clone(), id.clone(), secret)),
            (None, _, _) => None,
            _ => {
                return Err(FhirClientError::Config(
                    "tokenUrl needs clientId and clientSecret (or clientSecretFile)".into(),
                ));
            }
        };
        Ok(Self {
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .tcp_nodelay(true)
                .build()
                .map_err(|e| FhirClientError::Config(e.to_string()))?,
            base: config.fhir_url.trim_end_matches('/').to_owned(),
            credentials,
            token: Mutex::new(None),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `{base}/{path}`; the base itself for an empty path (where Bundles go).
    fn url(&self, path: &str) -> String {
        if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{path}", self.base)
        }
    }

    async fn bearer(&self, renew: bool) -> Result<Option<String>, FhirClientError> {
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
        let unavailable =
            |e: String| FhirClientError::Unavailable(format!("the token endpoint: {e}"));
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
            .map_err(|e| unavailable(e.to_string()))?;
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(unavailable(format!("answered {status}: {body}")));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| unavailable(e.to_string()))?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| unavailable("sent no access_token".into()))?
            .to_owned();
        let life = v["expires_in"]
            .as_u64()
            .unwrap_or(300)
            .saturating_sub(60)
            .max(10);
        *held = Some((token.clone(), Instant::now() + Duration::from_secs(life)));
        Ok(Some(token))
    }

    /// Sends `method` to `{base}/{path}` with a FHIR JSON body (if any) and extra headers,
    /// renewing the token once when the service answers 401.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Response, FhirClientError> {
        let mut renew = false;
        loop {
            let mut req = self
                .http
                .request(method.clone(), self.url(path))
                .header("accept", FHIR_JSON);
            if let Some(t) = self.bearer(renew).await? {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.header("content-type", FHIR_JSON).body(b.to_vec());
            }
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let r = req
                .send()
                .await
                .map_err(|e| FhirClientError::Unavailable(format!("the FHIR service: {e}")))?;
            if r.status() == StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            return Ok(r);
        }
    }
}

/// Whether an answer is worth retrying: a 5xx, 401 (the token) or 429.
pub fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
}
