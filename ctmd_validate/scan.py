"""One pass over the dataset: walk the tree once, parse every DICOM header once, in parallel.

The result is a set of pandas tables (see :mod:`ctmd_validate.tables`). Every later check
reads those tables; nothing reopens a file. Values of data elements stay in memory and are
never written to a report.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import logging
import os
import re
import stat
import struct
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.multival import MultiValue
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.values import converters

from . import tables
from .archive import IMAGE_BYTES, Archive, is_archive, read_member
from .errors import CtmdError
from .labelfiles import LabelFiles, load_archive_labels, load_labels
from .paths import Confined, LinkState, contains, display, sanitize_message
from .pixels import decode_into
from .profiles import Profile
from .tags import tag_text

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
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, _PIXEL_DATA})
_PIXEL_VRS = frozenset({b"OB", b"OW", b"UN", b"OF", b"OD", b"OV", b"OL"})
#: Values longer than this are skipped by the parser, not read into memory (a damaged
#: length must not make one header cost gigabytes).
DEFER_SIZE = 1 << 20
#: Encapsulated Pixel Data fragments followed per file before the walk stops.
MAX_FRAGMENTS = 100_000
#: A deflated dataset may inflate to at most this many bytes (a deflate bomb is refused).
MAX_INFLATED = 64 << 20
#: A header (file meta + dataset up to the Pixel Data) may take at most this many reads
#: (every data element takes one or more, nested ones included) and bytes. Real CT headers
#: take a few hundred reads and well under a megabyte; values longer than ``DEFER_SIZE`` are
#: skipped, not read, and do not count.
MAX_HEADER_READS = 100_000
MAX_HEADER_BYTES = 64 << 20

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
    ("bits_stored", "BitsStored", "float"),
    ("pixel_representation", "PixelRepresentation", "float"),
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


@dataclass
class ScanResult:
    """The tables of one scan, plus how it went.

    What is derived from the tables for several checks lives in :class:`~.views.Views`,
    built once per run by the engine; the three properties below are the tables' own
    selections.
    """

    root: Path
    profile: Profile
    class_dirs: pd.DataFrame
    cases: pd.DataFrame
    files: pd.DataFrame
    elements: pd.DataFrame
    entries: pd.DataFrame
    #: the label files as found (each absent, refused, unreadable or read): never None
    labels: LabelFiles
    seconds: float = 0.0
    jobs: int = 1
    #: every image's Pixel Data was decoded (``--deep``)
    deep: bool = False
    #: taken from the run cache: the tree was unchanged since an earlier run
    cached: bool = False
    #: the root is this zip archive (its members were read, never extracted)
    archive: Archive | None = None
    #: class-folder spellings found deeper than the layout allows (relative paths)
    deeper_class_dirs: tuple[str, ...] = ()
    #: sanitised library warnings of the scan that concern no single image file
    notes: tuple[str, ...] = ()

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


def _implicit_vr(tag: int, length: int) -> str:
    """The VR of an implicit-VR element, from the dictionary, without converting its value.

    Converting would decode (and validate) the value, which costs time and makes pydicom
    warn with the raw bytes in its message.
    """
    if length == 0xFFFFFFFF:
        return "SQ"
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ", 1)[0]


def _flatten(  # noqa: C901, PLR0912  (a branch per element kind)
    ds: Dataset, prefix: str, depth: int, out: list[tuple[Any, ...]], top_values: dict[int, Any]
) -> None:
    """Record every data element (sequences included): path, tag, depth, VR, length, value.

    A sequence's value is its number of items, as text.
    Values are taken from the raw bytes (no pydicom value conversion, which would cost as
    much as the parse itself); ``top_values`` receives the depth-0 values by tag. Values larger
    than the deferral limit were skipped by the parser and are recorded without a value.
    """
    for tag in ds.keys():  # noqa: SIM118  (iterating ds would convert every element)
        # keep_deferred: a value skipped by the parser stays unread (pydicom would fetch it
        # through the file name, which here is a descriptor)
        elem = ds.get_item(tag, keep_deferred=True)
        path = _PATHS.get((prefix, tag))
        if path is None:
            path = _PATHS[(prefix, tag)] = sys.intern(prefix + tag_text(tag))
        value: str | None = None
        items: Any = None
        if isinstance(elem, RawDataElement):
            length = int(elem.length)
            vr = elem.VR or _implicit_vr(int(tag), length)
            length = -1 if length == 0xFFFFFFFF else length
            raw = elem.value
            if vr == "SQ":
                # a deferred (very large) sequence keeps its length but is not opened
                items = None if raw is None and length > 0 else ds[tag].value
            elif isinstance(raw, bytes):
                if vr in _TEXT_VRS:
                    value = _text(raw)
                elif vr in _BINARY_VRS:
                    value = _numbers(raw, vr, elem.is_little_endian)
        else:  # converted while parsing (pydicom reads the group length and syntax)
            vr = elem.VR
            length = -1
            items = elem.value if vr == "SQ" else None
            if vr in _TEXT_VRS or vr in _BINARY_VRS:
                value = _converted(elem.value)
        vr = sys.intern(str(vr))
        if depth == 0:
            top_values[int(tag)] = value
        if vr == "SQ":
            # a sequence's value is its number of items (None: not opened), so that an
            # item without elements is still seen
            count = None if items is None and length != 0 else str(len(items or []))
            out.append((path, int(tag), depth, vr, length, count))
            for i, item in enumerate(items or []):
                _flatten(item, f"{path}[{i}]", depth + 1, out, top_values)
        else:
            out.append((path, int(tag), depth, vr, length, value))


def _converted(value: Any) -> str | None:
    """A converted element's value as the raw-value text form (``a\\b`` for many)."""
    if value is None or isinstance(value, bytes):
        return None
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _field(top_values: dict[int, Any], tag: int, kind: str) -> Any:
    value = top_values.get(tag)
    if value is None or value == "":
        return None
    if kind == "str":
        return value
    try:
        return float(value.split("\\", 1)[0])
    except ValueError:  # malformed: recorded as missing, conformance reports it
        return None


