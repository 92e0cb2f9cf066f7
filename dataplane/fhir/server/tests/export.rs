//! `$export`: the async kick-off, polling and manifest of the Bulk Data IG, files as of the
//! transaction time, system, Patient and Group levels, `_type` and `_since`, file splitting,
//! cancellation, concurrent jobs, and bad requests.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

async fn kick_off(s: &TestServer, path: &str) -> reqwest::Response {
    s.http
        .get(s.url(path))
        .header("prefer", "respond-async")
        .header("accept", FHIR_JSON)
        .send()
        .await
        .unwrap()
}

/// Kicks off, polls to completion, and returns the manifest.
async fn export(s: &TestServer, path: &str) -> Value {
    let r = kick_off(s, path).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let status = header(&r, "content-location");
    assert!(status.contains("/_operations/export/"), "{status}");
    poll_job(s, &status).await
}

/// `Type/id` of every resource in the manifest's files, checking each file's count.
async fn exported(s: &TestServer, manifest: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for f in manifest["output"].as_array().unwrap() {
        let r = s.http.get(f["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), "application/fhir+ndjson");
        let text = r.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, f["count"].as_u64().unwrap());
        for line in lines {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["resourceType"], f["type"]);
            out.push((
                format!(
                    "{}/{}",
                    v["resourceType"].as_str().unwrap(),
                    v["id"].as_str().unwrap()
                ),
                v,
            ));
        }
    }
    out
}

fn ids(resources: &[(String, Value)]) -> BTreeSet<String> {
    resources.iter().map(|(id, _)| id.clone()).collect()
}

struct Data {
    patients: Vec<String>,
    observations: Vec<String>,
    practitioner: String,
    group: String,
}

async fn seed(s: &TestServer) -> Data {
    let mut patients = Vec::new();
    let mut observations = Vec::new();
    for i in 0..3 {
        let p = s
            .create(&json!({"resourceType": "Patient", "name": [{"family": format!("Export{i}")}]}))
            .await;
        let pid = p["id"].as_str().unwrap().to_owned();
        for _ in 0..2 {
            let o = s
                .create(&json!({"resourceType": "Observation", "status": "final",
                    "code": {"text": "x"}, "subject": {"reference": format!("Patient/{pid}")}}))
                .await;
            observations.push(format!("Observation/{}", o["id"].as_str().unwrap()));
        }
        patients.push(format!("Patient/{pid}"));
    }
    let d = s.create(&json!({"resourceType": "Practitioner"})).await;
    let g = s
        .create(
            &json!({"resourceType": "Group", "type": "person", "actual": true,
            "member": [{"entity": {"reference": patients[0]}}]}),
        )
        .await;
    Data {
        patients,
        observations,
        practitioner: format!("Practitioner/{}", d["id"].as_str().unwrap()),
        group: format!("Group/{}", g["id"].as_str().unwrap()),
    }
}

#[tokio::test]
async fn system_export_holds_everything_as_of_its_transaction_time() {
    let s = start().await;
    let d = seed(&s).await;
    let r = kick_off(&s, "$export").await;
    assert_eq!(r.status(), 202);
    let status = header(&r, "content-location");
    // Changes after the kick-off are not in the export, whenever the worker reads.
    let p0 = d.patients[0].clone();
    let mut changed = json(s.get(&p0).await).await;
    changed["active"] = json!(false);
    assert_eq!(s.put(&p0, &changed).await.status(), 200);
    s.create(&json!({"resourceType": "Patient", "name": [{"family": "Later"}]}))
        .await;
    assert_eq!(s.delete(&d.observations[0]).await.status(), 204);

    let manifest = poll_job(&s, &status).await;
    assert_eq!(manifest["requiresAccessToken"], false);
    assert!(manifest["transactionTime"].as_str().unwrap().ends_with('Z'));
    assert!(manifest["request"].as_str().unwrap().ends_with("/$export"));
    assert_eq!(manifest["error"], json!([]));
    let got = exported(&s, &manifest).await;
    let mut want: BTreeSet<String> = d.patients.iter().cloned().collect();
    want.extend(d.observations.iter().cloned());
    want.insert(d.practitioner.clone());
    want.insert(d.group.clone());
    assert_eq!(ids(&got), want);
    let first = &got.iter().find(|(id, _)| *id == p0).unwrap().1;
    assert!(
        first.get("active").is_none(),
        "the version before the update"
    );
    assert_eq!(first["meta"]["versionId"], "1");
}

