"""Load ``Index.csv`` and the label arrays once, safely, as part of the scan; the Index schema.

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
import stat
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pandera.pandas as pa

from .archive import Archive, MemberPath
from .paths import Confined, LinkState, display, sanitize_message
from .profiles import LabelSpec, Profile

__all__ = [
    "INDEX_FIELDS",
    "IndexFile",
    "LabelArray",
    "LabelFiles",
    "index_failures",
    "index_schema",
    "load_labels",
    "read_index",
    "read_npy",
]

#: The columns of ``Index.csv``, in order, as the rows table names them.
INDEX_FIELDS = ("label_index", "diagnosis", "relative_path", "case_id")

#: Label files are small (the release's four arrays take 2 MB); refuse absurd headers.
MAX_ARRAY_BYTES = 1 << 30
MAX_INDEX_BYTES = 16 << 20
NOT_A_NAME = "the profile names it with a path, not a single file name: not read"


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
    raw = fh.read(4)
    if len(raw) < 4:
        raise ValueError("header length field cut short")
    (length,) = struct.unpack("<I", raw)
    if length > 1 << 20:
        raise ValueError(f"header of {length} bytes")
    text = fh.read(length)
    if len(text) < length:
        raise ValueError(f"header cut short: {len(text)} of {length} bytes")
    header = ast.literal_eval(text.decode("utf-8"))
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("header is not a .npy header dictionary")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        raise ValueError(f"shape is not a tuple of integers: {shape!r}")
    return shape, np.lib.format.descr_to_dtype(header["descr"])


def _short(shape: tuple[int, ...]) -> str:
    """A declared shape for a message, each absurd dimension shortened."""
    dims = [
        str(int(d)) if abs(int(d)) < 10**12 else f"~1e{len(str(abs(int(d)))) - 1}" for d in shape
    ]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _reason(exc: BaseException, path: Path | MemberPath) -> str:
    """An exception as report text: its type and wording, no quoted value, no file name."""
    return sanitize_message(f"{type(exc).__name__}: {exc}", str(path))


def single_name(name: str) -> bool:
    """True when ``name`` is one path component: a profile must not steer reads elsewhere."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def read_npy(path: Path | MemberPath) -> tuple[np.ndarray | None, str | None]:
    """An ``.npy`` file's array, or ``None`` and why not. Never unpickles, never raises.

    Never warns either: numpy parses the header with ``ast``, whose syntax warnings quote
    the header's own text (found by fuzzing).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_npy(path)


def _read_npy(path: Path | MemberPath) -> tuple[np.ndarray | None, str | None]:  # noqa: C901, PLR0912  (a refusal per header defect)
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
                    f"holds Python objects (dtype {dtype}): loading it would unpickle code; "
                    "not loaded"
                )
            if dtype.kind not in "biuf":
                return None, f"dtype {dtype} is not numeric: not a label array"
            if any(int(d) < 0 for d in shape):
                return None, f"header declares a negative dimension: shape {_short(shape)}"
            # every dimension bounded, not only the product: (0, 10**30) holds no data but
            # still overflows numpy's own size arithmetic
            if any(int(d) * dtype.itemsize > MAX_ARRAY_BYTES for d in shape):
                return None, f"header declares an absurd dimension: shape {_short(shape)}"
            # Python integers: an absurd declared shape must not overflow or wrap around
            expected = math.prod(int(d) for d in shape) * dtype.itemsize
            if expected > MAX_ARRAY_BYTES:
                return None, f"header declares {expected} bytes of data, more than a label array"
            actual = size - offset
            if actual < expected:
                return None, f"truncated: {actual} of {expected} data bytes"
            if actual > expected:
                return None, f"{actual - expected} unexpected bytes after the array data"
            fh.seek(0)  # the file already open: never opened twice
            array = np.load(fh, allow_pickle=False)
    except Exception as exc:  # any damaged header (struct, tokenize, IndexError …) is a finding
        return None, f"cannot be read: {_reason(exc, path)}"
    if not isinstance(array, np.ndarray):
        return None, "not a single array"
    return array, None


def read_index(path: Path | MemberPath, columns: tuple[str, ...]) -> IndexFile:
    """Parse ``Index.csv`` into text rows; malformed lines are recorded, not fatal."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_BYTES:
            return IndexFile(name, str(path), error=f"{size} bytes: too large for an index")
        text = path.read_bytes().decode("utf-8-sig")
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return IndexFile(name, str(path), error=f"cannot be read: {_reason(exc, path)}")
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


