"""Hypothesis fuzzing through the whole scan (issue 9): DICOM header bytes, label arrays, Index.csv.

Every test is marked ``fuzz``. ``CTMD_FUZZ_EXAMPLES`` sets the number of examples of every
test (a full run: ``CTMD_FUZZ_EXAMPLES=10000 pytest -m fuzz tests/test_fuzz.py``); without it
each test runs a small budget (``_examples``), derandomized, so CI stays fast and
deterministic. No example database is written.

What is fuzzed:

* DICOM headers of real files of the public sample (skipped when absent) and of synthetic
  slices written in four transfer syntaxes with planted identifying values. A mutation is a
  list of plain tuples (:data:`_OPS`): bit flips, overwritten runs, fills (zero fill
  included), insertions, deletions, truncation, bytes planted at an element's tag, VR, length
  or value (``b"\\xff\\xff\\xff\\xff"`` at a length …), a length that makes an element swallow
  exactly its next elements, and a sparse zero tail up to 4 GiB. Plain tuples, so a failing
  example can be written down as an ``@example``.
* Label arrays: ``np.save`` of random dtypes (structured, object, str, float16, complex,
  bool, big endian …) and shapes, the clean arrays re-typed and edited, hand-written
  headers (format 1.0 / 2.0 / 3.0, absurd or negative dimensions), pickles whose unpickling
  would create a marker file, random bytes after the magic.
* ``Index.csv``: random bytes and text, BOMs, NULs, invalid UTF-8, ragged lines, quotes,
  fields past the csv module's size limit, a file past the index size limit.

Whole-scan properties run on a "mini" tree (the tiny tree's three cases with 6 / 5 / 4
slices, validated with a ``subset`` profile whose manifest says so), written once per
module; each example swaps one file and restores it in a ``finally``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import re
import shutil
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

import ctmd_validate.checks  # noqa: F401  (registers every check)
from conftest import CASE_REL, MINI, npy_header
from conftest import LABEL_FILES as ALL_LABEL_FILES
from ctmd_validate import Report, synth, validate
from ctmd_validate.labelfiles import read_npy
from ctmd_validate.scan import read_header

pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("ignore::UserWarning:pydicom")]

_ENV = "CTMD_FUZZ_EXAMPLES"
_FULL = bool(os.environ.get(_ENV))


def _examples(default: int) -> int:
    """Examples for one test: ``$CTMD_FUZZ_EXAMPLES`` when set, else the test's CI budget."""
    value = os.environ.get(_ENV)
    return int(value) if value else default


FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=not _FULL,  # CI: the same examples on every run; a full run explores
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# --------------------------------------------------------------------------- the mini tree

LABEL_FILES = ALL_LABEL_FILES[1:]  # the four arrays
# Slices of the mini tree replaced by a copy holding planted identifying values (one
# transfer syntax each): the only carriers of those values.
PLANTED_SLOTS = (
    (f"{CASE_REL['covid']}/IM0002.dcm", ExplicitVRLittleEndian),
    (f"{CASE_REL['cap']}/IM0003.dcm", ImplicitVRLittleEndian),
    (f"{CASE_REL['normal']}/IM0002.dcm", DeflatedExplicitVRLittleEndian),
)

# --------------------------------------------------------------------------- identifying values

# What the report and every message must never echo (values of >= 4 characters).
IDENTIFYING = (
    "PatientID",
    "StationName",
    "DeviceSerialNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "InstitutionName",
    "OperatorsName",
    "ReferringPhysicianName",
    "StudyID",
    "ProtocolName",
)
MIN_SECRET = 4


def _planted(i: int) -> dict[str, str]:
    """Distinct, unmistakable identifying values for planted slice ``i``."""
    day = 10 + 4 * i
    return {
        "PatientID": f"QPID{i}X5521",
        "StationName": f"STN{i}Q4ZK",
        "DeviceSerialNumber": f"SN{i}83517",
        "StudyDate": f"198711{day:02d}",
        "SeriesDate": f"198711{day + 1:02d}",
        "AcquisitionDate": f"198711{day + 2:02d}",
        "ContentDate": f"198711{day + 3:02d}",
        "StudyTime": f"09341{i}.250000",
        "InstitutionName": f"Qzxv{i} Memorial Hospital",
        "OperatorsName": f"Wqplk{i}^Zorbu",
        "ReferringPhysicianName": f"Vrumf{i}^Jelkin",
        "StudyID": f"ST{i}48213",
        "ProtocolName": f"PRX_Thorax_77{i}1",
    }


