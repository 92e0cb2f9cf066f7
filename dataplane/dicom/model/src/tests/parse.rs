//! Parsing: pydicom's files, the indexed values, errors, and strict versus lenient mode.

use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use serde_json::Value;

use super::build::*;
use super::support::*;
use crate::{ParseError, ParseOptions, parse, parse_file};

fn lenient() -> ParseOptions {
    ParseOptions::default()
}

fn strict() -> ParseOptions {
    ParseOptions { strict: true }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// What parsing each bundled file must give; files not listed must parse.
fn expected_failure(name: &str) -> Option<&'static str> {
    Some(match name {
        // No DICM magic or no usable meta group: pydicom needs force=True for these too.
        "ExplVR_BigEndNoMeta.dcm"
        | "ExplVR_LitEndNoMeta.dcm"
        | "no_meta.dcm"
        | "rtstruct.dcm"
        | "meta_missing_tsyntax.dcm" => "NotDicom",
        // Cut short by their makers.
        "MR_truncated.dcm" | "rtplan_truncated.dcm" => "Unreadable",
        // Readable, but without the identifying UIDs.
        "JPEGLSNearLossless_08.dcm"
        | "JPEGLSNearLossless_16.dcm"
        | "SC_rgb_jls_lossy_line.dcm"
        | "SC_rgb_jls_lossy_sample.dcm"
        | "UN_sequence.dcm"
        | "empty_charset_LEI.dcm"
        | "nested_priv_SQ.dcm"
        | "no_meta_group_length.dcm"
        | "priv_SQ.dcm" => "MissingAttribute",
        _ => return None,
    })
}

fn kind(e: &ParseError) -> &'static str {
    match e {
        ParseError::NotDicom(_) => "NotDicom",
        ParseError::Unreadable(_) => "Unreadable",
        ParseError::MissingAttribute { .. } => "MissingAttribute",
        ParseError::InvalidAttribute { .. } => "InvalidAttribute",
    }
}

#[test]
fn every_bundled_file_parses_as_expected() {
    let names = dcm_files();
    assert!(names.len() >= 60, "only {} test files found", names.len());
    let mut parsed = 0;
    for name in &names {
        let bytes = read(name);
        let result = parse(&bytes, &lenient());
        match (expected_failure(name), &result) {
            (None, Ok(instance)) => {
                parsed += 1;
                let meta = json(&instance.metadata);
                for level in [
                    &instance.study_json,
                    &instance.series_json,
                    &instance.instance_json,
                ] {
                    json(level);
                }
                if meta.get("7FE00010").is_some() {
                    let uri = meta["7FE00010"]["BulkDataURI"].as_str().unwrap();
                    assert!(
                        uri.starts_with("studies/") && uri.ends_with("/bulkdata/7FE00010"),
                        "{name}: {uri}"
                    );
                }
                assert!(
                    meta.get("FFFCFFFC").is_none() && meta.get("00020010").is_none(),
                    "{name}"
                );
                let from_disk = parse_file(&files_dir().join(name), &lenient()).unwrap();
                assert_eq!(
                    &from_disk, instance,
                    "{name}: parse_file differs from parse"
                );
            }
            (Some(want), Err(e)) => assert_eq!(kind(e), want, "{name}: {e}"),
            (want, got) => panic!(
                "{name}: expected {want:?}, got {:?}",
                got.as_ref().map(|i| &i.sop_uid)
            ),
        }
    }
    assert!(parsed >= 50, "only {parsed} files parsed");
}

