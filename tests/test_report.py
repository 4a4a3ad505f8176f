"""The JSON report: schema, counts, check statuses, waivers, exit codes, no identifying values."""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from pathlib import Path

import pydicom
import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from ctmd_validate import cli, validate
from ctmd_validate.checks import REGISTRY
from ctmd_validate.report import Report, validate_report

DEFECTIVE = ["missing-slice", "truncated-file", "stray-file", "class-dir-alias"]


def as_json(report: Report) -> dict:
    """The report as written to disk (``dumps`` validates it against the schema itself)."""
    return json.loads(report.dumps())


def assert_consistent(data: dict) -> None:
    """Every count of the report agrees with its findings and checks lists."""
    validate_report(data)
    findings = data["findings"]
    active = [f for f in findings if "waived" not in f]
    waived = [f for f in findings if "waived" in f]
    by_severity = Counter(f["severity"] for f in active)
    summary = data["summary"]
    for severity in ("error", "warning", "info"):
        assert summary[severity] == by_severity[severity], severity
    assert summary["waived"] == len(waived)
    assert data["valid"] is (by_severity["error"] == 0)

    statuses = Counter(c["status"] for c in data["checks"])
    assert summary["checks"] == {
        "total": len(data["checks"]),
        "passed": statuses["passed"],
        "failed": statuses["failed"],
        "skipped": statuses["skipped"],
    }
    ids = [c["id"] for c in data["checks"]]
    assert sorted(ids) == sorted(REGISTRY)
    assert len(set(ids)) == len(ids)
    assert {f["id"] for f in findings} <= set(ids)

    for c in data["checks"]:
        mine = [f for f in findings if f["id"] == c["id"]]
        mine_active = [f for f in mine if "waived" not in f]
        assert c["findings"] == len(mine_active), c["id"]
        assert c["severity"] == REGISTRY[c["id"]].severity.value
        failed = any(f["severity"] == "error" for f in mine_active)
        skipped = c["examined"] == 0 and not mine
        assert (c["status"] == "failed") is failed, c
        if not failed:
            assert (c["status"] == "skipped") is skipped, c
        assert "crashed" not in c, c


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> Path:
    from ctmd_validate import synth

    root = tmp_path_factory.mktemp("report-defective") / "COVID-CT-MD"
    return synth.write_dataset(root, scale="tiny", defects=DEFECTIVE, jobs=1)


@pytest.fixture(scope="module")
def defective_report(defective: Path) -> Report:
    return validate(defective, "subset", jobs=1)


# --------------------------------------------------------------------------- schema and counts


def test_clean_report_is_valid_and_consistent(clean_tiny_report, clean_tiny_run):
    data = as_json(clean_tiny_report)
    assert_consistent(data)
    assert data["valid"] is True
    assert clean_tiny_report.exit_code == 0
    assert data["summary"]["error"] == 0
    assert data["summary"]["warning"] == 0
    assert data["summary"]["cases"] == 3
    assert data["summary"]["files"] == len(clean_tiny_run.scan.files)
    assert data["profile"]["name"] == "subset"
    assert data["profile"]["complete"] is False


def test_defective_report_is_valid_and_consistent(defective_report, defective):
    data = as_json(defective_report)
    assert_consistent(data)
    assert data["valid"] is False
    assert defective_report.exit_code == 1
    fired = {f["id"] for f in data["findings"]}
    from defect_oracle import EXPECTED

    for name in DEFECTIVE:
        assert EXPECTED[name] <= fired, name
    assert data["dataset_root"] == str(defective.resolve())
    for f in data["findings"]:
        if f["path"] is not None:
            assert not f["path"].startswith("/"), f
            assert "\\" not in f["path"]
            assert (defective / f["path"]).exists() or f["id"] == "structure.case_dir.missing"


def test_release_profile_report_is_consistent(clean_tiny):
    report = validate(clean_tiny, "release", jobs=1)
    data = as_json(report)
    assert_consistent(data)
    assert data["valid"] is False  # absent cases are errors for the complete release
    assert data["profile"]["complete"] is True