def _secrets_of(path: Path) -> tuple[str, ...]:
    """The identifying values of an undamaged file (person names also by component)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    out: set[str] = set()
    for keyword in IDENTIFYING:
        elem = ds.get(keyword)
        if elem is None:
            continue
        values = elem if isinstance(elem, pydicom.multival.MultiValue) else [elem]
        for value in values:
            text = str(value).strip()
            parts = [text, *re.split(r"[\^=]", text)] if keyword.endswith("Name") else [text]
            out.update(p.strip() for p in parts if len(p.strip()) >= MIN_SECRET)
    return tuple(sorted(out))


def _leaks(text: str | None, secrets: Iterable[str]) -> list[str]:
    """The secrets found in ``text``, case-insensitively, also as hex of their bytes."""
    if not text:
        return []
    folded = text.casefold()
    return [
        s
        for s in secrets
        if s.casefold() in folded or s.encode("latin-1", "replace").hex() in folded
    ]


def _write_planted(src: Path, dst: Path, transfer_syntax: str, i: int) -> None:
    """A copy of slice ``src`` holding the planted values ``i``, in ``transfer_syntax``."""
    ds = pydicom.dcmread(src)
    for keyword, value in _planted(i).items():
        setattr(ds, keyword, value)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    if transfer_syntax == ExplicitVRBigEndian:
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
        pydicom.dcmwrite(dst, ds, implicit_vr=False, little_endian=False)
    else:
        ds.save_as(dst, enforce_file_format=True)


# --------------------------------------------------------------------------- DICOM layout

_LONG_VRS = frozenset(
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"]
)
_PIXEL_DATA = 0x7FE00010


@dataclasses.dataclass(frozen=True)
class _Element:
    """Where one data element's header fields and value start in the file."""

    tag_at: int
    vr_at: int  # the VR (explicit) or the length (implicit, items)
    length_at: int
    length_size: int
    value_at: int


@dataclasses.dataclass(frozen=True)
class _Original:
    """An undamaged file: its bytes, elements, header size and identifying values."""

    name: str
    data: bytes
    elements: tuple[_Element, ...]
    header_end: int  # past the Pixel Data element's header and its first item header
    secrets: tuple[str, ...]

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """Short in Hypothesis' report of a failing example (which prints fixtures too)."""
        printer.text(f"_Original({self.name!r})")


def _layout(data: bytes) -> tuple[tuple[_Element, ...], int]:
    """The data elements of a Part 10 file up to Pixel Data (sequence items stepped into).

    Enough to aim mutations at real header fields: the file meta group, then the dataset
    in its transfer syntax (a deflated dataset is not walked).
    """
    out: list[_Element] = []
    pos, syntax = 132, None
    little, explicit = True, True
    while pos + 8 <= len(data):
        if syntax is None and data[pos : pos + 2] != b"\x02\x00":  # the file meta group ends
            syntax = "meta-done"
            ts = next((v for t, v in _meta_values(data, out) if t == 0x00020010), "")
            if ts == DeflatedExplicitVRLittleEndian:
                break
            little = ts != ExplicitVRBigEndian
            explicit = ts != ImplicitVRLittleEndian
        order = "<" if little else ">"
        group, elem = struct.unpack_from(f"{order}HH", data, pos)
        if group == 0xFFFE:  # item or delimiter: no VR, four-byte length; step in
            out.append(_Element(pos, pos + 4, pos + 4, 4, pos + 8))
            pos += 8
            continue
        vr = data[pos + 4 : pos + 6]
        if explicit and vr.isalpha() and vr.isupper():
            if vr in _LONG_VRS:
                if pos + 12 > len(data):
                    break
                (length,) = struct.unpack_from(f"{order}I", data, pos + 8)
                el = _Element(pos, pos + 4, pos + 8, 4, pos + 12)
            else:
                (length,) = struct.unpack_from(f"{order}H", data, pos + 6)
                el = _Element(pos, pos + 4, pos + 6, 2, pos + 8)
        elif explicit:
            break  # not what the transfer syntax says: stop aiming here
        else:
            (length,) = struct.unpack_from(f"{order}I", data, pos + 4)
            el = _Element(pos, pos + 4, pos + 4, 4, pos + 8)
        out.append(el)
        if (group << 16 | elem) == _PIXEL_DATA:
            return tuple(out), min(len(data), el.value_at + 16)
        pos = el.value_at if vr == b"SQ" or length == 0xFFFFFFFF else el.value_at + length
    return tuple(out), min(len(data), max(pos, 132))


def _meta_values(data: bytes, elements: list[_Element]) -> Iterable[tuple[int, str]]:
    for el in elements:
        group, elem = struct.unpack_from("<HH", data, el.tag_at)
        (length,) = struct.unpack_from("<H" if el.length_size == 2 else "<I", data, el.length_at)
        raw = data[el.value_at : el.value_at + length]
        yield group << 16 | elem, raw.rstrip(b"\x00 ").decode("latin-1")


def _original(path: Path) -> _Original:
    data = path.read_bytes()
    elements, header_end = _layout(data)
    return _Original(path.name, data, elements, header_end, _secrets_of(path))


# --------------------------------------------------------------------------- mutations

