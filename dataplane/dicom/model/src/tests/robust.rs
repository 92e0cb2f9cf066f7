//! No input may panic: damaged copies of real files through every entry point.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::support::*;
use crate::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips bytes, favouring the first few kilobytes where headers and lengths live, and sometimes
/// truncates.
fn damage(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..1 + rng.below(4) {
        let span = if rng.below(4) == 0 {
            bytes.len()
        } else {
            bytes.len().min(3000)
        };
        let at = rng.below(span);
        bytes[at] = match rng.below(4) {
            0 => 0xFF,
            1 => 0x00,
            _ => rng.next() as u8,
        };
    }
    if rng.below(5) == 0 {
        let keep = rng.below(bytes.len());
        bytes.truncate(keep);
    }
    bytes
}

#[test]
fn damaged_files_never_panic() {
    let names = [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "SC_rgb_rle_2frame.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "rtdose.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",
        "examples_palette.dcm",
        "liver_1frame.dcm",
        "rtdose_rle.dcm",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut failures = Vec::new();
    // More rounds by hand: HDS_FUZZ_ROUNDS=2000 cargo test -p hds-dicom-model damaged
    let rounds: u32 = std::env::var("HDS_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for name in names {
        let original = read(name);
        for round in 0..rounds {
            let bytes = damage(&mut rng, &original);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let _ = parse(&bytes, &ParseOptions::default());
                let _ = parse(&bytes, &ParseOptions { strict: true });
                let _ = frames(&bytes, &[1, 2], true);
                let _ = frames(&bytes, &[1], false);
                let _ = bulkdata(&bytes, "7FE00010");
                let _ = render(&bytes, 1, RenderFormat::Png);
                if round % 4 == 0 {
                    let _ = transcode(&bytes, EXPLICIT_VR_LITTLE_ENDIAN);
                }
            }));
            if outcome.is_err() {
                let path = std::env::temp_dir().join(format!("hds-model-panic-{name}-{round}"));
                std::fs::write(&path, &bytes).ok();
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "panics on: {failures:?}");
}
