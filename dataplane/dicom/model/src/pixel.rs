//! Frames of pixel data, as stored or decoded to native little endian.
//!
//! Splitting encapsulated pixel data into frames is done here rather than by dicom-pixeldata, so
//! that "as stored" and "decoded" agree on which fragments make a frame, and so that a corrupt
//! fragment layout is an error rather than an index panic inside a codec adapter.

use std::borrow::Cow;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_core::VR;
use dicom_core::value::C;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::adapters::{PixelDataObject, RawPixelData};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::walk::{Capture, Captured};
use crate::{ParseError, Scan, meta, scan};

pub(crate) const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const OCTET_STREAM: &str = "application/octet-stream";

/// One frame, ready to be a part of a multipart answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub content_type: String,
    pub transfer_syntax: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("the instance has no pixel data")]
    NoPixelData,
    /// Frame numbers start at 1 and end at NumberOfFrames.
    #[error("frame {0} does not exist")]
    NotFound(u32),
    /// No decoder for this transfer syntax is built in.
    #[error("pixel data in transfer syntax {0} cannot be decoded")]
    NotDecodable(String),
    /// A decoder is built in, but not for pixel data like this (see [`undecodable`]).
    #[error("pixel data in transfer syntax {ts} cannot be decoded: {reason}")]
    Unsupported { ts: String, reason: String },
    #[error("frame {frame} could not be decoded: {reason}")]
    Decode { frame: u32, reason: String },
    #[error("the pixel data does not match its description: {0}")]
    Corrupt(String),
}

/// The top-level attributes that describe the pixel data.
pub(crate) const PIXEL_TAGS: [&str; 11] = [
    "00280002", "00280004", "00280006", "00280008", "00280010", "00280011", "00280100", "00280101",
    "00280103", "7FE00010", "7FE00001",
];

pub(crate) fn pixel_paths() -> HashSet<String> {
    PIXEL_TAGS.iter().map(|s| s.to_string()).collect()
}

/// The raw bytes of a captured plain value, in little endian for word-sized VRs.
pub(crate) fn value<'s>(scan: &'s Scan, path: &str) -> Option<(&'s Capture, Cow<'s, [u8]>)> {
    let cap = scan.captured.get(path)?;
    let Captured::Value { offset, len } = cap.value else {
        return None;
    };
    let bytes = scan.stream.get(offset as usize..(offset + len) as usize)?;
    let word = crate::vr::word_size(cap.vr);
    let bytes = if cap.big_endian && word > 1 {
        Cow::Owned(crate::walk::to_little_endian(bytes, word))
    } else {
        Cow::Borrowed(bytes)
    };
    Some((cap, bytes))
}

pub(crate) fn text(scan: &Scan, path: &str) -> Option<String> {
    let (_, bytes) = value(scan, path)?;
    let s: String = bytes.iter().map(|&b| b as char).collect();
    let s = s.trim_matches([' ', '\0']).to_string();
    (!s.is_empty()).then_some(s)
}

pub(crate) fn unsigned(scan: &Scan, path: &str) -> Option<u16> {
    let (cap, bytes) = value(scan, path)?;
    match cap.vr {
        VR::US | VR::SS | VR::OW | VR::UN | VR::OB => {
            bytes.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]))
        }
        _ => text(scan, path)?.split('\\').next()?.trim().parse().ok(),
    }
}

