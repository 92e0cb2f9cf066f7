//! Value representation facts needed while walking raw bytes.

use dicom_core::VR;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::header::Tag;
use dicom_dictionary_std::StandardDataDictionary;

/// A byte match instead of `VR::from_binary`, which goes through string parsing; this runs
/// once per element.
#[inline]
pub(crate) fn vr_from_bytes(b: [u8; 2]) -> Option<VR> {
    use VR::*;
    Some(match &b {
        b"AE" => AE,
        b"AS" => AS,
        b"AT" => AT,
        b"CS" => CS,
        b"DA" => DA,
        b"DS" => DS,
        b"DT" => DT,
        b"FD" => FD,
        b"FL" => FL,
        b"IS" => IS,
        b"LO" => LO,
        b"LT" => LT,
        b"OB" => OB,
        b"OD" => OD,
        b"OF" => OF,
        b"OL" => OL,
        b"OV" => OV,
        b"OW" => OW,
        b"PN" => PN,
        b"SH" => SH,
        b"SL" => SL,
        b"SQ" => SQ,
        b"SS" => SS,
        b"ST" => ST,
        b"SV" => SV,
        b"TM" => TM,
        b"UC" => UC,
        b"UI" => UI,
        b"UL" => UL,
        b"UN" => UN,
        b"UR" => UR,
        b"US" => US,
        b"UT" => UT,
        b"UV" => UV,
        _ => return None,
    })
}

/// VRs whose explicit header has two reserved bytes and a 32-bit length (PS3.5 7.1.2).
#[inline]
pub(crate) fn is_long_form(vr: VR) -> bool {
    use VR::*;
    matches!(
        vr,
        OB | OD | OF | OL | OV | OW | SQ | SV | UC | UN | UR | UT | UV
    )
}

/// VRs that DICOM JSON carries as InlineBinary or BulkDataURI.
#[inline]
pub(crate) fn is_binary(vr: VR) -> bool {
    use VR::*;
    matches!(vr, OB | OD | OF | OL | OV | OW | UN)
}

/// Size of one word for the byte order swap of binary VRs read from big endian data.
#[inline]
pub(crate) fn word_size(vr: VR) -> usize {
    use VR::*;
    match vr {
        OW | US | SS | AT => 2,
        OF | OL | UL | SL | FL => 4,
        OD | OV | FD | SV | UV => 8,
        _ => 1,
    }
}

/// The VR an implicit VR data set leaves unsaid, taken from the standard dictionary the way
/// dicom-rs does, except that US/SS ambiguity follows the pixel representation seen so far.
pub(crate) fn implicit_vr(tag: u32, signed_pixels: bool) -> VR {
    let group = (tag >> 16) as u16;
    let element = tag as u16;
    if tag == 0x7FE0_0010 || (group >> 8 == 0x60 && element == 0x3000) {
        return VR::OW;
    }
    if group & 1 == 1 {
        // Private creators are LO; everything else private is opaque.
        return if (0x0010..=0x00FF).contains(&element) {
            VR::LO
        } else {
            VR::UN
        };
    }
    match StandardDataDictionary.by_tag(Tag(group, element)) {
        Some(entry) => match entry.vr() {
            VirtualVr::Exact(vr) => vr,
            VirtualVr::Xs if signed_pixels => VR::SS,
            VirtualVr::Xs => VR::US,
            other => other.relaxed(),
        },
        None => VR::UN,
    }
}
