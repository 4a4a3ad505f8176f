"""Label checks: every way to break Index.csv or a label array is found, located and described.

``test_defects.py`` proves each synthetic defect fires the right SET of check ids; here each
injection asserts the new findings themselves: check id, severity, case, path, expected and
actual. Most tests rewrite only the label files of one module-scoped copy of the clean tiny
tree (restored in a ``finally``), reload them with ``load_labels`` and run the checks over a
copy of the one scan (``dataclasses.replace``; each run derives its own views). A few go
through ``validate()`` end to end (``--labels`` elsewhere, real DICOM edits for the
demographics, the release's dtypes).

Layout of the clean tiny tree's labels: ``Index.csv`` holds 79 rows (``0,COVID-19,./COVID-19/,
P001`` ... ``78,CAP,./CAP/,cap025``, CRLF, no final newline); the four int64 arrays are
(79, 200) and (79, 200, 5), index 0 cranial; updated-1 revises P001 and P006 only; the
original labels hold 4,957 infected slices. The image cases are P017 (row 16, 118 slices),
cap046 and normal061 (not labelled).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import string
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctmd_validate.checks  # noqa: F401  (registers every check)
from conftest import finding_key, new_findings
from ctmd_validate import (
    Finding,
    Profile,
    Report,
    ScanResult,
    Severity,
    load_profile,
    run_validation,
    scan,
    synth,
    validate,
    validate_scan,
)
from ctmd_validate.checks import REGISTRY
from ctmd_validate.errors import CtmdError
from ctmd_validate.labelfiles import MAX_ARRAY_BYTES, MAX_INDEX_BYTES, load_labels, read_npy
from ctmd_validate.report import validate_report
from ctmd_validate.views import Views

SUBSET = load_profile("subset")
RELEASE = load_profile("release")
TREE = synth.tree_profile("tiny")

INDEX = "Index.csv"
SLICE0, LOBE0 = "Slice-level-labels.npy", "Lobe-level-labels.npy"
SLICE1, LOBE1 = "Slice-level-labels-updated-1.npy", "Lobe-level-labels-updated-1.npy"
ARRAYS = (SLICE0, LOBE0, SLICE1, LOBE1)
LABEL_FILES = (INDEX, *ARRAYS)
LEVEL_OF = {SLICE0: "slice", SLICE1: "slice", LOBE0: "lobe", LOBE1: "lobe"}
VERSION_OF = {SLICE0: "original", LOBE0: "original", SLICE1: "updated-1", LOBE1: "updated-1"}

#: every check that reads the label files (the properties run only these)
LABEL_CHECKS = [*sorted(c for c in REGISTRY if c.startswith("labels.")), "counts.labelled"]

PUBLISHED_INFECTED = 4957
N_ROWS = 79
WIDTH = 200
P017_DIR = "COVID-19 subjects/P017"
P017_ROW = 16
P017_SLICES = 118
ANNOUNCED = ("P001", "P006")
ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Change = bytes | np.ndarray | None


# --------------------------------------------------------------------------- the bench


@dataclasses.dataclass
class Bench:
    """One copy of the clean tiny tree, scanned once; label files rewritten per test."""

    root: Path
    scan: ScanResult
    original: dict[str, bytes]
    base: Report  # every check, clean labels
    base_labels: Report  # the label checks only, clean labels

    @property
    def ids(self) -> list[str]:
        return [line.split(",")[-1] for line in self.index_lines()[1:]]

    def index_lines(self) -> list[str]:
        return self.original[INDEX].decode("ascii").split("\r\n")

    def array(self, name: str) -> np.ndarray:
        """A fresh, writable copy of one clean label array."""
        return np.load(io.BytesIO(self.original[name]), allow_pickle=False).copy()

    def load(self, changes: Mapping[str, Change], profile: Profile) -> Any:
        try:
            for name, content in changes.items():
                path = self.root / name
                if content is None:
                    path.unlink()
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    np.save(path, content, allow_pickle=content.dtype.hasobject)
            return load_labels(self.root, profile)
        finally:
            for name in changes:
                (self.root / name).write_bytes(self.original[name])

    def run(
        self,
        changes: Mapping[str, Change],
        *,
        profile: Profile | None = None,
        only: Iterable[str] | None = None,
        base_scan: ScanResult | None = None,
    ) -> Report:
        scanned = base_scan or self.scan
        profile = profile or scanned.profile
        labels = self.load(changes, profile)
        return validate_scan(
            dataclasses.replace(scanned, profile=profile, labels=labels), only=only
        )

    def new(self, changes: Mapping[str, Change], **kwargs: Any) -> tuple[Report, list[Finding]]:
        """Validate with ``changes`` (every check) and return the findings the clean run lacks."""
        report = self.run(changes, **kwargs)
        sound(report)
        return report, new_findings(report, self.base)

    def new_labels(self, changes: Mapping[str, Change]) -> tuple[Report, list[Finding]]:
        """As :meth:`new`, running only the label checks (for the properties)."""
        report = self.run(changes, only=LABEL_CHECKS)
        sound(report)
        return report, new_findings(report, self.base_labels)


def index_bytes(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode("utf-8")


def sound(report: Report) -> None:
    """Nothing crashed and the report is a valid report."""
    assert [(r.check_id, r.crashed) for r in report.results if r.crashed] == []
    validate_report(report.to_json())


def rows(findings: Iterable[Finding]) -> list[tuple[Any, ...]]:
    """Findings as comparable tuples: id, severity, case, path, expected, actual."""
    return sorted(
        ((f.check_id, f.severity, f.case, f.path, f.expected, f.actual) for f in findings),
        key=repr,
    )


def srt(items: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Expected rows in the order :func:`rows` gives them."""
    return sorted(items, key=repr)


def of(findings: Iterable[Finding], check_id: str) -> list[Finding]:
    return [f for f in findings if f.check_id == check_id]


def npy_header(shape: tuple[int, ...], descr: str = "<i8") -> bytes:
    """A hand-written .npy (format 1.0) header declaring ``shape``; no data."""
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version, allow_pickle=False)
    return out.getvalue()


