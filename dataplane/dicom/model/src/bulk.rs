//! The values behind BulkDataURIs.

use std::collections::HashSet;

use crate::pixel::{self, FrameSource};
use crate::walk::{Captured, to_little_endian};
use crate::{Frame, FrameError, ParseError, scan};

/// One bulk data value: raw bytes in little endian, or one compressed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkValue {
    pub vr: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The path does not name a value in this instance.
    #[error("no bulk data at {0}")]
    NotFound(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// `GGGGEEEE(/item/GGGGEEEE)*` with upper-case hex, as the metadata writes it.
fn normalise(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len().is_multiple_of(2) {
        return None;
    }
    for (i, part) in parts.iter().enumerate() {
        let ok = if i % 2 == 0 {
            part.len() == 8 && part.bytes().all(|b| b.is_ascii_hexdigit())
        } else {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && part.parse::<usize>().is_ok()
        };
        if !ok {
            return None;
        }
    }
    Some(parts.join("/").to_ascii_uppercase())
}

/// The value at `path` as written in the metadata's BulkDataURIs. Encapsulated pixel data gives
/// one value per frame, as stored.
pub fn bulkdata(bytes: &[u8], path: &str) -> Result<Vec<BulkValue>, BulkError> {
    let wanted = normalise(path).ok_or_else(|| BulkError::NotFound(path.to_string()))?;
    let top_pixels = wanted == "7FE00010";
    let mut capture: HashSet<String> = if top_pixels {
        pixel::pixel_paths()
    } else {
        HashSet::new()
    };
    capture.insert(wanted.clone());
    let scan = scan(bytes, capture)?;
    let cap = scan
        .captured
        .get(&wanted)
        .ok_or_else(|| BulkError::NotFound(path.to_string()))?;
    let vr = cap.vr.to_string().to_string();
    match &cap.value {
        Captured::Fragments { fragments, .. } => {
            if top_pixels {
                let source = FrameSource::new(&scan)?;
                return (1..=source.info.frames)
                    .map(|n| {
                        Ok(BulkValue {
                            vr: vr.clone(),
                            data: source.stored(n)?.data,
                        })
                    })
                    .collect();
            }
            // Nested pixel data (an icon) is a single frame.
            let mut data = Vec::new();
            for &(o, l) in fragments {
                data.extend_from_slice(&scan.stream[o as usize..(o + l) as usize]);
            }
            Ok(vec![BulkValue { vr, data }])
        }
        Captured::Value { offset, len } => {
            let raw = &scan.stream[*offset as usize..(*offset + *len) as usize];
            let word = if top_pixels {
                // Native pixel words follow the sample size, not the VR (see `pixel`).
                match pixel::unsigned(&scan, "00280100").unwrap_or(16) {
                    b if b > 8 => usize::from(b / 8),
                    _ => crate::vr::word_size(cap.vr),
                }
            } else {
                crate::vr::word_size(cap.vr)
            };
            let data = if cap.big_endian && word > 1 {
                to_little_endian(raw, word)
            } else {
                raw.to_vec()
            };
            Ok(vec![BulkValue { vr, data }])
        }
    }
}

/// Top-level encapsulated Pixel Data as a bulk data value: every frame as stored (with its
/// compressed media type) or decoded, as the frames resource gives them; `None` when the
/// pixel data is native, whose value [`bulkdata`] gives as it is.
pub fn encapsulated_pixels(
    bytes: &[u8],
    as_stored: bool,
) -> Result<Option<Vec<Frame>>, FrameError> {
    let scan = scan(bytes, pixel::pixel_paths())?;
    let source = FrameSource::new(&scan)?;
    if !source.is_encapsulated() {
        return Ok(None);
    }
    (1..=source.info.frames)
        .map(|n| {
            if as_stored {
                source.stored(n)
            } else {
                source.decoded(n)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths() {
        assert_eq!(normalise("7fe00010").as_deref(), Some("7FE00010"));
        assert_eq!(
            normalise("00540016/0/00181078").as_deref(),
            Some("00540016/0/00181078")
        );
        assert_eq!(normalise("00540016/0"), None);
        assert_eq!(normalise("0054001/0/00181078"), None);
        assert_eq!(normalise("00540016/x/00181078"), None);
        assert_eq!(normalise(""), None);
    }
}
