//! One audit record per request (schema: docs/audit.md), to the service's audit log and,
//! when configured, as an AuditEvent resource in its own store (IHE Basic Audit Log Patterns).
//!
//! The layer is [`hds_common::audit`]'s, outside everything; this module says what a FHIR
//! request names (resource type and id) and turns records into AuditEvents.

use axum::extract::Request;
use base64::Engine as _;
use hds_auth::audit::{AuditRecord, ServiceRef, What};
use hds_common::audit::{Audited, Auditor};
use hds_common::config::FhirServiceConfig;
use hds_fhir_store::Store;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::AppState;

pub use hds_common::audit::Caller;

/// AuditEvents waiting to be written; beyond this, records are dropped and counted.
const QUEUE: usize = 4096;

/// Opens the configured log and starts the AuditEvent writer when asked for.
pub fn start(config: &FhirServiceConfig, store: &Store) -> Auditor {
    let service = ServiceRef {
        kind: "fhir",
        name: config.name.clone(),
        workspace: config.workspace.clone(),
    };
    let auditor = Auditor::open(service, &config.audit.log);
    if !config.audit.audit_events {
        return auditor;
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(write_audit_events(store.clone(), config.name.clone(), rx));
    auditor.forward_to("auditEvent", tx)
}

/// Checks that the configured audit log can be opened, before the service starts.
pub fn check(config: &FhirServiceConfig) -> Result<(), String> {
    hds_common::audit::check(&config.audit.log)
}

impl Audited for AppState {
    fn auditor(&self) -> &Auditor {
        &self.audit
    }

    fn describe(&self, req: &Request, what: &mut What) {
        let path = self.local_path(req.uri().path());
        what.path = path.to_owned();
        let mut segments = path.trim_start_matches('/').split('/');
        if let Some(t) = segments.next().filter(|t| is_type(t)) {
            what.resource_type = Some(t.to_owned());
            what.id = segments
                .next()
                .filter(|id| !id.is_empty() && !id.starts_with(['_', '$']))
                .map(str::to_owned);
        }
    }
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
    use hds_auth::Principal;
    use hds_auth::audit::Who;

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
