"""The ``ctmd-validate`` command line: exit codes, output, reports, synth, demo, catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import LABEL_FILES, run_cli, snapshot
from ctmd_validate import cli
from ctmd_validate.checks import REGISTRY
from ctmd_validate.report import validate_report

ESC = "\x1b"


def finding_keys(data: dict) -> list[tuple]:
    return [
        (f["id"], f["severity"], f["case"], f["path"], f["message"], f.get("waived"))
        for f in data["findings"]
    ]


def console_script() -> Path:
    name = "ctmd-validate.exe" if os.name == "nt" else "ctmd-validate"
    script = Path(sys.executable).parent / name
    if not script.exists():
        pytest.fail(f"console script not installed next to {sys.executable}")
    return script


# --------------------------------------------------------------------------- check


def test_check_clean_subset_exits_0_and_prints_summary(clean_tiny, capsys):
    rc, out, _err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--jobs", "1")
    assert rc == 0
    assert "VALID: 0 errors" in out
    assert "INVALID" not in out
    assert "3 cases" in out
    assert "profile 'subset'" in out
    assert "checks:" in out
    assert "report:" not in out  # no --report, no report line


def test_no_tty_means_no_progress_bar(clean_tiny, capsys):
    """Captured stderr is not a terminal: only the summary is printed, no ANSI escapes."""
    assert not sys.stderr.isatty()
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--jobs", "1")
    assert rc == 0
    assert err == ""
    assert ESC not in out
    assert out.startswith("ctmd-validate ")
    assert out.rstrip().splitlines()[-1].startswith("checks:")


def test_check_defect_exits_1(make_tree, capsys):
    tree = make_tree(["missing-slice"])
    rc, out, err = run_cli(capsys, "check", tree, "--profile", "subset", "--jobs", "1")
    assert rc == 1
    assert "INVALID" in out
    assert "counts.case_slices" in out
    assert err == ""


def test_nonexistent_root_exits_2(tmp_path, capsys):
    missing = tmp_path / "no-such-dataset"
    rc, out, err = run_cli(capsys, "check", missing, "--profile", "subset")
    assert rc == 2
    assert out == ""
    assert err.startswith("ctmd-validate: error:")
    assert str(missing) in err
    assert not missing.exists()


def test_unknown_profile_exits_2(clean_tiny, capsys):
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--profile", "no-such-profile")
    assert rc == 2
    assert out == ""
    assert "ctmd-validate: error:" in err
    assert "no-such-profile" in err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.toml", "[severity\n"),
        ("bad.json", "{not json"),
        ("keys.toml", "[nonsense]\nx = 1\n"),
        ("unknown-id.toml", '[severity]\n"no.such.check" = "info"\n'),
        ("level.toml", '[severity]\n"structure.stray_file" = "fatal"\n'),
        ("reason.toml", '[[waive]]\nid = "structure.stray_file"\n'),
    ],
)
def test_malformed_config_exits_2(clean_tiny, tmp_path, capsys, name, text):
    config = tmp_path / name
    config.write_text(text, encoding="utf-8")
    rc, _out, err = run_cli(
        capsys, "check", clean_tiny, "--profile", "subset", "--config", config, "--jobs", "1"
    )
    assert rc == 2
    assert "ctmd-validate: error:" in err
    assert str(config) in err


def test_missing_config_exits_2(clean_tiny, tmp_path, capsys):
    config = tmp_path / "absent.toml"
    rc, _out, err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--config", config)
    assert rc == 2
    assert str(config) in err


# --------------------------------------------------------------------------- --report


def test_report_file_is_schema_valid(make_tree, tmp_path, capsys):
    tree = make_tree(["stray-file"])
    target = tmp_path / "out" / "nested" / "report.json"
    rc, out, err = run_cli(
        capsys, "check", tree, "--profile", "subset", "--report", target, "--jobs", "1"
    )
    assert rc == 0
    assert err == ""
    assert f"report: {target}" in out
    data = json.loads(target.read_text(encoding="utf-8"))
    validate_report(data)
    assert data["dataset_root"] == str(tree.resolve())
    assert data["profile"]["name"] == "subset"
    assert data["valid"] is True
    assert any(f["id"] == "structure.stray_file" for f in data["findings"])


def test_report_dash_prints_only_json(make_tree, capsys):
    tree = make_tree(["missing-slice"])
    rc, out, err = run_cli(capsys, "check", tree, "--profile", "subset", "--report", "-")
    assert rc == 1
    assert err == ""
    data = json.loads(out)  # the whole of stdout is one JSON document
    validate_report(data)
    assert data["valid"] is False
    assert "report:" not in out.replace('"report_version"', "")


@pytest.mark.parametrize("where", ["root", "nested", "class-dir", "relative"])
def test_report_inside_dataset_is_refused(make_tree, capsys, monkeypatch, where):
    tree = make_tree()
    targets = {
        "root": tree / "report.json",
        "nested": tree / "new-folder" / "report.json",
        "class-dir": tree / "COVID-19 subjects" / "report.json",
        "relative": Path("report.json"),
    }
    if where == "relative":
        monkeypatch.chdir(tree)
    before = snapshot(tree)
    rc, _out, err = run_cli(
        capsys, "check", tree, "--profile", "subset", "--report", targets[where], "--jobs", "1"
    )
    assert rc == 2
    assert "inside the dataset" in err
    assert snapshot(tree) == before, "the validator wrote into the dataset"


def test_check_never_writes_into_dataset(make_tree, tmp_path, capsys):
    tree = make_tree(["stray-file", "truncated-file", "missing-slice"])
    before = snapshot(tree)
    rc, _out, _err = run_cli(
        capsys, "check", tree, "--profile", "subset", "--report", tmp_path / "r.json"
    )
    assert rc == 1
    assert snapshot(tree) == before
    rc, _out, _err = run_cli(capsys, "check", tree, "--profile", "release", "--report", "-")
    assert rc == 1
    assert snapshot(tree) == before


def test_jobs_1_and_2_give_identical_findings(make_tree, tmp_path, capsys):
    tree = make_tree(["stray-file", "truncated-file", "missing-slice", "not-dicom"])
    reports = {}
    for jobs in (1, 2):
        target = tmp_path / f"jobs{jobs}.json"
        rc, _out, _err = run_cli(
            capsys,
            "check",
            tree,
            "--profile",
            "subset",
            "--jobs",
            jobs,
            "--report",
            target,
            "--no-cache",
        )
        assert rc == 1
        reports[jobs] = json.loads(target.read_text(encoding="utf-8"))
    one, two = reports[1], reports[2]
    assert one["scan"]["jobs"] == 1
    assert two["scan"]["jobs"] == 2
    assert one["summary"]["files"] >= 64  # enough files for the parallel path
    assert finding_keys(one) == finding_keys(two)
    assert one["findings"] == two["findings"]
    assert one["checks"] == two["checks"]
    assert one["summary"] == two["summary"]


# --------------------------------------------------------------------------- synth, demo


def test_synth_writes_a_tree_with_the_defect(tmp_path, capsys):
    out_dir = tmp_path / "synth"
    rc, out, err = run_cli(
        capsys, "synth", out_dir, "--scale", "tiny", "--defect", "stray-file", "--jobs", "1"
    )
    assert rc == 0
    assert err == ""
    n_dcm = sum(1 for _ in out_dir.rglob("*.dcm"))
    assert n_dcm > 0
    assert f"{n_dcm} DICOM files" in out
    assert "defect stray-file" in out
    assert (out_dir / "Index.csv").is_file()
    assert list(out_dir.rglob(".DS_Store"))
    rc, out, _err = run_cli(capsys, "check", out_dir, "--profile", "subset", "--jobs", "1")
    assert rc == 0
    assert "structure.stray_file" in out


def test_synth_into_non_empty_folder_exits_2(tmp_path, capsys):
    out_dir = tmp_path / "busy"
    out_dir.mkdir()
    keep = out_dir / "keep.txt"
    keep.write_text("mine\n")
    rc, _out, err = run_cli(capsys, "synth", out_dir, "--scale", "tiny")
    assert rc == 2
    assert "ctmd-validate: error:" in err
    assert "not empty" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]
    assert keep.read_text() == "mine\n"


def test_synth_unknown_defect_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["synth", str(tmp_path / "x"), "--defect", "no-such-defect"])
    assert exc.value.code == 2
    assert "no-such-defect" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_demo_exits_0_and_writes_its_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rc, out, err = run_cli(capsys, "demo", "--jobs", "2")
    assert rc == 0
    assert err == ""
    assert ESC not in out
    lines = [ln for ln in out.splitlines() if ln.startswith("report: ")]
    assert len(lines) == 1
    report_path = Path(lines[0].removeprefix("report: "))
    assert report_path.is_file()
    assert tmp_path in report_path.parents
    data = json.loads(report_path.read_text(encoding="utf-8"))
    validate_report(data)
    assert data["valid"] is True


# --------------------------------------------------------------------------- catalogue


def test_catalogue_has_a_row_per_check(capsys):
    rc, out, err = run_cli(capsys, "catalogue")
    assert rc == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("| id |")
    assert lines[1].startswith("|---")
    rows = {ln.split("|")[1].strip().strip("`"): ln for ln in lines[2:] if ln.startswith("| `")}
    assert set(rows) == set(REGISTRY)
    assert len(lines) == len(REGISTRY) + 2
    for check_id, row in rows.items():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 5, row
        assert cells[1] == REGISTRY[check_id].severity.value
        assert cells[2] == REGISTRY[check_id].scope
        assert cells[3], f"{check_id} has no description"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("ctmd-validate ")


# --------------------------------------------------------------------------- processes


def test_python_dash_m_report_to_stdout(clean_tiny):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctmd_validate",
            "check",
            str(clean_tiny),
            "--profile",
            "subset",
            "--jobs",
            "1",
            "--report",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert ESC not in proc.stdout
    data = json.loads(proc.stdout)
    validate_report(data)
    assert data["valid"] is True


def test_console_script_exit_codes(make_tree, tmp_path):
    tree = make_tree(["truncated-file"])
    before = snapshot(tree)
    proc = subprocess.run(
        [str(console_script()), "check", str(tree), "--profile", "subset", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""  # stderr is a pipe: no progress bar
    assert ESC not in proc.stdout
    assert "dicom.unreadable" in proc.stdout
    assert snapshot(tree) == before
    proc = subprocess.run(
        [str(console_script()), "check", str(tmp_path / "absent"), "--profile", "subset"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "ctmd-validate: error:" in proc.stderr


# --------------------------------------------------------------------------- labels


def test_labels_option_reads_label_files_from_another_folder(make_tree, tmp_path, capsys):
    tree = make_tree()
    elsewhere = tmp_path / "labels"
    elsewhere.mkdir()
    for name in LABEL_FILES:
        (tree / name).rename(elsewhere / name)
    out = tmp_path / "r.json"
    # without --labels: every label file is missing (info under subset), nothing else breaks
    rc, _o, _e = run_cli(capsys, "check", tree, "--profile", "subset", "--report", out, "--quiet")
    data = json.loads(out.read_text(encoding="utf-8"))
    missing = [f for f in data["findings"] if f["id"] == "labels.file.missing"]
    assert rc == 0 and sorted(f["expected"] for f in missing) == sorted(LABEL_FILES)
    assert data["inferred"]["label_slice_order"]["value"] == "undetermined"
    # with --labels: found, judged, and the slice order inferred
    rc, stdout, _e = run_cli(
        capsys, "check", tree, "--profile", "subset", "--labels", elsewhere, "--report", out
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    validate_report(data)
    assert rc == 0
    assert not [f for f in data["findings"] if f["id"].startswith("labels.file.")]
    assert data["stats"]["labels"]["directory"] == str(elsewhere)
    assert data["stats"]["labels"]["versions"]["original"]["reproduces_published"] is True
    assert data["inferred"]["label_slice_order"]["value"] == "slice_location_descending"
    assert "labels: slice order slice_location_descending" in stdout
    assert "infected slices: original 4957 (= published 4957), updated-1 4993" in stdout


def test_labels_option_missing_folder_exits_2(clean_tiny, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--labels", tmp_path / "absent")
    assert rc == 2
    assert "labels folder" in err and out == ""
