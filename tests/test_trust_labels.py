"""Trust, label files: damaged arrays, hostile Index cells and profile names never crash or escape.

Each test reproduces a bug found by fuzzing (tests/test_fuzz.py) or a way a profile or an
``Index.csv`` cell could make the validator read outside the dataset root, and asserts the
documented outcome: a finding, a complete report, and no file outside the root touched.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import npy_header, recorded
from ctmd_validate import labelfiles, load_profile, validate
from ctmd_validate.cli import main
from ctmd_validate.labelfiles import NOT_A_NAME, load_labels, read_npy, single_name
from ctmd_validate.report import Report

RELATIVE = "labels.index.relative_path"
CASE = "P017"  # the tiny tree's COVID-19 case


def crashed(report: Report) -> list[str]:
    return [r.check_id for r in report.results if r.crashed]


def only(report: Report, check_id: str) -> list:
    return [f for f in report.active if f.check_id == check_id]


# --------------------------------------------------------------------------- who touched what


def under(events: list[tuple[str, str]], place: Path) -> list[tuple[str, str]]:
    top = str(place)
    return [(e, p) for e, p in events if p == top or p.startswith(top + os.sep)]


# --------------------------------------------------------------------------- 1. read_npy

DAMAGED_NPY = {
    # format 3.0 cut right after magic and version: struct.error
    "v3-cut-after-version": b"\x93NUMPY\x03\x00",
    "v3-cut-length": b"\x93NUMPY\x03\x00\x10\x00",
    "v3-cut-header": b"\x93NUMPY\x03\x00\x40\x00\x00\x00{'descr'",
    # a descr tuple numpy indexes past its end: IndexError
    "v1-empty-descr": npy_header((1, 0), "{'descr': (), 'fortran_order': False, 'shape': (), }"),
    "v3-one-element-descr": npy_header(
        (3, 0), "{'descr': ('<i4',), 'fortran_order': False, 'shape': ()}"
    ),
    # an unclosed "{": numpy retries through tokenize, which raises tokenize.TokenError
    "v1-unclosed-brace": b"\x93NUMPY\x01\x00\x01\x00{",
}


@pytest.mark.parametrize("name", sorted(DAMAGED_NPY))
def test_read_npy_turns_a_damaged_header_into_text(tmp_path: Path, name: str) -> None:
    path = tmp_path / "Slice-level-labels.npy"
    path.write_bytes(DAMAGED_NPY[name])
    array, error = read_npy(path)
    assert array is None
    assert isinstance(error, str) and error.startswith(("cannot be read: ", "header"))
    assert "Traceback" not in error and str(tmp_path) not in error and path.name not in error


def test_read_npy_still_loads_a_clean_array(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.eye(3, dtype=np.uint8))
    array, error = read_npy(path)
    assert error is None and array is not None and array.tolist() == np.eye(3).tolist()


@pytest.mark.parametrize("where", ["read_npy", "read_index"])
def test_a_label_reader_bug_is_that_files_finding_not_a_crash(
    make_tree: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Each label file is guarded on its own: the others are read, the run completes."""
    root = make_tree()

    def broken(path: Path, *args: object) -> None:
        raise RuntimeError(f"unexpected in '{path}'")

    monkeypatch.setattr(labelfiles, where, broken)
    labels = load_labels(root, load_profile("subset"))
    items = [labels.index, *labels.arrays.values()]
    errors = [i.error for i in items if i.error]
    assert errors and all(e.startswith("cannot be read: RuntimeError") for e in errors)
    assert all(str(root) not in e for e in errors)
    assert any(i.error is None and i.present for i in items)  # the other files were read
    report = validate(root, "subset", jobs=1)
    assert crashed(report) == []
    assert only(report, "labels.file.unreadable")


# --------------------------------------------------------------------------- 2. Relative Path


def _with_cell(root: Path, cell: str) -> None:
    """Replace the Relative Path of the tiny tree's COVID-19 case in ``Index.csv``."""
    index = root / "Index.csv"
    lines = index.read_bytes().decode("utf-8").split("\r\n")
    (i,) = [i for i, line in enumerate(lines) if line.endswith(f",{CASE}")]
    fields = lines[i].split(",")
    fields[2] = cell
    lines[i] = ",".join(fields)
    index.write_bytes("\r\n".join(lines).encode("utf-8"))


@pytest.mark.parametrize(
    "cell",
    [
        "x" * 256,  # longer than a file name may be: stat raised ENAMETOOLONG
        "./" + "/".join(["y" * 200] * 30),  # longer than a path may be
        "/etc",
        "/",
        "../..",
        "./COVID-19/../../../",
        "a\x00b",
    ],
    ids=["256-chars", "long-path", "absolute", "slash", "dotdot", "escapes", "nul"],
)
def test_hostile_relative_path_is_a_finding(make_tree: Callable[..., Path], cell: str) -> None:
    root = make_tree()
    _with_cell(root, cell)
    report = validate(root, "subset", jobs=1)
    assert crashed(report) == []
    (f,) = only(report, RELATIVE)
    assert (f.case, f.actual) == (CASE, cell)
    assert "names no class folder" in f.message


