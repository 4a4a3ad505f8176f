"""What the defects share: finding the folders of a synthetic tree, editing its headers
and its label files.

The label file names are the release profile's (``[labels]``), read once on import.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ...profiles import load_profile
from ..labels import UPDATED_VERSION, label_version

__all__ = [
    "ALL_ARRAYS",
    "INDEX_FILE",
    "ORIGINAL_LOBE",
    "ORIGINAL_SLICE",
    "RELEASE",
    "UPDATED_LOBE",
    "UPDATED_SLICE",
    "assign",
    "class_dirs",
    "delete",
    "edit",
    "edit_all",
    "edit_arrays",
    "edit_index",
    "first_case",
    "index_lines",
    "label_row",
    "link_inside",
    "load_array",
    "present_labelled",
    "slices",
    "stack",
    "write_index",
]

#: The profile whose folder names and label file names the defects look for.
RELEASE = load_profile("release")
_ORIGINAL = label_version(RELEASE.labels, RELEASE.labels.reference_version)
_UPDATED = label_version(RELEASE.labels, UPDATED_VERSION)
ORIGINAL_SLICE, ORIGINAL_LOBE = _ORIGINAL.slice_file, _ORIGINAL.lobe_file
UPDATED_SLICE, UPDATED_LOBE = _UPDATED.slice_file, _UPDATED.lobe_file
ALL_ARRAYS = (ORIGINAL_SLICE, ORIGINAL_LOBE, UPDATED_SLICE, UPDATED_LOBE)
INDEX_FILE = RELEASE.labels.index


# --------------------------------------------------------------------------- folders


def class_dirs(root: Path) -> dict[str, Path]:
    """Class key -> its folder, at ``root`` or one folder below (any known spelling)."""
    found: dict[str, Path] = {}
    for base in (root, *[p for p in root.iterdir() if p.is_dir()]):
        for entry in sorted(base.iterdir()) if base.is_dir() else []:
            if not entry.is_dir():
                continue
            for key, spec in RELEASE.classes.items():
                if spec.matches_dir(entry.name) and key not in found:
                    found[key] = entry
    return found


def first_case(root: Path, class_key: str = "covid") -> Path:
    """The first case folder (by name) of a class."""
    return sorted(p for p in class_dirs(root)[class_key].iterdir() if p.is_dir())[0]


def slices(case: Path) -> list[Path]:
    """A case's ``.dcm`` files, by name."""
    return sorted(case.glob("*.dcm"))


def stack(case: Path) -> list[tuple[Path, Dataset]]:
    """A case's slices with headers, in stack order (cranial first, as written)."""
    pairs = [(f, pydicom.dcmread(f, stop_before_pixels=True)) for f in slices(case)]
    return sorted(pairs, key=lambda p: -float(p[1].ImagePositionPatient[2]))


def link_inside(root: Path) -> None:
    """Replace a CAP slice with a relative link to its copy at the dataset root."""
    f = slices(first_case(root, "cap"))[2]
    spare = root / "spare-slice.dcm"
    shutil.move(f, spare)
    os.symlink(os.path.relpath(spare, f.parent), f)


# --------------------------------------------------------------------------- headers


def edit(path: Path, change: Callable[[Dataset], None], *, enforce: bool = True) -> None:
    """Rewrite one file after ``change``; ``enforce=False`` keeps a broken file meta as is."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=enforce)


def edit_all(case: Path, change: Callable[[Dataset], None]) -> None:
    """:func:`edit` every slice of a case."""
    for f in slices(case):
        edit(f, change)


def assign(**values: object) -> Callable[[Dataset], None]:
    """A change that sets each keyword to its value."""

    def change(ds: Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)

    return change


def delete(*keywords: str) -> Callable[[Dataset], None]:
    """A change that deletes each keyword."""

    def change(ds: Dataset) -> None:
        for keyword in keywords:
            delattr(ds, keyword)

    return change


# --------------------------------------------------------------------------- label files


def load_array(root: Path, name: str) -> np.ndarray:
    """A label array of the tree (never unpickled)."""
    return np.load(root / name, allow_pickle=False)


def edit_arrays(
    root: Path, change: Callable[[np.ndarray, str], None], names: Iterable[str]
) -> None:
    """Load each named array, ``change(array, name)`` it, save it back."""
    for name in names:
        array = load_array(root, name).copy()
        change(array, name)
        np.save(root / name, array)


def index_lines(root: Path) -> list[str]:
    """The lines of the tree's Index (CRLF-separated, header first)."""
    return (root / INDEX_FILE).read_bytes().decode("ascii").split("\r\n")


def write_index(root: Path, lines: list[str]) -> None:
    """Write the Index as the synthetic tree does: ASCII, CRLF, no final newline."""
    (root / INDEX_FILE).write_bytes("\r\n".join(lines).encode("ascii"))


def edit_index(root: Path, case_id: str, column: int, value: str) -> None:
    """Set field ``column`` of the Index line of ``case_id`` to ``value``."""
    lines = index_lines(root)
    for i, line in enumerate(lines):
        fields = line.split(",")
        if fields[-1] == case_id:
            fields[column] = value
            lines[i] = ",".join(fields)
    write_index(root, lines)


def label_row(root: Path, case_id: str) -> int:
    """The label-array row of ``case_id``: its position in the Index."""
    ids = [line.split(",")[-1] for line in index_lines(root)[1:]]
    return ids.index(case_id)


def present_labelled(root: Path) -> tuple[str, int]:
    """The labelled case whose images are in the tree (P017 in tiny) and its slice count."""
    case = first_case(root)
    return case.name, len(slices(case))
