//! Audit records: one per request, in a stable JSON schema (`docs/audit.md`, version 1), written
//! as JSON lines to a stream of their own. Services build an [`AuditRecord`] when a response
//! leaves and hand it to their [`AuditLog`]. A sink that fails is counted
//! (`hds_audit_failures_total`) and logged, and never fails the request.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Principal;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Always `hds.audit`, so a log pipeline can route these lines.
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub version: u32,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub service: ServiceRef,
    pub request_id: String,
    /// `None` when the request carried no acceptable token.
    pub who: Option<Who>,
    pub what: What,
    #[serde(rename = "where")]
    pub where_: Where,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// `fhir`, `dicom`, `medtech`.
    pub kind: &'static str,
    pub name: String,
    pub workspace: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Who {
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
}

impl From<&Principal> for Who {
    fn from(p: &Principal) -> Self {
        Who {
            issuer: p.issuer.clone(),
            subject: p.subject.clone(),
            client_id: p.client_id.clone(),
            roles: p.roles.clone(),
            scopes: p.scopes.clone(),
            patient: p.patient.clone(),
            fhir_user: p.fhir_user.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct What {
    pub method: String,
    /// Below the service's base URL.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The data action the endpoint declares (`read`, `write`, …); absent for public endpoints
    /// and unknown routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// DICOM services: the DICOMweb transaction (`STOW`, `QIDO`, `WADO`, `DELETE`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// DICOM services: the data partition the path names (absent for the default one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// DICOM services: the UIDs the path names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Where {
    /// The peer address of the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `X-Forwarded-For` as received: recorded, not trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub status: u16,
    pub duration_ms: f64,
}

impl AuditRecord {
    pub fn new(service: ServiceRef, request_id: String) -> Self {
        Self {
            type_: "hds.audit",
            version: SCHEMA_VERSION,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            service,
            request_id,
            who: None,
            what: What::default(),
            where_: Where::default(),
            outcome: Outcome {
                status: 0,
                duration_ms: 0.0,
            },
        }
    }
}

/// Where the JSON lines go.
pub enum AuditLog {
    Off,
    Stdout,
    Stderr,
    File {
        path: PathBuf,
        file: Mutex<std::io::LineWriter<std::fs::File>>,
    },
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl AuditLog {
    /// `stdout`, `stderr`, `off`, or a file path (appended to).
    pub fn open(spec: &str) -> std::io::Result<Self> {
        Ok(match spec.trim() {
            "" | "stdout" => AuditLog::Stdout,
            "stderr" => AuditLog::Stderr,
            "off" => AuditLog::Off,
            path => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                AuditLog::File {
                    path: path.into(),
                    file: Mutex::new(std::io::LineWriter::new(file)),
                }
            }
        })
    }

    pub fn describe(&self) -> String {
        match self {
            AuditLog::Off => "off".into(),
            AuditLog::Stdout => "stdout".into(),
            AuditLog::Stderr => "stderr".into(),
            AuditLog::File { path, .. } => path.display().to_string(),
        }
    }

    /// Writes one record as one line. Failures are counted and logged (at most every 10 s).
    pub fn write(&self, record: &AuditRecord) {
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(e) => return failed("log", &e.to_string()),
        };
        line.push(b'\n');
        let result = match self {
            AuditLog::Off => return,
            AuditLog::Stdout => std::io::stdout().lock().write_all(&line),
            AuditLog::Stderr => std::io::stderr().lock().write_all(&line),
            AuditLog::File { file, .. } => match file.lock() {
                Ok(mut f) => f.write_all(&line),
                Err(_) => Err(std::io::Error::other("the audit file lock is poisoned")),
            },
        };
        if let Err(e) = result {
            failed("log", &e.to_string());
        }
    }
}

static LAST_WARNING: Mutex<Option<Instant>> = Mutex::new(None);

/// Counts a lost audit record and warns, without flooding the log when a sink is down.
pub fn failed(sink: &'static str, why: &str) {
    metrics::counter!("hds_audit_failures_total", "sink" => sink).increment(1);
    let mut last = LAST_WARNING.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::error!(sink, "an audit record could not be written: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_serialise_in_the_documented_shape() {
        let mut r = AuditRecord::new(
            ServiceRef {
                kind: "fhir",
                name: "f".into(),
                workspace: "w".into(),
            },
            "rid".into(),
        );
        r.who = Some(Who::from(&Principal {
            issuer: "i".into(),
            client_id: Some("c".into()),
            roles: vec!["FHIR Data Reader".into()],
            ..Default::default()
        }));
        r.what.method = "GET".into();
        r.what.path = "/Patient/1".into();
        r.what.resource_type = Some("Patient".into());
        r.outcome.status = 200;
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "hds.audit");
        assert_eq!(v["version"], 1);
        assert_eq!(v["who"]["clientId"], "c");
        assert_eq!(v["what"]["resourceType"], "Patient");
        assert!(v["what"].get("query").is_none());
        assert!(v["where"].is_object());
        assert_eq!(v["outcome"]["status"], 200);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_file_sink_appends_lines_and_a_broken_one_does_not_panic() {
        let path = std::env::temp_dir().join(format!("hds-audit-{}.log", uuid::Uuid::new_v4()));
        let log = AuditLog::open(path.to_str().unwrap()).unwrap();
        let r = AuditRecord::new(
            ServiceRef {
                kind: "fhir",
                name: "f".into(),
                workspace: "w".into(),
            },
            "1".into(),
        );
        log.write(&r);
        log.write(&r);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        std::fs::remove_file(&path).unwrap();
        assert!(AuditLog::open("/nonexistent-dir/x.log").is_err());
        // /dev/full fails every write: counted, not fatal.
        if let Ok(full) = AuditLog::open("/dev/full") {
            full.write(&r);
        }
    }
}