pub(crate) fn decimals(scan: &Scan, path: &str) -> Vec<f64> {
    text(scan, path)
        .map(|s| {
            s.split('\\')
                .filter_map(|v| v.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The Image Pixel module values a frame needs.
#[derive(Debug, Clone)]
pub(crate) struct PixelInfo {
    pub rows: u16,
    pub cols: u16,
    pub samples: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    pub planar: u16,
    pub frames: u32,
}

impl PixelInfo {
    pub(crate) fn read(scan: &Scan) -> Result<PixelInfo, FrameError> {
        let need = |path: &str, name: &str| {
            unsigned(scan, path)
                .ok_or_else(|| FrameError::Corrupt(format!("{name} is missing or unreadable")))
        };
        let rows = need("00280010", "Rows")?;
        let cols = need("00280011", "Columns")?;
        let bits_allocated = need("00280100", "BitsAllocated")?;
        let frames = match text(scan, "00280008") {
            Some(n) => n
                .split('\\')
                .next()
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    FrameError::Corrupt(format!("NumberOfFrames {n:?} is not a frame count"))
                })?,
            None => 1,
        };
        Ok(PixelInfo {
            rows,
            cols,
            samples: unsigned(scan, "00280002").unwrap_or(1),
            bits_allocated,
            bits_stored: unsigned(scan, "00280101").unwrap_or(bits_allocated),
            signed: unsigned(scan, "00280103").unwrap_or(0) != 0,
            photometric: text(scan, "00280004").unwrap_or_else(|| "MONOCHROME2".into()),
            planar: unsigned(scan, "00280006").unwrap_or(0),
            frames,
        })
    }

    /// Bits in one native frame; YBR_FULL_422 stores two samples per pixel on average.
    pub(crate) fn frame_bits(&self) -> u64 {
        let samples = if self.photometric == "YBR_FULL_422" && self.samples == 3 {
            2
        } else {
            u64::from(self.samples)
        };
        u64::from(self.rows) * u64::from(self.cols) * samples * u64::from(self.bits_allocated)
    }
}

/// The Image Pixel attributes that decide whether the built-in codecs can decode an
/// instance's pixel data; the index keeps them, so a retrieve can check a whole study at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PixelLayout {
    pub bits_allocated: Option<u16>,
    pub bits_stored: Option<u16>,
    pub samples: Option<u16>,
}

/// Why the built-in codecs cannot decode pixel data of this syntax and layout, if they cannot.
/// The codecs only find out while decoding, which for a streamed multipart answer is after its
/// status line went out; this tells beforehand, from the attributes the codecs refuse on.
pub fn undecodable(ts: &str, layout: &PixelLayout) -> Option<String> {
    let codec = match ts.trim_matches(['\0', ' ']) {
        "1.2.840.10008.1.2.5" => "RLE",
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" => "lossy JPEG",
        "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => "lossless JPEG",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        _ => return None,
    };
    if let Some(b) = layout.bits_allocated.filter(|b| *b != 8 && *b != 16) {
        return Some(format!(
            "BitsAllocated is {b}, and the {codec} decoder handles 8 or 16"
        ));
    }
    // jpeg-decoder reads 8-bit DCT only (12-bit lossy JPEG is its "SamplePrecision(12)").
    if codec == "lossy JPEG"
        && let Some(b) = layout
            .bits_stored
            .or(layout.bits_allocated)
            .filter(|b| *b > 8)
    {
        return Some(format!(
            "BitsStored is {b}, and the lossy JPEG decoder handles 8-bit samples only"
        ));
    }
    if let Some(n) = layout.samples.filter(|n| *n != 1 && *n != 3) {
        return Some(format!(
            "SamplesPerPixel is {n}, and the {codec} decoder handles 1 or 3"
        ));
    }
    None
}

/// The media type PS3.18 table 8.7.3-2 gives compressed frames of a transfer syntax.
pub fn media_type(ts: &str) -> &'static str {
    if ts == "1.2.840.10008.1.2.5" {
        return "image/dicom-rle";
    }
    match ts.strip_prefix("1.2.840.10008.1.2.4.") {
        Some("50" | "51" | "57" | "70") => "image/jpeg",
        Some("80" | "81") => "image/jls",
        Some("90" | "91") => "image/jp2",
        Some("92" | "93") => "image/jpx",
        Some("201" | "202" | "203") => "image/jphc",
        _ => OCTET_STREAM,
    }
}

/// Reads `bytes` and returns the requested frames (numbered from 1) in the order asked.
pub fn frames(bytes: &[u8], numbers: &[u32], as_stored: bool) -> Result<Vec<Frame>, FrameError> {
    let scan = scan(bytes, pixel_paths())?;
    let source = FrameSource::new(&scan)?;
    numbers
        .iter()
        .map(|&n| {
            if n == 0 || n > source.info.frames {
                return Err(FrameError::NotFound(n));
            }
            if as_stored {
                source.stored(n)
            } else {
                source.decoded(n)
            }
        })
        .collect()
}

/// The pixel data of one scanned file, ready to hand out frames.
pub(crate) struct FrameSource<'s> {
    pub info: PixelInfo,
    pub ts: &'s str,
    scan: &'s Scan<'s>,
    pixels: &'s Capture,
}

impl<'s> FrameSource<'s> {
    pub(crate) fn new(scan: &'s Scan<'s>) -> Result<Self, FrameError> {
        let pixels = scan
            .captured
            .get("7FE00010")
            .ok_or(FrameError::NoPixelData)?;
        Ok(FrameSource {
            info: PixelInfo::read(scan)?,
            ts: scan.meta.transfer_syntax.as_str(),
            scan,
            pixels,
        })
    }

    pub(crate) fn is_encapsulated(&self) -> bool {
        matches!(self.pixels.value, Captured::Fragments { .. })
    }

