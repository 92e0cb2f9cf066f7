//! `$import` in Azure's shape: the kick-off's Parameters, inputs confined to the import
//! storage, the async status and result, refused lines reported with input and line (and the
//! rest imported), InitialLoad's create-only rule and initial import mode, and cancellation.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

struct Imports {
    server: TestServer,
    dir: PathBuf,
}

async fn start_importing(initial_mode: bool) -> Imports {
    start_importing_with(initial_mode, false).await
}

async fn start_importing_with(initial_mode: bool, enforce_profiles: bool) -> Imports {
    let dir = std::env::temp_dir().join(format!("hds-import-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = config();
    cfg.validation.enforce_profiles = enforce_profiles;
    cfg.import.enabled = true;
    cfg.import.initial_import_mode = initial_mode;
    cfg.import.storage_url = Some(format!("file://{}", dir.display()));
    Imports {
        server: start_with(cfg).await,
        dir,
    }
}

fn parameters(mode: &str, inputs: &[(Option<&str>, &str)]) -> Value {
    let mut parameter = vec![
        json!({"name": "inputFormat", "valueString": "application/fhir+ndjson"}),
        json!({"name": "mode", "valueString": mode}),
    ];
    for (t, url) in inputs {
        let mut part = vec![json!({"name": "url", "valueUri": url})];
        if let Some(t) = t {
            part.push(json!({"name": "type", "valueString": t}));
        }
        parameter.push(json!({"name": "input", "part": part}));
    }
    json!({"resourceType": "Parameters", "parameter": parameter})
}

async fn kick_off(s: &TestServer, body: &Value) -> reqwest::Response {
    s.http
        .post(s.url("$import"))
        .header("prefer", "respond-async")
        .header("content-type", FHIR_JSON)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn import(s: &TestServer, body: &Value) -> Value {
    let r = kick_off(s, body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let status = header(&r, "content-location");
    assert!(status.contains("/_operations/import/"), "{status}");
    let result = poll_job(s, &status).await;
    // Azure's result is plain JSON, not a FHIR resource.
    let again = s.http.get(&status).send().await.unwrap();
    assert_eq!(header(&again, "content-type"), "application/json");
    result
}

/// An error file of the result: NDJSON, one OperationOutcome per refused line.
async fn error_file(s: &TestServer, url: &Value) -> Vec<Value> {
    let r = s.http.get(url.as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/fhir+ndjson");
    let text = r.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn only(mut outcomes: Vec<Value>) -> Value {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.remove(0)
}

#[tokio::test]
async fn good_lines_are_imported_and_bad_ones_reported_by_input_and_line() {
    let Imports { server: s, dir } = start_importing(false).await;
    let patients = [
        json!({"resourceType": "Patient", "id": "imp-1", "name": [{"family": "Importer"}]})
            .to_string(),
        String::new(),
        "{not json".to_owned(),
        json!({"resourceType": "Patient", "id": "imp-2", "gender": "male"}).to_string(),
        json!({"resourceType": "Observation", "id": "wrong-type", "status": "final", "code": {"text": "x"}})
            .to_string(),
        json!({"resourceType": "Patient", "id": "imp-3", "gender": "neither"}).to_string(),
        // The same id again, later in the file: a second version.
        json!({"resourceType": "Patient", "id": "imp-1", "name": [{"family": "Importer2"}]})
            .to_string(),
    ]
    .join("\n");
    std::fs::write(dir.join("Patient.ndjson"), patients).unwrap();
    std::fs::create_dir_all(dir.join("obs")).unwrap();
    let obs = [
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "no id"},
               "subject": {"reference": "Patient/imp-1"}}),
        json!({"resourceType": "Observation", "id": "o-1", "status": "final",
               "code": {"text": "hr"}, "subject": {"reference": "Patient/imp-2"}}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>();
    std::fs::write(dir.join("obs/Observation.ndjson"), obs).unwrap();
    let patient_url = format!("file://{}/Patient.ndjson", dir.display());
    let result = import(
        &s,
        &parameters(
            "IncrementalLoad",
            &[
                (Some("Patient"), &patient_url),
                (None, "obs/Observation.ndjson"),
                (Some("Patient"), "missing.ndjson"),
            ],
        ),
    )
    .await;
    assert!(result["transactionTime"].is_string());
    assert!(result["request"].as_str().unwrap().ends_with("/$import"));
    assert_eq!(
        result["output"],
        json!([
            {"count": 3, "inputUrl": patient_url, "type": "Patient"},
            {"count": 2, "inputUrl": "obs/Observation.ndjson"},
            {"count": 0, "inputUrl": "missing.ndjson", "type": "Patient"},
        ])
    );
    let errors = result["error"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{result}");
    assert_eq!(errors[0]["count"], 3);
    assert_eq!(errors[0]["type"], "OperationOutcome");
    assert_eq!(errors[0]["inputUrl"], json!(patient_url));
    assert_eq!(errors[1]["count"], 1);

    // The error file: one OperationOutcome per refused line, naming input and line.
    let outcomes = error_file(&s, &errors[0]["url"]).await;
    assert_eq!(outcomes.len(), 3);
    let first = |o: &Value| o["issue"][0].clone();
    assert_eq!(first(&outcomes[0])["code"], "structure");
    assert!(
        first(&outcomes[0])["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{patient_url} line 3: not a JSON resource")),
        "{}",
        outcomes[0]
    );
    assert_eq!(first(&outcomes[1])["code"], "invalid");
    assert!(
        first(&outcomes[1])["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 5: this input holds Patient resources, but the line is a Observation")
    );
    assert_eq!(first(&outcomes[2])["code"], "code-invalid");
    assert_eq!(first(&outcomes[2])["expression"], json!(["Patient.gender"]));
    assert!(
        first(&outcomes[2])["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 6:")
    );
    let missing = only(error_file(&s, &errors[1]["url"]).await);
    assert_eq!(missing["issue"][0]["code"], "not-found");

    // What was imported is there, searchable, with the later line as the current version.
    let p = json(s.get("Patient/imp-1").await).await;
    assert_eq!(p["name"][0]["family"], "Importer2");
    assert_eq!(p["meta"]["versionId"], "2");
    assert_eq!(s.get("Patient/imp-3").await.status(), 404);
    assert_eq!(s.get("Observation/wrong-type").await.status(), 404);
    let found = json(s.get("Observation?subject=Patient/imp-1").await).await;
    assert_eq!(found["entry"].as_array().unwrap().len(), 1);
    let new_id = found["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(new_id.len(), 36, "a line without an id gets a new one");
    assert_eq!(s.get("Observation/o-1").await.status(), 200);
}

#[tokio::test]
async fn bad_kick_offs_are_refused_with_reasons() {
    let Imports { server: s, dir: _ } = start_importing(false).await;
    let ok = parameters("IncrementalLoad", &[(None, "a.ndjson")]);
    let r = s
        .http
        .post(s.url("$import"))
        .header("content-type", FHIR_JSON)
        .body(ok.to_string())
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

    let cases = [
        (
            parameters("IncrementalLoad", &[(None, "file:///etc/passwd")]),
            "not inside this service's import storage",
        ),
        (
            parameters("IncrementalLoad", &[(None, "../elsewhere.ndjson")]),
            "not a plain file path",
        ),
        (
            parameters("IncrementalLoad", &[(None, "https://example.org/a.ndjson")]),
            "not inside this service's import storage",
        ),
        (parameters("IncrementalLoad", &[]), "at least one input"),
        (
            parameters("Sometimes", &[(None, "a.ndjson")]),
            "mode 'Sometimes'",
        ),
        (
            parameters("InitialLoad", &[(None, "a.ndjson")]),
            "initial import mode",
        ),
        (
            parameters("IncrementalLoad", &[(Some("Patientt"), "a.ndjson")]),
            "not an R4 resource type",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "inputFormat", "valueString": "text/csv"},
                {"name": "input", "part": [{"name": "url", "valueUri": "a.ndjson"}]}]}),
            "inputFormat 'text/csv'",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "input", "part": []}]}),
            "no url part",
        ),
        (
            json!({"resourceType": "Patient"}),
            "takes a Parameters resource",
        ),
    ];
    for (body, why) in cases {
        let oo = outcome(kick_off(&s, &body).await, 400).await;
        let text = oo["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(text.contains(why), "{body}: {text}");
    }

    // Off unless enabled.
    let off = start().await;
    let oo = outcome(kick_off(&off, &ok).await, 400).await;
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("spec.import.enabled")
    );
    assert_eq!(s.get("_operations/import/not-a-uuid").await.status(), 404);
    assert_eq!(
        s.get(&format!("_operations/import/{}", uuid::Uuid::new_v4()))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn initial_load_only_creates_and_api_writes_wait_for_it() {
    let Imports { server: s, dir } = start_importing(true).await;
    // Writes through the API are refused in initial import mode, directly or in a Bundle.
    let oo = outcome(
        s.post("Patient", &json!({"resourceType": "Patient"})).await,
        403,
    )
    .await;
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("initial import mode")
    );
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient"}}]});
    let b = json(s.post("", &bundle).await).await;
    assert_eq!(b["entry"][0]["response"]["status"], "403 Forbidden");
    assert_eq!(b["entry"][1]["response"]["status"], "200 OK");

    let lines = [
        json!({"resourceType": "Patient", "id": "init-1"}),
        json!({"resourceType": "Patient", "id": "init-2"}),
        json!({"resourceType": "Patient", "id": "init-1", "gender": "female"}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>();
    std::fs::write(dir.join("p.ndjson"), lines).unwrap();
    let result = import(&s, &parameters("InitialLoad", &[(None, "p.ndjson")])).await;
    assert_eq!(result["output"][0]["count"], 2);
    assert_eq!(result["error"][0]["count"], 1);
    let oo = only(error_file(&s, &result["error"][0]["url"]).await);
    assert_eq!(oo["issue"][0]["code"], "duplicate");
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 3: Patient/init-1 exists already")
    );
    let p = json(s.get("Patient/init-1").await).await;
    assert_eq!(p["meta"]["versionId"], "1");
    assert!(p.get("gender").is_none());
}

#[tokio::test]
async fn a_cancelled_import_keeps_what_it_committed_and_answers_404() {
    let Imports { server: s, dir } = start_importing(false).await;
    let lines: String = (0..3000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"resourceType": "Basic", "id": format!("b{i}"), "code": {"text": "x"}})
            )
        })
        .collect();
    std::fs::write(dir.join("basic.ndjson"), lines).unwrap();
    let r = kick_off(
        &s,
        &parameters("IncrementalLoad", &[(None, "basic.ndjson")]),
    )
    .await;
    assert_eq!(r.status(), 202);
    let status = header(&r, "content-location");
    let r = s.http.delete(&status).send().await.unwrap();
    assert_eq!(r.status(), 202);
    // The worker stops at its next chunk; once it has, nothing more arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = s.http.get(&status).send().await.unwrap();
    let oo = outcome(r, 404).await;
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    let count = |s: &TestServer| {
        let url = s.url("Basic?_summary=count");
        let http = s.http.clone();
        async move {
            let b: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            b["total"].as_u64().unwrap()
        }
    };
    let before = count(&s).await;
    assert!(before < 3000, "cancelled before the end: {before}");
    assert_eq!(before % 500, 0, "only whole chunks are kept: {before}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(count(&s).await, before);
    assert_eq!(s.http.delete(&status).send().await.unwrap().status(), 404);
}

