//! Frames, bulk data, transcoding and rendering.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_pixeldata::image::{self, GenericImageView};

use super::build::*;
use super::support::*;
use crate::*;

fn frame(name: &str, n: u32, as_stored: bool) -> Frame {
    frames(&read(name), &[n], as_stored)
        .unwrap_or_else(|e| panic!("{name} frame {n}: {e}"))
        .remove(0)
}

#[test]
fn native_multi_frame() {
    let bytes = read("rtdose.dcm");
    let all: Vec<u32> = (1..=15).collect();
    let stored = frames(&bytes, &all, true).unwrap();
    assert_eq!(stored.len(), 15);
    for f in &stored {
        assert_eq!(f.data.len(), 10 * 10 * 4);
        assert_eq!(f.content_type, "application/octet-stream");
        assert_eq!(
            f.transfer_syntax, "1.2.840.10008.1.2",
            "implicit VR LE is served as stored"
        );
    }
    assert_ne!(stored[0].data, stored[14].data);
    let decoded = frames(&bytes, &[15, 1], false).unwrap();
    assert_eq!(
        decoded[0].data, stored[14].data,
        "frames come in the order asked"
    );
    assert_eq!(decoded[1].transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
    // The big endian copy gives the same little endian samples.
    assert_eq!(
        frames(&read("rtdose_expb.dcm"), &all, false).unwrap(),
        frames(&bytes, &all, false).unwrap()
    );
    for bad in [0, 16] {
        assert_eq!(
            frames(&bytes, &[1, bad], true),
            Err(FrameError::NotFound(bad))
        );
    }
    assert_eq!(
        frame("SC_rgb_small_odd_big_endian.dcm", 1, true),
        frame("SC_rgb_small_odd.dcm", 1, true),
        "8-bit samples in big endian OW words"
    );
    // 1-bit samples stay packed.
    assert_eq!(
        frame("liver_1frame.dcm", 1, false).data.len(),
        512 * 512 / 8
    );
    assert_eq!(
        frame("liver_expb_1frame.dcm", 1, false),
        frame("liver_1frame.dcm", 1, false)
    );
    // A deflated data set's frames come inflated.
    assert_eq!(frame("image_dfl.dcm", 1, true).data.len(), 512 * 512);
}

#[test]
fn rle_frames_stored_and_decoded() {
    let bytes = read("SC_rgb_rle_2frame.dcm");
    let stored = frames(&bytes, &[1, 2], true).unwrap();
    for f in &stored {
        // PS3.18 table 8.7.3-5.
        assert_eq!(f.content_type, "image/dicom-rle");
        assert_eq!(f.transfer_syntax, "1.2.840.10008.1.2.5");
        // An RLE header: the segment count, then its offsets, the first being 64.
        assert_eq!(&f.data[..8], &[3, 0, 0, 0, 64, 0, 0, 0]);
    }
    let decoded = frames(&bytes, &[1, 2], false).unwrap();
    for f in &decoded {
        assert_eq!(f.data.len(), 100 * 100 * 3);
        assert_eq!(f.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
    }
    assert_eq!(decoded[0].data[..3], [255, 0, 0], "the first pixel is red");
    assert_eq!(frames(&bytes, &[3], false), Err(FrameError::NotFound(3)));
}

#[test]
fn decoded_frames_match_the_uncompressed_original() {
    let mr = frame("MR_small.dcm", 1, false).data;
    assert_eq!(mr.len(), 64 * 64 * 2);
    for name in [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ] {
        assert_eq!(frame(name, 1, false).data, mr, "{name}");
    }
    // Lossless JPEG (process 14, SV1) and lossless JPEG 2000 against RLE.
    let rgb = frame("SC_rgb_rle.dcm", 1, false).data;
    assert_eq!(frame("SC_rgb_jpeg_gdcm.dcm", 1, false).data, rgb);
    assert_eq!(frame("SC_rgb_gdcm_KY.dcm", 1, false).data, rgb);
    // Baseline JPEG in YBR_FULL_422 comes out as RGB close to the original.
    let lossy = frame("SC_rgb_dcmtk_+eb+cy+np.dcm", 1, false).data;
    let mean_error: f64 = lossy
        .iter()
        .zip(&rgb)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / rgb.len() as f64;
    assert!(mean_error < 3.0, "mean error {mean_error}");
}

#[test]
fn compressed_frames_as_stored() {
    let bytes = read("examples_ybr_color.dcm");
    let stored = frames(&bytes, &[1, 30], true).unwrap();
    for f in &stored {
        assert_eq!(f.content_type, "image/jpeg");
        assert_eq!(f.transfer_syntax, "1.2.840.10008.1.2.4.50");
        assert_eq!(&f.data[..2], &[0xFF, 0xD8]);
    }
    assert_eq!(
        frames(&bytes, &[30], false).unwrap()[0].data.len(),
        240 * 320 * 3
    );
    let j2k = frame("JPEG2000.dcm", 1, true);
    assert_eq!(
        (j2k.content_type.as_str(), &j2k.data[..2]),
        ("image/jp2", &[0xFF, 0x4F][..])
    );
    assert_eq!(frame("JPEG2000.dcm", 1, false).data.len(), 1024 * 256 * 2);
    let jls = frame("MR_small_jpeg_ls_lossless.dcm", 1, true);
    assert_eq!(jls.content_type, "image/jls");
    assert_eq!(
        frames(&read("MR_small_jpeg_ls_lossless.dcm"), &[1], false),
        Err(FrameError::NotDecodable("1.2.840.10008.1.2.4.80".into()))
    );
    // 12-bit lossy JPEG is beyond jpeg-decoder: an error, not a panic.
    assert!(matches!(
        frames(&read("JPEG-lossy.dcm"), &[1], false),
        Err(FrameError::Unsupported { .. })
    ));
    assert!(matches!(
        frames(&read("SC_rgb_rle_32bit.dcm"), &[1], false),
        Err(FrameError::Unsupported { .. })
    ));
    assert_eq!(
        frames(&read("reportsi.dcm"), &[1], true),
        Err(FrameError::NoPixelData)
    );
}

/// Frames split over several fragments, found through the basic offset table.
#[test]
fn fragmented_frames_use_the_offset_table() {
    let (obj, pixels) = image(4, 4, 3);
    let frames_in: Vec<Vec<u8>> = pixels.chunks(16).map(|c| c.to_vec()).collect();
    // Each frame in two fragments of 8 bytes; offsets count item headers.
    let fragments: Vec<Vec<u8>> = frames_in
        .iter()
        .flat_map(|f| f.chunks(8).map(|c| c.to_vec()))
        .collect();
    let mut obj = obj;
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        dicom_core::Length::UNDEFINED,
        dicom_core::value::PixelFragmentSequence::new(vec![0u32, 32, 64], fragments),
    ));
    let bytes = file(obj, "1.2.840.10008.1.2.1.98");
    let got = frames(&bytes, &[3, 1, 2], true).unwrap();
    assert_eq!(got[0].data, frames_in[2]);
    assert_eq!(got[1].data, frames_in[0]);
    assert_eq!(got[2].data, frames_in[1]);
    let decoded = frames(&bytes, &[2], false).unwrap();
    assert_eq!(decoded[0].data, frames_in[1]);
    let bulk = bulkdata(&bytes, "7FE00010").unwrap();
    assert_eq!(
        bulk.iter().map(|b| b.data.clone()).collect::<Vec<_>>(),
        frames_in
    );
}

