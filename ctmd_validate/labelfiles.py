"""Load ``Index.csv`` and the label arrays once, safely, as part of the scan.

Nothing here trusts the files: ``.npy`` headers are read before any data, object (pickled)
arrays are never loaded (``allow_pickle=False`` always), sizes are checked against the
header so a truncated array is named, and a broken CSV becomes rows with a note of what
is wrong. Every problem is kept as text for the label checks to report.
"""

from __future__ import annotations

import ast
import csv
import io
import math
import os
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from .profiles import Profile
from .tables import INDEX_FIELDS

__all__ = ["IndexFile", "LabelArray", "LabelFiles", "load_labels", "read_index", "read_npy"]

#: Label files are small (the release's four arrays take 2 MB); refuse absurd headers.
MAX_ARRAY_BYTES = 1 << 30
MAX_INDEX_BYTES = 16 << 20


@dataclass(frozen=True)
class LabelArray:
    """One label array file: loaded array, or why it could not be loaded."""

    version: str
    level: str  # "slice" or "lobe"
    name: str
    path: str | None  # as reported: relative to ROOT when inside it; None when absent
    array: np.ndarray | None = None
    error: str | None = None

    @property
    def present(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class IndexFile:
    """``Index.csv`` as read: one row per data line (all values text), plus problems."""

    name: str
    path: str | None
    header: tuple[str, ...] | None = None
    #: INDEX_FIELDS + "line" (1-based line in the file) + "position" (0-based data line,
    #: malformed lines included: line k of the data is row k of the arrays)
    rows: pd.DataFrame | None = None
    error: str | None = None  # the file could not be read at all
    ragged: tuple[tuple[int, int], ...] = ()  # (line, number of fields) of malformed lines

    @property
    def present(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class LabelFiles:
    """Every label file the profile names, where it was looked for and what it holds."""

    directory: str  # where the files were looked for, as reported
    index: IndexFile
    arrays: dict[tuple[str, str], LabelArray] = field(default_factory=dict)

    def array(self, version: str, level: str) -> np.ndarray | None:
        item = self.arrays.get((version, level))
        return None if item is None else item.array


def _read_header_3_0(fh: BinaryIO) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of a format 3.0 header (2.0 with a UTF-8 dictionary), read safely."""
    (length,) = struct.unpack("<I", fh.read(4))
    if length > 1 << 20:
        raise ValueError(f"header of {length} bytes")
    header = ast.literal_eval(fh.read(length).decode("utf-8"))
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("header is not a .npy header dictionary")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        raise ValueError(f"shape is not a tuple of integers: {shape!r}")
    return shape, np.lib.format.descr_to_dtype(header["descr"])


def read_npy(path: Path) -> tuple[np.ndarray | None, str | None]:
    """An ``.npy`` file's array, or ``None`` and why not. Never unpickles, never raises."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
            except ValueError:
                return None, "not a NumPy .npy file (bad magic string)"
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            elif version == (3, 0):
                shape, dtype = _read_header_3_0(fh)
            else:
                return None, f"unsupported .npy format version {version[0]}.{version[1]}"
            offset = fh.tell()
        if dtype.hasobject:
            return None, (
                f"holds Python objects (dtype {dtype}): loading it would unpickle code; not loaded"
            )
        if dtype.kind not in "biuf":
            return None, f"dtype {dtype} is not numeric: not a label array"
        if any(int(d) < 0 for d in shape):
            return None, f"header declares a negative dimension: shape {tuple(shape)}"
        # Python integers: an absurd declared shape must not overflow or wrap around
        expected = math.prod(int(d) for d in shape) * dtype.itemsize
        if expected > MAX_ARRAY_BYTES:
            return None, f"header declares {expected} bytes of data, more than a label array"
        actual = size - offset
        if actual < expected:
            return None, f"truncated: {actual} of {expected} data bytes"
        if actual > expected:
            return None, f"{actual - expected} unexpected bytes after the array data"
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as exc:
        return None, f"cannot be read: {type(exc).__name__}: {exc}"
    if not isinstance(array, np.ndarray):
        return None, "not a single array"
    return array, None


def read_index(path: Path, columns: tuple[str, ...]) -> IndexFile:
    """Parse ``Index.csv`` into text rows; malformed lines are recorded, not fatal."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_BYTES:
            return IndexFile(name, str(path), error=f"{size} bytes: too large for an index")
        text = path.read_bytes().decode("utf-8-sig")
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return IndexFile(name, str(path), error=f"cannot be read: {type(exc).__name__}: {exc}")
    if not lines:
        return IndexFile(name, str(path), error="empty: no header line")
    header = tuple(h.strip() for h in lines[0])
    records: list[dict[str, object]] = []
    ragged: list[tuple[int, int]] = []
    position = 0  # data lines so far: a malformed line still holds its array row
    for number, fields in enumerate(lines[1:], start=2):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line ("," lines are data lines with empty fields)
        if len(fields) != len(columns):
            ragged.append((number, len(fields)))
        else:
            record = dict(zip(INDEX_FIELDS, fields, strict=True))
            records.append({"line": number, "position": position, **record})
        position += 1
    rows = pd.DataFrame.from_records(records, columns=["line", "position", *INDEX_FIELDS])
    return IndexFile(name, str(path), header=header, rows=rows, ragged=tuple(ragged))


def _find_dir(root: Path, profile: Profile, layout_dirs: list[Path]) -> Path:
    """ROOT when it holds any label file, else the first layout folder that does."""
    names = profile.labels.file_names
    for folder in (root, *layout_dirs):
        if any((folder / n).is_file() for n in names):
            return folder
    return root


def _shown(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return str(path)


def load_labels(
    root: Path,
    profile: Profile,
    labels_dir: str | os.PathLike[str] | None = None,
    layout_dirs: list[Path] | None = None,
) -> LabelFiles:
    """Read every label file the profile names, once, from ``labels_dir`` or the tree."""
    spec = profile.labels
    if labels_dir is not None:
        folder = Path(labels_dir)
    else:
        folder = _find_dir(root, profile, layout_dirs or [])
    index_path = folder / spec.index
    if index_path.is_file():
        index = replace(read_index(index_path, spec.index_columns), path=_shown(index_path, root))
    else:
        index = IndexFile(spec.index, None)
    arrays: dict[tuple[str, str], LabelArray] = {}
    for version in spec.versions:
        for level, name in (("slice", version.slice_file), ("lobe", version.lobe_file)):
            path = folder / name
            if not path.is_file():
                arrays[(version.name, level)] = LabelArray(version.name, level, name, None)
                continue
            array, error = read_npy(path)
            arrays[(version.name, level)] = LabelArray(
                version.name, level, name, _shown(path, root), array, error
            )
    return LabelFiles(_shown(folder, root), index, arrays)