# Values worth planting at a tag, VR, length or value: huge and odd lengths, VRs that change
# how the length is read, item and delimiter tags, the Pixel Data tag, group 2 and odd groups.
_INTERESTING = st.sampled_from(
    [
        b"\xff\xff\xff\xff",
        b"\xfe\xff\xff\xff",
        b"\xff\xff\xff\x7f",
        b"\x00\x00\x00\x80",
        b"\xff\xff",
        b"\xfe\xff",
        b"\x01\x00",
        b"\x00\x00",
        b"\x00\x00\x00\x00",
        b"\x00\x00\x00\x00\x00\x00\x00\x00",
        b"SQ",
        b"UN",
        b"OB",
        b"UT",
        b"AT",
        b"FD",
        b"xx",
        b"\x00\x00\xff\xff",
        b"\xfe\xff\x00\xe0",
        b"\xfe\xff\xdd\xe0",
        b"\xfe\xff\x0d\xe0",
        b"\xe0\x7f\x10\x00",
        b"\x02\x00\x10\x00",
        b"\x09\x00\x10\x00",
        b"\x00\x00\x00\x00\xff\xff\xff\xff",
    ]
)
_POS = st.integers(0, 1 << 16)  # taken modulo the header region
_OPS = st.one_of(
    st.tuples(st.just("flip"), _POS, st.integers(0, 7)),
    st.tuples(st.just("set"), _POS, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("fill"), _POS, st.integers(1, 1024), st.sampled_from([0x00, 0xFF, 0x20])),
    st.tuples(st.just("insert"), _POS, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), _POS, st.integers(1, 256)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),  # modulo the file's length
    st.tuples(st.just("cut"), st.integers(0, 255)),  # truncate where an element starts
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(
        st.just("plant"),
        st.integers(0, 255),  # element, modulo the number of elements
        st.sampled_from(["tag", "vr", "length", "value"]),
        _INTERESTING | st.binary(min_size=1, max_size=8),
    ),
    st.tuples(st.just("swallow"), st.integers(0, 255), st.integers(1, 8)),
    st.tuples(st.just("sparse"), st.sampled_from([1 << 30, (1 << 32) + 8])),
)
MUTATIONS = st.lists(_OPS, min_size=0, max_size=6)


def _mutate(orig: _Original, ops: Iterable[tuple]) -> tuple[bytes, int | None]:
    """The damaged bytes, and the size of the sparse zero tail to extend them to (or None).

    Element positions are those of the undamaged file (an earlier insertion shifts them:
    that is fine, it is fuzzing).
    """
    buf = bytearray(orig.data)
    sparse = None
    for op in ops:
        kind = op[0]
        region = max(1, min(len(buf), orig.header_end))
        if kind == "sparse":
            sparse = op[1]
        elif kind == "append":
            buf += op[1]
        elif kind == "insert":
            pos = op[1] % (region + 1)
            buf[pos:pos] = op[2]
        elif not buf:
            continue
        elif kind == "flip":
            buf[op[1] % region] ^= 1 << op[2]
        elif kind == "set":
            pos = op[1] % region
            buf[pos : pos + len(op[2])] = op[2]
        elif kind == "fill":
            pos = op[1] % region
            n = len(buf[pos : pos + op[2]])
            buf[pos : pos + n] = bytes([op[3]]) * n
        elif kind == "delete":
            pos = op[1] % region
            del buf[pos : pos + op[2]]
        elif kind == "truncate":
            del buf[op[1] % (len(buf) + 1) :]
        elif orig.elements and kind == "cut":
            del buf[orig.elements[op[1] % len(orig.elements)].tag_at :]
        elif orig.elements and kind == "plant":
            el = orig.elements[op[1] % len(orig.elements)]
            at = {"tag": el.tag_at, "vr": el.vr_at, "length": el.length_at, "value": el.value_at}
            pos = at[op[2]]
            buf[pos : pos + len(op[3])] = op[3]
        elif orig.elements and kind == "swallow":
            # a length that ends the element exactly where a later one starts: the parser
            # goes on in step, and the value holds the swallowed elements' bytes
            i = op[1] % len(orig.elements)
            el, later = orig.elements[i], orig.elements[min(i + op[2], len(orig.elements) - 1)]
            length = later.tag_at - el.value_at
            if 0 <= length < 1 << (8 * el.length_size):
                fmt = "<H" if el.length_size == 2 else "<I"
                buf[el.length_at : el.length_at + el.length_size] = struct.pack(fmt, length)
    return bytes(buf), sparse


def _write(path: Path, data: bytes, sparse: int | None) -> None:
    path.write_bytes(data)
    if sparse is not None and sparse > len(data):
        with path.open("r+b") as fh:
            fh.truncate(sparse)  # a sparse zero tail: no disk space, no reading it either


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_originals(sample_root: Path) -> list[_Original]:
    """The first slice of each real case (JPEG Lossless, Siemens private groups)."""
    files = sorted(sample_root.glob("*/*/*/*.dcm"))
    firsts = {}
    for path in files:
        firsts.setdefault(path.parent, path)
    assert len(firsts) == 3, sorted(firsts)
    return [_original(p) for p in firsts.values()]


