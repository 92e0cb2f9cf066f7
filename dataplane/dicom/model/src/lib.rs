//! What a DICOM instance says: the attributes the index keeps, its DICOM JSON (PS3.18 F) with
//! BulkDataURIs, its frames, rendered images, and transcoding to explicit VR little endian.
//!
//! Parsing walks the raw bytes once (see `walk`), so storing an instance costs one pass that
//! both validates its structure and produces every JSON document the services answer from.

mod bulk;
mod json;
mod levels;
mod meta;
mod pixel;
mod render;
mod source;
mod transcode;
mod validate;
mod values;
mod vr;
mod walk;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub use bulk::{BulkError, BulkValue, bulkdata, encapsulated_pixels};
pub use pixel::{
    Frame, FrameError, PixelLayout, frames, media_type as frame_media_type, undecodable,
};
pub use render::{RenderError, RenderFormat, render};
pub use transcode::{EXPLICIT_VR_LITTLE_ENDIAN, TranscodeError, can_transcode, transcode};

use levels::Indexed;
use meta::{Encoding, FileMeta};
use source::{FileSource, SliceSource, Source};
use validate::{Checked, UidCheck};
use walk::{Issue, State};

/// How forgiving parsing is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Refuse instances with any of the problems lenient mode only warns about.
    pub strict: bool,
}

/// Everything the store and the index need from one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub sop_class_uid: String,
    /// From the file meta group, trimmed.
    pub transfer_syntax: String,
    pub index: IndexAttributes,
    /// DICOM JSON (PS3.18 F) of the whole data set without the file meta group. Binary values
    /// (OB OD OF OL OV OW UN) over 256 bytes, and Pixel Data always, are
    /// `{"vr":..,"BulkDataURI":"studies/{study}/series/{series}/instances/{sop}/bulkdata/{path}"}`
    /// with `path` like `7FE00010` or `00540016/0/00181078`; shorter ones are InlineBinary.
    pub metadata: String,
    /// The same kind of object restricted to study-level attributes.
    pub study_json: String,
    /// Restricted to series-level attributes.
    pub series_json: String,
    /// Restricted to instance-level attributes.
    pub instance_json: String,
    /// Problems that did not stop a lenient parse, one sentence each.
    pub warnings: Vec<String>,
}

/// The attributes the index keeps; all trimmed, `None` when absent, empty or invalid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexAttributes {
    pub patient_id: Option<String>,
    /// The raw PN text, all component groups included.
    pub patient_name: Option<String>,
    /// YYYYMMDD, only when it is a real date.
    pub patient_birth_date: Option<String>,
    /// YYYYMMDD, only when it is a real date.
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub study_description: Option<String>,
    pub study_id: Option<String>,
    pub patient_sex: Option<String>,
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i32>,
    /// YYYYMMDD, only when it is a real date.
    pub performed_procedure_step_start_date: Option<String>,
    pub manufacturer_model_name: Option<String>,
    pub instance_number: Option<i32>,
    pub rows: Option<u16>,
    pub columns: Option<u16>,
    pub bits_allocated: Option<u16>,
    pub number_of_frames: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a Part 10 stream: no DICM magic, or no usable file meta information.
    #[error("not a DICOM file: {0}")]
    NotDicom(String),
    /// The data set is truncated or corrupt somewhere, pixel data included.
    #[error("unreadable DICOM data set: {0}")]
    Unreadable(String),
    /// One of the four identifying UIDs is missing or empty.
    #[error("required attribute {keyword} ({tag}) is missing or empty")]
    MissingAttribute {
        keyword: &'static str,
        tag: &'static str,
    },
    /// A value strict mode refuses, or a UID unusable even leniently.
    #[error("attribute {keyword} ({tag}) is invalid: it {reason}")]
    InvalidAttribute {
        keyword: &'static str,
        tag: &'static str,
        reason: String,
    },
}

impl ParseError {
    /// The STOW-RS FailureReason (0008,1197): 272 processing failure (0x0110) for data that
    /// cannot be read, 43264 validation failure (0xA900) for data that reads but is refused.
    pub fn failure_reason(&self) -> u16 {
        match self {
            ParseError::NotDicom(_) | ParseError::Unreadable(_) => 272,
            ParseError::MissingAttribute { .. } | ParseError::InvalidAttribute { .. } => 43264,
        }
    }
}

