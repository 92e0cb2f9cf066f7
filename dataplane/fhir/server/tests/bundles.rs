//! Batch and transaction Bundles: atomicity, processing order, fullUrl and conditional
//! references, conditional entries, per-entry outcomes, and bad input.

mod common;

use common::*;
use serde_json::{Value, json};

fn patient(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]})
}

fn observation(subject: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": subject}})
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

fn post(full_url: &str, resource: Value) -> Value {
    let rt = resource["resourceType"].as_str().unwrap().to_owned();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": rt}})
}

fn request(method: &str, url: &str) -> Value {
    json!({"request": {"method": method, "url": url}})
}

async fn total(s: &TestServer, query: &str) -> i64 {
    let b = json(s.get(&format!("{query}&_total=accurate")).await).await;
    b["total"]
        .as_i64()
        .unwrap_or_else(|| panic!("no total: {b}"))
}

async fn send(s: &TestServer, b: &Value) -> reqwest::Response {
    s.post("", b).await
}

fn statuses(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_transaction_rewrites_full_urls_and_answers_every_entry() {
    let s = start().await;
    let b = bundle(
        "transaction",
        vec![
            post(
                "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
                patient("t1"),
            ),
            post(
                "urn:uuid:7d7b5bb6-b5d3-4a7e-bd6d-4c0e8b3a5f10",
                observation("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"),
            ),
            json!({"fullUrl": "http://example.org/fhir/Practitioner/doc1",
                   "resource": {"resourceType": "Practitioner", "id": "doc1"},
                   "request": {"method": "PUT", "url": "Practitioner/doc1"}}),
            request("GET", "Patient?identifier=urn:mrn|t1"),
        ],
    );
    let r = send(&s, &b).await;
    assert_eq!(r.status(), 200);
    let out = json(r).await;
    assert_eq!(out["type"], "transaction-response");
    assert_eq!(
        statuses(&out),
        ["201 Created", "201 Created", "201 Created", "200 OK"]
    );
    let e = out["entry"].as_array().unwrap();
    let pid = e[0]["resource"]["id"].as_str().unwrap();
    assert!(
        e[0]["response"]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Patient/{pid}/_history/1"))
    );
    assert_eq!(e[0]["response"]["etag"], "W/\"1\"");
    assert_eq!(
        e[0]["response"]["lastModified"],
        e[0]["resource"]["meta"]["lastUpdated"]
    );
    assert!(
        e[0]["fullUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Patient/{pid}"))
    );
    // The Observation refers to the Patient by the id the server gave it, as stored.
    let oid = e[1]["resource"]["id"].as_str().unwrap();
    let stored = json(s.get(&format!("Observation/{oid}")).await).await;
    assert_eq!(stored["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(
        total(&s, &format!("Observation?subject=Patient/{pid}")).await,
        1
    );
    // The GET ran last, inside the transaction, and saw its create.
    assert_eq!(e[3]["resource"]["resourceType"], "Bundle");
    assert_eq!(e[3]["resource"]["entry"][0]["resource"]["id"], pid);
    assert_eq!(e[2]["resource"]["id"], "doc1");
}

#[tokio::test]
async fn circular_references_between_new_resources_resolve() {
    let s = start().await;
    let (a, b) = (
        "urn:uuid:a0000000-0000-4000-8000-000000000001",
        "urn:uuid:b0000000-0000-4000-8000-000000000002",
    );
    let mut pa = patient("c1");
    pa["link"] = json!([{"other": {"reference": b}, "type": "seealso"}]);
    let mut pb = patient("c2");
    pb["link"] = json!([{"other": {"reference": a}, "type": "seealso"}]);
    let out = json(send(&s, &bundle("transaction", vec![post(a, pa), post(b, pb)])).await).await;
    assert_eq!(statuses(&out), ["201 Created", "201 Created"]);
    let ida = out["entry"][0]["resource"]["id"].as_str().unwrap();
    let idb = out["entry"][1]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        out["entry"][0]["resource"]["link"][0]["other"]["reference"],
        format!("Patient/{idb}")
    );
    assert_eq!(
        out["entry"][1]["resource"]["link"][0]["other"]["reference"],
        format!("Patient/{ida}")
    );
}

#[tokio::test]
async fn a_failing_entry_leaves_nothing_behind() {
    let s = start().await;
    let existing = s.create(&patient("keep")).await;
    let id = existing["id"].as_str().unwrap();
    // A valid create, a valid delete, then an Observation that is not valid R4 (no status).
    let mut bad = observation("Patient/x");
    bad.as_object_mut().unwrap().remove("status");
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:1", patient("gone")),
            request("DELETE", &format!("Patient/{id}")),
            post("urn:uuid:2", bad),
        ],
    );
    let oo = outcome(send(&s, &b).await, 400).await;
    let first = oo["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(first.contains("entry 2 (POST Observation)"), "{first}");
    assert!(first.contains("nothing was written"), "{first}");
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle.entry[2]");
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|gone").await, 0);
    assert_eq!(s.get(&format!("Patient/{id}")).await.status(), 200);

    // A failure found in the database (a stale If-Match) rolls back what ran before it too.
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:3", patient("gone")),
            json!({"resource": existing, "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"7\""}}),
        ],
    );
    let oo = outcome(send(&s, &b).await, 412).await;
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("entry 1 (PUT")
    );
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|gone").await, 0);
}