@pytest.fixture(scope="module")
def synthetic_originals(
    clean_tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[_Original]:
    """Clean tiny slices with planted identifying values, one per transfer syntax."""
    out = tmp_path_factory.mktemp("fuzz-synthetic")
    sources = [
        (clean_tiny / CASE_REL["covid"] / "IM0001.dcm", ExplicitVRLittleEndian),
        (clean_tiny / CASE_REL["cap"] / "IM0001.dcm", ImplicitVRLittleEndian),
        (clean_tiny / CASE_REL["normal"] / "IM0001.dcm", ExplicitVRBigEndian),
        (clean_tiny / CASE_REL["covid"] / "IM0002.dcm", DeflatedExplicitVRLittleEndian),
    ]
    originals = []
    for i, (src, syntax) in enumerate(sources):
        dst = out / f"planted{i}" / src.name
        dst.parent.mkdir()
        _write_planted(src, dst, syntax, i)
        originals.append(_original(dst))
    return originals


@pytest.fixture(params=["real", "synthetic"])
def header_originals(request: pytest.FixtureRequest) -> list[_Original]:
    return request.getfixturevalue(f"{request.param}_originals")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-work")


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini tree, with three slices replaced by planted copies (one per syntax)."""
    root = synth.write_dataset(
        tmp_path_factory.mktemp("fuzz-mini") / "COVID-CT-MD", scale="tiny", profile=MINI, jobs=1
    )
    for i, (rel, syntax) in enumerate(PLANTED_SLOTS):
        target = root / rel
        _write_planted(target, target, syntax, i)
    return root


@pytest.fixture(scope="module")
def mini_originals(mini: Path) -> list[tuple[str, _Original]]:
    return [(rel, _original(mini / rel)) for rel, _syntax in PLANTED_SLOTS]


class _Secrets(tuple):
    """Identifying values; short in Hypothesis' report of a failing example."""

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(f"<{len(self)} planted identifying values>")


class _Arrays(dict):
    """The clean label arrays by file name; short in Hypothesis' report."""

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(f"<clean label arrays: {', '.join(self)}>")


@pytest.fixture(scope="module")
def mini_secrets(mini_originals: list[tuple[str, _Original]]) -> tuple[str, ...]:
    return _Secrets(sorted({s for _rel, orig in mini_originals for s in orig.secrets}))


@pytest.fixture(scope="module")
def real_tree(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``COVID-CT-MD/Normal subjects/normal001/`` holding the case's first three real files."""
    case = sample_root / "Sample data" / "Normal subjects" / "normal001"
    if not case.is_dir():
        pytest.skip(f"the real sample has no {case}")
    root = tmp_path_factory.mktemp("fuzz-real") / "COVID-CT-MD"
    dest = root / "Normal subjects" / "normal001"
    dest.mkdir(parents=True)
    for path in sorted(case.glob("*.dcm"))[:3]:
        shutil.copyfile(path, dest / path.name)
    return root


@pytest.fixture(scope="module")
def real_tree_originals(real_tree: Path) -> list[tuple[Path, _Original]]:
    case = real_tree / "Normal subjects" / "normal001"
    return [(path, _original(path)) for path in sorted(case.iterdir())]


@pytest.fixture(scope="module")
def label_originals(mini: Path) -> dict[str, np.ndarray]:
    return _Arrays({name: np.load(mini / name) for name in LABEL_FILES})


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Created by unpickling a :class:`_Trap`: its existence means something was unpickled."""
    return tmp_path_factory.mktemp("fuzz-marker") / "UNPICKLED"


# How many data elements one parse (one dataset or sequence item) may walk. A CT header
# holds a few hundred; walking more means the parser is stepping through a damaged file's
# payload or zero tail eight bytes at a time, work that grows with the file's size (a 1 GiB
# tail: minutes). Past the budget the walk is stopped and the example fails at once, instead
# of the run timing out: "bounded work" without timing anything.
MAX_ELEMENTS = 100_000


class _BudgetExceeded(Exception):
    pass


@pytest.fixture(scope="module", autouse=True)
def parse_budget() -> Iterable[list[int]]:
    """Counts the elements of every pydicom parse; records (and stops) an overrun."""
    generator = pydicom.filereader.data_element_generator
    overruns: list[int] = []

    def bounded(*args, **kwargs):
        for n, elem in enumerate(generator(*args, **kwargs), start=1):
            if n > MAX_ELEMENTS:
                overruns.append(n)
                raise _BudgetExceeded(f"more than {MAX_ELEMENTS} data elements in one parse")
            yield elem

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pydicom.filereader, "data_element_generator", bounded)
        yield overruns


def _assert_bounded(overruns: list[int]) -> None:
    count = len(overruns)
    overruns.clear()
    assert count == 0, (
        f"a header parse walked more than {MAX_ELEMENTS} data elements (unbounded work: "
        "the parser steps through the file's tail eight bytes at a time)"
    )


# --------------------------------------------------------------------------- shared asserts


def _whole_run(root: Path, secrets: Iterable[str], profile=MINI) -> Report:
    """Validate ``root``: the run completes, nothing crashes, the report is valid and private."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = validate(root, profile, jobs=1)
        text = report.dumps()  # validates against the report schema
        summary = report.summary()
    assert [r.check_id for r in report.results if r.crashed] == []
    assert report.exit_code in (0, 1)
    json.loads(text)
    text.encode("utf-8")
    summary.encode("utf-8")
    escaped = "\n".join(str(w.message) for w in caught)
    leaks = {
        where: found
        for where, found in (
            ("report JSON", _leaks(text, secrets)),
            ("summary", _leaks(summary, secrets)),
            ("warnings that escaped validate()", _leaks(escaped, secrets)),
        )
        if found
    }
    assert leaks == {}, "identifying values of the original file were printed"
    return report


# --------------------------------------------------------------------------- 1. read_header


@settings(FUZZ, max_examples=_examples(200))
@given(which=st.integers(0, 3), ops=MUTATIONS)
@example(which=0, ops=[])
@example(which=0, ops=[("sparse", 1 << 30)])
@example(which=0, ops=[("truncate", 300), ("sparse", 1 << 30)])
@example(which=0, ops=[("fill", 400, 1024, 0), ("sparse", (1 << 32) + 8)])
@example(which=1, ops=[("plant", 6, "length", b"\xff\xff\xff\xff")])
@example(which=1, ops=[("swallow", 6, 6)])
# The dataset cut right after the file meta (element 3 of a real file, 7 of a synthetic
# one), then a 1 GiB zero tail: every (0000,0000) "element" equals the first, the parse never
# stops and walks the whole gigabyte (about 5 minutes; 4 GiB: about 20).
@example(which=0, ops=[("cut", 3), ("sparse", 1 << 30)])
@example(which=0, ops=[("cut", 7), ("sparse", 1 << 30)])
def test_read_header_survives_damaged_headers(
    header_originals, workdir, capsys, parse_budget, which: int, ops
) -> None:
    orig = header_originals[which % len(header_originals)]
    data, sparse = _mutate(orig, ops)
    path = workdir / orig.name
    _write(path, data, sparse)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row, elements = read_header(str(path))
    finally:
        path.unlink()
    _assert_bounded(parse_budget)
    assert [str(w.message) for w in caught] == []  # read_header lets no library warn
    assert capsys.readouterr().err == ""  # … nor print
    assert row["status"] in {"ok", "unreadable", "not_dicom"}
    if row["status"] != "ok":
        assert isinstance(row["error"], str) and row["error"]
        assert elements == []
    assert row["warnings"] is None or isinstance(row["warnings"], str)
    secrets = (*orig.secrets, orig.name, str(path), str(path.parent))
    for text in (row["error"], row["warnings"]):
        if text is not None:
            text.encode("utf-8")  # printable: no lone surrogates
            assert _leaks(text, secrets) == [], text


# --------------------------------------------------------------------------- 2. whole scan


@settings(FUZZ, max_examples=_examples(40))
@given(slot=st.integers(0, len(PLANTED_SLOTS) - 1), ops=MUTATIONS)
@example(slot=0, ops=[])
@example(slot=0, ops=[("sparse", 1 << 30)])
@example(slot=0, ops=[("cut", 7), ("sparse", 1 << 30)])  # see the read_header test
# SOP Class UID (element 9) given the length of itself and the next two elements: the file
# still parses, the SOP Class UID "value" now holds the SOP Instance UID and the Study Date.
# dicom.sop_class prints that value (message, actual, summary) unredacted, and pydicom's
# UID-length warning (raised by UID(...).name in the check, not captured) quotes it too.
@example(slot=0, ops=[("swallow", 9, 3)])
def test_scan_survives_a_damaged_synthetic_slice(
    mini, mini_originals, mini_secrets, parse_budget, slot: int, ops
) -> None:
    rel, orig = mini_originals[slot]
    target = mini / rel
    data, sparse = _mutate(orig, ops)
    _write(target, data, sparse)
    try:
        _whole_run(mini, mini_secrets)
    finally:
        target.write_bytes(orig.data)
    _assert_bounded(parse_budget)


@settings(FUZZ, max_examples=_examples(40))
@given(slot=st.integers(0, 2), ops=MUTATIONS)
@example(slot=0, ops=[])
# SOP Class UID (element 5) swallowing up to Study Time: the report masks the value (the
# other two files hold the same date and serial number), but the check's pydicom warning
# escapes to the caller quoting Study Time, Study Date and Device Serial Number.
@example(slot=0, ops=[("swallow", 5, 7)])
def test_scan_survives_a_damaged_real_slice(
    real_tree, real_tree_originals, parse_budget, slot: int, ops
) -> None:
    target, orig = real_tree_originals[slot]
    data, sparse = _mutate(orig, ops)
    _write(target, data, sparse)
    try:
        _whole_run(real_tree, orig.secrets, profile="subset")
    finally:
        target.write_bytes(orig.data)
    _assert_bounded(parse_budget)


# --------------------------------------------------------------------------- 3. label arrays


class _Trap:
    """Unpickling it appends to the marker file: the proof that a file was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "a"))


_NUMERIC_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64, 128)),
)
_OTHER_DTYPES = st.one_of(
    hnp.complex_number_dtypes(endianness="?"),
    hnp.byte_string_dtypes(max_len=4),
    hnp.unicode_string_dtypes(endianness="?", max_len=4),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.timedelta64_dtypes(endianness="?"),
    hnp.array_dtypes(max_size=3),  # structured
)
_SMALL_SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
# Shapes near the release's (79, 200) and (79, 200, 5), and a few that are not.
_LABEL_SHAPES = st.sampled_from(
    [(79, 200), (79, 200, 5), (79, 201), (78, 200), (79, 200, 4), (79, 1), (200, 79), (79,)]
)
_DESCRS = st.sampled_from(
    [
        "'<i8'",
        "'>i8'",
        "'|b1'",
        "'<f2'",
        "'>f8'",
        "'<c16'",
        "'|O'",
        "'<U4'",
        "'|S3'",
        "'<M8[D]'",
        "'|V8'",
        "'<i7'",
        "''",
        "'xyz'",
        "[('a', '<i4'), ('b', '|O')]",
        "[('a', '<i4')]",
        "[('', '|V4'), ('a', '<i8')]",
        "[()]",
        "()",
        "('<i4',)",
        "('<i4', (2,))",
        "5",
        "None",
        "{}",
    ]
)
_DIMS = st.sampled_from(
    [0, 1, 2, 5, 79, 200, -1, -5, 2**31, 2**32, 2**63, 2**64, 10**30, -(10**30)]
)
_SHAPE_TEXTS = st.one_of(
    st.lists(_DIMS, max_size=4).map(lambda d: repr(tuple(d))),
    st.sampled_from(["(0, 10**30)", "[79, 200]", "79", "(1.5,)", "None", "('a',)", "(True,)"]),
)


@st.composite
def _handmade_npy(draw: st.DrawFn) -> bytes:
    """A .npy file with a hand-written header: any version, dictionary, padding, data."""
    version = draw(
        st.sampled_from([(1, 0), (2, 0), (3, 0)])
        | st.tuples(st.integers(0, 255), st.integers(0, 255))
    )
    if draw(st.booleans()):
        descr, shape = draw(_DESCRS), draw(_SHAPE_TEXTS)
        fortran = draw(st.sampled_from(["False", "True", "0", "'no'"]))
        keys = ["'descr': " + descr, "'fortran_order': " + fortran, "'shape': " + shape]
        keys = draw(st.permutations(keys))
        if draw(st.integers(0, 4)) == 0:
            keys = keys[: draw(st.integers(0, 2))] + draw(st.sampled_from([[], ["'x': 1"]]))
        text = "{" + ", ".join(keys) + ", }"
    else:
        text = draw(st.text(max_size=80))
    raw = text.encode("utf-8" if version == (3, 0) else "latin-1", "replace")
    prefix = 10 if version[0] < 2 else 12
    if draw(st.booleans()):  # numpy's own padding: a multiple of 64, ending in a newline
        raw += b" " * (63 - (prefix + len(raw)) % 64) + b"\n"
    length = len(raw) if draw(st.integers(0, 5)) else draw(st.integers(0, 2**32 - 1))
    size_fmt = "<H" if version[0] < 2 else "<I"
    try:
        size = struct.pack(size_fmt, length)
    except struct.error:
        size = struct.pack(size_fmt, len(raw))
    size = size[: draw(st.sampled_from([len(size), len(size), 1, 0]))]  # a cut length field
    head = b"\x93NUMPY" + bytes(version) + size + raw
    return head + draw(st.binary(max_size=256) | st.sampled_from([bytes(8), bytes(15800 * 8)]))


@st.composite
def _npy_content(draw: st.DrawFn) -> tuple:
    """A label file's content, as a description rendered by :func:`_render_npy`."""
    kind = draw(
        st.sampled_from(["save", "label", "retyped", "pickle", "handmade", "mangled", "random"])
    )
    if kind == "save":
        dtype = draw(_NUMERIC_DTYPES | _OTHER_DTYPES)
        return ("bytes", _saved(draw(hnp.arrays(dtype, _SMALL_SHAPES))))
    if kind == "label":
        dtype = draw(_NUMERIC_DTYPES)
        array = draw(
            hnp.arrays(dtype, _LABEL_SHAPES, elements=hnp.from_dtype(dtype), fill=st.just(0))
        )
        return ("bytes", _saved(array))
    if kind == "retyped":  # the clean array in another dtype, a few cells changed
        dtype = draw(_NUMERIC_DTYPES)
        edits = draw(st.lists(st.tuples(st.integers(0, 10**6), hnp.from_dtype(dtype)), max_size=5))
        return ("retyped", dtype, edits, draw(st.booleans()))
    if kind == "pickle":
        return ("pickle", draw(st.sampled_from(["objects", "structured", "0d", "raw"])))
    if kind == "handmade":
        return ("bytes", draw(_handmade_npy()))
    if kind == "mangled":  # a clean small array, then cut, extended or overwritten
        dtype = draw(_NUMERIC_DTYPES)
        data = bytearray(_saved(draw(hnp.arrays(dtype, _SMALL_SHAPES))))
        for op, pos, payload in draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["cut", "append", "set"]),
                    st.integers(0, 255),
                    st.binary(min_size=1, max_size=16),
                ),
                min_size=1,
                max_size=3,
            )
        ):
            if op == "cut":
                del data[pos % (len(data) + 1) :]
            elif op == "append":
                data += payload
            else:
                pos %= max(1, len(data))
                data[pos : pos + len(payload)] = payload
        return ("bytes", bytes(data))
    return ("bytes", draw(st.binary(max_size=512).map(lambda b: b"\x93NUMPY" + b) | st.binary()))


