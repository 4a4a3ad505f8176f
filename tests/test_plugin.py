"""The pytest plugin: ``pytest --dataset-root=PATH`` turns every check into test items."""


# ruff: noqa: E402

pytest_plugins = ["pytester"]

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import snapshot
from ctmd_validate import pytest_plugin, validate
from ctmd_validate.checks import REGISTRY
from ctmd_validate.findings import CheckStatus, Severity
from ctmd_validate.report import Report, validate_report

PLUGIN = ("-p", "ctmd_validate.pytest_plugin")


def glob_escape(text: str) -> str:
    """Escape fnmatch's special characters (item names contain brackets)."""
    special = {"[": "[[]", "]": "[]]", "*": "[*]", "?": "[?]"}
    return "".join(special.get(c, c) for c in text)


def case_ids(report: Report) -> list[str]:
    return sorted({c.case for c in report.facts.cases})


def item_cases(report: Report, check_id: str) -> list[str]:
    """Cases of a per-case check's items: every present case, and every case it names."""
    named = {f.case for f in report.result(check_id).findings if f.case}
    return sorted(set(case_ids(report)) | named)


def item_names(report: Report) -> list[str]:
    """The item names the plugin must collect for this report's dataset."""
    names = []
    for check_id, spec in sorted(REGISTRY.items()):
        if spec.scope == "case":
            names.extend(f"{check_id}[{case}]" for case in item_cases(report, check_id))
        else:
            names.append(check_id)
    return names


def expected_outcomes(report: Report) -> dict[str, set[str]]:
    """Which items must fail, warn (and pass) or be skipped, from the in-process report."""
    out: dict[str, set[str]] = {"failed": set(), "warned": set(), "skipped": set()}
    for check_id, spec in REGISTRY.items():
        result = report.result(check_id)
        cases: list[str | None] = [None]
        if spec.scope == "case":
            cases = list(item_cases(report, check_id))
        for case in cases:
            name = check_id if case is None else f"{check_id}[{case}]"
            if result.status is CheckStatus.SKIPPED:
                out["skipped"].add(name)
                continue
            mine = [f for f in result.active if case is None or f.case == case]
            if any(f.severity is Severity.ERROR for f in mine):
                out["failed"].add(name)
            elif any(f.severity is Severity.WARNING for f in mine):
                out["warned"].add(name)
    return out


def n_items(n_cases: int) -> int:
    dataset = sum(1 for s in REGISTRY.values() if s.scope != "case")
    per_case = sum(1 for s in REGISTRY.values() if s.scope == "case")
    return dataset + per_case * n_cases


def test_item_names_follow_the_registry(clean_tiny_report):
    assert len(item_names(clean_tiny_report)) == n_items(len(case_ids(clean_tiny_report)))


# --------------------------------------------------------------------------- subprocess runs


def test_clean_tree_all_items_pass(pytester, clean_tiny, clean_tiny_report):
    result = pytester.runpytest_subprocess(
        "--dataset-root", str(clean_tiny), "--ctmd-profile", "subset", *PLUGIN, "-v"
    )
    n_cases = len(case_ids(clean_tiny_report))
    assert n_cases == 3
    total = n_items(n_cases)
    skipped = len(expected_outcomes(clean_tiny_report)["skipped"])
    result.assert_outcomes(passed=total - skipped, skipped=skipped)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*collected {total} items*"])
    for name in item_names(clean_tiny_report):
        if name not in expected_outcomes(clean_tiny_report)["skipped"]:
            result.stdout.fnmatch_lines([f"*ctmd::{glob_escape(name)} PASSED*"])


