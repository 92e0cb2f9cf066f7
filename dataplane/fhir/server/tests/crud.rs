//! Create, read, vread, update, delete and their headers, against a real PostgreSQL.

mod common;

use common::*;
use hds_common::config::VersionPolicy;
use serde_json::json;

fn patient(mrn: &str) -> serde_json::Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}],
           "name": [{"family": "Doe", "given": ["Jane"]}], "birthDate": "1980-02-29"})
}

#[tokio::test]
async fn lifecycle_create_read_update_delete() {
    let s = start().await;
    let r = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "id": "client-chosen", "active": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "etag"), "W/\"1\"");
    let location = header(&r, "location");
    assert!(header(&r, "last-modified").ends_with("GMT"));
    let created = json(r).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "client-chosen", "the server assigns ids on create");
    assert_eq!(location, s.url(&format!("Patient/{id}/_history/1")));
    assert_eq!(created["meta"]["versionId"], "1");
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(
        keys[..3],
        ["resourceType", "id", "meta"],
        "id and meta lead the resource"
    );

    let r = s.get(&format!("Patient/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await, created);

    let mut v2 = created.clone();
    v2["active"] = json!(false);
    let r = s.put(&format!("Patient/{id}"), &v2).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag"), "W/\"2\"");
    let updated = json(r).await;
    assert_eq!(updated["active"], false);
    assert_eq!(updated["meta"]["versionId"], "2");

    let old = json(s.get(&format!("Patient/{id}/_history/1")).await).await;
    assert_eq!(old["active"], true);

    let r = s.delete(&format!("Patient/{id}")).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "etag"), "W/\"3\"");
    let gone = outcome(s.get(&format!("Patient/{id}")).await, 410).await;
    assert_eq!(gone["issue"][0]["code"], "deleted");
    // Deleting again is idempotent and makes no new version.
    assert_eq!(s.delete(&format!("Patient/{id}")).await.status(), 204);
    outcome(s.get(&format!("Patient/{id}/_history/3")).await, 410).await;
    outcome(s.get(&format!("Patient/{id}/_history/9")).await, 404).await;
    outcome(s.get("Patient/never-existed").await, 404).await;

    // Update after delete brings it back as a new version.
    let r = s.put(&format!("Patient/{id}"), &v2).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "etag"), "W/\"4\"");
}