def _saved(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # "stored array in format 3.0" (unicode field names)
        warnings.simplefilter("ignore", UserWarning)
        np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _render_npy(desc: tuple, originals: dict[str, np.ndarray], name: str, marker: Path) -> bytes:
    kind = desc[0]
    if kind == "bytes":
        return desc[1]
    if kind == "retyped":
        _kind, dtype, edits, other = desc
        source = originals[LABEL_FILES[(LABEL_FILES.index(name) + other) % len(LABEL_FILES)]]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            array = source.astype(dtype)
        flat = array.reshape(-1)
        for index, value in edits:
            flat[index % flat.size] = value
        return _saved(array)
    trap = _Trap(str(marker))
    variant = desc[1]
    if variant == "objects":
        array = np.empty((79, 200), dtype=object)
        array[:] = 0
        array[16, 3] = trap
    elif variant == "structured":
        array = np.zeros(3, dtype=[("a", "<i8"), ("b", "O")])
        array["b"][1] = trap
    elif variant == "0d":
        array = np.empty((), dtype=object)
        array[()] = trap
    else:  # a pickle behind a header that claims plain integers
        payload = pickle.dumps(np.array([trap], dtype=object), protocol=3)
        head = _saved(np.zeros(len(payload), dtype="|u1"))[:128]
        return head + payload
    return _saved(array, allow_pickle=True)


@settings(FUZZ, max_examples=_examples(300))
@given(content=_npy_content(), name=st.sampled_from(LABEL_FILES))
@example(content=("pickle", "objects"), name=LABEL_FILES[0])
@example(content=("pickle", "raw"), name=LABEL_FILES[0])
# Format 3.0 cut after the magic: _read_header_3_0 unpacks 4 bytes from fewer -> struct.error.
@example(content=("bytes", b"\x93NUMPY\x03\x00"), name=LABEL_FILES[0])
# A descr that is an empty or one-element tuple: numpy's descr_to_dtype indexes descr[0] /
# descr[1] -> IndexError (format 1.0 through numpy's reader, 3.0 through _read_header_3_0).
@example(
    content=("bytes", npy_header((1, 0), "{'descr': (), 'fortran_order': False, 'shape': (), }")),
    name=LABEL_FILES[0],
)
@example(
    content=(
        "bytes",
        npy_header((3, 0), "{'descr': ('<i4',), 'fortran_order': False, 'shape': ()}"),
    ),
    name=LABEL_FILES[0],
)
# A header "{" (unclosed bracket): numpy retries the header through tokenize, which raises
# tokenize.TokenError. Found by this property.
@example(content=("bytes", b"\x93NUMPY\x01\x00\x01\x00{"), name=LABEL_FILES[0])
def test_read_npy_never_raises_nor_unpickles(
    label_originals, workdir, marker, content, name: str
) -> None:
    path = workdir / name
    path.write_bytes(_render_npy(content, label_originals, name, marker))
    try:
        array, error = read_npy(path)
    finally:
        path.unlink()
    assert not marker.exists(), "a label file was unpickled"
    if array is None:
        assert isinstance(error, str) and error
    else:
        assert error is None
        assert isinstance(array, np.ndarray)
        assert not array.dtype.hasobject and array.dtype.kind in "biuf"


@settings(FUZZ, max_examples=_examples(40))
@given(
    contents=st.dictionaries(st.sampled_from(LABEL_FILES), _npy_content(), min_size=1, max_size=2)
)
@example(contents={LABEL_FILES[1]: ("pickle", "objects")})
# read_npy raises (see test_read_npy_never_raises_nor_unpickles), and so does the whole scan
@example(contents={LABEL_FILES[0]: ("bytes", b"\x93NUMPY\x03\x00")})
@example(contents={LABEL_FILES[2]: ("bytes", b"\x93NUMPY\x01\x00\x01\x00{")})
def test_scan_survives_damaged_label_arrays(
    mini, mini_secrets, label_originals, marker, contents
) -> None:
    saved = {name: (mini / name).read_bytes() for name in contents}
    try:
        for name, desc in contents.items():
            (mini / name).write_bytes(_render_npy(desc, label_originals, name, marker))
        _whole_run(mini, mini_secrets)
    finally:
        for name, data in saved.items():
            (mini / name).write_bytes(data)
    assert not marker.exists(), "a label file was unpickled"


# --------------------------------------------------------------------------- 4. Index.csv

_CSV_CHARS = st.one_of(
    st.sampled_from([",", '"', "'", "\x00", "\r", "\n", "\ufeff", " ", "\t", "\\", "\udcff"]),
    st.characters(),
)
_FIELDS = st.one_of(
    st.text(_CSV_CHARS, max_size=12),
    st.sampled_from(["0", "78", "-1", "1e3", "COVID-19", "CAP", "Normal", "./COVID-19/", "P017"]),
    st.sampled_from(["P017", "cap046", "normal061"]).map(lambda s: f'"{s}"'),
    st.sampled_from(["COVID-19 subjects", "../..", "/", "."]),
    st.integers(250, 300).map(lambda n: "x" * n),  # longer than a file name may be
)


_INDEX_EDITS = st.tuples(
    st.sampled_from(["drop", "repeat", "replace", "insert", "field", "cut"]),
    st.integers(0, 200),  # line, modulo the number of lines
    st.integers(0, 200),  # column or position, modulo what there is
    st.binary(max_size=16) | _FIELDS.map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@st.composite
def _index_content(draw: st.DrawFn) -> tuple:
    """Index.csv content, as a description rendered by :func:`_render_index`."""
    kind = draw(st.sampled_from(["bytes", "lines", "edited", "huge", "oversize"]))
    if kind == "bytes":
        return ("bytes", draw(st.binary(max_size=1024)))
    if kind == "oversize":  # larger than the index limit: refused before reading
        return ("oversize", draw(st.integers(1, 64)))
    if kind == "huge":  # one field past the csv module's field size limit
        return ("huge", draw(st.sampled_from([131072, 131073, 1 << 20])), draw(st.integers(0, 80)))
    if kind == "lines":
        header = draw(
            st.sampled_from(
                ["Label Index,Diagnosis,Relative Path,Folder/ID", "\ufeffLabel Index", ""]
            )
            | st.lists(_FIELDS, max_size=5).map(",".join)
        )
        rows = draw(st.lists(st.lists(_FIELDS, max_size=6).map(",".join), max_size=12))
        text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join([header, *rows])
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
        try:
            return ("bytes", text.encode(encoding, "surrogateescape"))
        except UnicodeEncodeError:
            return ("bytes", text.encode(encoding, "replace"))
    # the clean file, a few lines dropped, repeated, replaced or cut, a field or bytes changed
    return ("edited", draw(st.lists(_INDEX_EDITS, min_size=1, max_size=4)))


def _render_index(desc: tuple, original: bytes) -> tuple[bytes, int | None]:
    """The bytes of Index.csv (and a sparse size to extend them to, or None)."""
    kind = desc[0]
    if kind == "bytes":
        return desc[1], None
    if kind == "oversize":
        return original, (16 << 20) + desc[1]
    lines = original.split(b"\r\n")
    if kind == "huge":
        lines.insert(desc[2] % (len(lines) + 1), b"0,COVID-19," + b"x" * desc[1] + b",P017")
        return b"\r\n".join(lines), None
    for op, i, j, payload in desc[1]:
        if not lines:
            break
        i %= len(lines)
        if op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = payload
        elif op == "insert":
            j %= len(lines[i]) + 1
            lines[i] = lines[i][:j] + payload + lines[i][j:]
        elif op == "field":
            fields = lines[i].split(b",")
            fields[j % len(fields)] = payload
            lines[i] = b",".join(fields)
        else:
            lines = lines[: i + 1]
    return b"\r\n".join(lines), None


@pytest.fixture(scope="module")
def index_original(mini: Path) -> bytes:
    return (mini / "Index.csv").read_bytes()


@settings(FUZZ, max_examples=_examples(40))
@given(content=_index_content())
@example(content=("oversize", 1))
# A Relative Path of 256 characters: labels.index.relative_path stats ROOT/<path>/<case>,
# Path.is_dir() raises OSError ENAMETOOLONG, and the check crashes. Found by this property.
@example(content=("edited", [("field", 1, 2, b"x" * 256)]))
def test_scan_survives_a_damaged_index(mini, mini_secrets, index_original, content) -> None:
    data, sparse = _render_index(content, index_original)
    target = mini / "Index.csv"
    _write(target, data, sparse)
    try:
        _whole_run(mini, mini_secrets)
    finally:
        target.write_bytes(index_original)
