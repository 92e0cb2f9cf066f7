//! Which top-level attributes describe the study, the series, or the instance. QIDO answers are
//! served from these without reading the files, so each list covers the information entity's
//! modules in PS3.3 (Patient, Clinical Trial Subject, General Study, Patient Study, Clinical Trial
//! Study; General Series, General Equipment, Frame of Reference, Clinical Trial Series; SOP
//! Common, General Image, Image Pixel descriptors, Multi-frame, and the document identifiers of
//! SR and encapsulated documents).

pub(crate) const STUDY: u8 = 1;
pub(crate) const SERIES: u8 = 2;
pub(crate) const INSTANCE: u8 = 4;
const ALL: u8 = STUDY | SERIES | INSTANCE;

/// The levels whose JSON should carry this top-level tag.
pub(crate) fn levels_of(tag: u32) -> u8 {
    match tag {
        // Character set and time zone qualify every other attribute at every level.
        0x0008_0005 | 0x0008_0201 => ALL,

        // Patient, Clinical Trial Subject
        0x0010_0010 | 0x0010_0020 | 0x0010_0021 | 0x0010_0022 | 0x0010_0024 | 0x0010_0026
        | 0x0010_0027 | 0x0010_0028 | 0x0010_0030 | 0x0010_0032 | 0x0010_0033 | 0x0010_0034
        | 0x0010_0035 | 0x0010_0040 | 0x0010_0200 | 0x0010_0212 | 0x0010_0213 | 0x0010_0214
        | 0x0010_0215 | 0x0010_0216 | 0x0010_0217 | 0x0010_0218 | 0x0010_0219 | 0x0010_0221
        | 0x0010_0222 | 0x0010_0223 | 0x0010_0229 | 0x0010_1000 | 0x0010_1001 | 0x0010_1002
        | 0x0010_1100 | 0x0010_2160 | 0x0010_2201 | 0x0010_2202 | 0x0010_2203 | 0x0010_2292
        | 0x0010_2293 | 0x0010_2294 | 0x0010_2295 | 0x0010_2296 | 0x0010_2297 | 0x0010_2298
        | 0x0010_2299 | 0x0010_4000 | 0x0012_0010 | 0x0012_0020 | 0x0012_0021 | 0x0012_0030
        | 0x0012_0031 | 0x0012_0040 | 0x0012_0042 | 0x0012_0062 | 0x0012_0063 | 0x0012_0064
        | 0x0012_0081 | 0x0012_0082 => STUDY,

        // General Study, Patient Study, Clinical Trial Study
        0x0008_0020 | 0x0008_0030 | 0x0008_0050 | 0x0008_0051 | 0x0008_0090 | 0x0008_0096
        | 0x0008_009C | 0x0008_009D | 0x0008_1030 | 0x0008_1032 | 0x0008_1048 | 0x0008_1049
        | 0x0008_1060 | 0x0008_1062 | 0x0008_1080 | 0x0008_1084 | 0x0008_1110 | 0x0010_1010
        | 0x0010_1020 | 0x0010_1021 | 0x0010_1022 | 0x0010_1023 | 0x0010_1024 | 0x0010_1030
        | 0x0010_2000 | 0x0010_2110 | 0x0010_2180 | 0x0010_21A0 | 0x0010_21B0 | 0x0010_21C0
        | 0x0010_21D0 | 0x0012_0050 | 0x0012_0051 | 0x0012_0052 | 0x0012_0053 | 0x0012_0083
        | 0x0020_000D | 0x0020_0010 | 0x0032_1033 | 0x0032_1034 | 0x0038_0010 | 0x0038_0014
        | 0x0038_0060 | 0x0038_0062 | 0x0038_0064 | 0x0038_0500 | 0x0040_1012 => STUDY,

        // General Series, Clinical Trial Series, General Equipment, Frame of Reference
        0x0008_0021 | 0x0008_0031 | 0x0008_0060 | 0x0008_0070 | 0x0008_0080 | 0x0008_0081
        | 0x0008_0082 | 0x0008_103E | 0x0008_103F | 0x0008_1010 | 0x0008_1040 | 0x0008_1041
        | 0x0008_1050 | 0x0008_1052 | 0x0008_1070 | 0x0008_1072 | 0x0008_1090 | 0x0008_1111
        | 0x0008_1250 | 0x0010_2210 | 0x0012_0060 | 0x0012_0071 | 0x0012_0072 | 0x0018_0015
        | 0x0018_1000 | 0x0018_1002 | 0x0018_1008 | 0x0018_1009 | 0x0018_100A | 0x0018_1020
        | 0x0018_1030 | 0x0018_1050 | 0x0018_1200 | 0x0018_1201 | 0x0018_5100 | 0x0020_000E
        | 0x0020_0011 | 0x0020_0052 | 0x0020_0060 | 0x0020_1040 | 0x0028_0108 | 0x0028_0109
        | 0x0028_0120 | 0x0040_0244 | 0x0040_0245 | 0x0040_0250 | 0x0040_0251 | 0x0040_0253
        | 0x0040_0254 | 0x0040_0260 | 0x0040_0261 | 0x0040_0275 | 0x0040_0280 => SERIES,

        // SOP Common, General Image, Image Pixel descriptors, Multi-frame, document identity
        0x0008_0008 | 0x0008_0012 | 0x0008_0013 | 0x0008_0014 | 0x0008_0016 | 0x0008_0018
        | 0x0008_0022 | 0x0008_0023 | 0x0008_002A | 0x0008_0032 | 0x0008_0033 | 0x0008_1140
        | 0x0008_2111 | 0x0008_9205 | 0x0020_0012 | 0x0020_0013 | 0x0020_0020 | 0x0020_0032
        | 0x0020_0037 | 0x0020_0062 | 0x0020_1002 | 0x0020_1041 | 0x0020_4000 | 0x0020_9161
        | 0x0028_0002 | 0x0028_0004 | 0x0028_0006 | 0x0028_0008 | 0x0028_0009 | 0x0028_0010
        | 0x0028_0011 | 0x0028_0030 | 0x0028_0034 | 0x0028_0100 | 0x0028_0101 | 0x0028_0102
        | 0x0028_0103 | 0x0028_0300 | 0x0028_0301 | 0x0028_0302 | 0x0028_1050 | 0x0028_1051
        | 0x0028_1052 | 0x0028_1053 | 0x0028_1054 | 0x0028_1055 | 0x0028_2110 | 0x0028_2112
        | 0x0028_2114 | 0x0040_A043 | 0x0040_A491 | 0x0040_A493 | 0x0040_A496 | 0x0042_0010
        | 0x0042_0012 => INSTANCE,

        _ => 0,
    }
}

