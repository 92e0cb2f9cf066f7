//! Azure's `$bulk-delete`: what a search matches goes (soft, hard, or only its history), at type
//! and system level, the async status with counts per type, cancellation, and bad requests.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn kick_off(s: &TestServer, path: &str) -> reqwest::Response {
    s.http
        .delete(s.url(path))
        .header("prefer", "respond-async")
        .header("accept", FHIR_JSON)
        .send()
        .await
        .unwrap()
}

async fn bulk_delete(s: &TestServer, path: &str) -> Value {
    let r = kick_off(s, path).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let status = header(&r, "content-location");
    assert!(status.contains("/_operations/bulk-delete/"), "{status}");
    poll_job(s, &status).await
}

fn deleted_counts(p: &Value) -> Vec<(String, u64)> {
    p["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == "ResourceDeletedCount")
        .flat_map(|x| x["part"].as_array().unwrap().clone())
        .map(|part| {
            (
                part["name"].as_str().unwrap().to_owned(),
                part["valueDecimal"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn patients(s: &TestServer, family: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let p = s
            .create(&json!({"resourceType": "Patient", "name": [{"family": family}]}))
            .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn history_len(s: &TestServer, path: &str) -> usize {
    let b = json(s.get(&format!("{path}/_history")).await).await;
    b["entry"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_type_level_bulk_delete_removes_what_its_search_matches() {
    let s = start().await;
    let gone = patients(&s, "Bulkdel", 3).await;
    let kept = patients(&s, "Keepme", 2).await;
    let result = bulk_delete(&s, "Patient/$bulk-delete?family=Bulkdel").await;
    assert_eq!(deleted_counts(&result), vec![("Patient".into(), 3)]);
    for id in &gone {
        assert_eq!(s.get(&format!("Patient/{id}")).await.status(), 410);
        // A soft delete keeps the history: the version and the deletion.
        assert_eq!(history_len(&s, &format!("Patient/{id}")).await, 2);
    }
    for id in &kept {
        assert_eq!(s.get(&format!("Patient/{id}")).await.status(), 200);
    }
    // Nothing left to match: the next run deletes nothing.
    let again = bulk_delete(&s, "Patient/$bulk-delete?family=Bulkdel").await;
    assert_eq!(deleted_counts(&again), vec![]);
    // FHIR JSON has no empty arrays.
    assert_eq!(again, json!({"resourceType": "Parameters"}));
}

#[tokio::test]
async fn hard_delete_removes_every_version_and_purge_history_keeps_the_current_one() {
    let s = start().await;
    let hard = patients(&s, "Hardgone", 2).await;
    let purged = patients(&s, "Purged", 1).await;
    let p = format!("Patient/{}", purged[0]);
    let mut body = json(s.get(&p).await).await;
    body["gender"] = json!("female");
    assert_eq!(s.put(&p, &body).await.status(), 200);
    assert_eq!(history_len(&s, &p).await, 2);

    let result = bulk_delete(&s, "Patient/$bulk-delete?family=Hardgone&_hardDelete=true").await;
    assert_eq!(deleted_counts(&result), vec![("Patient".into(), 2)]);
    for id in &hard {
        assert_eq!(s.get(&format!("Patient/{id}")).await.status(), 404);
        assert_eq!(s.get(&format!("Patient/{id}/_history")).await.status(), 404);
    }
    assert_eq!(
        json(s.get("Patient?family=Hardgone").await).await["entry"],
        Value::Null
    );

    let result = bulk_delete(&s, "Patient/$bulk-delete?family=Purged&_purgeHistory=true").await;
    assert_eq!(deleted_counts(&result), vec![("Patient".into(), 1)]);
    let current = json(s.get(&p).await).await;
    assert_eq!(current["gender"], "female");
    assert_eq!(history_len(&s, &p).await, 1);
}

#[tokio::test]
async fn a_system_bulk_delete_spans_types_and_counts_each() {
    let s = start().await;
    let tag = json!({"meta": {"tag": [{"system": "urn:bulk", "code": "sweep"}]}});
    let mut tagged = Vec::new();
    for body in [
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
        json!({"resourceType": "Basic", "code": {"text": "y"}}),
    ] {
        let mut b = body.clone();
        b["meta"] = tag["meta"].clone();
        let r = s.create(&b).await;
        tagged.push(format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        ));
    }
    let untagged = s.create(&json!({"resourceType": "Patient"})).await;
    // _type narrows it: the Basic stays.
    let result = bulk_delete(
        &s,
        "$bulk-delete?_tag=urn:bulk|sweep&_type=Patient,Observation",
    )
    .await;
    assert_eq!(
        deleted_counts(&result),
        vec![("Observation".into(), 1), ("Patient".into(), 2)]
    );
    assert_eq!(s.get(&tagged[3]).await.status(), 200);
    let result = bulk_delete(&s, "$bulk-delete?_tag=urn:bulk|sweep").await;
    assert_eq!(deleted_counts(&result), vec![("Basic".into(), 1)]);
    for t in &tagged {
        assert_eq!(s.get(t).await.status(), 410, "{t}");
    }
    let id = untagged["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("Patient/{id}")).await.status(), 200);
}

#[tokio::test]
async fn a_cancelled_bulk_delete_reports_what_it_deleted() {
    let s = start().await;
    let entries: Vec<Value> = (0..500)
        .map(|_| {
            json!({"resource": {"resourceType": "Basic", "code": {"text": "many"}},
                        "request": {"method": "POST", "url": "Basic"}})
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    for _ in 0..3 {
        assert_eq!(s.post("", &bundle).await.status(), 200);
    }
    let r = kick_off(&s, "Basic/$bulk-delete").await;
    assert_eq!(r.status(), 202);
    let status = header(&r, "content-location");
    assert_eq!(s.http.delete(&status).send().await.unwrap().status(), 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = s.http.get(&status).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    let done: u64 = deleted_counts(&p).iter().map(|(_, n)| n).sum();
    assert_eq!(done % 500, 0, "only whole batches: {done}");
    assert!(
        p["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Issues")
    );
    let left = json(s.get("Basic?_summary=count").await).await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(left + done, 1500);
    assert_eq!(s.http.delete(&status).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn bad_bulk_deletes_are_refused_with_reasons() {
    let s = start().await;
    let r = s
        .http
        .delete(s.url("Patient/$bulk-delete"))
        .send()
        .await
        .unwrap();
    let oo = outcome(r, 400).await;
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("respond-async")
    );
    for (path, why) in [
        (
            "Patient/$bulk-delete?nonsense=1",
            "'nonsense' cannot be applied",
        ),
        (
            "Patient/$bulk-delete?_hardDelete=yes",
            "_hardDelete takes true or false",
        ),
        ("$bulk-delete?family=x", "applies to"),
        ("$bulk-delete?_type=Nope", "not a resource type"),
        ("Patient/$bulk-delete?birthdate=notadate", "birthdate"),
    ] {
        let oo = outcome(kick_off(&s, path).await, 400).await;
        let text = oo["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(text.contains(why), "{path}: {text}");
    }
    assert_eq!(kick_off(&s, "Nope/$bulk-delete").await.status(), 404);
    assert_eq!(s.get("_operations/bulk-delete/nope").await.status(), 404);
}
