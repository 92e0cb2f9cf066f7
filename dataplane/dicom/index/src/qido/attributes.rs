//! The attributes QIDO matches without being asked to (Azure's searchable set), each with how
//! it is matched and on which column, and the standard dictionary's names for tags.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;

use super::Level;

/// How an attribute is matched, and on which column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    /// A list of UIDs (`,` or `\` separated), matched exactly.
    Uid,
    /// Single-value matching, `*` and `?` wildcards; case-sensitive as DICOM strings are.
    Text,
    /// The same, case-insensitive (descriptions are typed by people).
    TextFolded,
    /// PersonName: case-insensitive on words; `fuzzymatching` makes each query word a prefix
    /// of some word of the name.
    Name,
    /// A date or a range `a-b`, `a-`, `-b`.
    Date,
    /// Any series of the study has one of the listed modalities.
    Modalities,
    Integer,
    /// Numbers of any numeric VR, compared as double precision (extended query tags).
    Number,
}

#[derive(Debug)]
pub(super) struct Searchable {
    pub(super) tag: &'static str,
    pub(super) keyword: &'static str,
    pub(super) level: Level,
    pub(super) kind: Kind,
    pub(super) column: &'static str,
}

pub(super) const SEARCHABLE: &[Searchable] = &[
    s(
        "0020000D",
        "StudyInstanceUID",
        Level::Study,
        Kind::Uid,
        "t.study_uid",
    ),
    s(
        "00100020",
        "PatientID",
        Level::Study,
        Kind::Text,
        "t.patient_id",
    ),
    s(
        "00100010",
        "PatientName",
        Level::Study,
        Kind::Name,
        "t.patient_name_words",
    ),
    s(
        "00080050",
        "AccessionNumber",
        Level::Study,
        Kind::Text,
        "t.accession_number",
    ),
    s(
        "00080090",
        "ReferringPhysicianName",
        Level::Study,
        Kind::Name,
        "t.referring_physician_words",
    ),
    s(
        "00080020",
        "StudyDate",
        Level::Study,
        Kind::Date,
        "t.study_date",
    ),
    s(
        "00100030",
        "PatientBirthDate",
        Level::Study,
        Kind::Date,
        "t.patient_birth_date",
    ),
    s(
        "00081030",
        "StudyDescription",
        Level::Study,
        Kind::TextFolded,
        "t.study_description",
    ),
    s(
        "00080061",
        "ModalitiesInStudy",
        Level::Study,
        Kind::Modalities,
        "",
    ),
    s(
        "0020000E",
        "SeriesInstanceUID",
        Level::Series,
        Kind::Uid,
        "s.series_uid",
    ),
    s(
        "00080060",
        "Modality",
        Level::Series,
        Kind::Text,
        "s.modality",
    ),
    s(
        "00400244",
        "PerformedProcedureStepStartDate",
        Level::Series,
        Kind::Date,
        "s.pps_start_date",
    ),
    s(
        "00081090",
        "ManufacturerModelName",
        Level::Series,
        Kind::Text,
        "s.manufacturer_model_name",
    ),
    s(
        "00080018",
        "SOPInstanceUID",
        Level::Instance,
        Kind::Uid,
        "i.sop_uid",
    ),
    s(
        "00080016",
        "SOPClassUID",
        Level::Instance,
        Kind::Uid,
        "i.sop_class_uid",
    ),
    s(
        "00200013",
        "InstanceNumber",
        Level::Instance,
        Kind::Integer,
        "i.instance_number",
    ),
];

const fn s(
    tag: &'static str,
    keyword: &'static str,
    level: Level,
    kind: Kind,
    column: &'static str,
) -> Searchable {
    Searchable {
        tag,
        keyword,
        level,
        kind,
        column,
    }
}

/// A tag given as a keyword or 8 hex digits, as its 8 upper-case hex digits.
pub fn tag_of(name: &str) -> Option<String> {
    if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(name.to_ascii_uppercase());
    }
    StandardDataDictionary.by_name(name).map(|e| {
        let t = e.tag_range().inner();
        format!("{:04X}{:04X}", t.group(), t.element())
    })
}

/// The VR the standard dictionary gives a tag (8 hex digits), when it gives exactly one.
pub fn dictionary_vr(tag: &str) -> Option<String> {
    let group = u16::from_str_radix(tag.get(..4)?, 16).ok()?;
    let element = u16::from_str_radix(tag.get(4..8)?, 16).ok()?;
    match StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))?
        .vr
    {
        dicom_core::dictionary::VirtualVr::Exact(vr) => Some(vr.to_string().to_owned()),
        _ => None,
    }
}

/// A tag (8 hex digits) by its keyword when the standard dictionary has one.
pub fn keyword_of(tag: &str) -> String {
    let parsed = u32::from_str_radix(tag, 16)
        .ok()
        .map(|t| dicom_core::Tag((t >> 16) as u16, t as u16));
    parsed
        .and_then(|t| StandardDataDictionary.by_tag(t))
        .map_or_else(|| tag.to_owned(), |e| e.alias.to_owned())
}

/// Whether a tag is one QIDO matches without being added (Azure refuses those as extended).
pub fn is_standard_searchable(tag: &str) -> bool {
    SEARCHABLE.iter().any(|s| s.tag == tag)
}