#[test]
fn ct_small_values() {
    let i = parse(&read("CT_small.dcm"), &lenient()).unwrap();
    let x = &i.index;
    assert_eq!(x.patient_name.as_deref(), Some("CompressedSamples^CT1"));
    assert_eq!(x.patient_id.as_deref(), Some("1CT1"));
    assert_eq!(x.study_date.as_deref(), Some("20040119"));
    assert_eq!(x.study_time.as_deref(), Some("072730"));
    assert_eq!(x.modality.as_deref(), Some("CT"));
    assert_eq!(
        (x.rows, x.columns, x.bits_allocated),
        (Some(128), Some(128), Some(16))
    );
    assert_eq!(
        (x.series_number, x.instance_number, x.number_of_frames),
        (Some(1), Some(1), None)
    );
    assert_eq!(x.accession_number, None, "an empty value is None");
    assert_eq!(i.study_uid, "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322");
    assert_eq!(
        i.series_uid,
        "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
    );
    assert_eq!(i.sop_uid, "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");
    assert_eq!(i.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(i.transfer_syntax, "1.2.840.10008.1.2.1");
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);

    let meta = json(&i.metadata);
    let pixel_uri = format!(
        "studies/{}/series/{}/instances/{}/bulkdata/7FE00010",
        i.study_uid, i.series_uid, i.sop_uid
    );
    assert_eq!(
        meta["7FE00010"],
        serde_json::json!({"vr": "OW", "BulkDataURI": pixel_uri})
    );
    assert_eq!(
        meta["00100010"],
        serde_json::json!({"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]})
    );
    assert_eq!(
        meta["00080050"],
        serde_json::json!({"vr": "SH"}),
        "empty values have no Value"
    );
    assert_eq!(
        meta["00080008"]["Value"],
        serde_json::json!(["ORIGINAL", "PRIMARY", "AXIAL"])
    );
    assert_eq!(meta["00280010"]["Value"], serde_json::json!([128]));
    assert_eq!(meta["00281052"]["Value"], serde_json::json!([-1024]));
    // A nested sequence: Other Patient IDs, two items.
    let items = meta["00101002"]["Value"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1]["00100020"]["Value"],
        serde_json::json!(["1234ABCD"])
    );
    // Private binary values: short ones inline, long ones as bulk data.
    assert!(meta["00431028"]["InlineBinary"].is_string());
    assert!(
        meta["00431029"]["BulkDataURI"]
            .as_str()
            .unwrap()
            .ends_with("/bulkdata/00431029")
    );
    assert_eq!(
        meta["00091001"]["Value"],
        serde_json::json!(["GE_GENESIS_FF"])
    );

    let study = json(&i.study_json);
    let series = json(&i.series_json);
    let instance = json(&i.instance_json);
    for tag in [
        "0020000D", "00100010", "00100020", "00080020", "00101002", "00080005",
    ] {
        assert!(study.get(tag).is_some(), "study level lacks {tag}");
    }
    for tag in ["0020000E", "00080060", "00200011", "00081090"] {
        assert!(series.get(tag).is_some(), "series level lacks {tag}");
    }
    for tag in ["00080018", "00080016", "00200013", "00280010", "00280100"] {
        assert!(instance.get(tag).is_some(), "instance level lacks {tag}");
    }
    assert!(study.get("0020000E").is_none() && series.get("0020000D").is_none());
    assert!(instance.get("7FE00010").is_none() && instance.get("00100010").is_none());
    assert_eq!(study["00100010"], meta["00100010"]);
}

#[test]
fn standard_attributes_written_as_un_are_read_by_dictionary() {
    // gdcmconv wrote every element of this file as UN.
    let i = parse(&read("rtdose_rle.dcm"), &lenient()).unwrap();
    assert_eq!(i.study_uid, "1.2.999.999.99.9.9999.8888");
    assert_eq!(i.index.number_of_frames, Some(15));
    let meta = json(&i.metadata);
    assert_eq!(meta["00100010"]["vr"], "PN");
    assert_eq!(meta["00280009"]["Value"], serde_json::json!(["3004000C"]));
    let referenced = &meta["300C0002"]["Value"][0]["300C0020"]["Value"][0]["300C0022"];
    assert_eq!(referenced["Value"], serde_json::json!([1]));
}

#[test]
fn truncated_files_are_unreadable() {
    let whole = read("CT_small.dcm");
    let pixel_tag = whole
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .expect("CT_small has pixel data");
    // Element boundaries in this file are all even, so odd cuts always land inside one. (A cut
    // exactly between top-level elements is indistinguishable from a shorter data set.)
    let cuts = [
        401,
        1001,
        2001,
        pixel_tag + 2, // inside the pixel data tag
        pixel_tag + 6, // inside its header
        pixel_tag + 20,
        whole.len() - 20_000,
        whole.len() - 1,
    ];
    for cut in cuts {
        let err = parse(&whole[..cut], &lenient()).unwrap_err();
        assert!(
            matches!(err, ParseError::Unreadable(_)),
            "cut at {cut}: {err}"
        );
        assert_eq!(err.failure_reason(), 272);
    }
    // Encapsulated pixel data cut after a whole fragment, or inside the offset table: dicom-rs
    // would call both a clean end.
    let rle = read("MR_small_RLE.dcm");
    let delimiter = rle
        .windows(4)
        .rposition(|w| w == [0xFE, 0xFF, 0xDD, 0xE0])
        .unwrap();
    let item = rle
        .windows(4)
        .position(|w| w == [0xFE, 0xFF, 0x00, 0xE0])
        .unwrap();
    for cut in [delimiter, delimiter + 4, item + 10, delimiter - 100] {
        let err = parse(&rle[..cut], &lenient()).unwrap_err();
        assert!(
            matches!(err, ParseError::Unreadable(_)),
            "RLE cut at {cut}: {err}"
        );
    }
    // Inside the meta group there is no usable meta information.
    assert!(matches!(
        parse(&whole[..200], &lenient()),
        Err(ParseError::NotDicom(_))
    ));
}

#[test]
fn non_dicom_input_is_refused() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let png = crate::render(&read("CT_small.dcm"), 1, crate::RenderFormat::Png).unwrap();
    let mut only_magic = vec![0u8; 128];
    only_magic.extend_from_slice(b"DICM");
    for (what, bytes) in [
        ("random", &random[..]),
        ("png", &png[..]),
        ("empty", &[][..]),
        ("magic only", &only_magic[..]),
        (
            "magic and junk",
            &[b"DICM".as_slice(), &random[..64]].concat()[..],
        ),
    ] {
        let err = parse(bytes, &lenient()).unwrap_err();
        assert!(matches!(err, ParseError::NotDicom(_)), "{what}: {err}");
        assert_eq!(err.failure_reason(), 272);
    }
    let tmp = std::env::temp_dir().join(format!("hds-model-random-{}", std::process::id()));
    std::fs::write(&tmp, &random).unwrap();
    let from_file = parse_file(&tmp, &lenient());
    std::fs::remove_file(&tmp).ok();
    assert!(matches!(from_file, Err(ParseError::NotDicom(_))));
}

