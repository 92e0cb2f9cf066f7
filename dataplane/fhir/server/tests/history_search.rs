//! History at three levels, search on the REST core's parameters, and keyset paging.

mod common;

use common::*;
use serde_json::{Value, json};

async fn follow_all(s: &TestServer, first: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut next = Some(s.url(first));
    let mut pages = 0;
    while let Some(url) = next {
        let page = json(s.http.get(url).send().await.unwrap()).await;
        entries.extend(page["entry"].as_array().cloned().unwrap_or_default());
        next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        pages += 1;
        assert!(pages < 100);
    }
    entries
}

#[tokio::test]
async fn history_levels_and_paging() {
    let s = start().await;
    let body = json!({"resourceType": "Patient", "id": "h", "active": true});
    s.put("Patient/h", &body).await;
    s.put("Patient/h", &body).await;
    s.delete("Patient/h").await;
    s.create(&json!({"resourceType": "Basic", "code": {"text": "b"}}))
        .await;

    let h = json(s.get("Patient/h/_history").await).await;
    assert_eq!(h["type"], "history");
    let e = h["entry"].as_array().unwrap();
    let methods: Vec<&str> = e
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "PUT"], "newest first");
    assert!(e[0].get("resource").is_none());
    assert_eq!(e[1]["resource"]["meta"]["versionId"], "2");
    assert_eq!(e[2]["response"]["status"], "201 Created");

    assert_eq!(
        json(s.get("Patient/_history").await).await["entry"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let all = follow_all(&s, "_history?_count=1").await;
    assert_eq!(
        all.len(),
        4,
        "system history pages through every version exactly once"
    );
    outcome(s.get("Patient/unknown/_history").await, 404).await;
    outcome(s.get("_history?_count=x").await, 400).await;
    outcome(s.get("_history?_since=yesterday").await, 400).await;
    outcome(s.get("_history?foo=1").await, 400).await;
}

#[tokio::test]
async fn history_since_and_at() {
    let s = start().await;
    let body = json!({"resourceType": "Patient", "id": "t", "active": true});
    let v1 = json(s.put("Patient/t", &body).await).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let v2 = json(s.put("Patient/t", &body).await).await;
    let t1 = v1["meta"]["lastUpdated"].as_str().unwrap();
    let t2 = v2["meta"]["lastUpdated"].as_str().unwrap();

    let since = json(
        s.http
            .get(s.url("Patient/t/_history"))
            .query(&[("_since", t2)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(since["entry"].as_array().unwrap().len(), 1);
    let at = json(
        s.http
            .get(s.url("Patient/t/_history"))
            .query(&[("_at", t1)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let versions: Vec<&str> = at["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1"], "at t1 only version 1 was current");
}

async fn total(s: &TestServer, q: &str) -> i64 {
    json(s.get(&format!("Patient?{q}")).await).await["total"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn search_by_id_identifier_and_last_updated() {
    let s = start().await;
    let a = s.create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:a", "value": "1"}, {"value": "x,y"}]})).await;
    s.create(
        &json!({"resourceType": "Patient", "identifier": [{"system": "urn:b", "value": "1"}]}),
    )
    .await;
    assert_eq!(total(&s, "identifier=1").await, 2);
    assert_eq!(total(&s, "identifier=urn:a|1").await, 1);
    assert_eq!(total(&s, "identifier=urn:a|").await, 1);
    assert_eq!(total(&s, "identifier=%7C1").await, 0, "|1 means no system");
    assert_eq!(total(&s, "identifier=x%5C,y").await, 1, "escaped comma");
    assert_eq!(total(&s, "identifier=urn:a|1,urn:b|1").await, 2);
    assert_eq!(total(&s, "identifier=urn:a|1&identifier=urn:b|1").await, 0);
    let id = a["id"].as_str().unwrap();
    assert_eq!(
        json(s.get(&format!("Patient?_id={id}")).await).await["entry"][0]["resource"]["id"],
        id
    );
    assert_eq!(total(&s, "_lastUpdated=gt2000-01-01").await, 2);
    assert_eq!(total(&s, "_lastUpdated=lt2000-01-01").await, 0);
    assert_eq!(
        total(&s, "nonsense=x").await,
        2,
        "unknown parameters are ignored by default"
    );
    let strict = s
        .http
        .get(s.url("Patient?nonsense=x"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    outcome(strict, 400).await;
    outcome(s.get("Patient?_lastUpdated=gtsoon").await, 400).await;
    let bundle = json(s.get("Patient?nonsense=x&identifier=1").await).await;
    let self_link = bundle["link"][0]["url"].as_str().unwrap();
    assert!(
        !self_link.contains("nonsense="),
        "ignored parameters are left out of the self link: {self_link}"
    );

    let post = s
        .http
        .post(s.url("Patient/_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("identifier=urn%3Aa%7C1")
        .send()
        .await
        .unwrap();
    assert_eq!(json(post).await["total"], 1);
}

#[tokio::test]
async fn search_pages_stay_stable_while_others_write() {
    let s = start().await;
    for i in 0..5 {
        s.put(
            &format!("Basic/b{i}"),
            &json!({"resourceType": "Basic", "id": format!("b{i}"), "code": {"text": "x"}}),
        )
        .await;
    }
    let first = json(s.get("Basic?_count=2").await).await;
    let ids = |b: &Value| -> Vec<String> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["b0", "b1"]);
    // A write sorting before the cursor must not shift the next page.
    s.put(
        "Basic/a0",
        &json!({"resourceType": "Basic", "id": "a0", "code": {"text": "x"}}),
    )
    .await;
    let next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap();
    let second = json(
        s.http
            .get(next["url"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ids(&second), ["b2", "b3"]);
}

async fn history(s: &TestServer, id: String) -> usize {
    json(s.get(&format!("Patient/{id}/_history")).await).await["entry"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn purge_history_keeps_only_the_current_version() {
    let s = start().await;
    let mut p = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;
    let id = p["id"].as_str().unwrap().to_owned();
    for active in [false, true] {
        p["active"] = json!(active);
        assert_eq!(s.put(&format!("Patient/{id}"), &p).await.status(), 200);
    }
    assert_eq!(history(&s, id.clone()).await, 3);
    let purge = |id: String| {
        s.http
            .delete(s.url(&format!("Patient/{id}/$purge-history")))
            .send()
    };
    assert_eq!(purge(id.clone()).await.unwrap().status(), 204);
    assert_eq!(history(&s, id.clone()).await, 1);
    assert_eq!(
        s.get(&format!("Patient/{id}/_history/1")).await.status(),
        404
    );
    let current = json(s.get(&format!("Patient/{id}")).await).await;
    assert_eq!(current["meta"]["versionId"], "3");
    // A deleted resource keeps its deletion marker: it still reads as gone.
    assert_eq!(s.delete(&format!("Patient/{id}")).await.status(), 204);
    assert_eq!(purge(id.clone()).await.unwrap().status(), 204);
    assert_eq!(s.get(&format!("Patient/{id}")).await.status(), 410);
    assert_eq!(history(&s, id.clone()).await, 1);
    outcome(purge("never-was".into()).await.unwrap(), 404).await;
}

/// `(id, versionId)` of every match of `q`, following `next` links, in the order returned.
async fn matches_with_versions(s: &TestServer, q: &str) -> Vec<(String, String)> {
    follow_all(s, q)
        .await
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            let r = &e["resource"];
            (
                r["id"].as_str().unwrap().to_owned(),
                r["meta"]["versionId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Pages read from index rows (a token's entries, one filter's rows, a chain's references)
/// never visit `resources`; they take each id's newest version as its current one. Updated,
/// deleted and re-created resources show that the newest version is the right one, and that
/// old versions' values match nothing.
#[tokio::test]
async fn searches_return_current_versions_whatever_drives_them() {
    let s = start().await;
    // Stored under its own type and id.
    let put = |body: Value| {
        let s = &s;
        async move {
            let path = format!(
                "{}/{}",
                body["resourceType"].as_str().unwrap(),
                body["id"].as_str().unwrap()
            );
            let r = s.put(&path, &body).await;
            assert!(r.status().is_success(), "PUT {path}: {}", r.status());
        }
    };
    let patient = |id: &str, family: &str, given: &str, birth: &str| {
        json!({"resourceType": "Patient", "id": id, "gender": "female",
               "name": [{"family": family, "given": [given]}], "birthDate": birth})
    };
    // p1: three versions, all named Alpha; p2: Alpha, then Beta; p3: deleted;
    // p4: deleted and created again (version 3); p5: one version.
    for (given, birth) in [
        ("Ann", "1990-01-01"),
        ("Bea", "1991-01-01"),
        ("Cat", "1992-01-01"),
    ] {
        put(patient("p1", "Alpha", given, birth)).await;
    }
    put(patient("p2", "Alpha", "Dee", "1980-01-01")).await;
    put(patient("p2", "Beta", "Dee", "1980-01-01")).await;
    put(patient("p3", "Alpha", "Eve", "1970-01-01")).await;
    assert_eq!(s.delete("Patient/p3").await.status(), 204);
    put(patient("p4", "Alpha", "Fay", "2000-01-01")).await;
    assert_eq!(s.delete("Patient/p4").await.status(), 204);
    put(patient("p4", "Alpha", "Gil", "2001-01-01")).await;
    put(patient("p5", "Alpha", "Hal", "1995-01-01")).await;
    let observation = |id: &str, subject: &str, status: &str| {
        json!({"resourceType": "Observation", "id": id, "status": status,
               "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
               "subject": {"reference": format!("Patient/{subject}")}})
    };
    for (id, subject) in [
        ("o1", "p1"),
        ("o2", "p2"),
        ("o3", "p3"),
        ("o4", "p4"),
        ("o5", "p5"),
    ] {
        put(observation(id, subject, "preliminary")).await;
        put(observation(id, subject, "final")).await;
    }
    // o5's newest version no longer has the code; o2's is amended.
    put(
        json!({"resourceType": "Observation", "id": "o5", "status": "final",
               "code": {"text": "none"}, "subject": {"reference": "Patient/p5"}}),
    )
    .await;
    put(observation("o2", "p2", "amended")).await;
    // e1: two versions; e2: deleted.
    let encounter = |id: &str, status: &str| json!({"resourceType": "Encounter", "id": id, "status": status, "class": {"code": "AMB"}});
    put(encounter("e1", "planned")).await;
    put(encounter("e1", "finished")).await;
    put(encounter("e2", "planned")).await;
    assert_eq!(s.delete("Encounter/e2").await.status(), 204);

    let p_alpha: &[(&str, &str)] = &[("p1", "3"), ("p4", "3"), ("p5", "1")];
    let cases: &[(&str, &[(&str, &str)])] = &[
        // One filter, from its string rows, in id order; a page of one at a time.
        ("Patient?name=alpha", p_alpha),
        ("Patient?name=alpha&_count=1", p_alpha),
        // Sorted by another parameter: every match's key, over pages of two and of one.
        (
            "Patient?family=Alpha&_sort=-birthdate&_count=2",
            &[("p4", "3"), ("p5", "1"), ("p1", "3")],
        ),
        ("Patient?family=Alpha&_sort=given&_count=1", p_alpha),
        // An exact token alone (o3 keeps its code though its subject is deleted), and beside
        // another filter (first tried on capped entries).
        (
            "Observation?code=http://loinc.org|8867-4",
            &[("o1", "2"), ("o2", "3"), ("o3", "2"), ("o4", "2")],
        ),
        (
            "Observation?code=http://loinc.org|8867-4&status=final&_count=1",
            &[("o1", "2"), ("o3", "2"), ("o4", "2")],
        ),
        // A chain alone (ordered by target, then id), and among other filters.
        (
            "Observation?subject:Patient.name=alpha&_count=1",
            &[("o1", "2"), ("o4", "2"), ("o5", "3")],
        ),
        (
            "Observation?subject:Patient.name=alpha&code=http://loinc.org|8867-4",
            &[("o1", "2"), ("o4", "2")],
        ),
        (
            "Observation?subject:Patient.name=alpha&status=final&_count=1",
            &[("o1", "2"), ("o4", "2"), ("o5", "3")],
        ),
        // `_has` reads other resources' reference targets, and a compartment lists its own
        // resource (Encounter/x/Encounter): a deleted one is left out of both.
        (
            "Patient?_has:Observation:subject:status=final&_count=1",
            p_alpha,
        ),
        ("Encounter/e1/Encounter", &[("e1", "2")]),
        ("Encounter/e2/Encounter", &[]),
    ];
    let owned = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    for (query, want) in cases {
        assert_eq!(
            matches_with_versions(&s, query).await,
            owned(want),
            "{query}"
        );
    }

    // Includes: a deleted target is left out, the others come in their current versions.
    let included = |b: &Value| -> Vec<(String, String)> {
        let mut v: Vec<_> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "include")
            .map(|e| {
                let r = &e["resource"];
                let id = format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                );
                (id, r["meta"]["versionId"].as_str().unwrap().to_owned())
            })
            .collect();
        v.sort();
        v
    };
    let b = json(
        s.get("Observation?_id=o1,o3,o4&_include=Observation:subject")
            .await,
    )
    .await;
    assert_eq!(
        included(&b),
        owned(&[("Patient/p1", "3"), ("Patient/p4", "3")])
    );
    let b = json(
        s.get("Patient?_id=p1,p2&_revinclude=Observation:subject")
            .await,
    )
    .await;
    assert_eq!(
        included(&b),
        owned(&[("Observation/o1", "2"), ("Observation/o2", "3")])
    );
    // The bodies are the current versions' own.
    let page = json(s.get("Patient?name=alpha&_sort=-birthdate").await).await;
    let first = &page["entry"][0]["resource"];
    assert_eq!(first["name"][0]["given"][0], "Gil");
    assert_eq!(first, &json(s.get("Patient/p4").await).await);
}
