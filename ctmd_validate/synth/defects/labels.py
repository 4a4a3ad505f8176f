"""Defects of the label files: ``Index.csv`` and the slice- and lobe-level arrays.

The file names are the release profile's (see :mod:`._tree`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import defect
from ._tree import (
    ALL_ARRAYS,
    INDEX_FILE,
    ORIGINAL_LOBE,
    ORIGINAL_SLICE,
    RELEASE,
    UPDATED_LOBE,
    UPDATED_SLICE,
    edit_arrays,
    edit_index,
    index_lines,
    label_row,
    load_array,
    present_labelled,
    write_index,
)

# --------------------------------------------------------------------------- files


@defect(
    "labels-missing",
    "delete the updated-1 lobe-level label array",
    {"labels.file.missing"},
)
def _labels_missing(root: Path) -> None:
    (root / UPDATED_LOBE).unlink()


@defect(
    "labels-pickled",
    "replace the original slice-level array with a pickled object array",
    {"labels.file.unreadable"},
)
def _labels_pickled(root: Path) -> None:
    objects = np.empty(2, dtype=object)
    objects[:] = [{"labels": [0, 1]}, "not an array of labels"]
    np.save(root / ORIGINAL_SLICE, objects, allow_pickle=True)


@defect(
    "labels-truncated",
    "cut the original lobe-level array in the middle of its data",
    {"labels.file.unreadable"},
)
def _labels_truncated(root: Path) -> None:
    path = root / ORIGINAL_LOBE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@defect(
    "labels-not-npy",
    "overwrite the updated-1 slice-level array with CSV text",
    {"labels.file.unreadable"},
)
def _labels_not_npy(root: Path) -> None:
    (root / UPDATED_SLICE).write_text("0,1,0\n1,1,0\n")


# --------------------------------------------------------------------------- Index.csv

_ID_COLUMN = RELEASE.labels.index_columns[-1]  # "Folder/ID"
_ID_COLUMN_RENAMED = _ID_COLUMN.replace("/", " ")


@defect(
    "index-header",
    f"rename the {INDEX_FILE} column '{_ID_COLUMN}' to '{_ID_COLUMN_RENAMED}'",
    {"labels.index.schema"},
)
def _index_header(root: Path) -> None:
    lines = index_lines(root)
    lines[0] = lines[0].replace(_ID_COLUMN, _ID_COLUMN_RENAMED)
    write_index(root, lines)


@defect(
    "index-bad-id",
    f"write case P030 as 'P30' in {INDEX_FILE}",
    {"labels.index.schema"},
)
def _index_bad_id(root: Path) -> None:
    edit_index(root, "P030", 3, "P30")


@defect(
    "index-ragged",
    f"add a fifth field to the {INDEX_FILE} line of P031",
    {"labels.index.schema"},
)
def _index_ragged(root: Path) -> None:
    edit_index(root, "P031", 2, "./COVID-19/,extra")


@defect(
    "index-gap",
    f"skip Label Index 43: rows from P044 on carry their position + 1 (as the real {INDEX_FILE})",
    {"labels.index.gap", "labels.index.out_of_range"},
)
def _index_gap(root: Path) -> None:
    lines = index_lines(root)
    for i in range(44, len(lines)):
        fields = lines[i].split(",")
        fields[0] = str(int(fields[0]) + 1)
        lines[i] = ",".join(fields)
    write_index(root, lines)


@defect(
    "index-diagnosis",
    f"file the present COVID-19 case under CAP in {INDEX_FILE} (Diagnosis and Relative Path)",
    {"labels.index.diagnosis_mismatch", "counts.labelled"},
)
def _index_diagnosis(root: Path) -> None:
    case_id, _n = present_labelled(root)
    edit_index(root, case_id, 1, "CAP")
    edit_index(root, case_id, 2, "./CAP/")


@defect(
    "index-relative-path",
    f"give P020 the Relative Path './CAP/' in {INDEX_FILE}",
    {"labels.index.relative_path"},
)
def _index_relative_path(root: Path) -> None:
    edit_index(root, "P020", 2, "./CAP/")


# --------------------------------------------------------------------------- arrays


@defect(
    "labels-shape",
    "drop the last slice column of the updated-1 slice-level array",
    {"labels.shape"},
)
def _labels_shape(root: Path) -> None:
    np.save(root / UPDATED_SLICE, load_array(root, UPDATED_SLICE)[:, :-1].copy())


@defect(
    "labels-dtype",
    "store the arrays in the release's dtypes: float64 lobes, int32 updated-1 slices",
    {"labels.dtype"},
)
def _labels_dtype(root: Path) -> None:
    for name, dtype in (
        (ORIGINAL_LOBE, np.float64),
        (UPDATED_LOBE, np.float64),
        (UPDATED_SLICE, np.int32),
    ):
        np.save(root / name, load_array(root, name).astype(dtype))


@defect(
    "labels-values",
    "set one infected cell of P020 to 2 in both slice-level arrays",
    {"labels.values"},
)
def _labels_values(root: Path) -> None:
    row = label_row(root, "P020")

    def change(array: np.ndarray, _name: str) -> None:
        array[row, int(np.flatnonzero(array[row])[0])] = 2

    edit_arrays(root, change, (ORIGINAL_SLICE, UPDATED_SLICE))


@defect(
    "labels-lobe-mismatch",
    "clear every lobe of one infected P020 slice in both lobe-level arrays",
    {"labels.lobe_slice.mismatch"},
)
def _labels_lobe_mismatch(root: Path) -> None:
    row = label_row(root, "P020")
    first = int(np.flatnonzero(load_array(root, ORIGINAL_SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, first, :] = 0

    edit_arrays(root, change, (ORIGINAL_LOBE, UPDATED_LOBE))


@defect(
    "labels-padding",
    "move one infected slice of the present COVID-19 case past its last slice (all arrays)",
    {"labels.padding"},
)
def _labels_padding(root: Path) -> None:
    case_id, n = present_labelled(root)
    row = label_row(root, case_id)
    first = int(np.flatnonzero(load_array(root, ORIGINAL_SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, n + 3] = array[row, first]
        array[row, first] = 0

    edit_arrays(root, change, ALL_ARRAYS)


@defect(
    "labels-capacity",
    "cut every label array to 170 slice columns (release scans reach 195 slices)",
    {"labels.capacity"},
)
def _labels_capacity(root: Path) -> None:
    for name in ALL_ARRAYS:
        np.save(root / name, load_array(root, name)[:, :170].copy())


@defect(
    "labels-reversed",
    "reverse the slice order of the present COVID-19 case's labels (all arrays)",
    {"labels.orientation"},
)
def _labels_reversed(root: Path) -> None:
    case_id, n = present_labelled(root)
    row = label_row(root, case_id)

    def change(array: np.ndarray, _name: str) -> None:
        array[row, :n] = array[row, :n][::-1].copy()

    edit_arrays(root, change, ALL_ARRAYS)


# --------------------------------------------------------------------------- versions, totals


@defect(
    "labels-unannounced-change",
    "add an infected slice to P020 in the updated-1 labels only (not announced)",
    {"labels.version_diff"},
)
def _labels_unannounced(root: Path) -> None:
    row = label_row(root, "P020")
    first = int(np.flatnonzero(load_array(root, UPDATED_SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, first - 1] = array[row, first]

    edit_arrays(root, change, (UPDATED_SLICE, UPDATED_LOBE))


@defect(
    "labels-total",
    "add one infected slice to P020 in the original labels only",
    {"labels.total"},
)
def _labels_total(root: Path) -> None:
    row = label_row(root, "P020")
    first = int(np.flatnonzero(load_array(root, ORIGINAL_SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, first - 1] = array[row, first]

    edit_arrays(root, change, (ORIGINAL_SLICE, ORIGINAL_LOBE))
