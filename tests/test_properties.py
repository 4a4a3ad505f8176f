"""Hypothesis properties of the scan and the checks over damaged synthetic trees.

Each property damages a module-scoped copy of a clean tree, validates it and restores the
damage in a ``finally`` (cheaper than copying the tree for every example). Properties (a)
and (c) use a "mini" tree (the tiny tree's three cases with 6 / 5 / 4 slices, and a subset
profile whose manifest says so); property (b) uses the real clean tiny tree, whose stacks
(108 to 118 slices, IM0001 the cranial end, 2 mm steps) are long enough that a few removed
slices never change the stack's nominal spacing.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import ctmd_validate.checks  # noqa: F401  (registers every check)
from conftest import CASE_REL, CLASS_DIR, MINI, MINI_SLICES, TINY_CASES, finding_key
from ctmd_validate import Report, Severity, run_validation, synth, validate
from ctmd_validate.paths import display
from ctmd_validate.report import validate_report

KEYS = ("covid", "cap", "normal")
CASE_ID = {k: c.case_id for k, c in TINY_CASES.items()}

# pydicom warns about the garbage it is fed; the properties are about what the scan makes of it
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _new(report: Report, baseline: Report) -> list:
    base = {finding_key(f) for f in baseline.findings}
    return [f for f in report.findings if finding_key(f) not in base]


def _sound(report: Report) -> None:
    """Nothing crashed and the report is a valid, writable report."""
    assert [r.check_id for r in report.results if r.crashed] == []
    data = report.to_json()
    validate_report(data)
    report.dumps().encode("utf-8")


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    root = synth.write_dataset(
        tmp_path_factory.mktemp("prop-mini") / "COVID-CT-MD", scale="tiny", profile=MINI, jobs=1
    )
    baseline = validate(root, MINI, jobs=1)
    assert baseline.valid and baseline.count(Severity.WARNING) == 0
    return root, baseline


@pytest.fixture(scope="module")
def tiny(
    clean_tiny: Path, clean_tiny_report: Report, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Report]:
    root = Path(shutil.copytree(clean_tiny, tmp_path_factory.mktemp("prop-tiny") / "tree"))
    return root, clean_tiny_report


# --------------------------------------------------------------------------- (a) stray names

_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x00")
_NAMES = st.text(_NAME_CHARS, min_size=1, max_size=30).filter(
    lambda n: n not in {".", ".."} and not n.lower().endswith(".dcm") and len(os.fsencode(n)) <= 255
)


@settings(PROPERTY, max_examples=30)
@given(name=_NAMES, level=st.sampled_from(["root", "class", "case"]), key=st.sampled_from(KEYS))
def test_any_stray_file_is_reported_once(mini, name: str, level: str, key: str) -> None:
    root, baseline = mini
    if level == "root":
        allowed = not name.startswith(".") and any(
            fnmatch.fnmatchcase(name, g) for g in MINI.root_files_allowed
        )
        assume(not allowed)  # README*, *.md, *.txt … are dataset files at the root
        rel, case = name, None
    elif level == "class":
        rel, case = f"{CLASS_DIR[key]}/{name}", None
    else:
        rel, case = f"{CASE_REL[key]}/{name}", CASE_ID[key]
    target = root / rel
    assume(not os.path.lexists(target))
    target.write_bytes(b"not a DICOM file\n")
    try:
        report = validate(root, MINI, jobs=1)
    finally:
        target.unlink()
    _sound(report)
    new = _new(report, baseline)
    assert [(f.check_id, f.severity, f.case, f.path, f.actual) for f in new] == [
        ("structure.stray_file", Severity.WARNING, case, display(rel), "file")
    ]  # shown escaped: a backslash doubled, so no two names look alike
    assert report.valid
    assert report.facts.files == sum(MINI_SLICES.values())


# --------------------------------------------------------------------------- (b) slice counts


@st.composite
def _removals(draw: st.DrawFn) -> dict[str, list[int]]:
    """Up to three cases, each losing 1 to 6 of its slices (by 1-based slice number)."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    out: dict[str, list[int]] = {}
    for key in keys:
        n = TINY_CASES[key].n_slices
        out[key] = draw(
            st.lists(st.integers(1, n), min_size=1, max_size=6, unique=True).map(sorted)
        )
    return out


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive numbers as (first, last): [3, 4, 7] -> [(3, 4), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for i in sorted(numbers):
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _full(f) -> tuple:
    """Everything a finding says, as one comparable tuple."""
    return (
        f.check_id,
        f.severity.value,
        f.case,
        f.path,
        f.message,
        repr(f.expected),
        repr(f.actual),
        f.files,
    )


@settings(PROPERTY, max_examples=20)
@given(removals=_removals())
@example(removals={"covid": [1, 2], "normal": [112]})  # ends only: no gap anywhere
@example(removals={"cap": [1, 3, 4, 5, 108], "normal": [2, 111]})  # ends and interior runs
def test_removed_slices_are_counted_per_case(tiny, removals: dict[str, list[int]]) -> None:
    root, baseline = tiny
    trash = root.parent / "trash"
    trash.mkdir(exist_ok=True)
    moved: list[tuple[Path, Path]] = []
    try:
        for key, numbers in removals.items():
            for i in numbers:
                src = root / CASE_REL[key] / f"IM{i:04d}.dcm"
                dst = trash / f"{key}-{i}"
                src.rename(dst)
                moved.append((dst, src))
        report = validate(root, "subset", jobs=1)
    finally:
        for dst, src in moved:
            dst.rename(src)
    _sound(report)
    new = _new(report, baseline)
    assert all(f.severity is Severity.ERROR for f in new)

    # every case that lost slices, and no other, has one slice-count finding
    got = sorted(
        (f.case, f.path, f.expected, f.actual) for f in new if f.check_id == "counts.case_slices"
    )
    want = sorted(
        (
            CASE_ID[key],
            CASE_REL[key],
            TINY_CASES[key].n_slices,
            TINY_CASES[key].n_slices - len(numbers),
        )
        for key, numbers in removals.items()
    )
    assert got == want

    # Slices removed between the first and the last kept one leave gaps in the stack: one
    # missing-slice finding per run of consecutive removed slices, between the kept slices
    # either side; removed first or last slices only shorten the stack. The Instance
    # Numbers (IM0001 is number 1) skip exactly the interior ones.
    gaps, holes, interior_total = [], [], 0
    for key, numbers in removals.items():
        kept = sorted(set(range(1, TINY_CASES[key].n_slices + 1)) - set(numbers))
        interior = sorted(i for i in numbers if kept[0] < i < kept[-1])
        interior_total += len(interior)
        if interior:
            holes.append(
                (CASE_ID[key], CASE_REL[key], {"missing": interior, "count": len(interior)})
            )
        for first, last in _runs(interior):
            below = sum(1 for k in kept if k > last)  # the stack runs caudal to cranial
            files = (
                f"{CASE_REL[key]}/IM{first - 1:04d}.dcm",
                f"{CASE_REL[key]}/IM{last + 1:04d}.dcm",
            )
            gaps.append((CASE_ID[key], CASE_REL[key], last - first + 1, below, files))
    missing = [f for f in new if f.check_id == "geometry.spacing.missing_slice"]
    got_gaps = sorted(
        (f.case, f.path, f.actual["missing"], f.actual["after_slice"], f.files) for f in missing
    )
    assert got_gaps == sorted(gaps)
    assert sum(f.actual["missing"] for f in missing) == interior_total
    for f in missing:
        assert f.expected == {"spacing_mm": synth.SLICE_MM}
        lo, hi = f.actual["between_mm"]
        assert hi - lo == pytest.approx((f.actual["missing"] + 1) * synth.SLICE_MM, abs=1e-3)
    numbered = [f for f in new if f.check_id == "geometry.instance_number"]
    assert sorted((f.case, f.path, f.actual) for f in numbered) == sorted(holes)

    fired = {"counts.case_slices"}
    if interior_total:
        fired |= {"geometry.spacing.missing_slice", "geometry.instance_number"}
    assert {f.check_id for f in new} == fired


# --------------------------------------------------------------------------- (c) damaged slices


def _slices() -> list[str]:
    return [f"{CASE_REL[k]}/IM{i:04d}.dcm" for k in KEYS for i in range(1, MINI_SLICES[k] + 1)]


def _check_damaged(mini, without, rel: str, content: bytes, must_fail: bool) -> None:
    root, baseline = mini
    target = root / rel
    original = target.read_bytes()
    target.write_bytes(content)
    try:
        result = run_validation(root, MINI, jobs=1)
    finally:
        target.write_bytes(original)
    report = result.report
    _sound(report)
    key = next(k for k in KEYS if rel.startswith(CASE_REL[k] + "/"))
    files = result.scan.files.set_index("path")
    assert rel in files.index  # a .dcm file always counts as a slice of its case
    assert len(files) == sum(MINI_SLICES.values())
    status = files.loc[rel, "status"]
    unreadable = report.result("dicom.unreadable").findings
    new = _new(report, baseline)
    if status == "ok":
        assert not must_fail, f"a damaged file was reported readable ({len(content)} bytes)"
        assert unreadable == []
        assert all(f.path in {rel, None} or f.path == CASE_REL[key] for f in new), new
    else:
        assert status == "unreadable"
        mine = [f for f in new if f.check_id == "dicom.unreadable"]
        assert [(f.check_id, f.severity, f.case, f.path) for f in mine] == [
            ("dicom.unreadable", Severity.ERROR, CASE_ID[key], rel)
        ]
        assert mine[0].actual == files.loc[rel, "error"]
        # Beyond that one finding, an unreadable slice is a slice missing from the readable
        # stack: exactly what deleting the file finds, less the slice count (the file still
        # counts). An end slice leaves no gap; an interior one leaves a hole.
        # (labels.padding: with one slice fewer, the labelled case's last label may be past
        # its end; that too depends on the count, not on the damage).
        removed = _new(without(rel), baseline)
        count = [f for f in removed if f.check_id == "counts.case_slices"]
        n = MINI_SLICES[key]
        assert [(f.case, f.expected, f.actual) for f in count] == [(CASE_ID[key], n, n - 1)]
        by_count = {"counts.case_slices", "labels.padding"}
        hole = sorted(_full(f) for f in removed if f.check_id not in by_count)
        assert sorted(_full(f) for f in new if f.check_id != "dicom.unreadable") == hole
        if rel.endswith((f"/IM{1:04d}.dcm", f"/IM{n:04d}.dcm")):
            assert hole == []


@pytest.fixture(scope="module")
def without(mini) -> Callable[[str], Report]:
    """The report of the mini tree with one slice deleted (once per slice, then cached)."""
    root, _ = mini
    reports: dict[str, Report] = {}

    def get(rel: str) -> Report:
        if rel not in reports:
            src = root / rel
            dst = root.parent / "deleted.dcm"
            src.rename(dst)
            try:
                reports[rel] = validate(root, MINI, jobs=1)
            finally:
                dst.rename(src)
        return reports[rel]

    return get


@st.composite
def _damages(draw: st.DrawFn) -> tuple[str, str, object]:
    """``(slice, kind, payload)``: random bytes, a Part 10 preamble then anything, or the
    real file with a few bytes overwritten (payload: ``(position, byte)`` edits; positions
    wrap around the file's length)."""
    rel = draw(st.sampled_from(_slices()))
    kind = draw(st.sampled_from(["binary", "dicm", "mutated"]))
    if kind == "binary":
        payload: object = draw(st.binary(max_size=2048))
    elif kind == "dicm":
        payload = draw(st.binary(max_size=1024))
    else:
        payload = draw(
            st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=8)
        )
    return rel, kind, payload