@pytest.mark.parametrize("cell", ["./COVID-19 subjects/./", "./CAP subjects/../COVID-19 subjects"])
def test_relative_path_naming_the_case_folder_is_accepted(
    make_tree: Callable[..., Path], cell: str
) -> None:
    """A cell that leads to the case folder (decided from the scan's tables) is fine."""
    root = make_tree()
    _with_cell(root, cell)
    report = validate(root, "subset", jobs=1)
    assert only(report, RELATIVE) == []


@pytest.mark.parametrize("spelling", ["absolute", "dotdot"])
def test_relative_path_outside_the_root_is_never_touched(
    make_tree: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    """A cell naming a real case folder outside ROOT: a finding, and nothing there stat'ed."""
    root = make_tree()
    outside = tmp_path / "outside"
    (outside / CASE).mkdir(parents=True)
    cell = str(outside) if spelling == "absolute" else os.path.relpath(outside, root)
    _with_cell(root, cell)
    with recorded(monkeypatch) as events:
        report = validate(root, "subset", jobs=1)
    assert under(events, outside) == []
    assert any(p.startswith(str(root)) for _e, p in events)  # the recorder did record
    assert crashed(report) == []
    (f,) = only(report, RELATIVE)
    assert (f.case, f.actual) == (CASE, cell)


# --------------------------------------------------------------------------- 3. profile names

PROFILE_NAMES = {
    "slice-escapes": (
        '[labels.versions.original]\nslice = "labels/../../x.npy"  # <-\n'
        'lobe = "Lobe-level-labels.npy"\n',
        "labels.versions.original.slice: 'labels/../../x.npy' is not a single file name",
    ),
    "lobe-absolute": (
        '[labels.versions.original]\nslice = "Slice-level-labels.npy"\n'
        'lobe = "/etc/passwd"  # <-\n',
        "labels.versions.original.lobe: '/etc/passwd' is not a single file name",
    ),
    "lobe-backslash": (
        '[labels.versions.original]\nslice = "Slice-level-labels.npy"\n'
        'lobe = "..\\\\x.npy"  # <-\n',
        "labels.versions.original.lobe: '..\\\\x.npy' is not a single file name",
    ),
    "index-dotdot": ('[labels]\nindex = ".."  # <-\n', "labels.index: '..' is not a file name"),
    "index-dot": ('[labels]\nindex = "."  # <-\n', "labels.index: '.' is not a file name"),
}


@pytest.mark.parametrize("name", sorted(PROFILE_NAMES))
def test_profile_label_name_with_a_path_is_rejected_with_key_and_line(
    clean_tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    body, message = PROFILE_NAMES[name]
    text = 'extends = "subset"\n' + body
    prof = tmp_path / "profile.toml"
    prof.write_text(text, encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "# <-" in s)
    rc = main(["check", str(clean_tiny), "--profile", str(prof), "--quiet"])
    _out, err = capsys.readouterr()
    assert rc == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert f"{prof}:{line}: {message}" in err


def test_shipped_label_names_are_single_names() -> None:
    for profile in ("release", "subset"):
        assert all(single_name(n) for n in load_profile(profile).labels.file_names)


@pytest.mark.parametrize("name", ["../x.npy", "sub/../../x.npy", "..", "/x.npy", "a\\b", "a\x00"])
def test_single_name_refuses_paths(name: str) -> None:
    assert not single_name(name)


def test_label_name_with_a_path_is_refused_even_past_the_schema(
    make_tree: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Profile built in code (no schema) still cannot make the tool read outside ROOT."""
    root = make_tree()
    secret = tmp_path / "x.npy"
    np.save(secret, np.zeros((79, 200), dtype=np.uint8))
    subset = load_profile("subset")
    first, *rest = subset.labels.versions
    hostile = dataclasses.replace(first, slice_file="../x.npy")
    labels = dataclasses.replace(subset.labels, versions=(hostile, *rest))
    profile = dataclasses.replace(subset, labels=labels)
    with recorded(monkeypatch) as events:
        report = validate(root, profile, jobs=1)
    assert under(events, secret) == []
    assert crashed(report) == []
    (f,) = [f for f in only(report, "labels.file.unreadable") if "../x.npy" in f.message]
    assert f.actual == NOT_A_NAME


def test_read_npy_lets_no_syntax_warning_out(tmp_path) -> None:
    """Found by a 10,000-example fuzz run: ``ast`` warned about ``\\}`` in a header."""
    import warnings

    header = b"{'descr': '<i4', 'fortran_order': False, 'shape': (1,), '\\}': 1, }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    path = tmp_path / "x.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_npy(path)
    assert [str(w.message) for w in caught] == []
