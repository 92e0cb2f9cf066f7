//! `_include` and `_revinclude` on pages: what a page brings is found from its shown matches
//! only (the page's statement reads one row more, to know whether a next page exists), in
//! either paging direction, and `:iterate` goes on from that page's includes alone.

mod common;

use common::*;
use serde_json::{Value, json};

fn obs(id: &str, subject: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({"reference": format!("Observation/{m}")}))
        .collect();
    let mut o = json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
    });
    if !members.is_empty() {
        o["hasMember"] = Value::Array(members);
    }
    o
}

/// p1 (managed by o1), p2, p3 and p4 (deleted); Observations a–f, f grouping a.
async fn seed(s: &TestServer) {
    s.put(
        "Organization/o1",
        &json!({"resourceType": "Organization", "id": "o1", "name": "One"}),
    )
    .await;
    s.put(
        "Patient/p1",
        &json!({"resourceType": "Patient", "id": "p1",
                "managingOrganization": {"reference": "Organization/o1"}}),
    )
    .await;
    for p in ["p2", "p3", "p4"] {
        s.put(
            &format!("Patient/{p}"),
            &json!({"resourceType": "Patient", "id": p}),
        )
        .await;
    }
    for (id, subject, members) in [
        ("a", "Patient/p1", &[][..]),
        ("b", "Patient/p2", &[]),
        ("c", "Patient/p3", &[]),
        ("d", "Patient/p4", &[]),
        ("e", "Patient/p1", &[]),
        ("f", "Patient/p2", &["a"]),
    ] {
        let r = s
            .put(&format!("Observation/{id}"), &obs(id, subject, members))
            .await;
        assert!(r.status().is_success(), "{}", r.status());
    }
    assert_eq!(s.delete("Patient/p4").await.status(), 204);
}

fn link(b: &Value, rel: &str) -> Option<String> {
    b["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == rel)
        .and_then(|l| l["url"].as_str().map(str::to_owned))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The answer to `GET [base]/{query}`, as JSON.
async fn bundle(s: &TestServer, query: &str) -> Value {
    json(s.get(query).await).await
}

async fn page(s: &TestServer, url: &str) -> Value {
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    json(r).await
}

#[tokio::test]
async fn includes_come_from_the_shown_matches_forwards_and_back() {
    let s = start().await;
    seed(&s).await;
    // a, b | c, d | e, f: each page's subjects, not the next page's first (read to know
    // there is one); p4 is deleted, so d includes nothing.
    let want = [
        (
            vec!["Observation/a", "Observation/b"],
            vec!["Patient/p1", "Patient/p2"],
        ),
        (vec!["Observation/c", "Observation/d"], vec!["Patient/p3"]),
        (
            vec!["Observation/e", "Observation/f"],
            vec!["Patient/p1", "Patient/p2"],
        ),
    ];
    let mut url = s.url("Observation?_include=Observation:subject&_count=2");
    let mut pages = Vec::new();
    for (matches, included) in &want {
        let b = page(&s, &url).await;
        assert_eq!(&ids_with_mode(&b, "match"), matches);
        assert_eq!(
            sorted(ids_with_mode(&b, "include")),
            *included,
            "{matches:?}"
        );
        pages.push(b.clone());
        match link(&b, "next") {
            Some(next) => url = next,
            None => assert_eq!(matches, &want[2].0),
        }
    }
    // Back from the last page: the same pages, the same includes.
    let mut url = link(&pages[2], "previous").expect("a previous link");
    for (matches, included) in want[..2].iter().rev() {
        let b = page(&s, &url).await;
        assert_eq!(&ids_with_mode(&b, "match"), matches);
        assert_eq!(
            sorted(ids_with_mode(&b, "include")),
            *included,
            "{matches:?}"
        );
        url = link(&b, "previous").unwrap_or_default();
    }
}

#[tokio::test]
async fn a_match_is_not_included_on_its_own_page_but_is_on_another() {
    let s = start().await;
    seed(&s).await;
    // f has a as a member. Together on one page, a is a match only.
    let b = bundle(&s, "Observation?_id=a,f&_include=Observation:has-member").await;
    assert_eq!(
        ids_with_mode(&b, "match"),
        ["Observation/a", "Observation/f"]
    );
    assert!(ids_with_mode(&b, "include").is_empty(), "{b}");
    // One per page: the first (a) includes nothing, though f (read beyond it) points at a; the
    // second (f) includes a.
    let first = bundle(
        &s,
        "Observation?_id=a,f&_include=Observation:has-member&_count=1",
    )
    .await;
    assert_eq!(ids_with_mode(&first, "match"), ["Observation/a"]);
    assert!(ids_with_mode(&first, "include").is_empty(), "{first}");
    let second = page(&s, &link(&first, "next").unwrap()).await;
    assert_eq!(ids_with_mode(&second, "match"), ["Observation/f"]);
    assert_eq!(ids_with_mode(&second, "include"), ["Observation/a"]);
}

#[tokio::test]
async fn reverse_iterating_and_narrowed_includes_follow_the_page() {
    let s = start().await;
    seed(&s).await;
    // Reverse: p1's Observations, not p2's (p2 is the row read beyond the page).
    let b = bundle(
        &s,
        "Patient?_id=p1,p2&_revinclude=Observation:subject&_count=1",
    )
    .await;
    assert_eq!(ids_with_mode(&b, "match"), ["Patient/p1"]);
    assert_eq!(
        sorted(ids_with_mode(&b, "include")),
        ["Observation/a", "Observation/e"]
    );
    // Both patients on one page: each Observation once, though two parameters could reach it.
    let b = bundle(&s, "Patient?_id=p1,p2&_revinclude=Observation:*").await;
    assert_eq!(
        sorted(ids_with_mode(&b, "include")),
        [
            "Observation/a",
            "Observation/b",
            "Observation/e",
            "Observation/f"
        ]
    );
    // :iterate goes on from this page's includes only: b's subject p2 has no organization;
    // e (beyond the page) would have brought p1 and then o1.
    let b = bundle(&s, "Observation?_id=b,e&_include=Observation:subject&_include:iterate=Patient:organization&_count=1").await;
    assert_eq!(ids_with_mode(&b, "match"), ["Observation/b"]);
    assert_eq!(ids_with_mode(&b, "include"), ["Patient/p2"]);
    let b = bundle(
        &s,
        "Observation?_id=e&_include=Observation:subject&_include:iterate=Patient:organization",
    )
    .await;
    assert_eq!(
        sorted(ids_with_mode(&b, "include")),
        ["Organization/o1", "Patient/p1"]
    );
    // A target type narrows: no subject is a Group.
    let b = bundle(&s, "Observation?_id=a,b&_include=Observation:subject:Group").await;
    assert_eq!(ids_with_mode(&b, "match").len(), 2);
    assert!(ids_with_mode(&b, "include").is_empty(), "{b}");
    // Includes of another type's parameter add nothing to these matches.
    let b = bundle(&s, "Observation?_id=a&_include=Patient:organization").await;
    assert!(ids_with_mode(&b, "include").is_empty(), "{b}");
    // A sorted page with includes: the sort keys and the includes together.
    let b = bundle(
        &s,
        "Observation?_include=Observation:subject&_sort=-_id&_count=2",
    )
    .await;
    assert_eq!(
        ids_with_mode(&b, "match"),
        ["Observation/f", "Observation/e"]
    );
    assert_eq!(
        sorted(ids_with_mode(&b, "include")),
        ["Patient/p1", "Patient/p2"]
    );
}