/// Top-level attributes whose values go into [`crate::IndexAttributes`] or are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Indexed {
    PatientId,
    PatientName,
    PatientBirthDate,
    StudyDate,
    StudyTime,
    AccessionNumber,
    ReferringPhysicianName,
    StudyDescription,
    StudyId,
    PatientSex,
    Modality,
    SeriesDescription,
    SeriesNumber,
    PerformedProcedureStepStartDate,
    ManufacturerModelName,
    InstanceNumber,
    Rows,
    Columns,
    BitsAllocated,
    NumberOfFrames,
    StudyUid,
    SeriesUid,
    SopUid,
    SopClassUid,
}

pub(crate) fn indexed(tag: u32) -> Option<Indexed> {
    use Indexed::*;
    Some(match tag {
        0x0010_0020 => PatientId,
        0x0010_0010 => PatientName,
        0x0010_0030 => PatientBirthDate,
        0x0008_0020 => StudyDate,
        0x0008_0030 => StudyTime,
        0x0008_0050 => AccessionNumber,
        0x0008_0090 => ReferringPhysicianName,
        0x0008_1030 => StudyDescription,
        0x0020_0010 => StudyId,
        0x0010_0040 => PatientSex,
        0x0008_0060 => Modality,
        0x0008_103E => SeriesDescription,
        0x0020_0011 => SeriesNumber,
        0x0040_0244 => PerformedProcedureStepStartDate,
        0x0008_1090 => ManufacturerModelName,
        0x0020_0013 => InstanceNumber,
        0x0028_0010 => Rows,
        0x0028_0011 => Columns,
        0x0028_0100 => BitsAllocated,
        0x0028_0008 => NumberOfFrames,
        0x0020_000D => StudyUid,
        0x0020_000E => SeriesUid,
        0x0008_0018 => SopUid,
        0x0008_0016 => SopClassUid,
        _ => return None,
    })
}