def _vector(top_values: dict[int, Any], tag: int, n: int) -> list[float | None]:
    value = top_values.get(tag)
    try:
        values = [float(v) for v in value.split("\\")] if value else []
    except ValueError:
        values = []
    return values if len(values) == n else [None] * n


def _check_pixel_framing(  # noqa: C901, PLR0912  (framing state machine)
    fp: BinaryIO, size: int, little: bool = True
) -> tuple[int | None, int, str | None]:
    """Verify that the Pixel Data element is complete without reading its payload.

    One small read per fragment (the walk seeks over every payload), at most
    ``MAX_FRAGMENTS`` of them. Returns ``(pixel_length, fragments, problem)``; the length
    is None when undefined (encapsulated), ``problem`` says what is truncated or malformed.
    """
    order = "<" if little else ">"
    head = fp.read(8)
    if len(head) < 8:
        return (
            None,
            0,
            (
                "no Pixel Data element before the end of the file (truncated, or a damaged "
                "element length in the header)"
            ),
        )
    group, elem = struct.unpack(f"{order}HH", head[:4])
    found = group << 16 | elem
    if found != _PIXEL_DATA:
        return None, 0, f"unexpected element {tag_text(found)} where Pixel Data should be"
    # the element's own encoding decides: a header read past a VR mismatch may differ
    # from what the transfer syntax declares
    implicit = not (head[4:6] in _PIXEL_VRS and head[6:8] == b"\0\0")
    if implicit:
        (length,) = struct.unpack(f"{order}I", head[4:8])
    else:
        extra = fp.read(4)
        if len(extra) < 4:
            return None, 0, "Pixel Data header is truncated"
        (length,) = struct.unpack(f"{order}I", extra)
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
        if fragments >= MAX_FRAGMENTS:
            return (
                None,
                fragments,
                (
                    f"more than {MAX_FRAGMENTS} Pixel Data fragments (a CT slice has one per "
                    "frame): the framing was not followed further"
                ),
            )
        fp.seek(offset)
        g, e, item_len = struct.unpack(f"{order}HHI", fp.read(8))
        tag = g << 16 | e
        if tag == _SEQ_DELIM:
            return None, max(fragments, 0), None
        if tag != _ITEM:
            return None, max(fragments, 0), f"unexpected tag {tag_text(tag)} in Pixel Data"
        offset += 8 + item_len
        fragments += 1
        if offset > size:
            return None, fragments, "encapsulated Pixel Data fragment runs past the end of the file"


def _stop_when() -> Callable[[int, str | None, int], bool]:
    """Stop the parse at Pixel Data, or where the tags stop ascending.

    PS3.5 7.1 requires ascending tags; a tag smaller than (or equal to) the one before is
    damage (typically zero fill: element (0000,0000) over and over), and parsing on would
    walk the whole payload eight bytes at a time. (pydicom asks twice about the first tag
    when it probes the VR encoding, so one repeat of the first tag is let through.)
    """
    last = -1
    calls = 0

    def stop(tag: int, vr: str | None, length: int) -> bool:
        nonlocal last, calls
        del vr, length
        calls += 1
        if tag in _PIXEL_TAGS or tag < last or (tag == last and calls > 2):
            return True
        last = tag
        return False

    return stop


class HeaderTooLarge(Exception):
    """The header needs more reads or bytes than :data:`MAX_HEADER_READS`/``_BYTES``."""