def _content(damage: tuple[str, str, object], originals: dict[str, bytes]) -> tuple[bytes, bool]:
    """The damaged file's bytes, and whether it is certainly unreadable."""
    rel, kind, payload = damage
    if kind == "binary":
        content = bytes(payload)  # type: ignore[arg-type]
    elif kind == "dicm":
        content = bytes(128) + b"DICM" + bytes(payload)  # type: ignore[arg-type]
    else:
        buf = bytearray(originals[rel])
        for pos, value in payload:  # type: ignore[attr-defined]
            buf[pos % len(buf)] = value
        content = bytes(buf)
    # only a content shorter than 132 bytes or without 'DICM' is certainly unreadable
    must_fail = len(content) < 132 or content[128:132] != b"DICM"
    return content, must_fail


@pytest.fixture(scope="module")
def originals(mini) -> dict[str, bytes]:
    root, _ = mini
    return {rel: (root / rel).read_bytes() for rel in _slices()}


@settings(PROPERTY, max_examples=30)
@given(damage=_damages())
# Byte 162 is the 'U' of the VR of Media Storage SOP Class UID (0002,0002): zeroed, pydicom
# reads the rest of the file meta group as garbage and the file is unreadable. Found by this
# property; kept as an explicit example (it fails fast instead of shrinking for minutes).
@example(damage=(f"{CASE_REL['covid']}/IM0001.dcm", "mutated", [(162, 0)]))
# A Part 10 file holding one empty element of the odd group 0001 and no Pixel Data: an
# unreadable file whose only element is private. Found by this property, kept likewise.
@example(damage=(f"{CASE_REL['covid']}/IM0001.dcm", "dicm", b"\x01" + bytes(7)))
def test_overwritten_slice_never_crashes(mini, without, originals, damage) -> None:
    content, must_fail = _content(damage, originals)
    _check_damaged(mini, without, damage[0], content, must_fail)


@settings(PROPERTY, max_examples=30)
@given(rel=st.sampled_from(_slices()), cut=st.integers(0, 2**16))
# Cut inside the value of Media Storage SOP Instance UID, just after a dot. Found by this
# property; kept as an explicit example (it fails fast instead of shrinking for minutes).
@example(rel=f"{CASE_REL['covid']}/IM0001.dcm", cut=223)
def test_truncated_slice_is_unreadable(mini, without, originals, rel: str, cut: int) -> None:
    original = originals[rel]
    _check_damaged(mini, without, rel, original[: cut % len(original)], must_fail=True)
