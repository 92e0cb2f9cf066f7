#!/usr/bin/env python3
"""Test data for bench/dicom.sh: variants of pydicom's CT_small.dcm (39 KB, explicit VR little
endian, 128x128x16-bit), each with its own Study/Series/SOP Instance UIDs, plus the request
lists the benchmark sends to both servers.

Layout (deterministic: the same arguments give byte-identical files and lists):
  load/     N instances. Study 0 is the "big" study: 10 series x 100 instances = 1,000 (the
            WADO metadata measurement). The rest are regular studies of 10 series x 10
            instances. Two studies per patient; 50 family names, so a `PatientName=FAMILY*`
            prefix matches ~1/50 of the patients. Study dates step 3-4 days apart from
            2015-01-01, so a one-month StudyDate range matches ~8 studies at any N.
  stow50/   SAMPLE instances in further studies (STOW at 50 per request on the loaded store).
  stow1/    SAMPLE instances in further studies (STOW at 1 per request on the loaded store).
  urls/     qido-patientid.txt, qido-studydate.txt, qido-patientname.txt, qido-series.txt,
            qido-instances.txt, wado-instance.txt, metadata.txt: one request path (relative to
            the DICOMweb root, no leading slash) per line, shuffled with a fixed seed.
  manifest.json  the counts above.

File names sort in sending order (study, series, instance), so a 50-instance STOW request
carries half of one study (5 series), as a modality or gateway would send them.

Only pydicom edits the data sets (no byte patching): lengths and the group length of the file
meta information stay right whatever the UIDs' lengths.
"""

import argparse
import datetime
import json
import os
import random
import sys

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.charset import convert_encodings
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info

# pydicom's organisation root, free for anyone to use under a unique suffix.
ROOT = "1.2.826.0.1.3680043.8.498.77"
SERIES_PER_STUDY = 10
INSTANCES_PER_SERIES = 10
BIG_SERIES = 10
BIG_INSTANCES_PER_SERIES = 100
FAMILIES = [
    "ADAMS", "BAKER", "CARTER", "DIAZ", "EVANS", "FISCHER", "GARCIA", "HAN", "IVANOV", "JONES",
    "KOWALSKI", "LOPEZ", "MULLER", "NGUYEN", "OKAFOR", "PATEL", "QUINN", "ROSSI", "SMITH",
    "TANAKA", "URBAN", "VARGA", "WANG", "XAVIER", "YILMAZ", "ZHANG", "ABBOTT", "BERG", "COSTA",
    "DUBOIS", "ERIKSSON", "FARAH", "GUPTA", "HOFFMANN", "IBRAHIM", "JENSEN", "KIM", "LARSEN",
    "MORI", "NOVAK", "OLSEN", "PETROV", "REYES", "SATO", "TORRES", "UDDIN", "VOLKOV", "WEBER",
    "YAMADA", "ZIMMER",
]
GIVEN = ["AMELIA", "OLIVER", "SOFIA", "LUCAS", "AISHA", "MATEO", "YUKI", "NOAH"]
EPOCH = datetime.date(2015, 1, 1)


def uid(kind, study, series=0, instance=0):
    return f"{ROOT}.{kind}.{study + 1}.{series + 1}.{instance + 1}"


