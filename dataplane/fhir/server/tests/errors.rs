//! Every failure is an OperationOutcome with the right status; the auth layer is on by default.

mod common;

use common::*;
use hds_common::config::AuthMode;
use serde_json::json;

#[tokio::test]
async fn request_errors_are_operation_outcomes() {
    let s = start().await;
    let o = outcome(
        s.post(
            "Patient",
            &json!({"resourceType": "Patient", "birthDate": "1980-13-01", "foo": 1}),
        )
        .await,
        400,
    )
    .await;
    let exprs: Vec<&str> = o["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["expression"][0].as_str().unwrap())
        .collect();
    assert_eq!(exprs, ["Patient.birthDate", "Patient.foo"]);
    outcome(
        s.post(
            "Patient",
            &json!({"resourceType": "Observation", "status": "final", "code": {}}),
        )
        .await,
        400,
    )
    .await;
    outcome(s.post("Patient", &json!({"active": true})).await, 400).await;
    outcome(s.post("Foo", &json!({"resourceType": "Foo"})).await, 404).await;
    outcome(
        s.post("Resource", &json!({"resourceType": "Resource"}))
            .await,
        404,
    )
    .await;
    outcome(s.get("Patient/bad$id").await, 400).await;
    outcome(
        s.put("Patient/a", &json!({"resourceType": "Patient", "id": "b"}))
            .await,
        400,
    )
    .await;
    outcome(
        s.put("Patient/a", &json!({"resourceType": "Patient"}))
            .await,
        400,
    )
    .await;
    let raw = |ct: &'static str, body: &'static str| {
        s.http
            .post(s.url("Patient"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    outcome(raw(FHIR_JSON, "{\"resourceType\": ").await.unwrap(), 400).await;
    outcome(raw(FHIR_JSON, "[1,2]").await.unwrap(), 400).await;
    outcome(raw(FHIR_JSON, "").await.unwrap(), 400).await;
    let xml = outcome(
        raw(
            "application/fhir+xml",
            "<Patient xmlns=\"http://hl7.org/fhir\"/>",
        )
        .await
        .unwrap(),
        415,
    )
    .await;
    assert!(
        xml["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("XML")
    );
    outcome(s.get("Patient?_format=xml").await, 406).await;
    outcome(
        s.http
            .get(s.url("metadata"))
            .header("accept", "application/fhir+xml")
            .send()
            .await
            .unwrap(),
        406,
    )
    .await;
    assert_eq!(
        s.http
            .get(s.url("metadata"))
            .header("accept", "text/html,*/*;q=0.8")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(s.get("metadata?_format=json").await.status(), 200);
    outcome(s.http.delete(s.url("metadata")).send().await.unwrap(), 405).await;
    outcome(s.get("Patient/a/b/c/d").await, 404).await;
    outcome(
        s.http
            .post(s.url(""))
            .header("content-type", FHIR_JSON)
            .body("{}")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn body_limit_gives_413() {
    let mut cfg = config();
    cfg.limits.max_request_body_bytes = 1024;
    let s = start_with(cfg).await;
    let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(2000)}]});
    let o = outcome(s.post("Patient", &big).await, 413).await;
    assert_eq!(o["issue"][0]["code"], "too-costly");
    assert_eq!(
        s.post("Patient", &json!({"resourceType": "Patient"}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn auth_is_required_unless_turned_off_by_name() {
    let mut cfg = config();
    cfg.auth.mode = AuthMode::Oidc;
    let s = start_with(cfg).await;
    let r = s.get("Patient/x").await;
    let challenge = header(&r, "www-authenticate");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_request\""),
        "{challenge}"
    );
    outcome(r, 401).await;
    let r = s
        .http
        .post(s.url("Patient"))
        .bearer_auth("abc.def.ghi")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "www-authenticate").contains("invalid_token"));
    outcome(r, 401).await;
    // The CapabilityStatement stays public, and says tokens are needed.
    let cs = json(s.get("metadata").await).await;
    assert_eq!(
        cs["rest"][0]["security"]["service"][0]["coding"][0]["code"],
        "OAuth"
    );
}

#[tokio::test]
async fn capability_statement_claims_what_is_routed() {
    let s = start().await;
    let cs = json(s.get("metadata").await).await;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["implementation"]["url"], s.base);
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 146, "every concrete R4 resource type");
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    let params: Vec<&str> = patient["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "_id",
        "_lastUpdated",
        "_tag",
        "birthdate",
        "family",
        "identifier",
        "name",
    ] {
        assert!(params.contains(&p), "Patient lacks {p}: {params:?}");
    }
    assert!(
        !params.contains(&"_text"),
        "_text is claimed once for all types, at rest.searchParam"
    );
    let common: Vec<&str> = cs["rest"][0]["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(common, ["_type", "_text", "_content", "_list"]);
    // Operations are claimed where they are routed; $import only when it is on.
    let names = |ops: &serde_json::Value| -> Vec<String> {
        ops.as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&cs["rest"][0]["operation"]),
        ["export", "bulk-delete", "reindex", "purge-history"]
    );
    assert_eq!(
        names(&patient["operation"]),
        ["validate", "everything", "export"]
    );
    for q in ["_text=x", "_content=x", "_list=x", "_type=Patient"] {
        let path = if q.starts_with("_type") {
            format!("?{q}")
        } else {
            format!("Patient?{q}")
        };
        assert_eq!(s.get(&path).await.status(), 200, "{path}");
    }
    // Every claimed parameter of every type is accepted by a search.
    for r in resources {
        let rt = r["type"].as_str().unwrap();
        for p in r["searchParam"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let resp = s.get(&format!("{rt}?{name}:missing=true&_count=1")).await;
            assert_eq!(
                resp.status(),
                200,
                "{rt}?{name}: {}",
                resp.text().await.unwrap()
            );
        }
    }
    // Each claimed interaction answers with something other than 404/405/501.
    let p = s.create(&json!({"resourceType": "Patient"})).await;
    let id = p["id"].as_str().unwrap();
    for path in [
        format!("Patient/{id}"),
        format!("Patient/{id}/_history/1"),
        format!("Patient/{id}/_history"),
        "Patient/_history".into(),
        "Patient?_id=x".into(),
        "_history".into(),
    ] {
        assert_eq!(s.get(&path).await.status(), 200, "{path}");
    }
}
