//! The Part 10 wrapper: the optional preamble, the "DICM" magic, and the file meta group, which
//! together tell how the data set that follows is encoded.

use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::ParseError;
use crate::source::Source;
use crate::vr::{is_long_form, vr_from_bytes};

pub(crate) const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
const DEFLATED: [&str; 3] = [
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.95",
    "1.2.840.10008.1.2.4.205",
];

/// How data elements are laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub explicit: bool,
    pub big_endian: bool,
}

impl Encoding {
    pub const IMPLICIT_LE: Encoding = Encoding {
        explicit: false,
        big_endian: false,
    };
    pub const EXPLICIT_LE: Encoding = Encoding {
        explicit: true,
        big_endian: false,
    };
}

#[derive(Debug, Clone)]
pub(crate) struct FileMeta {
    pub transfer_syntax: String,
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

/// What the transfer syntax means for reading the data set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub encoding: Encoding,
    pub deflated: bool,
    /// Whether dicom-rs has heard of this syntax at all.
    pub known: bool,
}

pub(crate) fn layout(ts: &str) -> Layout {
    let known = TransferSyntaxRegistry.get(ts).is_some();
    let encoding = match ts {
        IMPLICIT_VR_LITTLE_ENDIAN => Encoding::IMPLICIT_LE,
        EXPLICIT_VR_BIG_ENDIAN => Encoding {
            explicit: true,
            big_endian: true,
        },
        // Every syntax defined after the first three uses explicit VR little endian.
        _ => Encoding::EXPLICIT_LE,
    };
    Layout {
        encoding,
        deflated: DEFLATED.contains(&ts),
        known,
    }
}

/// How many bytes precede the file meta group: the preamble and the magic, or only the magic.
pub(crate) fn header_len(head: &[u8]) -> Result<u64, ParseError> {
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        Ok(132)
    } else if head.len() >= 4 && &head[..4] == b"DICM" {
        Ok(4)
    } else {
        Err(ParseError::NotDicom(
            "no DICM magic at offset 128 or 0".into(),
        ))
    }
}

pub(crate) fn trim_uid(raw: &[u8]) -> String {
    let text: String = raw.iter().map(|&b| b as char).collect();
    text.trim_end_matches(['\0', ' ']).trim_start().to_string()
}

/// Reads the group 0002 elements that follow the magic. The meta group is always explicit VR
/// little endian by the standard, but some writers used implicit VR there, so that is tolerated.
pub(crate) fn read_meta<S: Source>(src: &mut S) -> Result<FileMeta, ParseError> {
    let not_dicom =
        |what: &str| ParseError::NotDicom(format!("unusable file meta information: {what}"));
    let mut meta = FileMeta {
        transfer_syntax: String::new(),
        sop_class_uid: None,
        sop_instance_uid: None,
    };
    let mut count = 0usize;
    while src.remaining() >= 8 {
        let head = src.take(8)?;
        let group = u16::from_le_bytes([head[0], head[1]]);
        let element = u16::from_le_bytes([head[2], head[3]]);
        if group != 0x0002 {
            src.back(8)?;
            break;
        }
        let vr = vr_from_bytes([head[4], head[5]]);
        let len = match vr {
            Some(vr) if is_long_form(vr) => {
                let more = src.take(4).map_err(|_| not_dicom("truncated header"))?;
                u32::from_le_bytes([more[0], more[1], more[2], more[3]])
            }
            Some(_) => u32::from(u16::from_le_bytes([head[6], head[7]])),
            None => u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
        };
        if len == u32::MAX {
            return Err(not_dicom("an element of undefined length"));
        }
        let value = src
            .take(len as usize)
            .map_err(|_| not_dicom("truncated element"))?;
        match element {
            0x0002 => meta.sop_class_uid = Some(trim_uid(value)),
            0x0003 => meta.sop_instance_uid = Some(trim_uid(value)),
            0x0010 => meta.transfer_syntax = trim_uid(value),
            _ => {}
        }
        count += 1;
    }
    if count == 0 {
        return Err(not_dicom("no group 0002 elements after the DICM magic"));
    }
    if meta.transfer_syntax.is_empty() {
        return Err(not_dicom("TransferSyntaxUID (00020010) is missing"));
    }
    if !meta
        .transfer_syntax
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(not_dicom("TransferSyntaxUID (00020010) is not a UID"));
    }
    Ok(meta)
}

/// Whether an explicit VR data set really starts like one; some writers declare explicit VR
/// and write implicit.
pub(crate) fn looks_implicit<S: Source>(src: &mut S) -> Result<bool, ParseError> {
    if src.remaining() < 8 {
        return Ok(false);
    }
    let head = src.take(8)?;
    let group = u16::from_le_bytes([head[0], head[1]]);
    let vr_ok = vr_from_bytes([head[4], head[5]]).is_some();
    src.back(8)?;
    Ok(group != 0xFFFE && !vr_ok)
}
