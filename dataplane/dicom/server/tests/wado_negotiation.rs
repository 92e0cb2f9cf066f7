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

/// Each part's headers and body of a multipart answer, with the answer's Content-Type.
async fn multipart_of(r: reqwest::Response) -> (String, Vec<(String, Vec<u8>)>) {
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    let got = parts(&ct, &body);
    (ct, got)
}

const DICOM_90: &str =
    "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.90";

#[tokio::test]
async fn retrieve_serves_the_first_acceptable_representation_it_can() {
    let s = start().await;
    let ct = stored(&s, "CT_small.dcm").await;
    // .90 cannot be made; the less preferred "as stored" can.
    let accept = format!("{DICOM_90}; q=0.9, {MULTIPART_DICOM}; transfer-syntax=*; q=0.1");
    let r = get(&s, &ct, &accept).await;
    assert_eq!(r.status(), 200);
    let (_, got) = multipart_of(r).await;
    assert!(got[0].1 == file("CT_small.dcm"));
    // The order of the header does not matter, q does.
    let accept = format!("{MULTIPART_DICOM}; transfer-syntax=*; q=0.1, {DICOM_90}; q=0.9");
    assert_eq!(get(&s, &ct, &accept).await.status(), 200);
    let r = get(&s, &study_of(&ct), DICOM_90).await;
    assert_eq!(r.status(), 406);

    let jls = stored(&s, "MR_small_jpeg_ls_lossless.dcm").await;
    let accept = "application/dicom, application/dicom; transfer-syntax=*; q=0.5";
    let r = get(&s, &jls, accept).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/dicom; transfer-syntax=1.2.840.10008.1.2.4.80")
    );
    assert!(r.bytes().await.unwrap() == file("MR_small_jpeg_ls_lossless.dcm"));
    let r = get(&s, &jls, "application/dicom").await;
    assert_eq!(r.status(), 406);
    assert!(r.text().await.unwrap().contains("transfer-syntax=*"));

    // q=0 is "not acceptable"; wildcard ranges name the DICOM types.
    assert_eq!(get(&s, &ct, "application/dicom; q=0").await.status(), 406);
    let r = get(&s, &ct, "multipart/*").await;
    assert_eq!(r.status(), 200);
    let (root, got) = multipart_of(r).await;
    assert!(
        root.starts_with("multipart/related; type=\"application/dicom\""),
        "{root}"
    );
    assert_eq!(got.len(), 1);
    let r = get(&s, &ct, "application/*").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/dicom")
    );
    assert_eq!(get(&s, &study_of(&ct), "application/*").await.status(), 406);
}

fn frames_type(part: &str, extra: &str) -> String {
    format!("multipart/related; type=\"{part}\"{extra}")
}

#[tokio::test]
async fn frames_serve_the_first_acceptable_type_and_never_another_syntax() {
    let s = start().await;
    let dose = stored(&s, "rtdose.dcm").await;
    let accept = format!(
        "{}, {}",
        frames_type("image/jp2", ""),
        frames_type("application/octet-stream", "")
    );
    let r = get(&s, &format!("{dose}/frames/1"), &accept).await;
    assert_eq!(r.status(), 200);
    let (root, _) = multipart_of(r).await;
    assert!(root.contains("application/octet-stream"), "{root}");

    // JPEG2000.dcm is lossy J2K (.91).
    let j2k = format!("{}/frames/1", stored(&s, "JPEG2000.dcm").await);
    let accept = format!(
        "{}, {}; q=0.5",
        frames_type("image/jpeg", ""),
        frames_type("image/jp2", "")
    );
    let r = get(&s, &j2k, &accept).await;
    assert_eq!(r.status(), 200);
    let (_, got) = multipart_of(r).await;
    assert!(
        got[0]
            .0
            .contains("image/jp2; transfer-syntax=1.2.840.10008.1.2.4.91"),
        "{}",
        got[0].0
    );
    // Lossless asked of lossy: refused, not served as stored.
    let lossless = frames_type("image/jp2", "; transfer-syntax=1.2.840.10008.1.2.4.90");
    let r = get(&s, &j2k, &lossless).await;
    assert_eq!(r.status(), 406);
    assert!(r.text().await.unwrap().contains("1.2.840.10008.1.2.4.91"));
    // ... unless a less preferred alternative is acceptable.
    let accept = format!(
        "{lossless}, {}; q=0.2",
        frames_type("application/octet-stream", "")
    );
    let r = get(&s, &j2k, &accept).await;
    assert_eq!(r.status(), 200);
    let (_, got) = multipart_of(r).await;
    assert_eq!(got[0].1.len(), 1024 * 256 * 2);
    // The syntax it is stored in, named, is served.
    let exact = frames_type("image/jp2", "; transfer-syntax=1.2.840.10008.1.2.4.91");
    assert_eq!(get(&s, &j2k, &exact).await.status(), 200);

    let jpeg = format!("{}/frames/1", stored(&s, "SC_rgb_jpeg_dcmtk.dcm").await);
    let lossless = frames_type("image/jpeg", "; transfer-syntax=1.2.840.10008.1.2.4.70");
    assert_eq!(get(&s, &jpeg, &lossless).await.status(), 406);

    let jls = format!(
        "{}/frames/1",
        stored(&s, "MR_small_jpeg_ls_lossless.dcm").await
    );
    let accept = format!(
        "{}, {}; q=0.5",
        frames_type("application/octet-stream", ""),
        frames_type("application/octet-stream", "; transfer-syntax=*")
    );
    let r = get(&s, &jls, &accept).await;
    assert_eq!(r.status(), 200);
    let (_, got) = multipart_of(r).await;
    assert!(got[0].0.contains("image/jls"), "{}", got[0].0);
    let r = get(&s, &jls, &frames_type("application/octet-stream", "")).await;
    assert_eq!(r.status(), 406);
}

