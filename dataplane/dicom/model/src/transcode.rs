//! Transcoding to explicit VR little endian, the syntax every DICOMweb client must accept.
//!
//! The pixel data is produced by this crate's own frame code (so fragment handling, byte order
//! and codec failures behave exactly as for WADO frames) and dicom-object only re-encodes the
//! data set around it.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_transfer_syntax_registry::entries;

use crate::bulk::bulkdata;
use crate::pixel::{self, FrameSource};
use crate::source::{SliceSource, Source};
use crate::{BulkError, FrameError, ParseError, meta, scan};

pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// Source syntaxes whose data sets and pixel data are known to decode with the codecs built in
/// (each is exercised by a test or was checked by hand; see the crate tests).
const DECODABLE: [&str; 13] = [
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.2",    // explicit VR big endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
    "1.2.840.10008.1.2.1.98", // encapsulated uncompressed
    "1.2.840.10008.1.2.5",    // RLE lossless
    "1.2.840.10008.1.2.4.50", // JPEG baseline
    "1.2.840.10008.1.2.4.51", // JPEG extended: 8-bit only, 12-bit fails at decode time
    "1.2.840.10008.1.2.4.57", // JPEG lossless, any predictor
    "1.2.840.10008.1.2.4.70", // JPEG lossless SV1
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.8.1",  // deflated image frame compression
    EXPLICIT_VR_LITTLE_ENDIAN,
];

/// Syntaxes whose decoded pixels are no longer what was acquired.
const LOSSY: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("cannot transcode from {from} to {to}")]
    Unsupported { from: String, to: String },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("dicom-object could not read the data set: {0}")]
    Read(String),
    #[error("the transcoded file could not be written: {0}")]
    Write(String),
}

fn trim(ts: &str) -> &str {
    ts.trim_matches(['\0', ' '])
}

/// Whether [`transcode`] can turn `from_ts` into `to_ts`.
pub fn can_transcode(from_ts: &str, to_ts: &str) -> bool {
    let (from, to) = (trim(from_ts), trim(to_ts));
    from == to || (to == EXPLICIT_VR_LITTLE_ENDIAN && DECODABLE.contains(&from))
}

/// Re-encodes a whole Part 10 file in `to_ts`, returning a file with a preamble and the meta
/// group's TransferSyntaxUID updated.
pub fn transcode(bytes: &[u8], to_ts: &str) -> Result<Vec<u8>, TranscodeError> {
    let to = trim(to_ts);
    let from = {
        let mut src = SliceSource::new(bytes);
        src.skip(meta::header_len(bytes)?)?;
        meta::read_meta(&mut src)?.transfer_syntax
    };
    if !can_transcode(&from, to) {
        return Err(TranscodeError::Unsupported {
            from,
            to: to.to_string(),
        });
    }
    let scanned = scan(bytes, pixel::pixel_paths())?;
    if from == to {
        let mut out = Vec::with_capacity(bytes.len() + 128);
        if meta::header_len(bytes)? == 4 {
            out.extend_from_slice(&[0u8; 128]);
        }
        out.extend_from_slice(bytes);
        return Ok(out);
    }
    let pixels = if scanned.captured.contains_key("7FE00010") {
        Some(native_pixels(bytes, &scanned)?)
    } else {
        None
    };
    let mut obj = OpenFileOptions::new()
        .from_reader(bytes)
        .map_err(|e| TranscodeError::Read(pixel::with_causes(&e)))?;
    if let Some((data, info, rgb)) = pixels {
        let vr = if info.bits_allocated > 8 {
            VR::OW
        } else {
            VR::OB
        };
        let mut data = data;
        if data.len() % 2 == 1 {
            data.push(0);
        }
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            vr,
            PrimitiveValue::from(data),
        ));
        if info.samples > 1 {
            obj.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(0_u16),
            ));
            if rgb {
                obj.put(DataElement::new(
                    tags::PHOTOMETRIC_INTERPRETATION,
                    VR::CS,
                    "RGB",
                ));
            }
        }
        for tag in [
            tags::EXTENDED_OFFSET_TABLE,
            tags::EXTENDED_OFFSET_TABLE_LENGTHS,
            tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH,
        ] {
            obj.remove_element(tag);
        }
        if LOSSY.contains(&from.as_str()) && obj.get(tags::LOSSY_IMAGE_COMPRESSION).is_none() {
            obj.put(DataElement::new(
                tags::LOSSY_IMAGE_COMPRESSION,
                VR::CS,
                "01",
            ));
        }
    }
    obj.update_meta(|m| m.set_transfer_syntax(&entries::EXPLICIT_VR_LITTLE_ENDIAN));
    let mut out = Vec::with_capacity(bytes.len() * 2);
    obj.write_all(&mut out)
        .map_err(|e| TranscodeError::Write(pixel::with_causes(&e)))?;
    Ok(out)
}

/// All frames in native little endian, the image description, and whether colour samples came
/// out of a codec that converts them to RGB.
fn native_pixels(
    bytes: &[u8],
    scanned: &crate::Scan,
) -> Result<(Vec<u8>, pixel::PixelInfo, bool), TranscodeError> {
    let source = FrameSource::new(scanned)?;
    let info = source.info.clone();
    if !source.is_encapsulated() {
        // Taken whole rather than frame by frame so that 1-bit frames keep their packing.
        let value = bulkdata(bytes, "7FE00010").map_err(|e| match e {
            BulkError::Parse(p) => TranscodeError::Parse(p),
            BulkError::Frame(f) => TranscodeError::Frame(f),
            BulkError::NotFound(_) => TranscodeError::Frame(FrameError::NoPixelData),
        })?;
        let data = value.into_iter().next().map(|v| v.data).unwrap_or_default();
        return Ok((data, info, false));
    }
    let mut data = Vec::new();
    for n in 1..=info.frames {
        data.extend_from_slice(&source.decoded(n)?.data);
    }
    let rgb = source.ts.starts_with("1.2.840.10008.1.2.4.");
    Ok((data, info, rgb))
}