/// The SOP Class and SOP Instance UIDs (in that order) the file meta information of a Part 10
/// file names, read from its first bytes: what a STOW failure can tell about an instance the
/// data set of which could not be stored (missing UIDs, a truncated data set). `None` for what
/// cannot be read.
pub fn identify(head: &[u8]) -> (Option<String>, Option<String>) {
    let read = || -> Result<FileMeta, ParseError> {
        let mut src = SliceSource::new(head);
        src.skip(meta::header_len(head)?)?;
        meta::read_meta(&mut src)
    };
    let Ok(meta) = read() else {
        return (None, None);
    };
    let named = |v: Option<String>| v.filter(|v| !v.is_empty());
    (named(meta.sop_class_uid), named(meta.sop_instance_uid))
}

/// Parses a whole Part 10 file held in memory, with or without the 128-byte preamble.
pub fn parse(bytes: &[u8], options: &ParseOptions) -> Result<Instance, ParseError> {
    let mut src = SliceSource::new(bytes);
    src.skip(meta::header_len(bytes)?)?;
    let meta = meta::read_meta(&mut src)?;
    let layout = meta::layout(&meta.transfer_syntax);
    let mut state = State::new(true, None);
    let mut issues = Vec::new();
    if layout.deflated {
        let inflated = inflate(&bytes[src.pos() as usize..])?;
        let mut inner = SliceSource::new(&inflated);
        run(&mut inner, &mut state, layout.encoding, &mut issues)?;
    } else {
        run(&mut src, &mut state, layout.encoding, &mut issues)?;
    }
    if !layout.known {
        issues.push(unknown_syntax(&meta.transfer_syntax));
    }
    build(meta, state, issues, options)
}

/// The same as [`parse`] for a file on disk, which may be far larger than memory should hold:
/// bulk values are seeked over, never read.
pub fn parse_file(path: &Path, options: &ParseOptions) -> Result<Instance, ParseError> {
    let io = |e: std::io::Error| ParseError::Unreadable(format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(132);
    (&mut file).take(132).read_to_end(&mut head).map_err(io)?;
    let skip = meta::header_len(&head)?;
    let file = File::open(path).map_err(io)?;
    let mut src = FileSource::new(BufReader::with_capacity(64 * 1024, file), len);
    src.skip(skip)?;
    let meta = meta::read_meta(&mut src)?;
    let layout = meta::layout(&meta.transfer_syntax);
    let mut state = State::new(true, None);
    let mut issues = Vec::new();
    if layout.deflated {
        let rest = src.remaining() as usize;
        let compressed = src.take(rest)?.to_vec();
        let inflated = inflate(&compressed)?;
        run(
            &mut SliceSource::new(&inflated),
            &mut state,
            layout.encoding,
            &mut issues,
        )?;
    } else {
        run(&mut src, &mut state, layout.encoding, &mut issues)?;
    }
    if !layout.known {
        issues.push(unknown_syntax(&meta.transfer_syntax));
    }
    build(meta, state, issues, options)
}

fn unknown_syntax(ts: &str) -> Issue {
    Issue::new(
        "TransferSyntaxUID",
        "00020010",
        format!("names {ts}, a transfer syntax this service does not know"),
        "the data set was read as explicit VR little endian",
    )
}

/// Deflated data sets are small in practice; the cap keeps a deflate bomb from exhausting memory.
const MAX_INFLATED: u64 = 1 << 30;

fn inflate(compressed: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(compressed.len() * 4);
    flate2::read::DeflateDecoder::new(compressed)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ParseError::Unreadable(format!("the deflated data set cannot be inflated: {e}"))
        })?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(ParseError::Unreadable(
            "the deflated data set inflates beyond 1 GiB".into(),
        ));
    }
    Ok(out)
}

/// Walks the data set, first checking that an explicit VR syntax is not secretly implicit.
fn run<S: Source>(
    src: &mut S,
    state: &mut State,
    mut enc: Encoding,
    issues: &mut Vec<Issue>,
) -> Result<(), ParseError> {
    if enc == Encoding::EXPLICIT_LE && meta::looks_implicit(src)? {
        enc = Encoding::IMPLICIT_LE;
        issues.push(Issue::new(
            "TransferSyntaxUID",
            "00020010",
            "declares explicit VR, but the data set is written in implicit VR".into(),
            "it was read as implicit VR",
        ));
    }
    walk::walk(src, state, enc)
}

/// A walk of an in-memory file for the retrieval functions, keeping the values at `capture`.
pub(crate) struct Scan<'a> {
    pub meta: FileMeta,
    /// The data set bytes the capture offsets refer to (inflated when the file was deflated).
    pub stream: Cow<'a, [u8]>,
    pub captured: std::collections::HashMap<String, walk::Capture>,
}