class _Bounded:
    """A file object that refuses to serve a header more reads or bytes than its budget.

    ``stop_when`` only sees top-level elements; damage inside an undefined-length sequence
    item (zero fill read as items of empty elements) or a huge value in the file meta would
    otherwise make one header cost minutes or gigabytes. Seeks (deferred values) are free.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self.reads = 0
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > MAX_HEADER_READS:
            raise HeaderTooLarge(f"more than {MAX_HEADER_READS:,} data element reads")
        if size < 0 or self.bytes + size > MAX_HEADER_BYTES:
            raise HeaderTooLarge(f"more than {MAX_HEADER_BYTES >> 20} MiB of element values")
        data = self._fp.read(size)
        self.bytes += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def _inflate(fp: BinaryIO, row: dict[str, Any]) -> tuple[BinaryIO, int] | None:
    """The inflated dataset of a Deflated Explicit VR Little Endian file, within a cap.

    Read and inflated in 1 MiB steps, so a deflate bomb costs at most the cap.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    parts: list[bytes] = []
    total = 0
    try:
        while not inflater.eof:
            chunk = inflater.unconsumed_tail or fp.read(1 << 20)
            if not chunk:
                break
            part = inflater.decompress(chunk, MAX_INFLATED + 1 - total)
            total += len(part)
            parts.append(part)
            if total > MAX_INFLATED:
                row["status"] = "unreadable"
                row["error"] = (
                    f"deflated dataset inflates to more than {MAX_INFLATED} bytes: not read"
                )
                return None
    except zlib.error as exc:
        row["status"] = "unreadable"
        row["error"] = f"deflated dataset cannot be inflated: {exc}"
        return None
    data = b"".join(parts)
    return DicomBytesIO(data), len(data)


def _encoding(tsuid: UID | None, fp: BinaryIO) -> tuple[bool, bool]:
    """``(implicit VR, little endian)`` of the dataset that follows the file meta.

    As pydicom's ``read_partial`` decides it: from the transfer syntax, else (no syntax
    declared) from the first element's bytes; any other syntax is explicit VR little endian.
    """
    if tsuid is None:
        peek = fp.read(6)
        fp.seek(-len(peek), 1)
        if len(peek) == 6 and peek[4:6].decode("latin-1") in converters:
            return False, struct.unpack("<H", peek[:2])[0] < 1024
        return True, True
    if tsuid.is_transfer_syntax:
        return bool(tsuid.is_implicit_VR), bool(tsuid.is_little_endian)
    return False, True


def _parse(
    fp: BinaryIO, size: int, row: dict[str, Any], deep: bool = False
) -> tuple[Dataset, Dataset] | None:
    """Parse one open file's header into ``(file meta, dataset)`` and check the Pixel Data.

    The file meta is read once, then the dataset with the encoding it declares: up to the
    Pixel Data, or to where the tags stop ascending (see :func:`_stop_when`). ``deep``:
    decode the Pixel Data too, from the same descriptor (:mod:`ctmd_validate.pixels`).
    """
    fp.seek(0)
    if read_preamble(fp, False) is None:
        row["status"] = "not_dicom"
        row["error"] = "no DICOM Part 10 preamble ('DICM' at byte 128)"
        return None
    meta_start = fp.tell()
    bounded = _Bounded(fp)
    meta = _read_file_meta_info(bounded)
    if "FileMetaInformationGroupLength" in meta:
        # as pydicom measures it: the bytes after the 12-byte group length element
        declared = meta.FileMetaInformationGroupLength
        row["meta_group_length"] = declared if isinstance(declared, int) else -1  # not one UL
        row["meta_length"] = fp.tell() - (meta_start + 12)
    tsuid = meta.get("TransferSyntaxUID")
    row["transfer_syntax"] = str(tsuid) if tsuid else None
    body: BinaryIO = fp
    if tsuid == DeflatedExplicitVRLittleEndian:
        inflated = _inflate(fp, row)
        if inflated is None:
            return None
        body, size = inflated
        implicit, little = False, True
    else:
        implicit, little = _encoding(UID(tsuid) if tsuid else None, fp)
    bounded._fp = body
    ds = read_dataset(bounded, implicit, little, stop_when=_stop_when(), defer_size=DEFER_SIZE)
    pixel_at = body.tell()
    length, fragments, problem = _check_pixel_framing(body, size, little)
    row["pixel_length"] = length
    row["pixel_fragments"] = fragments
    if problem:
        row["status"] = "unreadable"
        row["error"] = problem
    elif deep:
        decode_into(body, pixel_at, size, meta, ds, (implicit, little), row)
    return meta, ds


