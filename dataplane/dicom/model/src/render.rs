//! Rendered frames (WADO-RS /rendered): one frame through the modality and VOI transforms to an
//! 8-bit JPEG or PNG. The transforms are done here because dicom-pixeldata only offers them on
//! a dicom-object tree, which would mean a second parse of the file.

use std::collections::HashSet;

use dicom_pixeldata::image::codecs::jpeg::JpegEncoder;
use dicom_pixeldata::image::codecs::png::PngEncoder;
use dicom_pixeldata::image::{ExtendedColorType, ImageEncoder};

use crate::pixel::{self, FrameSource, PixelInfo, decimals, text, value};
use crate::{FrameError, Scan, scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderFormat {
    /// Quality 1 (smallest) to 100 (best); values outside are clamped.
    Jpeg {
        quality: u8,
    },
    Png,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("cannot render this image: {0}")]
    Unsupported(String),
    #[error("the image could not be encoded: {0}")]
    Encode(String),
}

const VOI: [&str; 5] = ["00281050", "00281051", "00281052", "00281053", "00281056"];
const PALETTE: [&str; 6] = [
    "00281101", "00281102", "00281103", "00281201", "00281202", "00281203",
];

/// Per-frame values win over shared ones, which win over the top-level attributes; enhanced
/// multi-frame objects only have them in the functional groups.
fn voi_paths(frame: u32) -> [String; 3] {
    [
        format!("52009230/{}/", frame - 1),
        "52009229/0/".to_string(),
        String::new(),
    ]
}

fn nested(prefix: &str, tag: &str) -> String {
    if prefix.is_empty() {
        return tag.to_string();
    }
    // Rescale values live in the Pixel Value Transformation sequence, window values in the
    // Frame VOI LUT sequence.
    let group = match tag {
        "00281052" | "00281053" => "00289145",
        _ => "00289132",
    };
    format!("{prefix}{group}/0/{tag}")
}

fn first_of(scan: &Scan, frame: u32, tag: &str) -> Option<f64> {
    voi_paths(frame)
        .iter()
        .find_map(|p| decimals(scan, &nested(p, tag)).first().copied())
}

fn function_of(scan: &Scan, frame: u32) -> Option<String> {
    voi_paths(frame)
        .iter()
        .find_map(|p| text(scan, &nested(p, "00281056")))
}

/// Renders frame `frame` (from 1) with the file's window, or min-max when it has none.
pub fn render(bytes: &[u8], frame: u32, format: RenderFormat) -> Result<Vec<u8>, RenderError> {
    let mut wanted: HashSet<String> = pixel::pixel_paths();
    for prefix in voi_paths(frame.max(1)) {
        for tag in VOI {
            wanted.insert(nested(&prefix, tag));
        }
    }
    wanted.extend(PALETTE.iter().map(|s| s.to_string()));
    let scan = scan(bytes, wanted).map_err(FrameError::from)?;
    let source = FrameSource::new(&scan)?;
    let info = &source.info;
    if frame == 0 || frame > info.frames {
        return Err(FrameError::NotFound(frame).into());
    }
    let data = source.decoded(frame)?.data;
    let (pixels, color) = match info.samples {
        1 if info.photometric == "PALETTE COLOR" => {
            (palette(&scan, info, &data)?, ExtendedColorType::Rgb8)
        }
        1 => (grey(&scan, info, frame, &data)?, ExtendedColorType::L8),
        3 => {
            // JPEG-family and JPEG 2000 codecs hand back RGB; RLE and native data keep the
            // stored photometric interpretation.
            let converted =
                source.is_encapsulated() && source.ts.starts_with("1.2.840.10008.1.2.4.");
            (colour(info, &data, converted)?, ExtendedColorType::Rgb8)
        }
        n => return Err(RenderError::Unsupported(format!("{n} samples per pixel"))),
    };
    encode(
        &pixels,
        u32::from(info.cols),
        u32::from(info.rows),
        color,
        format,
    )
}