pub(crate) fn scan<'a>(bytes: &'a [u8], capture: HashSet<String>) -> Result<Scan<'a>, ParseError> {
    let mut src = SliceSource::new(bytes);
    src.skip(meta::header_len(bytes)?)?;
    let meta = meta::read_meta(&mut src)?;
    let layout = meta::layout(&meta.transfer_syntax);
    let start = src.pos() as usize;
    let stream: Cow<'a, [u8]> = if layout.deflated {
        Cow::Owned(inflate(&bytes[start..])?)
    } else {
        Cow::Borrowed(&bytes[start..])
    };
    let mut state = State::new(false, Some(capture));
    run(
        &mut SliceSource::new(&stream),
        &mut state,
        layout.encoding,
        &mut Vec::new(),
    )?;
    Ok(Scan {
        meta,
        stream,
        captured: state.captured,
    })
}

fn text(state: &State, slot: Indexed) -> Option<&str> {
    state.indexed[slot.slot()].as_deref()
}

fn build(
    meta: FileMeta,
    state: State,
    mut issues: Vec<Issue>,
    options: &ParseOptions,
) -> Result<Instance, ParseError> {
    let mut uid = |slot: Indexed| -> Result<String, ParseError> {
        let (keyword, tag) = (slot.keyword(), slot.tag());
        match validate::uid(text(&state, slot).unwrap_or("")) {
            UidCheck::Missing => Err(ParseError::MissingAttribute { keyword, tag }),
            UidCheck::Unusable(reason) => Err(ParseError::InvalidAttribute {
                keyword,
                tag,
                reason,
            }),
            UidCheck::Usable(value, warnings) => {
                issues.extend(
                    warnings
                        .into_iter()
                        .map(|(reason, effect)| Issue::new(keyword, tag, reason, effect)),
                );
                Ok(value)
            }
        }
    };
    let study_uid = uid(Indexed::StudyUid)?;
    let series_uid = uid(Indexed::SeriesUid)?;
    let sop_uid = uid(Indexed::SopUid)?;
    let sop_class_uid = uid(Indexed::SopClassUid)?;
    for (meta_value, value, keyword, tag) in [
        (
            &meta.sop_instance_uid,
            &sop_uid,
            "MediaStorageSOPInstanceUID",
            "00020003",
        ),
        (
            &meta.sop_class_uid,
            &sop_class_uid,
            "MediaStorageSOPClassUID",
            "00020002",
        ),
    ] {
        if let Some(m) = meta_value
            .as_deref()
            .filter(|m| !m.is_empty() && m != value)
        {
            issues.push(Issue::new(
                keyword,
                tag,
                format!("is {m}, which differs from {value} in the data set"),
                "the data set's value was used",
            ));
        }
    }
    let index = index_attributes(&state, &mut issues);
    issues.extend(state.issues.iter().cloned());
    if options.strict {
        if let Some(Issue {
            keyword,
            tag,
            reason,
            ..
        }) = issues.into_iter().next()
        {
            return Err(ParseError::InvalidAttribute {
                keyword,
                tag,
                reason,
            });
        }
        issues = Vec::new();
    }
    let prefix = format!("studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/bulkdata/");
    let metadata = splice(&state.out, &state.marks, &prefix, false);
    let (study_json, series_json, instance_json) = match &state.levels {
        Some(l) => (
            splice(&l.bufs[0], &l.marks[0], &prefix, true),
            splice(&l.bufs[1], &l.marks[1], &prefix, true),
            splice(&l.bufs[2], &l.marks[2], &prefix, true),
        ),
        None => Default::default(),
    };
    Ok(Instance {
        study_uid,
        series_uid,
        sop_uid,
        sop_class_uid,
        transfer_syntax: meta.transfer_syntax,
        index,
        metadata,
        study_json,
        series_json,
        instance_json,
        warnings: issues
            .into_iter()
            .map(|i| format!("{} ({}) {}; {}.", i.keyword, i.tag, i.reason, i.effect))
            .collect(),
    })
}