def test_empty_root_has_skipped_checks(tmp_path):
    """Nothing to examine: checks that examined nothing and found nothing are skipped."""
    root = tmp_path / "empty"
    root.mkdir()
    report = validate(root, "subset", jobs=1)
    data = as_json(report)
    assert_consistent(data)
    assert data["summary"]["cases"] == 0
    assert data["summary"]["files"] == 0
    assert data["summary"]["checks"]["skipped"] > 0
    status = {c["id"]: c["status"] for c in data["checks"]}
    assert status["counts.case_slices"] == "skipped"
    assert status["dicom.unreadable"] == "skipped"
    # examined something (the profile's classes) and found them absent: not skipped
    assert status["structure.class_dir.missing"] != "skipped"


def test_summary_text_matches_counts(defective_report):
    data = as_json(defective_report)
    text = defective_report.summary()
    s = data["summary"]
    assert f"INVALID: {s['error']} errors, {s['warning']} warnings, {s['info']} info" in text
    c = s["checks"]
    assert f"checks: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped" in text


# --------------------------------------------------------------------------- waivers


WAIVER_CONFIG = """
[severity]
"structure.class_dir.alias" = "ignore"

[[waive]]
id = "counts.case_slices"
reason = "slice removed on purpose"

# the removed slice leaves a hole in the stack: one missing slice between its neighbours
# (matched through the finding's files: its path is the case folder) and a skipped
# Instance Number (matched through its path)
[[waive]]
id = "geometry.spacing.missing_slice"
path = "COVID-19 subjects/*/IM*.dcm"
reason = "slice removed on purpose"

[[waive]]
id = "geometry.instance_number"
path = "COVID-19 subjects/*"
reason = "slice removed on purpose"

[[waive]]
id = "structure.stray_file"
path = "*/.DS_Store"
reason = "macOS metadata, harmless"
"""


def test_waived_findings_are_excluded_from_counts(make_tree, tmp_path, capsys):
    tree = make_tree(["missing-slice", "stray-file", "class-dir-alias"])
    config = tmp_path / "waivers.toml"
    config.write_text(WAIVER_CONFIG, encoding="utf-8")

    plain = as_json(validate(tree, "subset", jobs=1))
    assert plain["valid"] is False
    assert {f["id"] for f in plain["findings"] if f["severity"] == "error"} == {
        "counts.case_slices",
        "geometry.spacing.missing_slice",
        "geometry.instance_number",
    }
    report = validate(tree, "subset", config=config, jobs=1)
    data = as_json(report)
    assert_consistent(data)
    assert data["config"] == str(config)
    assert data["valid"] is True
    assert report.exit_code == 0

    waived = [f for f in data["findings"] if "waived" in f]
    reasons = {f["id"]: f["waived"] for f in waived}
    assert reasons == {
        "counts.case_slices": "slice removed on purpose",
        "geometry.spacing.missing_slice": "slice removed on purpose",
        "geometry.instance_number": "slice removed on purpose",
        "structure.stray_file": "macOS metadata, harmless",
        "structure.class_dir.alias": "ignored by config",
    }
    assert sorted(f["id"] for f in waived) == [
        "counts.case_slices",
        "geometry.instance_number",
        "geometry.spacing.missing_slice",
        "structure.class_dir.alias",
        "structure.stray_file",
    ]
    # the missing-slice waiver matched the two slices either side of the gap, not the path
    (gap,) = [f for f in waived if f["id"] == "geometry.spacing.missing_slice"]
    assert not fnmatch.fnmatchcase(gap["path"], "COVID-19 subjects/*/IM*.dcm")
    assert len(gap["files"]) == 2
    assert all(fnmatch.fnmatchcase(p, "COVID-19 subjects/*/IM*.dcm") for p in gap["files"])
    assert data["summary"]["waived"] == len(waived)
    # the same findings as without the config, only marked
    assert len(data["findings"]) == len(plain["findings"])
    assert data["summary"]["error"] == plain["summary"]["error"] - sum(
        1 for f in waived if f["severity"] == "error"
    )
    # notes.txt is not covered by the .DS_Store waiver: still an active warning
    stray = [f for f in data["findings"] if f["id"] == "structure.stray_file"]
    assert any("waived" not in f and f["path"].endswith("notes.txt") for f in stray)
    assert all("waived" in f for f in stray if f["path"].endswith(".DS_Store"))

    checks_by_id = {c["id"]: c for c in data["checks"]}
    for check_id in (
        "counts.case_slices",
        "geometry.spacing.missing_slice",
        "geometry.instance_number",
    ):
        assert checks_by_id[check_id]["status"] == "passed", check_id
        assert checks_by_id[check_id]["findings"] == 0, check_id

    rc, out, _err = _run(capsys, "check", tree, "--profile", "subset", "--config", config)
    assert rc == 0
    assert "waived" in out
    rc, _out, _err = _run(capsys, "check", tree, "--profile", "subset")
    assert rc == 1


