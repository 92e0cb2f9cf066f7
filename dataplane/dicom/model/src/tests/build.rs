//! Data sets made in the tests: through dicom-object for ordinary ones, and byte by byte for
//! encodings dicom-object would not produce (UN sequences, mislabelled syntaxes, odd charsets).

use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

pub const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";
pub const SERIES: &str = "1.2.826.0.1.3680043.8.498.2";
pub const SOP: &str = "1.2.826.0.1.3680043.8.498.3";
pub const SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";

/// An object with the four identifying UIDs and a few indexed attributes.
pub fn base() -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, SOP_CLASS));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, SOP));
    obj.put(DataElement::new(tags::STUDY_DATE, VR::DA, "20240229"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    obj.put(DataElement::new(tags::PATIENT_NAME, VR::PN, "Doe^Jane"));
    obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, "P1"));
    obj.put(DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, STUDY));
    obj.put(DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, SERIES));
    obj.put(DataElement::new(tags::SERIES_NUMBER, VR::IS, "3"));
    obj
}

/// A Part 10 file of `obj` in transfer syntax `ts`, with the preamble.
pub fn file(obj: InMemDicomObject, ts: &str) -> Vec<u8> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid(SOP_CLASS)
        .media_storage_sop_instance_uid(SOP);
    let file = obj.with_meta(meta).expect("meta table builds");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("object writes");
    out
}

pub fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

/// A monochrome 8-bit image of `frames` frames, `rows` x `cols`, with ramp values.
pub fn image(rows: u16, cols: u16, frames: u32) -> (InMemDicomObject, Vec<u8>) {
    let mut obj = base();
    let len = rows as usize * cols as usize * frames as usize;
    let pixels: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1_u16),
    ));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        frames.to_string(),
    ));
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(rows),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(cols),
    ));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(8_u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(8_u16),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(7_u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    ));
    (obj, pixels)
}

/// `obj` with its pixel data encapsulated, one fragment per frame as produced by `encode`.
pub fn encapsulate(mut obj: InMemDicomObject, frames: Vec<Vec<u8>>) -> InMemDicomObject {
    let fragments: Vec<Vec<u8>> = frames
        .into_iter()
        .map(|mut f| {
            if f.len() % 2 == 1 {
                f.push(0);
            }
            f
        })
        .collect();
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
    ));
    obj
}

/// Explicit or implicit VR little endian elements written by hand.
pub struct Raw {
    explicit: bool,
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn explicit() -> Raw {
        Raw {
            explicit: true,
            bytes: Vec::new(),
        }
    }

    pub fn implicit() -> Raw {
        Raw {
            explicit: false,
            bytes: Vec::new(),
        }
    }

    fn tag(&mut self, tag: u32) {
        self.bytes
            .extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
        self.bytes.extend_from_slice(&(tag as u16).to_le_bytes());
    }

    /// An element with a defined length; `vr` is ignored in implicit VR.
    pub fn el(mut self, tag: u32, vr: &str, value: &[u8]) -> Raw {
        self.tag(tag);
        if self.explicit {
            self.bytes.extend_from_slice(vr.as_bytes());
            if matches!(
                vr,
                "OB" | "OW"
                    | "OF"
                    | "OD"
                    | "OL"
                    | "OV"
                    | "SQ"
                    | "UN"
                    | "UT"
                    | "UC"
                    | "UR"
                    | "SV"
                    | "UV"
            ) {
                self.bytes.extend_from_slice(&[0, 0]);
                self.bytes
                    .extend_from_slice(&(value.len() as u32).to_le_bytes());
            } else {
                self.bytes
                    .extend_from_slice(&(value.len() as u16).to_le_bytes());
            }
        } else {
            self.bytes
                .extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        self.bytes.extend_from_slice(value);
        self
    }

    /// A text element padded to even length as its VR requires.
    pub fn text(self, tag: u32, vr: &str, value: &str) -> Raw {
        let mut v = value.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(if vr == "UI" { 0 } else { b' ' });
        }
        self.el(tag, vr, &v)
    }

    pub fn bytes_text(self, tag: u32, vr: &str, value: &[u8]) -> Raw {
        let mut v = value.to_vec();
        if v.len() % 2 == 1 {
            v.push(b' ');
        }
        self.el(tag, vr, &v)
    }

    /// An undefined-length element header (a sequence, or UN holding one).
    pub fn open(mut self, tag: u32, vr: &str) -> Raw {
        self.tag(tag);
        if self.explicit {
            self.bytes.extend_from_slice(vr.as_bytes());
            self.bytes.extend_from_slice(&[0, 0]);
        }
        self.bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        self
    }

    pub fn delimiter(mut self, tag: u32) -> Raw {
        self.tag(tag);
        self.bytes.extend_from_slice(&0u32.to_le_bytes());
        self
    }

    pub fn item_start(mut self) -> Raw {
        self.tag(0xFFFE_E000);
        self.bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> Raw {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// The four UIDs, in tag order relative to each other.
    pub fn ids(self) -> Raw {
        self.text(0x0008_0016, "UI", SOP_CLASS)
            .text(0x0008_0018, "UI", SOP)
    }

    pub fn study_series(self) -> Raw {
        self.text(0x0020_000D, "UI", STUDY)
            .text(0x0020_000E, "UI", SERIES)
    }
}

/// A Part 10 file around hand-written data set bytes, with an explicit VR LE meta group.
pub fn part10(ts: &str, dataset: &[u8]) -> Vec<u8> {
    let meta = Raw::explicit()
        .el(0x0002_0001, "OB", &[0, 1])
        .text(0x0002_0002, "UI", SOP_CLASS)
        .text(0x0002_0003, "UI", SOP)
        .text(0x0002_0010, "UI", ts)
        .bytes;
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(
        &Raw::explicit()
            .el(0x0002_0000, "UL", &(meta.len() as u32).to_le_bytes())
            .bytes,
    );
    out.extend_from_slice(&meta);
    out.extend_from_slice(dataset);
    out
}
