"""Hypothesis properties of the scan and the checks over damaged synthetic trees.

Each property damages a module-scoped copy of a clean tree, validates it and restores the
damage in a ``finally`` (cheaper than copying the tree for every example). Properties (a)
and (c) use a "mini" tree (the tiny tree's three cases with 6 / 5 / 4 slices, and a subset
profile whose manifest says so); property (b) uses the real clean tiny tree.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ctmd_validate.checks  # noqa: F401  (registers every check)
from conftest import finding_key
from ctmd_validate import Report, Severity, load_profile, synth, validate
from ctmd_validate.profiles import ManifestCase
from ctmd_validate.report import validate_report

SUBSET = load_profile("subset")
_TINY = {c.class_key: c for c in synth.select_cases(SUBSET, "tiny")}
MINI_SLICES = {"covid": 6, "cap": 5, "normal": 4}
MINI = dataclasses.replace(
    SUBSET,
    manifest={
        **SUBSET.manifest,
        **{c.case_id: ManifestCase(c.case_id, k, MINI_SLICES[k]) for k, c in _TINY.items()},
    },
)
KEYS = ("covid", "cap", "normal")
CLASS_DIR = {"covid": "COVID-19 subjects", "cap": "CAP subjects", "normal": "Normal subjects"}
CASE_ID = {k: c.case_id for k, c in _TINY.items()}
CASE_REL = {k: f"{CLASS_DIR[k]}/{CASE_ID[k]}" for k in KEYS}

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
        ("structure.stray_file", Severity.WARNING, case, rel, "file")
    ]
    assert report.valid
    assert len(report.scan.files) == sum(MINI_SLICES.values())


# --------------------------------------------------------------------------- (b) slice counts


@st.composite
def _removals(draw: st.DrawFn) -> dict[str, list[int]]:
    """Up to three cases, each losing 1 to 6 of its slices (by 1-based slice number)."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    out: dict[str, list[int]] = {}
    for key in keys:
        n = _TINY[key].n_slices
        out[key] = draw(
            st.lists(st.integers(1, n), min_size=1, max_size=6, unique=True).map(sorted)
        )
    return out


@settings(PROPERTY, max_examples=25)
@given(removals=_removals())
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
    assert {f.check_id for f in new} == {"counts.case_slices"}
    got = sorted((f.case, f.path, f.expected, f.actual) for f in new)
    want = sorted(
        (
            CASE_ID[key],
            CASE_REL[key],
            _TINY[key].n_slices,
            _TINY[key].n_slices - len(numbers),
        )
        for key, numbers in removals.items()
    )
    assert got == want
    assert all(f.severity is Severity.ERROR for f in new)


# --------------------------------------------------------------------------- (c) damaged slices


def _slices() -> list[str]:
    return [f"{CASE_REL[k]}/IM{i:04d}.dcm" for k in KEYS for i in range(1, MINI_SLICES[k] + 1)]


def _check_damaged(mini, rel: str, content: bytes, must_fail: bool) -> None:
    root, baseline = mini
    target = root / rel
    original = target.read_bytes()
    target.write_bytes(content)
    try:
        report = validate(root, MINI, jobs=1)
    finally:
        target.write_bytes(original)
    _sound(report)
    key = next(k for k in KEYS if rel.startswith(CASE_REL[k] + "/"))
    files = report.scan.files.set_index("path")
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
        assert [(f.check_id, f.severity, f.case, f.path) for f in new] == [
            ("dicom.unreadable", Severity.ERROR, CASE_ID[key], rel)
        ]
        assert new[0].actual == files.loc[rel, "error"]


def _draw_content(data: st.DataObject, originals: dict[str, bytes]) -> tuple[str, bytes, bool]:
    rel = data.draw(st.sampled_from(_slices()), label="slice")
    kind = data.draw(st.sampled_from(["binary", "dicm", "mutated"]), label="kind")
    if kind == "binary":
        content = data.draw(st.binary(max_size=2048), label="content")
    elif kind == "dicm":  # a Part 10 preamble, then anything
        content = bytes(128) + b"DICM" + data.draw(st.binary(max_size=1024), label="after DICM")
    else:  # the real file with a few bytes overwritten
        buf = bytearray(originals[rel])
        edits = data.draw(
            st.lists(
                st.tuples(st.integers(0, len(buf) - 1), st.integers(0, 255)),
                min_size=1,
                max_size=8,
            ),
            label="edits",
        )
        for pos, value in edits:
            buf[pos] = value
        content = bytes(buf)
    # only a content shorter than 132 bytes or without 'DICM' is certainly unreadable
    must_fail = len(content) < 132 or content[128:132] != b"DICM"
    return rel, content, must_fail


@pytest.fixture(scope="module")
def originals(mini) -> dict[str, bytes]:
    root, _ = mini
    return {rel: (root / rel).read_bytes() for rel in _slices()}


@settings(PROPERTY, max_examples=30)
@given(data=st.data())
def test_overwritten_slice_never_crashes(mini, originals, data: st.DataObject) -> None:
    rel, content, must_fail = _draw_content(data, originals)
    _check_damaged(mini, rel, content, must_fail)


@settings(PROPERTY, max_examples=30)
@given(data=st.data())
def test_truncated_slice_is_unreadable(mini, originals, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(_slices()), label="slice")
    at = data.draw(st.integers(0, len(originals[rel]) - 1), label="cut at")
    _check_damaged(mini, rel, originals[rel][:at], must_fail=True)
