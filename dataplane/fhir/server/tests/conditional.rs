//! Conditional create, update, delete and patch: 0, 1 and many matches, and races.

mod common;

use common::*;
use serde_json::json;

fn patient(mrn: &str) -> serde_json::Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}], "active": true})
}

async fn count(s: &TestServer, query: &str) -> i64 {
    json(s.get(&format!("Patient?{query}")).await).await["total"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn conditional_create_zero_one_many() {
    let s = start().await;
    let post = |cond: &'static str| {
        s.http
            .post(s.url("Patient"))
            .header("content-type", FHIR_JSON)
            .header("if-none-exist", cond)
            .body(patient("1").to_string())
            .send()
    };
    let first = post("identifier=urn:mrn|1").await.unwrap();
    assert_eq!(first.status(), 201);
    let id = json(first).await["id"].clone();
    let again = post("identifier=urn:mrn|1").await.unwrap();
    assert_eq!(
        again.status(),
        200,
        "one match returns the existing resource"
    );
    assert_eq!(json(again).await["id"], id);
    s.create(&patient("1")).await;
    outcome(post("identifier=urn:mrn|1").await.unwrap(), 412).await;
    // The Type? prefix is allowed in If-None-Exist.
    assert_eq!(
        post("Patient?identifier=urn:mrn|2").await.unwrap().status(),
        201
    );
    // Unknown criteria are refused rather than ignored.
    outcome(post("nonsense=Doe").await.unwrap(), 400).await;
    // Any search parameter works as a criterion: every Patient so far is active.
    outcome(post("active=true").await.unwrap(), 412).await;
    assert_eq!(post("active=false").await.unwrap().status(), 201);
}

#[tokio::test]
async fn racing_conditional_creates_make_one_resource() {
    let s = start().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = s.http.clone();
        let url = s.url("Patient");
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", FHIR_JSON)
                .header("if-none-exist", "identifier=urn:mrn|race")
                .body(patient("race").to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    assert_eq!(count(&s, "identifier=urn:mrn|race").await, 1);
}

#[tokio::test]
async fn conditional_update() {
    let s = start().await;
    // No match, no id: created with a new id.
    let r = s.put("Patient?identifier=urn:mrn|u1", &patient("u1")).await;
    assert_eq!(r.status(), 201);
    let id = json(r).await["id"].as_str().unwrap().to_owned();
    // One match: updated in place.
    let mut body = patient("u1");
    body["active"] = json!(false);
    let r = s.put("Patient?identifier=urn:mrn|u1", &body).await;
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(
        (v["id"].as_str().unwrap(), v["active"].as_bool()),
        (id.as_str(), Some(false))
    );
    // One match, but the body names another id.
    body["id"] = json!("other");
    outcome(s.put("Patient?identifier=urn:mrn|u1", &body).await, 400).await;
    // No match with an id in the body: created under that id.
    let mut named = patient("u2");
    named["id"] = json!("named");
    assert_eq!(
        s.put("Patient?identifier=urn:mrn|u2", &named)
            .await
            .status(),
        201
    );
    assert_eq!(s.get("Patient/named").await.status(), 200);
    // Several matches.
    s.create(&patient("u1")).await;
    outcome(
        s.put("Patient?identifier=urn:mrn|u1", &patient("u1")).await,
        412,
    )
    .await;
    // No criteria.
    outcome(s.put("Patient", &patient("x")).await, 400).await;
}

#[tokio::test]
async fn conditional_delete_single_and_multiple() {
    let s = start().await;
    assert_eq!(
        s.delete("Patient?identifier=urn:mrn|none").await.status(),
        204
    );
    let p = s.create(&patient("d1")).await;
    assert_eq!(
        s.delete("Patient?identifier=urn:mrn|d1").await.status(),
        204
    );
    outcome(
        s.get(&format!("Patient/{}", p["id"].as_str().unwrap()))
            .await,
        410,
    )
    .await;
    for _ in 0..3 {
        s.create(&patient("many")).await;
    }
    outcome(s.delete("Patient?identifier=urn:mrn|many").await, 412).await;
    assert_eq!(
        count(&s, "identifier=urn:mrn|many").await,
        3,
        "a refused delete deletes nothing"
    );
    assert_eq!(
        s.delete("Patient?identifier=urn:mrn|many&_count=2")
            .await
            .status(),
        204
    );
    assert_eq!(count(&s, "identifier=urn:mrn|many").await, 1);
    outcome(s.delete("Patient?_count=5").await, 400).await;
}

#[tokio::test]
async fn patch_formats_and_conditional_patch() {
    let s = start().await;
    let p = s
        .create(
            &json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "p"}],
                              "birthDate": "1970-01-01"}),
        )
        .await;
    let path = format!("Patient/{}", p["id"].as_str().unwrap());
    let send = |ct: &'static str, body: serde_json::Value, path: String| {
        s.http
            .patch(s.url(&path))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
    };
    let r = send(
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/birthDate", "value": "1971-01-01"}]),
        path.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag"), "W/\"2\"");
    assert_eq!(json(r).await["birthDate"], "1971-01-01");

    let fhirpath = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "1972-01-01"}]}]});
    let r = send(
        "application/fhir+json",
        fhirpath.clone(),
        "Patient?identifier=urn:mrn|p".into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["birthDate"], "1972-01-01");

    // The result must still be valid, and the id fixed.
    let r = send(
        "application/json-patch+json",
        json!([{"op": "add", "path": "/birthDate", "value": "not a date"}]),
        path.clone(),
    )
    .await
    .unwrap();
    let o = outcome(r, 422).await;
    assert_eq!(o["issue"][0]["expression"][0], "Patient.birthDate");
    outcome(
        send(
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/id", "value": "x"}]),
            path.clone(),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    outcome(
        send(
            "application/json-patch+json",
            json!([{"op": "test", "path": "/birthDate", "value": "1900-01-01"}]),
            path.clone(),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    outcome(
        send(
            "application/json-patch+json",
            json!({"op": "nonsense"}),
            path.clone(),
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    outcome(
        send("text/plain", json!([]), path.clone()).await.unwrap(),
        415,
    )
    .await;
    outcome(
        send(
            "application/fhir+json",
            json!({"resourceType": "Patient"}),
            path.clone(),
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    outcome(
        send(
            "application/fhir+json",
            fhirpath.clone(),
            "Patient?identifier=urn:mrn|nobody".into(),
        )
        .await
        .unwrap(),
        404,
    )
    .await;
    outcome(
        send("application/fhir+json", fhirpath, "Patient/missing".into())
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(
        header(&s.get(&path).await, "etag"),
        "W/\"3\"",
        "failed patches wrote nothing"
    );
}

#[tokio::test]
async fn fhirpath_add_writes_lists_and_choices_as_r4_defines_them() {
    let s = start().await;
    let p = s
        .create(&json!({"resourceType": "Patient", "contact": [{"relationship": [{"text": "x"}]}]}))
        .await;
    let path = format!("Patient/{}", p["id"].as_str().unwrap());
    let op = |path: &str, name: &str, value: serde_json::Value| {
        json!({"name": "operation", "part": [
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": path},
        {"name": "name", "valueString": name}, value]})
    };
    let params = json!({"resourceType": "Parameters", "parameter": [
        op("Patient", "name", json!({"name": "value", "valueHumanName": {"family": "Roe"}})),
        op("Patient.contact[0]", "name", json!({"name": "value", "valueHumanName": {"family": "Kin"}})),
        op("Patient", "deceased", json!({"name": "value", "valueBoolean": false})),
    ]});
    let r = s
        .http
        .patch(s.url(&path))
        .header("content-type", FHIR_JSON)
        .body(params.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(
        v["name"],
        json!([{"family": "Roe"}]),
        "Patient.name repeats"
    );
    assert_eq!(
        v["contact"][0]["name"],
        json!({"family": "Kin"}),
        "Patient.contact.name does not"
    );
    assert_eq!(v["deceasedBoolean"], false, "a choice takes its type's key");
}
