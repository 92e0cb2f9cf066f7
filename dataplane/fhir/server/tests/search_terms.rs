//! The search features that lean on more than one parameter's index rows: `_text`/`_content`
//! (full text), `_list`, token `:above`/`:below` (CodeSystem hierarchies held here), UCUM
//! canonical quantities, and system-wide search with `_type`.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

const CS: &str = "http://example.org/fhir/CodeSystem/findings";
const UCUM: &str = "http://unitsofmeasure.org";

/// `Type/id` of the matches, sorted.
async fn matches(s: &TestServer, query: &str) -> BTreeSet<String> {
    let r = s.get(query).await;
    assert_eq!(r.status(), 200, "{query}");
    ids_with_mode(&json(r).await, "match").into_iter().collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn put(s: &TestServer, body: Value) {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, &body).await;
    assert!(
        r.status().is_success(),
        "{path}: {}",
        r.text().await.unwrap()
    );
}

fn patient(id: &str, family: &str, narrative: &str) -> Value {
    json!({
        "resourceType": "Patient", "id": id,
        "text": {"status": "generated",
                 "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{narrative}</p></div>")},
        "name": [{"family": family}]
    })
}

fn condition(id: &str, code: &str) -> Value {
    json!({
        "resourceType": "Condition", "id": id,
        "code": {"coding": [{"system": CS, "code": code}]},
        "subject": {"reference": "Patient/p1"}
    })
}

fn weight(id: &str, value: f64, unit: &str) -> Value {
    json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p2"},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}
    })
}