#[tokio::test]
async fn patient_and_group_exports_hold_their_compartments() {
    let s = start().await;
    let d = seed(&s).await;
    // The Group is in the compartment of the Patient it lists (R4's Group.member), the
    // Practitioner in none.
    let m = export(&s, "Patient/$export").await;
    let mut want: BTreeSet<String> = d.patients.iter().cloned().collect();
    want.extend(d.observations.iter().cloned());
    want.insert(d.group.clone());
    assert_eq!(ids(&exported(&s, &m).await), want);

    let m = export(&s, &format!("{}/$export", d.group)).await;
    let pid = d.patients[0].strip_prefix("Patient/").unwrap();
    let got = exported(&s, &m).await;
    assert_eq!(got.len(), 4, "the member, its two Observations, the Group");
    for (id, r) in &got {
        assert!(
            *id == d.patients[0]
                || *id == d.group
                || r["subject"]["reference"] == format!("Patient/{pid}"),
            "{id}"
        );
    }

    let m = export(&s, "Patient/$export?_type=Observation").await;
    assert_eq!(exported(&s, &m).await.len(), 6);
    let m = export(
        &s,
        "$export?_type=Practitioner,Group&_since=2000-01-01T00:00:00Z",
    )
    .await;
    let want: BTreeSet<String> = [d.practitioner.clone(), d.group.clone()].into();
    assert_eq!(ids(&exported(&s, &m).await), want);
    let m = export(&s, "$export?_since=2999-01-01T00:00:00Z").await;
    assert_eq!(m["output"], json!([]));
}

#[tokio::test]
async fn files_split_at_the_configured_size_and_jobs_run_side_by_side() {
    let mut cfg = config();
    cfg.export.max_file_bytes = 600;
    let s = start_with(cfg).await;
    let d = seed(&s).await;
    let (a, b) = (
        kick_off(&s, "$export").await,
        kick_off(&s, "$export?_type=Observation").await,
    );
    let (a, b) = (
        header(&a, "content-location"),
        header(&b, "content-location"),
    );
    let (ma, mb) = (poll_job(&s, &a).await, poll_job(&s, &b).await);
    let files = ma["output"].as_array().unwrap();
    let observation_files = files.iter().filter(|f| f["type"] == "Observation").count();
    assert!(observation_files >= 2, "{ma}");
    assert_eq!(exported(&s, &ma).await.len(), 11);
    let obs = ids(&exported(&s, &mb).await);
    assert_eq!(obs, d.observations.iter().cloned().collect());
}

