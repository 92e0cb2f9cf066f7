//! WADO-RS answers that must be decided before the first byte: what cannot be decoded, which
//! of the Accept header's representations is served, and what frames and bulk data carry.

mod common;

use common::*;

/// Stores pydicom's `name` and returns its instance path.
async fn stored(s: &TestServer, name: &str) -> String {
    let (status, answer) = stow(s, "studies", &[("application/dicom", &file(name))]).await;
    assert!(status == 200 || status == 202, "{name}: {status} {answer}");
    let url = answer["00081199"]["Value"][0]["00081190"]["Value"][0]
        .as_str()
        .unwrap();
    let at = url.find("/studies/").unwrap();
    url[at + 1..].to_owned()
}

fn study_of(path: &str) -> String {
    path.split('/').take(2).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn undecodable_pixel_data_is_refused_before_the_answer_starts() {
    let s = start().await;
    for name in ["JPGExtended.dcm", "SC_rgb_rle_32bit.dcm"] {
        let path = stored(&s, name).await;
        for at in [path.clone(), study_of(&path)] {
            for accept in [MULTIPART_DICOM, "*/*"] {
                let r = get(&s, &at, accept).await;
                assert_eq!(r.status(), 406, "{name} {at} {accept}");
                let text = r.text().await.unwrap();
                assert!(text.contains("cannot be decoded"), "{name}: {text}");
            }
        }
        let r = get(&s, &path, "application/dicom").await;
        assert_eq!(r.status(), 406, "{name}");
        // As stored it is still there, whole.
        let accept = format!("{MULTIPART_DICOM}; transfer-syntax=*");
        let r = get(&s, &path, &accept).await;
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let body = r.bytes().await.unwrap();
        assert!(parts(&ct, &body)[0].1 == file(name), "{name}");
    }
}