async fn load(s: &TestServer) {
    put(
        s,
        patient("p1", "Chalmers", "Peter Chalmers, admitted with fever"),
    )
    .await;
    put(
        s,
        patient("p2", "Müller", "Élodie Müller; allergic to penicillin"),
    )
    .await;
    put(s, patient("p3", "Windsor", "No known allergies")).await;
    put(
        s,
        json!({
            "resourceType": "CodeSystem", "id": "findings", "url": CS, "status": "active",
            "content": "complete", "hierarchyMeaning": "is-a",
            "concept": [
                {"code": "disorder", "concept": [
                    {"code": "heart", "concept": [{"code": "mi"}, {"code": "angina"}]},
                    {"code": "lung"}
                ]},
                {"code": "asthma", "property": [{"code": "parent", "valueCode": "lung"}]}
            ]
        }),
    )
    .await;
    for (id, code) in [
        ("c-mi", "mi"),
        ("c-angina", "angina"),
        ("c-asthma", "asthma"),
    ] {
        put(s, condition(id, code)).await;
    }
    put(s, weight("w-kg", 72.5, "kg")).await;
    put(s, weight("w-g", 72500.0, "g")).await;
    put(s, weight("w-lb", 160.0, "[lb_av]")).await;
    put(s, weight("w-heavy", 95.0, "kg")).await;
    put(
        s,
        json!({
            "resourceType": "List", "id": "watch", "status": "current", "mode": "working",
            "entry": [{"item": {"reference": "Patient/p1"}},
                      {"item": {"reference": "Patient/p3"}},
                      {"item": {"reference": "Condition/c-mi"}}]
        }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_list_hierarchy_units_and_system_search() {
    let s = start().await;
    load(&s).await;
    full_text(&s).await;
    lists(&s).await;
    hierarchies(&s).await;
    ucum(&s).await;
    system_search(&s).await;
}

async fn full_text(s: &TestServer) {
    // _text: the narrative only, case- and accent-insensitive, websearch syntax.
    assert_eq!(
        matches(s, "Patient?_text=fever").await,
        set(&["Patient/p1"])
    );
    assert_eq!(
        matches(s, "Patient?_text=ELODIE").await,
        set(&["Patient/p2"])
    );
    assert_eq!(
        matches(s, "Patient?_text=fever or penicillin").await,
        set(&["Patient/p1", "Patient/p2"])
    );
    assert_eq!(matches(s, "Patient?_text=allergies -known").await, set(&[]));
    assert_eq!(
        matches(s, "Patient?_text=\"known allergies\"").await,
        set(&["Patient/p3"])
    );
    // Comma ORs values, as for every parameter.
    assert_eq!(
        matches(s, "Patient?_text=fever,windsor").await,
        set(&["Patient/p1"])
    );
    // _content: every string, so the family name in `name` too.
    assert_eq!(
        matches(s, "Patient?_content=windsor").await,
        set(&["Patient/p3"])
    );
    assert_eq!(
        matches(s, "Observation?_content=kg").await,
        set(&["Observation/w-kg", "Observation/w-heavy"])
    );
    // ANDed with other parameters.
    assert_eq!(
        matches(s, "Patient?_content=muller&family=windsor").await,
        set(&[])
    );
    // Words are runs of letters and digits, in documents and in values alike: a value of
    // several words without spaces (a code, a URL) is a phrase of them.
    assert_eq!(
        matches(s, "Patient?_text=\"peter chalmers\"").await,
        set(&["Patient/p1"])
    );
    assert_eq!(
        matches(s, "Patient?_text=\"chalmers peter\"").await,
        set(&[])
    );
    let weights = set(&[
        "Observation/w-kg",
        "Observation/w-g",
        "Observation/w-lb",
        "Observation/w-heavy",
    ]);
    assert_eq!(matches(s, "Observation?_content=29463-7").await, weights);
    assert_eq!(
        matches(s, "Observation?_content=http://loinc.org").await,
        weights
    );
    assert_eq!(matches(s, "Observation?_content=loinc").await, weights);
    assert_eq!(matches(s, "Observation?_content=7-29463").await, set(&[]));
    // Ids and literal references are not content (`_id` and `subject` search them); a value
    // with no word matches nothing.
    assert_eq!(matches(s, "Condition?_content=p1").await, set(&[]));
    assert_eq!(matches(s, "Patient?_content=p2").await, set(&[]));
    assert_eq!(matches(s, "Patient?_content=-").await, set(&[]));
    outcome(s.get("Patient?_text:exact=fever").await, 400).await;
}

/// A database whose full-text vectors were made by PostgreSQL's parser (before migration 0019)
/// gets a reindex job when the server starts on it, and the job rewrites them in hds's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulltext_vectors_from_before_0019_are_rewritten_by_a_queued_reindex() {
    let url = hds_fhir_server::testing::fresh_database().await;
    let pool = hds_common::db::connect(&url, 1).await.unwrap();
    hds_common::db::migrate(&pool, "fhir", &hds_fhir_store::MIGRATIONS[..18])
        .await
        .unwrap();
    let body = r#"{"resourceType":"Patient","id":"old","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z"},"name":[{"family":"Hume"}],"telecom":[{"system":"url","value":"http://example.org/notes"}]}"#;
    pool.get()
        .await
        .unwrap()
        .execute(
            "WITH r AS (INSERT INTO resources VALUES ('Patient', 'old', 1, '2020-01-01Z', false)),
                  v AS (INSERT INTO resource_versions (res_type, id, version_id, last_updated, method, body)
                        VALUES ('Patient', 'old', 1, '2020-01-01Z', 'PUT', $1))
             INSERT INTO search_text VALUES ('Patient', 'old', ''::tsvector,
                 to_tsvector('simple', 'patient old hume url http://example.org/notes'))",
            &[&body],
        )
        .await
        .unwrap();
    drop(pool);

    let (base, db_url) = hds_fhir_server::testing::serve_on(config(), url).await;
    let s = TestServer {
        base,
        http: reqwest::Client::new(),
        db_url,
    };
    let (client, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut status = String::new();
    for _ in 0..200 {
        status = client
            .query_one("SELECT string_agg(status, ',') FROM reindex_jobs", &[])
            .await
            .unwrap()
            .get(0);
        if status == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "completed", "one job, run to its end");
    let lexemes: Vec<String> = client
        .query_one(
            "SELECT tsvector_to_array(content) FROM search_text WHERE id = 'old'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        lexemes.contains(&"example".to_owned()) && !lexemes.contains(&"example.org".to_owned()),
        "{lexemes:?}"
    );
    assert_eq!(
        matches(&s, "Patient?_content=example").await,
        set(&["Patient/old"])
    );

    // A database with no full-text rows gets no job.
    let fresh = start().await;
    let (client, conn) = tokio_postgres::connect(&fresh.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let jobs: i64 = client
        .query_one("SELECT count(*) FROM reindex_jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 0);
}

async fn lists(s: &TestServer) {
    assert_eq!(
        matches(s, "Patient?_list=watch").await,
        set(&["Patient/p1", "Patient/p3"])
    );
    assert_eq!(
        matches(s, "Condition?_list=watch").await,
        set(&["Condition/c-mi"])
    );
    assert_eq!(matches(s, "Patient?_list=nope").await, set(&[]));
    // Functional lists are reported, and refused under strict handling.
    let b = json(s.get("Patient?_list=$current-problems").await).await;
    assert!(b.to_string().contains("functional lists"), "{b}");
    let r = s
        .http
        .get(s.url("Patient?_list=$current-problems"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    outcome(r, 400).await;
}

async fn hierarchies(s: &TestServer) {
    let all = ["Condition/c-mi", "Condition/c-angina", "Condition/c-asthma"];
    assert_eq!(
        matches(s, &format!("Condition?code:below={CS}|disorder")).await,
        set(&all)
    );
    assert_eq!(
        matches(s, &format!("Condition?code:below={CS}|heart")).await,
        set(&["Condition/c-mi", "Condition/c-angina"])
    );
    // Through the `parent` property of a flat concept.
    assert_eq!(
        matches(s, &format!("Condition?code:below={CS}|lung")).await,
        set(&["Condition/c-asthma"])
    );
    // :above: the Conditions coded with `heart` or anything over it: none here but...
    assert_eq!(
        matches(s, &format!("Condition?code:above={CS}|heart")).await,
        set(&[])
    );
    // ...mi is above-or-equal to itself only; angina's ancestors do not include mi.
    assert_eq!(
        matches(s, &format!("Condition?code:above={CS}|mi")).await,
        set(&["Condition/c-mi"])
    );
    // In a chain: Patients with a Condition below `heart`.
    assert_eq!(
        matches(
            s,
            &format!("Patient?_has:Condition:subject:code:below={CS}|heart")
        )
        .await,
        set(&["Patient/p1"])
    );
    // A system this server does not hold, or no system at all, is an error.
    outcome(
        s.get("Condition?code:below=http://example.org/absent|x")
            .await,
        400,
    )
    .await;
    outcome(s.get("Condition?code:below=heart").await, 400).await;
}

async fn ucum(s: &TestServer) {
    let q = |v: &str| format!("Observation?value-quantity={v}");
    // 72.5 kg, 72500 g: the same mass, found in either unit and in mg.
    let same = set(&["Observation/w-kg", "Observation/w-g"]);
    assert_eq!(matches(s, &q(&format!("72.5|{UCUM}|kg"))).await, same);
    assert_eq!(matches(s, &q(&format!("72500|{UCUM}|g"))).await, same);
    assert_eq!(matches(s, &q(&format!("72500000|{UCUM}|mg"))).await, same);
    // 160 lb is 72.57 kg: outside 72.5's precision, inside a wider search.
    assert_eq!(
        matches(s, &q(&format!("ap72.6|{UCUM}|kg"))).await,
        set(&["Observation/w-kg", "Observation/w-g", "Observation/w-lb"])
    );
    assert_eq!(
        matches(s, &q(&format!("gt90000|{UCUM}|g"))).await,
        set(&["Observation/w-heavy"])
    );
    assert_eq!(
        matches(s, &q(&format!("lt73|{UCUM}|kg"))).await,
        set(&["Observation/w-kg", "Observation/w-g", "Observation/w-lb"])
    );
    // Another dimension matches nothing; a unit without the system still compares as written.
    assert_eq!(matches(s, &q(&format!("72.5|{UCUM}|m"))).await, set(&[]));
    assert_eq!(matches(s, &q("72.5||kg")).await, set(&["Observation/w-kg"]));
}

async fn system_search(s: &TestServer) {
    assert_eq!(
        matches(s, "?_type=Patient,Condition&_list=watch").await,
        set(&["Patient/p1", "Patient/p3", "Condition/c-mi"])
    );
    assert_eq!(matches(s, "?_content=chalmers").await, set(&["Patient/p1"]));
    assert_eq!(
        matches(s, "?_id=p2,c-mi").await,
        set(&["Patient/p2", "Condition/c-mi"])
    );
    // POST [base]/_search with a form body.
    let r = s
        .http
        .post(s.url("_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("_type=Observation&_content=kg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b = json(r).await;
    assert_eq!(b["total"], 2, "{b}");

    // Pages across types follow (type, id) and the links keep _type.
    let mut seen = Vec::new();
    let mut url = s.url("?_type=Patient,Condition,List&_count=2");
    for _ in 0..10 {
        let b = json(s.http.get(&url).send().await.unwrap()).await;
        for e in b["entry"].as_array().into_iter().flatten() {
            seen.push(format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            ));
        }
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(n) => {
                url = n["url"].as_str().unwrap().to_owned();
                assert!(url.contains("_type=Patient"), "{url}");
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "Condition/c-angina",
            "Condition/c-asthma",
            "Condition/c-mi",
            "List/watch",
            "Patient/p1",
            "Patient/p2",
            "Patient/p3"
        ]
    );

    // A parameter that not every type has is refused, with the reason.
    let o = outcome(s.get("?_type=Patient,Condition&family=x").await, 400).await;
    assert!(o.to_string().contains("'family' applies to"), "{o}");
    outcome(s.get("?_type=Nope").await, 400).await;
}

/// `_total=accurate` over an exact token counts the token's index entries: each resource once
/// however many of its codings match, deleted resources not at all, other filters still applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accurate_totals_over_a_token() {
    let s = start().await;
    let obs = |id: &str, codes: &[&str], status: &str| {
        json!({"resourceType": "Observation", "id": id, "status": status,
               "code": {"coding": codes.iter().map(|c| json!({"system": "http://loinc.org", "code": c}))
                                         .collect::<Vec<_>>()}})
    };
    put(&s, obs("t1", &["8867-4", "8867-4"], "final")).await;
    put(&s, obs("t2", &["8867-4"], "final")).await;
    put(&s, obs("t3", &["8867-4"], "amended")).await;
    put(&s, obs("t4", &["8867-4"], "final")).await;
    put(&s, obs("t5", &["9279-1"], "final")).await;
    assert_eq!(s.delete("Observation/t4").await.status(), 204);
    let total = |q: &'static str| {
        let s = &s;
        async move {
            let b = json(s.get(q).await).await;
            (
                b["total"].as_i64(),
                b["entry"].as_array().map_or(0, Vec::len),
            )
        }
    };
    // _count=1 so the total cannot come from a page that holds everything.
    assert_eq!(
        total("Observation?code=http://loinc.org|8867-4&_total=accurate&_count=1").await,
        (Some(3), 1)
    );
    assert_eq!(
        total("Observation?code=http://loinc.org|8867-4&status=final&_total=accurate&_count=1")
            .await,
        (Some(2), 1)
    );
    assert_eq!(
        total("Observation?code=http://loinc.org|0000-0&_total=accurate&_count=1").await,
        (Some(0), 0)
    );
}

/// A token beside another filter is first tried on a capped number of the token's entries, then
/// without the cap: with a cap of 8 (`HDS_SEARCH_DRIVING_CAP`), sparse matches need the second
/// try and dense ones fill their pages in the first; forwards and back, pages give exactly the
/// matches, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driving_token_with_a_selective_second_filter_pages_exactly() {
    // nextest runs each test in its own process, so this setting stays with this test.
    unsafe { std::env::set_var("HDS_SEARCH_DRIVING_CAP", "8") };
    let s = start().await;
    for i in 0..30 {
        // Every fifth is late, the others early: a late window matches sparsely.
        let year = if i % 5 == 0 { 2024 } else { 2012 };
        put(
            &s,
            json!({"resourceType": "Observation", "id": format!("d{i:02}"), "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                   "effectiveDateTime": format!("{year}-03-0{}", 1 + i % 9)}),
        )
        .await;
    }
    let walk = |first: String| {
        let s = &s;
        async move {
            let mut seen = Vec::new();
            let mut url = Some(first);
            let mut last = Value::Null;
            while let Some(u) = url {
                let b = json(s.http.get(&u).send().await.unwrap()).await;
                seen.extend(ids_with_mode(&b, "match"));
                url = link(&b, "next");
                last = b;
            }
            (seen, last)
        }
    };
    let base = s.url("Observation?code=http://loinc.org|8480-6");
    let (late, _) = walk(format!("{base}&date=ge2020-01-01&_count=2")).await;
    let want: Vec<String> = (0..30)
        .filter(|i| i % 5 == 0)
        .map(|i| format!("Observation/d{i:02}"))
        .collect();
    assert_eq!(late, want);
    let (early, last_page) = walk(format!("{base}&date=lt2020-01-01&_count=4")).await;
    assert_eq!(early.len(), 24);
    assert_eq!(early.iter().collect::<BTreeSet<_>>().len(), 24);
    // Back from the last page to the first.
    let back = walk_back(&s, &last_page).await;
    let mut expect_back = early.clone();
    expect_back.reverse();
    let last_len = ids_with_mode(&last_page, "match").len();
    assert_eq!(back, expect_back[last_len..].to_vec());
}

/// The matches of the pages before `page`, following `previous` links, nearest first.
async fn walk_back(s: &TestServer, page: &Value) -> Vec<String> {
    let mut back = Vec::new();
    let mut url = link(page, "previous");
    while let Some(u) = url {
        let b = json(s.http.get(&u).send().await.unwrap()).await;
        let mut ids = ids_with_mode(&b, "match");
        ids.reverse();
        back.extend(ids);
        url = link(&b, "previous");
    }
    back
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// A chain alone pages in (target, id) order from its reference rows; pages, forwards and
/// back, hold each match once, even one that refers to several matching targets; beside
/// other filters it pages in id order, and those filters still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_pages_come_from_the_reference_rows() {
    let s = start().await;
    for (id, family) in [("pc1", "Chainer"), ("pc2", "Chainer"), ("pc3", "Other")] {
        put(&s, patient(id, family, "")).await;
    }
    for i in 0..9 {
        let subject = ["pc1", "pc2", "pc3"][i % 3];
        put(
            &s,
            json!({"resourceType": "Observation", "id": format!("c{i}"),
                   "status": if i % 2 == 0 { "final" } else { "amended" },
                   "code": {"text": "x"}, "subject": {"reference": format!("Patient/{subject}")}}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = Some(s.url("Observation?subject:Patient.name=chainer&_count=2"));
    while let Some(u) = url {
        let b = json(s.http.get(&u).send().await.unwrap()).await;
        seen.extend(ids_with_mode(&b, "match"));
        url = link(&b, "next");
        pages.push(b);
    }
    // pc1's observations (c0, c3, c6), then pc2's (c1, c4, c7).
    let want: Vec<String> = [0, 3, 6, 1, 4, 7]
        .iter()
        .map(|i| format!("Observation/c{i}"))
        .collect();
    assert_eq!(seen, want);
    let back = walk_back(&s, pages.last().unwrap()).await;
    let last_len = ids_with_mode(pages.last().unwrap(), "match").len();
    let mut expect: Vec<String> = want[..want.len() - last_len].to_vec();
    expect.reverse();
    assert_eq!(back, expect);
    assert_eq!(
        matches(&s, "Observation?subject:Patient.name=chainer&status=final").await,
        set(&["Observation/c0", "Observation/c4", "Observation/c6"])
    );

    // Reports with several results: each listed once, at its first final result.
    for (id, results) in [("r1", &[0, 2, 4][..]), ("r2", &[1]), ("r3", &[6, 1, 8])] {
        let result: Vec<Value> = results
            .iter()
            .map(|i| json!({"reference": format!("Observation/c{i}")}))
            .collect();
        put(
            &s,
            json!({"resourceType": "DiagnosticReport", "id": id, "status": "final",
                   "code": {"text": "panel"}, "result": result}),
        )
        .await;
    }
    let mut reports = Vec::new();
    let mut url = Some(s.url("DiagnosticReport?result:Observation.status=final&_count=1"));
    while let Some(u) = url {
        let b = json(s.http.get(&u).send().await.unwrap()).await;
        reports.extend(ids_with_mode(&b, "match"));
        url = link(&b, "next");
    }
    assert_eq!(reports, ["DiagnosticReport/r1", "DiagnosticReport/r3"]);
}

/// A single filter picks its page from its own index rows: pages in id order, forwards and
/// back, hold each match once, for string prefixes of every length against the string index's
/// three-character key, exact strings, a date range, `_has` and a reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_filter_pages_come_from_the_index_rows() {
    let s = start().await;
    for i in 0..7 {
        // Two names each, both matching: the index holds two rows per patient.
        put(
            &s,
            json!({"resourceType": "Patient", "id": format!("sp{i}"),
                   "name": [{"family": "Indexer", "given": ["Ann"]}, {"family": "Indexova"}],
                   "birthDate": format!("19{}0-01-01", 5 + i % 3)}),
        )
        .await;
    }
    put(&s, patient("sq9", "Elsewhere", "")).await;
    for i in 0..5 {
        put(
            &s,
            json!({"resourceType": "Observation", "id": format!("so{i}"), "status": "final",
                   "code": {"text": "x"}, "subject": {"reference": format!("Patient/sp{}", i % 2)},
                   "effectiveDateTime": format!("2021-0{}-15", i + 1)}),
        )
        .await;
    }
    let all: Vec<String> = (0..7).map(|i| format!("Patient/sp{i}")).collect();
    // Prefixes shorter than, as long as and longer than the string index's key, and exact values.
    for query in [
        "Patient?name=i&_count=3",
        "Patient?name=IN&_count=2",
        "Patient?name=Ind&_count=4",
        "Patient?name=%C3%8Dndexov&_count=3",
        "Patient?name:exact=Indexova&_count=5",
        "Patient?name=ann,indexo&_count=2",
    ] {
        pages_hold_exactly(&s, query, &all).await;
    }
    for none in [
        "Patient?name=indexovaa",
        "Patient?name:exact=indexova",
        "Patient?name:exact=Indexov",
    ] {
        assert!(matches(&s, none).await.is_empty(), "{none}");
    }
    for (query, want) in [
        ("Patient?name=index&_count=3", all.clone()),
        (
            "Patient?birthdate=ge1960-01-01&_count=2",
            vec![
                "Patient/sp1".into(),
                "Patient/sp2".into(),
                "Patient/sp4".into(),
                "Patient/sp5".into(),
            ],
        ),
        (
            "Patient?_has:Observation:subject:status=final&_count=1",
            vec!["Patient/sp0".into(), "Patient/sp1".into()],
        ),
        (
            "Observation?date=ge2021-02-01&date=lt2021-05-01&_count=2",
            (1..4).map(|i| format!("Observation/so{i}")).collect(),
        ),
        (
            "Observation?subject=Patient/sp0&_count=1",
            vec![
                "Observation/so0".into(),
                "Observation/so2".into(),
                "Observation/so4".into(),
            ],
        ),
    ] {
        pages_hold_exactly(&s, query, &want).await;
    }
}

/// Following `next` from `query` gives `want` in order, and `previous` from the last page
/// gives the earlier pages' matches in reverse.
async fn pages_hold_exactly(s: &TestServer, query: &str, want: &[String]) {
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = Some(s.url(query));
    while let Some(u) = url {
        let b = json(s.http.get(&u).send().await.unwrap()).await;
        seen.extend(ids_with_mode(&b, "match"));
        url = link(&b, "next");
        pages.push(b);
    }
    assert_eq!(seen, want, "{query}");
    let back = walk_back(s, pages.last().unwrap()).await;
    let last_len = ids_with_mode(pages.last().unwrap(), "match").len();
    let mut expect: Vec<String> = want[..want.len() - last_len].to_vec();
    expect.reverse();
    assert_eq!(back, expect, "{query} backwards");
}

/// R4's combo-* parameters (the Observation's own code and value, and its components') have no
/// index rows of their own: they are searched, sorted and paged through the rows of their two
/// parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combo_parameters_are_answered_from_their_parts_rows() {
    let s = start().await;
    let coding = |code: &str| json!({"coding": [{"system": "http://loinc.org", "code": code}]});
    let kg = |v: f64| json!({"value": v, "unit": "kg", "system": UCUM, "code": "kg"});
    for (id, code, value, components) in [
        ("cb1", "c2", 10.0, vec![]),
        ("cb2", "c3", 20.0, vec![("c1", 30.0)]),
        ("cb3", "c2", 40.0, vec![("c4", 50.0), ("c5", 5.0)]),
    ] {
        let components: Vec<Value> = components
            .into_iter()
            .map(|(c, v)| json!({"code": coding(c), "valueQuantity": kg(v)}))
            .collect();
        let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
                           "code": coding(code), "valueQuantity": kg(value)});
        if !components.is_empty() {
            o["component"] = json!(components);
        }
        put(&s, o).await;
    }
    let obs = |ids: &[&str]| -> BTreeSet<String> {
        ids.iter().map(|i| format!("Observation/{i}")).collect()
    };
    for (query, want) in [
        ("Observation?combo-code=c1", obs(&["cb2"])),
        ("Observation?combo-code=c2,c4", obs(&["cb1", "cb3"])),
        ("Observation?combo-code:not=c2", obs(&["cb2"])),
        ("Observation?combo-code:missing=true", obs(&[])),
        ("Observation?combo-value-quantity=lt8", obs(&["cb3"])),
        (
            "Observation?combo-value-quantity=ge30&combo-code=c3",
            obs(&["cb2"]),
        ),
        (
            "Observation?combo-code-value-quantity=c4$gt45",
            obs(&["cb3"]),
        ),
        ("Observation?combo-code-value-quantity=c4$lt45", obs(&[])),
    ] {
        assert_eq!(matches(&s, query).await, want, "{query}");
    }
    // Sorted by the smallest code over the Observation and its components, two to a page.
    let mut url = Some(s.url("Observation?_sort=combo-code&_count=2"));
    let mut seen = Vec::new();
    while let Some(u) = url {
        let b = json(s.http.get(&u).send().await.unwrap()).await;
        seen.extend(ids_with_mode(&b, "match"));
        url = link(&b, "next");
    }
    assert_eq!(
        seen,
        ["Observation/cb2", "Observation/cb1", "Observation/cb3"]
    );
    // Paged in id order, each part's page read first, forwards and back; cb3 matches in both
    // parts (its own code c2, a component's c4) and comes once.
    let mut url = Some(s.url("Observation?combo-code=c1,c2,c4&_count=1"));
    let (mut seen, mut pages) = (Vec::new(), Vec::new());
    while let Some(u) = url {
        let b = json(s.http.get(&u).send().await.unwrap()).await;
        seen.extend(ids_with_mode(&b, "match"));
        url = link(&b, "next");
        pages.push(b);
    }
    assert_eq!(
        seen,
        ["Observation/cb1", "Observation/cb2", "Observation/cb3"]
    );
    assert_eq!(
        walk_back(&s, pages.last().unwrap()).await,
        ["Observation/cb2", "Observation/cb1"]
    );

    let (client, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let own_rows: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM search_token WHERE param LIKE 'combo-%')
                  + (SELECT count(*) FROM search_quantity WHERE param LIKE 'combo-%')
                  + (SELECT count(*) FROM search_composite WHERE param LIKE 'combo-%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(own_rows, 0, "combo-* rows stored");
}
