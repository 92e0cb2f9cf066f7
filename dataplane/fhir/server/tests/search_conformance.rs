//! Search conformance over the official R4 examples (npm hl7.fhir.r4.examples 4.0.1), loaded
//! under their own ids so that their references resolve. Every case states the ids it expects;
//! they were worked out from the example files by hand (see the comments on the less obvious).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use futures_util::StreamExt;
use serde_json::Value;

/// Loads every example (but the multi-megabyte definition Bundles) with PUT, keeping its id.
async fn load_examples(s: &TestServer) -> usize {
    let files: Vec<PathBuf> = std::fs::read_dir(package_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.ends_with("package.json")
                && std::fs::metadata(p).unwrap().len() < 2_000_000
        })
        .collect();
    let loaded: Vec<bool> = futures_util::stream::iter(files)
        .map(|path| async move {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            let (Some(rt), Some(id)) = (v["resourceType"].as_str(), v["id"].as_str()) else {
                return false;
            };
            let r = s
                .http
                .put(s.url(&format!("{rt}/{id}")))
                .header("content-type", FHIR_JSON)
                .body(text)
                .send()
                .await
                .unwrap();
            // The dozen examples that are invalid R4 are refused; nothing below uses them.
            let status = r.status();
            assert!(
                status.is_success() || status == 400,
                "{}: {status} {}",
                path.display(),
                r.text().await.unwrap()
            );
            status.is_success()
        })
        .buffer_unordered(8)
        .collect()
        .await;
    loaded.iter().filter(|ok| **ok).count()
}

/// All matches of a search, following `next` links, in order.
async fn all_matches(s: &TestServer, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut url = s.url(query);
    for _ in 0..200 {
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{query}: {}", r.text().await.unwrap());
        let b: Value = r.json().await.unwrap();
        out.extend(ids_with_mode(&b, "match"));
        match b["link"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => return out,
        }
    }
    panic!("{query}: more than 200 pages")
}

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

fn expect(rt: &str, ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|i| format!("{rt}/{i}")).collect()
}