    /// A frame exactly as stored: native bytes (little endian), or the joined fragments.
    pub(crate) fn stored(&self, n: u32) -> Result<Frame, FrameError> {
        match &self.pixels.value {
            Captured::Fragments { .. } => Ok(Frame {
                content_type: media_type(self.ts).into(),
                transfer_syntax: self.ts.into(),
                data: self.compressed(n)?,
            }),
            Captured::Value { .. } => {
                let label = if self.ts == meta::IMPLICIT_VR_LITTLE_ENDIAN {
                    self.ts
                } else {
                    EXPLICIT_LE
                };
                Ok(Frame {
                    content_type: OCTET_STREAM.into(),
                    transfer_syntax: label.into(),
                    data: self.native(n)?,
                })
            }
        }
    }

    /// A frame decoded to native little endian samples.
    pub(crate) fn decoded(&self, n: u32) -> Result<Frame, FrameError> {
        let data = match &self.pixels.value {
            Captured::Value { .. } => self.native(n)?,
            Captured::Fragments { .. } => self.decode(n)?,
        };
        Ok(Frame {
            content_type: OCTET_STREAM.into(),
            transfer_syntax: EXPLICIT_LE.into(),
            data,
        })
    }

    fn native(&self, n: u32) -> Result<Vec<u8>, FrameError> {
        let Captured::Value { offset, len } = self.pixels.value else {
            return Err(FrameError::NoPixelData);
        };
        let all = &self.scan.stream[offset as usize..(offset + len) as usize];
        let frame_bits = self.info.frame_bits();
        let first_bit = u64::from(n - 1) * frame_bits;
        let end_bit = first_bit + frame_bits;
        if end_bit > len * 8 || frame_bits == 0 {
            return Err(FrameError::Corrupt(format!(
                "frame {n} needs {} bytes of pixel data, there are {len}",
                end_bit.div_ceil(8)
            )));
        }
        if !first_bit.is_multiple_of(8) || !frame_bits.is_multiple_of(8) {
            return Ok(bit_slice(all, first_bit, frame_bits));
        }
        let (start, end) = ((first_bit / 8) as usize, (end_bit / 8) as usize);
        if !self.pixels.big_endian {
            return Ok(all[start..end].to_vec());
        }
        // Big endian pixel words are swapped by sample size (how pydicom and dcmtk read
        // them); 8-bit samples are only swapped when packed in OW words. Words are aligned on
        // the whole value, and an odd-sized frame may end inside one.
        let word = match self.info.bits_allocated {
            b if b > 8 => usize::from(b / 8),
            _ if self.pixels.vr == VR::OW => 2,
            _ => 1,
        };
        let from = start - start % word;
        let to = end.div_ceil(word).saturating_mul(word).min(all.len());
        let swapped = crate::walk::to_little_endian(&all[from..to], word);
        Ok(swapped[start - from..end - from].to_vec())
    }

    /// The fragments of frame `n` joined, found through the basic or extended offset table,
    /// one fragment per frame, or JPEG / JPEG 2000 start markers, in that order.
    fn compressed(&self, n: u32) -> Result<Vec<u8>, FrameError> {
        let Captured::Fragments {
            offset_table,
            fragments,
        } = &self.pixels.value
        else {
            return Err(FrameError::NoPixelData);
        };
        let stream = &self.scan.stream;
        let frag = |i: usize| {
            let (o, l) = fragments[i];
            &stream[o as usize..(o + l) as usize]
        };
        let frames = self.info.frames as usize;
        let index = (n - 1) as usize;
        let group: Vec<usize> = if frames == 1 {
            (0..fragments.len()).collect()
        } else if fragments.len() == frames {
            vec![index]
        } else if let Some(groups) = by_offsets(offset_table, fragments, frames)
            .or_else(|| {
                self.extended_offsets()
                    .and_then(|eot| by_offsets(&eot, fragments, frames))
            })
            .or_else(|| by_markers(fragments.len(), &frag, frames))
        {
            groups.into_iter().nth(index).unwrap_or_default()
        } else {
            return Err(FrameError::Corrupt(format!(
                "{} fragments for {frames} frames and no offset table telling them apart",
                fragments.len()
            )));
        };
        if group.is_empty() {
            return Err(FrameError::Corrupt(format!("frame {n} has no fragments")));
        }
        let mut out = Vec::with_capacity(group.iter().map(|&i| fragments[i].1 as usize).sum());
        for i in group {
            out.extend_from_slice(frag(i));
        }
        Ok(out)
    }

    fn extended_offsets(&self) -> Option<Vec<u32>> {
        let (_, bytes) = value(self.scan, "7FE00001")?;
        bytes
            .chunks_exact(8)
            .map(|c| u32::try_from(u64::from_le_bytes(c.try_into().ok()?)).ok())
            .collect()
    }

