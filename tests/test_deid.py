"""De-identification audit: policy, injected leaks, redaction, the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from conftest import new_findings
from ctmd_validate import Severity, cli, validate
from ctmd_validate.policy import load_policy

NAME = "Zyxwvut^Qwerty"


def test_default_policy_is_basic_profile_keeping_sex_and_age() -> None:
    policy = load_policy()
    assert policy.standard_edition == "2026c"
    assert policy.action(0x00100040) is None  # Patient's Sex: retained
    assert policy.action(0x00101010) is None  # Patient's Age: retained
    assert policy.action(0x00100010) == "Z"  # Patient's Name
    assert policy.action(0x00080020) == "Z"  # Study Date
    assert policy.action(0x00181000) == "X/Z/D"  # Device Serial Number
    assert policy.action(0x00080018) == "U"  # SOP Instance UID
    assert policy.action(0x50000000 | 0x3000) == "X"  # curve data: a masked (50xx,xxxx) entry
    assert policy.is_dummy("", "PN") and policy.is_dummy("ANONYMOUS", "PN")
    assert not policy.is_dummy(NAME, "PN")
    assert policy.is_dummy("19000101", "DA") and not policy.is_dummy("20200305", "DA")


def test_injected_name_is_found_and_never_echoed(make_tree, clean_tiny_report, capsys, tmp_path):
    tree = make_tree(["deid-patient-name"])
    report_path = tmp_path / "report.json"
    code = cli.main(["check", str(tree), "--profile", "subset", "--report", str(report_path)])
    out, err = capsys.readouterr()
    text = report_path.read_text()
    for needle in ("Zyxwvut", "Qwerty"):
        assert needle not in text and needle not in out and needle not in err
    assert code == 1
    data = json.loads(text)
    (f,) = [f for f in data["findings"] if f["id"] == "deid.attribute.present"]
    assert f["message"].startswith("PatientName (0010,0010) (action Z) holds a non-dummy value")
    assert f["actual"]["vr"] == "PN" and f["actual"]["value_length"] == len(NAME)
    assert data["policy"]["standard_edition"] == "2026c" and data["redacted"] is True


def test_show_values_is_the_explicit_way_to_see_them(make_tree, capsys, tmp_path):
    tree = make_tree(["deid-patient-name"])
    cli.main(["check", str(tree), "--profile", "subset", "--show-values", "--report", "-"])
    data = json.loads(capsys.readouterr().out)
    (f,) = [f for f in data["findings"] if f["id"] == "deid.attribute.present"]
    assert f["actual"]["values"] == [NAME]
    assert data["redacted"] is False


def test_file_names_carrying_the_patient_id_are_masked(make_tree, clean_tiny_report):
    tree = make_tree(["deid-filename"])
    report = validate(tree, "subset", jobs=1)
    (f,) = [f for f in new_findings(report, clean_tiny_report) if f.check_id == "deid.filename"]
    n = sum(1 for _ in (tree / "COVID-19 subjects").rglob("*.dcm"))
    assert f.actual == {"files": n}
    assert f.severity is Severity.ERROR
    text = report.dumps() + report.summary()
    assert "98Z14734" not in text
    # the whole stem is masked, numbered in name order, so listed files stay distinct
    shown = next(p for p in report.to_json()["findings"] if p["id"] == "deid.filename")["files"]
    stems = [p.rsplit("/", 1)[-1] for p in shown]
    assert len(set(stems)) == n
    assert all(s.startswith("[redacted#") and s.endswith("].dcm") for s in stems)


def test_curator_policy_can_retain_dates_and_vetted_private_blocks(make_tree, tmp_path: Path):
    tree = make_tree(["deid-birth-date", "deid-private-block"])
    default = {f.check_id for f in validate(tree, "subset", jobs=1).findings}
    assert {"deid.attribute.present", "deid.private_tags"} <= default
    policy = tmp_path / "policy.toml"
    text = (Path(load_policy().source)).read_text()
    text = text.replace("dates = false", "dates = true").replace(
        "safe_private = []", 'safe_private = ["ACME 1.0"]'
    )
    policy.write_text(text)
    relaxed = validate(tree, "subset", jobs=1, policy=str(policy))
    ids = {f.check_id for f in relaxed.findings}
    assert "deid.attribute.present" not in ids and "deid.private_tags" not in ids
    assert relaxed.to_json()["policy"]["source"] == str(policy)


def _expected_leaks(files: list[Path]) -> set[str]:
    """Keywords a strict reading of the policy flags, computed independently with pydicom."""
    return _expected(files)[0]


def _expected(files: list[Path]) -> tuple[set[str], set[str]]:
    """(keywords that hold data, X keywords present but empty), read with pydicom alone."""
    policy = load_policy()
    found: set[str] = set()
    empty: set[str] = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for elem in ds.iterall():
            tag = int(elem.tag)
            if elem.tag.is_private:
                continue
            action = policy.action(tag)
            if action in (None, "U", "X/Z/U*"):
                continue
            if elem.VR == "SQ":
                leak = len(elem.value) > 0
            elif action == "X":
                leak = elem.value not in (None, "", b"")
            elif isinstance(elem.value, bytes):
                leak = len(elem.value) > 0
            else:
                value = str(elem.value)
                if elem.VM > 1:
                    value = "\\".join(str(v) for v in elem.value)
                leak = not policy.is_dummy(value, elem.VR)
            if leak:
                found.add(elem.keyword or str(elem.tag))
            elif action == "X":
                empty.add(elem.keyword or str(elem.tag))
    return found, empty - found


def test_real_sample_retained_attributes_per_case(
    sample_root: Path, sample_report, sample_run
) -> None:
    """What each case retains, as reported, equals an independent pydicom reading."""
    by_case: dict[str, set[str]] = {}
    for f in sample_report.findings:
        if f.check_id == "deid.attribute.present":
            by_case.setdefault(f.case, set()).add(f.message.split(" ")[0].split("[")[0])
    for case in sample_run.scan.cases.itertuples():
        files = sorted((sample_root / case.case_key).glob("*.dcm"))
        expected = _expected_leaks(files[:: max(1, len(files) // 8)] + files[-1:])
        assert expected <= by_case.get(case.case_id, set()), case.case_id
        # every reported attribute is really there in some file of the case
        assert by_case[case.case_id] <= _expected_leaks(files) | expected, case.case_id


def test_real_sample_empty_removed_attributes_per_case(
    sample_root: Path, sample_report, sample_run
) -> None:
    """X attributes present but empty are reported apart (deid.attribute.empty), as read."""
    by_case: dict[str, set[str]] = {}
    for f in sample_report.findings:
        if f.check_id == "deid.attribute.empty":
            assert f.severity is Severity.WARNING and "empty" in f.message
            by_case.setdefault(f.case, set()).add(f.message.split(" ")[0])
    for case in sample_run.scan.cases.itertuples():
        files = sorted((sample_root / case.case_key).glob("*.dcm"))
        assert by_case.get(case.case_id, set()) == _expected(files)[1], case.case_id


def test_real_sample_report_never_carries_its_identifiers(sample_root, sample_report, sample_run):
    text = sample_report.dumps() + sample_report.summary()
    for case in sample_run.scan.cases.itertuples():
        ds = pydicom.dcmread(
            next((sample_root / case.case_key).glob("*.dcm")), stop_before_pixels=True
        )
        for keyword in ("PatientID", "StationName", "DeviceSerialNumber", "StudyDate"):
            value = str(ds.get(keyword, "") or "")
            if len(value) >= 4:
                assert value not in text, keyword


def test_real_sample_deid_findings(sample_report) -> None:
    ids = {(f.check_id, f.severity) for f in sample_report.findings}
    for expected in (
        ("deid.attribute.present", Severity.ERROR),
        ("deid.private_tags", Severity.ERROR),
        ("deid.patient_identity_removed", Severity.ERROR),
        ("deid.filename", Severity.ERROR),
        ("deid.patient_id", Severity.WARNING),
        ("deid.uid.not_remapped", Severity.WARNING),
    ):
        assert expected in ids
    assert not [f for f in sample_report.findings if f.check_id == "deid.kept_attribute.missing"]
    assert not [f for f in sample_report.findings if f.check_id == "demographics.inconsistent"]


@pytest.mark.parametrize("case_id", ["P001", "cap001", "normal001"])
def test_real_sample_private_creators_are_named(sample_report, case_id) -> None:
    (f,) = [
        f for f in sample_report.findings if f.check_id == "deid.private_tags" and f.case == case_id
    ]
    assert "SIEMENS CSA HEADER" in f.actual["creators"]
