//! Audit records of the DICOM service as docs/audit.md promises them: exactly one JSON line per
//! request, refused ones included, with the caller, the data action, the DICOMweb transaction
//! and the UIDs its path names, and the outcome.

mod common;

use common::*;
use hds_common::config::AuditConfig;
use serde_json::{Value, json};

const STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const SERIES: &str = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";
const SOP: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn every_request_leaves_one_record_naming_caller_transaction_and_uids() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let log_name = log.to_str().unwrap().to_owned();
    let t = start_secured(|cfg| {
        cfg.audit = AuditConfig {
            log: log_name,
            audit_events: false,
        }
    })
    .await;
    let owner = t.token("uploader", &["DICOM Data Owner"]);
    let reader = t.token("viewer", &["DICOM Data Reader"]);
    let (ctype, body) = multipart(&[("application/dicom", &file("CT_small.dcm"))]);
    let stored =
        t.s.http
            .post(t.s.url(&format!("v2/studies/{STUDY}")))
            .header("content-type", ctype)
            .header("x-request-id", "stow-1")
            .bearer_auth(&owner)
            .body(body)
            .send()
            .await
            .unwrap();
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.headers()["x-request-id"], "stow-1");
    let found =
        t.s.http
            .get(t.s.url("studies?PatientID=1CT1"))
            .header("user-agent", "viewer/1.0")
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
    assert_eq!(found.status(), 200);
    let instance = format!("studies/{STUDY}/series/{SERIES}/instances/{SOP}");
    let retrieved =
        t.s.http
            .get(t.s.url(&format!("{instance}/metadata")))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
    assert_eq!(retrieved.status(), 200);
    let refused =
        t.s.http
            .delete(t.s.url(&instance))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
    assert_eq!(refused.status(), 403);
    let anonymous = t.s.http.get(t.s.url("changefeed")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let r = records(&log);
    assert_eq!(r.len(), 5, "{r:#?}");
    for rec in &r {
        assert_eq!(rec["type"], "hds.audit");
        assert_eq!(rec["version"], 1);
        assert_eq!(
            rec["service"],
            json!({"kind": "dicom", "name": "test", "workspace": "ws"})
        );
        assert_eq!(rec["where"]["sourceIp"], "127.0.0.1");
        assert!(rec["outcome"]["durationMs"].as_f64().unwrap() >= 0.0);
    }
    let (stow, qido, wado, delete, feed) = (&r[0], &r[1], &r[2], &r[3], &r[4]);
    assert_eq!(stow["requestId"], "stow-1");
    assert_eq!(stow["who"]["clientId"], "uploader");
    assert_eq!(stow["who"]["subject"], "uploader-sub");
    assert_eq!(stow["who"]["roles"], json!(["DICOM Data Owner"]));
    assert_eq!(stow["what"]["method"], "POST");
    assert_eq!(stow["what"]["path"], format!("/v2/studies/{STUDY}"));
    assert_eq!(stow["what"]["operation"], "STOW");
    assert_eq!(stow["what"]["action"], "write");
    assert_eq!(stow["what"]["studyInstanceUid"], STUDY);
    assert_eq!(stow["outcome"]["status"], 200);

    assert_eq!(qido["what"]["operation"], "QIDO");
    assert_eq!(qido["what"]["query"], "PatientID=1CT1");
    assert_eq!(qido["what"]["action"], "read");
    assert_eq!(qido["who"]["clientId"], "viewer");
    assert_eq!(qido["where"]["userAgent"], "viewer/1.0");
    assert!(qido["what"].get("studyInstanceUid").is_none());

    assert_eq!(wado["what"]["operation"], "WADO-METADATA");
    assert_eq!(wado["what"]["studyInstanceUid"], STUDY);
    assert_eq!(wado["what"]["seriesInstanceUid"], SERIES);
    assert_eq!(wado["what"]["sopInstanceUid"], SOP);

    // Refused callers are known, with what they tried.
    assert_eq!(delete["who"]["clientId"], "viewer");
    assert_eq!(delete["what"]["operation"], "DELETE");
    assert_eq!(delete["what"]["action"], "delete");
    assert_eq!(delete["what"]["sopInstanceUid"], SOP);
    assert_eq!(delete["outcome"]["status"], 403);

    assert_eq!(feed["who"], Value::Null);
    assert_eq!(feed["what"]["operation"], "CHANGEFEED");
    assert!(feed["what"].get("action").is_none());
    assert_eq!(feed["outcome"]["status"], 401);
}

#[test]
fn audit_settings_that_cannot_work_stop_the_service_before_it_starts() {
    let mut cfg = config();
    cfg.audit = AuditConfig {
        log: "/nonexistent-dir/audit.jsonl".into(),
        audit_events: false,
    };
    let err = hds_dicom_server::check_config(&cfg).unwrap_err();
    assert!(err.contains("cannot be opened"), "{err}");
    cfg.audit = AuditConfig {
        log: "stdout".into(),
        audit_events: true,
    };
    let err = hds_dicom_server::check_config(&cfg).unwrap_err();
    assert!(err.contains("auditEvents"), "{err}");
}
