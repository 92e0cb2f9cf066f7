//! QIDO-RS edge cases against the real PostgreSQL: padded and malformed match values, the
//! reserved parameters' spelling, and what the answers carry.

mod common;

use common::*;
use serde_json::{Value, json};

const CT: &str = "CT_small.dcm";

/// CT_small with its PatientID `1CT1` stored as `PN1` and a NUL pad, as real files have it.
fn nul_padded_patient_id() -> Vec<u8> {
    let mut ct = file(CT);
    let element = b"\x10\x00\x20\x00LO\x04\x001CT1";
    let at = ct
        .windows(element.len())
        .position(|w| w == element)
        .unwrap();
    ct[at + 8..at + 12].copy_from_slice(b"PN1\0");
    ct
}

/// Status and body text of a GET.
async fn text(s: &TestServer, path: &str) -> (u16, String) {
    let r = get(s, path, "application/dicom+json").await;
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn nul_padding_is_ignored_and_a_nul_inside_a_value_is_refused() {
    let s = start().await;
    // An extended query tag as well, so its match path is checked too.
    let r = s
        .http
        .post(s.url("extendedquerytags"))
        .json(&json!([{"path": "ProtocolName", "level": "Series"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let href = r.json::<Value>().await.unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    completed(&s, &href).await;
    let (status, answer) = stow(
        &s,
        "studies",
        &[("application/dicom", &nul_padded_patient_id())],
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    for q in [
        "studies?PatientID=PN1",
        "studies?PatientID=PN1%00",
        "instances?PatientID=PN1%00%00%20",
        "series?PatientID=PN*%00",
        "studies?PatientName=CompressedSamples%5ECT1%00",
        "studies?PatientName=ct1%00&fuzzymatching=true",
        "studies?AccessionNumber=%00",
        "studies?ModalitiesInStudy=CT%00",
        "series?Modality=CT%00",
        "studies?PatientID=PN1&ProtocolName=%00",
    ] {
        let (st, v) = json(&s, q).await;
        assert_eq!(st, 200, "{q}: {v}");
        assert_eq!(v.as_array().unwrap().len(), 1, "{q}");
    }
    let (st, _) = json(&s, "studies?StudyDescription=nothing%00").await;
    assert_eq!(st, 204, "a padded value that matches nothing");

    for q in [
        "studies?PatientID=PN%001",
        "studies?PatientID=P*%00x",
        "studies?PatientName=Doe%00x",
        "studies?PatientName=Do%00e&fuzzymatching=true",
        "studies?AccessionNumber=%00a",
        "studies?StudyDescription=a%00b",
        "studies?ReferringPhysicianName=%00a",
        "studies?ModalitiesInStudy=%00CT",
        "series?Modality=C%00T",
        "series?ManufacturerModelName=a%00b",
        "series?ProtocolName=a%00b",
    ] {
        let (st, body) = text(&s, q).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body.contains("NUL"), "{q}: {body}");
    }
    // A path UID that is no UID is a 400 (Azure's), for QIDO, WADO, DELETE and STOW alike.
    for q in [
        "studies/not-a-uid/instances",
        "studies/1.2/series/x/instances",
        "studies/abc/metadata",
        "studies/1.2/series/1.3/instances/1.2.abc",
        "v2/studies/1.2/series/1.3/instances/1.4x/metadata",
    ] {
        let (st, body) = text(&s, q).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body.contains("not a UID"), "{q}: {body}");
    }
    let long = "1".repeat(65);
    let r = s
        .http
        .delete(s.url(&format!("studies/{long}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (st, answer) = stow(
        &s,
        "studies/abc",
        &[("application/dicom", &nul_padded_patient_id())],
    )
    .await;
    assert_eq!(st, 400, "{answer}");
    // A NUL in any path, QIDO's or WADO's.
    for q in [
        "studies/1.2%00/series",
        "studies/1.2/series/1.2%003/instances",
        "studies/1.2%00",
        "studies/1.2/series/1.3%00/metadata",
        "v2/studies/1.2/series/1.3/instances/1.4%00/frames/1",
    ] {
        let (st, body) = text(&s, q).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body.contains("NUL"), "{q}: {body}");
    }
}

#[tokio::test]
async fn reserved_parameters_are_spelt_in_any_case() {
    let s = start().await;
    let (status, answer) = stow(&s, "studies", &[("application/dicom", &file(CT))]).await;
    assert_eq!(status, 200, "{answer}");
    for q in [
        "studies?PatientName=ct1&fuzzyMatching=true",
        "studies?PatientName=ct1&FuzzyMatching=TRUE",
        "studies?PatientID=1CT1&Limit=1&Offset=0",
    ] {
        let (st, v) = json(&s, q).await;
        assert_eq!(st, 200, "{q}: {v}");
        assert_eq!(v.as_array().unwrap().len(), 1, "{q}");
    }
    let (_, v) = json(&s, "instances?PatientID=1CT1&includeField=PatientAge").await;
    assert_eq!(v[0]["00101010"]["Value"][0], "000Y", "{v}");
    let (st, _) = json(&s, "studies?PatientName=ct1&fuzzymatching=False").await;
    assert_eq!(st, 204, "fuzzy matching off: ct1 is not the whole name");
    let (st, body) = text(&s, "studies?patientid=1CT1").await;
    assert_eq!(st, 400, "keywords are exact: {body}");
}

/// The Study, Series and SOP Instance UIDs of the one instance `path` finds.
async fn uids_of(s: &TestServer, path: &str) -> (String, String, String) {
    let (st, v) = json(s, path).await;
    assert_eq!(st, 200, "{path}: {v}");
    let u = |t: &str| v[0][t]["Value"][0].as_str().unwrap().to_owned();
    (u("0020000D"), u("0020000E"), u("00080018"))
}

#[tokio::test]
async fn higher_levels_computed_attributes_come_with_series_and_instances() {
    let s = start().await;
    let parts = [
        ("application/dicom", file(CT)),
        ("application/dicom", file("MR_small.dcm")),
    ];
    let parts: Vec<(&str, &[u8])> = parts.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    let (status, answer) = stow(&s, "studies", &parts).await;
    assert_eq!(status, 200, "{answer}");
    let (study, series, sop) = uids_of(&s, "instances?PatientID=1CT1").await;
    let has = |v: &Value, tag: &str| v[0].get(tag).is_some();
    let study_counts = |v: &Value| {
        assert_eq!(v[0]["00080061"]["Value"], json!(["CT"]), "{v}");
        assert_eq!(v[0]["00201206"]["Value"], json!([1]), "{v}");
        assert_eq!(v[0]["00201208"]["Value"], json!([1]), "{v}");
    };

    // All Series and All Instances: the study's computed attributes (PS3.18 10.6.3.3.2-3).
    let (_, v) = json(&s, &format!("series?SeriesInstanceUID={series}")).await;
    study_counts(&v);
    assert_eq!(v[0]["00201209"]["Value"], json!([1]));
    let (_, v) = json(&s, &format!("instances?SOPInstanceUID={sop}")).await;
    study_counts(&v);
    assert_eq!(v[0]["00201209"]["Value"], json!([1]), "{v}");
    // ModalitiesInStudy takes wildcards, as CS values do, and lists.
    for (q, studies) in [
        ("studies?ModalitiesInStudy=C*", 1),
        ("studies?ModalitiesInStudy=?R", 1),
        ("studies?ModalitiesInStudy=US,C?", 1),
        ("studies?ModalitiesInStudy=*", 2),
        ("studies?ModalitiesInStudy=X*", 0),
        ("studies?ModalitiesInStudy=C_", 0),
    ] {
        let (_, v) = json(&s, q).await;
        let found = v.as_array().map_or(0, Vec::len);
        assert_eq!(found, studies, "{q}: {v}");
    }
    let (_, v) = json(&s, "series?ModalitiesInStudy=CT").await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    study_counts(&v);

    // Study's Instances: the series' count, not the study's.
    let (_, v) = json(&s, &format!("studies/{study}/instances")).await;
    assert_eq!(v[0]["00201209"]["Value"], json!([1]), "{v}");
    assert!(!has(&v, "00201208") && !has(&v, "00080061"), "{v}");
    // Study Series' Instances: neither, unless includefield asks.
    let path = format!("studies/{study}/series/{series}/instances");
    let (_, v) = json(&s, &path).await;
    assert!(!has(&v, "00201209") && !has(&v, "00201206"), "{v}");
    let (_, v) = json(
        &s,
        &format!("{path}?includefield=NumberOfSeriesRelatedInstances,ModalitiesInStudy"),
    )
    .await;
    assert_eq!(v[0]["00201209"]["Value"], json!([1]), "{v}");
    study_counts(&v);
    let (_, v) = json(&s, &format!("studies/{study}/series?includefield=00201208")).await;
    study_counts(&v);

    // Stored attributes of the levels the path names come when includefield asks for them.
    let (_, v) = json(&s, &format!("studies/{study}/series")).await;
    assert!(!has(&v, "00100010"), "{v}");
    let (_, v) = json(
        &s,
        &format!("studies/{study}/series?includefield=PatientName"),
    )
    .await;
    assert!(
        v[0]["00100010"]["Value"][0]["Alphabetic"].is_string(),
        "{v}"
    );
    let (_, v) = json(&s, &format!("{path}?includefield=PatientID,Modality")).await;
    assert_eq!(v[0]["00100020"]["Value"][0], "1CT1", "{v}");
    assert_eq!(v[0]["00080060"]["Value"][0], "CT", "{v}");
}

#[tokio::test]
async fn includefield_links_binary_values_and_brings_private_creators() {
    let mut cfg = common::config();
    cfg.enable_data_partitions = true;
    let s = start_with(cfg).await;
    let (status, answer) = stow(
        &s,
        "partitions/p1/studies",
        &[("application/dicom", &file(CT))],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (study, series, sop) = uids_of(&s, "partitions/p1/instances?PatientID=1CT1").await;
    let path = format!(
        "v2/partitions/p1/studies/{study}/series/{series}/instances?includefield=PixelData,00431028,00091001,00191002"
    );
    let (st, v) = json(&s, &path).await;
    assert_eq!(st, 200, "{v}");
    let instance = format!(
        "{}/partitions/p1/studies/{study}/series/{series}/instances/{sop}",
        s.base
    );
    // Large (PixelData) and small (an OB stored inline) alike: an absolute link that resolves.
    for tag in ["7FE00010", "00431028"] {
        let uri = v[0][tag]["BulkDataURI"].as_str().unwrap_or_default();
        assert_eq!(uri, format!("{instance}/bulkdata/{tag}"), "{v}");
        assert!(v[0][tag].get("InlineBinary").is_none());
        let r = s.http.get(uri).send().await.unwrap();
        assert_eq!(r.status(), 200, "{uri}");
    }
    // Each private element with the creator reserving its block.
    assert_eq!(v[0]["00091001"]["Value"][0], "GE_GENESIS_FF", "{v}");
    assert_eq!(v[0]["00090010"]["Value"][0], "GEMS_IDEN_01", "{v}");
    assert_eq!(v[0]["00190010"]["Value"][0], "GEMS_ACQU_01", "{v}");
    assert!(v[0]["00430010"]["Value"][0].is_string(), "{v}");
    assert!(
        v[0].get("00110010").is_none(),
        "only the creators asked for"
    );

    let (_, v) = json(&s, "partitions/p1/instances?includefield=all").await;
    assert!(
        v[0].get("7FE00010").is_none() && v[0].get("00431028").is_none(),
        "{v}"
    );
    assert_eq!(v[0]["00090010"]["Value"][0], "GEMS_IDEN_01");
}
