//! `$validate` against StructureDefinitions stored in the service, and
//! `validation.enforceProfiles` on writes.

mod common;

use common::*;
use serde_json::{Value, json};

const PROFILE: &str = "http://example.org/fhir/StructureDefinition/hospital-patient";
const MRN: &str = "http://hospital.example.org/mrn";

fn hospital_patient(min_names: u32) -> Value {
    json!({"resourceType": "StructureDefinition", "url": PROFILE, "version": "1", "name": "HospitalPatient",
    "status": "active", "kind": "resource", "abstract": false, "type": "Patient",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
    "differential": {"element": [
        {"id": "Patient", "path": "Patient", "constraint": [{"key": "hosp-1", "severity": "error",
            "human": "A birth date or a deceased flag", "expression": "birthDate.exists() or deceased.exists()"}]},
        {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
        {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "fixedUri": MRN},
        {"id": "Patient.name", "path": "Patient.name", "min": min_names},
        {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
         "binding": {"strength": "required", "valueSet": "http://hl7.org/fhir/ValueSet/marital-status"}}
    ]}})
}

fn patient(identifiers: Value) -> Value {
    json!({"resourceType": "Patient", "meta": {"profile": [PROFILE]}, "identifier": identifiers,
        "name": [{"family": "Chalmers"}], "birthDate": "1974-12-25"})
}

/// (severity, code, first expression) of each issue.
fn issues(oo: &Value) -> Vec<(String, String, String)> {
    oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["severity"].as_str().unwrap().to_owned(),
                i["code"].as_str().unwrap().to_owned(),
                i["expression"][0].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn t(s: &str, c: &str, e: &str) -> (String, String, String) {
    (s.into(), c.into(), e.into())
}

async fn validated(s: &TestServer, path: &str, body: &Value) -> Value {
    let r = s.post(path, body).await;
    assert_eq!(r.status(), 200);
    json(r).await
}

#[tokio::test]
async fn validates_against_a_stored_profile() {
    let s = start().await;
    s.create(&hospital_patient(1)).await;
    let good = patient(json!([{"system": MRN, "value": "42"}]));
    let oo = validated(&s, "Patient/$validate", &good).await;
    assert_eq!(issues(&oo), [t("information", "informational", "")], "{oo}");

    let mut bad = patient(json!([{"system": "http://example.org/ssn", "value": "1"}]));
    bad["maritalStatus"] =
        json!({"coding": [{"system": "http://example.org/status", "code": "M"}]});
    bad.as_object_mut().unwrap().remove("birthDate");
    bad["colour"] = json!("blue");
    let oo = validated(&s, "Patient/$validate", &bad).await;
    assert_eq!(
        issues(&oo),
        [
            t("error", "structure", "Patient.colour"),
            t("error", "invariant", "Patient"),
            t("error", "required", "Patient.identifier"),
            t("error", "code-invalid", "Patient.maritalStatus"),
        ],
        "{oo}"
    );
    assert!(
        oo["issue"][1]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("hosp-1")
    );

    // Named by the caller instead of meta.profile: as a Parameters, or in the query.
    let mut plain = bad.clone();
    plain.as_object_mut().unwrap().remove("meta");
    plain.as_object_mut().unwrap().remove("colour");
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": plain}, {"name": "profile", "valueCanonical": PROFILE}]});
    let oo = validated(&s, "Patient/$validate", &params).await;
    assert_eq!(issues(&oo).len(), 3, "{oo}");
    let oo = validated(
        &s,
        &format!("Patient/$validate?profile={PROFILE}|1"),
        &plain,
    )
    .await;
    assert_eq!(issues(&oo).len(), 3, "{oo}");
    let oo = validated(
        &s,
        &format!("Patient/$validate?profile={PROFILE}|2"),
        &plain,
    )
    .await;
    assert_eq!(issues(&oo), [t("error", "not-found", "")], "{oo}");

    // A profile in meta.profile that is not stored is a warning; one asked for, an error.
    let mut unknown = good.clone();
    unknown["meta"]["profile"] = json!(["http://example.org/fhir/StructureDefinition/nowhere"]);
    let oo = validated(&s, "Patient/$validate", &unknown).await;
    assert_eq!(
        issues(&oo),
        [t("warning", "not-found", "meta.profile")],
        "{oo}"
    );
    let oo = validated(
        &s,
        "Patient/$validate?profile=http://example.org/nowhere",
        &good,
    )
    .await;
    assert_eq!(issues(&oo), [t("error", "not-found", "")], "{oo}");
}

/// A differential on the hospital profile that adds only a required gender.
fn gendered_patient(base: &str) -> Value {
    json!({"resourceType": "StructureDefinition", "url": "http://example.org/fhir/StructureDefinition/gendered",
    "name": "Gendered", "status": "active", "kind": "resource", "abstract": false, "type": "Patient",
    "baseDefinition": base, "derivation": "constraint",
    "differential": {"element": [
        {"id": "Patient", "path": "Patient"},
        {"id": "Patient.gender", "path": "Patient.gender", "min": 1}]}})
}

#[tokio::test]
async fn a_derived_profile_keeps_the_rules_of_the_profile_it_constrains() {
    let s = start().await;
    s.create(&hospital_patient(1)).await;
    s.create(&gendered_patient(PROFILE)).await;
    let asked = "Patient/$validate?profile=http://example.org/fhir/StructureDefinition/gendered";
    let mut plain = patient(json!([{"system": "http://example.org/ssn", "value": "1"}]));
    plain.as_object_mut().unwrap().remove("meta");
    plain.as_object_mut().unwrap().remove("birthDate");
    let oo = validated(&s, asked, &plain).await;
    assert_eq!(
        issues(&oo),
        [
            t("error", "required", "Patient.gender"),
            t("error", "invariant", "Patient"),
            t("error", "required", "Patient.identifier"),
        ],
        "{oo}"
    );
    plain["gender"] = json!("female");
    plain["birthDate"] = json!("1974-12-25");
    plain["identifier"] = json!([{"system": MRN, "value": "42"}]);
    let oo = validated(&s, asked, &plain).await;
    assert_eq!(issues(&oo), [t("information", "informational", "")], "{oo}");

    // Its base is not stored: its rules are unknown, so the resource cannot be said to conform.
    let mut orphan = gendered_patient("http://example.org/fhir/StructureDefinition/nowhere");
    orphan["url"] = json!("http://example.org/fhir/StructureDefinition/orphan");
    s.create(&orphan).await;
    let oo = validated(
        &s,
        "Patient/$validate?profile=http://example.org/fhir/StructureDefinition/orphan",
        &plain,
    )
    .await;
    assert_eq!(issues(&oo), [t("error", "not-found", "")], "{oo}");
    assert!(oo.to_string().contains("baseDefinition"), "{oo}");

    // Two profiles each deriving from the other are each checked once.
    let mut a = gendered_patient("http://example.org/b");
    a["url"] = json!("http://example.org/a");
    let mut b = gendered_patient("http://example.org/a");
    b["url"] = json!("http://example.org/b");
    s.create(&a).await;
    s.create(&b).await;
    let oo = validated(&s, "Patient/$validate?profile=http://example.org/a", &plain).await;
    assert_eq!(issues(&oo), [t("information", "informational", "")], "{oo}");
}

#[tokio::test]
async fn an_updated_profile_is_recompiled() {
    let s = start().await;
    let sd = s.create(&hospital_patient(1)).await;
    let mut nameless = patient(json!([{"system": MRN, "value": "42"}]));
    nameless.as_object_mut().unwrap().remove("name");
    let oo = validated(&s, "Patient/$validate", &nameless).await;
    assert_eq!(issues(&oo), [t("error", "required", "Patient.name")]);
    let mut relaxed = hospital_patient(0);
    relaxed["id"] = sd["id"].clone();
    let r = s
        .put(
            &format!("StructureDefinition/{}", sd["id"].as_str().unwrap()),
            &relaxed,
        )
        .await;
    assert_eq!(r.status(), 200);
    let oo = validated(&s, "Patient/$validate", &nameless).await;
    assert_eq!(issues(&oo), [t("information", "informational", "")], "{oo}");

    // A stored StructureDefinition this validator cannot use says why.
    let mut broken = hospital_patient(1);
    broken["url"] = json!("http://example.org/broken");
    broken["differential"]["element"][1]["path"] = json!("Patient.colour");
    broken["differential"]["element"][1]["id"] = json!("Patient.colour");
    s.create(&broken).await;
    let oo = validated(
        &s,
        "Patient/$validate?profile=http://example.org/broken",
        &nameless,
    )
    .await;
    let found = issues(&oo);
    assert!(
        found.contains(&t("error", "processing", "meta.profile")),
        "{oo}"
    );
    assert!(
        oo.to_string().contains("'Patient' has no element 'colour'"),
        "{oo}"
    );
}

#[tokio::test]
async fn instance_level_and_modes() {
    let s = start().await;
    s.create(&hospital_patient(1)).await;
    let stored = s
        .create(&patient(
            json!([{"system": "http://example.org/ssn", "value": "1"}]),
        ))
        .await;
    let id = stored["id"].as_str().unwrap();

    // The stored resource, with its own meta.profile.
    let oo = json(s.get(&format!("Patient/{id}/$validate")).await).await;
    assert_eq!(
        issues(&oo),
        [t("error", "required", "Patient.identifier")],
        "{oo}"
    );
    outcome(s.get("Patient/nobody/$validate").await, 404).await;

    let update = |body: Value| {
        json!({"resourceType": "Parameters", "parameter": [
        {"name": "mode", "valueCode": "update"}, {"name": "resource", "resource": body}]})
    };
    let mut same = patient(json!([{"system": MRN, "value": "42"}]));
    same["id"] = json!(id);
    let oo = validated(
        &s,
        &format!("Patient/{id}/$validate"),
        &update(same.clone()),
    )
    .await;
    assert_eq!(issues(&oo), [t("information", "informational", "")], "{oo}");
    same["id"] = json!("other");
    let oo = validated(&s, &format!("Patient/{id}/$validate"), &update(same)).await;
    assert_eq!(issues(&oo), [t("error", "invalid", "Patient.id")], "{oo}");

    let delete = json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]});
    let oo = validated(&s, &format!("Patient/{id}/$validate"), &delete).await;
    assert_eq!(issues(&oo), [t("information", "informational", "")]);
    outcome(s.post("Patient/nobody/$validate", &delete).await, 404).await;
    outcome(s.post("Patient/$validate", &delete).await, 400).await;

    // Requests that cannot be read are 400s.
    let r = s
        .http
        .post(s.url("Patient/$validate"))
        .header("content-type", FHIR_JSON)
        .body("{not json")
        .send()
        .await
        .unwrap();
    outcome(r, 400).await;
    let odd = json!({"resourceType": "Parameters", "parameter": [{"name": "strict", "valueBoolean": true}]});
    outcome(s.post("Patient/$validate", &odd).await, 400).await;
    outcome(
        s.post("Patient/$validate?mode=replace", &patient(json!([])))
            .await,
        400,
    )
    .await;
    outcome(s.post("Nonsense/$validate", &patient(json!([]))).await, 404).await;
    let oo = validated(
        &s,
        "Observation/$validate",
        &patient(json!([{"system": MRN, "value": "1"}])),
    )
    .await;
    assert_eq!(issues(&oo), [t("error", "invalid", "resourceType")], "{oo}");
}