#[tokio::test]
async fn conditional_creates_and_references_resolve_to_existing_resources() {
    let s = start().await;
    let known = s.create(&patient("known")).await;
    let kid = known["id"].as_str().unwrap();
    let mut create = post("urn:uuid:p", patient("known"));
    create["request"]["ifNoneExist"] = json!("identifier=urn:mrn|known");
    let b = bundle(
        "transaction",
        vec![
            create,
            post("urn:uuid:o1", observation("urn:uuid:p")),
            post(
                "urn:uuid:o2",
                observation("Patient?identifier=urn:mrn|known"),
            ),
        ],
    );
    let out = json(send(&s, &b).await).await;
    assert_eq!(statuses(&out), ["200 OK", "201 Created", "201 Created"]);
    assert_eq!(out["entry"][0]["resource"]["id"], kid);
    for i in [1, 2] {
        assert_eq!(
            out["entry"][i]["resource"]["subject"]["reference"],
            format!("Patient/{kid}")
        );
    }
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|known").await, 1);

    // No match, or several, is a 412 that says which.
    let none = bundle(
        "transaction",
        vec![post(
            "urn:uuid:o3",
            observation("Patient?identifier=urn:mrn|nobody"),
        )],
    );
    let oo = outcome(send(&s, &none).await, 412).await;
    assert!(oo.to_string().contains("matches no Patient"), "{oo}");
    s.create(&patient("known")).await;
    let many = bundle(
        "transaction",
        vec![post(
            "urn:uuid:o4",
            observation("Patient?identifier=urn:mrn|known"),
        )],
    );
    let oo = outcome(send(&s, &many).await, 412).await;
    assert!(oo.to_string().contains("more than one Patient"), "{oo}");
}

