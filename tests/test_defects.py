"""Every synthetic defect fires exactly the checks the oracle expects; clean trees fire
nothing bad.

The clean tiny tree holds one case per class (the shortest of each class); the defects of
``ctmd_validate.synth.DEFECTS`` each break a copy of it in one named way. What each must
make fire is ``defect_oracle.EXPECTED``; what it is built to demonstrate (its ``targets``)
is part of that, and every check is some defect's target.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

import pytest
from defect_oracle import EXPECTED

import ctmd_validate.checks  # noqa: F401  (registers every check)
from conftest import NEED_AN_OPTION, new_findings
from ctmd_validate import (
    CheckStatus,
    Report,
    Run,
    Severity,
    load_profile,
    run_validation,
    synth,
    validate,
)
from ctmd_validate.checks import REGISTRY
from ctmd_validate.fixity import hash_files, write_manifest
from ctmd_validate.report import validate_report
from ctmd_validate.synth import DEFECTS

RELEASE = load_profile("release")
TINY = synth.select_cases(RELEASE, "tiny")
TINY_IDS = {c.case_id for c in TINY}
TINY_FILES = sum(c.n_slices for c in TINY)
LABEL_FILES = set(RELEASE.labels.file_names)


def _assert_locations(root: Path, report: Report, findings: list) -> None:
    """Where a finding points must be a real place in the tree, named the dataset's way."""
    cases = {c.case for c in report.facts.cases}
    for f in findings:
        spec = REGISTRY[f.check_id]
        if spec.scope == "case":
            assert f.case, f"case-scope check {f.check_id} emitted a finding without a case: {f}"
        if f.case is not None and f.path is not None and f.path not in LABEL_FILES:
            # the case named is the case folder the path is in (or is); findings located
            # in a label file name the labelled case the row or cell belongs to
            assert f.case in PurePosixPath(f.path).parts, f
            assert f.case in cases, f
        if f.path is not None:
            assert not f.path.startswith("/") and "\\" not in f.path, f
            where = root / f.path
            if f.check_id == "integrity.missing_file":  # named by its folder (and line)
                assert where.is_dir() and "(line " in f.message, f
            else:
                assert os.path.lexists(where), f"finding points at a missing path: {f}"
        assert f.message
        assert f.waived is None


# --------------------------------------------------------------------------- defects


TREE = synth.tree_profile("tiny")


@pytest.fixture(scope="session")
def clean_tiny_tree_report(clean_tiny: Path) -> Report:
    """The clean tiny tree judged by a profile that expects exactly it."""
    return validate(clean_tiny, TREE, jobs=1)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_fires_exactly_its_checks(
    name: str, make_tree, clean_tiny_report, clean_tiny_tree_report
) -> None:
    defect = DEFECTS[name]
    root = make_tree()
    manifest = None
    if defect.manifest:  # the curators' manifest of the clean tree, kept outside it
        manifest = root.parent / f"{root.name}-manifest-sha256.txt"
        write_manifest(hash_files(root, jobs=1), manifest, root=root)
    options: dict = {"jobs": 1, "deep": defect.deep, "manifest": manifest}
    if defect.archive:  # the tree as downloaded: zipped, judged with the clean zip's MD5
        archive = synth.write_archive(root, root.parent / f"{root.name}.zip")
        options["archive_md5"] = hashlib.md5(archive.read_bytes()).hexdigest()
        root = archive
    synth.apply_defect(root, name)
    if defect.profile == "tree":
        report = validate(root, TREE, **options)
        new = new_findings(report, clean_tiny_tree_report)
    else:
        report = validate(root, "subset", **options)
        new = new_findings(report, clean_tiny_report)

    fired = {f.check_id for f in new}
    assert fired == EXPECTED[name], (
        f"defect {name!r}: unexpected {sorted(fired - EXPECTED[name])}, "
        f"missing {sorted(EXPECTED[name] - fired)}"
    )
    if not defect.archive:  # findings in an archive name members, not places on disk
        _assert_locations(root, report, new)
    assert [r.check_id for r in report.results if r.crashed] == []
    # a check that found something examined something
    for check_id in fired:
        assert report.result(check_id).status is not CheckStatus.SKIPPED
    validate_report(report.to_json())


