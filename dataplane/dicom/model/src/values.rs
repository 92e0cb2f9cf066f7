//! Primitive values as DICOM JSON (PS3.18 F.2.3-F.2.5): text decoded with the data set's
//! character set and split into values, numbers as JSON numbers, person names as objects.

use std::borrow::Cow;

use dicom_core::VR;
use dicom_encoding::text::{SpecificCharacterSet, TextCodec};

use crate::json::{open_attr, push_decimal, push_f32, push_f64, push_int, push_str, push_tag};
use crate::levels;
use crate::vr::word_size;
use crate::walk::{State, u16_at, u32_at};

/// VRs whose leading spaces are padding too, not content (PS3.5 table 6.2-1).
fn trims_leading(vr: VR) -> bool {
    use VR::*;
    matches!(vr, AE | AS | CS | DA | DS | DT | IS | LO | SH | TM | UI)
}

/// VRs that never hold several values, so a backslash in them is text.
fn single_valued(vr: VR) -> bool {
    matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR)
}

/// VRs whose repertoire is fixed, so the declared character set does not apply to them.
fn default_repertoire(vr: VR) -> bool {
    use VR::*;
    matches!(vr, AE | AS | CS | DA | DS | DT | IS | TM | UI | UR)
}

fn trim_value(s: &str, vr: VR) -> &str {
    let s = s.trim_end_matches([' ', '\0']);
    if trims_leading(vr) {
        s.trim_start_matches(' ')
    } else {
        s
    }
}