@pytest.fixture(scope="module")
def bench(clean_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    root = Path(shutil.copytree(clean_tiny, tmp_path_factory.mktemp("labels") / "tree"))
    scanned = scan(root, SUBSET, jobs=1)
    original = {name: (root / name).read_bytes() for name in LABEL_FILES}
    base = validate_scan(scanned)
    base_labels = validate_scan(scanned, only=LABEL_CHECKS)
    assert base.valid and base.count(WARNING) == 0
    return Bench(root, scanned, original, base, base_labels)


@pytest.fixture(scope="module")
def tree_scan(bench: Bench) -> ScanResult:
    """The same tree scanned with the profile that expects exactly it (demographics run)."""
    return scan(bench.root, TREE, jobs=1)


def test_bench_is_the_documented_clean_tree(bench: Bench) -> None:
    ids = bench.ids
    assert len(ids) == N_ROWS and ids[0] == "P001" and ids[-1] == "cap025"
    assert ids[P017_ROW] == "P017"
    assert bench.array(SLICE0).shape == (N_ROWS, WIDTH)
    assert bench.array(LOBE1).shape == (N_ROWS, WIDTH, 5)
    assert int(np.count_nonzero(bench.array(SLICE0))) == PUBLISHED_INFECTED
    # a bench run without changes reproduces the baseline exactly
    _report, new = bench.new({})
    assert new == []


# --------------------------------------------------------------------------- Index.csv


def test_index_label_index_duplicated(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[7] = "5" + lines[7][1:]  # row 6 (P007) claims Label Index 5, like P006
    _report, new = bench.new({INDEX: index_bytes(lines)})
    schema = [
        (
            ERROR,
            {"line": line, "column": "Label Index", "rule": "unique"},
            {"line": line, "column": "Label Index", "value": "5"},
        )
        for line in (7, 8)
    ]
    assert sorted(
        ((f.severity, f.expected, f.actual) for f in of(new, "labels.index.schema")), key=repr
    ) == sorted(schema, key=repr)
    assert {f.path for f in new} == {INDEX}
    (gap,) = of(new, "labels.index.gap")
    assert gap.severity is ERROR and gap.expected == "0..78, each once"
    assert gap.actual == {
        "missing": [6],
        "repeated": [5],
        "not_a_number_lines": [],
        "malformed_lines": [],
        "mapped_by": "position",
        "affected_cases": ["P007"],
        "labels_past_last_slice": {"label_index": [], "position": []},
    }
    assert {f.check_id for f in new} == {"labels.index.schema", "labels.index.gap"}


def test_index_label_index_not_a_number(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[7] = "x" + lines[7][1:]
    report, new = bench.new({INDEX: index_bytes(lines)})
    assert rows(new) == rows(
        [
            Finding(
                "labels.index.schema",
                ERROR,
                "",
                path=INDEX,
                expected={"line": 8, "column": "Label Index", "rule": "a non-negative integer"},
                actual={"line": 8, "column": "Label Index", "value": "x"},
            ),
            Finding(
                "labels.index.gap",
                ERROR,
                "",
                path=INDEX,
                expected="0..78, each once",
                actual={
                    "missing": [6],
                    "repeated": [],
                    "not_a_number_lines": [8],
                    "malformed_lines": [],
                    "mapped_by": "position",
                    "affected_cases": ["P007"],
                    "labels_past_last_slice": {"label_index": [], "position": []},
                },
            ),
        ]
    )
    (gap,) = of(new, "labels.index.gap")
    assert "not a number on lines 8" in gap.message
    assert report.to_json()["stats"]["labels"]["row_mapping"] == "position"


def test_index_numeric_duplicate_spelled_differently_is_found(bench: Bench) -> None:
    """ "05" and "5" are different text but the same row: the gap check sees the repeat."""
    lines = bench.index_lines()
    lines[7] = "05" + lines[7][1:]
    _report, new = bench.new({INDEX: index_bytes(lines)})
    (gap,) = of(new, "labels.index.gap")
    assert (gap.actual["missing"], gap.actual["repeated"]) == ([6], [5])
    assert gap.actual["affected_cases"] == ["P007"]


@pytest.mark.parametrize(
    "variant",
    ["utf8-bom", "lf-and-final-newline", "crlf-final-newline", "header-padding", "blank-lines"],
)
def test_index_harmless_variants_parse_cleanly(bench: Bench, variant: str) -> None:
    raw = bench.original[INDEX]
    lines = bench.index_lines()
    if variant == "utf8-bom":
        data = b"\xef\xbb\xbf" + raw
    elif variant == "lf-and-final-newline":
        data = raw.replace(b"\r\n", b"\n") + b"\n"
    elif variant == "crlf-final-newline":
        data = raw + b"\r\n"
    elif variant == "header-padding":
        lines[0] = " Label Index , Diagnosis,Relative Path ,Folder/ID "
        data = index_bytes(lines)
    else:
        data = index_bytes([*lines[:30], "", "  ", *lines[30:], ""])
    report, new = bench.new({INDEX: data})
    assert new == []
    labels = report.to_json()["stats"]["labels"]
    assert (labels["index_rows"], labels["row_mapping"]) == (N_ROWS, "label_index")


def test_index_line_of_empty_fields_is_a_data_line(bench: Bench) -> None:
    """``,,,`` is not a blank line: pandas reads it as a row of NaN and shifts every row after."""
    lines = bench.index_lines()
    report, new = bench.new({INDEX: index_bytes([*lines[:31], ",,,", *lines[31:]])})
    schema = [f for f in new if f.check_id == "labels.index.schema"]
    assert schema and {f.actual["line"] for f in schema} == {32}
    assert {f.actual["column"] for f in schema} >= {"Label Index", "Diagnosis", "Folder/ID"}
    assert report.to_json()["stats"]["labels"]["index_rows"] == N_ROWS + 1
    assert [r.check_id for r in report.results if r.crashed] == []


def test_index_header_renamed(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[0] = lines[0].replace("Folder/ID", "Folder ID")
    _report, new = bench.new({INDEX: index_bytes(lines)})
    columns = ["Label Index", "Diagnosis", "Relative Path", "Folder/ID"]
    assert rows(new) == [
        (
            "labels.index.schema",
            ERROR,
            None,
            INDEX,
            columns,
            ["Label Index", "Diagnosis", "Relative Path", "Folder ID"],
        )
    ]


def index_rows_shape_findings(index_rows: int) -> list[Finding]:
    """The labels.shape finding of every clean array once Index.csv holds ``index_rows`` rows."""

    def shape(name: str, n: int) -> list[int]:
        return [n, WIDTH] + ([5] if LEVEL_OF[name] == "lobe" else [])

    return [
        Finding(
            "labels.shape",
            ERROR,
            "",
            path=name,
            expected=shape(name, index_rows),
            actual=shape(name, N_ROWS),
        )
        for name in ARRAYS
    ]


def test_index_with_only_a_header(bench: Bench) -> None:
    report, new = bench.new({INDEX: index_bytes(bench.index_lines()[:1])})
    assert rows(of(new, "counts.labelled")) == [
        ("counts.labelled", ERROR, None, INDEX, 25, 0),
        ("counts.labelled", ERROR, None, INDEX, 54, 0),
    ]
    assert rows(of(new, "labels.shape")) == rows(index_rows_shape_findings(0))
    assert all("79 rows, Index.csv has 0" in f.message for f in of(new, "labels.shape"))
    # with no row to name them, the update's rows cannot be matched to the announced cases
    diffs = of(new, "labels.version_diff")
    assert sorted((f.case, f.path, f.message.split(": ")[1]) for f in diffs) == sorted(
        (None, path, f"array row {row} differs on 18 slices (not announced)")
        for path in (SLICE1, LOBE1)
        for row in (0, 5)
    )
    assert {f.check_id for f in new} == {"counts.labelled", "labels.shape", "labels.version_diff"}
    assert report.to_json()["stats"]["labels"]["index_rows"] == 0


@pytest.mark.parametrize(
    ("variant", "error"),
    [
        ("empty", "empty: no header line"),
        ("invalid-utf8", "cannot be read: UnicodeDecodeError: "),
        ("latin1", "cannot be read: UnicodeDecodeError: "),
        ("utf16", "cannot be read: UnicodeDecodeError: "),
    ],
)
def test_index_unreadable(bench: Bench, variant: str, error: str) -> None:
    raw = bench.original[INDEX]
    data = {
        "empty": b"",
        "invalid-utf8": raw[:100] + b"\xff" + raw[100:],
        "latin1": raw.replace(b"P017", "P\xd817".encode("latin-1")),
        "utf16": raw.decode("ascii").encode("utf-16"),
    }[variant]
    report, new = bench.new({INDEX: data})
    (unreadable,) = of(new, "labels.file.unreadable")
    assert (unreadable.severity, unreadable.case, unreadable.path) == (ERROR, None, INDEX)
    assert unreadable.expected == "a readable file"
    assert unreadable.actual.startswith(error)
    assert unreadable.message == f"{INDEX}: {unreadable.actual}"
    # nothing else can be read from it: only the update's rows lose their case names
    assert {f.check_id for f in new} == {"labels.file.unreadable", "labels.version_diff"}
    assert report.to_json()["stats"]["labels"]["index_rows"] is None


def test_index_too_large_is_refused_unread(bench: Bench) -> None:
    path = bench.root / INDEX
    try:
        with path.open("r+b") as fh:
            fh.truncate(MAX_INDEX_BYTES + 1)  # sparse: nothing is written
        labels = load_labels(bench.root, SUBSET)
    finally:
        path.write_bytes(bench.original[INDEX])
    assert labels.index.error == f"{MAX_INDEX_BYTES + 1} bytes: too large for an index"
    assert labels.index.rows is None


def test_index_nul_byte_is_located_not_fatal(bench: Bench) -> None:
    raw = bench.original[INDEX]
    at = raw.index(b"P002") + 1
    _report, new = bench.new({INDEX: raw[:at] + b"\x00" + raw[at:]})
    assert rows(new) == [
        (
            "labels.index.schema",
            ERROR,
            None,
            INDEX,
            {"line": 3, "column": "Folder/ID", "rule": "Folder/ID matches its Diagnosis's pattern"},
            {"line": 3, "column": "Folder/ID", "value": "P\x00002"},
        )
    ]


def test_index_ragged_line(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[22] += ",extra"  # P022 (row 21, line 23) gets a fifth field
    report, new = bench.new({INDEX: index_bytes(lines)})
    # the line is named; it keeps its array row, so no other case moves
    assert rows(new) == srt(
        [
            (
                "labels.index.schema",
                ERROR,
                None,
                INDEX,
                {"line": 23, "fields": 4},
                {"line": 23, "fields": 5},
            ),
            (
                "labels.index.gap",
                ERROR,
                None,
                INDEX,
                "0..78, each once",
                {
                    "missing": [21],
                    "repeated": [],
                    "not_a_number_lines": [],
                    "malformed_lines": [23],
                    "mapped_by": "position",
                    "affected_cases": [],
                    "labels_past_last_slice": {"label_index": [], "position": []},
                },
            ),
            ("counts.labelled", ERROR, None, INDEX, 54, 53),
            ("labels.index.case_missing", INFO, None, None, 53, 1),
        ]
    )
    assert report.to_json()["stats"]["labels"]["index_rows"] == N_ROWS


def test_index_duplicate_case_id(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[22] = lines[22].replace("P022", "P021")
    _report, new = bench.new({INDEX: index_bytes(lines)})
    assert rows(new) == [
        (
            "labels.index.schema",
            ERROR,
            None,
            INDEX,
            {"line": line, "column": "Folder/ID", "rule": "unique"},
            {"line": line, "column": "Folder/ID", "value": "P021"},
        )
        for line in (22, 23)
    ]


def test_index_out_of_range(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[-1] = "79" + lines[-1][2:]  # cap025, like the real Index.csv
    _report, new = bench.new({INDEX: index_bytes(lines)})
    (oor,) = of(new, "labels.index.out_of_range")
    assert (oor.severity, oor.case, oor.path, oor.expected, oor.actual) == (
        ERROR,
        "cap025",
        INDEX,
        "< 79",
        79,
    )
    assert "(line 80)" in oor.message
    (gap,) = of(new, "labels.index.gap")
    assert (gap.actual["missing"], gap.actual["affected_cases"]) == ([78], ["cap025"])
    assert {f.check_id for f in new} == {"labels.index.out_of_range", "labels.index.gap"}


@pytest.mark.parametrize(
    ("path", "what"), [("./CAP/", "names class CAP"), ("./nowhere/", "names no class folder")]
)
def test_index_relative_path(bench: Bench, path: str, what: str) -> None:
    lines = bench.index_lines()
    lines[20] = lines[20].replace("./COVID-19/", path)  # P020
    _report, new = bench.new({INDEX: index_bytes(lines)})
    assert rows(new) == [("labels.index.relative_path", ERROR, "P020", INDEX, "./COVID-19/", path)]
    assert new[0].message.endswith(f"'{path}' {what}")
    assert "line 21" in new[0].message


def test_index_diagnosis_mismatch(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[P017_ROW + 1] = "16,CAP,./CAP/,P017"
    _report, new = bench.new({INDEX: index_bytes(lines)})
    assert rows(new) == rows(
        [
            Finding(
                "labels.index.diagnosis_mismatch",
                ERROR,
                "",
                case="P017",
                path=P017_DIR,
                expected="CAP",
                actual="COVID-19",
            ),
            Finding(
                "labels.index.schema",
                ERROR,
                "",
                path=INDEX,
                expected={
                    "line": 18,
                    "column": "Folder/ID",
                    "rule": "Folder/ID matches its Diagnosis's pattern",
                },
                actual={"line": 18, "column": "Folder/ID", "value": "P017"},
            ),
            Finding("counts.labelled", ERROR, "", path=INDEX, expected=54, actual=53),
            Finding("counts.labelled", ERROR, "", path=INDEX, expected=25, actual=26),
            Finding("labels.index.case_missing", INFO, "", expected=53, actual=0),
            Finding("labels.index.case_missing", INFO, "", expected=26, actual=1),
        ]
    )
    (mismatch,) = of(new, "labels.index.diagnosis_mismatch")
    assert "line 18" in mismatch.message


def test_index_case_missing_subset_counts_per_class(bench: Bench) -> None:
    lines = bench.index_lines()
    lines[P017_ROW + 1] = lines[P017_ROW + 1].replace("P017", "P099")  # no such folder
    _report, new = bench.new({INDEX: index_bytes(lines)})
    assert rows(new) == [("labels.index.case_missing", INFO, None, None, 54, 0)]
    assert new[0].message == "0 of 54 labelled COVID-19 cases have image folders here"


def test_index_case_missing_release_names_every_case(bench: Bench) -> None:
    report = bench.run({}, profile=RELEASE, only=["labels.index.case_missing"])
    absent = [c for c in bench.ids if c != "P017"]
    assert rows(report.findings) == sorted(
        (("labels.index.case_missing", ERROR, c, None, c, None) for c in absent), key=repr
    )


def test_counts_labelled_row_deleted(bench: Bench) -> None:
    lines = bench.index_lines()[:-1]  # cap025: Label Index still runs 0..77, no gap
    _report, new = bench.new({INDEX: index_bytes(lines)})
    assert rows(of(new, "counts.labelled")) == [("counts.labelled", ERROR, None, INDEX, 25, 24)]
    assert of(new, "counts.labelled")[0].message == (
        "Index.csv lists 24 labelled CAP cases, the release 25"
    )
    assert rows(of(new, "labels.shape")) == rows(index_rows_shape_findings(78))
    assert rows(of(new, "labels.index.case_missing")) == [
        ("labels.index.case_missing", INFO, None, None, 24, 0)
    ]
    assert {f.check_id for f in new} == {
        "counts.labelled",
        "labels.shape",
        "labels.index.case_missing",
    }


# --------------------------------------------------------------------------- missing files


def test_index_missing(bench: Bench) -> None:
    report, new = bench.new({INDEX: None})
    assert rows(of(new, "labels.file.missing")) == [
        ("labels.file.missing", INFO, None, None, INDEX, None)
    ]
    assert of(new, "labels.file.missing")[0].message == "label file Index.csv not found in '.'"
    assert {f.check_id for f in new} == {"labels.file.missing", "labels.version_diff"}
    # the arrays are still judged: their totals are reported
    versions = report.to_json()["stats"]["labels"]["versions"]
    assert versions["original"]["infected_slices"] == PUBLISHED_INFECTED


@pytest.mark.parametrize("name", ARRAYS)
def test_array_missing(bench: Bench, name: str) -> None:
    _report, new = bench.new({name: None})
    assert rows(new) == [("labels.file.missing", INFO, None, None, name, None)]


def test_missing_label_files_are_errors_for_the_release(bench: Bench) -> None:
    report = bench.run({INDEX: None, LOBE1: None}, profile=RELEASE, only=["labels.file.missing"])
    assert rows(report.findings) == [
        ("labels.file.missing", ERROR, None, None, INDEX, None),
        ("labels.file.missing", ERROR, None, None, LOBE1, None),
    ]


# --------------------------------------------------------------------------- .npy files


class _Trap:
    """Unpickling this runs code: it creates ``sentinel``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.sentinel)!r}, 'w').close()",))


def _unreadable_cases(bench: Bench, tmp: Path) -> dict[str, tuple[bytes, str]]:
    clean = bench.original[SLICE0]
    objects = np.empty(2, dtype=object)
    objects[:] = [_Trap(tmp / "pickle-ran"), "x"]
    pickled = io.BytesIO()
    np.save(pickled, objects, allow_pickle=True)
    npz = io.BytesIO()
    np.savez(npz, labels=bench.array(SLICE0))
    data = N_ROWS * WIDTH * 8
    return {
        "pickled": (
            pickled.getvalue(),
            "holds Python objects (dtype object): loading it would unpickle code; not loaded",
        ),
        "truncated": (clean[:-10], f"truncated: {data - 10} of {data} data bytes"),
        "header-only": (npy_header((N_ROWS, WIDTH)), f"truncated: 0 of {data} data bytes"),
        "trailing": (clean + b"\x00" * 7, "7 unexpected bytes after the array data"),
        "npz": (npz.getvalue(), "not a NumPy .npy file (bad magic string)"),
        "csv-text": (b"0,1,0\n1,1,0\n", "not a NumPy .npy file (bad magic string)"),
        "empty": (b"", "not a NumPy .npy file (bad magic string)"),
        "huge-shape": (
            npy_header((10**6, 10**6)) + b"\x00" * 16,
            "header declares 8000000000000 bytes of data, more than a label array",
        ),
        "bad-header": (
            clean.replace(b"'descr'", b"'dexcr'", 1),
            "cannot be read: ValueError: ",
        ),
    }


UNREADABLE = [
    "pickled",
    "truncated",
    "header-only",
    "trailing",
    "npz",
    "csv-text",
    "empty",
    "huge-shape",
    "bad-header",
]


@pytest.mark.parametrize("variant", UNREADABLE)
def test_npy_unreadable(bench: Bench, tmp_path: Path, variant: str) -> None:
    data, error = _unreadable_cases(bench, tmp_path)[variant]
    report, new = bench.new({SLICE0: data})
    assert [(f.check_id, f.severity, f.case, f.path, f.expected) for f in new] == [
        ("labels.file.unreadable", ERROR, None, SLICE0, "a readable file")
    ]
    assert new[0].actual.startswith(error)
    assert new[0].message == f"{SLICE0}: {new[0].actual}"
    assert not (tmp_path / "pickle-ran").exists()
    # the unreadable version's totals are unknown, not zero
    original = report.to_json()["stats"]["labels"]["versions"]["original"]
    assert original["infected_slices"] is None and original["slice_shape"] is None


def test_npy_huge_declared_shape_is_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    # just over the limit and far over it: neither is read, nothing is allocated
    for shape in ((MAX_ARRAY_BYTES // 8 + 1,), (10**6, 10**6, 5)):
        path.write_bytes(npy_header(shape) + b"\x00" * 64)
        tracemalloc.start()
        try:
            array, error = read_npy(path)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert array is None
        assert error is not None and error.startswith("header declares ")
        assert peak < 1 << 20, f"read_npy allocated {peak} bytes for a refused header"


@pytest.mark.parametrize(
    ("shape", "data"),
    [((10**30,), 0), ((2**32, 2**32), 8), ((2**62 + 1, 4), 0), ((-1, 4), 0)],
    ids=["dim-beyond-int64", "product-wraps-to-0", "product-wraps-to-32", "negative-dim"],
)
def test_npy_absurd_declared_shape_is_refused_as_such(
    tmp_path: Path, shape: tuple[int, ...], data: int
) -> None:
    path = tmp_path / "absurd.npy"
    path.write_bytes(npy_header(shape) + b"\x00" * data)
    array, error = read_npy(path)
    assert array is None
    assert error is not None
    assert "unexpected bytes" not in error and "truncated" not in error, error


def test_validate_survives_a_dimension_beyond_int64(bench: Bench) -> None:
    _report, new = bench.new({SLICE0: npy_header((10**30,))})
    assert [f.check_id for f in new] == ["labels.file.unreadable"]


def test_npy_format_3_loads(bench: Bench) -> None:
    _report, new = bench.new({SLICE0: npy_bytes(bench.array(SLICE0), (3, 0))})
    assert new == []


def test_npy_format_2_and_fortran_order_load(bench: Bench) -> None:
    changes: dict[str, Change] = {
        LOBE0: npy_bytes(bench.array(LOBE0), (2, 0)),
        LOBE1: np.asfortranarray(bench.array(LOBE1)),
    }
    _report, new = bench.new(changes)
    assert new == []


def test_npy_0d_array(bench: Bench) -> None:
    _report, new = bench.new({SLICE0: np.array(3)})
    assert rows(new) == [
        ("labels.shape", ERROR, None, SLICE0, [N_ROWS, WIDTH], []),
        ("labels.total", ERROR, None, SLICE0, PUBLISHED_INFECTED, 1),
    ]
    assert of(new, "labels.shape")[0].message.endswith("0-D, expected 2-D")


def test_npy_1d_array(bench: Bench) -> None:
    row = bench.array(SLICE0)[P017_ROW].copy()
    _report, new = bench.new({SLICE0: row})
    assert rows(new) == [
        ("labels.shape", ERROR, None, SLICE0, [N_ROWS, WIDTH], [WIDTH]),
        ("labels.total", ERROR, None, SLICE0, PUBLISHED_INFECTED, int(row.sum())),
    ]
    assert of(new, "labels.shape")[0].message == f"{SLICE0}: shape [200]: 1-D, expected 2-D"


def test_npy_lobe_array_2d(bench: Bench) -> None:
    _report, new = bench.new({LOBE1: bench.array(SLICE1)})
    assert rows(new) == [("labels.shape", ERROR, None, LOBE1, [N_ROWS, WIDTH, 5], [N_ROWS, WIDTH])]


def test_labels_shape_narrower_file(bench: Bench) -> None:
    _report, new = bench.new({SLICE1: bench.array(SLICE1)[:, :-1].copy()})
    assert rows(new) == [
        ("labels.shape", ERROR, None, SLICE1, [N_ROWS, WIDTH], [N_ROWS, WIDTH - 1])
    ]
    assert new[0].message.endswith("199 slices wide, the other files 200")


def test_labels_shape_lobe_count(bench: Bench) -> None:
    _report, new = bench.new({LOBE1: bench.array(LOBE1)[:, :, :4].copy()})
    assert rows(of(new, "labels.shape")) == [
        ("labels.shape", ERROR, None, LOBE1, [N_ROWS, WIDTH, 5], [N_ROWS, WIDTH, 4])
    ]
    assert of(new, "labels.shape")[0].message.endswith("4 lobes, expected 5")
    # a dropped lobe leaves slices whose only infected lobe it was: updated-1 only
    assert {f.actual["version"] for f in of(new, "labels.lobe_slice.mismatch")} == {"updated-1"}
    assert {f.check_id for f in new} == {"labels.shape", "labels.lobe_slice.mismatch"}


# --------------------------------------------------------------------------- dtype and values


def test_labels_float_with_half_and_nan(bench: Bench) -> None:
    array = bench.array(SLICE0).astype(np.float64)
    assert array[P017_ROW, 3] == 0 and array[20, 7] == 0
    array[P017_ROW, 3] = 0.5
    array[20, 7] = np.nan
    _report, new = bench.new({SLICE0: array})
    (values,) = of(new, "labels.values")
    assert (values.severity, values.path, values.expected) == (ERROR, SLICE0, [0, 1])
    assert values.actual == {
        "cells": 2,
        "values": ["0.5", "nan"],
        "first": [{"case": "P017", "slice": 3}, {"case": "P021", "slice": 7}],
    }
    assert "(values 0.5, nan; first at P017 slice 3)" in values.message
    assert rows(of(new, "labels.dtype")) == srt(
        [
            ("labels.dtype", WARNING, None, SLICE0, "integer or bool", "float64"),
            (
                "labels.dtype",
                WARNING,
                None,
                SLICE1,
                "one dtype across versions",
                {"original": "float64", "updated-1": "int64"},
            ),
        ]
    )
    # 0.5 and NaN are both "not 0", so both cells disagree with their lobes and count
    assert rows(of(new, "labels.lobe_slice.mismatch")) == [
        (
            "labels.lobe_slice.mismatch",
            ERROR,
            "P017",
            SLICE0,
            "slice label == any lobe label",
            {"version": "original", "row": P017_ROW, "slices": [3]},
        ),
        (
            "labels.lobe_slice.mismatch",
            ERROR,
            "P021",
            SLICE0,
            "slice label == any lobe label",
            {"version": "original", "row": 20, "slices": [7]},
        ),
    ]
    assert [f.actual for f in of(new, "labels.total")] == [PUBLISHED_INFECTED + 2]
    assert {f.check_id for f in new} == {
        "labels.values",
        "labels.dtype",
        "labels.lobe_slice.mismatch",
        "labels.total",
        "labels.version_diff",
    }


def test_labels_int_values_in_lobe_array(bench: Bench) -> None:
    lobes = bench.array(LOBE1)
    lobes[3, 5, 1] = 2
    lobes[40, 7, 4] = -1
    lobes[3, 2, 0] = 2
    _report, new = bench.new({LOBE1: lobes})
    (values,) = of(new, "labels.values")
    assert (values.severity, values.case, values.path) == (ERROR, None, LOBE1)
    assert values.actual == {
        "cells": 3,
        "values": ["-1", "2"],
        "first": [
            {"case": "P004", "slice": 2},
            {"case": "P004", "slice": 5},
            {"case": "P041", "slice": 7},
        ],
    }
    assert of(new, "labels.dtype") == []


def test_labels_values_name_array_rows_without_an_index(bench: Bench) -> None:
    array = bench.array(SLICE1)
    array[70, 9] = 7
    _report, new = bench.new({INDEX: None, SLICE1: array})
    (values,) = of(new, "labels.values")
    assert values.actual["first"] == [{"case": "row 70", "slice": 9}]


def test_labels_bool_arrays_are_not_a_dtype_problem(bench: Bench) -> None:
    _report, new = bench.new({name: bench.array(name).astype(bool) for name in ARRAYS})
    assert new == []


def test_labels_dtype_differs_between_versions(bench: Bench) -> None:
    changes: dict[str, Change] = {
        SLICE0: bench.array(SLICE0).astype(np.uint8),
        LOBE0: bench.array(LOBE0).astype(np.uint8),
        SLICE1: bench.array(SLICE1).astype(np.int8),
        LOBE1: bench.array(LOBE1).astype(np.int8),
    }
    _report, new = bench.new(changes)
    assert rows(new) == [
        (
            "labels.dtype",
            WARNING,
            None,
            path,
            "one dtype across versions",
            {"original": "uint8", "updated-1": "int8"},
        )
        for path in (LOBE1, SLICE1)
    ]


def test_labels_dtype_release_quirks(make_tree: Callable[..., Path], clean_tiny_report) -> None:
    """The release's dtypes (float64 lobes, int32 updated-1 slices): three warnings, no error."""
    report = validate(make_tree(["labels-dtype"]), "subset", jobs=1)
    sound(report)
    new = new_findings(report, clean_tiny_report)
    assert rows(new) == rows(RELEASE_DTYPE_FINDINGS)
    assert report.valid


RELEASE_DTYPE_FINDINGS = [
    Finding("labels.dtype", WARNING, "", path=LOBE0, expected="integer or bool", actual="float64"),
    Finding("labels.dtype", WARNING, "", path=LOBE1, expected="integer or bool", actual="float64"),
    Finding(
        "labels.dtype",
        WARNING,
        "",
        path=SLICE1,
        expected="one dtype across versions",
        actual={"original": "int64", "updated-1": "int32"},
    ),
]


def test_labels_dtype_quirks_match_the_real_sample(
    bench: Bench, make_tree: Callable[..., Path], sample_root: Path
) -> None:
    """The synthetic ``labels-dtype`` defect gives exactly the real sample's dtype warnings."""

    def dtype_findings(root: Path) -> list[tuple[Any, ...]]:
        scanned = dataclasses.replace(bench.scan, root=root, labels=load_labels(root, SUBSET))
        report = validate_scan(scanned, only=["labels.dtype"])
        return sorted(
            (f.severity, f.message, Path(f.path or "").name, repr(f.expected), repr(f.actual))
            for f in report.findings
        )

    real = dtype_findings(sample_root)
    assert len(real) == 3
    assert dtype_findings(make_tree(["labels-dtype"])) == real


# --------------------------------------------------------------------------- slice vs lobe


def test_lobe_slice_mismatch_both_versions(bench: Bench) -> None:
    row = 19  # P020
    first = int(np.flatnonzero(bench.array(SLICE0)[row])[0])
    changes: dict[str, Change] = {}
    for name in (LOBE0, LOBE1):
        lobes = bench.array(name)
        lobes[row, first, :] = 0
        changes[name] = lobes
    _report, new = bench.new(changes)
    assert rows(new) == rows(
        Finding(
            "labels.lobe_slice.mismatch",
            ERROR,
            "",
            case="P020",
            path=path,
            expected="slice label == any lobe label",
            actual={"version": version, "row": row, "slices": [first]},
        )
        for version, path in (("original", SLICE0), ("updated-1", SLICE1))
    )


# --------------------------------------------------------------------------- capacity, padding


def test_labels_capacity(bench: Bench) -> None:
    width = 185
    changes: dict[str, Change] = {n: bench.array(n)[:, :width].copy() for n in ARRAYS}
    _report, new = bench.new(changes)
    longer = {
        c: SUBSET.manifest[c].n_slices for c in bench.ids if SUBSET.manifest[c].n_slices > width
    }
    assert longer  # cap004 (181) fits, cap009 (190), cap012 (187) and cap023 (186) do not
    assert rows(new) == sorted(
        (("labels.capacity", ERROR, c, None, f"<= {width}", n) for c, n in longer.items()),
        key=repr,
    )
    assert all("(release manifest)" in f.message for f in new)


def test_labels_capacity_counts_slices_from_the_images(bench: Bench) -> None:
    width = P017_SLICES - 1
    changes: dict[str, Change] = {n: bench.array(n)[:, :width].copy() for n in ARRAYS}
    _report, new = bench.new(changes)
    (p017,) = [f for f in of(new, "labels.capacity") if f.case == "P017"]
    assert (p017.path, p017.expected, p017.actual) == (P017_DIR, f"<= {width}", P017_SLICES)
    assert p017.message == f"P017 has 118 slices (images), the labels cover {width}"
    longer = [c for c in bench.ids if SUBSET.manifest[c].n_slices > width]
    assert sorted(f.case for f in of(new, "labels.capacity")) == sorted(longer)


def _move_first_infected(bench: Bench, row: int, to: int) -> dict[str, Change]:
    first = int(np.flatnonzero(bench.array(SLICE0)[row])[0])
    changes: dict[str, Change] = {}
    for name in ARRAYS:
        array = bench.array(name)
        array[row, to] = array[row, first]
        array[row, first] = 0
        changes[name] = array
    return changes


@pytest.mark.parametrize(
    ("case", "row", "n", "path", "source"),
    [
        ("P017", P017_ROW, P017_SLICES, P017_DIR, "images"),
        ("P020", 19, 128, None, "release manifest"),
    ],
)
def test_labels_padding(
    bench: Bench, case: str, row: int, n: int, path: str | None, source: str
) -> None:
    to = n + 2
    _report, new = bench.new(_move_first_infected(bench, row, to))
    assert rows(new) == [
        (
            "labels.padding",
            ERROR,
            case,
            path,
            f"no positive label at slice >= {n}",
            {
                f"{VERSION_OF[name]}/{LEVEL_OF[name]} ({name})": [to]
                for name in (SLICE0, LOBE0, SLICE1, LOBE1)
            },
        )
    ]
    assert new[0].message == (
        f"{case} has {n} slices ({source}) but labels are positive from slice {to} on in 4 files"
    )


# --------------------------------------------------------------------------- version diff


def test_version_diff_unannounced_case_is_a_warning(bench: Bench) -> None:
    row = 19  # P020
    free = int(np.flatnonzero(bench.array(SLICE0)[row] == 0)[0])
    slices, lobes = bench.array(SLICE1), bench.array(LOBE1)
    slices[row, free] = 1
    lobes[row, free, 2] = 1
    _report, new = bench.new({SLICE1: slices, LOBE1: lobes})
    assert rows(new) == [
        (
            "labels.version_diff",
            WARNING,
            "P020",
            LOBE1,
            "as original",
            {
                "slices": [free],
                "lobes": ["RLL"],
            },
        ),
        ("labels.version_diff", WARNING, "P020", SLICE1, "as original", {"slices": [free]}),
    ]
    assert all(f.message.endswith("(not announced)") for f in new)


def test_version_diff_announced_case_stays_info(bench: Bench) -> None:
    row = 5  # P006, announced
    s0, s1 = bench.array(SLICE0), bench.array(SLICE1)
    assert s0[row, 0] == s1[row, 0] == 0
    slices, lobes = s1.copy(), bench.array(LOBE1)
    slices[row, 0] = 1
    lobes[row, 0, 1] = 1
    _report, new = bench.new({SLICE1: slices, LOBE1: lobes})
    expected = [int(s) for s in np.flatnonzero(s0[row] != slices[row])]
    assert expected[0] == 0 and len(expected) == 19
    assert rows(new) == [
        (
            "labels.version_diff",
            INFO,
            "P006",
            LOBE1,
            "announced change",
            {
                "slices": expected,
                "lobes": ["LUL", "RLL"],
            },
        ),
        ("labels.version_diff", INFO, "P006", SLICE1, "announced change", {"slices": expected}),
    ]


def test_version_diff_baseline_names_the_announced_cases(bench: Bench) -> None:
    diffs = of(bench.base.findings, "labels.version_diff")
    s0, s1 = bench.array(SLICE0), bench.array(SLICE1)
    assert sorted((f.case, f.path, f.severity) for f in diffs) == sorted(
        (c, p, INFO) for c in ANNOUNCED for p in (SLICE1, LOBE1)
    )
    for f in diffs:
        row = bench.ids.index(f.case)
        assert f.actual["slices"] == [int(s) for s in np.flatnonzero(s0[row] != s1[row])]


# --------------------------------------------------------------------------- orientation


def _reverse(bench: Bench, keep: set[str]) -> dict[str, Change]:
    """Every labelled case's labels reversed over its slices, except the cases in ``keep``."""
    changes: dict[str, Change] = {}
    for name in ARRAYS:
        array = bench.array(name)
        for row, case in enumerate(bench.ids):
            if case not in keep:
                n = SUBSET.manifest[case].n_slices
                array[row, :n] = array[row, :n][::-1].copy()
        changes[name] = array
    return changes


def test_orientation_one_case_reversed(bench: Bench) -> None:
    _report, new = bench.new(_reverse(bench, set(bench.ids) - {"P017"}))
    assert [(f.check_id, f.severity, f.case, f.path, f.expected) for f in new] == [
        ("labels.orientation", WARNING, "P017", P017_DIR, "index 0 cranial")
    ]
    ev = new[0].actual
    assert set(ev) == {"upper_mean_index", "lower_mean_index"}
    assert ev["upper_mean_index"] > ev["lower_mean_index"]
    assert "index 0 looks caudal" in new[0].message


def test_orientation_majority_reversed_flips_the_inferred_order(bench: Bench) -> None:
    keep = {*bench.ids[:10], "P017"}
    report, new = bench.new(_reverse(bench, keep))
    order = report.to_json()["inferred"]["label_slice_order"]
    assert (order["value"], order["index_0"]) == ("slice_location_ascending", "caudal")
    flagged = {f.case: f for f in of(new, "labels.orientation")}
    # the unreversed cases with both lobe groups, and only they, are flagged
    assert set(flagged) <= keep and "P017" in flagged
    assert set(order["cases_disagreeing"]) == set(flagged)
    assert order["cases_agreeing"] > len(flagged)
    for case, f in flagged.items():
        assert f.severity is WARNING and f.expected == "index 0 caudal"
        assert f.actual["upper_mean_index"] < f.actual["lower_mean_index"]
        assert f.path == (P017_DIR if case == "P017" else None)
    assert {f.check_id for f in new} == {"labels.orientation"}


def test_orientation_even_split_is_undetermined(bench: Bench) -> None:
    clean = bench.base.to_json()["inferred"]["label_slice_order"]
    assert (clean["value"], clean["index_0"]) == ("slice_location_descending", "cranial")
    voters = sorted(Views(bench.scan).orientation.votes)
    assert len(voters) == clean["cases_agreeing"] and len(voters) % 2 == 0
    reversed_half = voters[: len(voters) // 2]
    report, new = bench.new(_reverse(bench, set(bench.ids) - set(reversed_half)))
    order = report.to_json()["inferred"]["label_slice_order"]
    assert (order["value"], order["index_0"]) == ("undetermined", None)
    half = len(voters) // 2
    assert order["votes"] == {"index_0_cranial": half, "index_0_caudal": half}
    assert order["cases_disagreeing"] == []
    assert rows(new) == [
        (
            "labels.orientation",
            WARNING,
            None,
            None,
            "a majority of cases agreeing",
            {"index_0_cranial": voters[half:], "index_0_caudal": reversed_half},
        )
    ]


def test_orientation_combines_with_the_slice_location_direction(bench: Bench) -> None:
    """Slice Location growing towards the feet turns the same labels into 'ascending'."""
    files = bench.scan.files.copy()
    files["slice_location"] = -files["slice_location"]
    feet = dataclasses.replace(bench.scan, files=files)
    report = bench.run({}, base_scan=feet, only=LABEL_CHECKS)
    order = report.to_json()["inferred"]["label_slice_order"]
    assert (order["value"], order["index_0"]) == ("slice_location_ascending", "cranial")
    assert order["slice_location"]["increases_towards"] == "feet"
    assert of(report.findings, "labels.orientation") == []


# --------------------------------------------------------------------------- totals


def test_labels_total_infected_slices(bench: Bench) -> None:
    row = 19  # P020
    first = int(np.flatnonzero(bench.array(SLICE0)[row])[0])
    changes: dict[str, Change] = {}
    for name in (SLICE0, LOBE0):
        array = bench.array(name)
        array[row, first - 1] = array[row, first]
        changes[name] = array
    report, new = bench.new(changes)
    assert rows(of(new, "labels.total")) == [
        ("labels.total", ERROR, None, SLICE0, PUBLISHED_INFECTED, PUBLISHED_INFECTED + 1)
    ]
    assert of(new, "labels.total")[0].message == (
        "original labels: 4958 infected slices, published 4957"
    )
    diffs = of(new, "labels.version_diff")
    assert sorted((f.case, f.path, f.severity, f.actual["slices"]) for f in diffs) == [
        ("P020", LOBE1, WARNING, [first - 1]),
        ("P020", SLICE1, WARNING, [first - 1]),
    ]
    assert {f.check_id for f in new} == {"labels.total", "labels.version_diff"}
    original = report.to_json()["stats"]["labels"]["versions"]["original"]
    assert original["reproduces_published"] is False
    assert original["infected_slices"] == PUBLISHED_INFECTED + 1
    assert bench.base.to_json()["stats"]["labels"]["versions"]["original"]["reproduces_published"]


def test_labels_total_names_the_version_that_reproduces_it(bench: Bench) -> None:
    swapped: dict[str, Change] = {
        SLICE0: bench.original[SLICE1],
        LOBE0: bench.original[LOBE1],
        SLICE1: bench.original[SLICE0],
        LOBE1: bench.original[LOBE0],
    }
    _report, new = bench.new(swapped)
    assert rows(new) == [("labels.total", ERROR, None, SLICE0, PUBLISHED_INFECTED, 4993)]
    assert new[0].message == (
        "original labels: 4993 infected slices, published 4957; updated-1 reproduces it"
    )


def test_labels_total_slices_without_infection(bench: Bench, tree_scan: ScanResult) -> None:
    """On a tree holding every labelled and normal case, the non-infected total is compared."""
    one_row = index_bytes([bench.index_lines()[0], "0,COVID-19,./COVID-19/,P017"])
    arrays = {n: bench.array(n)[P017_ROW : P017_ROW + 1].copy() for n in ARRAYS}
    infected = int(arrays[SLICE0].sum())
    normal = int(tree_scan.cases.set_index("case_id")["n_files"]["normal061"])
    clean_total = normal + P017_SLICES - infected
    profile = dataclasses.replace(
        TREE,
        published=dataclasses.replace(
            TREE.published,
            labelled={"covid": 1, "cap": 0},
            infected_slices={"original": infected},
            non_infected_slices=clean_total,
        ),
    )
    clean = bench.run({INDEX: one_row, **arrays}, profile=profile, base_scan=tree_scan)
    sound(clean)
    assert of(clean.findings, "labels.total") == []
    assert clean.result("labels.total").examined == 2
    ni = clean.to_json()["stats"]["labels"]["non_infected_slices"]
    assert (ni["computed"], ni["published"], ni["reason"]) == (clean_total, clean_total, None)

    free = int(np.flatnonzero(arrays[SLICE0][0, :P017_SLICES] == 0)[0])
    arrays[SLICE0][0, free] = 1
    arrays[LOBE0][0, free, 0] = 1
    report = bench.run({INDEX: one_row, **arrays}, profile=profile, base_scan=tree_scan)
    sound(report)
    assert rows(of(report.findings, "labels.total")) == rows(
        [
            Finding("labels.total", ERROR, "", path=SLICE0, expected=infected, actual=infected + 1),
            Finding(
                "labels.total",
                ERROR,
                "",
                expected=clean_total,
                actual={"original": clean_total - 1, "updated-1": clean_total},
            ),
        ]
    )
    (ni_finding,) = [f for f in of(report.findings, "labels.total") if f.path is None]
    assert ni_finding.message == (
        f"{clean_total - 1} slices without infection (original labels), published "
        f"{clean_total}; updated-1 reproduces it"
    )


# --------------------------------------------------------------------------- --labels DIR


def _relative(f: Finding, folder: Path) -> tuple[Any, ...]:
    path = f.path
    if path is not None and Path(path).is_absolute():
        path = Path(path).relative_to(folder).as_posix()
    return (f.check_id, f.severity.value, f.case, path, f.message)


def test_labels_dir_outside_the_root(
    make_tree: Callable[..., Path], clean_tiny_report: Report, tmp_path: Path
) -> None:
    root = make_tree()
    elsewhere = tmp_path / "elsewhere labels"
    elsewhere.mkdir()
    for name in LABEL_FILES:
        shutil.move(root / name, elsewhere / name)
    report = validate(root, "subset", jobs=1, labels_dir=elsewhere)
    sound(report)
    assert sorted(_relative(f, elsewhere) for f in report.findings) == sorted(
        finding_key(f) for f in clean_tiny_report.findings
    )
    label_paths = {f.path for f in report.findings if f.path is not None}
    assert label_paths == {str(elsewhere / SLICE1), str(elsewhere / LOBE1)}
    labels = report.to_json()["stats"]["labels"]
    assert labels["directory"] == str(elsewhere)
    assert labels["versions"]["original"]["slice_file"] == str(elsewhere / SLICE0)
    assert labels["versions"]["original"]["infected_slices"] == PUBLISHED_INFECTED
    # a broken file there is located by its absolute path
    (elsewhere / SLICE0).write_bytes(b"not npy")
    broken = validate(root, "subset", jobs=1, labels_dir=elsewhere)
    (unreadable,) = of(broken.findings, "labels.file.unreadable")
    assert unreadable.path == str(elsewhere / SLICE0)


def test_labels_dir_without_label_files(make_tree: Callable[..., Path], tmp_path: Path) -> None:
    empty = tmp_path / "no labels here"
    empty.mkdir()
    report = validate(make_tree(), "subset", jobs=1, labels_dir=empty)
    sound(report)
    missing = of(report.findings, "labels.file.missing")
    assert rows(missing) == sorted(
        (("labels.file.missing", INFO, None, None, n, None) for n in LABEL_FILES), key=repr
    )
    assert all(f"not found in '{empty}'" in f.message for f in missing)


@pytest.mark.parametrize("kind", ["absent", "a-file"])
def test_labels_dir_not_a_folder(bench: Bench, tmp_path: Path, kind: str) -> None:
    target = tmp_path / "labels"
    if kind == "a-file":
        target.write_text("not a folder")
    with pytest.raises(CtmdError, match="labels folder is not a readable folder"):
        validate(bench.root, "subset", jobs=1, labels_dir=target)


# --------------------------------------------------------------------------- demographics


def _with_files(scanned: ScanResult, case_key: str, column: str, value: str, n: int | None = None):
    files = scanned.files.copy()
    index = files.index[files["case_key"] == case_key]
    files.loc[index if n is None else index[:n], column] = value
    return dataclasses.replace(scanned, files=files)


NORMAL_DIR = "Normal subjects/normal061"
CAP_DIR = "CAP subjects/cap046"


def _demo_new(bench: Bench, tree_scan: ScanResult, changed: ScanResult, profile=TREE):
    base = validate_scan(dataclasses.replace(tree_scan, profile=profile))
    report = validate_scan(dataclasses.replace(changed, profile=profile))
    sound(report)
    return report, new_findings(report, base)


@pytest.mark.parametrize(
    ("sex", "actual", "text"),
    [
        ("F", {"male": 0, "female": 1, "other": 0}, "Normal: 0 M / 1 F, published 1 M / 0 F"),
        ("O", {"male": 0, "female": 0, "other": 1}, "Normal: 0 M / 0 F / 1 other, published"),
    ],
)
def test_demographics_sex(
    bench: Bench, tree_scan: ScanResult, sex: str, actual: dict[str, int], text: str
) -> None:
    changed = _with_files(tree_scan, NORMAL_DIR, "patient_sex", sex)
    _report, new = _demo_new(bench, tree_scan, changed)
    assert rows(new) == [("demographics.sex", ERROR, None, None, {"male": 1, "female": 0}, actual)]
    assert new[0].message.startswith(text)


def test_demographics_sex_is_one_value_per_case(bench: Bench, tree_scan: ScanResult) -> None:
    """A minority of files with the other sex does not change the case's sex."""
    changed = _with_files(tree_scan, NORMAL_DIR, "patient_sex", "F", n=10)
    _report, new = _demo_new(bench, tree_scan, changed)
    assert of(new, "demographics.sex") == []
    assert {f.check_id for f in new} == {"demographics.inconsistent"}


def test_demographics_need_every_case_of_a_class(bench: Bench, tree_scan: ScanResult) -> None:
    changed = _with_files(tree_scan, NORMAL_DIR, "patient_sex", "F")
    report, new = _demo_new(bench, tree_scan, changed, profile=SUBSET)
    assert of(new, "demographics.sex") == []
    assert report.result("demographics.sex").examined == 0
    assert report.result("demographics.age").examined == 0


def test_demographics_age(bench: Bench, tree_scan: ScanResult) -> None:
    changed = _with_files(tree_scan, CAP_DIR, "patient_age", "082Y")
    _report, new = _demo_new(bench, tree_scan, changed)
    assert rows(new) == [
        (
            "demographics.age",
            ERROR,
            None,
            None,
            {"age_mean": 72.0, "age_sd": 0.0, "tolerance": 0.1},
            {"age_mean": 82.0, "age_sd": 0.0, "cases": 1},
        )
    ]
    assert new[0].message.startswith("CAP: age 82.00 ± 0.00 (1 cases), published 72.0 ± 0.0")


@pytest.mark.parametrize(("published", "fires"), [(72.1, False), (72.11, True), (71.9, False)])
def test_demographics_age_tolerance(
    bench: Bench, tree_scan: ScanResult, published: float, fires: bool
) -> None:
    table = dict(TREE.published.demographics)
    table["cap"] = dataclasses.replace(table["cap"], age_mean=published)
    profile = dataclasses.replace(
        TREE, published=dataclasses.replace(TREE.published, demographics=table)
    )
    report = validate_scan(tree_scan, only=["demographics.age"])
    assert report.findings == []
    changed = dataclasses.replace(tree_scan, profile=profile)
    report = validate_scan(changed, only=["demographics.age"])
    assert [f.expected["age_mean"] for f in report.findings] == ([published] if fires else [])


@pytest.mark.parametrize("show_values", [False, True])
def test_demographics_age_not_in_years(
    bench: Bench, tree_scan: ScanResult, show_values: bool
) -> None:
    changed = _with_files(tree_scan, NORMAL_DIR, "patient_age", "540M")
    base = validate_scan(tree_scan, show_values=show_values)
    report = validate_scan(changed, show_values=show_values)
    sound(report)
    new = new_findings(report, base)
    n_files = int((tree_scan.files["case_key"] == NORMAL_DIR).sum())
    actual: dict[str, Any] = {"files": n_files, "forms": ["nnnM"]}
    if show_values:
        actual["values"] = ["540M"]
    assert rows(new) == [
        ("demographics.age", ERROR, None, None, {"age_mean": 36.0, "age_sd": 0.0}, None),
        ("demographics.age_format", WARNING, "normal061", NORMAL_DIR, "nnnY", actual),
    ]
    (fmt,) = of(new, "demographics.age_format")
    assert len(fmt.files) == n_files and all(p.startswith(NORMAL_DIR + "/") for p in fmt.files)
    assert "540" not in fmt.message


def test_demographics_sex_real_dicom_edit(make_tree: Callable[..., Path]) -> None:
    clean = validate(make_tree(), TREE, jobs=1)
    report = validate(make_tree(["demographics-sex"]), TREE, jobs=1)
    sound(report)
    assert rows(new_findings(report, clean)) == [
        (
            "demographics.sex",
            ERROR,
            None,
            None,
            {"male": 1, "female": 0},
            {"male": 0, "female": 1, "other": 0},
        )
    ]


def test_demographics_age_real_dicom_edit(make_tree: Callable[..., Path]) -> None:
    clean = validate(make_tree(), TREE, jobs=1)
    report = validate(make_tree(["demographics-age"]), TREE, jobs=1)
    sound(report)
    assert rows(new_findings(report, clean)) == [
        (
            "demographics.age",
            ERROR,
            None,
            None,
            {"age_mean": 72.0, "age_sd": 0.0, "tolerance": 0.1},
            {"age_mean": 82.0, "age_sd": 0.0, "cases": 1},
        )
    ]


def test_demographics_age_format_real_dicom_edit(
    make_tree: Callable[..., Path], clean_tiny_report: Report
) -> None:
    report = validate(make_tree(["age-months"]), "subset", jobs=1)
    sound(report)
    new = new_findings(report, clean_tiny_report)
    assert rows(new) == [
        (
            "demographics.age_format",
            WARNING,
            "normal061",
            NORMAL_DIR,
            "nnnY",
            {"files": 112, "forms": ["nnnM"]},
        )
    ]


# --------------------------------------------------------------------------- crashes (bugs)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("value", ["9223372036854775808", "99999999999999999999"])
def test_label_index_beyond_int64_is_reported_not_a_crash(bench: Bench, value: str) -> None:
    lines = bench.index_lines()
    lines[7] = value + lines[7][1:]
    report = bench.run({INDEX: index_bytes(lines)})
    assert [r.check_id for r in report.results if r.crashed] == []
    validate_report(report.to_json())
    new = new_findings(report, bench.base)
    assert {f.check_id for f in new} == {"labels.index.gap", "labels.index.out_of_range"}


# --------------------------------------------------------------------------- properties

_BAD_VALUES = st.one_of(
    st.integers(-(2**62), 2**62).filter(lambda v: v not in (0, 1)),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: v != 0 and v != 1),
)


@PROPERTY
@given(
    name=st.sampled_from(ARRAYS),
    row=st.integers(0, N_ROWS - 1),
    column=st.integers(0, WIDTH - 1),
    lobe=st.integers(0, 4),
    value=_BAD_VALUES,
)
def test_any_bad_cell_value_is_found_and_located(
    bench: Bench, name: str, row: int, column: int, lobe: int, value: float
) -> None:
    array = bench.array(name)
    if isinstance(value, float):
        array = array.astype(np.float64)
    cell = (row, column) if array.ndim == 2 else (row, column, lobe)
    array[cell] = value
    _report, new = bench.new_labels({name: array})
    values = of(new, "labels.values")
    assert [(f.severity, f.path, f.expected) for f in values] == [(ERROR, name, [0, 1])]
    assert values[0].actual == {
        "cells": 1,
        "values": [str(array[cell])],
        "first": [{"case": bench.ids[row], "slice": column}],
    }


@PROPERTY
@given(row=st.integers(0, N_ROWS - 1), column=st.integers(0, WIDTH - 1))
def test_any_flipped_slice_label_is_found_and_located(bench: Bench, row: int, column: int) -> None:
    slices = bench.array(SLICE0)
    old = int(slices[row, column])
    slices[row, column] = 1 - old
    case = bench.ids[row]
    _report, new = bench.new_labels({SLICE0: slices})

    assert rows(of(new, "labels.lobe_slice.mismatch")) == [
        (
            "labels.lobe_slice.mismatch",
            ERROR,
            case,
            SLICE0,
            "slice label == any lobe label",
            {"version": "original", "row": row, "slices": [column]},
        )
    ]
    assert rows(of(new, "labels.total")) == [
        ("labels.total", ERROR, None, SLICE0, PUBLISHED_INFECTED, PUBLISHED_INFECTED + 1 - 2 * old)
    ]
    updated = bench.array(SLICE1)
    differs = [int(s) for s in np.flatnonzero(slices[row] != updated[row])]
    severity = INFO if case in ANNOUNCED else WARNING
    assert [(f.case, f.severity, f.actual) for f in of(new, "labels.version_diff")] == [
        (case, severity, {"slices": differs})
    ]
    n = SUBSET.manifest[case].n_slices
    past = old == 0 and column >= n
    expected_ids = {"labels.lobe_slice.mismatch", "labels.total", "labels.version_diff"}
    if past:
        expected_ids.add("labels.padding")
        (padding,) = of(new, "labels.padding")
        assert (padding.case, padding.actual) == (case, {f"original/slice ({SLICE0})": [column]})
    assert {f.check_id for f in new} == expected_ids


@st.composite
def _label_index_edits(draw: st.DrawFn) -> tuple[int, str, str, int | None]:
    """(row, kind, new Label Index text, the row it duplicates)."""
    row = draw(st.integers(0, N_ROWS - 1))
    kind = draw(st.sampled_from(["duplicate", "negative", "past-the-end", "word"]))
    if kind == "duplicate":
        other = draw(st.integers(0, N_ROWS - 1).filter(lambda k: k != row))
        return row, kind, str(other), other
    if kind == "negative":
        return row, kind, str(draw(st.integers(-(10**6), -1))), None
    if kind == "past-the-end":
        return row, kind, str(draw(st.integers(N_ROWS, 10**12))), None
    return row, kind, draw(st.text(string.ascii_letters, min_size=1, max_size=8)), None


@PROPERTY
@given(edit=_label_index_edits())
def test_any_label_index_edit_is_found_and_located(
    bench: Bench, edit: tuple[int, str, str, int | None]
) -> None:
    row, kind, value, other = edit
    line = row + 2
    lines = bench.index_lines()
    lines[row + 1] = ",".join([value, *lines[row + 1].split(",")[1:]])
    _report, new = bench.new_labels({INDEX: index_bytes(lines)})  # sound: no crash, valid JSON
    case = bench.ids[row]

    (gap,) = of(new, "labels.index.gap")
    assert gap.actual["affected_cases"] == [case]
    assert gap.actual["missing"] == [row]
    assert gap.actual["mapped_by"] == "position"
    assert gap.actual["labels_past_last_slice"]["position"] == []
    schema = [(f.expected, f.actual) for f in of(new, "labels.index.schema")]
    if kind == "duplicate":
        assert other is not None
        assert gap.actual["repeated"] == [other]
        assert sorted(schema, key=repr) == sorted(
            (
                (
                    {"line": n, "column": "Label Index", "rule": "unique"},
                    {"line": n, "column": "Label Index", "value": value},
                )
                for n in (line, other + 2)
            ),
            key=repr,
        )
        fired = {"labels.index.gap", "labels.index.schema"}
    elif kind == "past-the-end":
        assert gap.actual["repeated"] == [] and gap.actual["not_a_number_lines"] == []
        assert rows(of(new, "labels.index.out_of_range")) == [
            ("labels.index.out_of_range", ERROR, case, INDEX, f"< {N_ROWS}", int(value))
        ]
        fired = {"labels.index.gap", "labels.index.out_of_range"}
    else:
        assert gap.actual["not_a_number_lines"] == [line]
        assert schema == [
            (
                {"line": line, "column": "Label Index", "rule": "a non-negative integer"},
                {"line": line, "column": "Label Index", "value": value},
            )
        ]
        fired = {"labels.index.gap", "labels.index.schema"}
    assert {f.check_id for f in new} == fired


@PROPERTY
@given(row=st.integers(0, N_ROWS - 1))
def test_any_deleted_index_row_is_found(bench: Bench, row: int) -> None:
    lines = bench.index_lines()
    case = bench.ids[row]
    label = "COVID-19" if case.startswith("P") else "CAP"
    published = 54 if label == "COVID-19" else 25
    del lines[row + 1]
    _report, new = bench.new_labels({INDEX: index_bytes(lines)})
    assert rows(of(new, "counts.labelled")) == [
        ("counts.labelled", ERROR, None, INDEX, published, published - 1)
    ]
    shapes = of(new, "labels.shape")
    assert sorted(f.path for f in shapes) == sorted(ARRAYS)
    for f in shapes:
        assert f.expected[0] == N_ROWS - 1 and f.actual[0] == N_ROWS
        assert f"{N_ROWS} rows, Index.csv has {N_ROWS - 1}" in f.message


@PROPERTY
@given(row=st.integers(0, N_ROWS - 1))
def test_any_swapped_diagnosis_is_located(bench: Bench, row: int) -> None:
    lines = bench.index_lines()
    fields = lines[row + 1].split(",")
    fields[1] = "CAP" if fields[1] == "COVID-19" else "COVID-19"
    lines[row + 1] = ",".join(fields)
    case = bench.ids[row]
    _report, new = bench.new_labels({INDEX: index_bytes(lines)})
    rule = "Folder/ID matches its Diagnosis's pattern"
    assert [(f.expected, f.actual) for f in of(new, "labels.index.schema")] == [
        (
            {"line": row + 2, "column": "Folder/ID", "rule": rule},
            {"line": row + 2, "column": "Folder/ID", "value": case},
        )
    ]
    (relative,) = of(new, "labels.index.relative_path")
    assert relative.case == case
    covid = 53 if case.startswith("P") else 55
    assert sorted(f.actual for f in of(new, "counts.labelled")) == sorted([covid, 79 - covid])
    mismatch = of(new, "labels.index.diagnosis_mismatch")
    assert [f.case for f in mismatch] == (["P017"] if case == "P017" else [])


# --------------------------------------------------------------------------- review findings


def test_short_lobe_array_is_a_shape_finding_not_a_crash(bench: Bench) -> None:
    """A lobe array with fewer rows than the Index: labels.shape, and the report still renders."""
    report, new = bench.new({LOBE0: bench.array(LOBE0)[:-1].copy()})
    sound(report)
    assert {(f.check_id, f.path) for f in of(new, "labels.shape")} == {("labels.shape", LOBE0)}
    assert report.to_json()["inferred"]["label_slice_order"]["value"] != ""
    assert "labels: slice order" in report.summary()


@pytest.mark.parametrize(
    "dtype", [np.dtype([("v", "<f8")]), np.dtype("U1"), np.dtype("complex128")], ids=str
)
def test_non_numeric_array_is_unreadable(bench: Bench, dtype: np.dtype) -> None:
    array = bench.array(SLICE0)
    if dtype.names:
        odd = np.zeros(array.shape, dtype=dtype)
        odd["v"] = array
    else:
        odd = array.astype(dtype)
    report, _new = bench.new({SLICE0: odd})
    sound(report)
    (f,) = of(report.findings, "labels.file.unreadable")
    assert (f.path, f.severity) == (SLICE0, ERROR)
    assert "not numeric" in str(f.actual)
    assert report.to_json()["stats"]["labels"]["versions"]["original"]["infected_slices"] is None


def test_quoted_id_with_a_newline_breaks_the_pattern(bench: Bench) -> None:
    """``"P001\\n"`` is not ``P001``: ``$`` must not accept a trailing newline."""
    lines = bench.index_lines()
    lines[1] = '0,COVID-19,./COVID-19/,"P001\n"'
    _report, new = bench.new({INDEX: index_bytes(lines)})
    schema = of(new, "labels.index.schema")
    assert {f.actual["column"] for f in schema} == {"Folder/ID"}
    assert {f.actual["value"] for f in schema} == {"P001\n"}


def test_malformed_index_line_blocks_the_non_infected_total(
    bench: Bench, tree_scan: ScanResult
) -> None:
    """A malformed line hides a labelled case: no total is computed from the others."""
    one_row = ["0,COVID-19,./COVID-19/,P017"]
    arrays = {n: bench.array(n)[P017_ROW : P017_ROW + 1].copy() for n in ARRAYS}
    profile = dataclasses.replace(
        TREE,
        published=dataclasses.replace(TREE.published, labelled={"covid": 1, "cap": 0}),
    )
    clean = bench.run(
        {INDEX: index_bytes([bench.index_lines()[0], *one_row]), **arrays},
        profile=profile,
        base_scan=tree_scan,
    )
    assert clean.to_json()["stats"]["labels"]["non_infected_slices"]["computed"] is not None
    ragged = [bench.index_lines()[0], one_row[0] + ","]
    report = bench.run({INDEX: index_bytes(ragged), **arrays}, profile=profile, base_scan=tree_scan)
    ni = report.to_json()["stats"]["labels"]["non_infected_slices"]
    assert ni["computed"] is None and "malformed lines [2]" in ni["reason"]
    totals = of(report.findings, "labels.total")
    assert [f for f in totals if "without infection" in f.message] == []


def test_empty_labelled_case_folder_is_not_blamed_on_the_labels(make_tree) -> None:
    tree = make_tree()
    for f in (tree / P017_DIR).iterdir():
        f.unlink()
    run = run_validation(tree, "subset", jobs=1)
    report = run.report
    assert of(report.findings, "structure.case_dir.empty")
    assert of(report.findings, "labels.padding") == []
    # the slice count falls back on the release manifest
    assert Views(run.scan).slice_counts["P017"] == (P017_SLICES, "release manifest")


def test_a_duplicated_case_never_stands_in_for_a_missing_one(make_tree) -> None:
    """Class completeness counts distinct case ids and wants every manifest case present."""
    from ctmd_validate.profiles import ManifestCase

    tree = make_tree()
    shutil.copytree(tree / P017_DIR, tree / "COVID-19 Cases" / "P017")
    covid = TREE.classes["covid"]
    profile = dataclasses.replace(
        TREE,
        classes={**TREE.classes, "covid": dataclasses.replace(covid, expected_cases=2)},
        manifest={**TREE.manifest, "P018": ManifestCase("P018", "covid", 118)},
    )
    run = run_validation(tree, profile, jobs=1)
    report = run.report
    table = Views(run.scan).demographics["covid"]
    assert (table.cases, table.complete) == (1, False)
    assert report.to_json()["stats"]["demographics"]["COVID-19"]["complete"] is False
    assert of(report.findings, "demographics.sex") == of(report.findings, "demographics.age") == []
    # the other classes are still complete and compared
    assert report.result("demographics.sex").examined == 2
