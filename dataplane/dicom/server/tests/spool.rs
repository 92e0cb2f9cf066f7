//! Parts larger than `limits.spoolBytes`: spooled inside the local store and renamed into
//! place, retrieved byte for byte, and nothing left in the spool, whether a part is stored or
//! refused.

mod common;

use common::*;
use hds_dicom_server::Blobs;

const CT: &str = "CT_small.dcm";
const WHOLE_FILE: &str = "application/dicom; transfer-syntax=*";

/// The service's spool directory, as its `Blobs` name it.
fn spool_dir(s: &TestServer) -> std::path::PathBuf {
    let blobs = Blobs::open(&format!("file://{}", s.blob_dir.path().display())).unwrap();
    blobs.spool_dir().unwrap().to_owned()
}

fn spool_entries(s: &TestServer) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(spool_dir(s)) {
        Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

fn instance_path(answer: &serde_json::Value, i: usize) -> String {
    let url = answer["00081199"]["Value"][i]["00081190"]["Value"][0]
        .as_str()
        .unwrap();
    url[url.find("studies/").unwrap()..].to_owned()
}

#[tokio::test]
async fn spooled_parts_are_stored_whole_and_leave_no_spool() {
    let mut cfg = config();
    // CT_small is ~39 KB: every part below goes through the spool, a few pieces each.
    cfg.limits.spool_bytes = 4096;
    let s = start_with(cfg).await;
    let ct = file(CT);
    assert!(ct.len() > 4096);
    let (a, b) = (variant(&ct, 1), variant(&ct, 2));
    let truncated = &variant(&ct, 3)[..ct.len() / 2];

    let (status, answer) = stow(
        &s,
        "studies",
        &[
            ("application/dicom", &a),
            ("application/dicom", truncated),
            ("application/dicom", &b),
        ],
    )
    .await;
    assert_eq!(referenced(&answer), 2, "{status} {answer}");
    assert_eq!(failure_reasons(&answer), vec![272], "{answer}");

    // A single-part body (Content-Type application/dicom) takes the same way.
    let c = variant(&ct, 4);
    let r = s
        .http
        .post(s.url("studies"))
        .header("content-type", "application/dicom")
        .header("accept", "application/dicom+json")
        .body(c.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let single: serde_json::Value = r.json().await.unwrap();

    for (path, sent) in [
        (instance_path(&answer, 0), &a),
        (instance_path(&answer, 1), &b),
        (instance_path(&single, 0), &c),
    ] {
        let r = get(&s, &path, WHOLE_FILE).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.bytes().await.unwrap() == *sent, "{path} byte for byte");
    }
    // The parts went through the store's own spool directory, and none is left there.
    assert!(spool_dir(&s).is_dir());
    assert_eq!(spool_entries(&s), Vec::<std::path::PathBuf>::new());

    // A duplicate is refused and its renamed file removed: only the three instances' files.
    let (_, again) = stow(&s, "studies", &[("application/dicom", &a)]).await;
    assert_eq!(failure_reasons(&again), vec![45070], "{again}");
    let files = walk(s.blob_dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .count();
    assert_eq!(files, 3);
    assert_eq!(spool_entries(&s), Vec::<std::path::PathBuf>::new());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
