//! One pass over the raw data set that checks its structure to the last byte and writes DICOM
//! JSON (PS3.18 F.2) as it goes. dicom-object is not used here: it builds a tree we would only
//! walk again, and it treats a stream that stops inside a tag or between pixel fragments as a
//! normal end, which would let truncated uploads be stored.

use std::collections::{HashMap, HashSet};

use dicom_core::VR;
use dicom_encoding::text::SpecificCharacterSet;

use crate::ParseError;
use crate::json::{open_attr, push_base64, push_tag};
use crate::levels::{self, Indexed};
use crate::meta::Encoding;
use crate::source::{Source, truncated};
use crate::vr::{implicit_vr, is_binary, is_long_form, vr_from_bytes, word_size};

const ITEM: u32 = 0xFFFE_E000;
const ITEM_END: u32 = 0xFFFE_E00D;
const SEQUENCE_END: u32 = 0xFFFE_E0DD;
pub(crate) const PIXEL_DATA: u32 = 0x7FE0_0010;
const PADDING: u32 = 0xFFFC_FFFC;
const UNDEFINED: u32 = u32::MAX;
/// Binary values up to this size are inlined; larger ones become bulk data so that metadata
/// answers stay small (Azure uses the same threshold).
const INLINE_LIMIT: u64 = 256;
/// Deep enough for any real data set, shallow enough that hostile nesting cannot exhaust the stack.
const MAX_DEPTH: u32 = 64;

/// A problem that does not stop lenient parsing; strict parsing refuses the instance instead.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub keyword: &'static str,
    pub tag: &'static str,
    /// What is wrong, phrased to follow the attribute's name; strict mode's error says this.
    pub reason: String,
    /// What lenient mode did about it.
    pub effect: String,
}

/// Where a captured value lies in the data set stream.
#[derive(Debug, Clone)]
pub(crate) enum Captured {
    Value {
        offset: u64,
        len: u64,
    },
    Fragments {
        offset_table: Vec<u32>,
        fragments: Vec<(u64, u64)>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub vr: VR,
    pub big_endian: bool,
    pub value: Captured,
}

/// The per-level JSON buffers, filled from the same bytes as the full metadata.
#[derive(Default)]
pub(crate) struct Levels {
    pub bufs: [Vec<u8>; 3],
    pub marks: [Vec<usize>; 3],
    first: [bool; 3],
}

pub(crate) struct State {
    /// The metadata object being written; starts with `{`.
    pub out: Vec<u8>,
    /// Offsets in `out` where the BulkDataURI prefix goes once the UIDs are known.
    pub marks: Vec<usize>,
    pub levels: Option<Levels>,
    /// Top-level values of the indexed attributes as decoded text, untrimmed.
    pub indexed: [Option<String>; Indexed::COUNT],
    pub issues: Vec<Issue>,
    pub capture: Option<HashSet<String>>,
    pub captured: HashMap<String, Capture>,
    /// `TTTTTTTT/i/` segments of the items enclosing the current element.
    path: String,
    pub charset: SpecificCharacterSet,
    pub signed_pixels: bool,
}

impl Issue {
    pub(crate) fn new(
        keyword: &'static str,
        tag: &'static str,
        reason: String,
        effect: &str,
    ) -> Issue {
        Issue {
            keyword,
            tag,
            reason,
            effect: effect.to_string(),
        }
    }
}

impl State {
    pub(crate) fn new(with_levels: bool, capture: Option<HashSet<String>>) -> Self {
        let mut out = Vec::with_capacity(4096);
        out.push(b'{');
        State {
            out,
            marks: Vec::new(),
            levels: with_levels.then(|| Levels {
                first: [true; 3],
                ..Default::default()
            }),
            indexed: Default::default(),
            issues: Vec::new(),
            capture,
            captured: HashMap::new(),
            path: String::new(),
            charset: SpecificCharacterSet::default(),
            signed_pixels: false,
        }
    }

    pub(crate) fn issue(
        &mut self,
        keyword: &'static str,
        tag: &'static str,
        reason: String,
        effect: &str,
    ) {
        self.issues.push(Issue::new(keyword, tag, reason, effect));
    }