fn decode<'b>(st: &mut State, bytes: &'b [u8], vr: VR) -> Cow<'b, str> {
    if bytes.iter().all(|&b| b < 0x80 && b != 0x1B)
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return Cow::Borrowed(s);
    }
    if default_repertoire(vr) {
        return Cow::Owned(bytes.iter().map(|&b| b as char).collect());
    }
    match st.charset.decode(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(_) => {
            let name = st.charset.name();
            st.issue(
                "SpecificCharacterSet",
                "00080005",
                format!("is {name}, which cannot decode some of the text"),
                "the bytes it could not decode were replaced",
            );
            Cow::Owned(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

fn set_charset(st: &mut State, value: &str) {
    // Japanese data sets declare a single-byte set plus ISO 2022 IR 87; only the ISO 2022 JP
    // decoder understands the escape sequences that switch to kanji, so it wins.
    if value
        .split('\\')
        .any(|c| matches!(c.trim(), "ISO 2022 IR 87" | "ISO 2022 IR 159"))
    {
        st.charset = SpecificCharacterSet::from_code("ISO 2022 IR 87").unwrap_or_default();
        return;
    }
    let mut unknown = None;
    for code in value.split('\\').map(|c| c.trim()) {
        if code.is_empty() {
            continue;
        }
        match SpecificCharacterSet::from_code(code) {
            Some(cs) => {
                st.charset = cs;
                return;
            }
            None => unknown = unknown.or(Some(code.to_string())),
        }
    }
    st.charset = SpecificCharacterSet::default();
    if let Some(code) = unknown {
        st.issue(
            "SpecificCharacterSet",
            "00080005",
            format!("names the unsupported character set {code:?}"),
            "text was read as ISO_IR 100",
        );
    }
}

pub(crate) fn primitive(st: &mut State, tag: u32, vr: VR, bytes: &[u8], big: bool, top: bool) {
    open_attr(&mut st.out, tag, vr);
    let index_slot = if top { levels::indexed(tag) } else { None };
    match vr {
        VR::US | VR::SS | VR::UL | VR::SL | VR::UV | VR::SV | VR::FL | VR::FD | VR::AT => {
            if tag == 0x0028_0103 && bytes.len() >= 2 {
                st.signed_pixels = u16_at(bytes, big) != 0;
            }
            if let Some(slot) = index_slot {
                st.indexed[slot.slot()] = first_number(vr, bytes, big);
            }
            binary_numbers(&mut st.out, vr, bytes, big);
        }
        _ => {
            let text = decode(st, bytes, vr);
            if tag == 0x0008_0005 {
                let owned = text.to_string();
                set_charset(st, &owned);
            }
            if let Some(slot) = index_slot {
                st.indexed[slot.slot()] = Some(text.to_string());
            }
            strings(&mut st.out, vr, &text);
        }
    }
    st.out.push(b'}');
}

fn first_number(vr: VR, bytes: &[u8], big: bool) -> Option<String> {
    let w = word_size(vr);
    let b = bytes.get(..w)?;
    Some(match vr {
        VR::US => u16_at(b, big).to_string(),
        VR::SS => (u16_at(b, big) as i16).to_string(),
        VR::UL => u32_at(b, big).to_string(),
        VR::SL => (u32_at(b, big) as i32).to_string(),
        _ => return None,
    })
}

fn binary_numbers(out: &mut Vec<u8>, vr: VR, bytes: &[u8], big: bool) {
    // An AT value is a pair of 16-bit words, each swapped on its own in big endian.
    let w = if vr == VR::AT { 4 } else { word_size(vr) };
    let n = bytes.len() / w;
    if n == 0 {
        return;
    }
    out.extend_from_slice(b",\"Value\":[");
    for (i, c) in bytes.chunks_exact(w).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut word = [0u8; 8];
        word[..w].copy_from_slice(c);
        if big && vr != VR::AT {
            word[..w].reverse();
        }
        match vr {
            VR::US => push_int(out, u16::from_le_bytes([word[0], word[1]])),
            VR::SS => push_int(out, i16::from_le_bytes([word[0], word[1]])),
            VR::UL => push_int(
                out,
                u32::from_le_bytes([word[0], word[1], word[2], word[3]]),
            ),
            VR::SL => push_int(
                out,
                i32::from_le_bytes([word[0], word[1], word[2], word[3]]),
            ),
            VR::UV => push_int(out, u64::from_le_bytes(word)),
            VR::SV => push_int(out, i64::from_le_bytes(word)),
            VR::FL => push_f32(
                out,
                f32::from_le_bytes([word[0], word[1], word[2], word[3]]),
            ),
            VR::FD => push_f64(out, f64::from_le_bytes(word)),
            _ => {
                let g = u16_at(&word, big);
                let e = u16_at(&word[2..], big);
                out.push(b'"');
                push_tag(out, (u32::from(g) << 16) | u32::from(e));
                out.push(b'"');
            }
        }
    }
    out.push(b']');
}

fn strings(out: &mut Vec<u8>, vr: VR, text: &str) {
    let whole = trim_value(text, vr);
    let only_delimiters =
        vr == VR::PN && whole.chars().all(|c| matches!(c, '^' | '=' | '\\' | ' '));
    if whole.is_empty() || only_delimiters {
        return;
    }
    out.extend_from_slice(b",\"Value\":[");
    if single_valued(vr) {
        push_str(out, whole);
    } else {
        for (i, part) in whole.split('\\').enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let part = trim_value(part, vr);
            if part.is_empty() {
                out.extend_from_slice(b"null");
                continue;
            }
            match vr {
                VR::PN => person_name(out, part),
                VR::DS => push_decimal(out, part, false),
                VR::IS => push_decimal(out, part, true),
                _ => push_str(out, part),
            }
        }
    }
    out.push(b']');
}

fn person_name(out: &mut Vec<u8>, name: &str) {
    const GROUPS: [&str; 3] = ["Alphabetic", "Ideographic", "Phonetic"];
    // Trailing empty components carry nothing; dcmtk drops them as well.
    let groups: Vec<(&str, &str)> = GROUPS
        .iter()
        .zip(name.splitn(3, '='))
        .map(|(g, p)| (*g, p.trim_end_matches([' ', '^'])))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if groups.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    out.push(b'{');
    for (i, (group, part)) in groups.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(group.as_bytes());
        out.extend_from_slice(b"\":");
        push_str(out, part);
    }
    out.push(b'}');
}
