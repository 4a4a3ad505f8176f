"""The DICOM side of a synthetic tree: realistic CT headers over tiny pixels.

Each case is one 2 mm axial stack of CT Image Storage files, de-identified so that only
Patient's Sex and Age remain; every UID derives from the seed and the case.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from ..profiles import ManifestCase

__all__ = ["FOV_MM", "MATRIX", "SLICE_MM", "UID_PREFIX", "CaseJob", "make_uid", "write_case"]

MATRIX = 16  # pixels per side: the headers are real, the pixels are tiny
FOV_MM = 383.0
SLICE_MM = 2.0
UID_PREFIX = "1.2.826.0.1.3680043.10.1145."  # synthetic data only


class CaseJob(NamedTuple):
    """One case to write (picklable, for worker processes)."""

    case_dir: Path
    case: ManifestCase
    sex: str
    age: int
    seed: int
    n_slices: int


def make_uid(*parts: object) -> str:
    """A UID under :data:`UID_PREFIX`, derived from ``parts`` only (deterministic)."""
    return generate_uid(UID_PREFIX, entropy_srcs=[str(p) for p in parts])


def _template(case: ManifestCase, sex: str, age: int, seed: int) -> Dataset:  # noqa: PLR0915  (one CT header, attribute by attribute)
    """The header every slice of ``case`` shares (per-slice attributes set when written)."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CTMD_SYNTH"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    ds.ReferringPhysicianName = ""
    ds.ManufacturerModelName = "SOMATOM Scope"
    ds.PatientName = ""
    ds.PatientID = case.case_id  # the pseudonym: the case id
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    ds.PatientAge = f"{age:03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 Basic Profile; Retain Patient Characteristics (sex, age)"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = SLICE_MM
    ds.KVP = 110
    ds.GantryDetectorTilt = 0
    ds.ConvolutionKernel = "D40s"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = make_uid(seed, case.case_id, "study")
    ds.SeriesInstanceUID = make_uid(seed, case.case_id, "series")
    ds.StudyID = ""
    ds.SeriesNumber = 4
    ds.AcquisitionNumber = 2
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = make_uid(seed, case.case_id, "frame")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = MATRIX
    ds.Columns = MATRIX
    ds.PixelSpacing = [FOV_MM / MATRIX, FOV_MM / MATRIX]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = [50, -600]
    ds.WindowWidth = [350, 1200]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    return ds


def _pixels(i: int, n: int) -> bytes:
    """A small disc whose radius follows the slice position: cheap, but not constant."""
    yy, xx = np.mgrid[:MATRIX, :MATRIX] - (MATRIX - 1) / 2
    radius = 2 + (MATRIX / 2 - 2) * np.sin(np.pi * (i + 0.5) / n)
    img = np.where(xx**2 + yy**2 <= radius**2, 1024 + 40, 24).astype("<u2")
    return img.tobytes()


def write_case(job: CaseJob) -> int:
    """Write one case's stack: IM0001 is the cranial end, 2 mm steps caudally."""
    job.case_dir.mkdir(parents=True, exist_ok=True)
    case_id = job.case.case_id
    ds = _template(job.case, job.sex, job.age, job.seed)
    rng = np.random.default_rng([job.seed, zlib.crc32(case_id.encode())])
    top = -40.0 - round(float(rng.uniform(0, 30)), 1)
    x0 = y0 = -FOV_MM / 2
    for i in range(job.n_slices):
        z = round(top - SLICE_MM * i, 1)
        sop = make_uid(job.seed, case_id, i)
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x0, y0, z]
        ds.SliceLocation = z
        ds.PixelData = _pixels(i, job.n_slices)
        ds.save_as(job.case_dir / f"IM{i + 1:04d}.dcm", enforce_file_format=True)
    return job.n_slices