    fn capturing(&self, tag: u32) -> Option<String> {
        let wanted = self.capture.as_ref()?;
        let path = format!("{}{}", self.path, crate::json::tag_hex(tag));
        wanted.contains(&path).then_some(path)
    }
}

fn corrupt(what: String) -> ParseError {
    ParseError::Unreadable(what)
}

#[derive(Clone, Copy)]
enum End {
    /// The top level: the data set ends with the stream.
    Stream,
    /// A defined-length item ending at this offset.
    At(u64),
    /// An undefined-length item ending with an item delimitation item.
    Delimited,
}

struct Header {
    tag: u32,
    vr: VR,
    len: u32,
    /// Explicit VR bytes that name no VR; the caller decides whether that is fatal.
    bad_vr: bool,
}

#[inline]
pub(crate) fn u16_at(b: &[u8], big: bool) -> u16 {
    let pair = [b[0], b[1]];
    if big {
        u16::from_be_bytes(pair)
    } else {
        u16::from_le_bytes(pair)
    }
}

#[inline]
pub(crate) fn u32_at(b: &[u8], big: bool) -> u32 {
    let quad = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(quad)
    } else {
        u32::from_le_bytes(quad)
    }
}

#[inline]
fn tag_at(b: &[u8], big: bool) -> u32 {
    (u32::from(u16_at(b, big)) << 16) | u32::from(u16_at(&b[2..], big))
}

fn read_header<S: Source>(src: &mut S, enc: Encoding, signed: bool) -> Result<Header, ParseError> {
    let b = src.take(8)?;
    let tag = tag_at(b, enc.big_endian);
    if tag >> 16 == 0xFFFE || !enc.explicit {
        let len = u32_at(&b[4..], enc.big_endian);
        let vr = if enc.explicit {
            VR::UN
        } else {
            implicit_vr(tag, signed)
        };
        return Ok(Header {
            tag,
            vr,
            len,
            bad_vr: false,
        });
    }
    let Some(vr) = vr_from_bytes([b[4], b[5]]) else {
        return Ok(Header {
            tag,
            vr: VR::UN,
            len: 0,
            bad_vr: true,
        });
    };
    let len = if is_long_form(vr) {
        u32_at(src.take(4)?, enc.big_endian)
    } else {
        u32::from(u16_at(&b[6..], enc.big_endian))
    };
    Ok(Header {
        tag,
        vr,
        len,
        bad_vr: false,
    })
}

/// Walks a whole data set, the top level of the stream.
pub(crate) fn walk<S: Source>(
    src: &mut S,
    st: &mut State,
    enc: Encoding,
) -> Result<(), ParseError> {
    dataset(src, st, End::Stream, enc, 0)?;
    st.out.push(b'}');
    Ok(())
}

fn dataset<S: Source>(
    src: &mut S,
    st: &mut State,
    end: End,
    enc: Encoding,
    depth: u32,
) -> Result<(), ParseError> {
    let top = depth == 0;
    let mut first = true;
    loop {
        match end {
            End::Stream if src.remaining() == 0 => break,
            End::At(stop) => {
                let pos = src.pos();
                if pos == stop {
                    break;
                }
                if pos > stop {
                    return Err(corrupt(format!(
                        "an item overruns its length, ending at {pos} instead of {stop}"
                    )));
                }
            }
            _ => {}
        }
        let before = src.pos();
        let h = read_header(src, enc, st.signed_pixels)?;
        if h.bad_vr {
            if top && h.tag == 0 {
                // Zero bytes after the last element: some writers pad files this way.
                let rest = src.remaining();
                src.skip(rest)?;
                st.issue(
                    "DataSetTrailingPadding",
                    "FFFCFFFC",
                    format!(
                        "is missing, and {} bytes that are not a data element follow the last element",
                        rest + 8
                    ),
                    "they were ignored",
                );
                break;
            }
            return Err(corrupt(format!(
                "element ({:04X},{:04X}) at offset {before} has no valid VR",
                h.tag >> 16,
                h.tag & 0xFFFF
            )));
        }
        match h.tag {
            ITEM_END => {
                if matches!(end, End::Delimited) {
                    break;
                }
                // Stray delimiters elsewhere are harmless; dicom-rs skips them too.
                continue;
            }
            ITEM | SEQUENCE_END => {
                return Err(corrupt(format!(
                    "an item or sequence delimiter at offset {before} is outside any sequence"
                )));
            }
            _ => {}
        }
        let group_length = h.tag & 0xFFFF == 0;
        if group_length || h.tag == PADDING || h.tag >> 16 == 0x0002 {
            if h.len == UNDEFINED {
                return Err(corrupt(format!(
                    "({:04X},{:04X}) has an undefined length",
                    h.tag >> 16,
                    h.tag & 0xFFFF
                )));
            }
            src.skip(u64::from(h.len))?;
            continue;
        }
        if !first {
            st.out.push(b',');
        }
        first = false;
        let start = st.out.len();
        let mark_start = st.marks.len();
        element(src, st, h.tag, h.vr, h.len, enc, depth)?;
        if top {
            route(st, h.tag, start, mark_start);
        }
    }
    Ok(())
}