/// IncrementalLoad keeps `meta.versionId` and `meta.lastUpdated`, in any order: the newest
/// version is the current one, older ones go to history, and a version stored already is a
/// refused line.
#[tokio::test]
async fn incremental_load_keeps_versions_and_last_updated() {
    let Imports { server: s, dir } = start_importing(false).await;
    let v = |version: &str, at: &str, family: &str| {
        json!({"resourceType": "Patient", "id": "kept", "name": [{"family": family}],
               "meta": {"versionId": version, "lastUpdated": at}})
        .to_string()
    };
    let lines = [
        v("3", "2020-03-01T10:00:00Z", "Third"),
        v("1", "2019-01-01T10:00:00Z", "First"),
        v("3", "2021-01-01T00:00:00Z", "Again"),
        json!({"resourceType": "Patient", "id": "odd", "meta": {"versionId": "v7"}}).to_string(),
        // Only a lastUpdated: the next version, at that time.
        json!({"resourceType": "Patient", "id": "dated", "meta": {"lastUpdated": "2018-05-05T05:05:05Z"}})
            .to_string(),
    ]
    .join("\n");
    std::fs::write(dir.join("kept.ndjson"), lines).unwrap();
    let result = import(&s, &parameters("IncrementalLoad", &[(None, "kept.ndjson")])).await;
    assert_eq!(result["output"][0]["count"], 3);
    assert_eq!(result["error"][0]["count"], 2);
    let outcomes = error_file(&s, &result["error"][0]["url"]).await;
    assert_eq!(outcomes[0]["issue"][0]["code"], "duplicate");
    assert!(
        outcomes[0]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 3: Patient/kept version 3 is stored already")
    );
    assert!(
        outcomes[1]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 4: meta.versionId 'v7'")
    );

    let current = json(s.get("Patient/kept").await).await;
    assert_eq!(current["name"][0]["family"], "Third");
    assert_eq!(current["meta"]["versionId"], "3");
    assert!(
        current["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .starts_with("2020-03-01T10:00:00")
    );
    let first = json(s.get("Patient/kept/_history/1").await).await;
    assert_eq!(first["name"][0]["family"], "First");
    let history = json(s.get("Patient/kept/_history").await).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 2);
    let dated = json(s.get("Patient/dated").await).await;
    assert_eq!(dated["meta"]["versionId"], "1");
    assert!(
        dated["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .starts_with("2018-05-05T05:05:05")
    );
    // The search index follows the current version.
    let found = json(s.get("Patient?family=Third").await).await;
    assert_eq!(found["entry"].as_array().unwrap().len(), 1);
    assert_eq!(
        json(s.get("Patient?family=First").await).await["entry"],
        Value::Null
    );
}

/// With `validation.enforceProfiles`, an imported resource must conform to the profiles its
/// `meta.profile` names, as a write through the API must.
#[tokio::test]
async fn imports_enforce_profiles_when_writes_do() {
    let Imports { server: s, dir } = start_importing_with(false, true).await;
    let url = "http://example.org/fhir/StructureDefinition/imported-patient";
    s.create(&json!({"resourceType": "StructureDefinition", "url": url, "name": "ImportedPatient",
        "status": "active", "kind": "resource", "abstract": false, "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "differential": {"element": [
            {"id": "Patient", "path": "Patient"},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1}]}}))
        .await;
    let lines = [
        json!({"resourceType": "Patient", "id": "conforms", "meta": {"profile": [url]},
               "identifier": [{"value": "1"}]}),
        json!({"resourceType": "Patient", "id": "lacks-id", "meta": {"profile": [url]}}),
        json!({"resourceType": "Patient", "id": "no-claim"}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>();
    std::fs::write(dir.join("profiled.ndjson"), lines).unwrap();
    let result = import(
        &s,
        &parameters("IncrementalLoad", &[(None, "profiled.ndjson")]),
    )
    .await;
    assert_eq!(result["output"][0]["count"], 2);
    assert_eq!(result["error"][0]["count"], 1);
    let oo = only(error_file(&s, &result["error"][0]["url"]).await);
    assert_eq!(oo["issue"][0]["code"], "required");
    assert_eq!(oo["issue"][0]["expression"], json!(["Patient.identifier"]));
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("line 2:")
    );
    assert_eq!(s.get("Patient/conforms").await.status(), 200);
    assert_eq!(s.get("Patient/lacks-id").await.status(), 404);
    assert_eq!(s.get("Patient/no-claim").await.status(), 200);
}
