"""Defects of the patient characteristics the dataset keeps (sex, age) against the
published demographics."""

from __future__ import annotations

from pathlib import Path

import pydicom

from . import defect
from ._tree import assign, edit, edit_all, first_case, slices


@defect(
    "demographics-inconsistent",
    "flip Patient's Sex on one slice of the COVID-19 case",
    {"demographics.inconsistent"},
)
def _demographics_inconsistent(root: Path) -> None:
    path = slices(first_case(root))[6]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    edit(path, assign(PatientSex="F" if ds.PatientSex == "M" else "M"))


@defect(
    "age-months",
    "write Patient's Age in months ('540M', valid DICOM) in the Normal case",
    {"demographics.age_format"},
)
def _age_months(root: Path) -> None:
    edit_all(first_case(root, "normal"), assign(PatientAge="540M"))


@defect(
    "demographics-sex",
    "flip Patient's Sex on every slice of the Normal case (validated with tree_profile)",
    {"demographics.sex"},
    profile="tree",
)
def _demographics_sex(root: Path) -> None:
    path = slices(first_case(root, "normal"))[0]
    sex = pydicom.dcmread(path, stop_before_pixels=True).PatientSex
    edit_all(first_case(root, "normal"), assign(PatientSex="F" if sex == "M" else "M"))


@defect(
    "demographics-age",
    "add ten years to Patient's Age in the CAP case (validated with tree_profile)",
    {"demographics.age"},
    profile="tree",
)
def _demographics_age(root: Path) -> None:
    path = slices(first_case(root, "cap"))[0]
    age = int(str(pydicom.dcmread(path, stop_before_pixels=True).PatientAge)[:3])
    edit_all(first_case(root, "cap"), assign(PatientAge=f"{age + 10:03d}Y"))