fn encode(
    pixels: &[u8],
    w: u32,
    h: u32,
    color: ExtendedColorType,
    format: RenderFormat,
) -> Result<Vec<u8>, RenderError> {
    let channels = if color == ExtendedColorType::L8 { 1 } else { 3 };
    if pixels.len() as u64 != u64::from(w) * u64::from(h) * channels {
        return Err(RenderError::Unsupported(
            "decoded frame has an unexpected size".into(),
        ));
    }
    let mut out = Vec::new();
    let result = match format {
        RenderFormat::Png => PngEncoder::new(&mut out).write_image(pixels, w, h, color),
        RenderFormat::Jpeg { quality } => {
            JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
                .encode(pixels, w, h, color)
        }
    };
    result.map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out)
}

/// Stored sample values of a native little endian frame, sign and unused high bits handled.
fn samples(info: &PixelInfo, data: &[u8]) -> Result<Vec<i64>, RenderError> {
    let count = info.rows as usize * info.cols as usize;
    let stored = u32::from(info.bits_stored.clamp(1, info.bits_allocated.max(1)));
    let widen = |raw: u64| -> i64 {
        let masked = if stored >= 64 {
            raw
        } else {
            raw & ((1u64 << stored) - 1)
        };
        if info.signed && stored < 64 && masked >> (stored - 1) & 1 == 1 {
            masked as i64 - (1i64 << stored)
        } else {
            masked as i64
        }
    };
    let values: Vec<i64> = match info.bits_allocated {
        1 => (0..count)
            .map(|i| i64::from(data.get(i / 8).is_some_and(|b| (b >> (i % 8)) & 1 == 1)))
            .collect(),
        8 => data
            .iter()
            .take(count)
            .map(|&b| widen(u64::from(b)))
            .collect(),
        16 => data
            .chunks_exact(2)
            .take(count)
            .map(|c| widen(u64::from(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        32 => data
            .chunks_exact(4)
            .take(count)
            .map(|c| widen(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect(),
        b => return Err(RenderError::Unsupported(format!("BitsAllocated {b}"))),
    };
    if values.len() != count {
        return Err(FrameError::Corrupt("the frame is shorter than Rows x Columns".into()).into());
    }
    Ok(values)
}

fn grey(scan: &Scan, info: &PixelInfo, frame: u32, data: &[u8]) -> Result<Vec<u8>, RenderError> {
    let slope = first_of(scan, frame, "00281053")
        .filter(|s| *s != 0.0)
        .unwrap_or(1.0);
    let intercept = first_of(scan, frame, "00281052").unwrap_or(0.0);
    let values: Vec<f64> = samples(info, data)?
        .into_iter()
        .map(|v| v as f64 * slope + intercept)
        .collect();
    let center = first_of(scan, frame, "00281050");
    let width = first_of(scan, frame, "00281051").filter(|w| *w > 0.0);
    let function = function_of(scan, frame).unwrap_or_default();
    let map: Box<dyn Fn(f64) -> f64> = match (center, width) {
        (Some(c), Some(w)) if function == "SIGMOID" => {
            Box::new(move |x| 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()))
        }
        (Some(c), Some(w)) if function == "LINEAR_EXACT" => Box::new(move |x| (x - c) / w + 0.5),
        (Some(c), Some(w)) if w >= 1.0 => {
            // PS3.3 C.11.2.1.2.1: the window spans w - 1 steps centred half a unit low.
            Box::new(move |x| (x - (c - 0.5)) / (w - 1.0).max(f64::MIN_POSITIVE) + 0.5)
        }
        _ => {
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let span = hi - lo;
            Box::new(move |x| if span > 0.0 { (x - lo) / span } else { 0.0 })
        }
    };
    let invert = info.photometric == "MONOCHROME1";
    Ok(values
        .into_iter()
        .map(|x| {
            let level = (map(x).clamp(0.0, 1.0) * 255.0).round() as u8;
            if invert { 255 - level } else { level }
        })
        .collect())
}

fn ybr_to_rgb(y: f64, cb: f64, cr: f64) -> [u8; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let clamp = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344136 * cb - 0.714136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

fn colour(info: &PixelInfo, data: &[u8], converted: bool) -> Result<Vec<u8>, RenderError> {
    let count = info.rows as usize * info.cols as usize;
    let photometric = if converted {
        "RGB"
    } else {
        info.photometric.as_str()
    };
    if photometric == "YBR_FULL_422" {
        if info.bits_allocated != 8 || data.len() < count * 2 {
            return Err(RenderError::Unsupported(
                "YBR_FULL_422 other than 8-bit".into(),
            ));
        }
        let mut out = Vec::with_capacity(count * 3);
        for quad in data[..count * 2].chunks_exact(4) {
            let (cb, cr) = (f64::from(quad[2]), f64::from(quad[3]));
            out.extend(ybr_to_rgb(f64::from(quad[0]), cb, cr));
            out.extend(ybr_to_rgb(f64::from(quad[1]), cb, cr));
        }
        out.resize(count * 3, 0);
        return Ok(out);
    }
    let wide = info.bits_allocated > 8;
    let bytes_per = if wide { 2 } else { 1 };
    if info.bits_allocated > 16 || data.len() < count * 3 * bytes_per {
        return Err(RenderError::Unsupported(format!(
            "{} with BitsAllocated {}",
            photometric, info.bits_allocated
        )));
    }
    let shift = info.bits_stored.saturating_sub(8).min(8);
    let sample = |i: usize| -> u8 {
        if wide {
            (u16::from_le_bytes([data[2 * i], data[2 * i + 1]]) >> shift) as u8
        } else {
            data[i]
        }
    };
    // Planar data only survives in native frames; codecs always interleave.
    let planar = !converted && info.planar == 1;
    let at = |p: usize, s: usize| {
        if planar {
            sample(s * count + p)
        } else {
            sample(p * 3 + s)
        }
    };
    let ybr = photometric.starts_with("YBR");
    let mut out = Vec::with_capacity(count * 3);
    for p in 0..count {
        let (a, b, c) = (at(p, 0), at(p, 1), at(p, 2));
        if ybr {
            out.extend(ybr_to_rgb(f64::from(a), f64::from(b), f64::from(c)));
        } else {
            out.extend([a, b, c]);
        }
    }
    Ok(out)
}

fn palette(scan: &Scan, info: &PixelInfo, data: &[u8]) -> Result<Vec<u8>, RenderError> {
    let missing = || RenderError::Unsupported("PALETTE COLOR without usable lookup tables".into());
    let mut luts = Vec::with_capacity(3);
    for (descriptor, table) in [
        ("00281101", "00281201"),
        ("00281102", "00281202"),
        ("00281103", "00281203"),
    ] {
        let (_, d) = value(scan, descriptor).ok_or_else(missing)?;
        let word = |i: usize| {
            d.get(2 * i..2 * i + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        let entries = match word(0).ok_or_else(missing)? {
            0 => 65536,
            n => usize::from(n),
        };
        let first = i64::from(word(1).ok_or_else(missing)?);
        let bits = word(2).ok_or_else(missing)?;
        let (_, t) = value(scan, table).ok_or_else(missing)?;
        let lut: Vec<u8> = t
            .chunks_exact(2)
            .take(entries)
            .map(|c| {
                let v = u16::from_le_bytes([c[0], c[1]]);
                if bits <= 8 { v as u8 } else { (v >> 8) as u8 }
            })
            .collect();
        if lut.is_empty() {
            return Err(missing());
        }
        luts.push((first, lut));
    }
    let indices = samples(info, data)?;
    let mut out = Vec::with_capacity(indices.len() * 3);
    for v in indices {
        for (first, lut) in &luts {
            let i = (v - first).clamp(0, lut.len() as i64 - 1) as usize;
            out.push(lut[i]);
        }
    }
    Ok(out)
}
