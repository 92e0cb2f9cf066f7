//! What STOW keeps of a Part 10 file: a file sent without its preamble is stored (and served)
//! as a PS3.10 file; the failures it reports name the instance whenever it could be read.

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
