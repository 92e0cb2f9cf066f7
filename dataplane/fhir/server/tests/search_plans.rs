//! Which searches keep a prepared statement on their connection, and so are planned once
//! rather than per request: those whose plan follows from their SQL alone (one token code, one
//! reference target, a name prefix of three characters or more, a chain to one value, a
//! compartment, the includes of a page). Searches whose values choose their plan (a shorter
//! name prefix, a date window) are planned for each request.

mod common;

use common::*;
use hds_fhir_search::{Filter, ReferenceValue, Scope, includes, parse_with, r4, search};
use hds_fhir_store::{Connection, Store};
use serde_json::json;
use tokio_postgres::SimpleQueryMessage;

/// The statements prepared on `conn` whose text contains `needle`: (custom plans, generic
/// plans) of each. Asked with the simple protocol, so that asking prepares nothing.
async fn prepared(conn: &Connection, needle: &str) -> Vec<(i64, i64)> {
    let sql = format!(
        "SELECT custom_plans, generic_plans FROM pg_prepared_statements
          WHERE statement LIKE '%{needle}%' AND statement NOT LIKE '%pg_prepared_statements%'"
    );
    conn.simple_query(&sql)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).unwrap().parse().unwrap(),
                r.get(1).unwrap().parse().unwrap(),
            )),
            _ => None,
        })
        .collect()
}

async fn page(conn: &Connection, rt: &str, query: &[(&str, &str)]) -> Vec<String> {
    let params: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let q = parse_with(r4(), rt, &params).unwrap();
    let found = search(conn, Scope::Type(rt), &q, 20, None).await.unwrap();
    let included = includes(conn, &found.matches, q.includes()).await.unwrap();
    found
        .matches
        .iter()
        .chain(&included)
        .map(|v| format!("{}/{}", v.res_type, v.id))
        .collect()
}

#[tokio::test]
async fn searches_whose_plan_follows_from_their_sql_are_planned_once_per_connection() {
    let s = start().await;
    for p in 0..8 {
        let family = if p % 2 == 0 { "Smith" } else { "Smythe" };
        let patient =
            json!({"resourceType": "Patient", "id": format!("p{p}"), "name": [{"family": family}]});
        let observation = json!({"resourceType": "Observation", "id": format!("o{p}"),
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": format!("Patient/p{p}")}});
        for r in [patient, observation] {
            let path = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert_eq!(s.put(&path, &r).await.status(), 201, "{path}");
        }
    }
    let store = Store::open(&s.db_url, 1).await.unwrap();
    let conn = store.connection().await.unwrap();

    for p in 0..8 {
        let subject = format!("Patient/p{p}");
        let got = page(
            &conn,
            "Observation",
            &[("subject", &subject), ("_include", "Observation:subject")],
        )
        .await;
        assert_eq!(got, [format!("Observation/o{p}"), subject]);
    }
    // The page and the include: one statement each. The page is planned for its values five
    // times, then on the generic plan; the include is on its generic plan from the first
    // (forced: on a large database PostgreSQL kept planning it anew every time).
    assert_eq!(prepared(&conn, "a1.target_id").await, [(5, 3)]);
    assert_eq!(prepared(&conn, "f.target_id IS NOT NULL").await, [(0, 8)]);
    // The setting is back to the session's own after each.
    let mode = conn.simple_query("SHOW plan_cache_mode").await.unwrap();
    assert!(
        matches!(&mode[..], [SimpleQueryMessage::RowDescription(_), SimpleQueryMessage::Row(r), ..]
            if r.get(0) == Some("auto")),
        "plan_cache_mode was left changed"
    );

    for _ in 0..3 {
        let got = page(&conn, "Observation", &[("code", "http://loinc.org|8867-4")]).await;
        assert_eq!(got.len(), 8);
    }
    assert_eq!(prepared(&conn, "search_token").await, [(3, 0)]);

    // A name prefix of three characters or more names one key of the string index, read in id
    // order: kept (one statement for three characters, one for more). A shorter one is a range
    // of keys, planned by value (a one-letter prefix is best walked in id order).
    for prefix in ["Smi", "Smy", "Sm", "S", "Smit", "Smyt", "Smythe"] {
        let got = page(&conn, "Patient", &[("name", prefix)]).await;
        let want = match prefix {
            "Sm" | "S" => 8,
            _ => 4,
        };
        assert_eq!(got.len(), want, "{prefix}");
    }
    let mut kept = prepared(&conn, "search_string").await;
    kept.sort();
    assert_eq!(kept, [(2, 0), (3, 0)]);
    // A chain to a name is kept: its page walks the matching patients in id order (one
    // statement for a three-character name, one for longer).
    for family in ["Smith", "Smythe", "Smi"] {
        let got = page(&conn, "Observation", &[("subject:Patient.name", family)]).await;
        assert_eq!(got.len(), 4, "{family}");
    }
    let mut kept = prepared(&conn, "e.target_id < t.id").await;
    kept.sort();
    assert_eq!(kept, [(1, 0), (2, 0)]);
    // And a compartment (`Patient/p/Observation`): its parameters' rows, read in id order.
    for p in [1, 2, 3] {
        let target = |param: &str| Filter::Reference {
            param: param.into(),
            values: vec![ReferenceValue {
                target_type: Some("Patient".into()),
                id: Some(format!("p{p}")),
                url: None,
                version: None,
            }],
        };
        let mut q = parse_with(r4(), "Observation", &[]).unwrap();
        q.clauses
            .push(Filter::Or(vec![target("subject"), target("performer")]));
        let found = search(&conn, Scope::Type("Observation"), &q, 20, None)
            .await
            .unwrap();
        let ids: Vec<&str> = found.matches.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, [format!("o{p}")]);
    }
    assert_eq!(prepared(&conn, "UNION ALL").await, [(3, 0)]);
    // A compartment that holds its own resource (`{def}`, as Practitioner's does): by id.
    let mut q = parse_with(r4(), "Patient", &[]).unwrap();
    q.clauses.push(Filter::Or(vec![
        Filter::Id(vec!["p5".into(), "gone".into()]),
        Filter::Reference {
            param: "link".into(),
            values: vec![ReferenceValue {
                target_type: Some("Patient".into()),
                id: Some("p5".into()),
                url: None,
                version: None,
            }],
        },
    ]));
    let found = search(&conn, Scope::Type("Patient"), &q, 20, None)
        .await
        .unwrap();
    let ids: Vec<&str> = found.matches.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["p5"]);

    // A code beside another filter chooses its plan by value: nothing kept for it.
    let got = page(
        &conn,
        "Observation",
        &[("code", "8867-4"), ("subject", "Patient/p3")],
    )
    .await;
    assert_eq!(got, ["Observation/o3"]);
    assert_eq!(prepared(&conn, "search_token").await, [(3, 0)]);
    // Nor is a date window (a wide one is best walked in id order).
    for window in ["ge2020-01-01", "ge1900", "ge2100"] {
        let got = page(&conn, "Observation", &[("date", window)]).await;
        assert!(got.is_empty(), "{window}");
    }
    assert!(prepared(&conn, "search_date").await.is_empty());
}