def _locate(confined: Confined, folder: Path, name: str) -> tuple[str | None, str | None]:
    """``(real path, problem)`` of a label file; both None when there is no such file.

    A link is followed only to a regular file inside the folder tree being validated; a
    name that is not a single file name (``..``, ``a/b``) is refused, never looked up.
    """
    if not single_name(name):
        return None, NOT_A_NAME
    path = folder / name
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return None, None
    if stat.S_ISLNK(st.st_mode):
        state, target = confined.resolve_link(str(path))
        if state is LinkState.OUTSIDE:
            return None, "a symbolic link to a place outside the dataset root: not read"
        if state is LinkState.LOOP:
            return None, "a symbolic link that loops: not read"
        if state is LinkState.BROKEN or target is None:
            return None, "a broken symbolic link: its target does not exist"
        path = Path(target)
    if not path.is_file():
        return None, None if not stat.S_ISLNK(st.st_mode) else "a link to something not a file"
    return str(path), None


def _find_dir(confined: Confined, root: Path, profile: Profile, layout_dirs: list[Path]) -> Path:
    """ROOT when it holds any label file, else the first layout folder that does."""
    names = [n for n in profile.labels.file_names if single_name(n)]
    for folder in (root, *layout_dirs):
        if any(any(_locate(confined, folder, n)) for n in names):
            return folder
    return root


def _shown(path: Path, root: Path) -> str:
    try:
        return display(path.absolute().relative_to(root.absolute()).as_posix())
    except ValueError:
        return display(str(path))


def _load_index(confined: Confined, folder: Path, root: Path, spec: LabelSpec) -> IndexFile:
    """``Index.csv`` as found in ``folder`` (absent, refused, or read)."""
    real, problem = _locate(confined, folder, spec.index)
    shown = _shown(folder / spec.index, root) if single_name(spec.index) else display(spec.index)
    if real is not None:
        return replace(read_index(Path(real), spec.index_columns), path=shown)
    if problem is not None:
        return IndexFile(spec.index, shown, error=problem)
    return IndexFile(spec.index, None)


def _load_array(
    confined: Confined, folder: Path, root: Path, version: str, level: str, name: str
) -> LabelArray:
    """One label array as found in ``folder`` (absent, refused, or read)."""
    real, problem = _locate(confined, folder, name)
    if real is None and problem is None:
        return LabelArray(version, level, name, None)
    shown = _shown(folder / name, root) if single_name(name) else display(name)
    array, error = read_npy(Path(real)) if real is not None else (None, problem)
    return LabelArray(version, level, name, shown, array, error)


def _read_all(
    spec: LabelSpec,
    load_index: Callable[[], IndexFile],
    load_array: Callable[[str, str, str], LabelArray],
    where: Path,
    shown: Callable[[str], str],
) -> tuple[IndexFile, dict[tuple[str, str], LabelArray]]:
    """The index and every label array the profile names, each read on its own guard.

    A bug met on a damaged file must not end the run: it becomes that file's error text
    (sanitised against ``where``), and the other files are still read.
    """
    try:
        index = load_index()
    except Exception as exc:
        index = IndexFile(
            spec.index, shown(spec.index), error=f"cannot be read: {_reason(exc, where)}"
        )
    arrays: dict[tuple[str, str], LabelArray] = {}
    for version in spec.versions:
        for level, name in (("slice", version.slice_file), ("lobe", version.lobe_file)):
            try:
                item = load_array(version.name, level, name)
            except Exception as exc:
                error = f"cannot be read: {_reason(exc, where)}"
                item = LabelArray(version.name, level, name, shown(name), error=error)
            arrays[(version.name, level)] = item
    return index, arrays


def load_labels(
    root: Path,
    profile: Profile,
    labels_dir: str | os.PathLike[str] | None = None,
    layout_dirs: list[Path] | None = None,
) -> LabelFiles:
    """Read every label file the profile names, once, from ``labels_dir`` or the tree.

    Links are followed only inside ROOT (or inside ``labels_dir`` when given); a link that
    leaves it makes the file unreadable, with that reason, and its target is never read.
    Each file is guarded on its own: a damaged one becomes its error text, never a crash.
    """
    spec = profile.labels
    if labels_dir is not None:
        folder = Path(os.path.realpath(labels_dir))
        confined = Confined.at(folder)
    else:
        confined = Confined.at(root)
        folder = _find_dir(confined, root, profile, layout_dirs or [])
    index, arrays = _read_all(
        spec,
        lambda: _load_index(confined, folder, root, spec),
        lambda version, level, name: _load_array(confined, folder, root, version, level, name),
        folder,
        display,
    )
    return LabelFiles(_shown(folder, root), index, arrays)