#[tokio::test]
async fn writes_enforce_meta_profiles_when_configured() {
    let mut cfg = config();
    cfg.validation.enforce_profiles = true;
    let s = start_with(cfg).await;
    s.create(&hospital_patient(1)).await;

    let bad = patient(json!([{"system": "http://example.org/ssn", "value": "1"}]));
    let oo = outcome(s.post("Patient", &bad).await, 422).await;
    assert_eq!(
        issues(&oo),
        [t("error", "required", "Patient.identifier")],
        "{oo}"
    );
    let good = s
        .create(&patient(json!([{"system": MRN, "value": "42"}])))
        .await;
    let id = good["id"].as_str().unwrap();

    let mut worse = bad.clone();
    worse["id"] = json!(id);
    let oo = outcome(s.put(&format!("Patient/{id}"), &worse).await, 422).await;
    assert_eq!(
        issues(&oo),
        [t("error", "required", "Patient.identifier")],
        "{oo}"
    );

    let mut unknown = good.clone();
    unknown["meta"] = json!({"profile": ["http://example.org/nowhere"]});
    let oo = outcome(s.put(&format!("Patient/{id}"), &unknown).await, 422).await;
    assert_eq!(issues(&oo), [t("error", "not-found", "")], "{oo}");

    // Without meta.profile nothing is enforced; in a transaction the same rule holds.
    s.create(&json!({"resourceType": "Patient"})).await;
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": bad, "request": {"method": "POST", "url": "Patient"}}]});
    let r = s.post("", &tx).await;
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
}
