//! One audit record per request (schema: docs/audit.md), to the service's audit log and,
//! when configured, as an AuditEvent resource in its own store (IHE Basic Audit Log Patterns).
//!
//! The layer sits outside everything but CORS, so refused, unknown and failed requests are
//! recorded too. It learns who called and which data action was needed from the response's
//! extensions, where `authenticate` leaves them.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use hds_auth::audit::{AuditLog, AuditRecord, ServiceRef, Who};
use hds_auth::{DataAction, Principal};
use hds_common::config::FhirServiceConfig;
use hds_fhir_store::Store;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::AppState;

/// AuditEvents waiting to be written; beyond this, records are dropped and counted.
const QUEUE: usize = 4096;

/// The caller `authenticate` accepted, left on the response for this layer.
#[derive(Clone)]
pub struct Caller(pub Principal);

pub struct AuditSink {
    log: AuditLog,
    events: Option<mpsc::Sender<AuditRecord>>,
}

impl AuditSink {
    /// Opens the configured log (a file that cannot be opened falls back to stderr, loudly) and
    /// starts the AuditEvent writer when asked for.
    pub fn start(config: &FhirServiceConfig, store: &Store) -> Self {
        let log = AuditLog::open(&config.audit.log).unwrap_or_else(|e| {
            tracing::error!(service = %config.name, log = %config.audit.log, "cannot open the audit log ({e}); audit records go to stderr");
            AuditLog::Stderr
        });
        let events = config.audit.audit_events.then(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_audit_events(store.clone(), config.name.clone(), rx));
            tx
        });
        Self { log, events }
    }

    /// Whether anything reads records: a log other than `off`, or AuditEvents.
    fn records(&self) -> bool {
        !matches!(self.log, AuditLog::Off) || self.events.is_some()
    }

    fn submit(&self, record: AuditRecord) {
        self.log.write(&record);
        if let Some(tx) = &self.events
            && tx.try_send(record).is_err()
        {
            hds_auth::audit::failed("auditEvent", "the AuditEvent queue is full or closed");
        }
    }
}

/// Checks that the configured audit log can be opened, before the service starts.
pub fn check(config: &FhirServiceConfig) -> Result<(), String> {
    AuditLog::open(&config.audit.log)
        .map(|_| ())
        .map_err(|e| format!("audit.log '{}' cannot be opened: {e}", config.audit.log))
}