/// (query, resource type of the matches, expected ids)
const CASES: &[(&str, &str, &[&str])] = &[
    // string: prefix, case- and accent-insensitive by default; :exact; :contains
    ("Patient?family=chalmers", "Patient", &["example"]),
    ("Patient?name=CHAL", "Patient", &["example"]),
    ("Patient?name:exact=Chalmers", "Patient", &["example"]),
    ("Patient?name:exact=chalmers", "Patient", &[]),
    ("Patient?name:contains=alme", "Patient", &["example"]),
    // token: code, system|code, :not, :text, identifier, boolean-ish codes
    ("Patient?gender=other", "Patient", &["pat2"]),
    (
        "Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12345",
        "Patient",
        &["example"],
    ),
    (
        "Observation?code=http://loinc.org|29463-7",
        "Observation",
        &["example"],
    ),
    (
        "Observation?code=http://snomed.info/sct|29463-7",
        "Observation",
        &[],
    ),
    (
        "Observation?code:text=body weight",
        "Observation",
        &["example"],
    ),
    (
        "Observation?status:not=final",
        "Observation",
        &[
            "blood-pressure-cancel",
            "example-TPMT-haplotype-one",
            "example-TPMT-haplotype-two",
            "example-haplotype1",
            "example-haplotype2",
            "f202",
            "unsat",
            "vp-oyster",
        ],
    ),
    // date: precision ranges, prefixes, AND by repetition, periods (open ends included)
    (
        "Patient?birthdate=1974-12-25",
        "Patient",
        &["ch-example", "example"],
    ),
    ("Patient?birthdate=lt1940", "Patient", &["glossy", "xcda"]),
    (
        "Patient?birthdate=ge2017-05-15&birthdate=lt2017-06",
        "Patient",
        &["infant-twin-1", "infant-twin-2"],
    ),
    (
        "Observation?date=2012-09-17",
        "Observation",
        &[
            "blood-pressure",
            "blood-pressure-cancel",
            "blood-pressure-dar",
        ],
    ),
    // map-sitting is 2018-04-02..05; abdo-tender (2018-04-02) and f001 (2013-04-02) started
    // and have no end, so they are still going on.
    (
        "Observation?date=ge2018-04-03&date=lt2018-04-04",
        "Observation",
        &["abdo-tender", "f001", "map-sitting"],
    ),
    // :missing
    (
        "Patient?birthdate:missing=true",
        "Patient",
        &["dicom", "ihe-pcd", "infant-fetal", "pat1", "pat2"],
    ),
    // quantity: prefixes, system|code, code matched against the unit when no system
    (
        "Observation?value-quantity=185|http://unitsofmeasure.org|[lb_av]",
        "Observation",
        &["example"],
    ),
    (
        "Observation?value-quantity=gt100",
        "Observation",
        &["656", "example", "f204"],
    ),
    (
        "Observation?value-quantity=13||{score}",
        "Observation",
        &["gcs-qa", "glasgow"],
    ),
    // number with implicit precision: 0.02 is [0.015, 0.025)
    (
        "RiskAssessment?probability=0.02",
        "RiskAssessment",
        &["cardiac"],
    ),
    (
        "RiskAssessment?probability=gt0.01",
        "RiskAssessment",
        &["cardiac"],
    ),
    // reference: relative, type-qualified, chained, reverse-chained
    (
        "Observation?subject=Patient/f001",
        "Observation",
        &["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"],
    ),
    (
        "Observation?subject:Patient=f001",
        "Observation",
        &["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"],
    ),
    (
        "Observation?subject:Patient.birthdate=1944-11-17",
        "Observation",
        &["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"],
    ),
    (
        "Observation?patient.identifier=urn:oid:1.2.36.146.595.217.0.1|12345&code=http://loinc.org|29463-7",
        "Observation",
        &["example"],
    ),
    (
        "Patient?_has:Observation:patient:code=http://loinc.org|29463-7",
        "Patient",
        &["example"],
    ),
    // uri: exact and :below
    (
        "ValueSet?url=http://hl7.org/fhir/ValueSet/account-status",
        "ValueSet",
        &["account-status"],
    ),
    (
        "ValueSet?url:below=http://hl7.org/fhir/ValueSet/account-",
        "ValueSet",
        &["account-status", "account-type"],
    ),
    // composite on the resource itself
    (
        "Observation?code-value-quantity=http://loinc.org|29463-7$gt180",
        "Observation",
        &["example"],
    ),
    (
        "Observation?code-value-quantity=http://loinc.org|29463-7$lt180",
        "Observation",
        &[],
    ),
    // composites over a repeating element: both components within one Observation.component.
    // blood-pressure has systolic 107 and diastolic 60 mm[Hg]; blood-pressure-dar systolic only.
    (
        "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100",
        "Observation",
        &["blood-pressure", "blood-pressure-dar"],
    ),
    (
        "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt100",
        "Observation",
        &[],
    ),
    (
        "Observation?component-code-value-quantity=http://loinc.org|8462-4$lt100",
        "Observation",
        &["blood-pressure"],
    ),
    (
        "Observation?component-code-value-quantity=http://loinc.org|8480-6$107|http://unitsofmeasure.org|mm[Hg]",
        "Observation",
        &["blood-pressure", "blood-pressure-dar"],
    ),
    // combo: the Observation itself or one of its components.
    (
        "Observation?combo-code-value-quantity=http://loinc.org|8480-6$gt100,http://loinc.org|29463-7$gt180",
        "Observation",
        &["blood-pressure", "blood-pressure-dar", "example"],
    ),
    // A repetition with a component missing (blood-pressure-cancel has no values) is no value.
    (
        "Observation?component-code-value-quantity:missing=false&code=85354-9",
        "Observation",
        &["blood-pressure", "blood-pressure-dar"],
    ),
    (
        "Observation?component-code-value-quantity:missing=true&code=85354-9",
        "Observation",
        &["blood-pressure-cancel"],
    ),
    // compartments
    (
        "Patient/f001/Observation",
        "Observation",
        &["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"],
    ),
    (
        "Patient/example/Encounter",
        "Encounter",
        &["emerg", "example", "home"],
    ),
    // _id with OR
    (
        "Patient?_id=pat1,pat2,nonexistent",
        "Patient",
        &["pat1", "pat2"],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_examples_answer_every_case() {
    let mut cfg = config();
    cfg.limits.max_request_body_bytes = 64 * 1024 * 1024;
    let s = start_with(cfg).await;
    let loaded = load_examples(&s).await;
    assert!(loaded > 5000, "only {loaded} examples loaded");

    let mut failures = Vec::new();
    for (query, rt, expected) in CASES {
        let got = set(&all_matches(&s, &format!("{query}{}_count=3", sep(query))).await);
        let want = expect(rt, expected);
        if got != want {
            failures.push(format!("{query}\n   want {want:?}\n    got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );

    value_sets_and_identifier_types(&s).await;
    includes(&s).await;
    sorting_and_paging(&s).await;
    totals_and_subsets(&s).await;
    bad_input(&s).await;
}

fn sep(q: &str) -> &'static str {
    if q.contains('?') { "&" } else { "?" }
}

async fn value_sets_and_identifier_types(s: &TestServer) {
    // Patient/example's and Patient/xcda's identifiers 12345 are both typed MR in v2-0203.
    let got = set(&all_matches(
        s,
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345",
    )
    .await);
    assert_eq!(got, expect("Patient", &["example", "xcda"]));
    let vs = serde_json::json!({
        "resourceType": "ValueSet", "url": "urn:test:vs:weights", "status": "active",
        "compose": {"include": [
            {"system": "http://loinc.org", "concept": [{"code": "29463-7"}, {"code": "8302-2"}]},
            {"system": "http://hl7.org/fhir/administrative-gender"}
        ]}
    });
    s.create(&vs).await;
    let got = set(&all_matches(s, "Observation?code:in=urn:test:vs:weights&_count=50").await);
    assert!(got.contains("Observation/example"), "{got:?}");
    assert!(got.contains("Observation/body-height"), "{got:?}");
    assert!(got.iter().all(|g| !g.contains("blood-pressure")), "{got:?}");
    let not_in =
        set(&all_matches(s, "Observation?code:not-in=urn:test:vs:weights&_count=100").await);
    assert!(not_in.is_disjoint(&got));
    assert!(!not_in.is_empty());
    // A ValueSet this server does not hold is an error, not an empty answer.
    outcome(s.get("Observation?code:in=urn:test:vs:absent").await, 400).await;
}

async fn includes(s: &TestServer) {
    let b = json(
        s.get("Observation?_id=example&_include=Observation:subject")
            .await,
    )
    .await;
    assert_eq!(ids_with_mode(&b, "match"), ["Observation/example"]);
    assert_eq!(ids_with_mode(&b, "include"), ["Patient/example"]);

    // Reverse include: the Encounters whose subject is Patient/example.
    let b = json(
        s.get("Patient?_id=example&_revinclude=Encounter:subject")
            .await,
    )
    .await;
    assert_eq!(
        set(&ids_with_mode(&b, "include")),
        expect("Encounter", &["emerg", "example", "home"])
    );

    // :iterate follows includes of includes: Observation -> Patient -> managing Organization.
    let b = json(
        s.get("Observation?_id=example&_include=Observation:subject&_include:iterate=Patient:organization")
            .await,
    )
    .await;
    let inc = set(&ids_with_mode(&b, "include"));
    assert!(inc.contains("Patient/example"), "{inc:?}");
    assert!(inc.contains("Organization/1"), "{inc:?}");
    // Without :iterate the second include applies to the matches only, which are no Patients.
    let b = json(
        s.get("Observation?_id=example&_include=Observation:subject&_include=Patient:organization")
            .await,
    )
    .await;
    assert_eq!(ids_with_mode(&b, "include"), ["Patient/example"]);

    // `*`: every reference parameter of Observation (f001 has a subject and a performer).
    let b = json(s.get("Observation?_id=f001&_include=Observation:*").await).await;
    let mut want = expect("Patient", &["f001"]);
    want.extend(expect("Practitioner", &["f005"]));
    assert_eq!(set(&ids_with_mode(&b, "include")), want);
    // ... and reversed: every Observation that refers to Patient f001 by any parameter
    // (subject, patient), each once.
    let b = json(s.get("Patient?_id=f001&_revinclude=Observation:*").await).await;
    assert_eq!(
        set(&ids_with_mode(&b, "include")),
        expect(
            "Observation",
            &["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"]
        )
    );
    assert_eq!(ids_with_mode(&b, "include").len(), 7);
    // `patient` is answered from `subject`'s rows to Patients: the same both ways.
    let b = json(
        s.get("Observation?_id=example&_include=Observation:patient")
            .await,
    )
    .await;
    assert_eq!(ids_with_mode(&b, "include"), ["Patient/example"]);
    // Sorting on it reads the same rows: every match refers to f001.
    let sorted = all_matches(s, "Observation?patient=f001&_sort=patient").await;
    assert_eq!(sorted.len(), 7, "{sorted:?}");
    let b = json(
        s.get("Patient?_id=f001&_revinclude=Observation:patient")
            .await,
    )
    .await;
    assert_eq!(
        set(&ids_with_mode(&b, "include")),
        expect(
            "Observation",
            &["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"]
        )
    );
}

async fn sorting_and_paging(s: &TestServer) {
    let by_birth = [
        "glossy",
        "xcda",
        "f001",
        "xds",
        "f201",
        "proband",
        "genetics-example1",
        "mom",
        "ch-example",
        "example",
        "pat3",
        "pat4",
        "infant-mom",
        "animal",
        "infant-twin-1",
        "infant-twin-2",
        "newborn",
    ];
    let want: Vec<String> = by_birth.iter().map(|i| format!("Patient/{i}")).collect();
    // Ties (same birth date) are ordered by id; pages of 4 follow the keyset cursor.
    let got = all_matches(
        s,
        "Patient?birthdate:missing=false&_sort=birthdate&_count=4",
    )
    .await;
    assert_eq!(got, want);
    let mut rev = want.clone();
    rev.reverse();
    // Descending reverses the date order; within a date ties still go by ascending id.
    let got = all_matches(
        s,
        "Patient?birthdate:missing=false&_sort=-birthdate&_count=5",
    )
    .await;
    let dates: Vec<String> = got.iter().map(|g| g.replace("Patient/", "")).collect();
    assert_eq!(dates.first().map(String::as_str), Some("newborn"));
    assert_eq!(
        set(&got),
        set(&rev),
        "descending returns the same set in the other order"
    );
    // Two keys: gender, then family name.
    let got = all_matches(
        s,
        "Patient?gender=female,male&_sort=gender,-family&_count=50",
    )
    .await;
    assert_eq!(got.len(), 20);
    assert_eq!(got.first().map(String::as_str), Some("Patient/infant-mom"));

    // previous leads back to the first page.
    let p1 = json(
        s.get("Patient?_sort=birthdate&birthdate:missing=false&_count=4")
            .await,
    )
    .await;
    let next = link(&p1, "next").unwrap();
    let p2: Value = s
        .http
        .get(&next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prev = link(&p2, "previous").expect("page 2 has a previous link");
    let back: Value = s
        .http
        .get(&prev)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids_with_mode(&back, "match"), ids_with_mode(&p1, "match"));
    assert!(link(&p1, "previous").is_none());

    // Pages stay put while others write: a Patient born first, created between pages, does
    // not shift page 2.
    let before_p2 = ids_with_mode(&p2, "match");
    s.create(&serde_json::json!({"resourceType": "Patient", "birthDate": "1900-01-01"}))
        .await;
    let p2_again: Value = s
        .http
        .get(&next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids_with_mode(&p2_again, "match"), before_p2);
}

fn link(b: &Value, rel: &str) -> Option<String> {
    b["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == rel)
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

async fn totals_and_subsets(s: &TestServer) {
    let b = json(
        s.get("Observation?subject=Patient/f001&_count=2&_total=accurate")
            .await,
    )
    .await;
    assert_eq!(b["total"], 7);
    assert_eq!(b["entry"].as_array().unwrap().len(), 2);
    let b = json(
        s.get("Observation?subject=Patient/f001&_count=2&_total=none")
            .await,
    )
    .await;
    assert!(b.get("total").is_none());
    let b = json(
        s.get("Observation?subject=Patient/f001&_count=2&_total=estimate")
            .await,
    )
    .await;
    assert!(b["total"].as_i64().unwrap() >= 0);
    let b = json(
        s.get("Observation?subject=Patient/f001&_summary=count")
            .await,
    )
    .await;
    assert_eq!(b["total"], 7);
    assert!(b.get("entry").is_none());

    let b = json(s.get("Observation?_id=example&_elements=status,code").await).await;
    let r = &b["entry"][0]["resource"];
    assert_eq!(r["status"], "final");
    assert!(r.get("valueQuantity").is_none());
    assert!(r["meta"]["tag"].to_string().contains("SUBSETTED"));
    let b = json(s.get("Patient?_id=example&_summary=true").await).await;
    let r = &b["entry"][0]["resource"];
    assert!(r.get("name").is_some());
    assert!(
        r.get("contact").is_none(),
        "contact is not a summary element"
    );
}

async fn bad_input(s: &TestServer) {
    let strict = |q: &'static str| {
        s.http
            .get(s.url(q))
            .header("prefer", "handling=strict")
            .send()
    };
    outcome(strict("Patient?nonsense=1").await.unwrap(), 400).await;
    // Lenient (the default): ignored, and said so in an outcome entry.
    let b = json(s.get("Patient?nonsense=1&_id=example").await).await;
    assert_eq!(ids_with_mode(&b, "match"), ["Patient/example"]);
    let oo = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("an outcome entry");
    assert!(oo["resource"].to_string().contains("nonsense"));

    for q in [
        "Patient?birthdate=1974-13-45",
        "Patient?birthdate=notadate",
        "Observation?value-quantity=abc",
        "Observation?value-quantity=5|a",
        "Patient?gender.name=x",
        "Patient?_sort=nonexistent",
        "Observation?_sort=code-value-quantity",
        "Patient?_count=abc",
        "Patient?_cursor=garbage",
        "Patient?_has:Observation:nonexistent:code=1",
        "Patient?_include=Patient:gender",
        "Patient?name:nonsense=x",
        "Patient?gender:in=http://x",
        "Patient?_total=some",
    ] {
        let r = s.get(q).await;
        let status = r.status().as_u16();
        let body = json(r).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{q}");
    }
    // A huge _count is capped at the configured maximum, not refused.
    let b = json(s.get("Patient?_count=100000").await).await;
    assert!(b["entry"].as_array().unwrap().len() <= 1000);
}
