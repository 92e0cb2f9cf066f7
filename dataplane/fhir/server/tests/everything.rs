//! `Patient/[id]/$everything`: the patient's compartment across types, paged, with `_type` and
//! `_since`.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

async fn all_pages(s: &TestServer, first: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut url = s.url(first);
    loop {
        let b: Value = s.http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(b["type"], "searchset", "{b}");
        pages += 1;
        for e in b["entry"].as_array().into_iter().flatten() {
            let r = &e["resource"];
            ids.push(format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            ));
        }
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(l) => url = l["url"].as_str().unwrap().to_owned(),
            None => return (ids, pages),
        }
    }
}

#[tokio::test]
async fn everything_pages_through_the_compartment() {
    let s = start().await;
    let p = s.create(&json!({"resourceType": "Patient"})).await;
    let other = s.create(&json!({"resourceType": "Patient"})).await;
    let pid = p["id"].as_str().unwrap();
    let mut want = BTreeSet::from([format!("Patient/{pid}")]);
    for i in 0..5 {
        let o = s
            .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": format!("o{i}")},
                "subject": {"reference": format!("Patient/{pid}")}}))
            .await;
        want.insert(format!("Observation/{}", o["id"].as_str().unwrap()));
    }
    let c = s
        .create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{pid}")}}))
        .await;
    want.insert(format!("Condition/{}", c["id"].as_str().unwrap()));
    s.create(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "not theirs"},
        "subject": {"reference": format!("Patient/{}", other["id"].as_str().unwrap())}}),
    )
    .await;
    s.create(&json!({"resourceType": "Practitioner"})).await;

    let (ids, pages) = all_pages(&s, &format!("Patient/{pid}/$everything?_count=2")).await;
    assert_eq!(ids.len(), want.len(), "each once: {ids:?}");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(ids[0], format!("Patient/{pid}"), "the Patient first");
    assert!(pages >= 4, "{pages} pages");

    let (ids, _) = all_pages(&s, &format!("Patient/{pid}/$everything?_type=Condition")).await;
    assert_eq!(ids, [format!("Condition/{}", c["id"].as_str().unwrap())]);
    let (ids, _) = all_pages(
        &s,
        &format!("Patient/{pid}/$everything?_since=2999-01-01T00:00:00Z"),
    )
    .await;
    assert!(ids.is_empty());

    outcome(s.get("Patient/nobody/$everything").await, 404).await;
    outcome(
        s.get(&format!("Patient/{pid}/$everything?_type=Practitioner"))
            .await,
        400,
    )
    .await;
    outcome(
        s.get(&format!("Patient/{pid}/$everything?_cursor=zz"))
            .await,
        400,
    )
    .await;
    outcome(s.get("Observation/x/$everything").await, 404).await;
}

#[tokio::test]
async fn care_dates_post_and_count_zero() {
    let s = start().await;
    let p = s.create(&json!({"resourceType": "Patient"})).await;
    let pid = p["id"].as_str().unwrap();
    let observed = |date: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": date},
            "subject": {"reference": format!("Patient/{pid}")}, "effectiveDateTime": date})
    };
    let old = s.create(&observed("2019-06-01")).await;
    let new = s.create(&observed("2024-06-01")).await;
    let c = s
        .create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{pid}")}}))
        .await;
    let id = |r: &Value| {
        format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        )
    };

    // Observations are kept by their clinical date; a Condition, which has none, whole.
    let (ids, _) = all_pages(&s, &format!("Patient/{pid}/$everything?start=2020-01-01")).await;
    assert_eq!(ids, [format!("Patient/{pid}"), id(&c), id(&new)]);
    let (ids, _) = all_pages(&s, &format!("Patient/{pid}/$everything?end=2020-01-01")).await;
    assert_eq!(ids, [format!("Patient/{pid}"), id(&c), id(&old)]);
    let (ids, _) = all_pages(
        &s,
        &format!("Patient/{pid}/$everything?start=2019-01-01&end=2019-12-31&_type=Observation"),
    )
    .await;
    assert_eq!(ids, [id(&old)]);
    outcome(
        s.get(&format!("Patient/{pid}/$everything?start=soon"))
            .await,
        400,
    )
    .await;
    let bad = outcome(
        s.get(&format!("Patient/{pid}/$everything?_since=garbage"))
            .await,
        400,
    )
    .await;
    assert!(bad.to_string().contains("_since 'garbage'"), "{bad}");

    // The POST form, with its parameters in a Parameters resource.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Observation"}, {"name": "start", "valueDate": "2020-01-01"},
        {"name": "_count", "valueInteger": 5}]});
    let r = s.post(&format!("Patient/{pid}/$everything"), &params).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let got: Vec<String> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| id(&e["resource"]))
        .collect();
    assert_eq!(got, [id(&new)]);
    outcome(
        s.post(
            &format!("Patient/{pid}/$everything"),
            &json!({"resourceType": "Patient"}),
        )
        .await,
        400,
    )
    .await;

    // `_count=0`: no entries and no next page.
    let b = json(s.get(&format!("Patient/{pid}/$everything?_count=0")).await).await;
    assert!(b.get("entry").is_none(), "{b}");
    assert!(
        !b["link"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "next"),
        "{b}"
    );
}
