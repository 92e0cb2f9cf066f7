//! SMART on FHIR scopes at the API, adversarially: two patients A (`pa`) and B (`pb`) with
//! Observations, Encounters and Conditions, a shared Practitioner and Organization, and tokens
//! scoped to A that try every path to B's data (read, vread, history, search, includes, chains,
//! `_has`, `_list`, compartment and system search, conditional interactions and writes).
//!
//! Choices these tests pin (see `src/smart.rs`): a resource outside the caller's grants reads
//! as 404 (as if it did not exist); type and system history under a patient scope are 403;
//! writes of resources outside the compartment (or naming another patient) are 403.

mod common;

use std::collections::BTreeSet;

use axum::Json;
use axum::routing::get;
use common::*;
use hds_auth::testing::{Authority, TestKey, ec_key, now, sign, start_authority};
use hds_common::config::AuthMode;
use reqwest::Method;
use serde_json::{Value, json};

const AUD: &str = "https://fhir.test";
const SMART_USER: &[&str] = &["FHIR SMART User"];
const CONTRIBUTOR: &[&str] = &["FHIR Data Contributor"];
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

struct Fixture {
    s: TestServer,
    a: Authority,
    key: TestKey,
    admin: String,
}

impl Fixture {
    fn token(&self, roles: &[&str], scopes: &str, patient: Option<&str>) -> String {
        let mut claims = json!({"iss": self.a.issuer, "aud": AUD, "sub": "u", "exp": now() + 300,
                                "iat": now(), "roles": roles, "scp": scopes});
        if let Some(p) = patient {
            claims["patient"] = json!(p);
            claims["fhirUser"] = json!(format!("Patient/{p}"));
        }
        sign(&self.key, &claims)
    }

    /// A SMART user's token for patient A.
    fn patient_a(&self, scopes: &str) -> String {
        self.token(SMART_USER, scopes, Some("pa"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> (u16, Value) {
        let mut r = self
            .s
            .http
            .request(method, self.s.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.header("content-type", content_type).body(b.to_string());
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, token, None, FHIR_JSON).await
    }

    async fn put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(Method::PUT, path, token, Some(body), FHIR_JSON)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body), FHIR_JSON)
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, token, None, FHIR_JSON)
            .await
    }

    /// Matches of a search, as `Type/id`, sorted; panics unless it answers 200.
    async fn matches(&self, path: &str, token: &str) -> Vec<String> {
        let (status, b) = self.get(path, token).await;
        assert_eq!(status, 200, "{path}: {b}");
        sorted(ids_with_mode(&b, "match"))
    }

    async fn included(&self, path: &str, token: &str) -> Vec<String> {
        let (status, b) = self.get(path, token).await;
        assert_eq!(status, 200, "{path}: {b}");
        sorted(ids_with_mode(&b, "include"))
    }

    /// The resource as the admin sees it now.
    async fn admin_read(&self, path: &str) -> Value {
        let (status, b) = self.get(path, &self.admin).await;
        assert_eq!(status, 200, "{path}: {b}");
        b
    }
}

fn sorted(v: Vec<String>) -> Vec<String> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| s.to_string()).collect())
}

/// 403 with an OperationOutcome whose code is `forbidden`; returns its diagnostics.
fn forbidden(r: (u16, Value), what: &str) -> String {
    assert_eq!(r.0, 403, "{what}: {}", r.1);
    assert_eq!(r.1["resourceType"], "OperationOutcome", "{what}");
    assert_eq!(r.1["issue"][0]["code"], "forbidden", "{what}: {}", r.1);
    r.1["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn patient(id: &str, family: &str, given: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": [given]}],
           "managingOrganization": {"reference": "Organization/org"}})
}

fn observation(id: &str, subject: &str, category: &str, ident: &str) -> Value {
    let enc = if subject == "pa" { "enc-a" } else { "enc-b" };
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "identifier": [{"system": "urn:ids", "value": ident}],
           "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
           "subject": {"reference": format!("Patient/{subject}")},
           "encounter": {"reference": format!("Encounter/{enc}")},
           "performer": [{"reference": "Practitioner/doc"}]})
}

fn new_observation(subject: &str, category: &str) -> Value {
    let mut o = observation("x", subject, category, "new");
    o.as_object_mut().unwrap().remove("id");
    o.as_object_mut().unwrap().remove("encounter");
    o
}

async fn server_with(authority: &str) -> TestServer {
    let mut cfg = config();
    cfg.auth.mode = AuthMode::Oidc;
    cfg.auth.authority = Some(authority.to_owned());
    cfg.auth.audience = Some(AUD.into());
    start_with(cfg).await
}

