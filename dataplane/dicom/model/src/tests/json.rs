//! DICOM JSON details (PS3.18 F.2) on data sets made here.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde_json::{Value, json};

use super::build::*;
use crate::{ParseOptions, bulkdata, parse};

fn metadata(bytes: &[u8]) -> Value {
    let i = parse(bytes, &ParseOptions::default()).unwrap();
    serde_json::from_str(&i.metadata).unwrap()
}

#[test]
fn value_representations() {
    let mut obj = base();
    let put = |obj: &mut InMemDicomObject, group: u16, element: u16, vr: VR, v: PrimitiveValue| {
        obj.put(DataElement::new(Tag(group, element), vr, v));
    };
    put(
        &mut obj,
        0x0028,
        0x0009,
        VR::AT,
        PrimitiveValue::Tags(vec![Tag(0x0018, 0x1063), Tag(0x3004, 0x000C)].into()),
    );
    put(
        &mut obj,
        0x0018,
        0x9087,
        VR::FD,
        PrimitiveValue::F64(vec![f64::NEG_INFINITY, 2.5].into()),
    );
    put(
        &mut obj,
        0x0018,
        0x9089,
        VR::FD,
        PrimitiveValue::F64(vec![f64::NAN].into()),
    );
    put(
        &mut obj,
        0x0018,
        0x605A,
        VR::FL,
        PrimitiveValue::F32(vec![0.1, f32::INFINITY].into()),
    );
    put(
        &mut obj,
        0x0018,
        0x0050,
        VR::DS,
        PrimitiveValue::from("+1.50\\.5\\1e3\\abc"),
    );
    put(
        &mut obj,
        0x0020,
        0x0013,
        VR::IS,
        PrimitiveValue::from("007"),
    );
    put(
        &mut obj,
        0x0028,
        0x0010,
        VR::US,
        PrimitiveValue::U16(vec![1, 2, 65535].into()),
    );
    put(
        &mut obj,
        0x0028,
        0x0106,
        VR::SS,
        PrimitiveValue::I16(vec![-5].into()),
    );
    put(
        &mut obj,
        0x0018,
        0x1310,
        VR::SL,
        PrimitiveValue::I32(vec![-70000].into()),
    );
    put(
        &mut obj,
        0x0040,
        0xA132,
        VR::UL,
        PrimitiveValue::U32(vec![4_000_000_000].into()),
    );
    put(
        &mut obj,
        0x0072,
        0x0082,
        VR::SV,
        PrimitiveValue::I64(vec![-9_000_000_000].into()),
    );
    put(
        &mut obj,
        0x0008,
        0x0008,
        VR::CS,
        PrimitiveValue::from("A\\\\B"),
    );
    put(
        &mut obj,
        0x0020,
        0x4000,
        VR::LT,
        PrimitiveValue::from("back\\slash \"quoted\"\nline  "),
    );
    put(&mut obj, 0x0008, 0x1030, VR::LO, PrimitiveValue::Empty);
    put(
        &mut obj,
        0x0028,
        0x2000,
        VR::OB,
        PrimitiveValue::from(vec![1u8, 2, 3, 4]),
    );
    put(
        &mut obj,
        0x0028,
        0x1201,
        VR::OW,
        PrimitiveValue::from(vec![7u8; 300]),
    );
    obj.put(DataElement::new(
        Tag(0x0009, 0x0010),
        VR::LO,
        PrimitiveValue::from("HDS TEST"),
    ));
    obj.put(DataElement::new(
        Tag(0x0009, 0x1001),
        VR::UN,
        PrimitiveValue::from(vec![9u8, 8]),
    ));
    obj.put(sequence(tags::REFERENCED_IMAGE_SEQUENCE, vec![]));
    obj.put(sequence(
        tags::REFERENCED_STUDY_SEQUENCE,
        vec![InMemDicomObject::new_empty()],
    ));
    let m = metadata(&file(obj, "1.2.840.10008.1.2.1"));

    assert_eq!(m["00280009"]["Value"], json!(["00181063", "3004000C"]));
    assert_eq!(m["00189087"]["Value"], json!(["-Infinity", 2.5]));
    assert_eq!(m["00189089"]["Value"], json!(["NaN"]));
    assert_eq!(m["0018605A"]["Value"], json!([0.1, "Infinity"]));
    let decimals: Value = serde_json::from_str(r#"[1.5, 0.5, 1e3, "abc"]"#).unwrap();
    assert_eq!(
        m["00180050"]["Value"], decimals,
        "valid JSON numbers are kept verbatim"
    );
    assert_eq!(m["00200013"]["Value"], json!([7]));
    assert_eq!(m["00280010"]["Value"], json!([1, 2, 65535]));
    assert_eq!(m["00280106"]["Value"], json!([-5]));
    assert_eq!(m["00181310"]["Value"], json!([-70000]));
    assert_eq!(m["0040A132"]["Value"], json!([4_000_000_000u64]));
    assert_eq!(m["00720082"]["Value"], json!([-9_000_000_000i64]));
    assert_eq!(m["00080008"]["Value"], json!(["A", null, "B"]));
    assert_eq!(
        m["00204000"]["Value"],
        json!(["back\\slash \"quoted\"\nline"])
    );
    assert_eq!(m["00081030"], json!({"vr": "LO"}));
    assert_eq!(
        m["00282000"],
        json!({"vr": "OB", "InlineBinary": "AQIDBA=="})
    );
    assert!(
        m["00281201"]["BulkDataURI"]
            .as_str()
            .unwrap()
            .ends_with("/bulkdata/00281201")
    );
    assert_eq!(m["00091001"], json!({"vr": "UN", "InlineBinary": "CQg="}));
    assert_eq!(m["00090010"]["Value"], json!(["HDS TEST"]));
    assert_eq!(m["00081140"], json!({"vr": "SQ"}));
    assert_eq!(m["00081110"], json!({"vr": "SQ", "Value": [{}]}));
    assert_eq!(
        m["0020000D"]["Value"],
        json!([STUDY]),
        "UI padding is trimmed"
    );
}

#[test]
fn person_names() {
    let data = Raw::explicit()
        .text(0x0008_0005, "CS", "ISO_IR 192")
        .ids()
        .text(0x0010_0010, "PN", "Yamada^Tarou=山田^太郎=やまだ^たろう")
        .text(0x0010_1001, "PN", "A^B\\\\==Ph^On")
        .study_series()
        .bytes;
    let i = parse(
        &part10("1.2.840.10008.1.2.1", &data),
        &ParseOptions::default(),
    )
    .unwrap();
    let m: Value = serde_json::from_str(&i.metadata).unwrap();
    assert_eq!(
        m["00100010"]["Value"],
        json!([{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}])
    );
    assert_eq!(
        m["00101001"]["Value"],
        json!([{"Alphabetic": "A^B"}, null, {"Phonetic": "Ph^On"}])
    );
    assert_eq!(
        i.index.patient_name.as_deref(),
        Some("Yamada^Tarou=山田^太郎=やまだ^たろう")
    );
}

#[test]
fn character_sets() {
    let latin1 = Raw::explicit()
        .text(0x0008_0005, "CS", "ISO_IR 100")
        .ids()
        .bytes_text(0x0010_0010, "PN", b"M\xfcller^J\xe9r\xf4me")
        .study_series()
        .bytes;
    let i = parse(
        &part10("1.2.840.10008.1.2.1", &latin1),
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(i.index.patient_name.as_deref(), Some("Müller^Jérôme"));
    assert!(i.metadata.contains("\"Müller^Jérôme\""));

    // ISO 2022 with escape sequences into JIS X 0208 (PS3.5 H.3.1).
    let japanese = Raw::explicit()
        .text(0x0008_0005, "CS", "\\ISO 2022 IR 87")
        .ids()
        .bytes_text(
            0x0010_0010,
            "PN",
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B",
        )
        .study_series()
        .bytes;
    let i = parse(
        &part10("1.2.840.10008.1.2.1", &japanese),
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(
        i.index.patient_name.as_deref(),
        Some("Yamada^Tarou=山田^太郎")
    );

    let unknown = Raw::explicit()
        .text(0x0008_0005, "CS", "ISO_IR 999")
        .ids()
        .study_series()
        .bytes;
    let i = parse(
        &part10("1.2.840.10008.1.2.1", &unknown),
        &ParseOptions::default(),
    )
    .unwrap();
    assert!(i.warnings[0].starts_with("SpecificCharacterSet (00080005)"));
}

#[test]
fn un_sequences_padding_and_group_lengths() {
    let implicit_item = Raw::implicit().text(0x0008_0100, "SH", "ABCD").bytes;
    let data = Raw::explicit()
        .el(0x0008_0000, "UL", &8u32.to_le_bytes())
        .ids()
        .text(0x0009_0010, "LO", "HDS")
        // A private sequence that lost its VR: UN, undefined length, implicit VR inside.
        .open(0x0009_1010, "UN")
        .item_start()
        .raw(&implicit_item)
        .delimiter(0xFFFE_E00D)
        .delimiter(0xFFFE_E0DD)
        .study_series()
        .el(0xFFFC_FFFC, "OB", &[0; 6])
        .bytes;
    let m = metadata(&part10("1.2.840.10008.1.2.1", &data));
    assert_eq!(
        m["00091010"],
        json!({"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["ABCD"]}}]})
    );
    assert!(m.get("00080000").is_none() && m.get("FFFCFFFC").is_none());
}

#[test]
fn nested_bulk_data_paths() {
    let mut inner = InMemDicomObject::new_empty();
    inner.put(DataElement::new(
        Tag(0x0018, 0x1078),
        VR::DT,
        "20240101120000",
    ));
    inner.put(DataElement::new(Tag(0x0009, 0x0010), VR::LO, "HDS"));
    inner.put(DataElement::new(
        Tag(0x0009, 0x1001),
        VR::OB,
        PrimitiveValue::from(vec![5u8; 300]),
    ));
    let mut deeper = InMemDicomObject::new_empty();
    deeper.put(DataElement::new(
        Tag(0x0028, 0x2000),
        VR::OB,
        PrimitiveValue::from(vec![6u8; 258]),
    ));
    inner.put(sequence(
        Tag(0x0008, 0x1140),
        vec![InMemDicomObject::new_empty(), deeper],
    ));
    let mut obj = base();
    obj.put(sequence(Tag(0x0054, 0x0016), vec![inner]));
    let bytes = file(obj, "1.2.840.10008.1.2");
    let m = metadata(&bytes);
    let item = &m["00540016"]["Value"][0];
    assert_eq!(item["00181078"]["Value"], json!(["20240101120000"]));
    let uri = item["00091001"]["BulkDataURI"].as_str().unwrap();
    assert_eq!(
        uri,
        format!("studies/{STUDY}/series/{SERIES}/instances/{SOP}/bulkdata/00540016/0/00091001")
    );
    let deep = item["00081140"]["Value"][1]["00282000"]["BulkDataURI"]
        .as_str()
        .unwrap();
    assert!(
        deep.ends_with("/bulkdata/00540016/0/00081140/1/00282000"),
        "{deep}"
    );

    let values = bulkdata(&bytes, "00540016/0/00091001").unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].data, vec![5u8; 300]);
    assert_eq!(
        bulkdata(&bytes, "00540016/0/00081140/1/00282000").unwrap()[0].data,
        vec![6u8; 258]
    );
    assert!(matches!(
        bulkdata(&bytes, "00540016/1/00091001"),
        Err(crate::BulkError::NotFound(_))
    ));
}

#[test]
fn big_endian_and_implicit_give_the_same_json() {
    let reference = metadata(&super::support::read("MR_small.dcm"));
    for name in [
        "MR_small_expb.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ] {
        assert_eq!(metadata(&super::support::read(name)), reference, "{name}");
    }
}