@contextmanager
def captured(notes: list[str], path: str = "") -> Iterator[None]:
    """Record the warnings and pydicom log records raised inside, sanitised, in ``notes``.

    pydicom's messages quote raw header bytes (Patient ID, dates, serial numbers) when a
    header is damaged: nothing of theirs may reach stderr, a log or a report as is.
    """
    logger = logging.getLogger("pydicom")
    handler = _Collect()
    saved = logger.propagate, logger.handlers[:]
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.handlers[:], logger.propagate = saved[1], saved[0]
    for text in [str(w.message) for w in caught] + handler.messages:
        note = sanitize_message(text, path)
        if note and note not in notes:
            notes.append(note)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a malformed record: keep nothing of it
            self.messages.append("a pydicom log message that could not be formatted")


def read_header(
    path: str, deep: bool = False, archive: str | None = None
) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Parse one file's header once; never raises, never lets a library print.

    ``deep``: decode its Pixel Data as well (``pixel_status``, ``stored_min``/``_max``).
    ``archive``: ``path`` is a member of this zip archive, read into memory (CRC checked).

    Returns the file's row (``status`` is ``ok``, ``not_dicom`` or ``unreadable`` with an
    ``error``; ``warnings`` holds what the parser had to work around, sanitised) and its
    data elements. ``path`` must be a real path (links already resolved inside the root):
    it is opened with ``O_NOFOLLOW``.
    """
    row: dict[str, Any] = {"status": "ok", "error": None, "size": None, "warnings": None}
    elements: list[tuple[Any, ...]] = []
    top_values: dict[int, Any] = {}
    notes: list[str] = []
    try:
        with captured(notes, path):
            if archive is None:
                _read_into(path, row, elements, top_values, deep)
            else:
                _read_member_into(archive, path, row, elements, top_values, deep)
    except HeaderTooLarge as exc:
        row["status"] = "unreadable"
        row["error"] = f"header too large: {exc} before the Pixel Data; not parsed further"
    except (OSError, EOFError) as exc:
        row["status"] = "unreadable"
        row["error"] = (
            f"{type(exc).__name__}: {exc.strerror or 'cannot be read'}"
            if isinstance(exc, OSError) and exc.strerror
            else f"file ends inside the header ({sanitize_message(str(exc), path)})"
        )
    except Exception as exc:
        row["status"] = "unreadable"
        detail = sanitize_message(f"{type(exc).__name__}: {exc}", path)
        row["error"] = f"header cannot be parsed: {detail}"
    if notes:
        row["warnings"] = "\n".join(notes)
    if row["status"] != "ok":
        elements.clear()
        return row, elements
    for column, keyword, kind in _FIELDS:
        row[column] = _field(top_values, _TAGS[keyword], kind)
    for prefix, keyword, n in _VECTORS:
        for i, v in enumerate(_vector(top_values, _TAGS[keyword], n)):
            row[f"{prefix}_{i}"] = v
    row["media_sop_class_uid"] = _field(top_values, 0x00020002, "str")
    row["media_sop_instance_uid"] = _field(top_values, 0x00020003, "str")
    return row, elements


def _open_file(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading without following a link or blocking; its descriptor, stat.

    O_NONBLOCK: a FIFO named like a slice must not block the scan forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        raise


def _read_into(
    path: str,
    row: dict[str, Any],
    elements: list[tuple[Any, ...]],
    top_values: dict[int, Any],
    deep: bool = False,
) -> None:
    fd, st = _open_file(path)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        row["status"] = "unreadable"
        row["error"] = "not a regular file (a pipe, socket or device)"
        return
    with os.fdopen(fd, "rb") as fp:
        _read_fp(fp, st.st_size, path, row, elements, top_values, deep)


def _read_member_into(
    archive: str,
    member: str,
    row: dict[str, Any],
    elements: list[tuple[Any, ...]],
    top_values: dict[int, Any],
    deep: bool,
) -> None:
    """:func:`_read_into` for a member of a zip archive: read into memory, never to disk."""
    try:
        data = read_member(archive, member, IMAGE_BYTES)
    except OSError as exc:
        row["status"] = "unreadable"
        row["error"] = str(exc)
        return
    _read_fp(io.BytesIO(data), len(data), member, row, elements, top_values, deep)


def _read_fp(
    fp: BinaryIO,
    size: int,
    path: str,
    row: dict[str, Any],
    elements: list[tuple[Any, ...]],
    top_values: dict[int, Any],
    deep: bool,
) -> None:
    row["size"] = size
    head = fp.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        row["status"] = "not_dicom"
        row["error"] = (
            "empty file" if size == 0 else "no DICOM Part 10 preamble ('DICM' at byte 128)"
        )
        row["name_tokens"] = _name_tokens(fp, path) if size else None
        return
    try:
        parsed = _parse(fp, size, row, deep)
        if parsed is not None:
            _flatten(parsed[0], "", 0, elements, top_values)
            _flatten(parsed[1], "", 0, elements, top_values)
    except Exception:
        row["name_tokens"] = _name_tokens(fp, path)
        raise
    if row["status"] != "ok":
        row["name_tokens"] = _name_tokens(fp, path)


#: How much of an unreadable file's start is searched for the parts of its own name.
NAME_PROBE = 1 << 16
_NAME_SPLIT = re.compile(r"[-_.\s]+")


#: Stray files probed for their name's parts (a wrong ROOT may hold millions of files).
MAX_PROBED = 1_000


def _probe_name_tokens(real: str) -> str | None:
    """:func:`_name_tokens` of a file that is not otherwise read (a stray), or None."""
    try:
        fd, st = _open_file(real)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fp:
        return _name_tokens(fp, real) if stat.S_ISREG(st.st_mode) else None


def _name_tokens(fp: BinaryIO, path: str) -> str | None:
    """Parts of the file's name that occur in its own first bytes (``\\``-separated).

    An unreadable file yields no elements, so nothing would tell the report that its name
    holds a Patient ID; a name part that the header spells out verbatim is data, and is
    masked like any identifying value. Read from the already open file, never reopened.
    """
    stem = os.path.basename(path).rsplit(".", 1)[0]
    parts = {stem, *_NAME_SPLIT.split(stem)}
    try:
        fp.seek(0)
        raw = fp.read(NAME_PROBE)
        # both readings: a name part may be spelt in UTF-8 ("Jürgenthal") or Latin-1
        head = (raw.decode("latin-1") + "\0" + raw.decode("utf-8", "replace")).casefold()
    except (OSError, ValueError):
        return None
    found = sorted(p for p in parts if len(p) >= 4 and p.casefold() in head)
    return "\\".join(found) or None


ELEMENT_COLUMNS = ("file_idx", "path", "tag", "depth", "vr", "length", "value")
_Chunk = tuple[list[dict[str, Any]], dict[str, list[Any]]]


def _read_chunk(
    items: list[tuple[int, str | None]], deep: bool = False, archive: str | None = None
) -> _Chunk:
    """Parse a chunk of files; elements come back as columns (cheap to send and to stack)."""
    rows: list[dict[str, Any]] = []
    columns: dict[str, list[Any]] = {c: [] for c in ELEMENT_COLUMNS}
    for idx, path in items:
        if path is None:  # a broken link: nothing to open
            row: dict[str, Any] = {"status": "unreadable", "size": None, "warnings": None}
            row["error"] = "broken symbolic link: its target does not exist"
            elements: list[tuple[Any, ...]] = []
        else:
            row, elements = read_header(path, deep, archive)
        row["file_idx"] = idx
        rows.append(row)
        if elements and row["status"] == "ok":  # an unreadable file contributes no elements
            columns["file_idx"].extend([idx] * len(elements))
            for name, values in zip(ELEMENT_COLUMNS[1:], zip(*elements, strict=True), strict=True):
                columns[name].extend(values)
    return rows, columns


# --------------------------------------------------------------------------- tree walk


@dataclass
class _Dir:
    """A folder of the walk: as the user sees it (``shown``) and where it really is."""

    shown: Path
    real: str


@dataclass
class _Entry:
    """One directory entry, its links resolved inside the root."""

    name: str
    shown: Path
    real: str | None  # None: a link that is not followed
    is_dir: bool
    link: LinkState | None = None


@dataclass
class _TreeWalk:
    confined: Confined
    root: Path
    class_dirs: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    layout_dirs: list[_Dir] = field(default_factory=list)
    deeper: list[str] = field(default_factory=list)
    probed: int = 0
    #: the tree is the members of this zip archive (``_Dir.real``: a member folder path)
    archive: Archive | None = None

    def rel(self, path: Path) -> str:
        return display(path.relative_to(self.root).as_posix())

    def add(
        self,
        path: Path,
        kind: str,
        role: str,
        reason: str | None,
        case: str | None,
        real: str | None = None,
    ) -> None:
        """Record a tree entry that is not a class folder, case folder or image.

        A stray file (``real`` given) is probed for the parts of its name that its own
        bytes spell out (see :func:`_name_tokens`): its name is shown in the report.
        """
        tokens = None
        if real is not None and self.probed < MAX_PROBED:
            self.probed += 1
            tokens = self._probe(real)
        self.record(self.rel(path), kind, role, reason, case, tokens)

    def record(
        self,
        rel: str,
        kind: str,
        role: str,
        reason: str | None,
        case: str | None,
        tokens: str | None,
    ) -> None:
        """Append one row of the ``entries`` table (``rel`` as the report shows it)."""
        self.entries.append(
            {
                "path": rel,
                "kind": kind,
                "role": role,
                "case_key": case,
                "reason": reason,
                "name_tokens": tokens,
            }
        )

    def _probe(self, real: str) -> str | None:
        if self.archive is None:
            return _probe_name_tokens(real)
        try:
            head = read_member(self.archive.path, real, head=NAME_PROBE)
        except OSError:
            return None
        return _name_tokens(io.BytesIO(head), real)

    def listdir(self, folder: _Dir) -> list[_Entry]:
        """The entries of a (real) folder, each link resolved without leaving the root."""
        if self.archive is not None:  # members: no links (refused when the archive was read)
            parts = tuple(folder.real.split("/")) if folder.real else ()
            return [
                _Entry(name, folder.shown / name, member or "/".join((*parts, name)), not member)
                for name, member in self.archive.children(parts)
            ]
        try:
            with os.scandir(folder.real) as it:
                raw = sorted(it, key=lambda e: e.name)
        except OSError:
            return []
        out = []
        for e in raw:
            shown = folder.shown / e.name
            try:
                is_link = e.is_symlink()
            except OSError:
                is_link = False
            if not is_link:
                out.append(_Entry(e.name, shown, e.path, _is_dir(e)))
                continue
            state, target = self.confined.resolve_link(e.path)
            is_dir = target is not None and os.path.isdir(target)
            if is_dir and target is not None and contains(target, folder.real):
                state, target = LinkState.LOOP, None  # a folder linking to itself or above
            out.append(_Entry(e.name, shown, target, is_dir, state))
        return out

    def unfollowed(self, entry: _Entry, case: str | None) -> bool:
        """Record a link that leaves the root or loops; True when ``entry`` is one."""
        if entry.link is LinkState.OUTSIDE:
            reason = "a symbolic link to a place outside the dataset root"
            self.add(entry.shown, "link", "symlink_outside", reason, case)
            return True
        if entry.link is LinkState.LOOP:
            reason = "a symbolic link that loops (to itself, a folder above it, or a cycle)"
            self.add(entry.shown, "link", "symlink_loop", reason, case)
            return True
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


#: A stray folder's files are counted up to this many (a wrong ROOT may be a whole disk).
MAX_COUNTED = 10_000


def _count_files(folder: _Dir, walk: _TreeWalk, profile: Profile) -> str:
    """How many files a stray folder holds, and class folders below it.

    Nothing is stat'ed through a link: links inside are resolved within the root (those
    leaving it or looping are reported like any other), and linked folders are not entered.
    At most ``MAX_COUNTED`` entries are looked at.
    """
    total = seen = 0
    stack = [folder]
    while stack:
        for entry in walk.listdir(stack.pop()):
            seen += 1
            if seen > MAX_COUNTED:
                return f"more than {MAX_COUNTED} entries"
            if walk.unfollowed(entry, None):
                continue
            if not (entry.is_dir and entry.real is not None):
                total += 1
                continue
            if _class_of_dir(entry.name, profile) is not None and len(walk.deeper) < 10:
                walk.deeper.append(walk.rel(entry.shown))
            if entry.link is None:
                stack.append(_Dir(entry.shown, entry.real))
    return f"{total} files"


def _class_of_dir(name: str, profile: Profile) -> str | None:
    for spec in profile.classes.values():
        if spec.matches_dir(name):
            return spec.key
    return None


def _find_class_dirs(
    walk: _TreeWalk, profile: Profile
) -> tuple[list[tuple[_Entry, str]], list[_Dir]]:
    """Class folders directly under ROOT or up to ``container_depth`` folders down.

    Returns them and the layout folders (ROOT, and every folder between ROOT and a folder
    that holds class folders).
    """
    root = _Dir(walk.root, walk.confined.root)
    found: list[tuple[_Entry, str]] = []
    containers: dict[Path, _Dir] = {}
    parents: dict[Path, _Dir] = {}
    level = [root]
    for _depth in range(profile.container_depth + 1):
        nxt: list[_Dir] = []
        for folder in level:
            for entry in walk.listdir(folder):
                if not entry.is_dir or entry.real is None or entry.name.startswith("."):
                    continue
                key = _class_of_dir(entry.name, profile)
                if key is not None:
                    found.append((entry, key))
                    containers[folder.shown] = folder
                else:
                    sub = _Dir(entry.shown, entry.real)
                    parents[sub.shown] = folder
                    nxt.append(sub)
        if found:
            break
        level = nxt
    layout: dict[Path, _Dir] = {root.shown: root}
    for folder in containers.values():
        while folder.shown not in layout:
            layout[folder.shown] = folder
            folder = parents[folder.shown]
    return found, sorted(layout.values(), key=lambda d: (len(d.shown.parts), d.shown))


def _walk_tree(root: Path, profile: Profile, archive: Archive | None = None) -> _TreeWalk:
    confined = Confined("") if archive is not None else Confined.at(root)
    walk = _TreeWalk(confined, root, archive=archive)
    class_dirs, layout_dirs = _find_class_dirs(walk, profile)
    class_paths = {e.shown for e, _ in class_dirs}
    suffix = profile.dicom_suffix
    walk.layout_dirs = [d for d in layout_dirs if d.shown != root]
    _walk_layout(walk, layout_dirs, class_paths | {d.shown for d in layout_dirs}, profile)

    for entry, key in class_dirs:
        crel = walk.rel(entry.shown)
        walk.class_dirs.append({"path": crel, "name": display(entry.name), "class_key": key})
        for sub in walk.listdir(_Dir(entry.shown, str(entry.real))):
            if walk.unfollowed(sub, None):
                continue
            if sub.is_dir and sub.real is not None:
                case_key = walk.rel(sub.shown)
                walk.cases.append(
                    {
                        "case_key": case_key,
                        "case_id": display(sub.name),
                        "class_key": key,
                        "class_dir": crel,
                    }
                )
                _walk_case(_Dir(sub.shown, sub.real), case_key, suffix, walk, profile)
            else:
                where = "inside a class folder, outside any case folder"
                walk.add(sub.shown, "file", "stray", _stray_reason(sub, where), None, sub.real)
    return walk


def _walk_layout(
    walk: _TreeWalk, layout_dirs: list[_Dir], known: set[Path], profile: Profile
) -> None:
    """Everything beside the class folders (ROOT and the folders above them): data files
    the profile allows (``Index.csv``, the label arrays), stray files and folders."""
    for folder in layout_dirs:
        for entry in walk.listdir(folder):
            if entry.shown in known or walk.unfollowed(entry, None):
                continue
            if entry.is_dir and entry.real is not None:
                inside = _count_files(_Dir(entry.shown, entry.real), walk, profile)
                walk.add(entry.shown, "dir", "stray", f"unexpected folder ({inside} inside)", None)
            elif not entry.name.startswith(".") and any(
                fnmatch.fnmatch(entry.name, g) for g in profile.root_files_allowed
            ):
                walk.add(entry.shown, "file", "dataset_file", None, None)
            else:
                reason = _stray_reason(entry, "next to the class folders")
                walk.add(entry.shown, "file", "stray", reason, None, entry.real)


def _stray_reason(entry: _Entry, where: str) -> str:
    name = entry.name
    if entry.link is LinkState.BROKEN:
        return f"broken symbolic link {where}"
    if name in {".DS_Store", "Thumbs.db", "desktop.ini"} or name.startswith("._"):
        return f"operating-system metadata file {where}"
    if name.startswith("."):
        return f"hidden file {where}"
    return f"not part of the dataset layout: file {where}"


def _walk_case(case: _Dir, case_key: str, suffix: str, walk: _TreeWalk, profile: Profile) -> None:
    for entry in walk.listdir(case):
        if walk.unfollowed(entry, case_key):
            continue
        if entry.is_dir and entry.real is not None:
            inside = _count_files(_Dir(entry.shown, entry.real), walk, profile)
            reason = f"folder nested in a case folder ({inside} inside)"
            walk.add(entry.shown, "dir", "stray", reason, case_key)
        elif entry.name.startswith("."):
            reason = _stray_reason(entry, "in a case folder")
            walk.add(entry.shown, "file", "stray", reason, case_key, entry.real)
        else:
            walk.candidates.append(
                {
                    "path": walk.rel(entry.shown),
                    "abspath": entry.real,
                    "case_key": case_key,
                    "suffix_ok": entry.name.lower().endswith(suffix),
                }
            )


# --------------------------------------------------------------------------- scan


def _chunks(
    items: list[tuple[int, str | None]], size: int
) -> Iterator[list[tuple[int, str | None]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _parse_all(
    paths: list[str | None],
    jobs: int,
    progress: ProgressFn | None,
    deep: bool = False,
    archive: str | None = None,
) -> Iterable[_Chunk]:
    total = len(paths)
    read = functools.partial(_read_chunk, deep=deep, archive=archive)
    items = list(enumerate(paths))
    if progress:
        progress(0, total)
    if jobs <= 1 or total < 64:
        chunks: Iterable[_Chunk] = map(read, _chunks(items, 32))
        pool = None
    else:
        size = max(8, min(256, total // (jobs * 8) or 8))
        pool = ProcessPoolExecutor(max_workers=jobs)
        chunks = pool.map(read, _chunks(items, size))
    done = 0
    try:
        for chunk in chunks:
            yield chunk
            done += len(chunk[0])
            if progress:
                progress(done, total)
    except BrokenProcessPool:
        # a worker died (the kernel's OOM killer, a signal): the run goes on, and every
        # file not yet read says so instead of being silently absent
        yield _lost(items[done:])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _lost(items: list[tuple[int, str | None]]) -> _Chunk:
    """Rows for files a dead worker process did not return: unreadable, with the reason."""
    rows = [
        {
            "file_idx": idx,
            "status": "unreadable",
            "size": None,
            "warnings": None,
            "error": "not read: the worker process reading it died (out of memory, or "
            "killed); run again with fewer --jobs",
        }
        for idx, _path in items
    ]
    return rows, {c: [] for c in ELEMENT_COLUMNS}


def scan(
    root: str | os.PathLike[str],
    profile: Profile,
    *,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    labels_dir: str | os.PathLike[str] | None = None,
    deep: bool = False,
) -> ScanResult:
    """Walk ``root`` once, parse every candidate DICOM header once, read the label files once.

    ``root`` is a folder, or a zip archive whose members are read in memory, never
    extracted (:mod:`ctmd_validate.archive`).

    ``deep``: decode every image's Pixel Data in the same pass (the integrity.pixel checks).

    ``labels_dir``: where ``Index.csv`` and the label arrays are (default: ROOT, else the
    folder that holds the class folders). Nothing outside ROOT (and ``labels_dir``) is
    read: links that leave it are recorded, not followed. Library warnings and log records
    raised meanwhile are captured, sanitised, and kept with the file they concern (or in
    ``notes``), never printed.

    Raises :class:`CtmdError` only when the root itself cannot be read.
    """
    started = time.perf_counter()
    root_path = Path(root)
    archive = None
    if is_archive(root_path):
        if labels_dir is not None:
            raise CtmdError("--labels cannot be used with an archive: the labels are inside it")
        archive = Archive.open(root_path)
    elif not root_path.is_dir():
        raise CtmdError(
            f"dataset root is not a readable folder or zip archive: {display(str(root_path))}"
        )
    else:
        try:
            os.listdir(root_path)
        except OSError as exc:
            raise CtmdError(
                f"cannot list dataset root {display(str(root_path))}: {exc.strerror}"
            ) from exc
    if labels_dir is not None and not Path(labels_dir).is_dir():
        raise CtmdError(f"labels folder is not a readable folder: {display(str(labels_dir))}")
    root_path = Path(os.path.realpath(root_path))
    jobs = max(1, jobs or os.cpu_count() or 1)
    notes: list[str] = []
    with captured(notes, str(root_path)):
        walk = _walk_tree(root_path, profile, archive)
        file_rows, element_columns = _parse_files(walk, jobs, progress, deep)
        files = tables.make_files(file_rows)
        if archive is None:
            labels = load_labels(
                root_path, profile, labels_dir, [Path(d.real) for d in walk.layout_dirs]
            )
        else:
            labels = load_archive_labels(archive, profile, [d.real for d in walk.layout_dirs])
        result = ScanResult(
            root=root_path,
            profile=profile,
            class_dirs=tables.make_class_dirs(walk.class_dirs),
            cases=tables.make_cases(walk.cases, files, profile),
            files=files,
            elements=tables.make_elements(element_columns),
            entries=tables.make_entries(walk.entries),
            labels=labels,
            deeper_class_dirs=tuple(walk.deeper),
            jobs=jobs,
            deep=deep,
            archive=archive,
        )
    result.notes = tuple(notes)
    result.seconds = time.perf_counter() - started
    return result


def _parse_files(
    walk: _TreeWalk, jobs: int, progress: ProgressFn | None, deep: bool = False
) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """Parse every candidate image; files that are not DICOM and not named so are strays."""
    file_rows: list[dict[str, Any]] = []
    element_columns: dict[str, list[Any]] = {c: [] for c in ELEMENT_COLUMNS}
    paths = [c["abspath"] for c in walk.candidates]
    archive = walk.archive.path if walk.archive is not None else None
    for rows, columns in _parse_all(paths, jobs, progress, deep, archive):
        for row in rows:
            cand = walk.candidates[row["file_idx"]]
            if row["status"] == "not_dicom" and not cand["suffix_ok"]:
                name = Path(cand["path"]).name
                reason = _stray_reason(_Entry(name, Path(name), None, False), "in a case folder")
                tokens = row.get("name_tokens")
                walk.record(cand["path"], "file", "stray", reason, cand["case_key"], tokens)
                continue  # a file that is not DICOM has no elements
            if row["status"] == "not_dicom":
                row["status"] = "unreadable"
            row.update(path=cand["path"], case_key=cand["case_key"], suffix_ok=cand["suffix_ok"])
            file_rows.append(row)
        for name, values in columns.items():
            element_columns[name].extend(values)
    return file_rows, element_columns