/// The server, its authority, and A's and B's records written by a Contributor.
async fn fixture() -> Fixture {
    let a = start_authority().await;
    let key = ec_key("k1");
    *a.jwks.lock().unwrap() = vec![key.jwk.clone()];
    let s = server_with(&a.issuer).await;
    let mut f = Fixture {
        s,
        a,
        key,
        admin: String::new(),
    };
    f.admin = f.token(CONTRIBUTOR, "", None);
    let resources = vec![
        json!({"resourceType": "Organization", "id": "org", "name": "Clinic"}),
        json!({"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Doc"}]}),
        patient("pa", "Anders", "Alice"),
        patient("pb", "Brown", "Bob"),
        json!({"resourceType": "Encounter", "id": "enc-a", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/pa"}}),
        json!({"resourceType": "Encounter", "id": "enc-b", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/pb"}}),
        observation("obs-a-lab", "pa", "laboratory", "a1"),
        observation("obs-a-vital", "pa", "vital-signs", "a2"),
        observation("obs-b-lab", "pb", "laboratory", "b1"),
        observation("obs-b-vital", "pb", "vital-signs", "b2"),
        json!({"resourceType": "Condition", "id": "cond-a", "code": {"text": "asthma"},
               "subject": {"reference": "Patient/pa"}}),
        json!({"resourceType": "Condition", "id": "cond-b", "code": {"text": "asthma"},
               "subject": {"reference": "Patient/pb"}}),
        // B's list, which names one of A's Observations.
        json!({"resourceType": "List", "id": "list-b", "status": "current", "mode": "working",
               "subject": {"reference": "Patient/pb"},
               "entry": [{"item": {"reference": "Observation/obs-a-lab"}}]}),
        json!({"resourceType": "List", "id": "list-a", "status": "current", "mode": "working",
               "subject": {"reference": "Patient/pa"},
               "entry": [{"item": {"reference": "Observation/obs-a-lab"}}]}),
    ];
    for r in resources {
        let path = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let (status, body) = f.put(&path, &f.admin, &r).await;
        assert_eq!(status, 201, "seed {path}: {body}");
    }
    f
}

const A_OBS: &[&str] = &["Observation/obs-a-lab", "Observation/obs-a-vital"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_scope_reads_only_its_compartment() {
    let f = fixture().await;
    let t = f.patient_a("launch/patient openid fhirUser patient/*.read");
    for own in [
        "Patient/pa",
        "Observation/obs-a-lab",
        "Encounter/enc-a",
        "Condition/cond-a",
        "Observation/obs-a-lab/_history/1",
        "List/list-a",
    ] {
        assert_eq!(f.get(own, &t).await.0, 200, "{own}");
    }
    // B's records read as unknown ones: 404, not 403, so their existence is not confirmed.
    for other in [
        "Patient/pb",
        "Observation/obs-b-lab",
        "Encounter/enc-b",
        "Condition/cond-b",
        "List/list-b",
        "Observation/obs-b-lab/_history/1",
        "Observation/obs-b-lab/_history",
        "Patient/does-not-exist",
    ] {
        let (status, body) = f.get(other, &t).await;
        assert_eq!(status, 404, "{other}: {body}");
        assert!(!body.to_string().contains("Brown"), "{other}: {body}");
    }
    // Types outside the Patient compartment are not covered by patient/ scopes.
    for shared in [
        "Practitioner/doc",
        "Organization/org",
        "Practitioner?name=Doc",
    ] {
        let why = forbidden(f.get(shared, &t).await, shared);
        assert!(why.contains("Patient compartment"), "{shared}: {why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_scope_searches_never_reach_another_patient() {
    let f = fixture().await;
    let t = f.patient_a("patient/*.read");
    assert_eq!(f.matches("Observation", &t).await, strs(A_OBS));
    assert_eq!(f.matches("Patient", &t).await, strs(&["Patient/pa"]));
    assert!(
        f.matches("Observation?subject=Patient/pb", &t)
            .await
            .is_empty()
    );
    assert!(f.matches("Observation?patient=pb", &t).await.is_empty());
    assert!(f.matches("Observation?_id=obs-b-lab", &t).await.is_empty());
    assert!(f.matches("Patient?name=Brown", &t).await.is_empty());
    assert!(f.matches("Patient?_id=pb", &t).await.is_empty());
    // Chains and _has are confined too: they cannot test B's data.
    assert!(
        f.matches("Observation?subject:Patient.name=Brown", &t)
            .await
            .is_empty()
    );
    assert_eq!(
        f.matches("Observation?subject:Patient.name=Anders", &t)
            .await,
        strs(A_OBS)
    );
    assert!(
        f.matches(
            "Encounter?_has:Observation:encounter:identifier=urn:ids|b1",
            &t
        )
        .await
        .is_empty()
    );
    assert_eq!(
        f.matches("Patient?_has:Observation:patient:code=1234-5", &t)
            .await,
        strs(&["Patient/pa"])
    );
    assert!(
        f.matches("Patient?_has:Observation:patient:identifier=urn:ids|b1", &t)
            .await
            .is_empty()
    );
    // A chain through the Encounter: B's Encounter is not reachable either.
    assert!(
        f.matches("Observation?encounter:Encounter.subject=Patient/pb", &t)
            .await
            .is_empty()
    );
    // _list: B's List names A's Observation, but B's List is not A's to use.
    assert!(f.matches("Observation?_list=list-b", &t).await.is_empty());
    assert_eq!(
        f.matches("Observation?_list=list-a", &t).await,
        strs(&["Observation/obs-a-lab"])
    );
    // Includes only bring what the caller may see.
    assert_eq!(
        f.included("Observation?_include=Observation:subject", &t)
            .await,
        strs(&["Patient/pa"])
    );
    assert_eq!(
        f.included("Observation?_include=Observation:encounter", &t)
            .await,
        strs(&["Encounter/enc-a"])
    );
    assert!(
        f.included("Observation?_include=Observation:performer", &t)
            .await
            .is_empty(),
        "the Practitioner is outside patient/ scopes"
    );
    assert_eq!(
        f.included("Patient?_revinclude=Observation:subject", &t)
            .await,
        strs(A_OBS)
    );
    assert_eq!(
        f.included(
            "Patient?_revinclude=Condition:*&_revinclude=List:*&_revinclude=Encounter:subject",
            &t
        )
        .await,
        strs(&["Condition/cond-a", "Encounter/enc-a", "List/list-a"])
    );
    // :iterate goes on only from what was shown.
    assert_eq!(
        f.included(
            "Observation?_id=obs-a-lab&_revinclude=List:item&_include:iterate=List:subject",
            &t
        )
        .await,
        strs(&["List/list-a", "Patient/pa"])
    );
    assert_eq!(
        f.included(
            "Encounter?_include=Encounter:subject&_revinclude:iterate=Condition:subject",
            &t
        )
        .await,
        strs(&["Condition/cond-a", "Patient/pa"])
    );
    // Compartment search: another patient's compartment is as unknown as that patient.
    let (status, _) = f.get("Patient/pb/Observation", &t).await;
    assert_eq!(status, 404);
    assert_eq!(f.matches("Patient/pa/Observation", &t).await, strs(A_OBS));
    assert!(
        f.matches("Encounter/enc-b/Observation", &t)
            .await
            .is_empty()
    );
    assert_eq!(
        f.matches("Encounter/enc-a/Observation", &t).await,
        strs(A_OBS)
    );
    // System search: per type, each confined.
    assert_eq!(
        f.matches("?_type=Observation,Patient", &t).await,
        strs(&[
            "Observation/obs-a-lab",
            "Observation/obs-a-vital",
            "Patient/pa"
        ])
    );
    assert_eq!(
        f.matches("?_type=Observation,Patient&_id=pb,obs-b-lab,pa", &t)
            .await,
        strs(&["Patient/pa"])
    );
    let why = forbidden(f.get("?_id=pb", &t).await, "system search of every type");
    assert!(why.contains("_type"), "{why}");
    forbidden(
        f.get("?_type=Observation,Practitioner", &t).await,
        "a type outside the compartment",
    );
    // POST _search with a form body, totals and paging stay confined.
    let r =
        f.s.http
            .post(f.s.url("Observation/_search"))
            .bearer_auth(&t)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("code=1234-5")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sorted(ids_with_mode(&json(r).await, "match")), strs(A_OBS));
    let (_, b) = f.get("Observation?_summary=count", &t).await;
    assert_eq!(b["total"], 2, "{b}");
    // The planner's estimate reflects every patient's rows; a confined search counts.
    let (_, b) = f.get("Observation?_total=estimate&_count=1", &t).await;
    assert_eq!(b["total"], 2, "{b}");
    let (_, b) = f.get("Observation?_total=accurate&_count=1", &t).await;
    assert_eq!(b["total"], 2, "{b}");
    let next = b["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("a next page")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = f.s.http.get(&next).bearer_auth(&t).send().await.unwrap();
    let page2 = json(r).await;
    let mut seen = ids_with_mode(&b, "match");
    seen.extend(ids_with_mode(&page2, "match"));
    assert_eq!(sorted(seen), strs(A_OBS));
    assert!(
        page2["link"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["relation"] != "next"),
        "{page2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_scope_history_is_confined_or_refused() {
    let f = fixture().await;
    // A resource that was B's and is now A's: its B-era version stays hidden.
    let mut moved = observation("obs-moved", "pb", "laboratory", "m1");
    assert_eq!(
        f.put("Observation/obs-moved", &f.admin, &moved).await.0,
        201
    );
    moved["subject"] = json!({"reference": "Patient/pa"});
    moved["encounter"] = json!({"reference": "Encounter/enc-a"});
    assert_eq!(
        f.put("Observation/obs-moved", &f.admin, &moved).await.0,
        200
    );
    let t = f.patient_a("patient/*.read");
    let why = forbidden(f.get("_history", &t).await, "system history");
    assert!(why.contains("history"), "{why}");
    forbidden(f.get("Observation/_history", &t).await, "type history");
    forbidden(f.get("Patient/_history", &t).await, "type history");
    assert_eq!(f.get("Observation/obs-b-lab/_history", &t).await.0, 404);
    let (status, h) = f.get("Observation/obs-moved/_history", &t).await;
    assert_eq!(status, 200, "{h}");
    let versions: Vec<&str> = h["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2"], "{h}");
    assert!(!h.to_string().contains("Patient/pb"), "{h}");
    assert_eq!(f.get("Observation/obs-moved/_history/2", &t).await.0, 200);
    assert_eq!(f.get("Observation/obs-moved/_history/1", &t).await.0, 404);
    // And the other way round: once B's, all of it is hidden, old A-era versions included.
    let mut gone = observation("obs-gone", "pa", "laboratory", "g1");
    assert_eq!(f.put("Observation/obs-gone", &f.admin, &gone).await.0, 201);
    gone["subject"] = json!({"reference": "Patient/pb"});
    assert_eq!(f.put("Observation/obs-gone", &f.admin, &gone).await.0, 200);
    assert_eq!(f.get("Observation/obs-gone/_history", &t).await.0, 404);
    assert_eq!(f.get("Observation/obs-gone/_history/1", &t).await.0, 404);
    // A deleted resource of A's reads as unknown: its compartment cannot be judged any more.
    assert_eq!(f.delete("Condition/cond-a", &f.admin).await.0, 204);
    assert_eq!(f.get("Condition/cond-a", &t).await.0, 404);
    // user/ and system/ scopes without narrowing keep type and system history.
    let u = f.token(SMART_USER, "user/*.rs", None);
    assert_eq!(f.get("_history", &u).await.0, 200);
    assert_eq!(f.get("Observation/_history", &u).await.0, 200);
    let u = f.token(SMART_USER, "user/Observation.rs", None);
    assert_eq!(f.get("Observation/_history", &u).await.0, 200);
    forbidden(
        f.get("_history", &u).await,
        "system history needs every type",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_scope_writes_stay_in_the_compartment() {
    let f = fixture().await;
    let t = f.patient_a("launch/patient patient/*.*");
    // Creates.
    let (status, _) = f
        .post("Observation", &t, &new_observation("pa", "laboratory"))
        .await;
    assert_eq!(status, 201);
    let why = forbidden(
        f.post("Observation", &t, &new_observation("pb", "laboratory"))
            .await,
        "create for B",
    );
    assert!(why.contains("Patient/pa"), "{why}");
    let mut both = new_observation("pa", "laboratory");
    both["performer"] = json!([{"reference": "Patient/pb"}]);
    forbidden(
        f.post("Observation", &t, &both).await,
        "create naming B as well",
    );
    forbidden(
        f.post(
            "Practitioner",
            &t,
            &json!({"resourceType": "Practitioner", "name": [{"family": "X"}]}),
        )
        .await,
        "create outside the compartment",
    );
    forbidden(
        f.post("Patient", &t, &json!({"resourceType": "Patient"}))
            .await,
        "a new Patient is not the launch patient",
    );
    // Updates.
    let mut to_b = observation("obs-a-lab", "pb", "laboratory", "a1");
    forbidden(
        f.put("Observation/obs-a-lab", &t, &to_b).await,
        "move A's Observation to B",
    );
    assert_eq!(
        f.admin_read("Observation/obs-a-lab").await["subject"]["reference"],
        "Patient/pa"
    );
    let b_as_a = observation("obs-b-lab", "pa", "laboratory", "b1");
    forbidden(
        f.put("Observation/obs-b-lab", &t, &b_as_a).await,
        "take B's Observation",
    );
    assert_eq!(
        f.admin_read("Observation/obs-b-lab").await["subject"]["reference"],
        "Patient/pb"
    );
    to_b["subject"] = json!({"reference": "Patient/pa"});
    to_b["status"] = json!("amended");
    assert_eq!(f.put("Observation/obs-a-lab", &t, &to_b).await.0, 200);
    let fresh = observation("obs-a-new", "pa", "vital-signs", "a9");
    assert_eq!(
        f.put("Observation/obs-a-new", &t, &fresh).await.0,
        201,
        "update as create, in the compartment"
    );
    assert_eq!(
        f.put("Patient/pa", &t, &patient("pa", "Anders", "Alicia"))
            .await
            .0,
        200
    );
    forbidden(
        f.put("Patient/pb", &t, &patient("pb", "Brown", "Robert"))
            .await,
        "B's Patient",
    );
    // Patches.
    let move_subject =
        json!([{"op": "replace", "path": "/subject/reference", "value": "Patient/pb"}]);
    forbidden(
        f.call(
            Method::PATCH,
            "Observation/obs-a-lab",
            &t,
            Some(&move_subject),
            "application/json-patch+json",
        )
        .await,
        "patch A's Observation to B",
    );
    let amend = json!([{"op": "replace", "path": "/status", "value": "cancelled"}]);
    forbidden(
        f.call(
            Method::PATCH,
            "Observation/obs-b-lab",
            &t,
            Some(&amend),
            "application/json-patch+json",
        )
        .await,
        "patch B's Observation",
    );
    assert_eq!(
        f.admin_read("Observation/obs-b-lab").await["status"],
        "final"
    );
    // Deletes.
    forbidden(
        f.delete("Observation/obs-b-lab", &t).await,
        "delete B's Observation",
    );
    f.admin_read("Observation/obs-b-lab").await;
    assert_eq!(f.delete("Observation/obs-a-vital", &t).await.0, 204);
    // Conditional interactions match only within the compartment.
    let (status, body) = f
        .put(
            "Observation?identifier=urn:ids|b1",
            &t,
            &new_observation("pa", "laboratory"),
        )
        .await;
    assert_eq!(status, 201, "no match among A's: a new one, {body}");
    assert_ne!(body["id"], "obs-b-lab");
    forbidden(
        f.put(
            "Observation?identifier=urn:ids|b2",
            &t,
            &new_observation("pb", "laboratory"),
        )
        .await,
        "conditional update creating for B",
    );
    assert_eq!(
        f.admin_read("Observation/obs-b-lab").await["meta"]["versionId"],
        "1"
    );
    assert_eq!(
        f.admin_read("Observation/obs-b-vital").await["meta"]["versionId"],
        "1"
    );
    assert_eq!(
        f.delete("Observation?identifier=urn:ids|b1", &t).await.0,
        204
    );
    f.admin_read("Observation/obs-b-lab").await;
    let (status, _) = f
        .call(
            Method::PATCH,
            "Observation?identifier=urn:ids|b1&subject=Patient/pb",
            &t,
            Some(&amend),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(status, 404, "no match among A's Observations");
    assert_eq!(
        f.admin_read("Observation/obs-b-lab").await["status"],
        "final"
    );
    let r =
        f.s.http
            .post(f.s.url("Observation"))
            .bearer_auth(&t)
            .header("content-type", FHIR_JSON)
            .header("if-none-exist", "identifier=urn:ids|b2")
            .body(new_observation("pa", "laboratory").to_string())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201, "B's match is not seen");
    assert_ne!(json(r).await["id"], "obs-b-vital");
    // In a batch, each entry is judged as the request it stands for.
    let entry = |method: &str, url: &str, resource: Option<Value>| {
        let mut e = json!({"request": {"method": method, "url": url}});
        if let Some(r) = resource {
            e["resource"] = r;
        }
        e
    };
    let (status, b) = f
        .post(
            "",
            &t,
            &json!({"resourceType": "Bundle", "type": "batch", "entry": [
                entry("POST", "Observation", Some(new_observation("pa", "laboratory"))),
                entry("POST", "Observation", Some(new_observation("pb", "laboratory"))),
                entry("GET", "Observation/obs-b-lab", None),
                entry("GET", "Observation/obs-a-lab", None),
                entry("DELETE", "Observation/obs-b-lab", None),
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let st: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        st,
        // The delete is refused as the same DELETE on its own is.
        [
            "201 Created",
            "403 Forbidden",
            "404 Not Found",
            "200 OK",
            "403 Forbidden"
        ],
        "{b}"
    );
    // In a transaction, one entry outside the grants refuses the whole of it.
    let (status, oo) = f
        .post(
            "",
            &t,
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                entry("POST", "Observation", Some(new_observation("pa", "vital-signs"))),
                entry("POST", "Practitioner", Some(json!({"resourceType": "Practitioner"}))),
            ]}),
        )
        .await;
    assert_eq!(status, 403, "{oo}");
    assert!(
        oo.to_string().contains("entry 1 (POST Practitioner)"),
        "{oo}"
    );
    assert_eq!(
        f.admin_read("Observation/obs-b-lab").await["status"],
        "final"
    );
}

/// References between the two patients' records: A's panel has B's result as a member, and
/// B's panel has A's. Neither direction may tell A anything about B's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_between_patients_reveal_nothing() {
    let f = fixture().await;
    let mut a_panel = observation("obs-a-panel", "pa", "laboratory", "a-panel");
    a_panel["hasMember"] = json!([{"reference": "Observation/obs-b-lab"}]);
    let mut b_panel = observation("obs-b-panel", "pb", "laboratory", "b-panel");
    b_panel["hasMember"] = json!([{"reference": "Observation/obs-a-lab"}]);
    for (id, body) in [("obs-a-panel", &a_panel), ("obs-b-panel", &b_panel)] {
        let (status, b) = f.put(&format!("Observation/{id}"), &f.admin, body).await;
        assert_eq!(status, 201, "{b}");
    }
    // As the admin sees it, each of these queries would name B's data or answer because of it.
    let unconfined = [
        (
            "Observation?_id=obs-a-panel&_include=Observation:has-member",
            "include",
        ),
        (
            "Observation?_id=obs-a-lab&_revinclude=Observation:has-member",
            "include",
        ),
        (
            "Observation?has-member:Observation.identifier=urn:ids|b1",
            "match",
        ),
        (
            "Observation?_has:Observation:has-member:identifier=urn:ids|b-panel",
            "match",
        ),
    ];
    for (q, mode) in unconfined {
        let (_, b) = f.get(q, &f.admin).await;
        assert!(
            !ids_with_mode(&b, mode).is_empty(),
            "the admin sees it: {q}"
        );
    }
    let t = f.patient_a("patient/*.rs");
    for (q, mode) in unconfined {
        let (status, b) = f.get(q, &t).await;
        assert_eq!(status, 200, "{q}: {b}");
        assert!(ids_with_mode(&b, mode).is_empty(), "{q}: {b}");
        assert!(!b.to_string().contains("Patient/pb"), "{q}: {b}");
    }
    // The has-member chain reaches A's own results alone.
    assert_eq!(
        f.matches(
            "Observation?has-member:Observation.identifier=urn:ids|a1",
            &t
        )
        .await,
        Vec::<String>::new(),
        "no panel of A's holds A's own lab result"
    );
}

/// Per the R4 CompartmentDefinition a resource naming two patients belongs to both
/// compartments, so each may read it; but only a token whose patient is the only one it names
/// may change or delete it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_resources_are_readable_by_each_patient_and_writable_by_neither() {
    let f = fixture().await;
    let mut shared = observation("obs-shared", "pb", "laboratory", "s1");
    shared["performer"] = json!([{"reference": "Patient/pa"}]);
    assert_eq!(
        f.put("Observation/obs-shared", &f.admin, &shared).await.0,
        201
    );
    let t = f.patient_a("patient/*.cruds");
    assert_eq!(f.get("Observation/obs-shared", &t).await.0, 200);
    assert!(
        f.matches("Observation", &t)
            .await
            .contains(&"Observation/obs-shared".to_owned())
    );
    shared["status"] = json!("amended");
    forbidden(
        f.put("Observation/obs-shared", &t, &shared).await,
        "update a resource that names B",
    );
    forbidden(
        f.delete("Observation/obs-shared", &t).await,
        "delete a resource that names B",
    );
    assert_eq!(
        f.admin_read("Observation/obs-shared").await["status"],
        "final"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_scopes_with_queries_and_without_search() {
    let f = fixture().await;
    let lab = f.patient_a("patient/Observation.rs?category=laboratory");
    assert_eq!(
        f.matches("Observation", &lab).await,
        strs(&["Observation/obs-a-lab"])
    );
    assert!(
        f.matches("Observation?category=vital-signs", &lab)
            .await
            .is_empty(),
        "the constraint is ANDed in, never widened"
    );
    assert_eq!(f.get("Observation/obs-a-lab", &lab).await.0, 200);
    assert_eq!(f.get("Observation/obs-a-vital", &lab).await.0, 404);
    assert_eq!(f.get("Observation/obs-b-lab", &lab).await.0, 404);
    assert_eq!(f.get("Observation/obs-a-lab/_history/1", &lab).await.0, 200);
    forbidden(
        f.get("Observation/obs-a-lab/_history", &lab).await,
        "versions cannot be checked against a query",
    );
    let why = forbidden(f.get("Condition", &lab).await, "another type");
    assert!(why.contains("Condition"), "{why}");
    assert_eq!(
        f.included("Patient/pa/Observation?_include=Observation:subject", &lab)
            .await,
        Vec::<String>::new(),
        "Patient is not in the scopes"
    );
    // Two constrained scopes: either query will do.
    let both = f.patient_a(
        "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs",
    );
    assert_eq!(f.matches("Observation", &both).await, strs(A_OBS));
    // user/ with a query: every patient's lab results, nothing else.
    let user_lab = f.token(
        SMART_USER,
        &format!("user/Observation.rs?category={CATEGORY}|laboratory"),
        None,
    );
    assert_eq!(
        f.matches("Observation", &user_lab).await,
        strs(&["Observation/obs-a-lab", "Observation/obs-b-lab"])
    );
    // A query that cannot be evaluated grants nothing.
    let bad = f.patient_a("patient/Observation.rs?nonsense=1");
    let why = forbidden(f.get("Observation", &bad).await, "unusable query");
    assert!(why.contains("nonsense"), "{why}");
    // .r without .s: reads by id, no search.
    let r_only = f.patient_a("patient/Observation.r");
    assert_eq!(f.get("Observation/obs-a-lab", &r_only).await.0, 200);
    assert_eq!(f.get("Observation/obs-b-lab", &r_only).await.0, 404);
    let why = forbidden(f.get("Observation", &r_only).await, ".r searching");
    assert!(why.contains("patient/Observation.s"), "{why}");
    forbidden(
        f.get("Patient/pa/Observation", &r_only).await,
        ".r in a compartment search",
    );
    forbidden(
        f.get("?_type=Observation", &r_only).await,
        ".r in a system search",
    );
    forbidden(
        f.post("Observation", &r_only, &new_observation("pa", "laboratory"))
            .await,
        ".r creating",
    );
    // Writes under a constrained scope: the written resource must match the query.
    let w = f.patient_a("patient/Observation.cruds?category=laboratory");
    assert_eq!(
        f.post("Observation", &w, &new_observation("pa", "laboratory"))
            .await
            .0,
        201
    );
    let why = forbidden(
        f.post("Observation", &w, &new_observation("pa", "vital-signs"))
            .await,
        "create outside the query",
    );
    assert!(why.contains("category=laboratory"), "{why}");
    let vital = observation("obs-a-lab", "pa", "vital-signs", "a1");
    forbidden(
        f.put("Observation/obs-a-lab", &w, &vital).await,
        "update out of the query",
    );
    assert_eq!(
        f.admin_read("Observation/obs-a-lab").await["meta"]["versionId"],
        "1",
        "the refused write was rolled back"
    );
    forbidden(
        f.delete("Observation/obs-a-vital", &w).await,
        "delete outside the query",
    );
    assert_eq!(f.delete("Observation/obs-a-lab", &w).await.0, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_system_scopes_narrow_by_type_and_interaction_only() {
    let f = fixture().await;
    let u = f.token(SMART_USER, "openid fhirUser user/Observation.rs", None);
    assert_eq!(
        f.matches("Observation", &u).await,
        strs(&[
            "Observation/obs-a-lab",
            "Observation/obs-a-vital",
            "Observation/obs-b-lab",
            "Observation/obs-b-vital",
        ])
    );
    assert_eq!(f.get("Observation/obs-b-lab", &u).await.0, 200);
    forbidden(f.get("Patient/pa", &u).await, "Patient not granted");
    forbidden(
        f.get("Observation?subject:Patient.name=Brown", &u).await,
        "a chain into an ungranted type",
    );
    forbidden(
        f.get("Patient?_has:Observation:patient:code=1234-5", &u)
            .await,
        "a search of an ungranted type",
    );
    assert!(
        f.included("Observation?_include=Observation:subject", &u)
            .await
            .is_empty(),
        "included Patients are not granted"
    );
    forbidden(
        f.post("Observation", &u, &new_observation("pb", "laboratory"))
            .await,
        "no c",
    );
    forbidden(f.delete("Observation/obs-b-lab", &u).await, "no d");
    let sys = f.token(CONTRIBUTOR, "system/*.read", None);
    assert_eq!(
        f.matches("Patient", &sys).await,
        strs(&["Patient/pa", "Patient/pb"])
    );
    assert_eq!(f.get("Practitioner/doc", &sys).await.0, 200);
    let why = forbidden(
        f.post("Observation", &sys, &new_observation("pb", "laboratory"))
            .await,
        "Contributor narrowed to read",
    );
    assert!(why.contains("'create'"), "{why}");
    let w = f.token(SMART_USER, "system/Observation.cud", None);
    assert_eq!(
        f.post("Observation", &w, &new_observation("pb", "laboratory"))
            .await
            .0,
        201
    );
    forbidden(f.get("Observation/obs-b-lab", &w).await, "cud has no r");
    forbidden(
        f.post("Practitioner", &w, &json!({"resourceType": "Practitioner"}))
            .await,
        "another type",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_scopes_together() {
    let f = fixture().await;
    // A Reader's token with a patient scope is confined like a SMART user's.
    let reader = f.token(
        &["FHIR Data Reader"],
        "patient/Observation.read",
        Some("pa"),
    );
    assert_eq!(f.matches("Observation", &reader).await, strs(A_OBS));
    assert_eq!(f.get("Observation/obs-b-lab", &reader).await.0, 404);
    forbidden(
        f.get("Patient/pa", &reader).await,
        "the scope does not cover Patient",
    );
    // Scopes never widen roles: a Reader with write scopes still cannot write.
    let reader_w = f.token(&["FHIR Data Reader"], "patient/*.*", Some("pa"));
    let why = forbidden(
        f.post(
            "Observation",
            &reader_w,
            &new_observation("pa", "laboratory"),
        )
        .await,
        "Reader writing",
    );
    assert!(why.contains("'write'"), "{why}");
    // Without SMART resource scopes, roles alone decide (openid etc. are not SMART-shaped).
    let plain = f.token(
        &["FHIR Data Reader"],
        "openid fhirUser offline_access",
        Some("pa"),
    );
    assert_eq!(
        f.matches("Observation", &plain).await.len(),
        4,
        "unscoped: every Observation"
    );
    // A SMART user has nothing without scopes.
    let why = forbidden(
        f.get("Observation", &f.token(SMART_USER, "openid", Some("pa")))
            .await,
        "SMART user without scopes",
    );
    assert!(why.contains("SMART"), "{why}");
    // A malformed SMART scope grants nothing, and does not make the token unscoped.
    forbidden(
        f.get(
            "Observation",
            &f.token(
                &["FHIR Data Reader"],
                "patient/Observation.bogus",
                Some("pa"),
            ),
        )
        .await,
        "invalid scope",
    );
    // Patient scopes need the launch patient.
    let why = forbidden(
        f.get("Observation", &f.token(SMART_USER, "patient/*.read", None))
            .await,
        "no patient claim",
    );
    assert!(why.contains("patient claim"), "{why}");
    // Endpoints SMART scopes cannot express are closed to scoped tokens.
    let all = f.token(CONTRIBUTOR, "system/*.*", None);
    forbidden(
        f.call(Method::POST, "$reindex", &all, None, FHIR_JSON)
            .await,
        "reindex with scopes",
    );
    assert_eq!(
        f.call(Method::POST, "$reindex", &f.admin, None, FHIR_JSON)
            .await
            .0,
        201
    );
    // Entra's dotted spelling works the same.
    let entra = f.token(SMART_USER, "patient.all.read launch.patient", Some("pa"));
    assert_eq!(f.matches("Observation", &entra).await, strs(A_OBS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_configuration_without_discovery_endpoints_falls_back_to_the_issuer() {
    let f = fixture().await;
    let r = f.s.get(".well-known/smart-configuration").await;
    assert_eq!(r.status(), 200, "public, no token");
    assert!(header(&r, "content-type").starts_with("application/json"));
    let c = json(r).await;
    assert_eq!(c["issuer"], f.a.issuer);
    assert_eq!(c["authorization_endpoint"], f.a.issuer);
    assert_eq!(c["token_endpoint"], f.a.issuer);
    assert_eq!(c["jwks_uri"], format!("{}/keys", f.a.issuer));
    let caps: Vec<&str> = c["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for cap in [
        "permission-v1",
        "permission-v2",
        "permission-patient",
        "permission-user",
        "sso-openid-connect",
    ] {
        assert!(caps.contains(&cap), "{cap}: {caps:?}");
    }
    assert!(!caps.contains(&"launch-standalone"), "{caps:?}");
    assert!(!caps.contains(&"launch-ehr"), "{caps:?}");
    assert!(
        c["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("patient/*.rs"))
    );
    let cs = json(f.s.get("metadata").await).await;
    let security = &cs["rest"][0]["security"];
    let codes: Vec<&str> = security["service"][0]["coding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["OAuth", "SMART-on-FHIR"]);
    let ext = &security["extension"][0];
    assert_eq!(
        ext["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert_eq!(ext["extension"][0]["url"], "authorize");
    assert_eq!(ext["extension"][0]["valueUri"], f.a.issuer);
    assert_eq!(ext["extension"][1]["url"], "token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_configuration_passes_the_authoritys_endpoints_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/realm", listener.local_addr().unwrap());
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/certs"),
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["plain", "S256"],
    });
    let served = doc.clone();
    let app = axum::Router::new().route(
        "/realm/.well-known/openid-configuration",
        get(move || async move { Json(served) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = server_with(&issuer).await;
    let c = json(s.get(".well-known/smart-configuration").await).await;
    assert_eq!(c["authorization_endpoint"], doc["authorization_endpoint"]);
    assert_eq!(c["token_endpoint"], doc["token_endpoint"]);
    assert_eq!(c["revocation_endpoint"], doc["revocation_endpoint"]);
    assert_eq!(c["code_challenge_methods_supported"], json!(["S256"]));
    let caps = c["capabilities"].as_array().unwrap();
    for cap in [
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "permission-offline",
    ] {
        assert!(caps.contains(&json!(cap)), "{cap}: {caps:?}");
    }
    let cs = json(s.get("metadata").await).await;
    let ext = &cs["rest"][0]["security"]["extension"][0]["extension"];
    assert_eq!(ext[0]["valueUri"], doc["authorization_endpoint"]);
    assert_eq!(ext[1]["valueUri"], doc["token_endpoint"]);
    // Without authentication there is no SMART configuration to give.
    let open = start().await;
    assert_eq!(
        open.get(".well-known/smart-configuration").await.status(),
        404
    );
}