pub async fn record(State(s): State<AppState>, req: Request, next: Next) -> Response {
    // With the log off and no AuditEvents nothing reads a record: only the request id is due.
    if !s.audit.records() {
        let id = request_id(&req);
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        return resp;
    }
    let start = Instant::now();
    let mut record = describe(&s, &req);
    let mut resp = next.run(req).await;
    record.outcome.status = resp.status().as_u16();
    record.outcome.duration_ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    record.who = resp
        .extensions_mut()
        .remove::<Caller>()
        .map(|c| Who::from(&c.0));
    record.what.action = resp
        .extensions_mut()
        .remove::<DataAction>()
        .map(|a| a.as_str().to_owned());
    if let Ok(v) = HeaderValue::from_str(&record.request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    s.audit.submit(record);
    resp
}

/// The client's `X-Request-Id` (up to 200 characters), else a new UUID.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// What the request says of itself: the record before the outcome is known.
fn describe(s: &AppState, req: &Request) -> AuditRecord {
    let mut record = AuditRecord::new(
        ServiceRef {
            kind: "fhir",
            name: s.config.name.clone(),
            workspace: s.config.workspace.clone(),
        },
        request_id(req),
    );
    let path = s.local_path(req.uri().path());
    record.what.method = req.method().as_str().to_owned();
    record.what.path = path.to_owned();
    record.what.query = req.uri().query().map(str::to_owned);
    let mut segments = path.trim_start_matches('/').split('/');
    if let Some(t) = segments.next().filter(|t| is_type(t)) {
        record.what.resource_type = Some(t.to_owned());
        record.what.id = segments
            .next()
            .filter(|id| !id.is_empty() && !id.starts_with(['_', '$']))
            .map(str::to_owned);
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    record.where_.source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    record.where_.forwarded_for = header("x-forwarded-for");
    record.where_.user_agent = header(header::USER_AGENT.as_str());
    record
}

/// A resource type segment: `Patient`, not `metadata`, `_history` or `$reindex`.
fn is_type(segment: &str) -> bool {
    segment.starts_with(|c: char| c.is_ascii_uppercase())
        && segment.chars().all(|c| c.is_ascii_alphanumeric())
}

async fn write_audit_events(store: Store, service: String, mut rx: mpsc::Receiver<AuditRecord>) {
    let registry = hds_fhir_search::r4();
    while let Some(record) = rx.recv().await {
        let id = hds_fhir_store::new_id();
        let event = audit_event(&record, &id, &service);
        let index = hds_fhir_search::extract_with(registry, &event);
        let result = match store.connection().await {
            Ok(conn) => hds_fhir_store::create(&conn, "AuditEvent", &id, event, &index)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            hds_auth::audit::failed("auditEvent", &e.to_string());
        }
    }
}

/// The record as an R4 AuditEvent in the manner of IHE BALP: a `rest` event whose subtype is the
/// interaction, the client and user as agents, the server as observer, and the resource or the
/// query as entities.
pub fn audit_event(r: &AuditRecord, id: &str, service: &str) -> Value {
    let interaction = interaction(r);
    let action = match interaction {
        "create" => "C",
        "update" | "patch" => "U",
        "delete" => "D",
        "read" | "vread" | "history-instance" => "R",
        "search-type" | "search-system" | "history-type" | "history-system" => "E",
        _ => "E",
    };
    let outcome = match r.outcome.status {
        0..=399 => "0",
        400..=499 => "4",
        _ => "8",
    };
    let mut agents = Vec::new();
    let network = r
        .where_
        .source_ip
        .as_ref()
        .map(|ip| json!({"address": ip, "type": "2"}));
    match &r.who {
        Some(w) => {
            let mut client = json!({
                "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                      "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": w.issuer,
                                       "value": w.client_id.clone().or_else(|| w.subject.clone()).unwrap_or_default()}},
                "requestor": true,
            });
            if let Some(n) = &network {
                client["network"] = n.clone();
            }
            agents.push(client);
            if let Some(user) = w.fhir_user.as_ref().or(w.subject.as_ref())
                && Some(user) != w.client_id.as_ref()
            {
                agents.push(json!({
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                          "code": "IRCP", "display": "information recipient"}]},
                    "who": if w.fhir_user.is_some() { json!({"reference": user}) }
                           else { json!({"identifier": {"system": w.issuer, "value": user}}) },
                    "requestor": false,
                }));
            }
        }
        None => {
            let mut anon = json!({"who": {"display": "unauthenticated"}, "requestor": true});
            if let Some(n) = &network {
                anon["network"] = n.clone();
            }
            agents.push(anon);
        }
    }
    let mut entities = Vec::new();
    if let (Some(t), Some(i)) = (&r.what.resource_type, &r.what.id) {
        entities.push(json!({
            "what": {"reference": format!("{t}/{i}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
        }));
    }
    if let Some(q) = &r.what.query {
        entities.push(json!({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"},
            "query": base64::engine::general_purpose::STANDARD.encode(q),
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": id,
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": action,
        "recorded": r.time,
        "outcome": outcome,
        "outcomeDesc": format!("HTTP {} {} {} ({})", r.outcome.status, r.what.method, r.what.path, r.request_id),
        "agent": agents,
        "source": {
            "site": service,
            "observer": {"display": format!("hds FhirService {service}")},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                      "display": "Application Server"}],
        },
    });
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    event
}

/// The FHIR restful interaction a request was, by method and path shape.
fn interaction(r: &AuditRecord) -> &'static str {
    let segs: Vec<&str> = r
        .what
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (r.what.method.as_str(), segs.as_slice()) {
        (_, ["metadata"]) => "capabilities",
        ("GET", [] | ["_search"]) | ("POST", ["_search"]) => "search-system",
        ("GET", ["_history"]) => "history-system",
        ("POST", []) => "batch",
        ("GET", [_, "_history"]) => "history-type",
        ("GET", [_, _, "_history"]) => "history-instance",
        ("GET", [_, _, "_history", _]) => "vread",
        ("GET", [_]) | ("POST", [_, "_search"]) | ("GET" | "POST", [_, _, _, ..]) => "search-type",
        ("POST", [_]) => "create",
        ("GET", [_, _]) => "read",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "operation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: &str, path: &str) -> AuditRecord {
        let mut r = AuditRecord::new(
            ServiceRef {
                kind: "fhir",
                name: "f".into(),
                workspace: "w".into(),
            },
            "rid".into(),
        );
        r.what.method = method.into();
        r.what.path = path.into();
        r
    }

    #[test]
    fn interactions_follow_the_rest_api() {
        for (m, p, want) in [
            ("GET", "/Patient/1", "read"),
            ("GET", "/Patient", "search-type"),
            ("POST", "/Patient/_search", "search-type"),
            ("GET", "/Patient/1/Observation", "search-type"),
            ("POST", "/Patient", "create"),
            ("PUT", "/Patient/1", "update"),
            ("DELETE", "/Patient?x=1", "delete"),
            ("GET", "/Patient/1/_history/2", "vread"),
            ("GET", "/_history", "history-system"),
            ("GET", "/", "search-system"),
            ("GET", "/metadata", "capabilities"),
        ] {
            assert_eq!(interaction(&rec(m, p)), want, "{m} {p}");
        }
    }

    #[test]
    fn audit_events_are_valid_r4() {
        let mut r = rec("GET", "/Patient/1");
        r.what.resource_type = Some("Patient".into());
        r.what.id = Some("1".into());
        r.what.query = Some("_elements=name".into());
        r.where_.source_ip = Some("127.0.0.1".into());
        r.who = Some(Who::from(&Principal {
            issuer: "https://issuer".into(),
            subject: Some("user-1".into()),
            client_id: Some("app".into()),
            ..Default::default()
        }));
        r.outcome.status = 200;
        let e = audit_event(&r, "a1", "f");
        assert_eq!(e["action"], "R");
        assert_eq!(e["outcome"], "0");
        assert_eq!(e["agent"].as_array().unwrap().len(), 2);
        let problems = hds_fhir_model::r4().validate(&e);
        assert!(problems.is_empty(), "{problems:?}");
        let anon = audit_event(&rec("POST", "/Patient"), "a2", "f");
        assert!(hds_fhir_model::r4().validate(&anon).is_empty());
    }
}
