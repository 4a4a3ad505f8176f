"""The scan tables and their pandera schemas.

``class_dirs``  one row per class folder found
``cases``       one row per case folder
``files``       one row per image file (parsed or unreadable)
``elements``    one row per data element of every parsed file, sequences included
``entries``     everything else in the tree: label files, documents, stray files and folders

The schemas are the contract between the scan and the checks: a scan that produced a table
that does not fit is a bug of the tool, so validation errors propagate (lazily collected).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

from .profiles import Profile

#: What a tree entry that is not a class folder, case folder or image is.
ENTRY_ROLES = ("stray", "dataset_file", "symlink_outside", "symlink_loop")

__all__ = [
    "CASES",
    "CLASS_DIRS",
    "ELEMENTS",
    "ENTRIES",
    "FILES",
    "make_cases",
    "make_class_dirs",
    "make_elements",
    "make_entries",
    "make_files",
]

_STR = "string"
_FLOAT = "float64"

_FILE_STR_COLUMNS = (
    "warnings",
    "name_tokens",
    "transfer_syntax",
    "media_sop_class_uid",
    "media_sop_instance_uid",
    "sop_class_uid",
    "sop_instance_uid",
    "study_uid",
    "series_uid",
    "frame_of_reference_uid",
    "modality",
    "patient_id",
    "patient_sex",
    "patient_age",
    "pixel_status",
    "pixel_error",
)
_FILE_FLOAT_COLUMNS = (
    "size",
    "meta_group_length",
    "meta_length",
    "pixel_length",
    "pixel_fragments",
    "instance_number",
    "slice_location",
    "slice_thickness",
    "gantry_tilt",
    "rows",
    "columns",
    "bits_allocated",
    "samples_per_pixel",
    "number_of_frames",
    "rescale_slope",
    "rescale_intercept",
    "ipp_0",
    "ipp_1",
    "ipp_2",
    "iop_0",
    "iop_1",
    "iop_2",
    "iop_3",
    "iop_4",
    "iop_5",
    "pixel_spacing_0",
    "pixel_spacing_1",
    "bits_stored",
    "pixel_representation",
    "stored_min",
    "stored_max",
)

CLASS_DIRS = pa.DataFrameSchema(
    {
        "path": pa.Column(_STR, unique=True),
        "name": pa.Column(_STR),
        "class_key": pa.Column(_STR),
    },
    strict=True,
    ordered=False,
)

CASES = pa.DataFrameSchema(
    {
        "case_key": pa.Column(_STR, unique=True),
        "case_id": pa.Column(_STR),
        "class_key": pa.Column(_STR),
        "class_dir": pa.Column(_STR),
        "n_files": pa.Column("int64", pa.Check.ge(0)),
        "n_readable": pa.Column("int64", pa.Check.ge(0)),
        "n_unreadable": pa.Column("int64", pa.Check.ge(0)),
    },
    checks=pa.Check(
        lambda df: df["n_readable"] + df["n_unreadable"] == df["n_files"],
        error="n_readable + n_unreadable must equal n_files",
    ),
    strict=True,
    ordered=False,
)

FILES = pa.DataFrameSchema(
    {
        "file_idx": pa.Column("int64", unique=True),
        "path": pa.Column(_STR, unique=True),
        "case_key": pa.Column(_STR),
        "suffix_ok": pa.Column("bool"),
        "status": pa.Column(_STR, pa.Check.isin(["ok", "unreadable"])),
        "error": pa.Column(_STR, nullable=True),
        **{c: pa.Column(_STR, nullable=True) for c in _FILE_STR_COLUMNS},
        **{c: pa.Column(_FLOAT, nullable=True) for c in _FILE_FLOAT_COLUMNS},
    },
    checks=pa.Check(
        lambda df: (df["status"] == "ok") | df["error"].notna(),
        error="an unreadable file must say why",
    ),
    strict=True,
    ordered=False,
)

ELEMENTS = pa.DataFrameSchema(
    {
        "file_idx": pa.Column("int64"),
        "path": pa.Column("category"),
        "tag": pa.Column("int64", pa.Check.ge(0)),
        "depth": pa.Column("int64", pa.Check.ge(0)),
        "vr": pa.Column("category"),
        "length": pa.Column("int64", pa.Check.ge(-1)),
        "value": pa.Column("object", nullable=True),
    },
    strict=True,
    ordered=False,
)

ENTRIES = pa.DataFrameSchema(
    {
        "path": pa.Column(_STR, unique=True),
        "kind": pa.Column(_STR, pa.Check.isin(["file", "dir", "link"])),
        "role": pa.Column(_STR, pa.Check.isin(ENTRY_ROLES)),
        "case_key": pa.Column(_STR, nullable=True),
        "reason": pa.Column(_STR, nullable=True),
        # parts of a stray file's name that its own bytes spell out (masked in reports)
        "name_tokens": pa.Column(_STR, nullable=True),
    },
    strict=True,
    ordered=False,
)


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    df = (
        pd.DataFrame.from_records(rows, columns=list(columns))
        if rows
        else pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    )
    return df.astype(columns)


def make_class_dirs(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The class folders found (path, name as spelt, class key), schema-checked."""
    df = _frame(rows, {"path": _STR, "name": _STR, "class_key": _STR})
    return CLASS_DIRS.validate(df, lazy=True)


def make_files(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per candidate image: status, error, the header fields the checks read."""
    columns = {
        "file_idx": "int64",
        "path": _STR,
        "case_key": _STR,
        "suffix_ok": "bool",
        "status": _STR,
        "error": _STR,
        **dict.fromkeys(_FILE_STR_COLUMNS, _STR),
        **dict.fromkeys(_FILE_FLOAT_COLUMNS, _FLOAT),
    }
    df = _frame(rows, columns)
    return FILES.validate(df, lazy=True)


def make_cases(rows: list[dict[str, Any]], files: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """One row per case folder, with its readable and unreadable file counts."""
    del profile  # expectations are applied by the checks, not stored in the table
    df = _frame(rows, {"case_key": _STR, "case_id": _STR, "class_key": _STR, "class_dir": _STR})
    counts = files.groupby("case_key")["status"].value_counts().unstack(fill_value=0)
    readable = counts["ok"] if "ok" in counts else pd.Series(dtype="int64")
    unreadable = counts["unreadable"] if "unreadable" in counts else pd.Series(dtype="int64")
    df["n_readable"] = df["case_key"].map(readable).fillna(0).astype("int64")
    df["n_unreadable"] = df["case_key"].map(unreadable).fillna(0).astype("int64")
    df["n_files"] = df["n_readable"] + df["n_unreadable"]
    return CASES.validate(df, lazy=True)


def make_elements(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """Element table from columns; paths and VRs are categorical (few distinct, many rows)."""
    df = pd.DataFrame(
        {
            "file_idx": pd.Series(columns["file_idx"], dtype="int64"),
            "path": pd.Categorical(columns["path"]),
            "tag": pd.Series(columns["tag"], dtype="int64"),
            "depth": pd.Series(columns["depth"], dtype="int64"),
            "vr": pd.Categorical(columns["vr"]),
            "length": pd.Series(columns["length"], dtype="int64"),
            "value": pd.Series(columns["value"], dtype=object),
        }
    )
    return ELEMENTS.validate(df, lazy=True)


def make_entries(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Tree entries that are no class, case or image: strays, links, data files."""
    df = _frame(
        rows,
        {
            "path": _STR,
            "kind": _STR,
            "role": _STR,
            "case_key": _STR,
            "reason": _STR,
            "name_tokens": _STR,
        },
    )
    return ENTRIES.validate(df, lazy=True)