#[test]
fn bulk_data() {
    let ct = read("CT_small.dcm");
    let pixels = bulkdata(&ct, "7FE00010").unwrap();
    assert_eq!(pixels.len(), 1);
    assert_eq!(pixels[0].vr, "OW");
    assert_eq!(pixels[0].data.len(), 128 * 128 * 2);
    assert_eq!(pixels[0].data, frame("CT_small.dcm", 1, true).data);
    assert_eq!(bulkdata(&ct, "00431029").unwrap()[0].data.len(), 2068);
    for missing in ["00091234", "7FE00010/0/00100010", "nonsense", ""] {
        assert!(
            matches!(bulkdata(&ct, missing), Err(BulkError::NotFound(_))),
            "{missing}"
        );
    }
    let ybr = bulkdata(&read("examples_ybr_color.dcm"), "7FE00010").unwrap();
    assert_eq!(ybr.len(), 30);
    assert!(
        ybr.iter()
            .all(|v| v.vr == "OB" && v.data.starts_with(&[0xFF, 0xD8]))
    );
    assert_eq!(
        bulkdata(&read("MR_small_bigendian.dcm"), "7FE00010").unwrap(),
        bulkdata(&read("MR_small.dcm"), "7FE00010").unwrap()
    );
}

fn transcoded(name: &str) -> (Instance, Vec<u8>) {
    let out =
        transcode(&read(name), EXPLICIT_VR_LITTLE_ENDIAN).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&out[128..132], b"DICM");
    let instance = parse(&out, &ParseOptions::default()).unwrap();
    assert_eq!(instance.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
    let pixels = bulkdata(&out, "7FE00010").unwrap().remove(0).data;
    (instance, pixels)
}