#[test]
fn preamble_is_optional() {
    let bytes = read("CT_small.dcm");
    let with = parse(&bytes, &lenient()).unwrap();
    let without = parse(&bytes[128..], &lenient()).unwrap();
    assert_eq!(with, without);
}

#[test]
fn strict_refuses_what_lenient_warns_about() {
    let mut obj = base();
    obj.put(DataElement::new(tags::STUDY_DATE, VR::DA, "20041301"));
    let bytes = file(obj, "1.2.840.10008.1.2.1");
    let i = parse(&bytes, &lenient()).unwrap();
    assert_eq!(i.index.study_date, None);
    assert_eq!(i.warnings.len(), 1, "{:?}", i.warnings);
    assert!(
        i.warnings[0].starts_with("StudyDate (00080020) "),
        "{}",
        i.warnings[0]
    );
    // The value is still stored as sent.
    assert_eq!(
        json(&i.metadata)["00080020"]["Value"],
        serde_json::json!(["20041301"])
    );
    let err = parse(&bytes, &strict()).unwrap_err();
    assert!(
        matches!(
            err,
            ParseError::InvalidAttribute {
                keyword: "StudyDate",
                tag: "00080020",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.failure_reason(), 43264);

    let good = parse(&file(base(), "1.2.840.10008.1.2.1"), &strict()).unwrap();
    assert!(good.warnings.is_empty());
    assert_eq!(good.index.study_date.as_deref(), Some("20240229"));
    assert_eq!(good.index.series_number, Some(3));
}

#[test]
fn uid_rules() {
    let with = |tag, value: &str| {
        let mut obj = base();
        obj.put(DataElement::new(tag, VR::UI, value));
        file(obj, "1.2.840.10008.1.2.1")
    };
    for options in [lenient(), strict()] {
        let err = parse(&with(tags::SERIES_INSTANCE_UID, "1.2.abc"), &options).unwrap_err();
        assert!(matches!(
            err,
            ParseError::InvalidAttribute {
                keyword: "SeriesInstanceUID",
                tag: "0020000E",
                ..
            }
        ));
        let err = parse(&with(tags::STUDY_INSTANCE_UID, &"1.2".repeat(33)), &options).unwrap_err();
        assert!(matches!(
            err,
            ParseError::InvalidAttribute {
                keyword: "StudyInstanceUID",
                ..
            }
        ));
        let mut obj = base();
        obj.remove_element(tags::STUDY_INSTANCE_UID);
        let err = parse(&file(obj, "1.2.840.10008.1.2.1"), &options).unwrap_err();
        assert_eq!(
            err,
            ParseError::MissingAttribute {
                keyword: "StudyInstanceUID",
                tag: "0020000D"
            }
        );
        assert_eq!(err.failure_reason(), 43264);
        let err = parse(&with(tags::SOP_CLASS_UID, ""), &options).unwrap_err();
        assert!(matches!(
            err,
            ParseError::MissingAttribute {
                keyword: "SOPClassUID",
                ..
            }
        ));
    }
    // Space padding and leading zeros are common enough to store with a warning.
    let padded = with(tags::SERIES_INSTANCE_UID, "1.2.3.4 ");
    let i = parse(&padded, &lenient()).unwrap();
    assert_eq!(i.series_uid, "1.2.3.4");
    assert_eq!(i.warnings.len(), 1);
    assert!(matches!(
        parse(&padded, &strict()),
        Err(ParseError::InvalidAttribute { .. })
    ));
    let zeros = parse(&with(tags::STUDY_INSTANCE_UID, "1.2.03.4"), &lenient()).unwrap();
    assert_eq!(zeros.study_uid, "1.2.03.4");
    assert!(zeros.warnings[0].contains("StudyInstanceUID (0020000D)"));
}

#[test]
fn bad_numbers_are_not_indexed() {
    let i = parse(&read("badVR.dcm"), &lenient()).unwrap();
    assert_eq!(i.index.number_of_frames, None);
    assert!(
        i.warnings
            .iter()
            .any(|w| w.starts_with("NumberOfFrames (00280008)")),
        "{:?}",
        i.warnings
    );
    // The retired ACR-NEMA date and time forms are repaired, with a warning.
    let be = parse(&read("ExplVR_BigEnd.dcm"), &lenient()).unwrap();
    assert_eq!(be.index.study_date.as_deref(), Some("19970424"));
    assert_eq!(be.index.study_time.as_deref(), Some("140438"));
    assert_eq!(be.warnings.len(), 2);
}

#[test]
fn mislabelled_implicit_data_set() {
    // Declared explicit VR, written implicit (like pydicom's SC_rgb_jpeg.dcm).
    let data = Raw::implicit()
        .ids()
        .text(0x0010_0010, "PN", "Doe^John")
        .study_series()
        .bytes;
    let bytes = part10("1.2.840.10008.1.2.1", &data);
    let i = parse(&bytes, &lenient()).unwrap();
    assert_eq!(i.index.patient_name.as_deref(), Some("Doe^John"));
    assert!(i.warnings[0].starts_with("TransferSyntaxUID (00020010)"));
    assert!(matches!(
        parse(&bytes, &strict()),
        Err(ParseError::InvalidAttribute {
            tag: "00020010",
            ..
        })
    ));
}

#[test]
fn unknown_transfer_syntax_is_read_as_explicit_little_endian() {
    let data = Raw::explicit().ids().study_series().bytes;
    let bytes = part10("1.2.3.4.5.6", &data);
    let i = parse(&bytes, &lenient()).unwrap();
    assert_eq!(i.transfer_syntax, "1.2.3.4.5.6");
    assert_eq!(i.warnings.len(), 1);
    assert!(parse(&bytes, &strict()).is_err());
}