#[tokio::test]
async fn frames_and_rendered_say_404_without_pixels_and_406_when_undecodable() {
    let s = start().await;
    let plan = stored(&s, "rtplan.dcm").await;
    let octets = frames_type("application/octet-stream", "");
    for (path, accept) in [
        (format!("{plan}/frames/1"), octets.as_str()),
        (format!("{plan}/rendered"), "image/jpeg"),
        (format!("{plan}/frames/1/rendered"), "image/png"),
    ] {
        let r = get(&s, &path, accept).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.text().await.unwrap().contains("no pixel data"), "{path}");
    }
    for name in ["JPGExtended.dcm", "SC_rgb_rle_32bit.dcm"] {
        let path = stored(&s, name).await;
        for (path, accept) in [
            (format!("{path}/frames/1"), octets.as_str()),
            (format!("{path}/rendered"), "image/jpeg"),
        ] {
            let r = get(&s, &path, accept).await;
            assert_eq!(r.status(), 406, "{path}");
            assert!(
                r.text().await.unwrap().contains("cannot be decoded"),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn compressed_pixel_bulk_data_is_decoded_or_labelled_as_what_it_is() {
    let s = start().await;
    let rle = stored(&s, "SC_rgb_rle_2frame.dcm").await;
    let bulk = format!("{rle}/bulkdata/7FE00010");
    let octets = frames_type("application/octet-stream", "");
    let explicit = frames_type(
        "application/octet-stream",
        "; transfer-syntax=1.2.840.10008.1.2.1",
    );
    for accept in [octets.as_str(), explicit.as_str(), "*/*"] {
        let r = get(&s, &bulk, accept).await;
        assert_eq!(r.status(), 200, "{accept}");
        let (_, got) = multipart_of(r).await;
        assert_eq!(got.len(), 2);
        for (head, data) in &got {
            assert!(
                head.contains("application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"),
                "{head}"
            );
            assert_eq!(data.len(), 100 * 100 * 3);
        }
        let (_, frames) = multipart_of(get(&s, &format!("{rle}/frames/1,2"), &octets).await).await;
        assert!(frames.iter().map(|f| &f.1).eq(got.iter().map(|g| &g.1)));
    }
    // As stored, RLE is image/dicom-rle (PS3.18 table 8.7.3-5), here and for frames.
    for at in [bulk.clone(), format!("{rle}/frames/1")] {
        for accept in [
            frames_type("application/octet-stream", "; transfer-syntax=*"),
            frames_type("image/dicom-rle", ""),
        ] {
            let r = get(&s, &at, &accept).await;
            assert_eq!(r.status(), 200, "{at} {accept}");
            let (root, got) = multipart_of(r).await;
            assert!(root.contains("image/dicom-rle"), "{root}");
            assert!(
                got[0]
                    .0
                    .contains("image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5")
            );
            assert_eq!(&got[0].1[..8], &[3, 0, 0, 0, 64, 0, 0, 0]);
        }
    }

    let j2k = stored(&s, "JPEG2000.dcm").await;
    let (_, got) = multipart_of(get(&s, &format!("{j2k}/bulkdata/7FE00010"), &octets).await).await;
    assert_eq!(got[0].1.len(), 1024 * 256 * 2);

    // Explicit VR little endian that cannot be produced is a 406, not compressed bytes.
    let lossy = format!("{}/bulkdata/7fe00010", stored(&s, "JPEG-lossy.dcm").await);
    let r = get(&s, &lossy, &explicit).await;
    assert_eq!(r.status(), 406);
    let r = get(
        &s,
        &lossy,
        &frames_type("application/octet-stream", "; transfer-syntax=*"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, got) = multipart_of(r).await;
    assert!(
        got[0]
            .0
            .contains("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.51")
    );
    assert_eq!(&got[0].1[..2], &[0xFF, 0xD8]);

    let r = get(&s, &format!("{rle}/bulkdata/ZZZ"), &octets).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "no bulk data at ZZZ");

    // Native pixel data is its value, as before.
    let ct = stored(&s, "CT_small.dcm").await;
    let r = get(&s, &format!("{ct}/bulkdata/7FE00010"), &octets).await;
    let (_, got) = multipart_of(r).await;
    assert_eq!(got[0].1.len(), 128 * 128 * 2);
}

#[tokio::test]
async fn one_frame_may_be_asked_for_as_a_single_part() {
    let s = start().await;
    let dose = stored(&s, "rtdose.dcm").await;
    let (_, multi) = multipart_of(
        get(
            &s,
            &format!("{dose}/frames/2"),
            &frames_type("application/octet-stream", ""),
        )
        .await,
    )
    .await;
    for accept in [
        "application/octet-stream; transfer-syntax=*",
        "application/octet-stream",
    ] {
        let r = get(&s, &format!("{dose}/frames/2"), accept).await;
        assert_eq!(r.status(), 200, "{accept}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            ct.starts_with("application/octet-stream; transfer-syntax="),
            "{ct}"
        );
        assert!(r.bytes().await.unwrap() == multi[0].1);
        // Several frames do not fit one part.
        let r = get(&s, &format!("{dose}/frames/1,2"), accept).await;
        assert_eq!(r.status(), 406, "{accept}");
    }
    let j2k = stored(&s, "JPEG2000.dcm").await;
    let r = get(
        &s,
        &format!("{j2k}/frames/1"),
        "application/octet-stream; transfer-syntax=*",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.91"
    );
    assert!(r.bytes().await.unwrap().starts_with(&[0xFF, 0x4F]));
}