/// Inserts the BulkDataURI prefix at each mark; `wrap` adds the braces the level buffers lack.
fn splice(body: &[u8], marks: &[usize], prefix: &str, wrap: bool) -> String {
    let mut out = Vec::with_capacity(body.len() + marks.len() * prefix.len() + 2);
    if wrap {
        out.push(b'{');
    }
    let mut from = 0;
    for &m in marks {
        out.extend_from_slice(&body[from..m]);
        out.extend_from_slice(prefix.as_bytes());
        from = m;
    }
    out.extend_from_slice(&body[from..]);
    if wrap {
        out.push(b'}');
    }
    // Every byte came from a `str` or is ASCII, so this never falls back in practice.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

const NOT_INDEXED: &str = "it was stored as sent but not indexed";

fn index_attributes(state: &State, issues: &mut Vec<Issue>) -> IndexAttributes {
    let plain = |slot: Indexed| {
        text(state, slot)
            .map(|s| s.trim_matches([' ', '\0']).to_string())
            .filter(|s| !s.is_empty())
    };
    let mut note = |slot: Indexed, reason: String, effect: &str| {
        issues.push(Issue::new(slot.keyword(), slot.tag(), reason, effect))
    };
    let mut checked = |slot: Indexed, check: &dyn Fn(&str) -> Checked<String>| -> Option<String> {
        match check(text(state, slot)?) {
            Checked::Empty => None,
            Checked::Valid(v) => Some(v),
            Checked::Repaired(v, reason) => {
                note(slot, reason, &format!("it was indexed as {v}"));
                Some(v)
            }
            Checked::Invalid(reason) => {
                note(slot, reason, NOT_INDEXED);
                None
            }
        }
    };
    let patient_birth_date = checked(Indexed::PatientBirthDate, &validate::date);
    let study_date = checked(Indexed::StudyDate, &validate::date);
    let study_time = checked(Indexed::StudyTime, &validate::time);
    let performed_procedure_step_start_date =
        checked(Indexed::PerformedProcedureStepStartDate, &validate::date);
    let mut number = |slot: Indexed, what: &str| -> Option<i64> {
        match validate::integer::<i64>(text(state, slot)?, what) {
            Checked::Valid(v) => Some(v),
            Checked::Invalid(reason) => {
                issues.push(Issue::new(slot.keyword(), slot.tag(), reason, NOT_INDEXED));
                None
            }
            _ => None,
        }
    };
    let series_number = number(Indexed::SeriesNumber, "an integer");
    let instance_number = number(Indexed::InstanceNumber, "an integer");
    let rows = number(Indexed::Rows, "a row count");
    let columns = number(Indexed::Columns, "a column count");
    let bits_allocated = number(Indexed::BitsAllocated, "a bit count");
    let number_of_frames = number(Indexed::NumberOfFrames, "a frame count");
    let mut fits = |slot: Indexed, v: Option<i64>, lo: i64, hi: i64| -> Option<i64> {
        let v = v?;
        if (lo..=hi).contains(&v) {
            Some(v)
        } else {
            issues.push(Issue::new(
                slot.keyword(),
                slot.tag(),
                format!("has the value {v}, outside {lo}..={hi}"),
                NOT_INDEXED,
            ));
            None
        }
    };
    IndexAttributes {
        patient_id: plain(Indexed::PatientId),
        patient_name: plain(Indexed::PatientName),
        patient_birth_date,
        study_date,
        study_time,
        accession_number: plain(Indexed::AccessionNumber),
        referring_physician_name: plain(Indexed::ReferringPhysicianName),
        study_description: plain(Indexed::StudyDescription),
        study_id: plain(Indexed::StudyId),
        patient_sex: plain(Indexed::PatientSex),
        modality: plain(Indexed::Modality),
        series_description: plain(Indexed::SeriesDescription),
        series_number: fits(
            Indexed::SeriesNumber,
            series_number,
            i32::MIN.into(),
            i32::MAX.into(),
        )
        .map(|v| v as i32),
        performed_procedure_step_start_date,
        manufacturer_model_name: plain(Indexed::ManufacturerModelName),
        instance_number: fits(
            Indexed::InstanceNumber,
            instance_number,
            i32::MIN.into(),
            i32::MAX.into(),
        )
        .map(|v| v as i32),
        rows: fits(Indexed::Rows, rows, 0, u16::MAX.into()).map(|v| v as u16),
        columns: fits(Indexed::Columns, columns, 0, u16::MAX.into()).map(|v| v as u16),
        bits_allocated: fits(Indexed::BitsAllocated, bits_allocated, 0, u16::MAX.into())
            .map(|v| v as u16),
        number_of_frames: fits(
            Indexed::NumberOfFrames,
            number_of_frames,
            1,
            u32::MAX.into(),
        )
        .map(|v| v as u32),
    }
}