/// A file is put into the store in 5 MiB parts as it fills; one of several parts must arrive
/// whole and in order, and the store must hold nothing but the finished files.
#[tokio::test]
async fn files_larger_than_a_part_arrive_whole() {
    let store = std::env::temp_dir().join(format!("hds-export-parts-{}", std::process::id()));
    let mut cfg = config();
    cfg.export.max_file_bytes = 9 << 20;
    cfg.export.storage_url = Some(format!("file://{}", store.display()));
    let s = start_with(cfg).await;
    let mut sent = BTreeSet::new();
    for i in 0..40 {
        // 40 × ~300 KB: two files, the first over one part.
        let text = format!("{i:03}-{}", "x".repeat(300_000));
        let p = s
            .create(&json!({"resourceType": "Basic", "code": {"text": text}}))
            .await;
        sent.insert(format!("Basic/{}", p["id"].as_str().unwrap()));
    }
    let manifest = export(&s, "$export?_type=Basic").await;
    let files = manifest["output"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{manifest}");
    // Closed by the resource that takes it past 9 MiB: 32 × ~300 KB.
    assert_eq!(files[0]["count"], 32, "{manifest}");
    let got = exported(&s, &manifest).await;
    assert_eq!(ids(&got), sent);
    for (_, resource) in &got {
        assert_eq!(resource["code"]["text"].as_str().unwrap().len(), 300_004);
    }
    // No staging file is left beside the finished ones.
    let job = manifest["output"][0]["url"].as_str().unwrap();
    let job = job.rsplit('/').nth(1).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(store.join(job))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Basic-0001.ndjson", "Basic-0002.ndjson"]);
    std::fs::remove_dir_all(store).unwrap();
}

#[tokio::test]
async fn cancelled_jobs_are_gone() {
    let s = start().await;
    seed(&s).await;
    let r = kick_off(&s, "$export").await;
    let status = header(&r, "content-location");
    let manifest = poll_job(&s, &status).await;
    let file = manifest["output"][0]["url"].as_str().unwrap().to_owned();
    let r = s.http.delete(&status).send().await.unwrap();
    assert_eq!(r.status(), 202);
    outcome(s.http.get(&status).send().await.unwrap(), 404).await;
    outcome(s.http.get(&file).send().await.unwrap(), 404).await;
    outcome(s.http.delete(&status).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn bad_kick_offs_get_clear_outcomes() {
    let s = start().await;
    let d = seed(&s).await;
    let r = s.get("$export").await;
    let oo = outcome(r, 400).await;
    assert!(oo.to_string().contains("respond-async"), "{oo}");
    for (path, status) in [
        ("$export?_outputFormat=text/csv", 400),
        ("$export?_type=Nonsense", 400),
        ("$export?_type=", 400),
        ("$export?_type=%20,", 400),
        ("$export?_since=yesterday", 400),
        ("$export?_typeFilter=Patient%3Fnonsense%3Dtrue", 400),
        ("$export?_typeFilter=Nope%3Factive%3Dtrue", 400),
        ("$export?_typeFilter=active%3Dtrue", 400),
        (
            "$export?_type=Patient&_typeFilter=Observation%3Fstatus%3Dfinal",
            400,
        ),
        (
            "Patient/$export?_typeFilter=Practitioner%3Factive%3Dtrue",
            400,
        ),
        ("Patient/$export?_type=Practitioner", 400),
        (
            "$export?_typeFilter=Observation%3F_include%3DObservation:subject",
            400,
        ),
        (
            "$export?_typeFilter=Observation%3Fstatus%3Dfinal%26_sort%3Ddate",
            400,
        ),
        ("$export?_typeFilter=Observation%3F_count%3D1", 400),
        ("$export?_typeFilter=Observation%3F_summary%3Dcount", 400),
        ("$export?_typeFilter=Observation%3F_elements%3Did", 400),
        ("Practitioner/$export", 404),
        ("Group/nope/$export", 404),
    ] {
        outcome(kick_off(&s, path).await, status).await;
    }
    outcome(s.get("_operations/export/not-a-job").await, 404).await;
    outcome(
        s.get("_operations/export/6c1b3c1e-7c0e-4a36-9d55-5d8c47b1b1a1")
            .await,
        404,
    )
    .await;
    // A POST kick-off takes its parameters as a Parameters resource.
    let r = s
        .http
        .post(s.url("$export"))
        .header("prefer", "respond-async")
        .header("content-type", FHIR_JSON)
        .body(
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "_type", "valueString": "Practitioner"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let m = poll_job(&s, &header(&r, "content-location")).await;
    assert_eq!(ids(&exported(&s, &m).await), [d.practitioner].into());
}

/// `_typeFilter`: a type's resources must match one of its queries (ORed, commas inside a
/// query staying with it); types without a filter go whole.
#[tokio::test]
async fn type_filters_narrow_their_types_only() {
    let s = start().await;
    let d = seed(&s).await;
    let mut want = Vec::new();
    for (code, status) in [
        ("8867-4", "final"),
        ("1234-5", "final"),
        ("9999-9", "cancelled"),
    ] {
        let o = s
            .create(&json!({"resourceType": "Observation", "status": status,
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}))
            .await;
        if code != "1234-5" {
            want.push(format!("Observation/{}", o["id"].as_str().unwrap()));
        }
    }
    let other = s
        .create(&json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "7777-7"}]}}))
        .await;
    want.push(format!("Observation/{}", other["id"].as_str().unwrap()));
    // One filter with an OR of codes (its comma stays inside), one on status.
    let m = export(
        &s,
        "$export?_type=Observation,Patient&_typeFilter=Observation%3Fcode%3Dhttp://loinc.org%7C8867-4,http://loinc.org%7C7777-7,Observation%3Fstatus%3Dcancelled",
    )
    .await;
    let got = ids(&exported(&s, &m).await);
    let mut expected: BTreeSet<String> = want.into_iter().collect();
    expected.extend(d.patients.iter().cloned());
    assert_eq!(got, expected);
    assert!(!got.iter().any(|id| d.observations.contains(id)));
}