#[tokio::test]
async fn conditional_update_patch_and_delete_entries() {
    let s = start().await;
    let p = s.create(&patient("u1")).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let doomed = s.create(&patient("d1")).await;
    let mut updated = patient("u1");
    updated["active"] = json!(false);
    let json_patch = base64_of(r#"[{"op":"add","path":"/gender","value":"female"}]"#);
    let b = bundle(
        "transaction",
        vec![
            json!({"fullUrl": "urn:uuid:u", "resource": updated,
                   "request": {"method": "PUT", "url": "Patient?identifier=urn:mrn|u1"}}),
            json!({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": json_patch},
                   "request": {"method": "PATCH", "url": "Patient?identifier=urn:mrn|d1"}}),
            request("DELETE", "Patient?identifier=urn:mrn|nobody"),
            post("urn:uuid:o", observation("urn:uuid:u")),
        ],
    );
    let out = json(send(&s, &b).await).await;
    assert_eq!(
        statuses(&out),
        ["200 OK", "200 OK", "204 No Content", "201 Created"]
    );
    assert_eq!(out["entry"][0]["resource"]["id"], pid);
    assert_eq!(out["entry"][0]["resource"]["active"], false);
    assert_eq!(out["entry"][1]["resource"]["gender"], "female");
    assert_eq!(
        out["entry"][3]["resource"]["subject"]["reference"],
        format!("Patient/{pid}")
    );

    // A FHIRPath Patch, and a delete, by id.
    let did = doomed["id"].as_str().unwrap();
    let fhirpath_patch = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.active"},
        {"name": "value", "valueBoolean": true}]}]});
    let b = bundle(
        "transaction",
        vec![
            json!({"resource": fhirpath_patch, "request": {"method": "PATCH", "url": format!("Patient/{pid}")}}),
            request("DELETE", &format!("Patient/{did}")),
        ],
    );
    let out = json(send(&s, &b).await).await;
    assert_eq!(statuses(&out), ["200 OK", "204 No Content"]);
    assert_eq!(out["entry"][0]["resource"]["active"], true);
    assert_eq!(s.get(&format!("Patient/{did}")).await.status(), 410);
}

/// R4 3.1.0.11.2 processes a transaction's DELETEs first: an ifNoneExist or a conditional
/// reference is judged after them, so neither can land on a resource the transaction deletes.
#[tokio::test]
async fn deletes_come_before_conditional_creates_and_references() {
    let s = start().await;
    let old = s.create(&patient("k")).await;
    let old_id = old["id"].as_str().unwrap();
    let mut replacement = patient("k");
    replacement["active"] = json!(true);
    let mut create = post("urn:uuid:new", replacement);
    create["request"]["ifNoneExist"] = json!("identifier=urn:mrn|k");
    let b = bundle(
        "transaction",
        vec![
            request("DELETE", "Patient?identifier=urn:mrn|k"),
            create,
            post("urn:uuid:o", observation("urn:uuid:new")),
        ],
    );
    let out = json(send(&s, &b).await).await;
    assert_eq!(
        statuses(&out),
        ["204 No Content", "201 Created", "201 Created"]
    );
    let new_id = out["entry"][1]["resource"]["id"].as_str().unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(out["entry"][1]["resource"]["active"], true);
    assert_eq!(
        out["entry"][2]["resource"]["subject"]["reference"],
        format!("Patient/{new_id}")
    );
    assert_eq!(s.get(&format!("Patient/{old_id}")).await.status(), 410);
    assert_eq!(s.get(&format!("Patient/{new_id}")).await.status(), 200);
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|k").await, 1);

    // A conditional reference whose only match the transaction deletes matches nothing; the
    // whole transaction, the delete too, is undone.
    let doomed = s.create(&patient("k2")).await;
    let did = doomed["id"].as_str().unwrap();
    let b = bundle(
        "transaction",
        vec![
            request("DELETE", &format!("Patient/{did}")),
            post("urn:uuid:o2", observation("Patient?identifier=urn:mrn|k2")),
        ],
    );
    let oo = outcome(send(&s, &b).await, 412).await;
    assert!(oo.to_string().contains("matches no Patient"), "{oo}");
    assert_eq!(s.get(&format!("Patient/{did}")).await.status(), 200);

    // Deleting one resource twice is still two entries writing it.
    let b = bundle(
        "transaction",
        vec![
            request("DELETE", &format!("Patient/{did}")),
            request("DELETE", &format!("Patient/{did}")),
        ],
    );
    let oo = outcome(send(&s, &b).await, 400).await;
    assert!(
        oo.to_string().contains("written by more than one entry"),
        "{oo}"
    );
    assert_eq!(s.get(&format!("Patient/{did}")).await.status(), 200);
}

