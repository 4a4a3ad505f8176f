"""Defects of de-identification: identifying attributes, private tags, UIDs, kept
characteristics, the identity flag, Patient ID and file names."""

from __future__ import annotations

import warnings
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from . import defect
from ._tree import assign, delete, edit, edit_all, first_case, slices


@defect(
    "deid-patient-name",
    "put a patient name into every slice of the COVID-19 case",
    {"deid.attribute.present"},
)
def _deid_patient_name(root: Path) -> None:
    edit_all(first_case(root), assign(PatientName="Zyxwvut^Qwerty"))


@defect(
    "deid-birth-date",
    "put a birth date into every slice of the CAP case",
    {"deid.attribute.present"},
)
def _deid_birth_date(root: Path) -> None:
    edit_all(first_case(root, "cap"), assign(PatientBirthDate="19630412"))


@defect(
    "deid-institution",
    "put an institution name into one slice of the Normal case",
    {"deid.attribute.present"},
)
def _deid_institution(root: Path) -> None:
    edit(slices(first_case(root, "normal"))[0], assign(InstitutionName="Secret Hospital"))


@defect(
    "deid-empty-removed",
    "add an empty Patient's Address (action X) to every slice of the CAP case",
    {"deid.attribute.empty"},
)
def _deid_empty_removed(root: Path) -> None:
    for f in slices(first_case(root, "cap")):
        edit(f, assign(PatientAddress=""))


@defect(
    "deid-private-block",
    "add a private block (creator 'ACME 1.0') to one slice",
    {"deid.private_tags"},
)
def _deid_private_block(root: Path) -> None:
    def change(ds: Dataset) -> None:
        block = ds.private_block(0x0029, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "site note")

    edit(slices(first_case(root))[1], change)


@defect(
    "deid-nested-uid",
    "record a Device Serial Number and nest a UID that embeds it in a sequence item",
    {"deid.uid.not_remapped"},
)
def _deid_nested_uid(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.DeviceSerialNumber = "93005"
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = "1.3.12.2.1107.5.1.4.93005.3000002003050728310"
        ds.ReferencedImageSequence = Sequence([item])

    edit(slices(first_case(root, "cap"))[2], change)


@defect(
    "deid-sex-missing",
    "delete Patient's Sex from one slice",
    {"deid.kept_attribute.missing"},
)
def _deid_sex_missing(root: Path) -> None:
    edit(slices(first_case(root, "normal"))[4], delete("PatientSex"))


@defect(
    "deid-age-malformed",
    "write Patient's Age as '39' (not AS form) in the CAP case",
    {"deid.kept_attribute.missing"},
)
def _deid_age_malformed(root: Path) -> None:
    def change(ds: Dataset) -> None:
        with warnings.catch_warnings():  # pydicom rightly warns: this value is the defect
            warnings.simplefilter("ignore", UserWarning)
            ds.PatientAge = "39"

    edit_all(first_case(root, "cap"), change)


@defect(
    "deid-identity-flag",
    "delete Patient Identity Removed from the Normal case",
    {"deid.patient_identity_removed"},
)
def _deid_identity_flag(root: Path) -> None:
    edit_all(first_case(root, "normal"), delete("PatientIdentityRemoved"))


@defect(
    "deid-patient-id",
    "set a hospital-style Patient ID in the CAP case",
    {"deid.patient_id"},
)
def _deid_patient_id(root: Path) -> None:
    edit_all(first_case(root, "cap"), assign(PatientID="MRN77001234"))


@defect(
    "deid-filename",
    "name the COVID-19 case's files after a Patient ID they carry",
    {"deid.filename"},
)
def _deid_filename(root: Path) -> None:
    for i, f in enumerate(slices(first_case(root)), start=1):
        edit(f, assign(PatientID="98Z14734-QWRT"))
        f.rename(f.with_name(f"98Z14734-QWRT_{i}.dcm"))
