//! Audit records as docs/audit.md promises them: one JSON line per request, refused and public
//! requests included, with the caller, the data action, the resource and the outcome; AuditEvent
//! resources when asked for; and a broken sink that fails no request.

mod common;

use std::time::Duration;

use common::*;
use hds_auth::testing::{now, sign};
use serde_json::{Value, json};

type Setup = Secured;

async fn setup(log: &str, audit_events: bool) -> Setup {
    start_secured(|cfg| {
        cfg.audit.log = log.into();
        cfg.audit.audit_events = audit_events;
    })
    .await
}

impl Setup {
    fn token(&self, client: &str, roles: &[&str]) -> String {
        sign(
            &self.key,
            &json!({"iss": self.a.issuer, "aud": AUD, "sub": format!("{client}-sub"),
                    "azp": client, "exp": now() + 300, "iat": now(), "roles": roles}),
        )
    }
}

fn temp_log() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hds-audit-{}.jsonl", uuid::Uuid::new_v4()))
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_one_record_with_caller_action_and_outcome() {
    let path = temp_log();
    let t = setup(path.to_str().unwrap(), false).await;
    let writer = t.token("writer-app", &["FHIR Data Contributor"]);
    let reader = t.token("reader-app", &["FHIR Data Reader"]);
    let patient = json!({"resourceType": "Patient", "id": "p1"});

    let anonymous =
        t.s.http
            .get(t.s.url("Patient?name=x"))
            .send()
            .await
            .unwrap();
    assert_eq!(anonymous.status(), 401);
    let created =
        t.s.http
            .put(t.s.url("Patient/p1"))
            .bearer_auth(&writer)
            .header("content-type", FHIR_JSON)
            .header("x-request-id", "req-42")
            .header("x-forwarded-for", "203.0.113.9")
            .body(patient.to_string())
            .send()
            .await
            .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["x-request-id"], "req-42");
    let refused =
        t.s.http
            .delete(t.s.url("Patient/p1"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(t.s.get("metadata").await.status(), 200);

    let r = records(&path);
    assert_eq!(r.len(), 4, "{r:#?}");
    for rec in &r {
        assert_eq!(rec["type"], "hds.audit");
        assert_eq!(rec["version"], 1);
        assert_eq!(rec["service"]["name"], "test");
        assert_eq!(rec["where"]["sourceIp"], "127.0.0.1");
        assert!(rec["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let (anon, put, del, meta) = (&r[0], &r[1], &r[2], &r[3]);
    assert_eq!(anon["who"], Value::Null);
    assert_eq!(anon["outcome"]["status"], 401);
    assert_eq!(anon["what"]["query"], "name=x");
    assert_eq!(anon["what"]["resourceType"], "Patient");

    assert_eq!(put["requestId"], "req-42");
    assert_eq!(put["who"]["clientId"], "writer-app");
    assert_eq!(put["who"]["subject"], "writer-app-sub");
    assert_eq!(put["who"]["roles"], json!(["FHIR Data Contributor"]));
    assert_eq!(put["what"]["action"], "write");
    assert_eq!(put["what"]["method"], "PUT");
    assert_eq!(put["what"]["id"], "p1");
    assert_eq!(put["where"]["forwardedFor"], "203.0.113.9");
    assert_eq!(put["outcome"]["status"], 201);
    assert!(put["outcome"]["durationMs"].as_f64().unwrap() > 0.0);

    // Refused callers are known and recorded with what they tried.
    assert_eq!(del["who"]["clientId"], "reader-app");
    assert_eq!(del["what"]["action"], "delete");
    assert_eq!(del["outcome"]["status"], 403);

    assert_eq!(meta["what"]["path"], "/metadata");
    assert!(meta["what"].get("action").is_none());
    assert_eq!(meta["who"], Value::Null);
    std::fs::remove_file(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_are_kept_as_balp_resources_and_searchable() {
    let t = setup("off", true).await;
    let writer = t.token("writer-app", &["FHIR Data Contributor"]);
    let r =
        t.s.http
            .put(t.s.url("Patient/p2"))
            .bearer_auth(&writer)
            .header("content-type", FHIR_JSON)
            .body(json!({"resourceType": "Patient", "id": "p2"}).to_string())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    // Written in the background: poll for it.
    let mut found = None;
    for _ in 0..50 {
        let b = json(
            t.s.http
                .get(t.s.url("AuditEvent?entity=Patient/p2&subtype=update"))
                .bearer_auth(&writer)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if let Some(e) = b["entry"].as_array().and_then(|a| a.first()) {
            found = Some(e["resource"].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = found.expect("an AuditEvent for the update");
    assert_eq!(e["action"], "U");
    assert_eq!(e["outcome"], "0");
    assert_eq!(e["type"]["code"], "rest");
    assert_eq!(e["agent"][0]["requestor"], true);
    assert_eq!(e["agent"][0]["who"]["identifier"]["value"], "writer-app");
    assert_eq!(e["agent"][0]["network"]["address"], "127.0.0.1");
    assert_eq!(e["entity"][0]["what"]["reference"], "Patient/p2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_fails_fails_no_request() {
    // /dev/full accepts the open and refuses every write.
    let t = setup("/dev/full", false).await;
    let writer = t.token("writer-app", &["FHIR Data Contributor"]);
    for i in 0..3 {
        let r =
            t.s.http
                .put(t.s.url(&format!("Patient/full{i}")))
                .bearer_auth(&writer)
                .header("content-type", FHIR_JSON)
                .body(json!({"resourceType": "Patient", "id": format!("full{i}")}).to_string())
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 201);
    }
}
