"""One pass over the dataset: walk the tree once, parse every DICOM header once, in parallel.

The result is a set of pandas tables (see :mod:`ctmd_validate.tables`). Every later check
reads those tables; nothing reopens a file. Values of data elements stay in memory and are
never written to a report.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from . import tables
from .errors import CtmdError
from .labelfiles import LabelFiles, load_labels
from .profiles import Profile

__all__ = ["ScanResult", "read_header", "scan"]

ProgressFn = Callable[[int, int], None]

# VRs whose value is text: kept (in memory only) so later checks can compare values.
_TEXT_VRS = frozenset(
    [
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    ]
)
# Binary numeric VRs, decoded from raw bytes with struct.
_BINARY_VRS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
# Element paths such as "(0008,1140)[0](0008,1150)", shared across the files of a worker.
_PATHS: dict[tuple[str, int], str] = {}
_ITEM = 0xFFFEE000
_SEQ_DELIM = 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010

# Per-file values collected for the structure, conformance, geometry and
# de-identification checks: (column, keyword, kind).
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("sop_class_uid", "SOPClassUID", "str"),
    ("sop_instance_uid", "SOPInstanceUID", "str"),
    ("study_uid", "StudyInstanceUID", "str"),
    ("series_uid", "SeriesInstanceUID", "str"),
    ("frame_of_reference_uid", "FrameOfReferenceUID", "str"),
    ("modality", "Modality", "str"),
    ("patient_id", "PatientID", "str"),
    ("patient_sex", "PatientSex", "str"),
    ("patient_age", "PatientAge", "str"),
    ("instance_number", "InstanceNumber", "float"),
    ("slice_location", "SliceLocation", "float"),
    ("slice_thickness", "SliceThickness", "float"),
    ("gantry_tilt", "GantryDetectorTilt", "float"),
    ("rows", "Rows", "float"),
    ("columns", "Columns", "float"),
    ("bits_allocated", "BitsAllocated", "float"),
    ("samples_per_pixel", "SamplesPerPixel", "float"),
    ("number_of_frames", "NumberOfFrames", "float"),
    ("rescale_slope", "RescaleSlope", "float"),
    ("rescale_intercept", "RescaleIntercept", "float"),
)
_VECTORS: tuple[tuple[str, str, int], ...] = (
    ("ipp", "ImagePositionPatient", 3),
    ("iop", "ImageOrientationPatient", 6),
    ("pixel_spacing", "PixelSpacing", 2),
)
_TAGS: dict[str, int] = {kw: int(tag_for_keyword(kw) or 0) for _c, kw, *_ in (*_FIELDS, *_VECTORS)}


@dataclass(eq=False)
class ScanResult:
    """The tables of one scan, plus how it went (compared and hashed by identity)."""

    root: Path
    profile: Profile
    class_dirs: pd.DataFrame
    cases: pd.DataFrame
    files: pd.DataFrame
    elements: pd.DataFrame
    entries: pd.DataFrame
    labels: LabelFiles | None = None
    seconds: float = 0.0
    jobs: int = 1

    @cached_property
    def readable(self) -> pd.DataFrame:
        """The files whose header and Pixel Data framing are intact."""
        return self.files[self.files["status"] == "ok"]

    @cached_property
    def case_ids(self) -> pd.Series:
        """Case id (folder name) by case key (folder path)."""
        return self.cases.set_index("case_key")["case_id"]

    @cached_property
    def readable_per_case(self) -> dict[str, int]:
        """Number of readable files by case key."""
        return {str(k): int(v) for k, v in self.readable.groupby("case_key").size().items()}


# --------------------------------------------------------------------------- headers


def _text(raw: bytes | None) -> str:
    if not raw:
        return ""
    return raw.decode("latin-1").rstrip("\x00 ").lstrip(" ")


def _numbers(raw: bytes, vr: str, little: bool) -> str | None:
    """Binary numeric values as text (``512``, ``0.5\\0.5``), the way text VRs are kept."""
    code = _BINARY_VRS[vr]
    size = struct.calcsize(code)
    if not raw or len(raw) % size:
        return None
    values = struct.unpack(f"{'<' if little else '>'}{len(raw) // size}{code}", raw)
    return "\\".join(str(v) for v in values)


def _walk(
    ds: Dataset, prefix: str, depth: int, out: list[tuple[Any, ...]], top: dict[int, Any]
) -> None:
    """Record every data element (sequences included): path, tag, depth, VR, length, value.

    Values are taken from the raw bytes (no pydicom value conversion, which would cost as
    much as the parse itself); ``top`` receives the depth-0 values by tag.
    """
    for tag in ds.keys():  # noqa: SIM118  (iterating ds would convert every element)
        elem = ds.get_item(tag)
        path = _PATHS.get((prefix, tag))
        if path is None:
            path = _PATHS[(prefix, tag)] = sys.intern(
                f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
            )
        value: str | None = None
        if isinstance(elem, RawDataElement):
            vr = elem.VR
            if vr is None:  # implicit VR: let pydicom resolve it
                vr = ds[tag].VR
            length = -1 if elem.length == 0xFFFFFFFF else int(elem.length)
            raw = elem.value
            if isinstance(raw, bytes):
                if vr in _TEXT_VRS:
                    value = _text(raw)
                elif vr in _BINARY_VRS:
                    value = _numbers(raw, vr, elem.is_little_endian)
        else:
            vr = elem.VR
            length = -1
        vr = sys.intern(str(vr))
        if depth == 0:
            top[int(tag)] = value
        if vr == "SQ":
            items = ds[tag].value or []
            out.append((path, int(tag), depth, vr, length, None))
            for i, item in enumerate(items):
                _walk(item, f"{path}[{i}]", depth + 1, out, top)
        else:
            out.append((path, int(tag), depth, vr, length, value))


def _field(top: dict[int, Any], tag: int, kind: str) -> Any:
    value = top.get(tag)
    if value is None or value == "":
        return None
    if kind == "str":
        return value
    try:
        return float(value.split("\\", 1)[0])
    except ValueError:  # malformed: recorded as missing, conformance reports it
        return None


def _vector(top: dict[int, Any], tag: int, n: int) -> list[float | None]:
    value = top.get(tag)
    try:
        values = [float(v) for v in value.split("\\")] if value else []
    except ValueError:
        values = []
    return values if len(values) == n else [None] * n


def _check_pixel_framing(fp: Any, size: int, implicit: bool) -> tuple[int | None, int, str | None]:
    """Verify that the Pixel Data element is complete without reading it.

    Returns ``(pixel_length, fragments, problem)``; the length is None when undefined
    (encapsulated), ``problem`` says what is truncated or malformed.
    """
    head = fp.read(8)
    if len(head) < 8:
        return None, 0, "the file ends before its Pixel Data element (truncated?)"
    group, elem = struct.unpack("<HH", head[:4])
    if (group << 16 | elem) != _PIXEL_DATA:
        return None, 0, f"unexpected element ({group:04X},{elem:04X}) where Pixel Data should be"
    if implicit:
        (length,) = struct.unpack("<I", head[4:8])
    else:
        extra = fp.read(4)
        if len(extra) < 4:
            return None, 0, "Pixel Data header is truncated"
        (length,) = struct.unpack("<I", extra)
    start = fp.tell()
    if length != 0xFFFFFFFF:
        if start + length > size:
            return length, 0, f"Pixel Data needs {length} bytes, the file holds {size - start}"
        return length, 0, None
    fragments = -1  # the first item is the Basic Offset Table
    offset = start
    while True:
        if offset + 8 > size:
            return None, max(fragments, 0), "encapsulated Pixel Data ends without a delimiter"
        fp.seek(offset)
        g, e, item_len = struct.unpack("<HHI", fp.read(8))
        tag = g << 16 | e
        if tag == _SEQ_DELIM:
            return None, max(fragments, 0), None
        if tag != _ITEM:
            return None, max(fragments, 0), f"unexpected tag ({g:04X},{e:04X}) in Pixel Data"
        offset += 8 + item_len
        fragments += 1
        if offset > size:
            return None, fragments, "encapsulated Pixel Data fragment runs past the end of the file"


def read_header(path: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Parse one file's header once; never raises.

    Returns the file's row (``status`` is ``ok``, ``not_dicom`` or ``unreadable`` with an
    ``error``) and its data elements.
    """
    row: dict[str, Any] = {"status": "ok", "error": None, "size": None}
    elements: list[tuple[Any, ...]] = []
    top: dict[int, Any] = {}
    try:
        # O_NONBLOCK: a FIFO named like a slice must not block the scan forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            row["status"] = "unreadable"
            row["error"] = "not a regular file (a pipe, socket or device)"
            return row, elements
        with os.fdopen(fd, "rb") as fp:
            size = st.st_size
            row["size"] = size
            head = fp.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                row["status"] = "not_dicom"
                row["error"] = (
                    "empty file" if size == 0 else "no DICOM Part 10 preamble ('DICM' at byte 128)"
                )
                return row, elements
            fp.seek(0)
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            meta = ds.file_meta
            tsuid = meta.get("TransferSyntaxUID")
            row["transfer_syntax"] = str(tsuid) if tsuid else None
            implicit = bool(tsuid.is_implicit_VR) if tsuid and tsuid.is_transfer_syntax else False
            _walk(meta, "", 0, elements, top)
            _walk(ds, "", 0, elements, top)
            length, fragments, problem = _check_pixel_framing(fp, size, implicit)
            row["pixel_length"] = length
            row["pixel_fragments"] = fragments
            if problem:
                row["status"] = "unreadable"
                row["error"] = problem
    except (OSError, EOFError) as exc:
        row["status"] = "unreadable"
        row["error"] = (
            f"{type(exc).__name__}: {exc.strerror or exc}"
            if isinstance(exc, OSError)
            else f"file ends inside the header ({exc})"
        )
        return row, elements
    except Exception as exc:
        row["status"] = "unreadable"
        row["error"] = f"header cannot be parsed: {type(exc).__name__}: {exc}"[:300]
        return row, elements
    for column, keyword, kind in _FIELDS:
        row[column] = _field(top, _TAGS[keyword], kind)
    for prefix, keyword, n in _VECTORS:
        for i, v in enumerate(_vector(top, _TAGS[keyword], n)):
            row[f"{prefix}_{i}"] = v
    row["media_sop_class_uid"] = _field(top, 0x00020002, "str")
    row["media_sop_instance_uid"] = _field(top, 0x00020003, "str")
    return row, elements


