//! Extended query tags against the real PostgreSQL, as Azure shapes them: added, reindexed and
//! matched; refused in QIDO until ready or while their querying is disabled; the instances a
//! reindex could not index listed per tag; QueryStatus turned off and on.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const CT: &str = "CT_small.dcm";

/// A JSON body to `path`, as the extended query tag API takes it.
async fn send(s: &TestServer, method: Method, path: &str, body: String) -> reqwest::Response {
    s.http
        .request(method, s.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn add(s: &TestServer, body: Value) -> reqwest::Response {
    send(s, Method::POST, "extendedquerytags", body.to_string()).await
}

async fn patch(s: &TestServer, tag: &str, body: &str) -> reqwest::Response {
    let path = format!("extendedquerytags/{tag}");
    send(s, Method::PATCH, &path, body.to_owned()).await
}

async fn tag(s: &TestServer, tag: &str) -> Value {
    let r = s
        .http
        .get(s.url(&format!("extendedquerytags/{tag}")))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

async fn errors(s: &TestServer, query: &str) -> (u16, Value) {
    let r = s
        .http
        .get(s.url(&format!("extendedquerytags/AcquisitionDate/errors{query}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A CT_small variant whose AcquisitionDate (0008,0022) is not a date: real files have such
/// values, and the lenient STOW stores them.
fn bad_date(ct: &[u8], n: usize) -> Vec<u8> {
    let mut out = variant(ct, n);
    let header = b"\x08\x00\x22\x00DA\x08\x00";
    let at = out.windows(header.len()).position(|w| w == header).unwrap() + header.len();
    out[at..at + 8].copy_from_slice(b"1997XX30");
    out
}

fn sop(n: usize) -> String {
    format!("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.{:05}", 20000 + n)
}

#[tokio::test]
async fn extended_query_tags_are_reindexed_then_searchable() {
    let s = start().await;
    let (ct, mr) = (file(CT), file("MR_small.dcm"));
    let (status, _) = stow(
        &s,
        "studies",
        &[("application/dicom", &ct), ("application/dicom", &mr)],
    )
    .await;
    assert_eq!(status, 200);
    let (_, meta) = json(&s, "instances?PatientID=1CT1&includefield=00180050").await;
    let thickness = meta[0]["00180050"]["Value"][0].to_string();

    let r = add(
        &s,
        json!([
            {"path": "PatientSex", "level": "Study"},
            {"path": "00180050", "vr": "DS", "level": "instance"}
        ]),
    )
    .await;
    assert_eq!(r.status(), 202);
    let op: Value = r.json().await.unwrap();
    let done = completed(&s, op["href"].as_str().unwrap()).await;
    assert_eq!(done["percentComplete"], 100);
    let listed: Value = s
        .http
        .get(s.url("extendedquerytags"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "Ready"),
        "{listed}"
    );
    let one: Value = s
        .http
        .get(s.url("extendedquerytags/00100040"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["vr"], "CS");

    let (st, found) = json(&s, "studies?PatientSex=F").await;
    assert_eq!(st, 200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["00100020"]["Value"][0], "4MR1");
    let (_, found) = json(&s, &format!("instances?00180050={thickness}")).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{thickness}");
    assert_eq!(found[0]["00100020"]["Value"][0], "1CT1");
    assert!(
        get(&s, "studies?SliceThickness=1", "application/dicom+json")
            .await
            .headers()
            .get("warning")
            .is_some(),
        "an instance-level tag at study level is ignored with a warning"
    );

    // Stored after the tag: indexed at once.
    let (status, _) = stow(
        &s,
        "studies",
        &[("application/dicom", &file("SC_rgb_rle_2frame.dcm"))],
    )
    .await;
    assert_eq!(status, 200);
    let (_, sc) = json(&s, "studies?ModalitiesInStudy=OT").await;
    let sex = sc[0]["00100040"]["Value"][0].as_str().map(str::to_owned);
    if let Some(sex) = sex {
        let (_, found) = json(
            &s,
            &format!("studies?PatientSex={sex}&ModalitiesInStudy=OT"),
        )
        .await;
        assert_eq!(found.as_array().unwrap().len(), 1);
    }

    // Refusals.
    for (body, status) in [
        (json!([{"path": "PatientID", "level": "Study"}]), 400),
        (json!([{"path": "NoSuchKeyword", "level": "Study"}]), 400),
        (
            json!([{"path": "00091001", "vr": "LO", "level": "Series"}]),
            400,
        ),
        (json!([{"path": "StationName", "level": "Everywhere"}]), 400),
        (
            json!([{"path": "StationName", "vr": "DA", "level": "Series"}]),
            400,
        ),
        (json!([{"path": "PatientSex", "level": "Study"}]), 409),
        (json!({"path": "StationName"}), 400),
    ] {
        assert_eq!(add(&s, body.clone()).await.status(), status, "{body}");
    }
    let r = s
        .http
        .delete(s.url("extendedquerytags/PatientSex"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.http
            .delete(s.url("extendedquerytags/PatientSex"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = get(&s, "studies?PatientSex=F", "application/dicom+json").await;
    assert!(
        r.headers().get("warning").is_some(),
        "a deleted tag is not matched"
    );
    assert_eq!(
        s.http
            .get(s.url("operations/not-an-id"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn reindex_errors_are_listed_and_disable_querying_until_enabled() {
    let s = start().await;
    let ct = file(CT);
    let (status, _) = stow(
        &s,
        "studies",
        &[
            ("application/dicom", &bad_date(&ct, 1)),
            ("application/dicom", &variant(&ct, 2)),
            ("application/dicom", &bad_date(&ct, 3)),
        ],
    )
    .await;
    assert_eq!(
        status, 200,
        "a malformed attribute nothing indexes is stored"
    );
    let r = add(
        &s,
        json!([{"path": "AcquisitionDate", "level": "Instance"}]),
    )
    .await;
    assert_eq!(r.status(), 202);
    let op: Value = r.json().await.unwrap();
    completed(&s, op["href"].as_str().unwrap()).await;

    // Two instances could not be indexed: the tag says so, and querying it is off.
    let t = tag(&s, "AcquisitionDate").await;
    assert_eq!(t["status"], "Ready");
    assert_eq!(t["queryStatus"], "Disabled", "{t}");
    assert_eq!(t["errors"]["count"], 2);
    assert!(
        t["errors"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/extendedquerytags/00080022/errors")
    );
    let q = "instances?AcquisitionDate=19970430";
    let r = get(&s, q, "application/dicom+json").await;
    assert_eq!(r.status(), 400);
    let why = r.text().await.unwrap();
    assert!(why.contains("QueryStatus Disabled"), "{why}");

    let (st, list) = errors(&s, "").await;
    assert_eq!(st, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["sopInstanceUid"], sop(1));
    assert_eq!(
        list[0]["studyInstanceUid"],
        "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    );
    assert!(list[0]["seriesInstanceUid"].is_string());
    assert!(list[0]["createdTime"].is_string());
    let message = list[0]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("1997XX30") && message.contains("DA"),
        "{message}"
    );
    // An instance stored now with a value the tag cannot take is stored, without that value,
    // and its answer says so (a warning, 202), as for a malformed standard attribute.
    let (status, answer) = stow(&s, "studies", &[("application/dicom", &bad_date(&ct, 4))]).await;
    assert_eq!(status, 202, "{answer}");
    let item = &answer["00081199"]["Value"][0];
    assert_eq!(item["00081196"]["Value"][0], 1);
    let note = item["00741048"]["Value"][0]["00000902"]["Value"][0]
        .as_str()
        .unwrap();
    assert!(
        note.contains("00080022") && note.contains("not indexed"),
        "{note}"
    );
    assert_eq!(
        errors(&s, "").await.1.as_array().unwrap().len(),
        2,
        "only a reindex keeps errors"
    );

    let (_, page) = errors(&s, "?limit=1&offset=1").await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["sopInstanceUid"], sop(3));
    assert_eq!(errors(&s, "?offset=2").await, (200, json!([])));
    assert_eq!(errors(&s, "?limit=0").await.0, 400);
    assert_eq!(errors(&s, "?limit=201").await.0, 400);
    assert_eq!(errors(&s, "?offset=-1").await.0, 400);
    let unknown = s
        .http
        .get(s.url("extendedquerytags/StationName/errors"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = s
        .http
        .get(s.url("extendedquerytags/NotATag/errors"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Enabled by hand: matched, and the answer names the tag that misses instances.
    let r = patch(&s, "AcquisitionDate", r#"{"queryStatus": "Enabled"}"#).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["queryStatus"], "Enabled");
    assert_eq!(t["path"], "00080022");
    let r = get(&s, q, "application/dicom+json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["erroneous-dicom-attributes"], "AcquisitionDate");
    let found: Value = r.json().await.unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["00080018"]["Value"][0], sop(2));

    // Azure's casing, and off again.
    let r = patch(&s, "00080022", r#"{"QueryStatus": "disabled"}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&s, q, "application/dicom+json").await.status(), 400);
    for body in [
        r#"{"queryStatus": "Maybe"}"#,
        r#"{"vr": "DA"}"#,
        r#"{}"#,
        "not json",
    ] {
        assert_eq!(
            patch(&s, "AcquisitionDate", body).await.status(),
            400,
            "{body}"
        );
    }
    assert_eq!(
        patch(&s, "StationName", r#"{"queryStatus": "Enabled"}"#)
            .await
            .status(),
        404
    );

    // An instance stored again, or deleted, takes its errors with it.
    let r = s
        .http
        .put(s.url("studies"))
        .header("content-type", "application/dicom")
        .body(variant(&ct, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(tag(&s, "AcquisitionDate").await["errors"]["count"], 1);
    let r = s
        .http
        .delete(s.url(&format!(
            "studies/1.3.6.1.4.1.5962.1.2.1.20040119072730.12322/series/1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322/instances/{}",
            sop(3)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let t = tag(&s, "AcquisitionDate").await;
    assert!(t.get("errors").is_none(), "{t}");
    assert_eq!(errors(&s, "").await, (200, json!([])));
}

/// Tags still being added are refused in QIDO with the reason, not ignored.
#[tokio::test]
async fn a_tag_being_added_is_not_matched_yet() {
    let s = start().await;
    let (status, _) = stow(&s, "studies", &[("application/dicom", &file(CT))]).await;
    assert_eq!(status, 200);
    // A transaction older than the tag holds the reindex back, so the tag stays `Adding`.
    let (client, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
    let r = add(&s, json!([{"path": "StationName", "level": "Series"}])).await;
    assert_eq!(r.status(), 202);
    let op: Value = r.json().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(tag(&s, "StationName").await["status"], "Adding");
    let r = get(&s, "series?StationName=CT01_OC0", "application/dicom+json").await;
    assert_eq!(r.status(), 400);
    let why = r.text().await.unwrap();
    assert!(why.contains("not completed"), "{why}");
    client.batch_execute("COMMIT").await.unwrap();
    completed(&s, op["href"].as_str().unwrap()).await;
    let (st, found) = json(&s, "series?StationName=CT01_OC0").await;
    assert_eq!(st, 200);
    assert_eq!(found.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_private_tag_matches_only_in_its_creators_block() {
    let s = start().await;
    let ct = file(CT);
    let (st, _) = stow(&s, "studies", &[("application/dicom", &variant(&ct, 0))]).await;
    assert_eq!(st, 200);
    // CT_small's (0019,1002) is in GEMS_ACQU_01's block, (0009,1027) in GEMS_IDEN_01's.
    let r = add(
        &s,
        json!([
            {"Path": "00191002", "VR": "SL", "PrivateCreator": "NOT_GEMS", "Level": "Instance"},
            {"Path": "00091027", "VR": "SL", "PrivateCreator": "GEMS_IDEN_01", "Level": "Instance"}
        ]),
    )
    .await;
    assert_eq!(r.status(), 202);
    let href = r.json::<Value>().await.unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    completed(&s, &href).await;
    // One instance indexed by the reindex, one by its store.
    let (st, _) = stow(&s, "studies", &[("application/dicom", &variant(&ct, 1))]).await;
    assert_eq!(st, 200);

    let (st, v) = json(&s, "instances?00191002=912").await;
    assert_eq!(st, 204, "no NOT_GEMS block: {v}");
    let (st, v) = json(&s, "instances?00091027=862399669").await;
    assert_eq!(st, 200);
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test]
async fn a_private_creator_is_refused_where_it_means_nothing() {
    let s = start().await;
    for (body, why) in [
        (
            json!([{"Path": "Rows", "Level": "Instance", "PrivateCreator": "x"}]),
            "standard tag",
        ),
        (
            json!([{"Path": "00090010", "VR": "LO", "PrivateCreator": "ACME", "Level": "Instance"}]),
            "Private Creator element",
        ),
        (
            json!([{"Path": "00091027", "VR": "SL", "Level": "Instance"}]),
            "needs its privateCreator",
        ),
    ] {
        let r = add(&s, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(why), "{body}: {text}");
    }
    let r = add(
        &s,
        json!([{"Path": "00090010", "VR": "LO", "Level": "Instance"}]),
    )
    .await;
    assert_eq!(
        r.status(),
        202,
        "a Private Creator element itself may be a tag"
    );
}
