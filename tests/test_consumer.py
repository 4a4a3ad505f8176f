"""The consumer's check: advice where the finding is, baselines, integrity mode, console."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from defect_oracle import EXPECTED

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import CLASS_DIR, TINY_CASES, run_cli
from ctmd_validate import cli, synth
from ctmd_validate.checks import REGISTRY, check_ids
from ctmd_validate.engine import MODES, validate
from ctmd_validate.report import validate_report


def check(capsys, root: Path, *extra: object) -> tuple[int, str, dict]:
    report = root.parent / f"{root.name}-report-{len(list(root.parent.iterdir()))}.json"
    rc, out, _err = run_cli(
        capsys, "check", root, "--profile", "subset", "--jobs", "1", "--report", report, *extra
    )
    return rc, out, json.loads(report.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- advice


def test_every_check_has_fix_advice():
    for check_id, spec in REGISTRY.items():
        assert spec.fix, f"{check_id}: docstring without 'Fix:' text"
        assert "Fix:" not in spec.why, check_id


def test_report_carries_title_and_fix_per_check(clean_tiny_report):
    data = clean_tiny_report.to_json()
    validate_report(data)
    by_id = {c["id"]: c for c in data["checks"]}
    assert set(by_id) == set(REGISTRY)
    for check_id, entry in by_id.items():
        assert entry["fix"] == REGISTRY[check_id].fix
        assert entry["title"] == REGISTRY[check_id].title


def test_explain_prints_meaning_and_fix(capsys):
    rc, out, _ = run_cli(capsys, "explain", "counts.case_slices")
    assert rc == 0
    assert out.startswith("counts.case_slices  (error, per case)")
    assert "Fix: re-download the case" in out


def test_explain_takes_a_pattern(capsys):
    rc, out, _ = run_cli(capsys, "explain", "labels.index.*")
    assert rc == 0
    for check_id in check_ids(["labels.index.*"]):
        assert check_id in out
    assert out.count("Fix:") == len(check_ids(["labels.index.*"]))


def test_explain_unknown_id_is_a_usage_error_with_suggestions(capsys):
    rc, out, err = run_cli(capsys, "explain", "count.clas")
    assert rc == 2
    assert out == ""
    assert "no check id matches" in err
    assert "counts.class" in err


def test_summary_shows_fix_under_each_group(make_tree, capsys):
    root = make_tree(["missing-slice"])
    rc, out, _ = check(capsys, root)
    assert rc == 1
    assert f"fix: {REGISTRY['counts.case_slices'].fix}" in out


# --------------------------------------------------------------------------- console


def test_max_lines_0_shows_every_finding(make_tree, capsys):
    root = make_tree(["stray-file"])
    _rc, out, data = check(capsys, root, "--max-lines", "1")
    strays = [f for f in data["findings"] if f["id"] == "structure.stray_file"]
    assert len(strays) >= 2
    assert "more (--max-lines 0 shows all)" in out
    _rc, out, _ = check(capsys, root, "--max-lines", "0")
    assert "more (--max-lines" not in out
    for f in strays:
        assert f"{f['path']}: {f['message']}" in out


def test_max_lines_refuses_a_negative_number(clean_tiny, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", str(clean_tiny), "--max-lines", "-1"])
    assert exc.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err


def test_errors_only_hides_warnings_but_keeps_the_counts(make_tree, capsys):
    root = make_tree(["stray-file", "missing-slice"])
    _rc, out, data = check(capsys, root)
    assert "structure.stray_file" in out
    rc, out, data2 = check(capsys, root, "--errors-only")
    assert rc == 1
    assert "structure.stray_file" not in out
    assert "counts.case_slices" in out
    assert f"{data['summary']['warning']} warnings" in out
    assert data2["summary"] == data["summary"]  # the report keeps every finding


def test_by_case_lists_each_case_with_findings(make_tree, capsys):
    root = make_tree(["missing-slice"])
    _rc, out, data = check(capsys, root, "--by-case")
    case = TINY_CASES["covid"].case_id  # missing-slice breaks the first COVID-19 case
    assert "cases with findings: 1 of 3" in out
    line = next(x for x in out.splitlines() if x.strip().startswith(case))
    row = next(c for c in data["cases"] if c["case"] == case)
    assert f"{row['error']} errors" in line
    assert row["error"] >= 3


def test_report_cases_section_matches_the_tree(clean_tiny_run):
    data = clean_tiny_run.report.to_json()
    cases = {c["case"]: c for c in data["cases"]}
    assert set(cases) == set(clean_tiny_run.scan.cases["case_id"])
    for row in clean_tiny_run.scan.cases.itertuples():
        entry = cases[row.case_id]
        assert entry["files"] == row.n_files == entry["readable"]
        geometry = entry["geometry"]
        assert geometry["rows"] and geometry["slice_thickness"] and geometry["pixel_spacing"]
        assert geometry["z_extent"] == pytest.approx(2.0 * (row.n_files - 1))
        assert entry["error"] == entry["warning"] == 0


def test_stats_carry_age_bins_and_lobe_counts(clean_tiny_report):
    stats = clean_tiny_report.to_json()["stats"]
    for entry in stats["demographics"].values():
        assert sum(entry["age_bins"].values()) == entry["ages_in_years"]
    for version in stats["labels"]["versions"].values():
        by_lobe = version["positive_cells_by_lobe"]
        assert list(by_lobe) == list(clean_tiny_report.facts.profile.labels.lobes)
        assert sum(by_lobe.values()) == version["positive_lobe_cells"]


# --------------------------------------------------------------------------- baseline


def test_baseline_turns_shipped_findings_into_known(make_tree, capsys):
    root = make_tree(["type1-missing", "stray-file"])
    rc, _out, first = check(capsys, root)
    assert rc == 1 and first["summary"]["error"] > 0
    baseline = root.parent / "baseline.json"
    baseline.write_text(json.dumps(first), encoding="utf-8")

    rc, out, again = check(capsys, root, "--baseline", baseline)
    assert rc == 0
    validate_report(again)
    assert "VALID: 0 errors, 0 warnings, 0 info" in out
    assert f"{len(first['findings'])} known from the baseline" in out
    assert again["summary"]["known"] == len(first["findings"])
    assert again["baseline"].endswith("baseline.json")
    assert all(f.get("known") for f in again["findings"])


def test_baseline_lets_only_new_problems_fail(make_tree, capsys):
    root = make_tree(["sop-class"])
    _rc, _out, first = check(capsys, root)
    baseline = root.parent / "baseline.json"
    baseline.write_text(json.dumps(first), encoding="utf-8")
    synth.apply_defect(root, "missing-slice")  # damage after the release was shipped

    rc, _out, data = check(capsys, root, "--baseline", baseline)
    assert rc == 1
    counted = {f["id"] for f in data["findings"] if not f.get("known")}
    assert counted == EXPECTED["missing-slice"]
    known = {f["id"] for f in data["findings"] if f.get("known")}
    assert "dicom.sop_class" in known


def test_a_baseline_never_makes_an_empty_root_pass(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _rc, _out, first = check(capsys, empty)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(first), encoding="utf-8")
    rc, out, data = check(capsys, empty, "--baseline", baseline)
    assert rc == 1
    assert "INVALID" in out
    assert any(f["id"] == "structure.no_dataset" and not f.get("known") for f in data["findings"])


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b'{"tool": {"name": "other"}, "findings": []}', b"\xff\xfe"],
)
def test_a_bad_baseline_is_a_usage_error(clean_tiny, tmp_path, capsys, content):
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(content)
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--baseline", baseline)
    assert rc == 2
    assert "baseline" in err
    assert out == ""


# --------------------------------------------------------------------------- integrity mode


def test_integrity_mode_runs_only_the_integrity_checks(make_tree, capsys):
    root = make_tree(["type2-missing"])
    rc, out, data = check(capsys, root, "--mode", "integrity")
    assert rc == 0
    assert "integrity mode" in out
    assert data["mode"] == "integrity"
    ran = {c["id"] for c in data["checks"]}
    assert ran == set(check_ids(MODES["integrity"] or ()))
    assert not any(i.startswith(("deid.", "geometry.", "demographics.")) for i in ran)
    assert all(i.startswith("labels.file.") for i in ran if i.startswith("labels."))


@pytest.mark.parametrize("defect", ["truncated-file", "missing-slice", "stray-file"])
def test_integrity_mode_still_sees_a_damaged_copy(make_tree, defect):
    root = make_tree([defect])
    full = validate(root, "subset", jobs=1)
    integrity = validate(root, "subset", jobs=1, mode="integrity")
    expected = {i for i in EXPECTED[defect] if i in set(check_ids(MODES["integrity"]))}
    assert expected
    assert expected <= {f.check_id for f in integrity.active}
    assert integrity.exit_code == full.exit_code


def test_report_schema_knows_every_mode():
    from ctmd_validate.report import report_schema

    assert set(report_schema()["properties"]["mode"]["enum"]) == set(MODES)


# --------------------------------------------------------------------------- finding codes


def test_a_waiver_with_a_code_waives_only_that_kind(make_tree, tmp_path, capsys):
    """Gantry tilt and missing slices are both geometry.instance_number: waive tilt alone."""
    root = make_tree(["gantry-tilt", "missing-slice"])
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[waive]]\nid = "geometry.instance_number"\ncode = "gantry_tilt"\n'
        'reason = "tilted acquisition"\n',
        encoding="utf-8",
    )
    _rc, _out, plain = check(capsys, root)
    codes = {f.get("code") for f in plain["findings"] if f["id"] == "geometry.instance_number"}
    assert codes == {"gantry_tilt", "gap"}
    _rc, _out, waived = check(capsys, root, "--config", cfg)
    by_code = {
        f.get("code"): f.get("waived")
        for f in waived["findings"]
        if f["id"] == "geometry.instance_number"
    }
    assert by_code == {"gantry_tilt": "tilted acquisition", "gap": None}


def test_a_baseline_never_lets_one_masked_file_hide_another(make_tree, tmp_path, capsys):
    """Files named after their Patient ID are masked; a baseline that lacked one file must
    not excuse the lack of another (their masked names could read alike)."""
    root = make_tree(["deid-filename"])
    files = tiny_slices_named(root)
    manifest = tmp_path / "manifest-sha256.txt"
    assert run_cli(capsys, "manifest", "build", root, "-o", manifest)[0] == 0
    away = tmp_path / "away"
    away.mkdir()
    first = files[4]
    first.rename(away / first.name)
    flipped = files[20]  # its masked name is numbered among the names present
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0xFF
    flipped.write_bytes(bytes(data))
    _rc, _out, base = check(capsys, root, "--manifest", manifest)
    assert base["redaction_basis"]
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(base), encoding="utf-8")
    (away / first.name).rename(first)
    second = files[9]
    second.rename(away / second.name)
    rc, out, data = check(capsys, root, "--manifest", manifest, "--baseline", baseline)
    assert rc == 1, out
    new = {f["id"] for f in data["findings"] if not f.get("known")}
    assert "integrity.missing_file" in new
    # the masked names are numbered over another set of names: none of them may match
    assert data["redaction_basis"] != base["redaction_basis"]
    masked = [f for f in data["findings"] if "[redacted" in f"{f['path']} {f['message']}"]
    assert masked and not any(f.get("known") for f in masked)


def test_an_unchanged_copy_with_masked_names_is_all_known(make_tree, tmp_path, capsys):
    root = make_tree(["deid-filename"])
    _rc, _out, base = check(capsys, root)
    assert "[redacted#" in json.dumps(base["findings"])
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(base), encoding="utf-8")
    rc, _out, data = check(capsys, root, "--baseline", baseline)
    assert rc == 0
    assert data["redaction_basis"] == base["redaction_basis"]
    assert all(f.get("known") for f in data["findings"])


def test_a_deeply_nested_baseline_is_a_usage_error(clean_tiny, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--baseline", deep)
    assert rc == 2 and out == ""
    assert "nested too deeply" in err


def tiny_slices_named(root):
    """The COVID-19 case's files after deid-filename renamed them (name order)."""
    return sorted((root / CLASS_DIR["covid"] / TINY_CASES["covid"].case_id).glob("*"))


def test_integrity_mode_sees_a_damaged_label_file(make_tree, capsys):
    root = make_tree()
    (root / "Slice-level-labels.npy").write_bytes(b"\x93NUMPY" + b"\0" * 40)
    rc, _out, data = check(capsys, root, "--mode", "integrity")
    assert rc == 1
    assert any(f["id"] == "labels.file.unreadable" for f in data["findings"])