ELEMENT_COLUMNS = ("file_idx", "path", "tag", "depth", "vr", "length", "value")
_Chunk = tuple[list[dict[str, Any]], dict[str, list[Any]]]


def _read_chunk(items: list[tuple[int, str]]) -> _Chunk:
    """Parse a chunk of files; elements come back as columns (cheap to send and to stack)."""
    rows: list[dict[str, Any]] = []
    columns: dict[str, list[Any]] = {c: [] for c in ELEMENT_COLUMNS}
    for idx, path in items:
        row, elements = read_header(path)
        row["file_idx"] = idx
        rows.append(row)
        if elements and row["status"] == "ok":  # an unreadable file contributes no elements
            columns["file_idx"].extend([idx] * len(elements))
            for name, values in zip(ELEMENT_COLUMNS[1:], zip(*elements, strict=True), strict=True):
                columns[name].extend(values)
    return rows, columns


# --------------------------------------------------------------------------- tree walk


@dataclass
class _Walk:
    class_dirs: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    layout_dirs: list[Path] = field(default_factory=list)


def display(name: str) -> str:
    """A file name as printable UTF-8: undecodable bytes become ``\\xNN`` escapes.

    Names that are not valid UTF-8 would otherwise make the report and the summary
    impossible to encode.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _rel(path: Path, root: Path) -> str:
    return display(path.relative_to(root).as_posix())


def _listdir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _count_files(path: Path) -> int:
    total = 0
    for _dirpath, _dirs, files in os.walk(path):
        total += len(files)
    return total


def _class_of_dir(name: str, profile: Profile) -> str | None:
    for spec in profile.classes.values():
        if spec.matches_dir(name):
            return spec.key
    return None


def _find_class_dirs(root: Path, profile: Profile) -> tuple[list[tuple[Path, str]], set[Path]]:
    """Class folders directly under ROOT or up to ``container_depth`` folders down."""
    found: list[tuple[Path, str]] = []
    containers: set[Path] = set()
    level = [root]
    for _depth in range(profile.container_depth + 1):
        nxt: list[Path] = []
        for folder in level:
            for entry in _listdir(folder):
                if not _is_dir(entry) or entry.name.startswith("."):
                    continue
                key = _class_of_dir(entry.name, profile)
                if key is not None:
                    found.append((Path(entry.path), key))
                    containers.add(folder)
                else:
                    nxt.append(Path(entry.path))
        if found:
            break
        level = nxt
    # Every folder between ROOT and a container is part of the layout, not stray.
    chain: set[Path] = set()
    for folder in containers:
        while folder != root and folder not in chain:
            chain.add(folder)
            folder = folder.parent
    return found, containers | chain | {root}


def _walk_tree(root: Path, profile: Profile) -> _Walk:
    walk = _Walk()
    class_dirs, layout_dirs = _find_class_dirs(root, profile)
    class_paths = {p for p, _ in class_dirs}
    suffix = profile.dicom_suffix
    walk.layout_dirs = sorted(layout_dirs - {root}, key=lambda p: (len(p.parts), p))

    for folder in sorted(layout_dirs):
        for entry in _listdir(folder):
            path = Path(entry.path)
            rel = _rel(path, root)
            if path in class_paths or path in layout_dirs:
                continue
            if _is_dir(entry):
                walk.entries.append(
                    {
                        "path": rel,
                        "kind": "dir",
                        "role": "stray",
                        "case_key": None,
                        "reason": f"unexpected folder ({_count_files(path)} files inside)",
                    }
                )
                continue
            allowed = folder == root or folder in layout_dirs
            if (
                allowed
                and not entry.name.startswith(".")
                and any(fnmatch.fnmatch(entry.name, g) for g in profile.root_files_allowed)
            ):
                walk.entries.append(
                    {
                        "path": rel,
                        "kind": "file",
                        "role": "dataset_file",
                        "case_key": None,
                        "reason": None,
                    }
                )
            else:
                walk.entries.append(
                    {
                        "path": rel,
                        "kind": "file",
                        "role": "stray",
                        "case_key": None,
                        "reason": _stray_reason(entry.name, "next to the class folders"),
                    }
                )

    for path, key in class_dirs:
        crel = _rel(path, root)
        walk.class_dirs.append({"path": crel, "name": display(path.name), "class_key": key})
        for entry in _listdir(path):
            epath = Path(entry.path)
            rel = _rel(epath, root)
            if _is_dir(entry):
                case_key = rel
                walk.cases.append(
                    {
                        "case_key": case_key,
                        "case_id": display(entry.name),
                        "class_key": key,
                        "class_dir": crel,
                    }
                )
                _walk_case(epath, root, case_key, suffix, walk)
            else:
                where = "inside a class folder, outside any case folder"
                walk.entries.append(
                    {
                        "path": rel,
                        "kind": "file",
                        "role": "stray",
                        "case_key": None,
                        "reason": _stray_reason(entry.name, where),
                    }
                )
    return walk


def _stray_reason(name: str, where: str) -> str:
    if name in {".DS_Store", "Thumbs.db", "desktop.ini"} or name.startswith("._"):
        return f"operating-system metadata file {where}"
    if name.startswith("."):
        return f"hidden file {where}"
    return f"not part of the dataset layout: file {where}"


def _walk_case(case_dir: Path, root: Path, case_key: str, suffix: str, walk: _Walk) -> None:
    for entry in _listdir(case_dir):
        path = Path(entry.path)
        rel = _rel(path, root)
        if _is_dir(entry):
            walk.entries.append(
                {
                    "path": rel,
                    "kind": "dir",
                    "role": "stray",
                    "case_key": case_key,
                    "reason": f"folder nested in a case folder ({_count_files(path)} files inside)",
                }
            )
        elif entry.name.startswith("."):
            walk.entries.append(
                {
                    "path": rel,
                    "kind": "file",
                    "role": "stray",
                    "case_key": case_key,
                    "reason": _stray_reason(entry.name, "in a case folder"),
                }
            )
        else:
            walk.candidates.append(
                {
                    "path": rel,
                    "abspath": str(path),
                    "case_key": case_key,
                    "suffix_ok": entry.name.lower().endswith(suffix),
                }
            )


# --------------------------------------------------------------------------- scan


def _chunks(items: list[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _parse_all(paths: list[str], jobs: int, progress: ProgressFn | None) -> Iterable[_Chunk]:
    total = len(paths)
    items = list(enumerate(paths))
    if progress:
        progress(0, total)
    if jobs <= 1 or total < 64:
        chunks: Iterable[_Chunk] = map(_read_chunk, _chunks(items, 32))
        pool = None
    else:
        size = max(8, min(256, total // (jobs * 8) or 8))
        pool = ProcessPoolExecutor(max_workers=jobs)
        chunks = pool.map(_read_chunk, _chunks(items, size))
    try:
        done = 0
        for chunk in chunks:
            yield chunk
            done += len(chunk[0])
            if progress:
                progress(done, total)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def scan(
    root: str | os.PathLike[str],
    profile: Profile,
    *,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    labels_dir: str | os.PathLike[str] | None = None,
) -> ScanResult:
    """Walk ``root`` once, parse every candidate DICOM header once, read the label files once.

    ``labels_dir``: where ``Index.csv`` and the label arrays are (default: ROOT, else the
    folder that holds the class folders).

    Raises :class:`CtmdError` only when the root itself cannot be read.
    """
    started = time.perf_counter()
    root_path = Path(root)
    if not root_path.is_dir():
        raise CtmdError(f"dataset root is not a readable folder: {root_path}")
    try:
        os.listdir(root_path)
    except OSError as exc:
        raise CtmdError(f"cannot list dataset root {root_path}: {exc}") from exc
    if labels_dir is not None and not Path(labels_dir).is_dir():
        raise CtmdError(f"labels folder is not a readable folder: {labels_dir}")
    jobs = max(1, jobs or os.cpu_count() or 1)
    walk = _walk_tree(root_path, profile)

    file_rows: list[dict[str, Any]] = []
    element_columns: dict[str, list[Any]] = {c: [] for c in ELEMENT_COLUMNS}
    paths = [c["abspath"] for c in walk.candidates]
    for rows, columns in _parse_all(paths, jobs, progress):
        for row in rows:
            cand = walk.candidates[row["file_idx"]]
            if row["status"] == "not_dicom" and not cand["suffix_ok"]:
                walk.entries.append(
                    {
                        "path": cand["path"],
                        "kind": "file",
                        "role": "stray",
                        "case_key": cand["case_key"],
                        "reason": _stray_reason(Path(cand["path"]).name, "in a case folder"),
                    }
                )
                continue  # a file that is not DICOM has no elements
            if row["status"] == "not_dicom":
                row["status"] = "unreadable"
            row.update(path=cand["path"], case_key=cand["case_key"], suffix_ok=cand["suffix_ok"])
            file_rows.append(row)
        for name, values in columns.items():
            element_columns[name].extend(values)

    files = tables.make_files(file_rows)
    cases = tables.make_cases(walk.cases, files, profile)
    return ScanResult(
        root=root_path,
        profile=profile,
        class_dirs=tables.make_class_dirs(walk.class_dirs),
        cases=cases,
        files=files,
        elements=tables.make_elements(element_columns),
        entries=tables.make_entries(walk.entries),
        labels=load_labels(root_path, profile, labels_dir, walk.layout_dirs),
        seconds=time.perf_counter() - started,
        jobs=jobs,
    )