def test_severity_override_can_make_a_warning_fail(make_tree, tmp_path, capsys):
    tree = make_tree(["stray-file"])
    config = tmp_path / "strict.json"
    config.write_text(json.dumps({"severity": {"structure.stray_file": "error"}}))
    data = as_json(validate(tree, "subset", config=config, jobs=1))
    assert_consistent(data)
    assert data["valid"] is False
    stray = [f for f in data["findings"] if f["id"] == "structure.stray_file"]
    assert stray
    assert all(f["severity"] == "error" for f in stray)
    rc, _out, _err = _run(capsys, "check", tree, "--profile", "subset", "--config", config)
    assert rc == 1


# --------------------------------------------------------------------------- exit codes


def _run(capsys, *args):
    rc = cli.main([str(a) for a in args] + ["--jobs", "1"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_exit_codes(clean_tiny, defective, capsys):
    assert _run(capsys, "check", clean_tiny, "--profile", "subset")[0] == 0
    assert _run(capsys, "check", defective, "--profile", "subset")[0] == 1
    assert _run(capsys, "check", clean_tiny, "--profile", "release")[0] == 1


# --------------------------------------------------------------------------- no identifying values

SECRETS = ("Zyxwvut^Qwerty", "Zyxwvut", "Qwerty", "ID-SECRET-4242", "Secret Hospital")


def test_identifying_values_never_leak(make_tree, tmp_path, capsys):
    tree = make_tree()
    slice_path = sorted(tree.rglob("*.dcm"))[5]
    ds = pydicom.dcmread(slice_path)
    ds.PatientName = "Zyxwvut^Qwerty"
    ds.PatientID = "ID-SECRET-4242"
    ds.InstitutionName = "Secret Hospital"
    ds.save_as(slice_path, enforce_file_format=True)
    reread = pydicom.dcmread(slice_path)
    assert str(reread.PatientID) == "ID-SECRET-4242"
    assert reread.pixel_array.shape == (reread.Rows, reread.Columns)

    target = tmp_path / "report.json"
    rc, out, err = _run(capsys, "check", tree, "--profile", "subset", "--report", target)
    text = target.read_text(encoding="utf-8")
    data = json.loads(text)
    validate_report(data)
    assert rc in (0, 1)
    assert not any(f["id"] == "dicom.unreadable" for f in data["findings"])
    rc_dash, out_dash, err_dash = _run(
        capsys, "check", tree, "--profile", "release", "--report", "-"
    )
    assert rc_dash == 1
    for secret in SECRETS:
        for where, blob in {
            "report": text,
            "stdout": out,
            "stderr": err,
            "stdout (--report -)": out_dash,
            "stderr (--report -)": err_dash,
        }.items():
            assert secret.casefold() not in blob.casefold(), f"{secret!r} leaked into {where}"