/// R4 http.html: links to entries are replaced in uri/url/oid/uuid values and in the
/// narrative's href and src too, not only in references; and bundle.html resolves a
/// version-specific reference to an entry's fullUrl against it.
#[tokio::test]
async fn links_in_uri_values_narrative_and_versioned_references_are_rewritten() {
    let s = start().await;
    let binary = json!({"resourceType": "Binary", "contentType": "text/plain",
        "data": base64_of("hello")});
    let document = json!({"resourceType": "DocumentReference", "status": "current",
        "text": {"status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:bin\">the file</a> urn:uuid:bin</div>"},
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:bin"}],
        "subject": {"reference": "http://example.org/fhir/Patient/v1/_history/1"},
        "content": [{"attachment": {"contentType": "text/plain", "url": "urn:uuid:bin"}}]});
    let b = bundle(
        "transaction",
        vec![
            post("urn:uuid:bin", binary),
            post(
                "http://example.org/fhir/Patient/v1",
                json!({"resourceType": "Patient", "id": "v1"}),
            ),
            post("urn:uuid:doc", document),
        ],
    );
    let out = json(send(&s, &b).await).await;
    assert_eq!(
        statuses(&out),
        ["201 Created", "201 Created", "201 Created"],
        "{out}"
    );
    let bid = out["entry"][0]["resource"]["id"].as_str().unwrap();
    let pid = out["entry"][1]["resource"]["id"].as_str().unwrap();
    let did = out["entry"][2]["resource"]["id"].as_str().unwrap();
    let stored = json(s.get(&format!("DocumentReference/{did}")).await).await;
    assert_eq!(
        stored["content"][0]["attachment"]["url"],
        format!("Binary/{bid}")
    );
    assert_eq!(
        stored["subject"]["reference"],
        format!("Patient/{pid}/_history/1")
    );
    let div = stored["text"]["div"].as_str().unwrap();
    assert!(div.contains(&format!("<a href=\"Binary/{bid}\">")), "{div}");
    assert!(
        div.contains("</a> urn:uuid:bin"),
        "text is not a link: {div}"
    );
    assert_eq!(
        stored["identifier"][0]["value"], "urn:uuid:bin",
        "a string is not a link"
    );

    // An update's new version is not known before it is written: say so, write nothing.
    let mut existing = s.create(&patient("ver")).await;
    let eid = existing["id"].as_str().unwrap().to_owned();
    existing.as_object_mut().unwrap().remove("meta");
    let b = bundle(
        "transaction",
        vec![
            json!({"fullUrl": "http://example.org/fhir/Patient/up", "resource": existing,
                "request": {"method": "PUT", "url": format!("Patient/{eid}")}}),
            post(
                "urn:uuid:o",
                observation("http://example.org/fhir/Patient/up/_history/2"),
            ),
        ],
    );
    let oo = outcome(send(&s, &b).await, 400).await;
    assert!(oo.to_string().contains("without /_history/"), "{oo}");
    assert_eq!(
        json(s.get(&format!("Patient/{eid}")).await).await["meta"]["versionId"],
        "1"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_batch_answers_each_entry_on_its_own() {
    let s = start().await;
    let mut bad = observation("Patient/x");
    bad.as_object_mut().unwrap().remove("status");
    let b = bundle(
        "batch",
        vec![
            post("urn:uuid:1", patient("b1")),
            post("urn:uuid:2", bad),
            request("GET", "Patient/does-not-exist"),
            post("urn:uuid:3", observation("urn:uuid:1")),
            request("DELETE", "Patient"),
            request("GET", "Patient?identifier=urn:mrn|b1"),
        ],
    );
    let r = send(&s, &b).await;
    assert_eq!(r.status(), 200);
    let out = json(r).await;
    assert_eq!(out["type"], "batch-response");
    let st = statuses(&out);
    assert_eq!(st[0], "201 Created");
    assert_eq!(st[1], "400 Bad Request");
    assert_eq!(st[2], "404 Not Found");
    assert_eq!(st[3], "400 Bad Request");
    assert_eq!(st[4], "400 Bad Request");
    assert_eq!(
        out["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    let why = out["entry"][3]["response"]["outcome"].to_string();
    assert!(why.contains("use a transaction"), "{why}");
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|b1").await, 1);
}

#[tokio::test]
async fn batch_reads_honour_if_modified_since_as_an_instant() {
    let s = start().await;
    let p = s.create(&patient("ims")).await;
    let id = p["id"].as_str().unwrap();
    let updated =
        chrono::DateTime::parse_from_rfc3339(p["meta"]["lastUpdated"].as_str().unwrap()).unwrap();
    let read = |since: String| json!({"request": {"method": "GET", "url": format!("Patient/{id}"), "ifModifiedSince": since}});
    let later = (updated + chrono::Duration::seconds(2)).to_rfc3339();
    let earlier = (updated - chrono::Duration::seconds(2)).to_rfc3339();
    let out = json(
        send(
            &s,
            &bundle(
                "batch",
                vec![read(later), read(earlier), read("soon".into())],
            ),
        )
        .await,
    )
    .await;
    assert_eq!(
        statuses(&out),
        ["304 Not Modified", "200 OK", "400 Bad Request"],
        "{out}"
    );
    assert!(out["entry"][1]["resource"]["id"] == id, "{out}");
}

#[tokio::test]
async fn bad_bundles_get_clear_outcomes() {
    let mut cfg = config();
    cfg.limits.transaction_entry_limit = 3;
    let s = start_with(cfg).await;
    let four = bundle(
        "transaction",
        (0..4)
            .map(|i| post(&format!("urn:uuid:{i}"), patient("x")))
            .collect(),
    );
    let oo = outcome(send(&s, &four).await, 400).await;
    assert_eq!(oo["issue"][0]["code"], "too-costly");
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|x").await, 0);

    outcome(
        send(&s, &json!({"resourceType": "Bundle", "type": "collection"})).await,
        400,
    )
    .await;
    outcome(send(&s, &patient("x")).await, 400).await;
    let r = s
        .http
        .post(s.url(""))
        .header("content-type", FHIR_JSON)
        .body("{not json")
        .send()
        .await
        .unwrap();
    outcome(r, 400).await;

    // A fullUrl given twice, a resource written twice, a reference to no entry.
    let twice = bundle(
        "transaction",
        vec![
            post("urn:uuid:d", patient("x")),
            post("urn:uuid:d", patient("y")),
        ],
    );
    let oo = outcome(send(&s, &twice).await, 400).await;
    assert!(oo.to_string().contains("more than one entry"), "{oo}");
    let put = |id: &str| json!({"resource": {"resourceType": "Patient", "id": id}, "request": {"method": "PUT", "url": format!("Patient/{id}")}});
    let oo = outcome(
        send(&s, &bundle("transaction", vec![put("same"), put("same")])).await,
        400,
    )
    .await;
    assert!(
        oo.to_string().contains("written by more than one entry"),
        "{oo}"
    );
    let dangling = bundle(
        "transaction",
        vec![post("urn:uuid:o", observation("urn:uuid:nowhere"))],
    );
    let oo = outcome(send(&s, &dangling).await, 400).await;
    assert!(oo.to_string().contains("names no entry's fullUrl"), "{oo}");
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|x").await, 0);

    // An empty transaction is a valid, empty answer.
    let out = json(send(&s, &bundle("transaction", vec![])).await).await;
    assert_eq!(out["type"], "transaction-response");
    assert!(out.get("entry").is_none());
}

/// A transaction's plain creates go in one multi-row statement; the index rows it writes are
/// exactly those a single write of the same resource writes.
#[tokio::test]
async fn creates_written_together_index_like_single_writes() {
    let s = start().await;
    let resources = [
        json!({"resourceType": "Patient", "name": [{"family": "Multirow", "given": ["Ann"]}],
               "telecom": [{"system": "phone", "value": "555-0100"}], "birthDate": "1970-02-03",
               "gender": "female", "address": [{"city": "Springfield", "postalCode": "62701"}],
               "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann Multirow</div>"}}),
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
               "subject": {"reference": "Patient/elsewhere"},
               "effectivePeriod": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"},
               "component": [
                   {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {"value": 120.5, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                   {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}),
        json!({"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/elsewhere"},
               "prediction": [{"probabilityDecimal": 0.25}]}),
        json!({"resourceType": "ValueSet", "status": "active", "url": "http://example.org/vs/multirow"}),
    ];
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| json!({"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}))
        .collect();
    let b = json(
        s.post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
        )
        .await,
    )
    .await;
    let (client, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for (e, original) in b["entry"].as_array().unwrap().iter().zip(&resources) {
        let location = e["response"]["location"].as_str().unwrap();
        let location = location
            .strip_prefix(&format!("{}/", s.base))
            .unwrap_or(location);
        let (rt, rest) = location.split_once('/').unwrap();
        let together = rest.split('/').next().unwrap().to_owned();
        let alone = format!("{together}-alone");
        let mut single = original.clone();
        single["id"] = json!(alone);
        assert_eq!(s.put(&format!("{rt}/{alone}"), &single).await.status(), 201);
        let mut rows_of = Vec::new();
        for id in [&together, &alone] {
            let mut rows = Vec::new();
            for table in [
                "search_token",
                "search_string",
                "search_date",
                "search_number",
                "search_quantity",
                "search_reference",
                "search_uri",
                "search_text",
                "search_composite",
            ] {
                // The full text of every string holds the id itself, so it differs.
                let sql = format!(
                    "SELECT to_jsonb(t) - 'id' - 'content' FROM {table} t
                      WHERE res_type = $1 AND id = $2"
                );
                let mut found: Vec<String> = client
                    .query(&sql, &[&rt, id])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| format!("{table} {}", r.get::<_, Value>(0)))
                    .collect();
                found.sort();
                rows.extend(found);
            }
            rows_of.push(rows);
        }
        assert!(rows_of[0].len() >= 3, "{rt}: {:?}", rows_of[0]);
        assert_eq!(rows_of[0], rows_of[1], "{rt}");
    }
}

#[tokio::test]
async fn create_only_puts_in_a_transaction_are_created_together_or_refused_together() {
    let s = start().await;
    let put_new = |id: &str, mrn: &str| {
        let mut p = patient(mrn);
        p["id"] = json!(id);
        json!({"resource": p, "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifNoneMatch": "*"}})
    };
    let first = bundle(
        "transaction",
        vec![
            put_new("cp-1", "m1"),
            put_new("cp-2", "m2"),
            post(
                "urn:uuid:0d9c1b0e-9f54-4a52-9a51-0f4b0a3b1c01",
                observation("Patient/cp-1"),
            ),
        ],
    );
    let r = send(&s, &first).await;
    assert_eq!(r.status(), 200);
    let answer = json(r).await;
    for e in answer["entry"].as_array().unwrap() {
        assert!(
            e["response"]["status"].as_str().unwrap().starts_with("201"),
            "{e}"
        );
        assert_eq!(e["response"]["etag"], "W/\"1\"");
    }
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|m1").await, 1);
    // One id taken: nothing of the transaction is written.
    let again = bundle(
        "transaction",
        vec![put_new("cp-3", "m3"), put_new("cp-1", "changed")],
    );
    let r = send(&s, &again).await;
    assert_eq!(r.status(), 412);
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|m3").await, 0);
    assert_eq!(total(&s, "Patient?identifier=urn:mrn|changed").await, 0);
    // The id in the body must be the one in the URL.
    let mut wrong = put_new("cp-4", "m4");
    wrong["resource"]["id"] = json!("other");
    let r = send(&s, &bundle("transaction", vec![wrong])).await;
    assert_eq!(r.status(), 400);
}