/// Copies the element just written into the level buffers that want it.
fn route(st: &mut State, tag: u32, start: usize, mark_start: usize) {
    let Some(levels) = st.levels.as_mut() else {
        return;
    };
    let wanted = levels::levels_of(tag);
    if wanted == 0 {
        return;
    }
    let piece = &st.out[start..];
    for i in 0..3 {
        if wanted & (1 << i) == 0 {
            continue;
        }
        let buf = &mut levels.bufs[i];
        if !levels.first[i] {
            buf.push(b',');
        }
        levels.first[i] = false;
        let base = buf.len();
        buf.extend_from_slice(piece);
        for &m in &st.marks[mark_start..] {
            levels.marks[i].push(base + (m - start));
        }
    }
}

fn element<S: Source>(
    src: &mut S,
    st: &mut State,
    tag: u32,
    vr: VR,
    len: u32,
    enc: Encoding,
    depth: u32,
) -> Result<(), ParseError> {
    if len == UNDEFINED && tag == PIXEL_DATA {
        return encapsulated(src, st, tag, enc);
    }
    let was_un = vr == VR::UN;
    // Converters that lost the VRs write standard attributes as UN; the dictionary knows them,
    // and indexing needs them as what they are (pydicom and dcm4che do the same). Private
    // attributes have no such knowledge and stay UN.
    let vr = if was_un && enc.explicit && (tag >> 16) & 1 == 0 {
        implicit_vr(tag, st.signed_pixels)
    } else {
        vr
    };
    if vr == VR::SQ || len == UNDEFINED {
        // A sequence inside UN is in implicit VR little endian (PS3.5 6.2.2).
        let inner = if was_un { Encoding::IMPLICIT_LE } else { enc };
        return sequence(src, st, tag, len, inner, depth);
    }
    let len64 = u64::from(len);
    if len64 > src.remaining() {
        return Err(truncated(src.pos(), len64, src.remaining()));
    }
    if let Some(path) = st.capturing(tag) {
        let value = Captured::Value {
            offset: src.pos(),
            len: len64,
        };
        st.captured.insert(
            path,
            Capture {
                vr,
                big_endian: enc.big_endian,
                value,
            },
        );
    }
    let top = depth == 0;
    if is_binary(vr) || tag == PIXEL_DATA {
        open_attr(&mut st.out, tag, vr);
        if len64 == 0 {
            // An empty value has no Value, InlineBinary or BulkDataURI at all.
        } else if tag == PIXEL_DATA || len64 > INLINE_LIMIT {
            src.skip(len64)?;
            push_bulk_uri(st, tag);
        } else {
            let bytes = src.take(len as usize)?;
            st.out.extend_from_slice(b",\"InlineBinary\":\"");
            if enc.big_endian && word_size(vr) > 1 {
                push_base64(&mut st.out, &to_little_endian(bytes, word_size(vr)));
            } else {
                push_base64(&mut st.out, bytes);
            }
            st.out.push(b'"');
        }
        st.out.push(b'}');
        return Ok(());
    }
    let bytes = src.take(len as usize)?;
    crate::values::primitive(st, tag, vr, bytes, enc.big_endian, top);
    Ok(())
}

fn push_bulk_uri(st: &mut State, tag: u32) {
    st.out.extend_from_slice(b",\"BulkDataURI\":\"");
    st.marks.push(st.out.len());
    st.out.extend_from_slice(st.path.as_bytes());
    push_tag(&mut st.out, tag);
    st.out.push(b'"');
}

pub(crate) fn to_little_endian(bytes: &[u8], word: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    if word > 1 {
        for chunk in v.chunks_exact_mut(word) {
            chunk.reverse();
        }
    }
    v
}