def load_archive_labels(archive: Archive, profile: Profile, layout_dirs: list[str]) -> LabelFiles:
    """:func:`load_labels` for a zip archive: the label files are members, read in memory.

    The top of the archive when it holds any label file, else the first layout folder that
    does (``layout_dirs``: member folder paths). Members were vetted when the archive was
    opened (no links, no ``..``), so no name can lead outside it.
    """
    spec = profile.labels
    names = [n for n in spec.file_names if single_name(n)]
    folder: tuple[str, ...] = ()
    for candidate in ("", *layout_dirs):
        parts = tuple(candidate.split("/")) if candidate else ()
        if any(archive.member(parts, n) for n in names):
            folder = parts
            break

    def member(name: str) -> MemberPath | None:
        found = archive.member(folder, name) if single_name(name) else None
        return None if found is None else MemberPath(archive.path, found)

    def shown(name: str) -> str:
        return display("/".join((*folder, name)))

    def load_index() -> IndexFile:
        path = member(spec.index)
        if path is None:
            return IndexFile(spec.index, None)
        return replace(read_index(path, spec.index_columns), path=shown(spec.index))

    def load_array(version: str, level: str, name: str) -> LabelArray:
        path = member(name)
        if path is None:
            return LabelArray(version, level, name, None)
        array, error = read_npy(path)
        return LabelArray(version, level, name, shown(name), array, error)

    index, arrays = _read_all(spec, load_index, load_array, Path(archive.path), shown)
    return LabelFiles(display("/".join(folder)) or ".", index, arrays)


# --------------------------------------------------------------------------- Index.csv


def index_schema(profile: Profile) -> pa.DataFrameSchema:
    """The contract of ``Index.csv`` rows (text as read): the data, not the tool, may break it.

    Label Index a non-negative integer, unique; Diagnosis one of the labelled classes;
    Relative Path not empty; Folder/ID unique and matching its Diagnosis's case pattern.
    """
    labelled = profile.published.labelled or profile.labels.index_relative_paths
    specs = [profile.classes[k] for k in labelled]
    patterns = {s.label: s.case_pattern for s in specs}

    def id_matches_class(df: pd.DataFrame) -> pd.Series:
        return pd.Series(
            [
                d not in patterns or bool(patterns[d].fullmatch(c))
                for d, c in zip(df["diagnosis"], df["case_id"], strict=True)
            ],
            index=df.index,
            dtype=bool,
        )

    return pa.DataFrameSchema(
        {
            "line": pa.Column(int),
            "position": pa.Column(int, pa.Check.ge(0)),
            "label_index": pa.Column(
                "string",
                [
                    pa.Check.str_matches(r"^[0-9]+$", error="a non-negative integer"),
                    pa.Check(lambda s: ~s.duplicated(keep=False), error="unique"),
                ],
            ),
            "diagnosis": pa.Column(
                "string", pa.Check.isin(sorted(patterns), error=f"one of {sorted(patterns)}")
            ),
            "relative_path": pa.Column(
                "string", pa.Check.str_length(min_value=1, error="not empty")
            ),
            "case_id": pa.Column(
                "string",
                [
                    pa.Check.str_length(min_value=1, error="not empty"),
                    pa.Check(lambda s: ~s.duplicated(keep=False), error="unique"),
                ],
            ),
        },
        checks=[pa.Check(id_matches_class, error="Folder/ID matches its Diagnosis's pattern")],
        strict=True,
        coerce=True,
    )


def index_failures(rows: pd.DataFrame, profile: Profile) -> list[dict[str, Any]]:
    """Every cell of ``rows`` that breaks :func:`index_schema`: line, column, rule, value."""
    try:
        index_schema(profile).validate(rows, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    names = dict(zip(INDEX_FIELDS, profile.labels.index_columns, strict=False))
    out: dict[tuple[int, str, str], dict[str, Any]] = {}
    for item in cases.itertuples():
        idx = item.index
        if idx is None or pd.isna(idx) or int(idx) not in rows.index:
            continue
        row = rows.loc[int(idx)]
        frame_level = item.schema_context == "DataFrameSchema"
        field_ = "case_id" if frame_level or item.column not in INDEX_FIELDS else item.column
        key = (int(row["line"]), field_, str(item.check))
        out[key] = {
            "line": key[0],
            "column": names.get(field_, field_),
            "rule": key[2],
            "value": str(row[field_]),
        }
    return [out[k] for k in sorted(out)]