def test_the_oracle_covers_every_defect() -> None:
    assert set(EXPECTED) == set(DEFECTS)


def test_every_check_has_a_defect() -> None:
    targeted = set().union(*(d.targets for d in DEFECTS.values()))
    assert set(REGISTRY) - targeted == set(), "checks no synthetic defect targets"
    assert targeted - set(REGISTRY) == set(), "defects target checks that are not registered"
    expected = set().union(*EXPECTED.values())
    assert expected - set(REGISTRY) == set(), "the oracle names checks that are not registered"


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_a_defect_targets_only_checks_it_fires(name: str) -> None:
    targets = DEFECTS[name].targets
    assert targets, f"defect {name!r} targets no check"
    assert targets <= EXPECTED[name], (
        f"defect {name!r} targets {sorted(targets - EXPECTED[name])} but does not fire them"
    )


def test_defect_names_and_descriptions() -> None:
    for name, defect in DEFECTS.items():
        assert defect.name == name
        assert defect.description


# --------------------------------------------------------------------------- clean trees


def test_clean_tiny_subset(clean_tiny_run: Run) -> None:
    report, scanned = clean_tiny_run.report, clean_tiny_run.scan
    assert report.valid
    assert report.count(Severity.ERROR) == 0
    assert report.count(Severity.WARNING) == 0
    assert {f.severity for f in report.findings} == {Severity.INFO}
    assert {f.check_id for f in report.findings} == {
        "counts.class",
        "structure.case_dir.missing",
        "labels.index.case_missing",
        "labels.version_diff",
    }
    # the labels cover all 79 labelled cases; one of each labelled class is present
    present = sorted(
        (f.expected, f.actual) for f in report.findings if f.check_id == "labels.index.case_missing"
    )
    assert present == [(25, 0), (54, 1)]
    # update 1 revises P001 and P006, at slice and lobe level
    diffs = sorted((f.case, f.path) for f in report.findings if f.check_id == "labels.version_diff")
    assert diffs == [
        (case, name)
        for case in ("P001", "P006")
        for name in ("Lobe-level-labels-updated-1.npy", "Slice-level-labels-updated-1.npy")
    ]

    # one finding per class for each, saying how much of the release is present
    release = {key: spec.expected_cases for key, spec in RELEASE.classes.items()}
    for check_id in ("counts.class", "structure.case_dir.missing"):
        got = sorted((f.expected, f.actual) for f in report.findings if f.check_id == check_id)
        assert got == sorted((n, 1) for n in release.values()), check_id
        for f in report.findings:
            if f.check_id == check_id:
                assert f.case is None and f.path is None

    assert set(scanned.cases["case_id"]) == TINY_IDS
    assert len(scanned.files) == TINY_FILES
    assert (scanned.files["status"] == "ok").all()
    assert (scanned.entries["role"] != "stray").all()

    statuses = {r.check_id: r.status for r in report.results}
    assert set(statuses) == set(REGISTRY)
    assert [c for c, s in statuses.items() if s is CheckStatus.FAILED] == []
    # No check is skipped but the two that need every case of a class and those that need
    # --deep or --manifest: each has something to look at in the tiny tree (3 class
    # folders, 3 cases all in the release manifest, 338 image files, the 305-case manifest
    # and the label files), so "skipped" here would mean a check silently examined nothing.
    skipped = [c for c, s in statuses.items() if s is CheckStatus.SKIPPED]
    assert set(skipped) == {"demographics.age", "demographics.sex"} | NEED_AN_OPTION
    assert all(s is CheckStatus.PASSED for c, s in statuses.items() if c not in skipped)

    examined = {r.check_id: r.examined for r in report.results}
    assert examined["dicom.unreadable"] == TINY_FILES
    assert examined["structure.file.extension"] == TINY_FILES
    assert examined["counts.case_slices"] == len(TINY)
    assert examined["structure.case_dir.missing"] == len(RELEASE.manifest)
    assert examined["counts.class"] == len(RELEASE.classes)
    validate_report(report.to_json())