#[test]
fn transcoding_to_explicit_little_endian() {
    let mr = frame("MR_small.dcm", 1, false).data;
    for name in [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
    ] {
        let original = parse(&read(name), &ParseOptions::default()).unwrap();
        let (instance, pixels) = transcoded(name);
        assert_eq!(instance.sop_uid, original.sop_uid, "{name}");
        assert_eq!(pixels, mr, "{name}");
    }
    let (instance, pixels) = transcoded("SC_rgb_dcmtk_+eb+cy+np.dcm");
    assert_eq!(pixels.len(), 100 * 100 * 3);
    let meta: serde_json::Value = serde_json::from_str(&instance.metadata).unwrap();
    assert_eq!(meta["00280004"]["Value"][0], "RGB");
    assert_eq!(meta["7FE00010"]["vr"], "OB");
    assert_eq!(meta["00282110"]["Value"][0], "01");
    let (_, pixels) = transcoded("JPEG2000.dcm");
    assert_eq!(pixels.len(), 1024 * 256 * 2);
    let (_, pixels) = transcoded("SC_rgb_rle_2frame.dcm");
    assert_eq!(pixels.len(), 2 * 100 * 100 * 3);
    let (_, pixels) = transcoded("rtdose_expb.dcm");
    assert_eq!(
        pixels,
        bulkdata(&read("rtdose.dcm"), "7FE00010").unwrap()[0].data
    );
    let (_, pixels) = transcoded("image_dfl.dcm");
    assert_eq!(pixels.len(), 512 * 512);

    assert!(matches!(
        transcode(&read("JPEG-lossy.dcm"), EXPLICIT_VR_LITTLE_ENDIAN),
        Err(TranscodeError::Frame(FrameError::Unsupported { .. }))
    ));
    assert!(matches!(
        transcode(
            &read("MR_small_jpeg_ls_lossless.dcm"),
            EXPLICIT_VR_LITTLE_ENDIAN
        ),
        Err(TranscodeError::Unsupported { .. })
    ));
    assert!(matches!(
        transcode(&read("MR_small.dcm"), "1.2.840.10008.1.2.4.50"),
        Err(TranscodeError::Unsupported { .. })
    ));
    // The same syntax is a copy, given a preamble when it had none.
    let ct = read("CT_small.dcm");
    let copy = transcode(&ct[128..], EXPLICIT_VR_LITTLE_ENDIAN).unwrap();
    assert!(copy.len() == ct.len() && copy[128..] == ct[128..] && copy[..128] == [0u8; 128]);
}

#[test]
fn transcoding_built_encapsulations() {
    let (obj, pixels) = image(6, 5, 2);
    let frames_in: Vec<Vec<u8>> = pixels.chunks(30).map(|c| c.to_vec()).collect();
    let uncompressed = file(
        encapsulate(obj.clone(), frames_in.clone()),
        "1.2.840.10008.1.2.1.98",
    );
    let deflated: Vec<Vec<u8>> = frames_in
        .iter()
        .map(|f| {
            use std::io::Write;
            let mut z =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(f).unwrap();
            z.finish().unwrap()
        })
        .collect();
    let deflated = file(encapsulate(obj, deflated), "1.2.840.10008.1.2.8.1");
    for bytes in [uncompressed, deflated] {
        let decoded = frames(&bytes, &[1, 2], false).unwrap();
        assert_eq!(decoded[0].data, frames_in[0]);
        assert_eq!(decoded[1].data, frames_in[1]);
        let out = transcode(&bytes, EXPLICIT_VR_LITTLE_ENDIAN).unwrap();
        assert_eq!(bulkdata(&out, "7FE00010").unwrap()[0].data, pixels);
    }
}

#[test]
fn transcode_capabilities() {
    let to = EXPLICIT_VR_LITTLE_ENDIAN;
    for from in [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.1\0",
    ] {
        assert!(can_transcode(from, to), "{from}");
    }
    assert!(can_transcode(
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.80"
    ));
    for from in [
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.100",
        "1.2.840.10008.1.2.4.201",
    ] {
        assert!(!can_transcode(from, to), "{from}");
    }
    assert!(!can_transcode(to, "1.2.840.10008.1.2.4.50"));
    assert!(!can_transcode(to, "1.2.840.10008.1.2"));
}

fn rendered(name: &str, n: u32, format: RenderFormat) -> image::DynamicImage {
    let out = render(&read(name), n, format).unwrap_or_else(|e| panic!("{name}: {e}"));
    match format {
        RenderFormat::Png => assert_eq!(&out[..8], b"\x89PNG\r\n\x1a\n"),
        RenderFormat::Jpeg { .. } => assert_eq!(&out[..3], &[0xFF, 0xD8, 0xFF]),
    }
    image::load_from_memory(&out).unwrap()
}

