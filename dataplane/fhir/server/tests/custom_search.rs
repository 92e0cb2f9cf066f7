//! Custom SearchParameters and `$reindex`: a new parameter is refused until a reindex covering
//! its base finishes, then finds old and new resources alike; jobs report progress, can be
//! cancelled, and resume when the server starts again.

mod common;

use std::time::Duration;

use common::*;
use hds_fhir_store::Store;
use serde_json::{Value, json};

const EYE: &str = "http://example.org/fhir/StructureDefinition/eye-colour";

fn patient(colour: &str) -> Value {
    json!({"resourceType": "Patient", "extension": [{"url": EYE, "valueString": colour}]})
}

fn eye_colour_param(expression: &str) -> Value {
    json!({
        "resourceType": "SearchParameter",
        "url": "http://example.org/fhir/SearchParameter/eye-colour",
        "name": "eye-colour", "status": "active", "description": "Eye colour",
        "code": "eye-colour", "base": ["Patient"], "type": "token",
        "expression": expression
    })
}

async fn wait_done(s: &TestServer, location: &str) -> Value {
    for _ in 0..300 {
        let job: Value = s
            .http
            .get(location)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = param(&job, "status");
        if status != "queued" && status != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reindex job {location} did not finish in 30 s")
}

fn param(p: &Value, name: &str) -> String {
    let v = p["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {p}"));
    match (&v["valueString"], &v["valueDecimal"]) {
        (Value::String(s), _) => s.clone(),
        (_, n) => n.to_string(),
    }
}

async fn matches(s: &TestServer, q: &str) -> usize {
    let b = json(s.get(q).await).await;
    b["entry"].as_array().map_or(0, |e| e.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_parameter_is_usable_after_its_reindex() {
    let s = start().await;
    s.create(&patient("blue")).await;
    s.create(&patient("brown")).await;

    let sp = s
        .create(&eye_colour_param(&format!(
            "Patient.extension('{EYE}').value"
        )))
        .await;
    let r = s.get("Patient?eye-colour=blue").await;
    let oo = outcome(r, 400).await;
    assert!(oo.to_string().contains("not usable yet"), "{oo}");

    // Written while pending: indexed at once, found after the reindex like the older ones.
    s.create(&patient("blue")).await;

    let r = s.http.post(s.url("Patient/$reindex")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let location = header(&r, "content-location");
    assert!(location.contains("/_operations/reindex/"), "{location}");
    let started = json(r).await;
    assert_eq!(param(&started, "totalResourcesToReindex"), "3");
    let done = wait_done(&s, &location).await;
    assert_eq!(param(&done, "status"), "completed", "{done}");
    assert_eq!(param(&done, "resourcesSuccessfullyReindexed"), "3");
    assert_eq!(param(&done, "progress"), "100.0");

    assert_eq!(matches(&s, "Patient?eye-colour=blue").await, 2);
    assert_eq!(matches(&s, "Patient?eye-colour=brown").await, 1);
    assert_eq!(matches(&s, "Patient?eye-colour:not=blue").await, 1);

    // A changed definition is pending again until reindexed.
    let id = sp["id"].as_str().unwrap();
    let mut changed = eye_colour_param(&format!("Patient.extension('{EYE}').value.lower()"));
    changed["id"] = json!(id);
    assert_eq!(
        s.put(&format!("SearchParameter/{id}"), &changed)
            .await
            .status(),
        200
    );
    outcome(s.get("Patient?eye-colour=blue").await, 400).await;
    // A reindex of another type does not cover it.
    let r = s
        .http
        .post(s.url("Observation/$reindex"))
        .send()
        .await
        .unwrap();
    wait_done(&s, &header(&r, "content-location")).await;
    outcome(s.get("Patient?eye-colour=blue").await, 400).await;
    let r = s.http.post(s.url("$reindex")).send().await.unwrap();
    wait_done(&s, &header(&r, "content-location")).await;
    assert_eq!(matches(&s, "Patient?eye-colour=blue").await, 2);

    // Deleted: the parameter is gone.
    assert_eq!(
        s.delete(&format!("SearchParameter/{id}")).await.status(),
        204
    );
    let b = json(s.get("Patient?eye-colour=blue").await).await;
    assert!(
        b.to_string().contains("not a search parameter of Patient"),
        "{b}"
    );
}

#[tokio::test]
async fn unusable_search_parameters_are_refused() {
    let s = start().await;
    for (why, sp) in [
        ("bad expression", eye_colour_param("Patient.extension(")),
        ("clashes with a built-in", {
            let mut p = eye_colour_param("Patient.name");
            p["code"] = json!("name");
            p
        }),
        ("composite", {
            let mut p = eye_colour_param("Patient");
            p["type"] = json!("composite");
            p
        }),
        ("no base", {
            let mut p = eye_colour_param("Patient.name");
            p["base"] = json!(["NotAType"]);
            p
        }),
    ] {
        let r = s.post("SearchParameter", &sp).await;
        let status = r.status().as_u16();
        let body = json(r).await;
        assert_eq!(status, 400, "{why}: {body}");
    }
    assert_eq!(s.get("_operations/reindex/nonexistent").await.status(), 404);
}

#[tokio::test]
async fn jobs_are_cancelled_and_resume_after_a_restart() {
    // A store without a server: no worker runs, so the job waits where it is.
    let s0 = start().await;
    let admin = admin_url();
    drop(s0);
    let db = format!("hds_test_{}", uuid::Uuid::new_v4().simple());
    hds_common::db::ensure_database(&admin, &db).await.unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let store = Store::open(&url, 4).await.unwrap();
    let conn = store.connection().await.unwrap();
    let wake = tokio::sync::Notify::new();
    let cancelled = hds_fhir_search::reindex::start(&conn, None, &wake)
        .await
        .unwrap();
    let job = hds_fhir_search::reindex::cancel(&conn, &cancelled.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, "cancelled");
    let waiting = hds_fhir_search::reindex::start(&conn, None, &wake)
        .await
        .unwrap();
    assert_eq!(waiting.status, "queued");

    // "Restart": a server on the same database picks the queued job up.
    let mut cfg = config();
    cfg.postgres = hds_common::config::PostgresConfig::from_url(url.clone());
    let state = hds_fhir_server::AppState::new(cfg, store.clone(), "")
        .await
        .unwrap();
    for _ in 0..100 {
        let j = hds_fhir_search::reindex::get(&conn, &waiting.id)
            .await
            .unwrap()
            .unwrap();
        if j.status == "completed" {
            let c = hds_fhir_search::reindex::get(&conn, &cancelled.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(c.status, "cancelled", "a cancelled job stays cancelled");
            drop(state);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the queued job did not complete after the restart");
}