#[tokio::test]
async fn update_as_create_and_if_match() {
    let s = start().await;
    let body = json!({"resourceType": "Patient", "id": "p1", "active": true});
    let r = s.put("Patient/p1", &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), s.url("Patient/p1/_history/1"));

    let stale = s
        .http
        .put(s.url("Patient/p1"))
        .header("content-type", FHIR_JSON)
        .header("if-match", "W/\"7\"")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&stale, "etag"),
        "W/\"1\"",
        "a conflict names the current version"
    );
    outcome(stale, 412).await;

    let ok = s
        .http
        .put(s.url("Patient/p1"))
        .header("content-type", FHIR_JSON)
        .header("if-match", "W/\"1\"")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "etag"), "W/\"2\"");

    let bad = s
        .http
        .put(s.url("Patient/p1"))
        .header("content-type", FHIR_JSON)
        .header("if-match", "yesterday")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    outcome(bad, 400).await;

    let del = s
        .http
        .delete(s.url("Patient/p1"))
        .header("if-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    outcome(del, 412).await;
    let del = s
        .http
        .delete(s.url("Patient/p1"))
        .header("if-match", "W/\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
}

#[tokio::test]
async fn if_none_match_star_makes_a_put_create_only() {
    let s = start().await;
    let body = json!({"resourceType": "Device", "id": "d1"});
    let put = |b: &serde_json::Value| {
        s.http
            .put(s.url("Device/d1"))
            .header("content-type", FHIR_JSON)
            .header("if-none-match", "*")
            .body(b.to_string())
            .send()
    };
    assert_eq!(put(&body).await.unwrap().status(), 201);
    let again = put(&json!({"resourceType": "Device", "id": "d1", "status": "active"}))
        .await
        .unwrap();
    assert_eq!(header(&again, "etag"), "W/\"1\"");
    outcome(again, 412).await;
    let stored = json(s.get("Device/d1").await).await;
    assert!(
        stored.get("status").is_none(),
        "the losing write changed nothing"
    );
    // A deleted resource may be created again.
    assert_eq!(s.delete("Device/d1").await.status(), 204);
    assert_eq!(put(&body).await.unwrap().status(), 201);
}

#[tokio::test]
async fn conditional_read() {
    let s = start().await;
    let p = s.create(&patient("1")).await;
    let path = format!("Patient/{}", p["id"].as_str().unwrap());
    let r = s
        .http
        .get(s.url(&path))
        .header("if-none-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s
        .http
        .get(s.url(&path))
        .header("if-none-match", "W/\"0\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let last_modified = header(&r, "last-modified");
    let r = s
        .http
        .get(s.url(&path))
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s
        .http
        .get(s.url(&path))
        .header("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn versioned_update_policy_requires_if_match() {
    let mut cfg = config();
    cfg.resource_version_policy
        .resource_type_overrides
        .insert("Patient".into(), VersionPolicy::VersionedUpdate);
    let s = start_with(cfg).await;
    let body = json!({"resourceType": "Patient", "id": "vu", "active": true});
    assert_eq!(
        s.put("Patient/vu", &body).await.status(),
        201,
        "creating needs no If-Match"
    );
    let o = outcome(s.put("Patient/vu", &body).await, 412).await;
    assert!(
        o["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("If-Match")
    );
    let ok = s
        .http
        .put(s.url("Patient/vu"))
        .header("content-type", FHIR_JSON)
        .header("if-match", "W/\"1\"")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Other types keep the default policy.
    let obs = json!({"resourceType": "Basic", "id": "b", "code": {"text": "x"}});
    assert_eq!(s.put("Basic/b", &obs).await.status(), 201);
    assert_eq!(s.put("Basic/b", &obs).await.status(), 200);
}

#[tokio::test]
async fn no_version_policy_keeps_only_the_current_version() {
    let mut cfg = config();
    cfg.resource_version_policy.default = VersionPolicy::NoVersion;
    let s = start_with(cfg).await;
    let body = json!({"resourceType": "Patient", "id": "nv", "active": true});
    s.put("Patient/nv", &body).await;
    s.put("Patient/nv", &body).await;
    let r = s.put("Patient/nv", &body).await;
    assert_eq!(header(&r, "etag"), "W/\"3\"", "versionId still counts up");
    outcome(s.get("Patient/nv/_history/1").await, 404).await;
    let h = json(s.get("Patient/nv/_history").await).await;
    assert_eq!(h["entry"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn prefer_return() {
    let s = start().await;
    let r = s
        .http
        .post(s.url("Patient"))
        .header("content-type", FHIR_JSON)
        .header("prefer", "return=minimal")
        .body(patient("m").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("location"));
    assert!(r.text().await.unwrap().is_empty());
    let r = s
        .http
        .post(s.url("Patient"))
        .header("content-type", FHIR_JSON)
        .header("prefer", "return=OperationOutcome")
        .body(patient("o").to_string())
        .send()
        .await
        .unwrap();
    let o = outcome(r, 201).await;
    assert_eq!(o["issue"][0]["severity"], "information");
}

#[tokio::test]
async fn decimals_keep_their_precision() {
    let s = start().await;
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "w"},
                     "valueQuantity": {"value": 1.50, "unit": "kg"}});
    // Send the exact text: serde_json's json! would already have normalised the literal.
    let text = obs.to_string().replace("1.5", "1.50");
    let r = s
        .http
        .post(s.url("Observation"))
        .header("content-type", FHIR_JSON)
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"value\":1.50"), "{body}");
}
