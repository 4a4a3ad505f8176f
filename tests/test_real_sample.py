"""The real public sample (../shared): what the validator must find there.

Every test uses the ``sample_root`` / ``sample_report`` fixtures and is skipped, with the
reason, when the sample is absent. Expectations are computed from the tree itself (os.walk,
os.listdir) and from the release manifest, not from hard-coded file lists.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path, PurePosixPath

import pytest

from ctmd_validate import Severity, validate
from ctmd_validate.report import validate_report

pytestmark = pytest.mark.real_sample

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "schemas" / "release-case-manifest.csv"


def release_manifest() -> dict[str, tuple[str, int]]:
    """case id -> (diagnosis, number of slices), straight from the CSV."""
    with MANIFEST.open(newline="", encoding="utf-8") as fh:
        return {r["case_id"]: (r["diagnosis"], int(r["n_slices"])) for r in csv.DictReader(fh)}


def findings_of(report, check_id: str) -> list:
    return [f for f in report.active if f.check_id == check_id]


def test_subset_run_completes_and_report_validates(sample_report):
    data = json.loads(sample_report.dumps())
    validate_report(data)
    assert data["profile"]["name"] == "subset"
    assert not [c for c in data["checks"] if "crashed" in c]
    assert data["summary"]["checks"]["total"] == len(data["checks"])


def test_cases_files_and_class_folders(sample_root, sample_report):
    scan = sample_report.scan
    assert len(scan.cases) == 3
    assert len(scan.files) == 470
    # the tool's count agrees with the tree's
    on_disk = sum(
        1
        for _dirpath, _dirs, files in os.walk(sample_root / "Sample data")
        for name in files
        if name.lower().endswith(".dcm")
    )
    assert on_disk == len(scan.files)
    dirs = scan.class_dirs
    assert len(dirs) == 3
    assert set(dirs["class_key"]) == {"covid", "cap", "normal"}
    for path in dirs["path"]:
        assert PurePosixPath(path).parent == PurePosixPath("Sample data"), path
        assert (sample_root / path).is_dir()
    assert set(scan.cases["class_key"]) == {"covid", "cap", "normal"}


def test_every_ds_store_is_a_stray_file(sample_root, sample_report):
    ds_stores = {
        Path(dirpath, name).relative_to(sample_root).as_posix()
        for dirpath, _dirs, files in os.walk(sample_root)
        for name in files
        if name == ".DS_Store"
    }
    assert ds_stores, "the public sample is known to carry .DS_Store files"
    stray = {f.path: f for f in findings_of(sample_report, "structure.stray_file")}
    missing = ds_stores - set(stray)
    assert not missing, f"not reported as stray: {sorted(missing)}"
    for path in ds_stores:
        assert stray[path].severity is Severity.WARNING


def test_cap_folder_spelling_is_an_alias(sample_root, sample_report):
    container = sample_root / "Sample data"
    cap_dirs = [n for n in os.listdir(container) if n.casefold() == "cap subjects"]
    assert len(cap_dirs) == 1
    (name,) = cap_dirs
    assert name == "Cap subjects"  # not the README's 'CAP subjects'
    alias = findings_of(sample_report, "structure.class_dir.alias")
    paths = {f.path for f in alias}
    assert f"Sample data/{name}" in paths
    for f in alias:
        if f.path == f"Sample data/{name}":
            assert f.actual == name
            assert f.expected == "CAP subjects"
            assert f.severity is Severity.WARNING
    # the two other folders follow the README: no alias finding for them
    assert len(alias) == 1


def test_case_slices_fires_iff_count_differs_from_release(sample_root, sample_report):
    manifest = release_manifest()
    fired = {f.case: f for f in findings_of(sample_report, "counts.case_slices")}
    cases = sample_report.scan.cases
    assert len(cases) == 3
    for row in cases.itertuples():
        folder = sample_root / row.case_key
        n_dcm = sum(1 for n in os.listdir(folder) if n.lower().endswith(".dcm"))
        assert row.case_id in manifest, row.case_id
        expected = manifest[row.case_id][1]
        if n_dcm != expected:
            assert row.case_id in fired, f"{row.case_id}: {n_dcm} files, release {expected}"
            f = fired[row.case_id]
            assert f.severity is Severity.ERROR
            assert f.path == row.case_key
            assert (f.expected, f.actual) == (expected, n_dcm)
        else:
            assert row.case_id not in fired, row.case_id
    assert set(fired) <= set(cases["case_id"])


def test_no_unreadable_files_and_no_other_errors(sample_report):
    assert findings_of(sample_report, "dicom.unreadable") == []
    errors = {f.check_id for f in sample_report.active if f.severity is Severity.ERROR}
    assert errors <= {"counts.case_slices"}
    assert sample_report.result("dicom.unreadable").examined == 470


def test_release_profile_reports_absent_cases_as_errors(sample_root):
    report = validate(sample_root, "release", jobs=2)
    data = json.loads(report.dumps())
    validate_report(data)
    assert data["valid"] is False
    assert report.exit_code == 1
    manifest = release_manifest()
    present = set(report.scan.cases["case_id"])
    absent = set(manifest) - present
    assert len(absent) == len(manifest) - 3
    missing = findings_of(report, "structure.case_dir.missing")
    assert {f.case for f in missing} == absent
    assert all(f.severity is Severity.ERROR for f in missing)
    counts = findings_of(report, "counts.class")
    assert len(counts) == 3
    assert all(f.severity is Severity.ERROR for f in counts)
