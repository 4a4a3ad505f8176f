"""Defects of DICOM conformance and parsing: unreadable files, file meta, SOP class,
required attributes, UIDs, transfer syntaxes."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.filebase
import pydicom.filewriter
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    SecondaryCaptureImageStorage,
)

from ..headers import MATRIX, make_uid
from . import defect
from ._tree import assign, delete, edit, first_case, slices

# --------------------------------------------------------------------------- unreadable files


@defect(
    "truncated-file",
    "cut the last slice of the first CAP case inside its Pixel Data",
    {"dicom.unreadable"},
)
def _truncated_file(root: Path) -> None:
    f = slices(first_case(root, "cap"))[-1]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - MATRIX])


@defect(
    "truncated-header",
    "cut one slice of the first CAP case inside its header",
    {"dicom.unreadable"},
)
def _truncated_header(root: Path) -> None:
    f = slices(first_case(root, "cap"))[1]
    f.write_bytes(f.read_bytes()[:700])


@defect(
    "empty-file",
    "empty one slice of the first Normal case (0 bytes)",
    {"dicom.unreadable"},
)
def _empty_file(root: Path) -> None:
    slices(first_case(root, "normal"))[2].write_bytes(b"")


@defect(
    "not-dicom",
    "overwrite one slice of the first Normal case with text",
    {"dicom.unreadable"},
)
def _not_dicom(root: Path) -> None:
    slices(first_case(root, "normal"))[3].write_text("this is not a DICOM file\n" * 20)


@defect(
    "zero-filled",
    "replace the Pixel Data of one CAP slice with 4 MiB of zeros (a zero-filled download)",
    {"dicom.unreadable"},
)
def _zero_filled(root: Path) -> None:
    f = slices(first_case(root, "cap"))[-1]
    data = f.read_bytes()
    f.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")] + bytes(4 << 20))


@defect(
    "vr-mismatch",
    "write one slice's dataset in implicit VR while its file meta says explicit VR",
    {"dicom.parser_warning"},
)
def _vr_mismatch(root: Path) -> None:
    f = slices(first_case(root, "covid"))[4]
    ds = pydicom.dcmread(f)
    head = f.read_bytes()
    end = len(head) - len(_encoded(ds, implicit=False))
    f.write_bytes(head[:end] + _encoded(ds, implicit=True))


def _encoded(ds: Dataset, *, implicit: bool) -> bytes:
    """The dataset (file meta excluded) encoded little endian, implicit or explicit VR."""
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit
    pydicom.filewriter.write_dataset(buffer, ds)
    return buffer.getvalue()


# --------------------------------------------------------------------------- file meta


@defect(
    "file-meta-incomplete",
    "drop File Meta Information Version and Implementation Class UID from a CAP case",
    {"dicom.file_meta"},
)
def _file_meta_incomplete(root: Path) -> None:
    def change(ds: Dataset) -> None:
        del ds.file_meta.FileMetaInformationVersion
        del ds.file_meta.ImplementationClassUID

    for f in slices(first_case(root, "cap")):
        edit(f, change, enforce=False)


@defect(
    "media-uid-mismatch",
    "give one slice a Media Storage SOP Instance UID that differs from its SOP Instance UID",
    {"dicom.file_meta"},
)
def _media_uid_mismatch(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.file_meta.MediaStorageSOPInstanceUID = make_uid("media-mismatch")

    edit(slices(first_case(root, "cap"))[3], change, enforce=False)


@defect(
    "meta-group-length",
    "overwrite File Meta Information Group Length of one CAP slice with a wrong size",
    {"dicom.file_meta"},
)
def _meta_group_length(root: Path) -> None:
    f = slices(first_case(root, "cap"))[4]
    data = bytearray(f.read_bytes())
    assert data[132:138] == b"\x02\x00\x00\x00UL"  # (0002,0000) UL, first after 'DICM'
    (length,) = struct.unpack("<I", data[140:144])
    data[140:144] = struct.pack("<I", length + 40)
    f.write_bytes(bytes(data))


# --------------------------------------------------------------------------- SOP class, attributes


@defect(
    "sop-class",
    "turn one slice of the first CAP case into a Secondary Capture",
    {"dicom.sop_class"},
)
def _sop_class(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage

    edit(slices(first_case(root, "cap"))[5], change)


@defect(
    "type1-missing",
    "delete Rescale Intercept (Type 1) from one slice",
    {"dicom.required_attribute"},
)
def _type1_missing(root: Path) -> None:
    edit(slices(first_case(root, "normal"))[6], delete("RescaleIntercept"))


@defect(
    "type2-missing",
    "delete Patient's Name (Type 2) from every slice of the Normal case",
    {"dicom.required_attribute"},
)
def _type2_missing(root: Path) -> None:
    for f in slices(first_case(root, "normal")):
        edit(f, delete("PatientName"))


@defect(
    "nested-type1-empty",
    "add a Referenced Image Sequence whose item has an empty Referenced SOP Instance UID",
    {"dicom.required_attribute"},
)
def _nested_type1_empty(root: Path) -> None:
    def change(ds: Dataset) -> None:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = ""
        ds.ReferencedImageSequence = Sequence([item])

    for f in slices(first_case(root))[:3]:
        edit(f, change)


@defect(
    "sop-uid-empty",
    "empty every SOP Instance UID of the Normal case, keeping the file meta's (hold-out style)",
    {"dicom.required_attribute"},
)
def _sop_uid_empty(root: Path) -> None:
    for f in slices(first_case(root, "normal")):
        edit(f, assign(SOPInstanceUID=""), enforce=False)


# --------------------------------------------------------------------------- UIDs


@defect(
    "uid-invalid-nested",
    "add a Referenced Image Sequence whose item holds a UID with a leading zero",
    {"dicom.uid.invalid"},
)
def _uid_invalid_nested(root: Path) -> None:
    def change(ds: Dataset) -> None:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        with warnings.catch_warnings():  # pydicom rightly warns: this UID is the defect
            warnings.simplefilter("ignore", UserWarning)
            item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.1145.07"
        ds.ReferencedImageSequence = Sequence([item])

    edit(slices(first_case(root))[7], change)


@defect(
    "uid-duplicate-sop",
    "give slice 2 of the first COVID-19 case slice 1's SOP Instance UID",
    {"dicom.uid.duplicate"},
)
def _uid_duplicate_sop(root: Path) -> None:
    first, second = slices(first_case(root))[:2]
    uid = pydicom.dcmread(first, stop_before_pixels=True).SOPInstanceUID

    def change(ds: Dataset) -> None:
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid

    edit(second, change)


@defect(
    "uid-duplicate-study",
    "give the Normal case the COVID-19 case's Study Instance UID",
    {"dicom.uid.duplicate"},
)
def _uid_duplicate_study(root: Path) -> None:
    study = pydicom.dcmread(slices(first_case(root))[0], stop_before_pixels=True)
    for f in slices(first_case(root, "normal")):
        edit(f, assign(StudyInstanceUID=study.StudyInstanceUID))


# --------------------------------------------------------------------------- transfer syntaxes


@defect(
    "big-endian",
    "rewrite one slice of the first Normal case in Explicit VR Big Endian (valid, retired)",
    {"dicom.transfer_syntax"},
)
def _big_endian(root: Path) -> None:
    f = slices(first_case(root, "normal"))[1]
    ds = pydicom.dcmread(f)
    ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    pydicom.dcmwrite(f, ds, little_endian=False, implicit_vr=False, enforce_file_format=True)


@defect(
    "deflated",
    "rewrite one slice of the first Normal case in Deflated Explicit VR Little Endian",
    {"dicom.transfer_syntax"},
)
def _deflated(root: Path) -> None:
    f = slices(first_case(root, "normal"))[2]
    ds = pydicom.dcmread(f)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(f, enforce_file_format=True)