def test_clean_tiny_release_profile(clean_tiny: Path) -> None:
    report = validate(clean_tiny, "release", jobs=1)
    assert not report.valid
    assert report.exit_code == 1
    errors = [f for f in report.active if f.severity is Severity.ERROR]
    assert {f.check_id for f in errors} == {
        "structure.case_dir.missing",
        "counts.class",
        "labels.index.case_missing",
    }
    assert report.count(Severity.WARNING) == 0
    # what update 1 changed is information under any profile
    assert {f.check_id for f in report.active if f.severity is Severity.INFO} == {
        "labels.version_diff"
    }
    labelled_absent = [f for f in errors if f.check_id == "labels.index.case_missing"]
    assert len(labelled_absent) == 79 - 1  # one error per absent labelled case
    assert all(f.path is None and f.actual is None for f in labelled_absent)

    missing = [f for f in errors if f.check_id == "structure.case_dir.missing"]
    absent = sorted(set(RELEASE.manifest) - TINY_IDS)
    assert sorted(f.case for f in missing) == absent  # one finding per absent case
    assert len(missing) == len(RELEASE.manifest) - len(TINY)
    for f in missing:
        assert f.path is None
        assert f.expected == f.case and f.actual is None

    counts = sorted((f.expected, f.actual) for f in errors if f.check_id == "counts.class")
    assert counts == sorted((s.expected_cases, 1) for s in RELEASE.classes.values())

    failed = {r.check_id for r in report.results if r.status is CheckStatus.FAILED}
    assert failed == {
        "structure.case_dir.missing",
        "counts.class",
        "labels.index.case_missing",
    }
    validate_report(report.to_json())


# --------------------------------------------------------------------------- layouts


def test_sample_layout(make_tree, clean_tiny_report: Report) -> None:
    root = make_tree(layout="sample")
    result = run_validation(root, "subset", jobs=1)
    report, scanned = result.report, result.scan
    new = new_findings(report, clean_tiny_report)
    assert [(f.check_id, f.severity, f.case, f.path, f.expected, f.actual) for f in new] == [
        (
            "structure.class_dir.alias",
            Severity.WARNING,
            None,
            "Sample data/Cap subjects",
            "CAP subjects",
            "Cap subjects",
        )
    ]
    assert report.valid
    assert set(scanned.cases["case_id"]) == TINY_IDS
    assert len(scanned.files) == TINY_FILES
    assert sorted(scanned.class_dirs["path"]) == [
        "Sample data/COVID-19 subjects",
        "Sample data/Cap subjects",
        "Sample data/Normal subjects",
    ]
    # the container folder is part of the layout, not stray
    assert (scanned.entries["role"] != "stray").all()


def test_figshare_layout(make_tree, clean_tiny_report: Report) -> None:
    root = make_tree(layout="figshare")
    result = run_validation(root, "subset", jobs=1)
    report, scanned = result.report, result.scan
    new = new_findings(report, clean_tiny_report)
    assert {f.check_id for f in new} == {"structure.class_dir.alias"}
    got = sorted((f.severity, f.path, f.expected, f.actual) for f in new)
    assert got == sorted(
        [
            (Severity.WARNING, "COVID-19 Cases", "COVID-19 subjects", "COVID-19 Cases"),
            (Severity.WARNING, "Cap Cases", "CAP subjects", "Cap Cases"),
            (Severity.WARNING, "Normal Cases", "Normal subjects", "Normal Cases"),
        ]
    )
    assert report.valid
    assert set(scanned.cases["case_id"]) == TINY_IDS
    assert len(scanned.files) == TINY_FILES


def test_sample_layout_matches_real_sample(sample_root: Path) -> None:
    """The synthetic 'sample' layout spells its folders like the real public sample."""
    container, names = synth.LAYOUTS["sample"]
    assert container is not None
    real = sorted(p.name for p in (sample_root / container).iterdir() if p.is_dir())
    assert real == sorted(names.values())
