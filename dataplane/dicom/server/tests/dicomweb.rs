//! DICOMweb against the real PostgreSQL and a blob directory: store, search, retrieve, delete
//! and the change feed, with pydicom's test files.

mod common;

use common::*;
use serde_json::Value;

const CT: &str = "CT_small.dcm";
const MR_RLE: &str = "MR_small_RLE.dcm";

fn uid(answer: &Value, i: usize) -> (String, String, String) {
    let url = answer["00081199"]["Value"][i]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = url.split('/').collect();
    let n = parts.len();
    (
        parts[n - 5].to_owned(),
        parts[n - 3].to_owned(),
        parts[n - 1].to_owned(),
    )
}

#[tokio::test]
async fn stored_instances_are_found_and_retrieved_byte_for_byte() {
    let s = start().await;
    let ct = file(CT);
    let mr = file(MR_RLE);
    let (status, answer) = stow(
        &s,
        "studies",
        &[("application/dicom", &ct), ("application/dicom", &mr)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(referenced(&answer), 2);
    let (study, series, sop) = uid(&answer, 0);

    // QIDO: every path level, the match keys and the computed attributes.
    let (st, found) = json(&s, "studies?PatientID=1CT1").await;
    assert_eq!(st, 200);
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["0020000D"]["Value"][0], study.as_str());
    assert_eq!(found[0]["00080061"]["Value"], serde_json::json!(["CT"]));
    assert_eq!(found[0]["00201208"]["Value"][0], 1);
    assert_eq!(
        found[0]["00100010"]["Value"][0]["Alphabetic"],
        "CompressedSamples^CT1"
    );
    assert!(
        found[0]["00081190"]["Value"][0]
            .as_str()
            .unwrap()
            .ends_with(&format!("/studies/{study}"))
    );
    for q in [
        "studies?PatientName=compressedsamples^CT*",
        "studies?PatientName=ct1&fuzzymatching=true",
        "studies?StudyDate=20040101-20040131",
        "studies?StudyDate=20040119",
        "studies?ModalitiesInStudy=CT",
        &format!("studies?StudyInstanceUID={study}"),
    ] {
        let (st, v) = json(&s, q).await;
        assert_eq!(st, 200, "{q}");
        assert_eq!(v.as_array().unwrap().len(), 1, "{q}: {v}");
        assert_eq!(v[0]["0020000D"]["Value"][0], study.as_str(), "{q}");
    }
    for q in [
        "studies?PatientName=ct1",
        "studies?StudyDate=20050101-",
        "studies?PatientID=1CT",
        "studies?ModalitiesInStudy=US",
    ] {
        let r = get(&s, q, "application/dicom+json").await;
        assert_eq!(r.status(), 204, "{q} matches nothing");
    }
    let (_, all) = json(&s, "studies").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    // PS3.18's required study attributes are there, if only empty.
    for tag in [
        "00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00081190",
        "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010", "00201206",
        "00201208",
    ] {
        assert!(all[1].get(tag).is_some(), "{tag} missing from {}", all[1]);
    }
    let (_, limited) = json(&s, "studies?limit=1&offset=1").await;
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let (_, series_found) = json(&s, &format!("studies/{study}/series?Modality=CT")).await;
    assert_eq!(series_found[0]["0020000E"]["Value"][0], series.as_str());
    assert_eq!(series_found[0]["00201209"]["Value"][0], 1);
    let (_, all_series) = json(&s, "series?Modality=MR").await;
    assert_eq!(all_series.as_array().unwrap().len(), 1);
    let (_, inst) = json(&s, &format!("studies/{study}/series/{series}/instances")).await;
    assert_eq!(inst[0]["00080018"]["Value"][0], sop.as_str());
    assert_eq!(inst[0]["00280010"]["Value"][0], 128);
    assert!(
        inst[0].get("00180050").is_none(),
        "SliceThickness is not an instance-level default"
    );
    let (_, inst) = json(
        &s,
        &format!("instances?SOPInstanceUID={sop}&includefield=00180050"),
    )
    .await;
    assert_eq!(inst.as_array().unwrap().len(), 1);
    assert!(
        inst[0].get("00180050").is_some(),
        "includefield adds it: {}",
        inst[0]
    );
    let (_, inst) = json(
        &s,
        &format!("instances?SOPInstanceUID={sop}&includefield=all"),
    )
    .await;
    assert!(inst[0].get("00180050").is_some());
    assert!(
        inst[0].get("7FE00010").is_none(),
        "no pixel data in QIDO answers"
    );

    // WADO: as stored, byte for byte, in every form.
    let r = get(
        &s,
        &format!("studies/{study}/series/{series}/instances/{sop}"),
        "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
    )
    .await;
    assert_eq!(r.status(), 200);
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    let got = parts(&ct_header, &body);
    assert_eq!(got.len(), 1);
    assert!(got[0].1 == ct, "the instance comes back byte for byte");
    let r = get(
        &s,
        &format!("studies/{study}"),
        "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
    )
    .await;
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert_eq!(parts(&ct_header, &body).len(), 1);
    let r = get(
        &s,
        &format!("studies/{study}/series/{series}/instances/{sop}"),
        "application/dicom; transfer-syntax=*",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == ct);
    let r = get(&s, &format!("studies/{study}"), "image/png").await;
    assert_eq!(r.status(), 406);
    let r = get(
        &s,
        "studies/1.2.3.4",
        "multipart/related; type=\"application/dicom\"",
    )
    .await;
    assert_eq!(r.status(), 404);

    // Metadata: from the index, BulkDataURIs absolute, with an ETag.
    let r = get(
        &s,
        &format!("studies/{study}/metadata"),
        "application/dicom+json",
    )
    .await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let meta: Value = r.json().await.unwrap();
    assert_eq!(meta.as_array().unwrap().len(), 1);
    let bulk = meta[0]["7FE00010"]["BulkDataURI"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(bulk.starts_with(&s.base), "{bulk}");
    let r = s
        .http
        .get(s.url(&format!("studies/{study}/metadata")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s.http.get(&bulk).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert_eq!(parts(&ct_header, &body)[0].1.len(), 128 * 128 * 2);

    // Frames and rendered images.
    let frame_path = format!("studies/{study}/series/{series}/instances/{sop}/frames/1");
    let r = get(
        &s,
        &frame_path,
        "multipart/related; type=\"application/octet-stream\"",
    )
    .await;
    assert_eq!(r.status(), 200);
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert_eq!(parts(&ct_header, &body)[0].1.len(), 128 * 128 * 2);
    let r = get(
        &s,
        &format!("studies/{study}/series/{series}/instances/{sop}/frames/2"),
        "*/*",
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = get(
        &s,
        &format!("studies/{study}/series/{series}/instances/{sop}/rendered"),
        "image/png",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let r = get(
        &s,
        &format!("{frame_path}/rendered?quality=80"),
        "image/jpeg",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(&[0xFF, 0xD8]));
}

#[tokio::test]
async fn compressed_instances_are_transcoded_to_the_default_syntax_on_request() {
    let s = start().await;
    let mr = file(MR_RLE);
    let (status, answer) = stow(&s, "studies", &[("application/dicom", &mr)]).await;
    assert_eq!(status, 200, "{answer}");
    let (study, series, sop) = uid(&answer, 0);
    let path = format!("studies/{study}/series/{series}/instances/{sop}");
    // No transfer syntax named: explicit VR little endian, the default of PS3.18.
    let r = get(&s, &path, "multipart/related; type=\"application/dicom\"").await;
    assert_eq!(r.status(), 200);
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct_header.contains("1.2.840.10008.1.2.1"), "{ct_header}");
    let body = r.bytes().await.unwrap();
    let got = parts(&ct_header, &body);
    let instance =
        hds_dicom_model::parse(&got[0].1, &Default::default()).expect("transcoded instance parses");
    assert_eq!(instance.transfer_syntax, "1.2.840.10008.1.2.1");
    assert_eq!(instance.sop_uid, sop);
    // As stored, it is the RLE file itself.
    let r = get(
        &s,
        &path,
        "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
    )
    .await;
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert!(parts(&ct_header, &body)[0].1 == mr);
    // A syntax it cannot be encoded in.
    let r = get(
        &s,
        &path,
        "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.80",
    )
    .await;
    assert_eq!(r.status(), 406);
}

#[tokio::test]
async fn bad_parts_are_refused_with_reasons_and_leave_nothing() {
    let s = start().await;
    let ct = file(CT);
    let truncated = &ct[..ct.len() / 2];
    let (status, answer) = stow(
        &s,
        "studies",
        &[
            ("application/dicom", truncated),
            ("application/dicom", b"not DICOM at all"),
        ],
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(failure_reasons(&answer), [272, 272]);
    assert_eq!(
        get(&s, "studies", "application/dicom+json").await.status(),
        204
    );

    // A study UID mismatch against the path.
    let (status, answer) = stow(&s, "studies/1.2.3", &[("application/dicom", &ct)]).await;
    assert_eq!(status, 409);
    assert_eq!(failure_reasons(&answer), [43265]);

    // One good part among bad ones: 202, and only it is stored.
    let (status, answer) = stow(
        &s,
        "studies",
        &[
            ("application/dicom", &ct),
            ("text/plain", b"hello"),
            ("application/dicom", truncated),
        ],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(referenced(&answer), 1);
    assert_eq!(failure_reasons(&answer), [272, 272]);
    let (_, all) = json(&s, "instances").await;
    assert_eq!(all.as_array().unwrap().len(), 1);

    // A duplicate.
    let (status, answer) = stow(&s, "studies", &[("application/dicom", &ct)]).await;
    assert_eq!(status, 409);
    assert_eq!(failure_reasons(&answer), [45070]);

    // Media types.
    let r = s
        .http
        .post(s.url("studies"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = s
        .http
        .post(s.url("studies"))
        .header(
            "content-type",
            "multipart/related; type=\"application/dicom\"",
        )
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no boundary");
    let r = s
        .http
        .post(s.url("studies"))
        .header("content-type", format!("{MULTIPART_DICOM}; boundary=b"))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 400 | 409), "{}", r.status());

    // QIDO parameters.
    assert_eq!(
        get(&s, "studies?NoSuchThing=1", "application/dicom+json")
            .await
            .status(),
        400
    );
    assert_eq!(
        get(&s, "studies?StudyDate=yesterday", "application/dicom+json")
            .await
            .status(),
        400
    );
    assert_eq!(
        get(&s, "studies?limit=0", "application/dicom+json")
            .await
            .status(),
        400
    );
    let r = get(&s, "studies?StationName=X", "application/dicom+json").await;
    assert_eq!(r.status(), 200, "an unsupported attribute is ignored");
    assert!(r.headers()["warning"].to_str().unwrap().starts_with("299 "));
    // A lower level's attribute is ignored with a warning too.
    let r = get(&s, "studies?Modality=CT", "application/dicom+json").await;
    assert!(r.headers()["warning"].to_str().unwrap().starts_with("299 "));
    assert_eq!(get(&s, "studies", "text/html").await.status(), 406);
}

#[tokio::test]
async fn single_part_stow_put_replaces_and_the_change_feed_tells() {
    let s = start().await;
    let ct = file(CT);
    let r = s
        .http
        .post(s.url("studies"))
        .header("content-type", "application/dicom")
        .body(ct.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let (study, series, sop) = uid(&answer, 0);
    let (ctype, body) = multipart(&[("application/dicom", &ct)]);
    let r = s
        .http
        .put(s.url(&format!("studies/{study}")))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "PUT replaces");
    let (_, all) = json(&s, "instances").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let files: usize = walk(s.blob_dir.path());
    assert_eq!(
        files,
        1,
        "the replaced file is removed: {:?}",
        std::process::Command::new("find")
            .arg(s.blob_dir.path())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    );

    let feed: Value = s
        .http
        .get(s.url("changefeed?includeMetadata=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let feed = feed.as_array().unwrap();
    assert_eq!(feed.len(), 2);
    assert_eq!(feed[0]["Action"], "Create");
    assert_eq!(feed[0]["State"], "Replaced");
    assert!(feed[0].get("Metadata").is_none());
    assert_eq!(feed[1]["Action"], "Update");
    assert_eq!(feed[1]["State"], "Current");
    assert_eq!(feed[1]["SopInstanceUid"], sop.as_str());
    assert_eq!(feed[1]["Metadata"]["00100020"]["Value"][0], "1CT1");

    let r = s
        .http
        .delete(s.url(&format!("studies/{study}/series/{series}/instances/{sop}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .http
        .delete(s.url(&format!("studies/{study}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing left to delete");
    assert_eq!(
        get(&s, "studies", "application/dicom+json").await.status(),
        204
    );
    assert_eq!(walk(s.blob_dir.path()), 0);
    let latest: Value = s
        .http
        .get(s.url("changefeed/latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["Action"], "Delete");
    assert_eq!(latest["State"], "Deleted");
    assert_eq!(latest["Sequence"], 3);
    let after: Value = s
        .http
        .get(s.url("changefeed?offset=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after.as_array().unwrap().len(), 1);
    let window: Value = s
        .http
        .get(s.url("changefeed?startTime=2000-01-01T00:00:00Z&endTime=2999-01-01T00:00:00Z&offset=1&limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(window[0]["Sequence"], 2);
    assert_eq!(
        s.http
            .get(s.url("changefeed?limit=0"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        s.http
            .get(s.url("changefeed?startTime=yesterday"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}

#[tokio::test]
async fn an_oversize_request_is_refused_whole() {
    let mut cfg = config();
    cfg.limits.max_stow_bytes = 50_000;
    let s = start_with(cfg).await;
    let ct = file(CT);
    let (ctype, body) = multipart(&[("application/dicom", &ct), ("application/dicom", &ct)]);
    // Chunked, so the limit is met while streaming rather than from Content-Length.
    let stream = futures_util::stream::iter(
        body.chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = s
        .http
        .post(s.url("studies"))
        .header("content-type", ctype)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        get(&s, "instances", "application/dicom+json")
            .await
            .status(),
        204
    );
    assert_eq!(
        walk(s.blob_dir.path()),
        0,
        "the first part's file is removed too"
    );
}

/// Instance files under `dir` (the service's own mark in the store is not one).
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        usize::from(p.extension().is_some_and(|e| e == "dcm"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn data_partitions_keep_their_instances_apart() {
    let mut cfg = config();
    cfg.enable_data_partitions = true;
    let s = start_with(cfg).await;
    let ct = file(CT);
    let (status, answer) = stow(
        &s,
        "partitions/alpha/studies",
        &[("application/dicom", &ct)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let url = answer["00081199"]["Value"][0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("/partitions/alpha/studies/"), "{url}");
    // The same instance is new to another partition and to the default one.
    let (status, _) = stow(&s, "partitions/beta/studies", &[("application/dicom", &ct)]).await;
    assert_eq!(status, 200);
    let (status, _) = stow(&s, "partitions/beta/studies", &[("application/dicom", &ct)]).await;
    assert_eq!(status, 409, "a duplicate within its partition");
    assert_eq!(
        get(&s, "studies", "application/dicom+json").await.status(),
        204
    );
    let (_, alpha) = json(&s, "partitions/alpha/studies?PatientID=1CT1").await;
    assert_eq!(alpha.as_array().unwrap().len(), 1);
    let r = s
        .http
        .delete(s.url(&format!(
            "partitions/alpha/studies/{}",
            alpha[0]["0020000D"]["Value"][0].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        get(&s, "partitions/alpha/studies", "application/dicom+json")
            .await
            .status(),
        204
    );
    let (_, beta) = json(&s, "partitions/beta/instances").await;
    assert_eq!(
        beta.as_array().unwrap().len(),
        1,
        "the other partition keeps its copy"
    );
    let feed: Value = s
        .http
        .get(s.url("changefeed"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["PartitionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "alpha"]);
    let (st, _) = json(&s, "v2/partitions/beta/studies").await;
    assert_eq!(st, 200, "under Azure's version prefix too");
    assert_eq!(
        get(&s, "partitions/a%20b/studies", "application/dicom+json")
            .await
            .status(),
        400
    );
    let (status, _) = stow(
        &s,
        "partitions/..%2F..%2Fetc/studies",
        &[("application/dicom", &ct)],
    )
    .await;
    assert_eq!(status, 400, "a partition name never reaches a file key");
}

#[tokio::test]
async fn concurrent_stores_never_leave_a_gap_a_feed_reader_skips() {
    let s = std::sync::Arc::new(start().await);
    let ct = file(CT);
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let s = s.clone();
            let ct = ct.clone();
            tokio::spawn(async move {
                for k in 0..8 {
                    let v = variant(&ct, w * 100 + k);
                    let (status, answer) = stow(&s, "studies", &[("application/dicom", &v)]).await;
                    assert_eq!(status, 200, "{answer}");
                }
            })
        })
        .collect();
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut seen = 0;
            while seen < 48 {
                let feed: Value = s
                    .http
                    .get(s.url(&format!(
                        "changefeed?offset={last}&limit=200&includeMetadata=false"
                    )))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for e in feed.as_array().unwrap() {
                    let seq = e["Sequence"].as_i64().unwrap();
                    assert_eq!(seq, last + 1, "the feed skipped from {last} to {seq}");
                    last = seq;
                    seen += 1;
                }
            }
            last
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let last = tokio::time::timeout(std::time::Duration::from_secs(30), reader)
        .await
        .expect("the reader sees every change")
        .unwrap();
    assert_eq!(last, 48);
}

/// The index writes a request's instances in one statement: every part must still get its own
/// outcome, in the order sent, whatever repeats or is stored already.
#[tokio::test]
async fn one_request_mixing_new_stored_and_repeated_instances() {
    let s = start().await;
    let ct = file(CT);
    let (v1, v2, v3) = (variant(&ct, 1), variant(&ct, 2), variant(&ct, 3));
    let mr = file(MR_RLE);
    assert_eq!(
        stow(&s, "studies", &[("application/dicom", &v1)]).await.0,
        200
    );

    let (status, answer) = stow(
        &s,
        "studies",
        &[
            ("application/dicom", &v2),
            ("application/dicom", &v1),
            ("application/dicom", &v2),
            ("application/dicom", &mr),
            ("application/dicom", &v3),
        ],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(failure_reasons(&answer), [45070, 45070]);
    assert_eq!(referenced(&answer), 3);
    let stored: Vec<String> = (0..3).map(|i| uid(&answer, i).2).collect();
    let (ct_study, ct_series, _) = uid(&answer, 0);
    assert!(stored[0].ends_with(".20002") && stored[2].ends_with(".20003"));

    let (_, found) = json(
        &s,
        &format!("studies/{ct_study}/series/{ct_series}/instances"),
    )
    .await;
    assert_eq!(found.as_array().unwrap().len(), 3, "v1, v2 and v3");
    let (_, studies) = json(&s, "studies").await;
    assert_eq!(studies.as_array().unwrap().len(), 2);

    // One change-feed entry per stored instance, in the order they were sent.
    let (_, feed) = json(&s, "changefeed").await;
    let sops: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["SopInstanceUid"].as_str().unwrap())
        .collect();
    assert_eq!(sops.len(), 4, "{feed}");
    assert!(sops[0].ends_with(".20001"));
    let mut later = sops[1..].to_vec();
    later.sort();
    let mut expected: Vec<&str> = stored.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(later, expected);

    // The repeated part's file went with its refusal: one file per stored instance.
    assert_eq!(walk(s.blob_dir.path()), 4);
}