impl Indexed {
    pub(crate) fn keyword(self) -> &'static str {
        use Indexed::*;
        match self {
            PatientId => "PatientID",
            PatientName => "PatientName",
            PatientBirthDate => "PatientBirthDate",
            StudyDate => "StudyDate",
            StudyTime => "StudyTime",
            AccessionNumber => "AccessionNumber",
            ReferringPhysicianName => "ReferringPhysicianName",
            StudyDescription => "StudyDescription",
            StudyId => "StudyID",
            PatientSex => "PatientSex",
            Modality => "Modality",
            SeriesDescription => "SeriesDescription",
            SeriesNumber => "SeriesNumber",
            PerformedProcedureStepStartDate => "PerformedProcedureStepStartDate",
            ManufacturerModelName => "ManufacturerModelName",
            InstanceNumber => "InstanceNumber",
            Rows => "Rows",
            Columns => "Columns",
            BitsAllocated => "BitsAllocated",
            NumberOfFrames => "NumberOfFrames",
            StudyUid => "StudyInstanceUID",
            SeriesUid => "SeriesInstanceUID",
            SopUid => "SOPInstanceUID",
            SopClassUid => "SOPClassUID",
        }
    }

    pub(crate) fn tag(self) -> &'static str {
        use Indexed::*;
        match self {
            PatientId => "00100020",
            PatientName => "00100010",
            PatientBirthDate => "00100030",
            StudyDate => "00080020",
            StudyTime => "00080030",
            AccessionNumber => "00080050",
            ReferringPhysicianName => "00080090",
            StudyDescription => "00081030",
            StudyId => "00200010",
            PatientSex => "00100040",
            Modality => "00080060",
            SeriesDescription => "0008103E",
            SeriesNumber => "00200011",
            PerformedProcedureStepStartDate => "00400244",
            ManufacturerModelName => "00081090",
            InstanceNumber => "00200013",
            Rows => "00280010",
            Columns => "00280011",
            BitsAllocated => "00280100",
            NumberOfFrames => "00280008",
            StudyUid => "0020000D",
            SeriesUid => "0020000E",
            SopUid => "00080018",
            SopClassUid => "00080016",
        }
    }

    pub(crate) const COUNT: usize = 24;

    pub(crate) fn slot(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_tags_are_on_their_levels() {
        let study = [
            0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080090, 0x00081030, 0x00100010,
            0x00100020, 0x00100021, 0x00100030, 0x00100040, 0x00101010, 0x00101020, 0x00101030,
            0x0020000D, 0x00200010, 0x00080201,
        ];
        let series = [
            0x00080060, 0x0008103E, 0x00200011, 0x0020000E, 0x00400244, 0x00400245, 0x00400275,
            0x00080070, 0x00081090, 0x00180015, 0x00080021, 0x00080031, 0x00200060,
        ];
        let instance = [
            0x00080016, 0x00080018, 0x00200013, 0x00280010, 0x00280011, 0x00280100, 0x00280008,
            0x00080008, 0x00080023, 0x00080033,
        ];
        for t in study {
            assert!(levels_of(t) & STUDY != 0, "{t:08X}");
        }
        for t in series {
            assert!(levels_of(t) & SERIES != 0, "{t:08X}");
        }
        for t in instance {
            assert!(levels_of(t) & INSTANCE != 0, "{t:08X}");
        }
        assert_eq!(levels_of(0x7FE0_0010), 0);
    }

    #[test]
    fn index_keywords_match_tags() {
        for (tag, slot) in [(0x0020_000Du32, "0020000D"), (0x0008_1090, "00081090")] {
            assert_eq!(indexed(tag).map(|i| i.tag()), Some(slot));
        }
    }
}