fn sequence<S: Source>(
    src: &mut S,
    st: &mut State,
    tag: u32,
    len: u32,
    enc: Encoding,
    depth: u32,
) -> Result<(), ParseError> {
    if depth >= MAX_DEPTH {
        return Err(corrupt(format!(
            "sequences nest deeper than {MAX_DEPTH} levels"
        )));
    }
    let end = if len == UNDEFINED {
        None
    } else {
        let len = u64::from(len);
        if len > src.remaining() {
            return Err(truncated(src.pos(), len, src.remaining()));
        }
        Some(src.pos() + len)
    };
    open_attr(&mut st.out, tag, VR::SQ);
    let path_len = st.path.len();
    let mut items = 0usize;
    loop {
        if let Some(stop) = end {
            let pos = src.pos();
            if pos == stop {
                break;
            }
            if pos > stop {
                return Err(corrupt(format!(
                    "a sequence overruns its length, ending at {pos} instead of {stop}"
                )));
            }
        }
        let at = src.pos();
        let b = src.take(8)?;
        let item_tag = tag_at(b, enc.big_endian);
        let item_len = u32_at(&b[4..], enc.big_endian);
        match item_tag {
            ITEM => {
                st.out
                    .extend_from_slice(if items == 0 { b",\"Value\":[{" } else { b",{" });
                st.path.truncate(path_len);
                push_tag_into(&mut st.path, tag);
                st.path.push('/');
                st.path.push_str(&items.to_string());
                st.path.push('/');
                let item_end = if item_len == UNDEFINED {
                    End::Delimited
                } else {
                    let l = u64::from(item_len);
                    if l > src.remaining() {
                        return Err(truncated(src.pos(), l, src.remaining()));
                    }
                    End::At(src.pos() + l)
                };
                let saved = st.charset.clone();
                dataset(src, st, item_end, enc, depth + 1)?;
                st.charset = saved;
                st.out.push(b'}');
                items += 1;
            }
            SEQUENCE_END if end.is_none() => break,
            _ => {
                return Err(corrupt(format!(
                    "expected an item in sequence {} at offset {at}, found ({:04X},{:04X})",
                    crate::json::tag_hex(tag),
                    item_tag >> 16,
                    item_tag & 0xFFFF
                )));
            }
        }
    }
    st.path.truncate(path_len);
    if items > 0 {
        st.out.push(b']');
    }
    st.out.push(b'}');
    Ok(())
}

fn push_tag_into(s: &mut String, tag: u32) {
    s.push_str(&crate::json::tag_hex(tag));
}

fn encapsulated<S: Source>(
    src: &mut S,
    st: &mut State,
    tag: u32,
    enc: Encoding,
) -> Result<(), ParseError> {
    let capture = st.capturing(tag);
    let mut offset_table = Vec::new();
    let mut fragments = Vec::new();
    let mut count = 0usize;
    loop {
        let at = src.pos();
        let b = src.take(8)?;
        let item_tag = tag_at(b, enc.big_endian);
        let item_len = u32_at(&b[4..], enc.big_endian);
        match item_tag {
            ITEM if item_len != UNDEFINED => {
                let l = u64::from(item_len);
                if count == 0 && capture.is_some() {
                    let table = src.take(item_len as usize)?;
                    offset_table = table
                        .chunks_exact(4)
                        .map(|c| u32_at(c, enc.big_endian))
                        .collect();
                } else {
                    if capture.is_some() {
                        fragments.push((src.pos(), l));
                    }
                    src.skip(l)?;
                }
                count += 1;
            }
            SEQUENCE_END => break,
            _ => {
                return Err(corrupt(format!(
                    "encapsulated pixel data has a bad item at offset {at}: ({:04X},{:04X}) length {item_len}",
                    item_tag >> 16,
                    item_tag & 0xFFFF
                )));
            }
        }
    }
    if let Some(path) = capture {
        let value = Captured::Fragments {
            offset_table,
            fragments,
        };
        st.captured.insert(
            path,
            Capture {
                vr: VR::OB,
                big_endian: false,
                value,
            },
        );
    }
    open_attr(&mut st.out, tag, VR::OB);
    push_bulk_uri(st, tag);
    st.out.push(b'}');
    Ok(())
}
