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

__all__ = [
    "FOV_MM",
    "MATRIX",
    "SLICE_MM",
    "SYNTH_PRIVATE_CREATORS",
    "UID_PREFIX",
    "CaseJob",
    "make_uid",
    "write_case",
]

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
    #: add what a scanner writes beside the essentials (see :func:`_vendor_extras`)
    vendor: bool = False


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


#: The private creators :func:`_vendor_extras` writes: a policy that lists them as safe
#: (``safe_private``) keeps a vendor-like tree clean.
SYNTH_PRIVATE_CREATORS = (
    "SYNTH CT VA0  COAD",
    "SYNTH CT VA1 DUMMY",
    "SYNTH MED",
    "SYNTH CSA HEADER",
    "SYNTH MEDCOM HEADER",
)


#: Public attributes a CT scanner writes that the Basic Profile keeps (values synthetic).
_ACQUISITION: dict[str, object] = {
    "ContentDate": "",
    "ContentTime": "",
    "ScanOptions": "HELICAL_CT",
    "AcquisitionType": "SPIRAL",
    "DataCollectionDiameter": 500,
    "SoftwareVersions": "syngo CT VA0S",
    "ReconstructionAlgorithm": "ITERATIVE",
    "ReconstructionDiameter": 383,
    "DistanceSourceToDetector": 1085.6,
    "DistanceSourceToPatient": 595,
    "TableHeight": 160,
    "RotationDirection": "CW",
    "ExposureTime": 600,
    "XRayTubeCurrent": 89,
    "Exposure": 36,
    "FilterType": "0",
    "GeneratorPower": 9,
    "FocalSpots": 0.7,
    "SingleCollimationWidth": 0.6,
    "TotalCollimationWidth": 19.2,
    "TableSpeed": 46.0,
    "TableFeedPerRotation": 27.6,
    "SpiralPitchFactor": 1.4,
    "DataCollectionCenterPatient": [0.0, -160.0, -200.0],
    "ReconstructionTargetCenterPatient": [0.0, -160.0, -200.0],
    "ExposureModulationType": "XYZ_EC",
    "EstimatedDoseSaving": 32.1,
    "CTDIvol": 4.3,
    "SmallestImagePixelValue": 0,
    "LargestImagePixelValue": 4095,
    "WindowCenterWidthExplanation": ["WINDOW1", "WINDOW2"],
    "LossyImageCompression": "00",
    "ConvolutionKernelGroup": "LUNG",
}


def _vendor_extras(ds: Dataset, case: ManifestCase, seed: int) -> None:
    """What a CT scanner writes beside the essentials, shaped like the real release's files.

    The public sample's headers hold about 109 data elements (17 private, in five private
    blocks, and 3 sequences, one of them private, nested one level) and about 2 kB of
    values; the essentials alone are about 50 elements. Benchmarks use this to read
    headers as heavy as the real ones (``write_dataset(..., vendor=True)``). Every value
    is synthetic and de-identified: CT acquisition parameters, remapped UIDs, no dates.
    """
    for keyword, value in _ACQUISITION.items():
        setattr(ds, keyword, value)
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = make_uid(seed, case.case_id, "scout")
    ds.ReferencedImageSequence = [ref]
    src = Dataset()
    src.ReferencedSOPClassUID = CTImageStorage
    src.ReferencedSOPInstanceUID = make_uid(seed, case.case_id, "source")
    ds.SourceImageSequence = [src]
    first = ds.private_block(0x0009, SYNTH_PRIVATE_CREATORS[0], create=True)
    first.add_new(0x10, "LO", "SYNTHETIC VALUE 1")
    second = ds.private_block(0x0019, SYNTH_PRIVATE_CREATORS[1], create=True)
    second.add_new(0xB0, "DS", "27.6")
    second.add_new(0xB1, "LO", "SYNTHETIC PRIVATE TEXT VALUE 01")
    third = ds.private_block(0x0021, SYNTH_PRIVATE_CREATORS[2], create=True)
    third.add_new(0x11, "DS", ["0", "0"])
    csa = ds.private_block(0x0029, SYNTH_PRIVATE_CREATORS[3], create=True)
    csa.add_new(0x08, "CS", "IMAGE NUM 4")
    csa.add_new(0x09, "LO", "20250101")
    csa.add_new(0x10, "OB", bytes(range(256)) * 2 + bytes(224))  # 736 bytes, like CSA
    app = Dataset()
    inner = app.private_block(0x0029, SYNTH_PRIVATE_CREATORS[4], create=True)
    inner.add_new(0x41, "CS", "SOM 5 TPOS")
    inner.add_new(0x42, "LO", "SOM 5 NULLPOSITION")
    inner.add_new(0x43, "LO", "VB10A 20051124")
    inner.add_new(0x44, "OB", bytes(12))
    medcom = ds.private_block(0x0029, SYNTH_PRIVATE_CREATORS[4], create=True)
    medcom.add_new(0x40, "SQ", [app])


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
    if job.vendor:
        _vendor_extras(ds, job.case, job.seed)
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
