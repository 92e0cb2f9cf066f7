//! What STOW keeps of a Part 10 file: a file sent without its preamble is stored (and served)
//! as a PS3.10 file; the failures it reports name the instance whenever it could be read; a
//! request whose answer the client cannot take is refused before anything is stored.

mod common;

use common::*;

#[tokio::test]
async fn a_file_without_its_preamble_is_stored_as_a_part_10_file() {
    let s = start().await;
    let ct = file("CT_small.dcm");
    let (status, answer) = stow(&s, "studies", &[("application/dicom", &ct[128..])]).await;
    assert_eq!(status, 200, "{answer}");
    let url = answer["00081199"]["Value"][0]["00081190"]["Value"][0]
        .as_str()
        .unwrap();
    let path = &url[url.find("/studies/").unwrap() + 1..];
    let mut expected = vec![0u8; 128];
    expected.extend_from_slice(&ct[128..]);
    let r = get(&s, path, "application/dicom; transfer-syntax=*").await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == expected);
    // Through the transcoding path too.
    let r = get(&s, path, MULTIPART_DICOM).await;
    let ct_header = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    let got = parts(&ct_header, &body);
    assert_eq!(&got[0].1[128..132], b"DICM");
}

/// CT_small with its StudyInstanceUID value blanked (so missing).
fn without_study_uid(ct: &[u8]) -> Vec<u8> {
    let mut out = ct.to_vec();
    let at = out
        .windows(6)
        .position(|w| w == b"\x20\x00\x0d\x00UI")
        .expect("CT_small has a StudyInstanceUID");
    let len = u16::from_le_bytes([out[at + 6], out[at + 7]]) as usize;
    out[at + 8..at + 8 + len].fill(b' ');
    out
}

#[tokio::test]
async fn failures_name_the_instance_when_the_file_says_which() {
    let ct = file("CT_small.dcm");
    let class = "1.2.840.10008.5.1.4.1.1.2";
    let sop = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";
    let mut small_spool = config();
    small_spool.limits.spool_bytes = 1024;
    for s in [start().await, start_with(small_spool).await] {
        let (status, answer) = stow(
            &s,
            "studies",
            &[
                ("application/dicom", &without_study_uid(&ct)),
                ("application/dicom", &ct[..ct.len() - 1000]),
                ("application/dicom", b"not DICOM at all"),
            ],
        )
        .await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(failure_reasons(&answer), [43264, 272, 272]);
        let items = answer["00081198"]["Value"].as_array().unwrap();
        for item in &items[..2] {
            assert_eq!(item["00081150"]["Value"][0], class, "{item}");
            assert_eq!(item["00081155"]["Value"][0], sop, "{item}");
        }
        assert!(items[2].get("00081155").is_none(), "{}", items[2]);
    }
}

#[tokio::test]
async fn a_stow_whose_answer_cannot_be_taken_stores_nothing() {
    let s = start().await;
    let (ct, body) = multipart(&[("application/dicom", &file("CT_small.dcm"))]);
    for (accept, status) in [
        ("application/dicom+xml", 406),
        ("image/png", 406),
        ("application/json", 200),
    ] {
        let r = s
            .http
            .post(s.url("studies"))
            .header("content-type", &ct)
            .header("accept", accept)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{accept}");
    }
    // The 406s stored nothing: the one instance is there once, from the last request.
    let (st, found) = json(&s, "instances").await;
    assert_eq!(st, 200);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
}
