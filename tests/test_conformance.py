"""DICOM conformance: UID grammar, required attributes, file meta — by damage and by property."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import new_findings
from ctmd_validate import Severity, validate
from ctmd_validate.checks.dicom import uid_problem

component = st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True))
valid_uid = st.lists(component, min_size=2, max_size=8).map(".".join).filter(lambda u: len(u) <= 64)


@given(valid_uid)
def test_valid_uids_pass(uid: str) -> None:
    assert uid_problem(uid) is None


@given(valid_uid, st.data())
def test_every_kind_of_broken_uid_is_named(uid: str, data: st.DataObject) -> None:
    parts = uid.split(".")
    i = data.draw(st.integers(0, len(parts) - 1), label="component")
    kind = data.draw(st.sampled_from(["leading zero", "empty", "letter", "long"]), label="kind")
    if kind == "leading zero":
        parts[i] = "0" + data.draw(st.from_regex(r"[0-9]{1,5}", fullmatch=True))
        expected = "a component with a leading zero"
    elif kind == "empty":
        parts[i] = ""
        expected = "an empty component"
    elif kind == "letter":
        parts[i] = parts[i] + data.draw(st.sampled_from(["a", " ", "-", "^"]))
        expected = "characters other than digits and dots"
    else:
        parts.append("1" * 64)
        expected = "longer than 64 characters"
    broken = ".".join(parts)
    assert (uid_problem(broken) or "").startswith(expected), broken


@pytest.mark.parametrize(
    ("uid", "reason"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", None),
        ("0.0", None),
        ("1.2.03", "a component with a leading zero"),
        ("1..2", "an empty component"),
        (".1.2", "an empty component"),
        ("1.2.", "an empty component"),
        ("1.2.3a", "characters other than digits and dots"),
        ("1." + "2" * 63, "longer than 64 characters (65)"),
    ],
)
def test_uid_examples(uid: str, reason: str | None) -> None:
    assert uid_problem(uid) == reason


def test_nested_invalid_uid_is_found_without_echoing_it(make_tree, clean_tiny_report, tmp_path):
    tree = make_tree(["uid-invalid-nested"])
    report = validate(tree, "subset", jobs=1)
    (f,) = [f for f in new_findings(report, clean_tiny_report) if f.check_id == "dicom.uid.invalid"]
    assert f.severity is Severity.ERROR
    assert f.message == (
        "ReferencedImageSequence[0].ReferencedSOPInstanceUID has a component with a leading "
        "zero in 1 files"
    )
    assert len(f.files) == 1 and f.files[0].startswith(f.path + "/")
    text = report.dumps()
    assert "1145.07" not in text  # the value itself never reaches the report
    assert json.loads(text)["valid"] is False


def test_type1_and_type2_have_their_severities(make_tree, clean_tiny_report):
    tree = make_tree(["type1-missing", "type2-missing"])
    new = new_findings(validate(tree, "subset", jobs=1), clean_tiny_report)
    found = {(f.message.split(" ")[2], f.severity, len(f.files)) for f in new}
    normal_slices = sum(1 for p in (tree / "Normal subjects").rglob("*.dcm"))
    assert found == {
        ("RescaleIntercept", Severity.ERROR, 1),
        ("PatientName", Severity.WARNING, normal_slices),
    }


def test_empty_type1_value_is_an_error_but_empty_type2_is_fine(make_tree, clean_tiny_report):
    import pydicom

    tree = make_tree()
    target = sorted((tree / "CAP subjects").rglob("*.dcm"))[3]
    ds = pydicom.dcmread(target)
    ds.Modality = ""  # Type 1: must not be empty
    ds.StudyID = ""  # Type 2: may be empty (it already is in the synthetic data)
    ds.save_as(target)
    new = new_findings(validate(tree, "subset", jobs=1), clean_tiny_report)
    assert [(f.check_id, f.severity, f.actual) for f in new] == [
        ("dicom.required_attribute", Severity.ERROR, "empty in 1 files")
    ]


def test_media_and_dataset_uids_must_agree(make_tree, clean_tiny_report):
    new = new_findings(
        validate(make_tree(["media-uid-mismatch"]), "subset", jobs=1), clean_tiny_report
    )
    assert [(f.check_id, f.actual, len(f.files)) for f in new] == [
        ("dicom.file_meta", "different in 1 files", 1)
    ]


def test_missing_file_meta_elements_are_named_per_case(make_tree, clean_tiny_report):
    tree = make_tree(["file-meta-incomplete"])
    new = new_findings(validate(tree, "subset", jobs=1), clean_tiny_report)
    cap_slices = sum(1 for p in (tree / "CAP subjects").rglob("*.dcm"))
    assert sorted((f.expected, f.actual, len(f.files)) for f in new) == [
        (
            "FileMetaInformationVersion present and not empty",
            f"absent in {cap_slices} files",
            cap_slices,
        ),
        (
            "ImplementationClassUID present and not empty",
            f"absent in {cap_slices} files",
            cap_slices,
        ),
    ]


def test_real_sample_file_meta_is_judged_on_what_the_files_hold(
    sample_root, sample_report, sample_run
):
    """Expectations come from the files themselves, read here with pydicom."""
    import pydicom

    from ctmd_validate.tags import tag_of

    required = sample_report.facts.profile.conformance.file_meta
    expected: set[tuple[str, str]] = set()
    for path in sample_run.scan.files["path"]:
        meta = pydicom.dcmread(sample_root / path, stop_before_pixels=True).file_meta
        for keyword in required:
            if tag_of(keyword) not in meta or not meta[tag_of(keyword)].value:
                expected.add((path.rsplit("/", 2)[-2], keyword))
    found = {
        (f.case, f.expected.split(" ")[0])
        for f in sample_report.findings
        if f.check_id == "dicom.file_meta"
    }
    assert found == expected
