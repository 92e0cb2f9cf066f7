//! The MedTech service's calls to its FHIR service, with outcomes sorted into what is worth
//! retrying (the service is away) and what will never work (recorded as an error).

use hds_common::fhir_client::{FhirClient, FhirClientError, is_transient};
use hds_medtech_normalize::{ErrorType, MedTechError};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The FHIR service or the token endpoint is away or overloaded: try again later, and keep
    /// the messages unacknowledged meanwhile.
    #[error("{0}")]
    Transient(String),
    /// This group will never be written as it is.
    #[error("{0}")]
    Failed(MedTechError),
}

impl From<FhirClientError> for WriteError {
    fn from(e: FhirClientError) -> Self {
        WriteError::Transient(e.to_string())
    }
}

/// A stored resource's version, as the ETag names it.
pub type Version = String;

pub struct Fhir {
    client: FhirClient,
}

/// `{kind}-` and the hex SHA-256 of the identifier, cut to FHIR's 64 characters.
pub fn hashed_id(kind: &str, identifier: &str) -> String {
    let digest = Sha256::digest(format!("{kind}_{identifier}").as_bytes());
    let mut id = String::with_capacity(64);
    for b in digest {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

async fn failure(r: Response, what: &str) -> WriteError {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let why = format!(
        "{what}: the FHIR service answered {status}: {}",
        text.chars().take(400).collect::<String>()
    );
    if is_transient(status) {
        WriteError::Transient(why)
    } else {
        WriteError::Failed(MedTechError::new(
            ErrorType::FhirServerError,
            "FhirResourceRejected",
            why,
        ))
    }
}

fn version_of(r: &Response) -> Option<Version> {
    r.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("W/").trim_matches('"').to_owned())
}

impl Fhir {
    pub fn new(client: FhirClient) -> Self {
        Self { client }
    }

    pub async fn search(&self, kind: &str, params: &[(&str, &str)]) -> Result<Value, WriteError> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let path = format!("{kind}?{}", query.join("&"));
        let r = self.client.send(Method::GET, &path, None, &[]).await?;
        if !r.status().is_success() {
            return Err(failure(r, &format!("searching {kind}")).await);
        }
        r.json()
            .await
            .map_err(|e| WriteError::Transient(format!("searching {kind}: {e}")))
    }

    /// The stored resource and its version, or None when there is none (or it was deleted).
    pub async fn read(&self, kind: &str, id: &str) -> Result<Option<(Value, Version)>, WriteError> {
        let r = self
            .client
            .send(Method::GET, &format!("{kind}/{id}"), None, &[])
            .await?;
        match r.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(failure(r, &format!("reading {kind}/{id}")).await),
        }
        let version = version_of(&r);
        let v: Value = r
            .json()
            .await
            .map_err(|e| WriteError::Transient(format!("reading {kind}/{id}: {e}")))?;
        let version = version
            .or_else(|| v["meta"]["versionId"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(Some((v, version)))
    }

    /// Creates `kind/id` unless it exists: Ok(false) when it did.
    pub async fn create_only(
        &self,
        kind: &str,
        id: &str,
        body: &Value,
    ) -> Result<bool, WriteError> {
        Ok(self
            .put(kind, id, body, Precondition::Absent)
            .await?
            .is_some())
    }

    /// Updates `kind/id` if it is still at `version`: Ok(false) when it moved on.
    pub async fn update_if_match(
        &self,
        kind: &str,
        id: &str,
        body: &Value,
        version: &str,
    ) -> Result<bool, WriteError> {
        Ok(self
            .put(kind, id, body, Precondition::Version(version))
            .await?
            .is_some())
    }

    /// A PUT under a precondition: the new version, or None when the precondition failed (the
    /// resource exists, or moved on).
    pub async fn put(
        &self,
        kind: &str,
        id: &str,
        body: &Value,
        pre: Precondition<'_>,
    ) -> Result<Option<Version>, WriteError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            WriteError::Failed(MedTechError::new(
                ErrorType::GeneralError,
                "SerializationError",
                e.to_string(),
            ))
        })?;
        let etag;
        let mut headers = vec![("prefer", "return=minimal")];
        match pre {
            Precondition::Absent => headers.push(("if-none-match", "*")),
            Precondition::Version(v) => {
                etag = format!("W/\"{v}\"");
                headers.push(("if-match", &etag));
            }
        }
        let r = self
            .client
            .send(Method::PUT, &format!("{kind}/{id}"), Some(&bytes), &headers)
            .await?;
        match r.status() {
            s if s.is_success() => Ok(Some(version_of(&r).unwrap_or_default())),
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => Ok(None),
            _ => Err(failure(r, &format!("writing {kind}/{id}")).await),
        }
    }
}

impl Fhir {
    /// PUTs of `kind` resources under preconditions, as one transaction Bundle: the new
    /// versions in order, or None when the service refused the transaction (a precondition
    /// failed, or an entry was refused: the caller finds which by writing them one by one).
    pub async fn transaction(
        &self,
        kind: &str,
        entries: &[(&str, &Value, Precondition<'_>)],
    ) -> Result<Option<Vec<Version>>, WriteError> {
        let entry: Vec<Value> = entries
            .iter()
            .map(|(id, body, pre)| {
                let mut request =
                    serde_json::json!({"method": "PUT", "url": format!("{kind}/{id}")});
                match pre {
                    Precondition::Absent => request["ifNoneMatch"] = "*".into(),
                    Precondition::Version(v) => request["ifMatch"] = format!("W/\"{v}\"").into(),
                }
                serde_json::json!({"resource": body, "request": request})
            })
            .collect();
        let bundle =
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entry});
        let bytes =
            serde_json::to_vec(&bundle).map_err(|e| WriteError::Transient(e.to_string()))?;
        let r = self
            .client
            .send(
                Method::POST,
                "",
                Some(&bytes),
                &[("prefer", "return=minimal")],
            )
            .await?;
        let status = r.status();
        if !status.is_success() {
            if is_transient(status) {
                return Err(failure(r, "a transaction of Observations").await);
            }
            return Ok(None);
        }
        let answer: Value = r
            .json()
            .await
            .map_err(|e| WriteError::Transient(format!("a transaction's answer: {e}")))?;
        let versions: Vec<Version> = answer["entry"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        e["response"]["etag"]
                            .as_str()
                            .unwrap_or_default()
                            .trim_start_matches("W/")
                            .trim_matches('"')
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if versions.len() != entries.len() || versions.iter().any(String::is_empty) {
            return Err(WriteError::Transient(
                "the transaction's answer does not name a version for every entry".into(),
            ));
        }
        Ok(Some(versions))
    }
}

#[derive(Clone, Copy)]
pub enum Precondition<'a> {
    Absent,
    Version(&'a str),
}