#[test]
fn rendering() {
    for format in [RenderFormat::Png, RenderFormat::Jpeg { quality: 90 }] {
        let img = rendered("CT_small.dcm", 1, format);
        assert_eq!(img.dimensions(), (128, 128));
    }
    let ct = rendered("CT_small.dcm", 1, RenderFormat::Png).to_luma8();
    let (lo, hi) = ct
        .pixels()
        .fold((255, 0), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
    assert_eq!((lo, hi), (0, 255), "min-max window spans the range");

    // The same red-green-blue test card from RLE, baseline JPEG in YBR_FULL_422, and native
    // YBR_FULL_422 renders to the same colours.
    let card = rendered("SC_rgb_rle.dcm", 1, RenderFormat::Png).to_rgb8();
    assert_eq!(card.dimensions(), (100, 100));
    for name in [
        "SC_rgb_dcmtk_+eb+cy+np.dcm",
        "SC_ybr_full_422_uncompressed.dcm",
    ] {
        let other = rendered(name, 1, RenderFormat::Png).to_rgb8();
        for (x, y) in [(5, 5), (50, 15), (50, 50), (95, 95)] {
            let (a, b) = (card.get_pixel(x, y), other.get_pixel(x, y));
            let off =
                a.0.iter()
                    .zip(b.0)
                    .map(|(p, q)| (*p as i32 - q as i32).abs())
                    .max()
                    .unwrap();
            assert!(off <= 12, "{name} at {x},{y}: {a:?} vs {b:?}");
        }
    }
    assert_eq!(
        rendered("examples_palette.dcm", 1, RenderFormat::Png).dimensions(),
        (800, 350)
    );
    assert_eq!(
        rendered(
            "examples_ybr_color.dcm",
            30,
            RenderFormat::Jpeg { quality: 50 }
        )
        .dimensions(),
        (320, 240)
    );
    assert_eq!(
        rendered("rtdose.dcm", 15, RenderFormat::Png).dimensions(),
        (10, 10)
    );
    assert_eq!(
        rendered("liver_1frame.dcm", 1, RenderFormat::Png).dimensions(),
        (512, 512)
    );
    assert_eq!(
        rendered("JPEG2000.dcm", 1, RenderFormat::Png).dimensions(),
        (256, 1024)
    );
    assert!(matches!(
        render(&read("CT_small.dcm"), 2, RenderFormat::Png),
        Err(RenderError::Frame(FrameError::NotFound(2)))
    ));
}

#[test]
fn rendering_applies_the_window() {
    let (mut obj, _) = image(2, 2, 1);
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "1"));
    obj.put(DataElement::new(tags::WINDOW_CENTER, VR::DS, "100"));
    obj.put(DataElement::new(tags::WINDOW_WIDTH, VR::DS, "101"));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(vec![0u8, 50, 100, 200]),
    ));
    let png = render(&file(obj, "1.2.840.10008.1.2.1"), 1, RenderFormat::Png).unwrap();
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    let values: Vec<u8> = img.pixels().map(|p| p[0]).collect();
    // Window 49.5..150.5: 0 and 50 below or at the bottom, 100 mid-grey, 200 white.
    assert_eq!(values[0], 0);
    assert!(values[1] <= 3, "{values:?}");
    assert!((126..=129).contains(&values[2]), "{values:?}");
    assert_eq!(values[3], 255);
}

/// The check made before a retrieve starts sending must foresee every decoder failure among
/// pydicom's files: a file it passes decodes, and it refuses exactly the ones the codecs
/// cannot read (12-bit lossy JPEG, 32-bit RLE, RT doses included). Corrupt data it cannot foresee.
#[test]
fn the_decodability_check_foresees_the_codecs() {
    let mut refused = Vec::new();
    for name in dcm_files() {
        let bytes = read(&name);
        let Ok(scanned) = crate::scan(&bytes, crate::pixel::pixel_paths()) else {
            continue;
        };
        let Ok(source) = crate::pixel::FrameSource::new(&scanned) else {
            continue;
        };
        if !source.is_encapsulated() {
            continue;
        }
        let layout = PixelLayout {
            bits_allocated: Some(source.info.bits_allocated),
            bits_stored: Some(source.info.bits_stored),
            samples: Some(source.info.samples),
        };
        let all: Vec<u32> = (1..=source.info.frames).collect();
        match (undecodable(source.ts, &layout), frames(&bytes, &all, false)) {
            (Some(_), Err(FrameError::Unsupported { .. })) => refused.push(name),
            (None, Ok(_) | Err(FrameError::NotDecodable(_))) => {}
            // A sequence delimiter inside the codestream: corrupt, not a missing feature.
            (None, Err(FrameError::Decode { .. }))
                if name == "JPEG2000-embedded-sequence-delimiter.dcm" => {}
            (check, decoded) => panic!("{name}: check {check:?}, decoded {:?}", decoded.err()),
        }
    }
    refused.sort();
    assert_eq!(
        refused,
        [
            "JPEG-lossy.dcm",
            "JPGExtended.dcm",
            "SC_rgb_rle_32bit.dcm",
            "SC_rgb_rle_32bit_2frame.dcm",
            "rtdose_rle.dcm",
            "rtdose_rle_1frame.dcm"
        ]
    );
}
