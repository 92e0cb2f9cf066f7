#!/usr/bin/env python3
"""Large instances for bench/dicom.sh's byte-throughput cells: multi-frame 16-bit images (Multi-
frame Grayscale Word Secondary Capture), each in a study of its own, so that a WADO retrieve
measures how fast the server moves bytes rather than how fast it answers requests.

Layout (deterministic: the same arguments give byte-identical files):
  large/                  COUNT instances of about MB megabytes each (512x512 frames of 16 bits)
  urls/wado-large.txt     their retrieve paths (relative to the DICOMweb root), in file order
  manifest.json           the counts and the exact file size

Pixel values are pseudo-random, so neither a compressing store nor a compressing transport could
make the bytes cheaper than they are. Only pydicom encodes.
"""

import argparse
import json
import os
import random

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

# pydicom's organisation root under this benchmark's own suffix (dicom_gen.py uses .77).
ROOT = "1.2.826.0.1.3680043.8.498.78"
# Multi-frame Grayscale Word Secondary Capture Image Storage: 16-bit frames, no CT modules.
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7.3"
SIDE = 512


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--mb", type=int, default=64, help="approximate size of each instance")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    frames = max(1, args.mb * 1_000_000 // (SIDE * SIDE * 2))
    rng = random.Random(args.seed)
    pixels = rng.randbytes(frames * SIDE * SIDE * 2)

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASS
    ds.SOPClassUID = SOP_CLASS
    ds.Modality = "OT"
    ds.Rows = SIDE
    ds.Columns = SIDE
    ds.NumberOfFrames = frames
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = pixels

    os.makedirs(os.path.join(args.out, "large"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "urls"), exist_ok=True)
    paths = []
    size = 0
    for n in range(args.count):
        study, series, sop = (f"{ROOT}.{kind}.{n + 1}" for kind in (1, 2, 3))
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.PatientID = f"LARGE{n:04d}"
        ds.PatientName = f"LARGE^{n:04d}"
        ds.StudyDescription = f"large instance {n + 1}"
        ds.InstanceNumber = 1
        path = os.path.join(args.out, "large", f"l{n:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        size = os.path.getsize(path)
        paths.append(f"studies/{study}/series/{series}/instances/{sop}")
    with open(os.path.join(args.out, "urls", "wado-large.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    manifest = {"count": args.count, "frames": frames, "bytes": size, "sop_class": SOP_CLASS}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