def study_date(study):
    # 3.65 days apart on average: ~8 studies per calendar month.
    return EPOCH + datetime.timedelta(days=study * 365 // 100)


def patient_of(study):
    p = study // 2
    name = f"{FAMILIES[p % len(FAMILIES)]}^{GIVEN[(p // len(FAMILIES)) % len(GIVEN)]}"
    return f"PAT{p:06d}", name, p


def layout(first_study, count, big_first):
    """(study, series, instance, series count, instances per series) for `count` instances."""
    out = []
    study = first_study
    while len(out) < count:
        big = big_first and study == first_study
        n_series = BIG_SERIES if big else SERIES_PER_STUDY
        per = BIG_INSTANCES_PER_SERIES if big else INSTANCES_PER_SERIES
        for se in range(n_series):
            for i in range(per):
                if len(out) < count:
                    out.append((study, se, i))
        study += 1
    return out, study


def set_fields(ds, study, se, i):
    """Sets every field that varies between instances (and only those: see `Encoder`)."""
    pid, pname, p = patient_of(study)
    date = study_date(study).strftime("%Y%m%d")
    sop = uid(3, study, se, i)
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = uid(1, study)
    ds.SeriesInstanceUID = uid(2, study, se)
    ds.FrameOfReferenceUID = uid(4, study, se)
    ds.PatientID = pid
    ds.PatientName = pname
    ds.PatientBirthDate = f"{1940 + p % 70}{1 + p % 12:02d}{1 + p % 28:02d}"
    ds.PatientSex = "F" if p % 2 else "M"
    ds.StudyDate = date
    ds.SeriesDate = date
    ds.AcquisitionDate = date
    ds.ContentDate = date
    ds.StudyTime = f"{8 + study % 10:02d}{study % 60:02d}00"
    ds.AccessionNumber = f"ACC{study:07d}"
    ds.StudyID = str(study + 1)
    ds.StudyDescription = f"CT bench study {study + 1}"
    ds.SeriesDescription = f"CT bench series {se + 1}"
    ds.SeriesNumber = se + 1
    ds.InstanceNumber = i + 1


VARYING = [
    "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate", "StudyTime", "AccessionNumber", "StudyID",
    "StudyDescription", "SeriesDescription", "SeriesNumber", "InstanceNumber",
]


def encode(ds):
    """pydicom's own encoding of a data set (explicit VR little endian), as bytes."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


class Encoder:
    """pydicom's `save_as`, ~20 times faster for many variants of one data set.

    pydicom writes ~270 elements one by one, ~7 ms a file: 100k files would take 12 minutes.
    A data set's encoding is the concatenation of its elements' encodings in tag order, so the
    runs of elements that never change are encoded once (by pydicom) and each variant encodes
    only the 19 varying elements and the file meta information (by pydicom). The result is
    checked byte for byte against `save_as` in `self_check`.
    """

    def __init__(self, template):
        self.ds = template
        set_fields(self.ds, 0, 0, 0)  # every varying element exists from here on
        varying = {self.ds.data_element(k).tag for k in VARYING}
        self.parts = []  # bytes (a static run) or a tag (a varying element)
        run = Dataset()
        for elem in self.ds:
            if elem.tag in varying:
                if len(run):
                    self.parts.append(encode(run))
                    run = Dataset()
                self.parts.append(elem.tag)
            else:
                run.add(elem)
        if len(run):
            self.parts.append(encode(run))
        self.encodings = convert_encodings(self.ds.get("SpecificCharacterSet", "ISO_IR 6"))

    def file_bytes(self, study, se, i):
        set_fields(self.ds, study, se, i)
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = False
        fp.write((self.ds.preamble or b"\0" * 128) + b"DICM")
        write_file_meta_info(fp, self.ds.file_meta, enforce_standard=True)
        for part in self.parts:
            if isinstance(part, bytes):
                fp.write(part)
            else:
                write_data_element(fp, self.ds[part], self.encodings)
        return fp.getvalue()

    def self_check(self):
        for args in [(0, 0, 0), (1234, 7, 99), (5, 3, 1)]:
            set_fields(self.ds, *args)
            fp = DicomBytesIO()
            self.ds.save_as(fp, enforce_file_format=True)
            if fp.getvalue() != self.file_bytes(*args):
                sys.exit(f"fast encoder differs from pydicom's save_as for {args}")


def write_set(encoder, directory, items):
    os.makedirs(directory, exist_ok=True)
    for study, se, i in items:
        path = os.path.join(directory, f"s{study:06d}_{se:03d}_{i:04d}.dcm")
        with open(path, "wb") as f:
            f.write(encoder.file_bytes(study, se, i))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=2_500, help="instances in stow50/ and stow1/")
    ap.add_argument("--urls", type=int, default=200, help="request paths per QIDO list")
    ap.add_argument("--wado", type=int, default=2_000, help="instance paths in wado-instance.txt")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if args.instances < BIG_SERIES * BIG_INSTANCES_PER_SERIES + 100:
        sys.exit("--instances must be at least 1100 (the 1,000-instance study and one more)")

    encoder = Encoder(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    encoder.self_check()
    load, next_study = layout(0, args.instances, big_first=True)
    stow50, next_study2 = layout(next_study, args.sample, big_first=False)
    stow1, _ = layout(next_study2, args.sample, big_first=False)
    write_set(encoder, os.path.join(args.out, "load"), load)
    write_set(encoder, os.path.join(args.out, "stow50"), stow50)
    write_set(encoder, os.path.join(args.out, "stow1"), stow1)

    rng = random.Random(args.seed)
    studies = sorted({s for s, _, _ in load})
    regular = [s for s in studies if s != 0]
    series = sorted({(s, se) for s, se, _ in load})

    def pick(population, k):
        return [rng.choice(population) for _ in range(k)]

    lists = {}
    lists["qido-patientid"] = [
        f"studies?PatientID={patient_of(s)[0]}" for s in pick(regular, args.urls)
    ]
    last = study_date(studies[-1])
    months = []
    d = EPOCH
    while d <= last:
        months.append(d)
        d = (d.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    lists["qido-studydate"] = []
    for m in pick(months, args.urls):
        end = (m.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        end -= datetime.timedelta(days=1)
        lists["qido-studydate"].append(
            f"studies?StudyDate={m:%Y%m%d}-{end:%Y%m%d}"
        )
    used_families = sorted({patient_of(s)[1].split("^")[0] for s in regular})
    lists["qido-patientname"] = [
        f"studies?PatientName={f[:4]}*" for f in pick(used_families, args.urls)
    ]
    lists["qido-series"] = [
        f"studies/{uid(1, s)}/series" for s in pick(regular, args.urls)
    ]
    lists["qido-instances"] = [
        f"studies/{uid(1, s)}/series/{uid(2, s, se)}/instances"
        for s, se in pick([x for x in series if x[0] != 0], args.urls)
    ]
    lists["wado-instance"] = [
        f"studies/{uid(1, s)}/series/{uid(2, s, se)}/instances/{uid(3, s, se, i)}"
        for s, se, i in rng.sample(load, min(args.wado, len(load)))
    ]
    lists["metadata"] = [f"studies/{uid(1, 0)}/metadata"]
    os.makedirs(os.path.join(args.out, "urls"), exist_ok=True)
    for name, paths in lists.items():
        with open(os.path.join(args.out, "urls", f"{name}.txt"), "w") as f:
            f.write("\n".join(paths) + "\n")

    manifest = {
        "template": "pydicom CT_small.dcm",
        "pydicom": pydicom.__version__,
        "load_instances": len(load),
        "load_studies": len(studies),
        "big_study": uid(1, 0),
        "big_study_instances": BIG_SERIES * BIG_INSTANCES_PER_SERIES,
        "stow_sample": args.sample,
        "patients": len({patient_of(s)[0] for s in studies}),
        "first_date": f"{EPOCH:%Y-%m-%d}",
        "last_date": f"{last:%Y-%m-%d}",
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