    fn decode(&self, n: u32) -> Result<Vec<u8>, FrameError> {
        let layout = PixelLayout {
            bits_allocated: Some(self.info.bits_allocated),
            bits_stored: Some(self.info.bits_stored),
            samples: Some(self.info.samples),
        };
        if let Some(reason) = undecodable(self.ts, &layout) {
            return Err(FrameError::Unsupported {
                ts: self.ts.to_string(),
                reason,
            });
        }
        let reader = TransferSyntaxRegistry
            .get(self.ts)
            .and_then(|ts| ts.pixel_data_reader())
            .ok_or_else(|| FrameError::NotDecodable(self.ts.to_string()))?;
        let data = self.compressed(n)?;
        let one = OneFrame {
            ts: self.ts,
            info: &self.info,
            data: &data,
        };
        let mut out = Vec::new();
        // Codec adapters index buffers with sizes taken from the data, so corrupt input can
        // panic inside them; a bad frame must not take the server down.
        let outcome = catch_unwind(AssertUnwindSafe(|| reader.decode_frame(&one, 0, &mut out)));
        match outcome {
            Ok(Ok(())) => Ok(out),
            Ok(Err(e)) => Err(FrameError::Decode {
                frame: n,
                reason: with_causes(&e),
            }),
            Err(_) => Err(FrameError::Decode {
                frame: n,
                reason: "the decoder failed on malformed data".into(),
            }),
        }
    }
}

/// An error and its sources, which is where the codecs put the useful part.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `len` bits from `first`, least significant bit first as DICOM packs 1-bit samples.
fn bit_slice(data: &[u8], first: u64, len: u64) -> Vec<u8> {
    let mut out = vec![0u8; len.div_ceil(8) as usize];
    for j in 0..len {
        let bit = first + j;
        if (data[(bit / 8) as usize] >> (bit % 8)) & 1 == 1 {
            out[(j / 8) as usize] |= 1 << (j % 8);
        }
    }
    out
}

/// Fragment groups from an offset table, whose entries are the positions of each frame's first
/// fragment item counted from the first fragment item.
fn by_offsets(table: &[u32], fragments: &[(u64, u64)], frames: usize) -> Option<Vec<Vec<usize>>> {
    if table.len() != frames {
        return None;
    }
    let mut starts = Vec::with_capacity(fragments.len());
    let mut at = 0u64;
    for &(_, len) in fragments {
        starts.push(at);
        at += 8 + len;
    }
    let mut groups = Vec::with_capacity(frames);
    for (i, &offset) in table.iter().enumerate() {
        let first = starts.iter().position(|&s| s == u64::from(offset))?;
        let next = table.get(i + 1).map(|&o| u64::from(o)).unwrap_or(u64::MAX);
        groups.push(
            (first..fragments.len())
                .take_while(|&k| starts[k] < next)
                .collect(),
        );
    }
    Some(groups)
}

/// Fragment groups split where a fragment opens a JPEG (SOI) or JPEG 2000 (SOC) codestream.
fn by_markers<'a>(
    count: usize,
    frag: &dyn Fn(usize) -> &'a [u8],
    frames: usize,
) -> Option<Vec<Vec<usize>>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..count {
        let f = frag(i);
        let starts = f.starts_with(&[0xFF, 0xD8]) || f.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]);
        match groups.last_mut() {
            Some(g) if !starts => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    (groups.len() == frames).then_some(groups)
}

/// One frame presented to a dicom-rs codec as a single-fragment, single-frame object, so the
/// codec never applies its own fragment-to-frame rules.
struct OneFrame<'a> {
    ts: &'a str,
    info: &'a PixelInfo,
    data: &'a [u8],
}

impl PixelDataObject for OneFrame<'_> {
    fn transfer_syntax_uid(&self) -> &str {
        self.ts
    }
    fn rows(&self) -> Option<u16> {
        Some(self.info.rows)
    }
    fn cols(&self) -> Option<u16> {
        Some(self.info.cols)
    }
    fn samples_per_pixel(&self) -> Option<u16> {
        Some(self.info.samples)
    }
    fn bits_allocated(&self) -> Option<u16> {
        Some(self.info.bits_allocated)
    }
    fn bits_stored(&self) -> Option<u16> {
        Some(self.info.bits_stored)
    }
    fn photometric_interpretation(&self) -> Option<&str> {
        Some(&self.info.photometric)
    }
    fn number_of_frames(&self) -> Option<u32> {
        Some(1)
    }
    fn number_of_fragments(&self) -> Option<u32> {
        Some(1)
    }
    fn fragment(&self, fragment: usize) -> Option<Cow<'_, [u8]>> {
        (fragment == 0).then_some(Cow::Borrowed(self.data))
    }
    fn offset_table(&self) -> Option<Cow<'_, [u32]>> {
        Some(Cow::Borrowed(&[]))
    }
    fn raw_pixel_data(&self) -> Option<RawPixelData> {
        Some(RawPixelData {
            fragments: std::iter::once(self.data.to_vec()).collect::<C<Vec<u8>>>(),
            offset_table: C::new(),
        })
    }
}