def test_defects_fail_the_right_items_and_report_is_written(pytester, make_tree):
    tree = make_tree(["missing-slice", "truncated-file"])
    expected = validate(tree, "subset", jobs=1)
    outcomes = expected_outcomes(expected)
    errors = [f for f in expected.active if f.severity is Severity.ERROR]
    # the deleted interior slice also leaves a hole in the stack and in the Instance
    # Numbers; the truncated slice is the last of its stack: no hole there
    case_of = {c.class_label: c.case for c in expected.facts.cases}
    covid, cap = case_of["COVID-19"], case_of["CAP"]
    assert sorted((f.check_id, f.case) for f in errors) == [
        ("counts.case_slices", covid),
        ("dicom.unreadable", cap),
        ("geometry.instance_number", covid),
        ("geometry.spacing.missing_slice", covid),
    ]
    assert outcomes["failed"] == {
        f"counts.case_slices[{covid}]",
        f"dicom.unreadable[{cap}]",
        f"geometry.instance_number[{covid}]",
        f"geometry.spacing.missing_slice[{covid}]",
    }

    report_file = pytester.path / "out" / "ctmd-report.json"
    report_file.parent.mkdir()
    result = pytester.runpytest_subprocess(
        "--dataset-root",
        str(tree),
        "--ctmd-profile",
        "subset",
        *PLUGIN,
        "-v",
        "-rf",
        "--ctmd-report",
        str(report_file),
    )
    total = len(item_names(expected))
    result.assert_outcomes(
        failed=len(outcomes["failed"]),
        passed=total - len(outcomes["failed"]) - len(outcomes["skipped"]),
        skipped=len(outcomes["skipped"]),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for name in outcomes["failed"]:
        result.stdout.fnmatch_lines([f"*ctmd::{glob_escape(name)} FAILED*"])
        result.stdout.fnmatch_lines([f"FAILED *ctmd::{glob_escape(name)}*"])  # short summary
    result.stdout.fnmatch_lines(
        [
            "*counts.case_slices?*? FAILED*",
            "*dicom.unreadable?*? FAILED*",
            "*geometry.instance_number?*? FAILED*",
            "*geometry.spacing.missing_slice?*? FAILED*",
        ]
    )
    text = result.stdout.str()
    for f in errors:
        assert f.path, f
        assert f.path in text, f"failure message lacks the finding's path {f.path}"
        assert f.message in text

    data = json.loads(report_file.read_text(encoding="utf-8"))
    validate_report(data)
    assert data["valid"] is False
    assert data["dataset_root"] == str(tree.resolve())
    got = sorted((f["id"], f["case"], f["path"], f["message"]) for f in data["findings"])
    want = sorted((f.check_id, f.case, f.path, f.message) for f in expected.findings)
    assert got == want


def test_warning_only_defect_passes_with_warnings(pytester, make_tree):
    tree = make_tree(["stray-file"])
    expected = validate(tree, "subset", jobs=1)
    outcomes = expected_outcomes(expected)
    assert outcomes["failed"] == set()
    assert outcomes["warned"] == {"structure.stray_file"}
    warnings = [f for f in expected.active if f.severity is Severity.WARNING]
    assert len(warnings) == 2

    result = pytester.runpytest_subprocess(
        "--dataset-root", str(tree), "--ctmd-profile", "subset", *PLUGIN, "-v"
    )
    total = len(item_names(expected))
    result.assert_outcomes(
        passed=total - len(outcomes["skipped"]), skipped=len(outcomes["skipped"])
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*ctmd::structure.stray_file PASSED*", "*CtmdWarning*"])
    text = result.stdout.str()
    assert text.count("CtmdWarning: ") == len(warnings)
    for f in warnings:
        assert f.path in text


@pytest.fixture
def foreign_cwd():
    """An empty working folder that shares no folder but '/' with the pytest temp folders.

    That is the usual situation of a dataset on its own disk (``/data/COVID-CT-MD``) validated
    from a project folder (``/home/me/project``).
    """
    base = next((b for b in ("/var/tmp", "/dev/shm") if os.access(b, os.W_OK)), None)
    here = Path(tempfile.gettempdir()).resolve()
    if base is None or Path(base).resolve().parts[1] == here.parts[1]:
        pytest.skip("no writable folder outside the temp folder's top-level folder")
    cwd = Path(tempfile.mkdtemp(prefix="ctmd-cwd-", dir=base))
    yield cwd
    shutil.rmtree(cwd, ignore_errors=True)


def test_plugin_run_never_writes_into_dataset(make_tree, foreign_cwd, tmp_path):
    """Run from an unrelated folder, a plugin run leaves the dataset as it was.

    pytest takes the value of an option it does not know yet (plugin options are registered
    after the rootdir is chosen) for a path argument: with ``--dataset-root PATH`` and
    nothing else in common the dataset would become the rootdir and the cache plugin would
    write ``.pytest_cache`` into it. The plugin refuses that run with a usage error that says
    how to write it; ``--dataset-root=PATH`` from the same folder works.
    """
    tree = make_tree()
    before = snapshot(tree)

    def run(*root_args):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *root_args,
                "--ctmd-profile",
                "subset",
                *PLUGIN,
                f"--basetemp={tmp_path / 'basetemp'}",
                "-q",
            ],
            cwd=foreign_cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )

    refused = run("--dataset-root", str(tree))
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "--dataset-root=PATH" in refused.stderr
    assert snapshot(tree) == before, "the refused run wrote into the dataset"

    proc = run(f"--dataset-root={tree}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = snapshot(tree)
    assert sorted(set(after) - set(before)) == [], "the plugin run wrote into the dataset"
    assert after == before


# --------------------------------------------------------------------------- in-process runs


def test_k_selects_only_that_item(pytester, clean_tiny, clean_tiny_report):
    result = pytester.runpytest_inprocess(
        "--dataset-root", str(clean_tiny), "--ctmd-profile", "subset", *PLUGIN, "-k", "stray_file"
    )
    total = n_items(len(case_ids(clean_tiny_report)))
    result.assert_outcomes(passed=1, deselected=total - 1)
    assert result.ret == 0


def test_without_dataset_root_no_items_are_collected(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_inprocess(*PLUGIN, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*collected 1 item*"])
    result.stdout.no_fnmatch_line("*ctmd::*")
    assert result.ret == 0


def test_nonexistent_dataset_root_is_a_usage_error(pytester, tmp_path):
    missing = tmp_path / "no-such-dataset"
    result = pytester.runpytest_inprocess("--dataset-root", str(missing), *PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dataset-root*{missing}*"])
    assert not missing.exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--ctmd-profile", "no-such-profile"), ("--ctmd-config", "absent-config.toml")],
)
def test_bad_profile_or_config_is_a_usage_error(pytester, clean_tiny, option, value):
    result = pytester.runpytest_inprocess("--dataset-root", str(clean_tiny), option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{value}*"])


def test_ctmd_report_inside_dataset_is_refused(pytester, make_tree):
    """Like ``ctmd-validate check --report``, the plugin never writes its report into the data."""
    tree = make_tree()
    before = snapshot(tree)
    result = pytester.runpytest_inprocess(
        f"--dataset-root={tree}",
        "--ctmd-profile=subset",
        "--ctmd-jobs=1",
        f"--ctmd-report={tree / 'report.json'}",
        "-k",
        "class_dir",
    )
    assert snapshot(tree) == before, "the plugin wrote its report into the dataset"
    assert result.ret != pytest.ExitCode.OK


def test_ctmd_report_creates_missing_parent_folders(pytester, clean_tiny):
    """Like ``ctmd-validate check --report``, missing parent folders of the report are created."""
    target = pytester.path / "reports" / "nested" / "ctmd.json"
    result = pytester.runpytest_inprocess(
        f"--dataset-root={clean_tiny}",
        "--ctmd-profile=subset",
        "--ctmd-jobs=1",
        f"--ctmd-report={target}",
        "-k",
        "class_dir",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    validate_report(json.loads(target.read_text(encoding="utf-8")))


def test_dataset_is_scanned_once_per_session(pytester, clean_tiny, clean_tiny_report, monkeypatch):
    calls: list[Path] = []
    real = pytest_plugin.validate

    def counting(root, *args, **kwargs):
        calls.append(Path(root))
        return real(root, *args, **kwargs)

    monkeypatch.setattr(pytest_plugin, "validate", counting)
    result = pytester.runpytest_inprocess(
        "--dataset-root",
        str(clean_tiny),
        "--ctmd-profile",
        "subset",
        "--ctmd-jobs",
        "1",
        "--ctmd-report",
        str(pytester.path / "report.json"),
    )
    total = n_items(len(case_ids(clean_tiny_report)))
    skipped = len(expected_outcomes(clean_tiny_report)["skipped"])
    result.assert_outcomes(passed=total - skipped, skipped=skipped)
    assert calls == [clean_tiny], f"validate called {len(calls)} times"
    validate_report(json.loads((pytester.path / "report.json").read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- real sample


@pytest.mark.real_sample
def test_real_sample_plugin_run(pytester, sample_root, sample_report):
    outcomes = expected_outcomes(sample_report)
    # the sample's genuine problems (see test_real_sample.py) must show up as items
    assert any(n.startswith("counts.case_slices[") for n in outcomes["failed"])
    assert {"structure.stray_file", "structure.class_dir.alias"} <= outcomes["warned"]

    before = snapshot(sample_root)
    # '--dataset-root=PATH' (one argument) and no cache plugin: pytest must not pick the
    # read-only sample as its rootdir and write .pytest_cache into it (see
    # test_plugin_run_never_writes_into_dataset)
    result = pytester.runpytest_subprocess(
        f"--dataset-root={sample_root}",
        "--ctmd-profile",
        "subset",
        *PLUGIN,
        "-p",
        "no:cacheprovider",
        "-v",
        "-rf",
    )
    assert snapshot(sample_root) == before
    total = len(item_names(sample_report))
    n_failed, n_skipped = len(outcomes["failed"]), len(outcomes["skipped"])
    result.assert_outcomes(
        failed=n_failed,
        passed=total - n_failed - n_skipped,
        skipped=n_skipped,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for name in outcomes["failed"]:
        result.stdout.fnmatch_lines([f"*ctmd::{glob_escape(name)} FAILED*"])
    for name in outcomes["warned"]:
        result.stdout.fnmatch_lines([f"*ctmd::{glob_escape(name)} PASSED*"])
    text = result.stdout.str()
    n_warnings = sum(1 for f in sample_report.active if f.severity is Severity.WARNING)
    assert text.count("CtmdWarning: ") == n_warnings
    for f in sample_report.active:
        if f.severity in (Severity.ERROR, Severity.WARNING) and f.path:
            assert f.path in text, f.path


def test_ctmd_labels_option(pytester, make_tree, tmp_path):
    """``--ctmd-labels DIR`` finds label files kept outside the dataset tree."""
    tree = make_tree()
    elsewhere = tmp_path / "labels"
    elsewhere.mkdir()
    for name in ("Index.csv", *(p.name for p in tree.glob("*.npy"))):
        (tree / name).rename(elsewhere / name)
    report_file = pytester.path / "r.json"
    result = pytester.runpytest_inprocess(
        f"--dataset-root={tree}",
        "--ctmd-profile=subset",
        "--ctmd-jobs=1",
        f"--ctmd-labels={elsewhere}",
        f"--ctmd-report={report_file}",
        "-k",
        "labels",
    )
    assert result.ret == pytest.ExitCode.OK
    data = json.loads(report_file.read_text(encoding="utf-8"))
    assert [f for f in data["findings"] if f["id"].startswith("labels.file.")] == []
    assert data["inferred"]["label_slice_order"]["value"] == "slice_location_descending"
    bad = pytester.runpytest_inprocess(
        f"--dataset-root={tree}", f"--ctmd-labels={tmp_path / 'absent'}", *PLUGIN
    )
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--ctmd-labels*absent*"])


def test_findings_on_cases_without_images_get_items(pytester, make_tree):
    """A per-case label finding on a labelled case whose images are absent still fails CI."""
    tree = make_tree(["labels-capacity"])
    expected = validate(tree, "subset", jobs=1)
    capacity = expected.result("labels.capacity").findings
    absent = sorted({f.case for f in capacity} - set(case_ids(expected)))
    assert absent, "the defect should judge labelled cases that have no images here"
    result = pytester.runpytest_inprocess(
        f"--dataset-root={tree}",
        "--ctmd-profile=subset",
        "--ctmd-jobs=1",
        *PLUGIN,
        "-k",
        "labels.capacity",
        "-v",
    )
    result.assert_outcomes(
        failed=len({f.case for f in capacity}),
        passed=len(case_ids(expected)) - len({f.case for f in capacity} & set(case_ids(expected))),
    )
    for case in absent:
        result.stdout.fnmatch_lines([f"*ctmd::{glob_escape(f'labels.capacity[{case}]')} FAILED*"])


def test_failed_pytest_item_message_carries_the_fix(pytester, make_tree):
    root = make_tree(["missing-slice"])
    result = pytester.runpytest_subprocess(
        f"--dataset-root={root}", "--ctmd-profile=subset", "-p", "no:cacheprovider", "-q"
    )
    assert result.parseoutcomes()["failed"] == 3
    result.stdout.fnmatch_lines([f"Fix: {REGISTRY['counts.case_slices'].fix}"])


def test_the_plugin_checks_an_archive_as_downloaded(pytester, make_tree, tmp_path):
    from ctmd_validate.synth import apply_defect, write_archive

    archive = write_archive(make_tree(), tmp_path / "COVID-CT-MD.zip")
    apply_defect(archive, "archive-zip-slip")
    result = pytester.runpytest_subprocess(
        f"--dataset-root={archive}", "--ctmd-profile=subset", "-p", "no:cacheprovider", "-q"
    )
    result.stdout.fnmatch_lines(["*ctmd::archive.unsafe_member*", "*1 failed*"])