/// A POST kick-off with a Parameters body, as `Prefer` asks.
async fn post_kick_off(
    s: &TestServer,
    path: &str,
    prefer: &str,
    params: Value,
) -> reqwest::Response {
    s.http
        .post(s.url(path))
        .header("prefer", prefer)
        .header("content-type", FHIR_JSON)
        .body(json!({"resourceType": "Parameters", "parameter": params}).to_string())
        .send()
        .await
        .unwrap()
}

fn patient_param(reference: &str) -> Value {
    json!({"name": "patient", "valueReference": {"reference": reference}})
}

/// The manifest's error file, as OperationOutcomes (asked for with the IG's default Accept).
async fn error_file(s: &TestServer, manifest: &Value) -> Vec<Value> {
    let errors = manifest["error"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{manifest}");
    assert_eq!(errors[0]["type"], "OperationOutcome");
    let r = s
        .http
        .get(errors[0]["url"].as_str().unwrap())
        .header("accept", "application/fhir+ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, errors[0]["count"].as_u64().unwrap());
    lines
}

/// The IG's `patient` parameter (POST only): only the listed Patients' compartments are
/// exported; at Group level only those that are members. Unknown Patients and non-members
/// are reported in the error file; the list is kept in the job's record, which is what a
/// resumed job works from.
#[tokio::test]
async fn the_patient_parameter_narrows_patient_and_group_exports() {
    let s = start().await;
    let d = seed(&s).await;
    let compartment = |p: &str, got: &[(String, Value)]| {
        for (id, r) in got {
            assert!(
                *id == p || r["subject"]["reference"] == p || *id == d.group,
                "{id} is outside {p}'s compartment"
            );
        }
    };

    let r = post_kick_off(
        &s,
        "Patient/$export",
        "respond-async",
        json!([patient_param(&d.patients[1])]),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let status = header(&r, "content-location");
    let job = status.rsplit('/').next().unwrap().to_owned();
    let m = poll_job(&s, &status).await;
    assert_eq!(m["error"], json!([]));
    let got = exported(&s, &m).await;
    assert_eq!(got.len(), 3, "the Patient and its two Observations");
    compartment(&d.patients[1], &got);
    let (db, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = db
        .query_one(
            "SELECT patients FROM export_jobs WHERE id = $1::text::uuid",
            &[&job],
        )
        .await
        .unwrap();
    let stored: Option<Vec<String>> = row.get(0);
    let p1 = d.patients[1].strip_prefix("Patient/").unwrap();
    assert_eq!(stored, Some(vec![p1.to_owned()]));

    // An absolute reference to this server counts; an unknown Patient is reported.
    let r = post_kick_off(
        &s,
        "Patient/$export",
        "respond-async",
        json!([
            patient_param(&s.url(&d.patients[2])),
            patient_param("Patient/nobody")
        ]),
    )
    .await;
    assert_eq!(r.status(), 202);
    let m = poll_job(&s, &header(&r, "content-location")).await;
    let got = exported(&s, &m).await;
    assert_eq!(got.len(), 3);
    compartment(&d.patients[2], &got);
    let errors = error_file(&s, &m).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["resourceType"], "OperationOutcome");
    assert!(
        errors[0].to_string().contains("Patient/nobody"),
        "{}",
        errors[0]
    );

    // Group: the member asked for is exported, the non-member is not, and is reported.
    let r = post_kick_off(
        &s,
        &format!("{}/$export", d.group),
        "respond-async",
        json!([patient_param(&d.patients[0]), patient_param(&d.patients[1])]),
    )
    .await;
    assert_eq!(r.status(), 202);
    let m = poll_job(&s, &header(&r, "content-location")).await;
    let got = exported(&s, &m).await;
    assert_eq!(got.len(), 4, "the member, its two Observations, the Group");
    compartment(&d.patients[0], &got);
    let errors = error_file(&s, &m).await;
    assert!(
        errors[0]
            .to_string()
            .contains(&format!("{} is not a member", d.patients[1]))
    );

    // Only members were asked for, and none is: nothing of anyone is exported.
    let r = post_kick_off(
        &s,
        &format!("{}/$export", d.group),
        "respond-async",
        json!([patient_param(&d.patients[2])]),
    )
    .await;
    let m = poll_job(&s, &header(&r, "content-location")).await;
    assert_eq!(m["output"], json!([]));
}

/// Kick-off parameters the server cannot honour are refused (400 not-supported), unless the
/// client asks for lenient handling: then they are ignored and reported in the error file.
#[tokio::test]
async fn unsupported_kick_off_parameters_are_refused_unless_lenient() {
    let s = start().await;
    let d = seed(&s).await;
    for path in [
        "$export?_elements=id",
        "$export?_container=foo",
        "$export?includeAssociatedData=LatestProvenanceResources",
        "Patient/$export?patient=Patient/x",
    ] {
        let oo = outcome(kick_off(&s, path).await, 400).await;
        assert!(
            oo.to_string().contains("patient") || oo["issue"][0]["code"] == "not-supported",
            "{path}: {oo}"
        );
    }
    for (path, params, at) in [
        (
            "$export",
            json!([{"name": "_bogus", "valueString": "x"}]),
            None,
        ),
        ("$export", json!([patient_param(&d.patients[0])]), None),
        (
            "Patient/$export",
            json!([{"name": "patient", "valueString": "Patient/x"}]),
            Some("Parameters.parameter[0]"),
        ),
        (
            "Patient/$export",
            json!([{"name": "_type", "valueString": "Observation"}, patient_param(&d.practitioner)]),
            Some("Parameters.parameter[1]"),
        ),
        (
            "Patient/$export",
            json!([patient_param("Patient/x/_history/1")]),
            Some("Parameters.parameter[0]"),
        ),
        (
            "Patient/$export",
            json!([{"name": "_type", "valueCoding": {"code": "x"}}]),
            Some("Parameters.parameter[0]"),
        ),
    ] {
        let oo = outcome(
            post_kick_off(&s, path, "respond-async", params.clone()).await,
            400,
        )
        .await;
        if let Some(at) = at {
            assert_eq!(oo["issue"][0]["expression"], json!([at]), "{params}: {oo}");
        }
    }

    let r = s
        .http
        .get(s.url("$export?_type=Practitioner&_elements=id"))
        .header("prefer", "respond-async, handling=lenient")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let m = poll_job(&s, &header(&r, "content-location")).await;
    assert_eq!(
        ids(&exported(&s, &m).await),
        [d.practitioner.clone()].into()
    );
    let errors = error_file(&s, &m).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["issue"][0]["code"], "not-supported");
    assert!(errors[0].to_string().contains("_elements"), "{}", errors[0]);
}

/// The IG's output file request: Accept is optional and defaults to application/fhir+ndjson.
#[tokio::test]
async fn files_download_with_the_bulk_data_accept_types() {
    let s = start().await;
    seed(&s).await;
    let m = export(&s, "$export?_type=Practitioner").await;
    let url = m["output"][0]["url"].as_str().unwrap();
    for accept in [
        Some("application/fhir+ndjson"),
        Some("application/ndjson"),
        Some("*/*"),
        Some("application/fhir+json"),
        None,
    ] {
        let mut req = s.http.get(url);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{accept:?}");
        assert_eq!(header(&r, "content-type"), "application/fhir+ndjson");
        assert!(r.text().await.unwrap().contains("\"Practitioner\""));
    }
    let r = s
        .http
        .get(format!("{url}?_format=application/fhir%2Bndjson"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    outcome(r, 406).await;
    // Other endpoints still answer in FHIR JSON only.
    let r = s
        .http
        .get(s.url("Patient"))
        .header("accept", "application/fhir+ndjson")
        .send()
        .await
        .unwrap();
    outcome(r, 406).await;
}
